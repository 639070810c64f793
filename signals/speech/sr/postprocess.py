"""Keep the input's own band: detect its effective bandwidth, crossover input (below) / generated (above).

Numpy + scipy only (runtime side). The crossover is a linear-phase Kaiser FIR low-pass ``h``:
``out = gen + h * (inp - gen)`` = ``h * inp + (delta - h) * gen``, i.e. complementary low/high
filters that sum to exactly one, so nothing is lost or doubled in the transition band.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal as sps

from signals.speech.features import SR_MEL, periodic_hann, stft

# The input counts as present up to the highest frequency whose smoothed power is within this many dB
# of the spectrum's speech-band level (resampler stop bands sit 60+ dB down; speech 8-20 kHz is ~30-50).
BANDWIDTH_DROP_DB = 60.0
CROSSOVER_WIDTH_HZ = 500.0
CROSSOVER_ATTEN_DB = 60.0


class BandwidthEstimator:
    """Running Welch estimate of the effective bandwidth, fed block by block (flat memory).

    ``update(block)`` takes consecutive ``float [T]`` blocks of the (channel-mixed) signal; feed blocks of
    ``block_seconds`` (the last may be shorter) to get exactly :func:`detect_bandwidth`'s answer.
    """

    def __init__(self, sr: int, n_samples: int, block_seconds: float = 30.0, drop_db: float = BANDWIDTH_DROP_DB):
        self.sr, self.drop_db = sr, drop_db
        self.nper = 2048 if n_samples >= 2048 else max(16, 1 << int(np.log2(max(n_samples, 16))))
        self.block = max(int(block_seconds * sr), self.nper)
        self.acc: np.ndarray | None = None
        self.f: np.ndarray | None = None
        self.count = 0

    def update(self, seg: np.ndarray) -> None:
        seg = np.asarray(seg, dtype=np.float32)
        if len(seg) < self.nper:
            if self.count:
                return  # a short last block adds too little to matter (and Welch needs one segment)
            seg = np.pad(seg, (0, self.nper - len(seg)))
        self.f, p = sps.welch(seg, fs=self.sr, nperseg=self.nper, noverlap=self.nper // 2)
        self.acc = p if self.acc is None else self.acc + p
        self.count += 1

    def result(self) -> float:
        if self.acc is None or self.f is None:
            return float(self.sr / 2)
        f, psd = self.f, self.acc / self.count
        smooth = max(1, int(round(200.0 / (self.sr / self.nper))))
        psd_s = np.convolve(psd, np.ones(smooth) / smooth, mode="same")
        db = 10 * np.log10(psd_s + 1e-20)
        ref = np.percentile(db[f <= min(4000.0, self.sr / 2)], 95)
        above = np.nonzero(db >= ref - self.drop_db)[0]
        if above.size == 0:
            return float(self.sr / 2)
        return float(min(f[above[-1]], self.sr / 2))


def detect_bandwidth(wav: np.ndarray, sr: int, block_seconds: float = 30.0,
                     drop_db: float = BANDWIDTH_DROP_DB) -> float:
    """Effective bandwidth (Hz) of ``wav: [T]`` or ``[C, T]`` at ``sr``, at most ``sr / 2``.

    Welch power spectrum (n_fft 2048) accumulated over ``block_seconds`` blocks, smoothed over
    ~200 Hz; the bandwidth is the highest frequency still within ``drop_db`` of the
    95th-percentile level of the 0-4 kHz band. See :class:`BandwidthEstimator` for streams.
    """
    x = np.asarray(wav, dtype=np.float32)
    x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    est = BandwidthEstimator(sr, len(x), block_seconds, drop_db)
    for s in range(0, len(x), est.block):
        est.update(x[s : s + est.block])
    return est.result()


def crossover_filter(cutoff_hz: float, sr: int = SR_MEL.sample_rate, width_hz: float = CROSSOVER_WIDTH_HZ) -> np.ndarray:
    """Linear-phase low-pass FIR (odd length) with its transition band centred on ``cutoff_hz``."""
    numtaps, beta = sps.kaiserord(CROSSOVER_ATTEN_DB, width_hz / (sr / 2))
    numtaps |= 1  # odd: integer group delay, exact 'same' alignment
    return sps.firwin(numtaps, cutoff_hz, window=("kaiser", beta), fs=sr).astype(np.float64)


def crossover_cutoff(bandwidth_hz: float, width_hz: float = CROSSOVER_WIDTH_HZ) -> float:
    """Centre of the crossover: the transition band ends just below the input's band edge."""
    return max(bandwidth_hz - 0.6 * width_hz - 0.02 * bandwidth_hz, width_hz)


def remove_frame_periodic(gen: np.ndarray, hop: int, radius: int) -> np.ndarray:
    """Subtract the part of ``gen: float [T]`` that repeats every ``hop`` samples: per phase of the frame grid
    (sample 0 is a frame boundary), the mean over the ``2 radius + 1`` surrounding frames (fewer at the
    ends). Returns float32 ``[T]``.

    Why: a HiFi-GAN upsampler fed one mel vector per ``hop`` samples leaves a frame-locked pattern in its
    output, steady lines at multiples of ``rate / hop`` (187.5 Hz at 48 kHz / 256) that the crossover keeps
    wherever the band is generated. Speech is not locked to the frame grid, so its frames average out
    (random phases: ~1 / (2 radius + 1) of its power is removed) while the pattern, steady over the window,
    is removed whole. Frames within ``radius`` of a chunk's kept region are all it reads, so chunked output
    equals whole-file output when ``radius`` is at most the chunk context.
    """
    gen = np.asarray(gen, dtype=np.float32)
    n = len(gen) // hop
    if radius <= 0 or n == 0:
        return gen
    frames = gen[: n * hop].reshape(n, hop).astype(np.float64)
    cum = np.concatenate([np.zeros((1, hop)), np.cumsum(frames, axis=0)])
    i = np.arange(n)
    lo, hi = np.maximum(0, i - radius), np.minimum(n, i + radius + 1)
    out = gen.astype(np.float64)
    out[: n * hop] -= ((cum[hi] - cum[lo]) / (hi - lo)[:, None]).reshape(-1)
    return out.astype(np.float32)


def edge_fade(gen: np.ndarray, start: int, total: int | None, length: int) -> np.ndarray:
    """``gen: [T]`` holding samples ``start ... start + T`` of a signal of ``total`` samples (None: its end is
    not known yet), with a raised-cosine fade over the signal's first and last ``length`` samples. float32."""
    gen = np.asarray(gen, dtype=np.float32)
    if length <= 0:
        return gen
    out = gen.copy()
    n = len(out)
    # weights only where they are not 1 (a chunk holds ~350 k samples; the fades, a few hundred)
    spans = [(0, min(n, length - start))]
    if total is not None:
        spans.append((max(0, total - length - start), n))
    for a, b in spans:
        if a < b:
            idx = np.arange(start + a, start + b, dtype=np.float64)
            dist = idx if total is None else np.minimum(idx, total - 1 - idx)
            w = np.where(dist < length, 0.5 - 0.5 * np.cos(np.pi * np.clip(dist, 0, None) / length), 1.0)
            out[a:b] = gen[a:b] * w  # from gen: overlapping spans (a short signal) weigh once, as min(dist) says
    return out


def crossover(inp: np.ndarray, gen: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``inp`` below the filter's cutoff, ``gen`` above it. ``inp, gen: [T]`` at the same rate."""
    diff = np.asarray(inp, dtype=np.float64) - np.asarray(gen, dtype=np.float64)
    low = sps.oaconvolve(diff, h, mode="same")
    return (np.asarray(gen, dtype=np.float64) + low).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# the learned envelope of the generated band (EnvelopeConfig, model.EnvelopeNet)


def band_edges(cfg) -> np.ndarray:
    """``[n_bands + 1]`` band edges in Hz (``cfg``: :class:`signals.speech.sr.config.EnvelopeConfig`)."""
    return np.arange(cfg.n_bands + 1) * cfg.band_hz


def _centres(cfg) -> np.ndarray:
    edges = band_edges(cfg)
    return (edges[:-1] + edges[1:]) / 2


@lru_cache(maxsize=8)
def _band_mean_matrix(cfg, sr: int) -> np.ndarray:
    """``[bins, n_bands]``: ``power @ it`` is the mean power of each band's bins (built once per config: the
    runtime calls it per chunk)."""
    freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / sr)
    idx = np.clip((freqs // cfg.band_hz).astype(int), 0, cfg.n_bands - 1)
    onehot = np.eye(cfg.n_bands)[idx]
    return onehot / onehot.sum(axis=0)


def _bands(power: np.ndarray, cfg, sr: int) -> np.ndarray:
    """``power: [F, bins]`` -> log10 band means ``[F, n_bands]`` (floored)."""
    return np.log10(np.maximum(power @ _band_mean_matrix(cfg, sr), 10.0**cfg.log_floor))


def band_log_power(x: np.ndarray, cfg, sr: int = SR_MEL.sample_rate) -> np.ndarray:
    """``x: float [T]`` -> ``float32 [n_bands, frames]``: log10 of the mean STFT power per band (Hann n_fft,
    hop, centred frames like the mel's), floored at ``cfg.log_floor``."""
    power = np.abs(stft(x, cfg.n_fft, cfg.hop, dtype=np.float64)) ** 2  # [F, bins]
    return _bands(power, cfg, sr).T.astype(np.float32)


@lru_cache(maxsize=8)
def _gain_interp(cfg, sr: int) -> np.ndarray:
    """``[n_bands, bins]``: per-bin gain = linear interpolation between band centres (flat beyond the ends),
    so the rescaling has no steps at band edges."""
    freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / sr)
    return np.stack([np.interp(freqs, _centres(cfg), np.eye(cfg.n_bands)[b]) for b in range(cfg.n_bands)])


def apply_envelope(gen: np.ndarray, target: np.ndarray, cfg, sr: int = SR_MEL.sample_rate) -> np.ndarray:
    """Rescale ``gen: float [T]`` so each band of each STFT frame has the power ``target: [n_bands, F']``
    (log10, :func:`band_log_power`'s units; frame ``i`` centred on sample ``i * hop``, like the mel's frames;
    missing frames repeat the last). Bands centred above ``cfg.max_hz`` get the floor (silenced); the gain
    per band and frame is clipped to +-``cfg.max_gain_db``. Weighted overlap-add resynthesis; float32 ``[T]``.
    """
    gen = np.asarray(gen, dtype=np.float64)
    n, hop, n_fft = len(gen), cfg.hop, cfg.n_fft
    if n < n_fft // 2 + 1:  # too short to reflect-pad: nothing to rescale
        return gen.astype(np.float32)
    win = periodic_hann(n_fft)
    z = stft(gen, n_fft, hop, win, dtype=np.float64)  # [F, bins]
    frames = z.shape[0]
    t = np.asarray(target, dtype=np.float64).T[:frames]
    if len(t) < frames:
        t = np.concatenate([t, np.repeat(t[-1:], frames - len(t), axis=0)])
    t = t.copy()
    t[:, _centres(cfg) > cfg.max_hz] = cfg.log_floor
    have = _bands(np.abs(z) ** 2, cfg, sr)
    limit = cfg.max_gain_db / 20.0
    gain = np.clip(0.5 * (t - have), -limit, limit) @ _gain_interp(cfg, sr)  # log10 amplitude, [F, bins]
    frames_out = np.fft.irfft(z * 10.0**gain, n=n_fft, axis=-1) * win
    total = (frames - 1) * hop + n_fft
    out, norm = np.zeros(total), np.zeros(total)
    stride = n_fft // hop  # frames k, k + stride, ... tile the signal without overlapping: add them as one block
    for k in range(stride):
        sel = frames_out[k::stride]
        start = k * hop
        out[start : start + sel.size] += sel.reshape(-1)
        norm[start : start + sel.size] += np.tile(win**2, len(sel))
    pad = n_fft // 2
    return (out[pad : pad + n] / np.maximum(norm[pad : pad + n], 1e-8)).astype(np.float32)
