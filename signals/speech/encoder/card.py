"""The model card (README.md) of the converted Resemblyzer encoder, rendered from its config.json."""

from __future__ import annotations

from typing import Any


def render_card(config: dict[str, Any]) -> str:
    """The model card ``README.md`` of the converted folder, from its config (metrics included when present)."""
    src, ver, onnx = config["source"], config.get("verification") or {}, config["onnx"]
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
        "signals speech encoder evaluate $D --split-halves --calibrate models/speaker_encoder --record models/speaker_encoder",
        "signals speech encoder evaluate $D --split-halves --speakers $S/test_speakers.txt --record models/speaker_encoder",
        "signals speech encoder evaluate $D --split-halves --speakers $S/test_speakers.txt "
        "--cohort-speakers $S/cohort_speakers.txt --record models/speaker_encoder",
        "```", "",
        "`splits/` holds the speaker split of `signals speech encoder train $D --holdout-speakers 51 --val-speakers 20 "
        "--seed 0`: `test_speakers.txt` (51 held-out speakers) and `cohort_speakers.txt` (its 180 training speakers, "
        "used as the S-norm impostor cohort). Trials: each recording's VAD-trimmed speech cut into two halves "
        "(about 6 s each); all same/different pairs.", "",
        "## Measured", "",
        f"- ONNX vs PyTorch, random inputs: max |diff| = {onnx['parity_max_abs_diff']:.2e}.",
        "- Parity with Resemblyzer's own `preprocess_wav` + `VoiceEncoder.embed_utterance` on real LibriSpeech "
        "files is tested in `tests/test_encoder_parity.py` (cosine >= 0.999 per utterance).",
    ]
    if ver.get("threshold") is not None:
        lines += [
            f"- Speaker verification on {ver['data']}: EER = {100 * ver['eer']:.2f} % at cosine threshold "
            f"{ver['threshold']:.4f} ({ver['n_target']} same-speaker / {ver['n_nontarget']} different-speaker "
            "pairs). `signals speech verify` uses this threshold.",
        ]
    if config.get("evaluations"):
        lines += ["", "Recorded evaluations (`signals speech encoder evaluate ... --record models/speaker_encoder`):", "",
                  "| data | speakers | cohort (S-norm) | halves | trials same / diff | score | EER | threshold |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in config["evaluations"]:
            cohort = f"{e['cohort_speakers_file']} ({e['n_cohort_embeddings']} emb.)" if e["n_cohort_embeddings"] else "-"
            lines.append(
                f"| {e['data']} | {e['speakers_file'] or 'all'} ({e['n_speakers']}) | {cohort} | "
                f"{'yes' if e['split_halves'] else 'no'} | {e['n_target']} / {e['n_nontarget']} | {e['score']} | "
                f"{100 * e['eer']:.2f} % | {e['threshold']:.4f} |")
    lines += ["", "## Files", "",
              "- `config.json`: network, mel, front end (levelling, VAD, partials), verification threshold.",
              "- `model.safetensors`: PyTorch weights (incl. GE2E similarity w/b).",
              "- `speaker_encoder.onnx`: `mels` float32 [batch, frames, 40] -> `embeddings` float32 [batch, 256].",
              "- `splits/`: speaker lists of the held-out evaluation (LibriSpeech IDs).",
              ""]
    return "\n".join(lines)
