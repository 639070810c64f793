"""Choose a HiFi-SR model folder's post-processing (``frontend.frame_comb_radius`` and
``frontend.generated_gain_db``) on validation audio only.

    python scripts/sr_frame_comb_sweep.py --model models/super_resolution --out runs/sr_comb
    python scripts/sr_frame_comb_sweep.py --radii 6 8 12 --gains 0 2 4 6 8 --out runs/sr_gain

Scores the model with the frame comb at each radius (0 = off) times each gain on the generated band
(dB, after the comb) on two validation sets, never a test set:
the VCTK utterances the shipped model was selected on (``--vctk-files``) and ``--limit`` clips of a
training pack's ``val`` split (held-out languages / voices, each clip scored up to its bandwidth). The
rule, fixed before the sweep: the lowest LSD averaged over both sets and all input rates; among settings
within ``--tolerance`` of it, the one whose generated band is least tonal. Writes ``sweep.json`` and
prints one row per setting. Same metrics as ``signals speech sr evaluate`` (it calls the same code).
A folder with a learned envelope (``frontend.envelope``) runs with it, and the envelope sets the generated
band's level, so there only the radius matters (give ``--gains 0``).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from signals.speech.sr.evaluate import RATES, evaluate_items, reference_items
from signals.speech.sr.infer import load


def score(model: str, threads: int, sets: dict[str, list], setting: tuple[int, float]) -> dict:
    """Mean HiFi-SR metrics over all input rates of each validation set, with the comb at ``radius`` and the
    generated band's gain at ``gain_db``."""
    radius, gain_db = setting
    runtime = load(model, threads=threads, frame_comb_radius=radius, generated_gain_db=gain_db)
    row: dict = {"radius": radius, "gain_db": gain_db}
    for name, items in sets.items():
        per_rate = evaluate_items(items, runtime, RATES)["summary"]["hifi_sr"]
        row[name] = {k: round(per_rate["mean"][k], 4) for k in ("lsd", "lsd_hf", "tonal_excess_db")}
        # each input rate too: whether one setting suits every rate (the shipped post-processing is one setting)
        row[name]["by_rate"] = {rate: {k: round(v[k], 4) for k in ("lsd", "tonal_excess_db")}
                                for rate, v in per_rate.items() if rate != "mean"}
    row["lsd"] = round(float(np.mean([row[n]["lsd"] for n in sets])), 4)
    row["tonal_excess_db"] = round(float(np.mean([row[n]["tonal_excess_db"] for n in sets])), 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/super_resolution")
    ap.add_argument("--vctk", default="../shared/data/vctk-wideband")
    ap.add_argument("--vctk-files", nargs="*", default=["p360_354", "p361_174"])
    ap.add_argument("--pack", default="data/sr_debian/full")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--radii", type=int, nargs="+", default=[0, 2, 3, 4, 6, 8, 12, 16])
    ap.add_argument("--gains", type=float, nargs="+", default=[0.0], help="generated-band gains to try, dB")
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per job")
    ap.add_argument("--jobs", type=int, default=2, help="settings scored in parallel processes")
    ap.add_argument("--out", default="runs/sr_comb")
    args = ap.parse_args()

    sets = {"vctk_val": reference_items(args.vctk, set(args.vctk_files))[0]}
    if args.pack and Path(args.pack).is_dir():
        sets["pack_val"] = reference_items(args.pack, split="val", limit=args.limit)[0]
    with ProcessPoolExecutor(args.jobs) as pool:
        settings = [(r, g) for r in args.radii for g in args.gains]
        rows = list(pool.map(partial(score, args.model, args.threads, sets), settings))
    for row in rows:
        print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "by_rate"} if isinstance(v, dict) else v)
                          for k, v in row.items()}))
    rates = sorted({rate for r in rows for n in sets for rate in r[n]["by_rate"]}, key=int)
    for rate in rates:  # the best setting for each input rate alone, by the same LSD averaged over both sets
        per = [(float(np.mean([r[n]["by_rate"][rate]["lsd"] for n in sets if rate in r[n]["by_rate"]])), r)
               for r in rows]
        lsd, r = min(per, key=lambda x: x[0])
        print(f"{rate} Hz alone: best radius {r['radius']}, gain {r['gain_db']:g} dB (LSD {lsd:.4f})")
    best_lsd = min(r["lsd"] for r in rows)
    chosen = min((r for r in rows if r["lsd"] <= best_lsd + args.tolerance), key=lambda r: r["tonal_excess_db"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "sets": {k: [n for n, _, _ in v] for k, v in sets.items()}, "rows": rows,
              "rule": f"lowest mean LSD; within {args.tolerance} of it, least tonal",
              "chosen": {"frame_comb_radius": chosen["radius"], "generated_gain_db": chosen["gain_db"]}}
    (out / "sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"chosen frame_comb_radius: {chosen['radius']}, generated_gain_db: {chosen['gain_db']:g}")


if __name__ == "__main__":
    main()
