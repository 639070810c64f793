"""Where does a clone lose its similarity to the voice? Scores the validation voices four ways.

    python scripts/tts_similarity_sources.py --checkpoint runs/tts/best --pack data/tts_pack

For each held-out validation voice of the pack, one validation utterance is the reference (what the
synthesizer is conditioned on) and the next ``--per-voice`` are targets. Prints the mean
cos(x, reference) of our speaker encoder for:

- the teacher's audio;
- copy-synthesis (the teacher's mel through our vocoder);
- the synthesizer teacher-forced: true previous frames, its post-net mel through the vocoder;
- the free-running clone (the shipped runtime's loop, ``--model``, without its post-filter, like the row above).

If teacher-forced scores no better than free-running, the loop (exposure bias, attention) is not what
costs the similarity: the predicted mel itself lacks the voice. Validation voices only; never the test split.
"""

from __future__ import annotations

import argparse

import numpy as np
import soundfile as sf
import torch

from signals.paths import data_root
from signals.speech.tts.data import Pack
from signals.speech.tts.infer import load
from signals.speech.tts.postfilter import teacher_forced_mel
from signals.speech.tts.train import load_model

ROWS = ("teacher", "copy_synthesis", "teacher_forced", "free_running")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="the synthesizer's torch weights: a run's best/ or a model folder")
    ap.add_argument("--model", help="the same synthesizer as a model folder, for the free-running row (default models/tts)")
    ap.add_argument("--pack", default="data/tts_pack")
    ap.add_argument("--corpus", default=str(data_root() / "kokoro-teacher"))
    ap.add_argument("--voices", nargs="+", default=["kk_af_nova", "kk_bm_lewis", "kx_af07", "kx_bf01"],
                    help="held-out validation voices (the pack's split)")
    ap.add_argument("--per-voice", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    pack = Pack.load(args.pack)
    utts, speakers = pack.manifest["utterances"], pack.manifest["speakers"]
    val = set(pack.indices("val").tolist())
    rt = load(args.model, threads=args.threads, postfilter=False)  # both synthesizer rows without the post-filter
    model, _ = load_model(args.checkpoint)

    def score(wav: np.ndarray, sr: int, ref: np.ndarray) -> float:
        return float(rt.embed_audio(wav, sr) @ ref)

    scores: dict[str, list[float]] = {k: [] for k in ROWS}
    for voice in args.voices:
        idx = [i for i in range(len(pack)) if i in val and speakers[int(pack.speakers[i])] == voice]
        if len(idx) < 2:
            raise SystemExit(f"{voice}: fewer than 2 validation utterances in {args.pack}")
        ref_i, targets = idx[0], idx[1:1 + args.per_voice]
        ref = rt.embed_audio(*sf.read(f"{args.corpus}/wav/{voice}/{utts[ref_i]}.ogg"))
        mine: dict[str, list[float]] = {k: [] for k in ROWS}
        for i in targets:
            mine["teacher"].append(score(*sf.read(f"{args.corpus}/wav/{voice}/{utts[i]}.ogg"), ref))
            mel = pack.mel(i).astype(np.float32)  # [T, 80] the vocoder's log-mel
            mine["copy_synthesis"].append(score(rt.vocoder(mel.T), rt.vocoder.sample_rate, ref))
            forced, _ = teacher_forced_mel(model, pack, i, ref)
            mine["teacher_forced"].append(score(rt.vocoder(forced.T), rt.vocoder.sample_rate, ref))
            clone = rt.synthesizer.synthesize(pack.token_ids(i).tolist(), ref)
            mine["free_running"].append(score(rt.vocoder(clone.mel), rt.vocoder.sample_rate, ref))
        for k in ROWS:
            scores[k] += mine[k]
        print(voice, " ".join(f"{k} {np.mean(mine[k]):.3f}" for k in ROWS), flush=True)
    print(f"all {len(scores['teacher'])} sentences:", " ".join(f"{k} {np.mean(scores[k]):.3f}" for k in ROWS))


if __name__ == "__main__":
    main()
