"""Compact, resumable HiFi-SR training state: generator + discriminators + both AdamW optimisers.

A lent GPU returns at most 8 files of 16 MiB (64 MiB in all) per call and takes 64 MiB up (code and
data included), so ``out/last/`` holds the state as safetensors shards of at most :data:`SHARD_BYTES`
plus ``state.json`` (step, best validation LSD, optimiser step counts, the shard list):

* weights in fp16 (a tensor whose values leave fp16's range stays fp32);
* AdamW moments (``exp_avg``, ``exp_avg_sq``) in bf16: fp16 would flush the small second moments to zero;
* ``moments``: ``"all"``, ``"generator"`` (the discriminators' optimiser restarts on resume; their
  moments are most of the bytes) or ``"none"``.

Rounding the master weights to fp16 at a resume moves each by at most 2^-11 of itself, about one
optimiser step at the usual learning rates; it happens once per session.

Measured (``benchmarks/bench_sr.py --state-sizes``; MB = 10^6 bytes; all / generator / none moments):
small G + compact D (6.58 M parameters) 39.7 / 21.3 / 13.3 MB in 3 / 2 / 1 shards; small + tiny
16.7 / 13.6 / 5.6 MB; small + full D (74.1 M) 445 / 157 / 148 MB; paper G (102 M) + full D 1,047 / 758 /
349 MB, + compact D 641 / 623 / 214 MB. Only the small generator with the compact or tiny
discriminators comes back from a lent GPU (<= 64 MiB); the paper generator's fp16 weights alone are 204 MB.
"""

from __future__ import annotations

from typing import Any

import torch

MOMENTS = ("all", "generator", "none")
FP16_MAX = 65000.0


def _weight(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    v = v.detach().cpu().contiguous()
    if not v.is_floating_point():
        return v
    if dtype == torch.float16 and v.numel() and float(v.abs().max()) > FP16_MAX:
        return v.float()
    return v.to(dtype)


def state_tensors(gen: torch.nn.Module, disc: torch.nn.Module, opt_g: torch.optim.Optimizer | None,
                  opt_d: torch.optim.Optimizer | None, moments: str = "all", weight_dtype: torch.dtype = torch.float16,
                  moment_dtype: torch.dtype = torch.bfloat16) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, info)``: ``g.w.*`` / ``d.w.*`` weights, ``g.m.*`` / ``g.v.*`` (and ``d.``) AdamW moments by
    parameter name; ``info`` holds each optimiser's step count."""
    if moments not in MOMENTS:
        raise ValueError(f"moments must be one of {MOMENTS}, not {moments!r}")
    out: dict[str, torch.Tensor] = {}
    info: dict[str, Any] = {}
    keep = {"g": moments in ("all", "generator"), "d": moments == "all"}
    for prefix, model, opt in (("g", gen, opt_g), ("d", disc, opt_d)):
        for k, v in model.state_dict().items():
            out[f"{prefix}.w.{k}"] = _weight(v, weight_dtype)
        if not keep[prefix] or opt is None:
            continue
        state = opt.state_dict()["state"]
        for i, (name, _) in enumerate(model.named_parameters()):
            s = state.get(i)
            if s is None:
                continue
            out[f"{prefix}.m.{name}"] = s["exp_avg"].detach().cpu().to(moment_dtype).contiguous()
            out[f"{prefix}.v.{name}"] = s["exp_avg_sq"].detach().cpu().to(moment_dtype).contiguous()
            info[f"opt_step_{prefix}"] = float(s["step"])
    return out, info


def restore(tensors: dict[str, torch.Tensor], info: dict[str, Any], gen: torch.nn.Module, disc: torch.nn.Module,
            opt_g: torch.optim.Optimizer | None, opt_d: torch.optim.Optimizer | None) -> list[str]:
    """Load weights (and moments where saved) into the models and optimisers; returns what was restored."""
    done = []
    for prefix, model, opt in (("g", gen, opt_g), ("d", disc, opt_d)):
        own = model.state_dict()
        w = {k[len(prefix) + 3:]: v for k, v in tensors.items() if k.startswith(prefix + ".w.")}
        model.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in w.items()})
        done.append(f"{prefix} weights")
        names = [n for n, _ in model.named_parameters()]
        if opt is None or f"{prefix}.m.{names[0]}" not in tensors:
            continue
        params = dict(model.named_parameters())
        step = torch.tensor(float(info.get(f"opt_step_{prefix}", 0.0)))
        state = {i: {"step": step.clone(),
                     "exp_avg": tensors[f"{prefix}.m.{n}"].to(params[n].dtype),
                     "exp_avg_sq": tensors[f"{prefix}.v.{n}"].to(params[n].dtype)}
                 for i, n in enumerate(names) if f"{prefix}.m.{n}" in tensors}
        opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
        done.append(f"{prefix} moments")
    return done
