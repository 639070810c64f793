"""Headless matplotlib for the PNG reports (confusion matrices, DET curves, ...)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg back end, so reports render on machines without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG (or the format its suffix names; parent folders created, written atomically
    through :class:`signals.outputs.AtomicOutput`) and free it."""
    from signals.outputs import AtomicOutput

    try:
        with AtomicOutput(path, what="figure") as out:
            fig.tight_layout()
            fig.savefig(out.tmp, dpi=dpi, format=Path(path).suffix.lstrip(".").lower() or "png")
    finally:
        pyplot().close(fig)
    return Path(path)


def plot_training_log(log: str | Path, png: str | Path, keys: tuple[str, ...] = ("total",),
                      val_keys: tuple[str, ...] = ("total",), title: str = "") -> Path:
    """Loss curves of a ``train_log.jsonl`` (rows ``{"step", key: value}`` and ``{"step", "val": {...}}``)."""
    import json

    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), label=f"train {key}")
    for key in val_keys:
        pts = [(r["step"], r["val"][key]) for r in rows if key in r.get("val", {})]
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"validation {key}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, png)
