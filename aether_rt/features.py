"""The 513-bin feature of an impulse response: its smoothed spectral colouration in dB.

The VAE encodes this feature and is trained to reproduce it with 32 peaking filters.
One definition, used by training, evaluation, ``encode`` and presets that centre on an
IR. The exact steps (parameters in :class:`FeatureSpec`, stored in every checkpoint):

1. Mix to mono (channel mean), resample to ``sample_rate_hz`` (48 kHz: the rate the
   model's normalised frequencies refer to).
2. Trim leading silence (everything before the first sample within -60 dB of the
   peak) and cut at ``max_seconds``.
3. Welch power spectrum: Hann windows of ``n_fft`` = 1024 samples (513 bins, 46.9 Hz
   apart), hop ``n_fft / 2``, averaging ``|rfft|^2``. The IR is preceded by ``n_fft / 2``
   zeros so that the onset sits at the first window's centre (a window starting at the
   onset would taper the direct sound away).
4. Smooth in power over ``smoothing_octaves`` (1/3 octave) around each bin, and over
   at least ``smoothing_min_bins`` (5) bins. The raw Welch dB spectrum carries ~2 dB RMS
   of per-IR fine structure (room modes, comb filtering) that no 32-filter cascade can
   follow: 32 filters across the ~10 audible octaves resolve about a third of an
   octave, which is also the classic perceptual smoothing for tonal balance (measured
   on the synthetic corpus: PCA-4 reaches 0.55 dB at 1/3 octave, 0.67 dB at 1/6).
   Below ~600 Hz such a band is narrower than one 46.9 Hz bin, so without the 5-bin
   floor the low-frequency room modes would stay in the target.
5. dB, normalised by subtracting its mean over ``norm_band_hz`` (200 Hz to 8 kHz), so
   the overall level of an IR does not matter, only its colouration.
6. Floored and clipped to ``clip_db``.

:func:`raw_feature` stops after step 3 (normalised the same way): the unsmoothed
target, for evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from math import gcd
from typing import Any

import numpy as np

N_BINS = 513


@dataclass(frozen=True)
class FeatureSpec:
    """Parameters of the IR feature (see the module docstring)."""

    sample_rate_hz: float = 48_000.0
    n_fft: int = 1024
    max_seconds: float = 2.0
    smoothing_octaves: float = 1.0 / 3.0
    smoothing_min_bins: int = 5
    norm_band_hz: tuple[float, float] = (200.0, 8000.0)
    clip_db: tuple[float, float] = (-40.0, 20.0)

    @property
    def n_bins(self) -> int:
        """Bins of the feature (``n_fft / 2 + 1``)."""
        return self.n_fft // 2 + 1

    def bin_freqs_hz(self) -> np.ndarray:
        """Centre frequency of every bin, float64 ``[n_bins]``."""
        return np.arange(self.n_bins) * (self.sample_rate_hz / self.n_fft)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "norm_band_hz": tuple(data["norm_band_hz"]), "clip_db": tuple(data["clip_db"])})


DEFAULT_SPEC = FeatureSpec()


def prepare_ir(audio: np.ndarray, sample_rate_hz: float, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Steps 1 and 2: mono, resampled to the spec's rate, leading silence trimmed.

    Args:
        audio: ``[frames]`` or ``[frames, channels]``, any float or int dtype.
        sample_rate_hz: its sample rate.
        spec: the feature spec (its rate and length limit).

    Raises:
        ValueError: empty, silent or non-finite audio, or a bad sample rate.

    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"an impulse response must be [frames] or [frames, channels], got shape {np.shape(audio)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the impulse response contains NaN or Inf")
    if not sample_rate_hz > 0:
        raise ValueError(f"sample rate must be > 0 Hz, got {sample_rate_hz!r}")
    peak = np.max(np.abs(x))
    if peak == 0.0:
        raise ValueError("the impulse response is silent")
    x = resample(x, sample_rate_hz, spec.sample_rate_hz)
    onset = int(np.argmax(np.abs(x) >= np.max(np.abs(x)) * 1e-3))
    return x[onset : onset + int(spec.max_seconds * spec.sample_rate_hz)]


def resample(x: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """Polyphase resampling (SciPy's Kaiser-windowed FIR) between integer-ratio rates."""
    if from_hz == to_hz:
        return x
    from scipy.signal import resample_poly

    a, b = round(to_hz), round(from_hz)
    if abs(a - to_hz) > 1e-6 or abs(b - from_hz) > 1e-6:
        raise ValueError(f"can only resample between whole-Hz rates, got {from_hz} -> {to_hz}")
    g = gcd(a, b)
    return resample_poly(x, a // g, b // g)


def welch_power(ir: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Step 3: the Welch power spectrum of a prepared IR, float64 ``[n_bins]``."""
    n, hop = spec.n_fft, spec.n_fft // 2
    x = np.concatenate([np.zeros(hop), ir, np.zeros(hop)])
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    n_frames = 1 + (x.size - n) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop][:n_frames]
    window = np.hanning(n + 1)[:n]  # periodic Hann
    return np.mean(np.abs(np.fft.rfft(frames * window, axis=1)) ** 2, axis=0)


def raw_feature(ir: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """The unsmoothed, normalised Welch dB spectrum of a prepared IR, float32 ``[n_bins]``."""
    return _normalise(_db(welch_power(ir, spec)), spec)


def feature(ir: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """The model's feature of a prepared IR (steps 3-6), float32 ``[n_bins]``."""
    matrix = _smoothing_matrix(spec.n_fft, spec.sample_rate_hz, spec.smoothing_octaves, spec.smoothing_min_bins)
    smoothed = matrix @ welch_power(ir, spec)
    return _normalise(_db(smoothed), spec)


def ir_feature(audio: np.ndarray, sample_rate_hz: float, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """All steps, from raw audio at any rate: ``feature(prepare_ir(audio, rate))``."""
    return feature(prepare_ir(audio, sample_rate_hz, spec), spec)


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-30))


def _normalise(db: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    f = spec.bin_freqs_hz()
    lo, hi = spec.norm_band_hz
    band = (f >= lo) & (f <= hi)
    out = np.clip(db - db[band].mean(), *spec.clip_db)
    return out.astype(np.float32)


@lru_cache(maxsize=8)
def _smoothing_matrix(n_fft: int, sample_rate_hz: float, octaves: float, min_bins: int) -> np.ndarray:
    """Row k averages power within +-octaves/2 of bin k, and over at least ``min_bins`` bins."""
    n_bins = n_fft // 2 + 1
    f = np.arange(n_bins) * (sample_rate_hz / n_fft)
    half = 2.0 ** (octaves / 2.0)
    k = np.arange(n_bins)
    in_band = (f[None, :] >= f[:, None] / half) & (f[None, :] <= f[:, None] * half)
    near = np.abs(k[None, :] - k[:, None]) <= min_bins // 2
    m = (in_band | near).astype(np.float64)
    return m / m.sum(axis=1, keepdims=True)
