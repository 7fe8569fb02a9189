"""Single-number descriptions of a magnitude response (the latent map's colours).

Both take a response in dB sampled on a **log-spaced** frequency grid, so every point
stands for the same fraction of an octave and the figures do not favour the top octave
(where a linear grid puts most of its points).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _log2_freqs(freqs_hz: Any) -> np.ndarray:
    f = np.asarray(freqs_hz, dtype=np.float64)
    if f.ndim != 1 or f.size < 3 or not np.all(np.isfinite(f)) or np.any(f <= 0) or np.any(np.diff(f) <= 0):
        raise ValueError("freqs_hz must be at least 3 positive, increasing frequencies")
    steps = np.diff(np.log2(f))
    if np.ptp(steps) > 1e-6 * steps.mean():
        raise ValueError("freqs_hz must be log-spaced (np.geomspace)")
    return np.log2(f)


def spectral_centroid_hz(response_db: Any, freqs_hz: Any) -> np.ndarray:
    """Power-weighted centre of the response on a log-frequency axis, in Hz.

    ``2 ** (sum(P * log2 f) / sum(P))`` with ``P = 10 ** (dB / 10)``: a flat response
    gives the geometric middle of the grid; a boost moves it towards the boosted band.

    Args:
        response_db: ``[..., n_freqs]`` magnitude in dB.
        freqs_hz: the log-spaced grid, ``[n_freqs]``.

    Returns:
        ``[...]`` centroids in Hz.

    """
    log_f = _log2_freqs(freqs_hz)
    db = np.asarray(response_db, dtype=np.float64)
    power = 10.0 ** ((db - db.max(axis=-1, keepdims=True)) / 10.0)  # scaled to the peak: no overflow
    return 2.0 ** ((power * log_f).sum(axis=-1) / power.sum(axis=-1))


def spectral_tilt_db_per_octave(response_db: Any, freqs_hz: Any) -> np.ndarray:
    """Least-squares slope of the response against log2 frequency, in dB per octave.

    Positive: brighter (the treble lifted against the bass); negative: darker.

    Args:
        response_db: ``[..., n_freqs]`` magnitude in dB.
        freqs_hz: the log-spaced grid, ``[n_freqs]``.

    Returns:
        ``[...]`` slopes in dB/octave.

    """
    log_f = _log2_freqs(freqs_hz)
    x = log_f - log_f.mean()
    db = np.asarray(response_db, dtype=np.float64)
    return (db * x).sum(axis=-1) / (x * x).sum()


#: The features a latent map can be coloured by: (function, label, colour map).
FEATURES: dict[str, tuple[Any, str, str]] = {
    "centroid": (spectral_centroid_hz, "spectral centroid (Hz, log scale)", "viridis"),
    "tilt": (spectral_tilt_db_per_octave, "tilt (dB/octave)", "coolwarm"),
}
