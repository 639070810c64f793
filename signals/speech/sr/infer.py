"""HiFi-SR runtime: any input rate (4-48 kHz, mono or stereo, any length) to 48 kHz. No torch.

    sr = load()                                       # models/super_resolution (or --model / $SIGNALS_MODELS)
    wav48 = sr.upsample(wav, sample_rate)            # float32 [T'] or [C, T']
    sr.upsample_file("in.wav", "out.wav")            # 48 kHz, 16-bit (or float)

Pipeline per channel: resample to 48 kHz (soxr) -> SR_MEL log-mel -> ONNX generator in chunks (two graphs:
the encoder, which needs long context, and the upsampler, which needs a few frames of it) ->
crossover that keeps the input below its detected bandwidth and the generated signal above it (after
removing the generator's frame-locked lines, ``frontend.frame_comb_radius``, and rescaling each band of each
frame to the power the folder's ``envelope`` graph predicts from the same mel, ``frontend.envelope``; a
folder without one applies the fixed ``frontend.generated_gain_db`` instead).
Chunks of ``chunk_frames`` mel frames run through the encoder with ``context_frames`` of context on each
side (at least the generator's receptive field, so a chunk's output equals whole-file output up to float
rounding) and a short linear crossfade between neighbours; the generator's memory use is therefore flat in
the length. The upsampler, ~95 % of the time, runs only on the chunk plus ``upsampler_context_frames`` (its
own receptive field) and the post-processing's reach, in pieces of ``upsampler_chunk_frames`` (smaller
tensors stay in cache): the same output as running it over the whole window, with ~25 % less work.

``upsample_file`` streams: it reads the input in blocks twice (pass 1: NaN/silence checks and a running
Welch bandwidth estimate over the whole file; pass 2: ``soxr.ResampleStream`` -> chunked generator ->
``soundfile.SoundFile`` writes), so peak memory does not grow with the file's length. The streamed
output equals ``upsample`` on the whole signal (same chunk grid, same resampler state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError, ModelError
from signals.modelfolder import ModelFolder
from signals.speech.audio import SILENCE_PEAK, check_audio, open_audio, resample
from signals.speech.features import mel_numpy
from signals.speech.sr.config import GeneratorConfig
from signals.speech.sr.frontend import FrontEnd, check_input
from signals.speech.sr.postprocess import (
    BandwidthEstimator,
    apply_envelope,
    crossover,
    crossover_cutoff,
    crossover_filter,
    detect_bandwidth,
    edge_fade,
    remove_frame_periodic,
)

KIND = "super_resolution"
ENCODER_ONNX, UPSAMPLER_ONNX = "encoder.onnx", "upsampler.onnx"
MAX_GAIN_DB = 24.0  # frontend.generated_gain_db beyond this is a mistake, not a calibration
# Input frames per read in the streaming pass (any value gives the same output).
STREAM_BLOCK = 1 << 16


@dataclass(frozen=True)
class Chunking:
    """``config.json["runtime"]``: how the generator runs over long signals with flat memory."""

    context_frames: int  # >= the generator's receptive field, so chunked output equals whole-file output
    upsampler_context_frames: int  # >= the upsampler's receptive field (latent frames each side)
    chunk_frames: int = 1024
    crossfade_frames: int = 8
    # The upsampler runs in pieces of this many latent frames (0: in one piece). 384 was fastest on one CPU
    # thread (benchmarks/bench_sr.py --upsampler-chunks); any value gives the same output.
    upsampler_chunk_frames: int = 384

    def __post_init__(self):
        if not 0 < self.upsampler_context_frames <= self.context_frames:
            raise ValueError(f"upsampler_context_frames must be within 1 ... context_frames ({self.context_frames}), "
                             f"got {self.upsampler_context_frames}")
        if self.chunk_frames < 1 or self.crossfade_frames < 0 or self.upsampler_chunk_frames < 0:
            raise ValueError("chunk_frames must be >= 1, crossfade_frames and upsampler_chunk_frames >= 0")


class _ChunkStream:
    """Chunked generator (+ crossover) over a 48 kHz signal that arrives in pieces.

    Chunk ``[a, b)`` of mel frames runs on frames ``[a - ctx, b + xf + ctx)``; it is processed as soon as
    enough samples have arrived that the end of the signal cannot change it (no end reflection, full
    right context), and its output up to frame ``b`` is final (the next chunk fades in after it).
    Only ``chunk + xf + 2 ctx`` frames of input and ``xf`` frames of output are held at any time.
    """

    def __init__(self, sr: SRRuntime, chunk_frames: int | None, h: np.ndarray | None):
        inf = sr.chunking
        self.encode, self.upsample, self.h = sr.encode, sr.upsample_latent, h
        self.comb = sr.front.frame_comb_radius  # part of the postprocessing: only with a crossover (h)
        self.gain = 10.0 ** (sr.front.generated_gain_db / 20.0)  # likewise
        self.envelope = sr.front.envelope if sr.envelope is not None else None  # likewise; replaces the gain
        self.band_power = sr.band_power
        self.fade = sr.front.edge_fade_frames * sr.hop  # likewise, in samples
        self.chunk = int(chunk_frames or inf.chunk_frames)
        self.ctx, self.xf = inf.context_frames, inf.crossfade_frames
        self.mc, self.hop = sr.front.mel, sr.hop
        self.pad = self.mc.n_fft // 2
        # Latent frames the upsampler runs on beyond the kept ones: its receptive field, plus (with the
        # post-processing) the reach of the frame comb (its radius), of the envelope's STFT rescaling (an
        # output sample sums frames centred up to n_fft / 2 away, each of which reads n_fft / 2 further) and of
        # the crossover FIR (half its length), rounded up to frames.
        self.margin = inf.upsampler_context_frames
        if h is not None:
            env_fft = self.envelope.n_fft if self.envelope is not None else 0
            self.margin += self.comb + -(-env_fft // self.hop) + -(-(len(h) // 2) // self.hop) + 1
        self.frame_cfg = replace(self.mc, center=False)
        self.buf = np.zeros(0, dtype=np.float32)  # input samples base ... base + len(buf)
        self.base = 0
        self.n: int | None = None  # total length, known once the input ends
        self.a = 0  # next chunk's first frame
        self.pending = np.zeros(0, dtype=np.float64)  # faded tail of the last chunk, from sample a * hop
        self.emitted = 0

    @property
    def received(self) -> int:
        return self.base + len(self.buf)

    def _window(self, i0: int, i1: int) -> np.ndarray:
        """Input samples ``i0 ... i1`` of the reflect-padded signal (the centring ``mel_numpy`` does)."""
        idx = np.arange(i0, i1) - self.pad
        idx = np.abs(idx)  # reflect at the start
        if self.n is not None:
            idx = np.where(idx >= self.n, 2 * (self.n - 1) - idx, idx)  # reflect at the end
        return self.buf[idx - self.base]

    def _ready(self) -> bool:
        if self.n is not None:
            return self.a < self.mc.n_frames(self.n)
        w1 = self.a + self.chunk + self.xf + self.ctx
        return self.received >= w1 * self.hop + self.pad

    def _step(self) -> np.ndarray:
        a, hop, xf = self.a, self.hop, self.xf
        n_frames = self.mc.n_frames(self.n) if self.n is not None else 1 << 62
        b = min(a + self.chunk, n_frames)
        keep_end = min(b + xf, n_frames)
        w0, w1 = max(0, a - self.ctx), min(n_frames, keep_end + self.ctx)
        mel = mel_numpy(self._window(w0 * hop, (w1 - 1) * hop + self.mc.n_fft), self.frame_cfg)
        latent = self.encode(mel)
        u0, u1 = max(w0, a - self.margin), min(w1, keep_end + self.margin)
        y = self.upsample(latent[:, u0 - w0 : u1 - w0])
        if self.h is not None:  # samples u0*hop ... u1*hop
            y = remove_frame_periodic(y, hop, self.comb)  # the crossover keeps only its high band, so this
            if self.envelope is not None:                 # rescaling and the gain act there only
                y = apply_envelope(y, self.band_power(mel)[:, u0 - w0 : u1 - w0], self.envelope)
            else:
                y = y * np.float32(self.gain)
            y = edge_fade(y, u0 * hop, self.n, self.fade)
            x_win = np.zeros(len(y), dtype=np.float32)
            end = u1 * hop if self.n is None else min(self.n, u1 * hop)
            src = self.buf[u0 * hop - self.base : end - self.base]
            x_win[: len(src)] = src
            y = crossover(x_win, y, self.h)
        part = y[(a - u0) * hop : (keep_end - u0) * hop].astype(np.float64)
        # Linear crossfade over the overlap; near the end the overlap can be shorter than xf
        # frames, and both sides then use the same truncated ramp so the weights still sum to 1.
        weight = np.ones(len(part))
        ramp = np.linspace(0.0, 1.0, xf * hop, endpoint=False) + 0.5 / max(1, xf * hop)
        if a > 0 and xf:  # fade in over the previous chunk's tail
            fade = min(xf * hop, len(part))
            weight[:fade] = ramp[:fade]
        if keep_end > b:  # fade out over the next chunk's head
            weight[(b - a) * hop :] = 1.0 - ramp[: (keep_end - b) * hop]
        part *= weight
        part[: len(self.pending)] += self.pending
        done, self.pending = part[: (b - a) * hop], part[(b - a) * hop :]
        self.a = b
        # drop input the next chunk cannot reach (its window starts at (b - ctx) * hop - pad)
        keep_from = max(self.base, (b - self.ctx) * hop - self.pad)
        self.buf, self.base = self.buf[keep_from - self.base :], keep_from
        return done

    def _emit(self, parts: list[np.ndarray]) -> np.ndarray:
        out = np.concatenate(parts) if parts else np.zeros(0)
        if self.n is not None:
            out = out[: max(0, self.n - self.emitted)]
        self.emitted += len(out)
        return out.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Append ``x: float32 [t]``; returns the output samples that are final now."""
        self.buf = np.concatenate([self.buf, np.asarray(x, dtype=np.float32)])
        parts = []
        while self._ready():
            parts.append(self._step())
        return self._emit(parts)

    def finish(self) -> np.ndarray:
        """The input has ended: process the remaining chunks; returns the rest of the output."""
        self.n = self.received
        parts = []
        while self._ready():
            parts.append(self._step())
        parts.append(self.pending)
        self.pending = np.zeros(0)
        return self._emit(parts)


@dataclass(frozen=True)
class SRRuntime:
    """A HiFi-SR model folder ready to run (the torch module is ``model.Generator``)."""

    folder: ModelFolder
    encoder: Any  # onnxruntime: mel float32 [B, n_mels, frames] -> latent float32 [B, channels, frames]
    upsampler: Any  # onnxruntime: latent float32 [B, channels, frames] -> audio float32 [B, frames * hop]
    front: FrontEnd
    chunking: Chunking
    envelope: Any = None  # onnxruntime: mel float32 [B, n_mels, frames] -> band_power float32 [B, n_bands, frames]

    @classmethod
    def load(cls, model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
             threads: int | None = None, frame_comb_radius: int | None = None,
             generated_gain_db: float | None = None, envelope: bool = True, generator: bool = True) -> SRRuntime:
        """``frame_comb_radius``, ``generated_gain_db``: override the folder's ``frontend`` settings (None: keep
        them); ``envelope=False``: leave the folder's learned envelope out (the generated band at the
        generator's own level, times the gain); ``generator=False``: do not load the encoder and upsampler
        graphs (their files need not be there; the caller puts its own in, as training's validation does)."""
        folder = ModelFolder.find(KIND, model_dir)
        if "generator" in folder.config.graphs and "encoder" not in folder.config.graphs:
            raise ModelError(f"{folder.config_path} has one 'generator' graph, the layout before the encoder/upsampler "
                             f"split of 2026-12-07: rewrite it with `python scripts/migrate_model_folders.py "
                             f"{folder.path}` (needs torch; keeps everything else) or export it again")
        front = folder.section("frontend", FrontEnd)
        chunking = folder.section("runtime", Chunking)
        enc = folder.graph("encoder", ["mel"], ["latent"])
        ups = folder.graph("upsampler", ["latent"], ["audio"])
        # n_mels and the hop are stored by the front end's mel, the generator config and the graph.
        model = folder.section("model", GeneratorConfig)
        if not enc.inputs["mel"][1] == front.mel.n_mels == model.n_mels or model.hop != front.mel.hop_length:
            raise ModelError(f"{folder.config_path}: frontend.mel (n_mels {front.mel.n_mels}, hop "
                             f"{front.mel.hop_length}) does not match the generator (n_mels {model.n_mels}, "
                             f"hop {model.hop}) or the encoder graph's input {enc.inputs['mel']}")
        if enc.outputs["latent"][1] != ups.inputs["latent"][1]:
            raise ModelError(f"{folder.config_path}: the encoder writes {enc.outputs['latent'][1]} latent channels, "
                             f"the upsampler reads {ups.inputs['latent'][1]}")
        if chunking.upsampler_context_frames < model.upsampler.context_frames:
            raise ModelError(f"{folder.config_path}: runtime.upsampler_context_frames "
                             f"({chunking.upsampler_context_frames}) is below the upsampler's receptive field "
                             f"({model.upsampler.context_frames} frames): chunked output would differ")
        if frame_comb_radius is not None:
            front = replace(front, frame_comb_radius=frame_comb_radius)
        if generated_gain_db is not None:
            front = replace(front, generated_gain_db=float(generated_gain_db))
        if not (np.isfinite(front.generated_gain_db) and abs(front.generated_gain_db) <= MAX_GAIN_DB):
            raise ModelError(f"generated_gain_db must be a finite gain within +-{MAX_GAIN_DB:g} dB, got "
                             f"{front.generated_gain_db}")
        if not 0 <= front.edge_fade_frames <= chunking.context_frames:
            raise ModelError(f"edge_fade_frames must be within 0 ... {chunking.context_frames} frames (the chunk "
                             f"context of {folder.config_path}), got {front.edge_fade_frames}")
        if not 0 <= front.frame_comb_radius <= chunking.context_frames:
            raise ModelError(f"frame_comb_radius must be within 0 ... {chunking.context_frames} frames (the chunk "
                             f"context of {folder.config_path}), got {front.frame_comb_radius}")
        env_session = None
        if front.envelope is not None and envelope:
            env = front.envelope
            if (env.n_fft, env.hop, env.n_mels) != (front.mel.n_fft, front.mel.hop_length, front.mel.n_mels):
                raise ModelError(f"{folder.config_path}: frontend.envelope (n_fft {env.n_fft}, hop {env.hop}, n_mels "
                                 f"{env.n_mels}) must frame like frontend.mel ({front.mel.n_fft}, "
                                 f"{front.mel.hop_length}, {front.mel.n_mels})")
            if env.context_frames > chunking.context_frames:
                raise ModelError(f"{folder.config_path}: the envelope net reads {env.context_frames} frames each side, "
                                 f"more than the chunk context ({chunking.context_frames})")
            espec = folder.graph("envelope", ["mel"], ["band_power"])
            if espec.outputs["band_power"][1] != env.n_bands:
                raise ModelError(f"{folder.config_path}: the envelope graph writes {espec.outputs['band_power'][1]} "
                                 f"bands, frontend.envelope has {env.n_bands}")
            env_session = folder.session("envelope", providers=providers, threads=threads)
        elif not envelope:
            front = replace(front, envelope=None)
        sessions = {role: folder.session(role, providers=providers, threads=threads) if generator else None
                    for role in ("encoder", "upsampler")}
        return cls(folder=folder, **sessions, front=front, chunking=chunking, envelope=env_session)

    @property
    def sample_rate(self) -> int:
        return self.front.sample_rate

    @property
    def hop(self) -> int:
        return self.front.mel.hop_length

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """``mel: [n_mels, F]`` -> the encoder graph's ``latent: float32 [channels, F]``."""
        return self.encoder.run(["latent"], {"mel": mel[None].astype(np.float32)})[0][0]

    def upsample_latent(self, latent: np.ndarray) -> np.ndarray:
        """``latent: [channels, F]`` -> ``float32 [F * hop]``: the upsampler graph in pieces of
        ``upsampler_chunk_frames`` with ``upsampler_context_frames`` each side (the same output as one piece)."""
        n, piece, ctx, hop = latent.shape[1], self.chunking.upsampler_chunk_frames, self.chunking.upsampler_context_frames, self.hop
        if piece <= 0 or n <= piece + 2 * ctx:
            return self.upsampler.run(["audio"], {"latent": latent[None].astype(np.float32)})[0][0]
        out = np.empty(n * hop, dtype=np.float32)
        for s in range(0, n, piece):
            e, lo = min(n, s + piece), max(0, s - ctx)
            hi = min(n, e + ctx)
            y = self.upsampler.run(["audio"], {"latent": np.ascontiguousarray(latent[None, :, lo:hi], dtype=np.float32)})[0][0]
            out[s * hop : e * hop] = y[(s - lo) * hop : (e - lo) * hop]
        return out

    def _run(self, mel: np.ndarray) -> np.ndarray:
        """``mel: [n_mels, F]`` -> ``[F * hop]`` raw generator output (whole, no chunking of the encoder)."""
        return self.upsample_latent(self.encode(mel))

    def band_power(self, mel: np.ndarray) -> np.ndarray:
        """``mel: [n_mels, F]`` -> the envelope graph's ``[n_bands, F]`` log10 band powers."""
        return self.envelope.run(["band_power"], {"mel": mel[None].astype(np.float32)})[0][0]

    def generate(self, wav48: np.ndarray, chunk_frames: int | None = None, h: np.ndarray | None = None) -> np.ndarray:
        """Generator (+ crossover with FIR ``h`` if given) over ``wav48: float32 [T]``, chunked; ``[T]`` out."""
        stream = _ChunkStream(self, chunk_frames, h)
        return np.concatenate([stream.push(wav48), stream.finish()])

    def upsample(self, wav: np.ndarray, sample_rate: int, postprocess: bool = True,
                 chunk_frames: int | None = None, name: str = "audio") -> np.ndarray:
        """``wav: float [T]`` or ``[C, T]`` (C <= 2) at ``sample_rate`` -> float32 48 kHz, same layout."""
        wav = np.asarray(wav)
        if wav.ndim not in (1, 2):
            raise AudioError(f"{name}: expected [samples] or [channels, samples], got shape {wav.shape}")
        channels = wav.reshape(-1, wav.shape[-1])
        check_input(name, sample_rate, channels.shape[0], channels.shape[1], self.front)
        check_audio(channels, sample_rate, name=name, min_seconds=self.front.min_seconds)
        bandwidth = min(detect_bandwidth(channels, sample_rate, drop_db=self.front.bandwidth_drop_db), sample_rate / 2)
        outs = []
        for ch in channels:
            x48 = resample(ch.astype(np.float32), sample_rate, self.sample_rate)
            if bandwidth >= self.front.full_band_hz:
                outs.append(x48.astype(np.float32))
                continue
            outs.append(self.generate(x48, chunk_frames, self._crossover_h(bandwidth, postprocess)))
        out = np.stack(outs)
        return out[0] if wav.ndim == 1 else out

    def _crossover_h(self, bandwidth: float, postprocess: bool) -> np.ndarray | None:
        width = self.front.crossover_width_hz
        return crossover_filter(crossover_cutoff(bandwidth, width), self.sample_rate, width) if postprocess else None

    def upsample_file(self, src: str | Path, dst: str | Path, subtype: str = "PCM_16",
                      postprocess: bool = True, chunk_frames: int | None = None,
                      block_frames: int = STREAM_BLOCK, overwrite: bool = False) -> dict[str, Any]:
        """Stream ``src`` (any rate 4-48 kHz, mono/stereo, any length) to ``dst`` at 48 kHz.

        Same output as ``upsample`` on the whole file, in memory that does not grow with its length.
        ``subtype``: ``PCM_16`` or ``FLOAT`` (WAV/AIFF only); lossy formats (.mp3, .ogg) use their own.
        ``dst`` is checked before any work (:func:`signals.outputs.check_output`; it may be ``src`` only with
        ``overwrite``) and written atomically: an interrupted or failed run leaves an existing ``dst`` as it
        was and no partial file. The result's ``warnings`` say when samples above full scale were clipped.
        """
        import soxr

        from signals.outputs import audio_writer, check_audio_output

        if subtype not in ("PCM_16", "FLOAT"):
            raise ValueError(f"subtype must be PCM_16 or FLOAT, got {subtype!r}")
        float32 = subtype == "FLOAT"
        src, sr_out = Path(src), self.sample_rate
        dst = check_audio_output(dst, sr_out, float32=float32, inputs=[src], overwrite=overwrite)
        warnings: list[str] = []
        with open_audio(src) as fin:
            sr, n_ch, n_in = int(fin.samplerate), int(fin.channels), int(fin.frames)
            check_input(str(src), sr, n_ch, n_in, self.front)
            # The writer opens a temporary file beside dst now, before the input is read: an output folder
            # that refuses files (/proc, a read-only mount) fails at once. It is renamed over dst only when
            # complete (Ctrl-C, SIGTERM, a full disk or an error in either pass leave dst as it was and no
            # partial file); with overwrite, dst may be src, which stays open for reading until then.
            with audio_writer(dst, sr_out, n_ch, float32, inputs=[src], overwrite=overwrite) as fout:
                # pass 1: finite check, peak, running Welch bandwidth over the whole file (block by block)
                est, peak, pos = BandwidthEstimator(sr, n_in, drop_db=self.front.bandwidth_drop_db), 0.0, 0
                try:
                    for block in fin.blocks(blocksize=est.block, dtype="float32", always_2d=True):
                        if not np.all(np.isfinite(block)):
                            bad = int(block.size - np.count_nonzero(np.isfinite(block)))
                            raise AudioError(f"{src} contains {bad} NaN or infinite samples in samples "
                                             f"{pos}-{pos + len(block)}")
                        peak = max(peak, float(np.max(np.abs(block))))
                        est.update(block.mean(axis=1))
                        pos += len(block)
                except AudioError:
                    raise
                except Exception as exc:  # a header that opens but a body that does not decode
                    raise AudioError(f"{src} could not be decoded after sample {pos} ({exc}): the file is "
                                     "damaged or truncated") from exc
                if pos == 0:
                    raise AudioError(f"{src} contains no audio samples")
                if peak < SILENCE_PEAK:
                    raise AudioError(f"{src} is silent (peak below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)")
                if peak > 1.0 and not float32:
                    warnings.append(f"{src} has samples above full scale (peak {peak:.2f}, "
                                    f"{20 * np.log10(peak):+.1f} dBFS); the {dst.suffix} output clips them at 1.0: "
                                    "lower the level or write a .wav with --float")
                bandwidth = min(est.result(), sr / 2)
                passthrough = bandwidth >= self.front.full_band_hz
                h = None if passthrough else self._crossover_h(bandwidth, postprocess)
                # pass 2: stream resample -> generator -> writer, one block at a time
                resamplers = [soxr.ResampleStream(sr, sr_out, 1, dtype="float32", quality="VHQ") if sr != sr_out
                              else None for _ in range(n_ch)]
                gens = [None if passthrough else _ChunkStream(self, chunk_frames, h) for _ in range(n_ch)]
                held: list[list[np.ndarray]] = [[] for _ in range(n_ch)]
                written, clipped = 0, 0
                fin.seek(0)

                def feed(block: np.ndarray | None) -> None:
                    nonlocal written, clipped
                    for c in range(n_ch):
                        last = block is None
                        x = np.zeros(0, np.float32) if last else np.ascontiguousarray(block[:, c])
                        if resamplers[c] is not None:
                            x = resamplers[c].resample_chunk(x, last=last)
                        if gens[c] is not None:
                            x = np.concatenate([gens[c].push(x), gens[c].finish()]) if last else gens[c].push(x)
                        held[c].append(np.asarray(x, dtype=np.float32))
                    ready = [np.concatenate(p) for p in held]
                    k = min(len(r) for r in ready)  # channels advance in step; write what all have
                    if k:
                        out = np.stack([r[:k] for r in ready], axis=1)
                        if not float32:  # integer and lossy formats: clip (counted, so the caller can warn)
                            clipped += int(np.count_nonzero(np.abs(out) > 1.0))
                            out = np.clip(out, -1.0, 1.0)
                        fout.write(out)
                        written += k
                    for c in range(n_ch):
                        held[c] = [ready[c][k:]]

                for block in fin.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                    feed(block)
                feed(None)
        if clipped and peak <= 1.0:  # the generator overshot full scale (input clipping is reported above)
            warnings.append(f"{clipped} output samples above full scale were clipped in {dst}; write a .wav "
                            "with --float to keep them")
        return {"input_rate": sr, "channels": n_ch, "seconds": written / sr_out, "output": str(dst),
                "bandwidth_hz": bandwidth, "peak": peak, "clipped_samples": clipped, "warnings": warnings}


def load(model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
         threads: int | None = None, frame_comb_radius: int | None = None,
         generated_gain_db: float | None = None, envelope: bool = True) -> SRRuntime:
    return SRRuntime.load(model_dir, providers=providers, threads=threads, frame_comb_radius=frame_comb_radius,
                          generated_gain_db=generated_gain_db, envelope=envelope)
