"""Bad-input cases: numeric options derived from config dataclasses (training and data-preparation commands).

Refused when the command line is parsed, before any data or model is touched (signals.configio.add_arguments:
counts >= 0, numbers finite, and the ranges each CLI gives its fields).
"""

from __future__ import annotations

from badinput import Case

CASES = [
    Case("options-tts-train-batch-zero", ("speech", "tts", "train", "--data", "{tmp}", "--batch-size", "0"),
         match=r"--batch-size: must be at least 1"),
    Case("options-tts-train-lr-nan", ("speech", "tts", "train", "--data", "{tmp}", "--lr", "nan"),
         match=r"--lr: must be a number in \(0, 10\]"),
    Case("options-tts-train-negative-warmup", ("speech", "tts", "train", "--data", "{tmp}", "--warmup-steps", "-5"),
         match=r"--warmup-steps: must be at least 0"),
    Case("options-tts-train-swap-prob", ("speech", "tts", "train", "--data", "{tmp}", "--embed-swap-prob", "1.5"),
         match=r"--embed-swap-prob: must be a number in \[0, 1\]"),
    Case("options-encoder-train-one-speaker", ("speech", "encoder", "train", "{tmp}", "--out", "{tmp}/run",
                                               "--speakers-per-batch", "1"),
         match=r"--speakers-per-batch: must be at least 2"),
    Case("options-encoder-train-inf-clip", ("speech", "encoder", "train", "{tmp}", "--out", "{tmp}/run",
                                            "--clip-grad-norm", "inf"),
         match=r"--clip-grad-norm"),
    Case("options-sr-train-vocoder-prob", ("speech", "sr", "train", "--data", "{tmp}", "--vocoder-prob", "2"),
         match=r"--vocoder-prob: must be a number in \[0, 1\]"),
    Case("options-sr-train-steps-zero", ("speech", "sr", "train", "--data", "{tmp}", "--steps", "0"),
         match=r"--steps: must be at least 1"),
    Case("options-sr-prepare-drop-db-nan", ("speech", "sr", "prepare", "--out", "{tmp}/sr", "--drop-db", "nan"),
         match=r"--drop-db: must be a finite number"),
    Case("options-sr-prepare-workers-zero", ("speech", "sr", "prepare", "--out", "{tmp}/sr", "--workers", "0"),
         match=r"--workers: must be at least 1"),
    Case("options-sr-prepare-bandwidth", ("speech", "sr", "prepare", "--out", "{tmp}/sr", "--min-bandwidth", "1e9"),
         match=r"--min-bandwidth"),
]
