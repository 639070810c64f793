"""Leave-subjects-out cross-validation of FusionActNet's dynamic-branch stage on the training subjects.

The dynamic branch (WALKING / UPSTAIRS / DOWNSTAIRS) reaches 100 % on the four validation subjects within
a few epochs, so that split cannot rank dynamic-stage recipes. This script trains the dynamic stage alone,
exactly as ``signals har train`` does (same initial weights, seeds, schedule, augmentation, last epoch
kept), once per fold of the 21 UCI HAR training subjects (fold k = the sorted subjects k, k + F, ...),
and scores each fold's held-out dynamic windows: accuracy, NLL and the 3 x 3 confusion. The test
subjects are never loaded.

    python scripts/har_dynamic_cv.py --name base --out runs/har_cv
    python scripts/har_dynamic_cv.py --name cadence10 --set aug_time_scale=0.1 --out runs/har_cv
    # born-again distillation: each fold's student learns from that fold's "base" network (--save-folds)
    python scripts/har_dynamic_cv.py --name base --save-folds --out runs/har_cv
    python scripts/har_dynamic_cv.py --name kd --teacher-from base --out runs/har_cv

Each fold's network (trained weights + normalisation) is kept as OUT/NAME_foldK.pt with --save-folds.
Folds run in separate processes (--only-folds) are pooled afterwards into one line per recipe, and such a
split run serves as teacher the same way (NAME1+NAME2: each fold's network from whichever part ran it):

    python scripts/har_dynamic_cv.py --report base cadence10 baseA+baseB kdA+kdB --out runs/har_cv
    python scripts/har_dynamic_cv.py --name kd2 --teacher-from kdA+kdB --out runs/har_cv
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from signals.har.config import STAGES, TrainConfig
from signals.har.data import load_dataset
from signals.har.model import FusionActNetEnsemble
from signals.har.train import _run_stage, init_model, predict_log_probs, xyz_groups
from signals.torchutils import seed_everything, setup_distributed

DYNAMIC_TASK = STAGES.index("dynamic")  # task index of member 0's dynamic stage in signals.har.train


def parse_overrides(items: list[str]) -> dict:
    names = {f.name for f in fields(TrainConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in names:
            raise SystemExit(f"--set {item}: TrainConfig has no field {key!r}")
        out[key] = type(getattr(TrainConfig(), key))(value)
    return out


def report(names: list[str], out: Path) -> None:
    """One line per recipe (NAME or NAME1+NAME2 for folds run apart): errors per fold, pooled accuracy and NLL."""
    for name in names:
        folds = sorted((r for part in name.split("+") for r in json.loads((out / f"{part}.json").read_text())["folds"]),
                       key=lambda r: r["fold"])
        n = sum(r["n"] for r in folds)
        errors = [r["n"] - int(np.trace(r["confusion"])) for r in folds]
        conf = np.sum([r["confusion"] for r in folds], 0)
        nll = sum(r["nll"] * r["n"] for r in folds) / n
        worst = min(min(r["per_subject"].values()) for r in folds)
        print(f"{name:24s} folds {[r['fold'] for r in folds]} errors {errors} = {sum(errors)} of {n}: accuracy "
              f"{1 - sum(errors) / n:.4f}, NLL {nll:.4f}, WALKING->UPSTAIRS {conf[0, 1]}, WALKING->DOWNSTAIRS "
              f"{conf[0, 2]}, worst subject {worst:.3f}")


def teacher_file(out: Path, names: str, fold: int) -> Path:
    """OUT/NAME_foldK.pt of the one run among NAME1+NAME2+... that saved fold K."""
    found = [out / f"{name}_fold{fold}.pt" for name in names.split("+") if (out / f"{name}_fold{fold}.pt").is_file()]
    if len(found) != 1:
        raise SystemExit(f"--teacher-from {names}: fold {fold} needs exactly one saved network "
                         f"(NAME_fold{fold}.pt from a --save-folds run) in {out}, found {len(found)}")
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name")
    ap.add_argument("--report", nargs="+", metavar="NAME", help="pool finished runs' OUT/NAME.json and print them")
    ap.add_argument("--set", nargs="*", default=[], help="TrainConfig overrides, field=value")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, nargs="*", default=None)
    ap.add_argument("--data", default="../shared/data/uci-hapt")
    ap.add_argument("--out", default="runs/har_cv")
    ap.add_argument("--save-folds", action="store_true", help="keep each fold's network as OUT/NAME_foldK.pt")
    ap.add_argument("--teacher-from", default=None, metavar="NAME[+NAME...]",
                    help="distil each fold from OUT/NAME_foldK.pt (a run with --save-folds; its held-out "
                         "subjects are the same, so the teacher never saw them)")
    args = ap.parse_args()
    if args.report:
        return report(args.report, Path(args.out))
    if not args.name:
        ap.error("--name is required (or --report)")

    out = Path(args.out)
    run_folds = [k for k in range(args.folds) if args.only_folds is None or k in args.only_folds]
    teachers = {k: teacher_file(out, args.teacher_from, k) for k in run_folds} if args.teacher_from else {}
    cfg = replace(TrainConfig(), val_subjects=0, **parse_overrides(args.set))
    cfg = replace(cfg, seeds=cfg.seeds[:1])  # one network per fold
    torch.set_num_threads(cfg.threads)
    ds = load_dataset("uci-har", root=args.data)
    tr = ds.train  # test subjects are not touched
    x_all, y_all, subj = np.asarray(tr.x, np.float32), np.asarray(tr.y, np.int64), np.asarray(tr.subjects)
    subjects = np.unique(subj)
    ctx = setup_distributed("cpu")
    out.mkdir(parents=True, exist_ok=True)
    dyn = np.asarray(ds.dynamic_classes)
    groups = xyz_groups(list(ds.channel_names))
    results = []
    for k in run_folds:
        held = subjects[k :: args.folds]
        va = np.isin(subj, held)
        model = init_model(cfg, ds, x_all[~va], "cpu")  # as signals har train: same seeds, same normalisation
        data = dict(xtr=torch.from_numpy(x_all[~va]), ytr=torch.from_numpy(y_all[~va]),
                    xva=torch.zeros((0, *x_all.shape[1:])), yva=torch.zeros(0, dtype=torch.long), groups=groups)
        if args.teacher_from:
            teacher = FusionActNetEnsemble(model.config)
            teacher.members[0].load_state_dict(torch.load(teachers[k]))
            data["teacher"] = teacher.eval().requires_grad_(False)
        t0 = time.time()
        seed_everything(cfg.seeds[0] + 17 * DYNAMIC_TASK)
        _run_stage(model, 0, "dynamic", data, cfg, ctx, out / f"{args.name}_ckpt.pt", None, [], DYNAMIC_TASK)
        net = model.members[0].eval()
        if args.save_folds:
            torch.save(net.state_dict(), out / f"{args.name}_fold{k}.pt")
        keep = va & np.isin(y_all, dyn)
        yv = torch.from_numpy(np.searchsorted(dyn, y_all[keep]))
        logits = predict_log_probs(lambda b, net=net: net.dynamic(net.inputs(b)), torch.from_numpy(x_all[keep]))
        pred = logits.argmax(-1)
        conf = np.zeros((len(dyn), len(dyn)), int)
        np.add.at(conf, (yv.numpy(), pred.numpy()), 1)
        right, held_subj = (pred == yv).numpy(), subj[keep]
        per_subject = {int(s): float(right[held_subj == s].mean()) for s in held}
        row = dict(fold=k, held_out=[int(s) for s in held], n=int(keep.sum()),
                   accuracy=float(right.mean()), nll=float(F.cross_entropy(logits, yv)),
                   confusion=conf.tolist(), per_subject=per_subject, seconds=round(time.time() - t0, 1))
        print(json.dumps(row), flush=True)
        results.append(row)
    (out / f"{args.name}_ckpt.pt").unlink(missing_ok=True)
    n = sum(r["n"] for r in results)
    conf = np.sum([r["confusion"] for r in results], 0)
    summary = dict(name=args.name, overrides=args.set, folds=results, n=n,
                   accuracy=float(np.trace(conf) / n), nll=float(sum(r["nll"] * r["n"] for r in results) / n),
                   confusion=conf.tolist(), worst_subject=min(min(r["per_subject"].values()) for r in results))
    (out / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "folds"}))


if __name__ == "__main__":
    main()
