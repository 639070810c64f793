"""The model card (README.md) of the converted Resemblyzer encoder, rendered from config.json + metrics.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signals.modelfolder import ModelConfig, read_config, read_metrics


def render_card(config: ModelConfig, metrics: dict[str, Any]) -> str:
    """The model card ``README.md`` of the converted folder, from its config and measured results."""
    src, onnx = config.source, config.graphs["encoder"]
    calibration = metrics.get("calibration") or {}
    ver = {**calibration.get("cosine", {}), "threshold": config.runtime.get("threshold")}
    lines = [
        "# Speaker encoder (GE2E), converted from Resemblyzer", "",
        "256-d speaker embeddings from 16 kHz speech: 40-band mel (25 ms / 10 ms) -> 3 x LSTM(256) -> "
        "Linear(256) -> ReLU -> L2 norm; an utterance's embedding is the renormalised mean over 1.6 s partials.",
        "", "## Provenance", "",
        f"- Weights: `resemblyzer/pretrained.pt` of the PyPI wheel `resemblyzer=={src['resemblyzer_version']}` "
        f"(sha256 `{src['weights_sha256']}`), trained for {src['step']:,} steps.",
        "- Authors: Resemble AI (Resemblyzer), after Corentin Jemine's Real-Time-Voice-Cloning "
        "(https://github.com/CorentinJ/Real-Time-Voice-Cloning), implementing Wan et al., *Generalized End-to-End "
        "Loss for Speaker Verification* (ICASSP 2018) and Jia et al., *Transfer Learning from Speaker Verification "
        "to Multispeaker Text-To-Speech Synthesis* (NeurIPS 2018).",
        "- Training data (upstream): LibriSpeech, VoxCeleb 1 and VoxCeleb 2. Resemblyzer does not document which "
        "LibriSpeech subsets, so speakers of the evaluation below may have been seen in training.",
        "- Licence of the weights: **Apache-2.0** (Resemblyzer). LibriSpeech is CC BY 4.0; VoxCeleb is CC BY 4.0 "
        "(audio via YouTube, terms of the original uploads apply).", "",
        "## Reproduce", "", "```bash", src["command"],
        "D=../shared/data/librispeech-mini/train-clean-100 S=models/speaker_encoder/splits",
        "signals speech encoder evaluate $D --split-halves --record models/speaker_encoder",
        "# the cosine threshold of `verify --raw`, calibrated without the test speakers",
        "signals speech encoder evaluate $D --split-halves --exclude-speakers $S/test_speakers.txt "
        "--calibrate models/speaker_encoder --record models/speaker_encoder",
        "signals speech encoder evaluate $D --split-halves --speakers $S/test_speakers.txt --record models/speaker_encoder",
        "signals speech encoder evaluate $D --split-halves --speakers $S/test_speakers.txt "
        "--cohort-speakers $S/cohort_speakers.txt --record models/speaker_encoder",
        "# the shipped S-norm cohort, its threshold (calibrated without the test speakers), its test result",
        "signals speech encoder cohort $D --speakers $S/cohort_speakers.txt --exclude $S/test_speakers.txt "
        "--split-halves --licence 'LibriSpeech train-clean-100, CC BY 4.0 (Panayotov et al. 2015)'",
        "signals speech encoder evaluate $D --split-halves --exclude-speakers $S/test_speakers.txt --model-cohort "
        "--calibrate models/speaker_encoder --record models/speaker_encoder",
        "signals speech encoder evaluate $D --split-halves --speakers $S/test_speakers.txt --model-cohort "
        "--record models/speaker_encoder",
        "```", "",
        "`splits/` holds the speaker split of `signals speech encoder train $D --holdout-speakers 51 --val-speakers 20 "
        "--seed 0`: `test_speakers.txt` (51 held-out speakers) and `cohort_speakers.txt` (its 180 training speakers, "
        "used as the S-norm impostor cohort; the remaining 20 are its validation speakers). Thresholds are calibrated on "
        "the 200 speakers outside `test_speakers.txt` only; the test speakers are never used to make or tune "
        "anything. Trials: each recording's VAD-trimmed speech cut into two halves "
        "(about 6 s each); all same/different pairs.", "",
        "## Measured", "",
        f"- ONNX vs PyTorch, random inputs: max |diff| = {onnx.parity_max_abs_diff:.2e}.",
        "- Parity with Resemblyzer's own `preprocess_wav` + `VoiceEncoder.embed_utterance` on real LibriSpeech "
        "files is tested in `tests/test_encoder_parity.py` (cosine >= 0.999 per utterance).",
    ]
    cohort = src.get("cohort") or {}
    sn = {**calibration.get("snorm", {}), "threshold": config.runtime.get("snorm_threshold")}
    if ver.get("threshold") is not None and "eer" in ver:
        use = "`signals speech verify --raw` uses" if cohort and sn else "`signals speech verify` uses"
        lines += [
            f"- Speaker verification on {ver['data']}: EER = {100 * ver['eer']:.2f} % at cosine threshold "
            f"{ver['threshold']:.4f} ({ver['n_target']} same-speaker / {ver['n_nontarget']} different-speaker "
            f"pairs). {use} this threshold.",
        ]
    if sn.get("threshold") is not None and "eer" in sn:
        lines += [
            f"- S-norm calibration on {sn['data']} against the shipped cohort ({sn.get('n_speakers_in_cohort', 0)} of "
            f"these speakers are cohort speakers, scored leave-own-speaker-out): EER = {100 * sn['eer']:.2f} % at "
            f"S-norm threshold {sn['threshold']:.4f} ({sn['n_target']} / {sn['n_nontarget']} pairs). "
            "`signals speech verify` decides on the S-norm score at this threshold.",
        ]
    if metrics.get("evaluations"):
        lines += ["", "Recorded evaluations (`signals speech encoder evaluate ... --record models/speaker_encoder`):", "",
                  "| data | speakers | cohort (S-norm) | halves | trials same / diff | score | EER | threshold at EER "
                  "| at the model's threshold: FA / FR (FAR, FRR) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in metrics["evaluations"]:
            coh = f"{e['cohort_speakers_file']} ({e['n_cohort_embeddings']} emb.)" if e["n_cohort_embeddings"] else "-"
            spk = e["speakers_file"] or (f"all but {e['exclude_speakers_file']}" if e.get("exclude_speakers_file")
                                         else "all")
            d = e.get("at_model_threshold")
            dec = (f"{d['false_accepts']} / {d['false_rejects']} ({100 * d['far']:.2f} %, {100 * d['frr']:.2f} %) "
                   f"at {d['threshold']:.4f}" if d else "-")
            lines.append(
                f"| {e['data']} | {spk} ({e['n_speakers']}) | {coh} | "
                f"{'yes' if e['split_halves'] else 'no'} | {e['n_target']} / {e['n_nontarget']} | {e['score']} | "
                f"{100 * e['eer']:.2f} % | {e['threshold']:.4f} | {dec} |")
        lines += ["", "The last column applies the threshold stored in `config.json` at the time of the evaluation "
                  "(cosine or S-norm, as `verify` would) to that row's trials."]
    if cohort:
        lines += [
            "", "## Score normalisation (S-norm)", "",
            f"`cohort.npy` holds {cohort['n_embeddings']} embeddings (float32 [{cohort['n_embeddings']}, "
            f"{cohort['shape'][1]}]) of {cohort['n_speakers']} impostor speakers ({cohort['speakers_file']}"
            + (", each recording cut into two halves" if cohort.get("split_halves") else "")
            + f") from {cohort['data']}"
            + (f" ({cohort['data_licence']})" if cohort.get("data_licence") else "")
            + (f"; none of them is in {cohort['exclude_file']}" if cohort.get("exclude_file") else "")
            + f". Made by `{cohort['command']}`. `verify` scores a pair as "
            "((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2, where s is the cosine and mu/sd are the mean/std of each "
            "recording's cosines with the cohort; it prints both the cosine and the S-norm score.",
        ]
    bench = metrics.get("benchmark")
    if bench:
        lines += ["", "## Speed", "", f"`{bench['command']}` ({bench['machine']}); whole-utterance embedding from a "
                  "16 kHz waveform (front end + network), total ms (RTF):", "",
                  "| engine | threads | 3 s | 30 s |", "|---|---|---|---|"]
        lines += [f"| {r['engine']} | {r['threads']} | {r['ms_3s']} ({r['rtf_3s']}) | {r['ms_30s']} ({r['rtf_30s']}) |"
                  for r in bench["rows"]]
    lines += ["", "## Files", "",
              "- `config.json`: network, front end (levelling, VAD, partials, mel), ONNX graph, verification "
              "thresholds.",
              "- `metrics.json`: the calibrations, recorded evaluations and benchmark quoted above.",
              "- `model.safetensors`: PyTorch weights (incl. GE2E similarity w/b).",
              "- `speaker_encoder.onnx`: `mels` float32 [batch, frames, 40] -> `embeddings` float32 [batch, 256].",
              "- `splits/`: speaker lists of the held-out evaluation (LibriSpeech IDs).",
              *(["- `cohort.npy`: the S-norm impostor cohort (see above; `config.json[\"runtime\"]` lists each "
                 "row's speaker)."] if cohort else []),
              ""]
    return "\n".join(lines)


def write_card(model_dir: str | Path) -> Path | None:
    """Re-render ``README.md`` of a converted Resemblyzer folder after its config or metrics changed."""
    config = read_config(model_dir)
    if config.source.get("type") != "resemblyzer":
        return None  # trained folders keep the short card written by export
    path = Path(model_dir) / "README.md"
    path.write_text(render_card(config, read_metrics(model_dir)))
    return path
