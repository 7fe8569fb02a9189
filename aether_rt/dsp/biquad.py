"""Peaking biquad design and cascade response: one definition for NumPy and JAX.

Everything that turns ``(freq_hz, q, gain_db)`` into filter coefficients, or
coefficients into a magnitude response, goes through this module: the training loss
(JAX, differentiable), the control thread (JAX, jitted), the bank's tests and the
plots (NumPy). The functions are array-module generic: they compute with
``jax.numpy`` when any argument is a JAX array (or tracer) and with NumPy otherwise.

Coefficients are ``[..., 5]`` arrays ``(b0, b1, b2, a1, a2)`` normalised so that
``a0 = 1``, for ``y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2]``.

Design domain (the guards). The RBJ Audio-EQ-Cookbook peaking section is

    A = 10^(gain_db/40),  w0 = 2 pi freq_hz / fs,  alpha = sin(w0) / (2 Q)
    b = (1 + alpha A, -2 cos w0, 1 - alpha A) / a0,  a = (1, -2 cos w0, 1 - alpha/A) / a0,
    a0 = 1 + alpha/A.

Its poles depend only on ``w0`` and the damping ``x = alpha / A``. A fixed Q range does
not keep them off the unit circle: a +20 dB boost at low frequency sharpens the poles
by the factor A, and a very broad cut (small Q times small A) pushes a real pole
towards z = +1 or -1. So, besides clamping the user-facing values (frequency to
[``freq_limits_hz``], Q to [``Q_MIN``, ``Q_MAX``], gain to +-``GAIN_MAX_DB``), the design
clamps ``x`` to the interval in which every pole has radius <= ``POLE_RADIUS_MAX``.
That keeps the centre frequency and the peak gain exact and only limits the bandwidth
of extreme sections. The interval is non-empty only when ``w0 >= 2 (1 - R)``, which is
where the rate-dependent low-frequency floor comes from (10 Hz at 48 kHz, 36.7 Hz at
192 kHz).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

#: Number of coefficients per section: (b0, b1, b2, a1, a2).
N_COEFFS = 5
#: Lowest centre frequency at ordinary sample rates.
FREQ_MIN_HZ = 10.0
#: Highest centre frequency as a fraction of the sample rate (0.49 fs, below Nyquist).
FREQ_MAX_FRACTION = 0.49
#: Q range; the seed's decoder emits Q = softplus + 0.1, so 0.1 is its floor.
Q_MIN = 0.1
Q_MAX = 40.0
#: Largest boost or cut a section may apply.
GAIN_MAX_DB = 24.0
#: Every designed pole lies within this radius (tests check < 0.9995).
POLE_RADIUS_MAX = 0.9994

# Below this normalised frequency no damping keeps both poles within the radius.
_W0_MIN = 2.0 * (1.0 - POLE_RADIUS_MAX)
# Smallest damping: complex poles have |p|^2 = a2 = (1 - x) / (1 + x).
_X_MIN = (1.0 - POLE_RADIUS_MAX**2) / (1.0 + POLE_RADIUS_MAX**2)
# Values substituted for non-finite parameters in traced (JAX) code, where raising is
# impossible: a flat section at 1 kHz.
_SAFE_FREQ_HZ, _SAFE_Q, _SAFE_GAIN_DB = 1000.0, 0.7071, 0.0


class PeakingParams(NamedTuple):
    """Guarded design parameters of peaking sections, all of the same shape.

    Attributes:
        w0: centre frequency in radians per sample.
        damping: ``x = alpha / A``, the pole damping after the radius guard.
        amp: ``A = 10^(gain_db / 40)``, the square root of the linear peak gain.

    """

    w0: Any
    damping: Any
    amp: Any


def array_namespace(*arrays: Any) -> Any:
    """Return ``jax.numpy`` if any argument is a JAX array or tracer, else NumPy."""
    for a in arrays:
        if type(a).__module__.startswith(("jax", "jaxlib")):
            import jax.numpy as jnp

            return jnp
    return np


def freq_limits_hz(sample_rate: float) -> tuple[float, float]:
    """Return the ``(lowest, highest)`` centre frequency in Hz allowed at a sample rate."""
    fs = _check_sample_rate(sample_rate)
    low = max(FREQ_MIN_HZ, _W0_MIN * fs / (2.0 * math.pi))
    return low, FREQ_MAX_FRACTION * fs


def peaking_params(freq_hz: Any, q: Any, gain_db: Any, sample_rate: float) -> PeakingParams:
    """Clamp user or decoder values into the design domain (see the module docstring).

    Args:
        freq_hz: centre frequencies in Hz, any shape broadcastable with ``q``, ``gain_db``.
        q: quality factors.
        gain_db: peak gains in dB.
        sample_rate: sample rate in Hz (a Python number, not traced).

    Returns:
        The guarded :class:`PeakingParams`, broadcast to a common shape.

    Raises:
        ValueError: for NumPy inputs that are not finite, or a bad sample rate. JAX
            inputs cannot raise inside a trace; their non-finite values are replaced by
            a flat 1 kHz section instead.

    """
    xp = array_namespace(freq_hz, q, gain_db)
    lo_hz, hi_hz = freq_limits_hz(sample_rate)
    fs = float(sample_rate)
    if xp is np:
        freq_hz = _finite_array("freq_hz", freq_hz)
        q = _finite_array("q", q)
        gain_db = _finite_array("gain_db", gain_db)
    else:
        freq_hz = xp.where(xp.isfinite(freq_hz), freq_hz, _SAFE_FREQ_HZ)
        q = xp.where(xp.isfinite(q), q, _SAFE_Q)
        gain_db = xp.where(xp.isfinite(gain_db), gain_db, _SAFE_GAIN_DB)
    w0 = (2.0 * math.pi / fs) * xp.clip(freq_hz, lo_hz, hi_hz)
    q = xp.clip(q, Q_MIN, Q_MAX)
    amp = 10.0 ** (xp.clip(gain_db, -GAIN_MAX_DB, GAIN_MAX_DB) / 40.0)
    sin_w0 = xp.sin(w0)
    damping = xp.clip(sin_w0 / (2.0 * q * amp), _X_MIN, _damping_max(xp, w0, sin_w0))
    w0, damping, amp = xp.broadcast_arrays(w0, damping, amp)
    return PeakingParams(w0, damping, amp)


def peaking_coeffs(freq_hz: Any, q: Any, gain_db: Any, sample_rate: float) -> Any:
    """Design RBJ peaking sections inside the guarded domain.

    Args:
        freq_hz: centre frequencies in Hz, shape ``[..., n_filters]`` (broadcastable).
        q: quality factors, same or broadcastable shape.
        gain_db: peak gains in dB, same or broadcastable shape.
        sample_rate: sample rate in Hz.

    Returns:
        Coefficients ``[..., n_filters, 5]`` = (b0, b1, b2, a1, a2), float64 for NumPy
        input, the input's float dtype for JAX.

    """
    return coeffs_from_params(peaking_params(freq_hz, q, gain_db, sample_rate))


def coeffs_from_params(params: PeakingParams) -> Any:
    """Turn guarded :class:`PeakingParams` into ``[..., 5]`` normalised coefficients."""
    xp = array_namespace(*params)
    w0, x, amp = params
    inv_a0 = 1.0 / (1.0 + x)
    y = x * amp * amp  # alpha * A, the numerator's damping
    a1 = -2.0 * xp.cos(w0) * inv_a0
    return xp.stack([(1.0 + y) * inv_a0, a1, (1.0 - y) * inv_a0, a1, (1.0 - x) * inv_a0], axis=-1)


def peaking_response_db(params: PeakingParams, freqs_hz: Any, sample_rate: float) -> Any:
    """Magnitude response in dB of peaking sections, in closed form.

    Uses ``|H|^2 = (D^2 + (x A^2)^2 S) / (D^2 + x^2 S)`` with
    ``D = sin^2(w0/2) - sin^2(w/2)`` and ``S = sin^2(w) / 4``: algebraically the same as
    the response of :func:`coeffs_from_params`, but free of the cancellation that
    ``b0 + b1 + b2`` suffers in float32 at low frequencies (``D`` is a difference of two
    small, accurately computed numbers). The per-bin terms are float64 constants, so
    the per-(section, bin) work is a few multiply-adds and one logarithm, with no
    trigonometry: the training loss's hot path. Differentiable in JAX.

    Args:
        params: guarded parameters, each ``[..., n_filters]``.
        freqs_hz: evaluation frequencies ``[n_freqs]`` in Hz.
        sample_rate: sample rate in Hz.

    Returns:
        Per-section responses ``[..., n_filters, n_freqs]`` in dB.

    """
    xp = array_namespace(*params)
    w = _omega(freqs_hz, sample_rate)
    phi = np.sin(0.5 * w) ** 2  # per-bin constants in float64
    s = np.sin(w) ** 2 / 4.0
    if xp is not np:
        phi, s = xp.asarray(phi, dtype=params.w0.dtype), xp.asarray(s, dtype=params.w0.dtype)
    psi = xp.sin(0.5 * params.w0)[..., None] ** 2
    x = params.damping[..., None]
    y = x * params.amp[..., None] ** 2
    d2 = (psi - phi) ** 2
    return 10.0 * xp.log10((d2 + y * y * s) / (d2 + x * x * s))


def cascade_response(coeffs: Any, freqs_hz: Any, sample_rate: float) -> Any:
    """Complex frequency response of a cascade of sections.

    Args:
        coeffs: ``[..., n_sections, 5]`` coefficients.
        freqs_hz: evaluation frequencies ``[n_freqs]`` in Hz.
        sample_rate: sample rate in Hz.

    Returns:
        ``H(e^{jw})`` of the whole cascade, complex ``[..., n_freqs]``.

    """
    xp = array_namespace(coeffs)
    coeffs = _check_coeffs(coeffs, xp)
    w = _omega(freqs_hz, sample_rate)
    z1 = np.exp(-1j * w)  # z^-1 on the unit circle, float64 constants
    z2 = z1 * z1
    if xp is not np:
        z1, z2 = xp.asarray(z1), xp.asarray(z2)
    c = coeffs[..., None, :]  # [..., n_sections, 1, 5] against [n_freqs]
    num = c[..., 0] + c[..., 1] * z1 + c[..., 2] * z2
    den = 1.0 + c[..., 3] * z1 + c[..., 4] * z2
    return xp.prod(num / den, axis=-2)


def cascade_response_db(coeffs: Any, freqs_hz: Any, sample_rate: float) -> Any:
    """Magnitude response in dB of a cascade of arbitrary sections.

    Uses the cookbook's real-valued form in ``phi = sin^2(w/2)`` (differentiable, no
    complex arithmetic), summed over the section axis.

    Args:
        coeffs: ``[..., n_sections, 5]`` coefficients.
        freqs_hz: evaluation frequencies ``[n_freqs]`` in Hz.
        sample_rate: sample rate in Hz.

    Returns:
        ``20 log10 |H|`` of the cascade, ``[..., n_freqs]``.

    """
    return section_response_db(coeffs, freqs_hz, sample_rate).sum(axis=-2)


def section_response_db(coeffs: Any, freqs_hz: Any, sample_rate: float) -> Any:
    """Per-section magnitude responses in dB, ``[..., n_sections, n_freqs]``.

    See :func:`cascade_response_db`; this keeps the sections apart (for plots of the
    individual filters).
    """
    xp = array_namespace(coeffs)
    coeffs = _check_coeffs(coeffs, xp)
    phi = np.sin(0.5 * _omega(freqs_hz, sample_rate)) ** 2
    if xp is not np:
        phi = xp.asarray(phi, dtype=coeffs.dtype)
    c = coeffs[..., None, :]
    b0, b1, b2, a1, a2 = (c[..., i] for i in range(N_COEFFS))
    num = (b0 + b1 + b2) ** 2 - 4.0 * (b0 * b1 + 4.0 * b0 * b2 + b1 * b2) * phi
    num = num + 16.0 * b0 * b2 * phi * phi
    den = (1.0 + a1 + a2) ** 2 - 4.0 * (a1 + 4.0 * a2 + a1 * a2) * phi + 16.0 * a2 * phi * phi
    tiny = 1e-30  # rounding can take a squared magnitude a hair below zero at a notch
    return 10.0 * xp.log10(xp.maximum(num, tiny) / xp.maximum(den, tiny))


def pole_radius(coeffs: Any) -> Any:
    """Largest pole magnitude of each section, ``[..., n_sections]``."""
    xp = array_namespace(coeffs)
    a1, a2 = coeffs[..., 3], coeffs[..., 4]
    disc = a1 * a1 - 4.0 * a2
    root = xp.sqrt(xp.maximum(disc, 0.0))
    real_r = 0.5 * (xp.abs(a1) + root)
    return xp.where(disc < 0.0, xp.sqrt(xp.abs(a2)), real_r)


def is_stable(coeffs: Any) -> Any:
    """Whether each section's (a1, a2) lies strictly inside the stability triangle."""
    xp = array_namespace(coeffs)
    a1, a2 = coeffs[..., 3], coeffs[..., 4]
    return (xp.abs(a2) < 1.0) & (xp.abs(a1) < 1.0 + a2)


def identity_coeffs(n_sections: int) -> np.ndarray:
    """Coefficients of ``n_sections`` pass-through sections, ``[n_sections, 5]``."""
    c = np.zeros((n_sections, N_COEFFS))
    c[:, 0] = 1.0
    return c


def to_sos(coeffs: Any) -> np.ndarray:
    """Convert ``[n_sections, 5]`` coefficients to SciPy's ``[n_sections, 6]`` sos layout."""
    c = np.asarray(coeffs, dtype=np.float64)
    ones = np.ones(c.shape[:-1] + (1,))
    return np.concatenate([c[..., :3], ones, c[..., 3:]], axis=-1)


def _damping_max(xp: Any, w0: Any, sin_w0: Any) -> Any:
    """Largest damping whose real poles stay within ``POLE_RADIUS_MAX``.

    With real poles (x >= sin w0) the largest magnitude is
    ``(|cos w0| + sqrt(x^2 - sin^2 w0)) / (1 + x)``, which grows towards 1 as x grows.
    Setting it equal to R gives a quadratic in x; this is its positive root.
    """
    r = POLE_RADIUS_MAX
    d = r - xp.abs(xp.cos(w0))
    disc = r * r * d * d + (1.0 - r * r) * (d * d + sin_w0 * sin_w0)
    return (r * d + xp.sqrt(disc)) / (1.0 - r * r)


def _omega(freqs_hz: Any, sample_rate: float) -> np.ndarray:
    """Evaluation frequencies in radians per sample, float64, validated."""
    fs = _check_sample_rate(sample_rate)
    f = np.asarray(freqs_hz, dtype=np.float64)
    if f.ndim != 1:
        raise ValueError(f"freqs_hz must be a 1-D array of frequencies, got shape {f.shape}")
    if not np.all(np.isfinite(f)) or np.any(f < 0.0):
        raise ValueError(f"freqs_hz must be finite and >= 0 Hz, got {_first_bad(f, ~(f >= 0))}")
    return 2.0 * np.pi * f / fs


def _check_sample_rate(sample_rate: Any) -> float:
    try:
        fs = float(sample_rate)
    except (TypeError, ValueError):
        raise ValueError(f"sample_rate must be a number in Hz, got {sample_rate!r}") from None
    if not math.isfinite(fs) or fs <= 0.0:
        raise ValueError(f"sample_rate must be a finite number of Hz > 0, got {sample_rate!r}")
    return fs


def _check_coeffs(coeffs: Any, xp: Any) -> Any:
    if coeffs.ndim < 2 or coeffs.shape[-1] != N_COEFFS:
        raise ValueError(f"coeffs must have shape [..., n_sections, {N_COEFFS}], got {tuple(coeffs.shape)}")
    if xp is np:
        coeffs = np.asarray(coeffs, dtype=np.float64)
        if not np.all(np.isfinite(coeffs)):
            raise ValueError(f"coeffs must be finite, got {_first_bad(coeffs, ~np.isfinite(coeffs))}")
    return coeffs


def _finite_array(name: str, value: Any) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {value!r}") from None
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {_first_bad(a, ~np.isfinite(a))}")
    return a


def _first_bad(a: np.ndarray, bad: np.ndarray) -> str:
    """Name the first offending value of an array for an error message."""
    idx = np.unravel_index(int(np.argmax(bad)), a.shape)
    return f"{float(a[idx])!r} at index {tuple(int(i) for i in idx)}"
