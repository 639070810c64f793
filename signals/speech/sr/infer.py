"""HiFi-SR runtime: any input rate (4-48 kHz, mono or stereo, any length) to 48 kHz. No torch.

    sr = load("models/super_resolution")
    wav48 = sr.upsample(wav, sample_rate)            # float32 [T'] or [C, T']
    sr.upsample_file("in.wav", "out.wav")            # 48 kHz, 16-bit (or float)

Pipeline per channel: resample to 48 kHz (soxr) -> SR_MEL log-mel -> ONNX generator in chunks ->
crossover that keeps the input below its detected bandwidth and the generated signal above it.
Chunks of ``chunk_frames`` mel frames run with ``context_frames`` of context on each side (at least the
generator's receptive field, so a chunk's output equals whole-file output up to float rounding) and a
short linear crossfade between neighbours; the generator's memory use is therefore flat in the length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError
from signals.paths import model_dir as default_model_dir
from signals.runtime import create_session, read_config
from signals.speech.audio import check_audio, load_audio, resample, write_audio
from signals.speech.features import MelConfig, mel_numpy
from signals.speech.sr.postprocess import crossover, crossover_cutoff, crossover_filter, detect_bandwidth

MIN_RATE, MAX_CHANNELS = 4000, 2
# Below this the input adds nothing to a 48 kHz signal: it is passed through unchanged.
FULL_BAND_HZ = 23500.0


@dataclass
class SuperResolution:
    session: Any
    config: dict[str, Any]
    folder: Path

    @property
    def mel_cfg(self) -> MelConfig:
        return MelConfig.from_dict(self.config["mel"])

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def hop(self) -> int:
        return int(self.config["onnx_io"]["hop"])

    def _run(self, mel: np.ndarray) -> np.ndarray:
        """``mel: [n_mels, F]`` -> ``[F * hop]`` raw generator output."""
        return self.session.run(["audio"], {"mel": mel[None].astype(np.float32)})[0][0]

    def generate(self, wav48: np.ndarray, chunk_frames: int | None = None, h: np.ndarray | None = None) -> np.ndarray:
        """Generator (+ crossover with FIR ``h`` if given) over ``wav48: float32 [T]``, chunked; ``[T]`` out."""
        inf = self.config["inference"]
        chunk = int(chunk_frames or inf["chunk_frames"])
        ctx, xf = int(inf["context_frames"]), int(inf["crossfade_frames"])
        mc, hop = self.mel_cfg, self.hop
        n = len(wav48)
        n_frames = mc.n_frames(n)
        pad = mc.n_fft // 2
        padded = np.pad(wav48, (pad, pad), mode="reflect")  # the same centring mel_numpy does
        frame_cfg = replace(mc, center=False)
        out = np.zeros(n_frames * hop, dtype=np.float64)
        for a in range(0, n_frames, chunk):
            b = min(a + chunk, n_frames)
            keep_end = min(b + xf, n_frames)
            w0, w1 = max(0, a - ctx), min(n_frames, keep_end + ctx)
            seg = padded[w0 * hop : (w1 - 1) * hop + mc.n_fft]
            y = self._run(mel_numpy(seg, frame_cfg))  # samples w0*hop ... w1*hop
            if h is not None:
                x_win = np.zeros(len(y), dtype=np.float32)
                src = wav48[w0 * hop : min(n, w1 * hop)]
                x_win[: len(src)] = src
                y = crossover(x_win, y, h)
            part = y[(a - w0) * hop : (keep_end - w0) * hop].astype(np.float64)
            # Linear crossfade over the overlap; near the end the overlap can be shorter than xf
            # frames, and both sides then use the same truncated ramp so the weights still sum to 1.
            weight = np.ones(len(part))
            ramp = np.linspace(0.0, 1.0, xf * hop, endpoint=False) + 0.5 / max(1, xf * hop)
            if a > 0 and xf:  # fade in over the previous chunk's tail
                fade = min(xf * hop, len(part))
                weight[:fade] = ramp[:fade]
            if keep_end > b:  # fade out over the next chunk's head
                weight[(b - a) * hop :] = 1.0 - ramp[: (keep_end - b) * hop]
            out[a * hop : keep_end * hop] += weight * part
        return out[:n].astype(np.float32)

    def upsample(self, wav: np.ndarray, sample_rate: int, postprocess: bool = True,
                 chunk_frames: int | None = None, name: str = "audio") -> np.ndarray:
        """``wav: float [T]`` or ``[C, T]`` (C <= 2) at ``sample_rate`` -> float32 48 kHz, same layout."""
        wav = np.asarray(wav)
        if wav.ndim not in (1, 2):
            raise AudioError(f"{name}: expected [samples] or [channels, samples], got shape {wav.shape}")
        channels = wav.reshape(-1, wav.shape[-1])
        if channels.shape[0] > MAX_CHANNELS:
            raise AudioError(
                f"{name} has {channels.shape[0]} channels; super-resolution takes mono or stereo. "
                "Mix down or split the channels first."
            )
        if sample_rate < MIN_RATE:
            raise AudioError(f"{name} is sampled at {sample_rate} Hz; the lowest supported input rate is {MIN_RATE} Hz")
        sr_out = self.sample_rate
        min_seconds = self.mel_cfg.n_fft / sr_out  # one analysis frame at 48 kHz
        check_audio(channels, sample_rate, name=name, min_seconds=min_seconds)
        bandwidth = min(detect_bandwidth(channels, sample_rate), sample_rate / 2)
        outs = []
        for ch in channels:
            x48 = resample(ch.astype(np.float32), sample_rate, sr_out)
            if bandwidth >= FULL_BAND_HZ:
                outs.append(x48.astype(np.float32))
                continue
            h = crossover_filter(crossover_cutoff(bandwidth, self.config["inference"]["crossover_width_hz"]), sr_out,
                                 self.config["inference"]["crossover_width_hz"]) if postprocess else None
            outs.append(self.generate(x48, chunk_frames, h))
        out = np.stack(outs)
        return out[0] if wav.ndim == 1 else out

    def upsample_file(self, src: str | Path, dst: str | Path, subtype: str = "PCM_16",
                      postprocess: bool = True) -> dict[str, Any]:
        wav, sr = load_audio(src, mono=False)
        out = self.upsample(wav, sr, postprocess=postprocess, name=str(src))
        write_audio(dst, out, self.sample_rate, subtype=subtype)
        return {"input_rate": sr, "channels": int(out.shape[0]) if out.ndim == 2 else 1,
                "seconds": out.shape[-1] / self.sample_rate, "output": str(dst)}


def load(model_dir: str | Path | None = None, providers=None, threads: int | None = None) -> SuperResolution:
    folder = Path(model_dir) if model_dir is not None else default_model_dir("super_resolution")
    cfg = read_config(folder)
    session = create_session(folder / cfg.get("onnx", "generator.onnx"), providers=providers, threads=threads)
    return SuperResolution(session=session, config=cfg, folder=folder)
