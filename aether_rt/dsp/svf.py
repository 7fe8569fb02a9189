"""The bank's internal filter form: the trapezoidal state-variable filter (TPT SVF).

Public tables are direct-form biquads ``(b0, b1, b2, a1, a2)``; the bank runs each
section as the equivalent TPT SVF, written as a two-state state-space system

    y      = r0 x + r1 s1 + r2 s2
    s1'    = p11 s1 + p12 s2 + q1 x
    s2'    = p21 s1 + p22 s2 + q2 x

with the nine coefficients ``(p11, p12, p21, p22, q1, q2, r0, r1, r2)`` (the state is
Simper's pair of trapezoidal-integrator states). Why: the state matrix is the Cayley
transform of the analog SVF's dissipative matrix, so its spectral norm is <= 1 for
every stable section; it is affine in the SVF's three coefficients, and the set of
contractions is convex, so the per-frame linear interpolation between two tables is
non-expansive at every frame. The state cannot gain energy however fast the
coefficients move. A direct form has no such property: a +24 dB, Q 40 section
switched between 40 Hz and 2 kHz every 64 frames grows without bound in direct form I
(measured in ``benchmarks/bench_forms.py``).

Conversion (every stable section has one): with ``P = 1 + a1 + a2`` and
``M = 1 - a1 + a2`` (both > 0 inside the stability triangle) the SVF's prewarped
frequency is ``g = sqrt(P / M)``, its damping ``k = 2 (1 - a2) / (M g)``, and its
trapezoidal coefficients reduce to ``A1 = M/4``, ``A2 = sqrt(P M)/4``, ``A3 = P/4``. The
output mix ``(m0, m1, m2)`` of input, band and low outputs follows from the numerator
evaluated at z = -1, z = 1 and through ``b0 - b2``.

The functions use only arithmetic and ``np.sqrt``, so the same definition runs on NumPy
arrays and, compiled by Numba, on scalars inside the audio callback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Coefficients per section in the bank's state-space form.
N_SVF = 9


def df_to_svf(b0: Any, b1: Any, b2: Any, a1: Any, a2: Any) -> tuple[Any, ...]:
    """Direct-form coefficients of stable sections to ``(p11, p12, p21, p22, q1, q2, r0, r1, r2)``.

    Accepts scalars or same-shaped arrays; the caller guarantees stability
    (``|a2| < 1``, ``|a1| < 1 + a2``).
    """
    p = 1.0 + a1 + a2
    m = 1.0 - a1 + a2
    root = np.sqrt(p * m)
    c1, c2, c3 = 0.25 * m, 0.25 * root, 0.25 * p  # Simper's a1, a2, a3
    g = np.sqrt(p / m)
    gk = 2.0 * (1.0 - a2) / m
    mix0 = (b0 - b1 + b2) / m  # input
    mix2 = (b0 + b1 + b2) / p - mix0  # low-pass output
    mix1 = (2.0 * (b0 - b2) / m - mix0 * gk) / g  # band-pass output
    return (
        2.0 * c1 - 1.0,
        -2.0 * c2,
        2.0 * c2,
        1.0 - 2.0 * c3,
        2.0 * c2,
        2.0 * c3,
        mix0 + mix1 * c2 + mix2 * c3,
        mix1 * c1 + mix2 * c2,
        -mix1 * c2 + mix2 * (1.0 - c3),
    )


def svf_table(coeffs: Any) -> np.ndarray:
    """``[..., n, 5]`` direct-form coefficients to the ``[..., n, 9]`` state-space form."""
    c = np.asarray(coeffs, dtype=np.float64)
    return np.stack(df_to_svf(*(c[..., i] for i in range(5))), axis=-1)


def svf_to_df(svf: Any) -> np.ndarray:
    """``[..., n, 9]`` state-space coefficients back to ``[..., n, 5]`` direct form.

    ``H(z) = r0 + r^T (zI - P)^-1 q``: the denominator is ``z^2 - tr(P) z + det(P)``;
    the numerator follows from the adjugate. Used to show the coefficients the bank is
    running (mid-ramp, the direct-form equivalent of the interpolated section).
    """
    s = np.asarray(svf, dtype=np.float64)
    p11, p12, p21, p22, q1, q2, r0, r1, r2 = (s[..., i] for i in range(9))
    trace = p11 + p22
    det = p11 * p22 - p12 * p21
    rq = r1 * q1 + r2 * q2
    cross = r1 * (p12 * q2 - p22 * q1) + r2 * (p21 * q1 - p11 * q2)
    return np.stack([r0, rq - r0 * trace, r0 * det + cross, -trace, det], axis=-1)
