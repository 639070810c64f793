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


def plot_spectrograms(panels: list[tuple[object, int, str]], path: str | Path, top_hz: float | None = None,
                      range_db: float = 90.0, dpi: int = 100) -> Path:
    """Linear-frequency spectrograms stacked top to bottom, one per ``(wav: float[T], rate, title)``, on a
    shared frequency axis up to ``top_hz`` (default: the highest Nyquist), so a band an input lacks shows
    black. ~22 Hz bins at every rate (n_fft 1024 below 32 kHz, else 2048; hop n_fft / 4); each panel spans
    ``range_db`` below its own peak."""
    import numpy as np

    from signals.speech.features import stft

    plt = pyplot()
    top = top_hz or max(rate for _, rate, _ in panels) / 2
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3 * len(panels)), squeeze=False)
    for ax, (wav, rate, title) in zip(axes[:, 0], panels):
        n_fft = 1024 if rate < 32000 else 2048
        db = 20 * np.log10(np.maximum(np.abs(stft(np.asarray(wav, np.float32), n_fft, n_fft // 4)), 1e-5)).T
        peak = float(db.max())
        im = ax.imshow(db, origin="lower", aspect="auto", interpolation="none", cmap="magma", vmin=peak - range_db,
                       vmax=peak, extent=(0, len(wav) / rate, 0, rate / 2))
        ax.set_ylim(0, top)
        ax.set_facecolor("black")  # above the panel's Nyquist: no content at all
        ax.set_title(title[:110], fontsize=8)
        ax.set_xlabel("s")
        ax.set_ylabel("Hz")
        fig.colorbar(im, ax=ax, pad=0.01, label="dB")
    return save_figure(fig, path, dpi=dpi)


def plot_training_log(log: str | Path, png: str | Path, keys: tuple[str, ...] = ("total",),
                      val_keys: tuple[str, ...] = ("total",), title: str = "") -> Path:
    """Loss curves of a ``train_log.jsonl`` (rows ``{"step", key: value}`` and ``{"step", "val": {...}}``)."""
    from signals.modelfolder import read_log

    rows = read_log(log, skip_torn=True)  # a killed run's cut-short last line does not cost the figure
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
