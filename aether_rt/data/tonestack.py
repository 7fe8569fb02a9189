"""Guitar amplifiers: the passive bass/mid/treble tone stack and the amp's band limits.

The tone stack of the Fender, Marshall and Mesa families (an RC network with a treble,
a bass and a mid pot) has a closed-form third-order transfer function (D. T. Yeh and
J. O. Smith, "Discretization of the '59 Fender Bassman tone stack", DAFx 2006):

    H(s) = (b1 s + b2 s^2 + b3 s^3) / (1 + a1 s + a2 s^2 + a3 s^3)

with coefficients polynomial in the pot positions ``t`` (treble), ``m`` (mid) and
``l`` (bass) and the component values; :func:`tone_stack_coefficients` writes them
out. The amp around it: coupling capacitors (first-order high-passes), the Miller
capacitance of the gain stages (a low-pass at 6-14 kHz), and the power amp's
presence and resonance controls (negative-feedback shelves near 4 kHz and 100 Hz).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aether_rt.data.filters import analog_sos, butter, chain, impulse, lowpass, peaks, shelf


class ToneStackParts(NamedTuple):
    """Component values of a tone stack: capacitors in farads, resistors (pots) in ohms."""

    c1: float
    c2: float
    c3: float
    r1: float  # treble pot
    r2: float  # bass pot
    r3: float  # mid pot
    r4: float  # slope resistor


#: Component values as published for each amplifier's schematic.
TONE_STACKS: dict[str, ToneStackParts] = {
    "fender_bassman_5f6a": ToneStackParts(250e-12, 20e-9, 20e-9, 250e3, 1e6, 25e3, 56e3),
    "marshall_jcm800": ToneStackParts(470e-12, 22e-9, 22e-9, 220e3, 1e6, 22e3, 33e3),
    "fender_blackface": ToneStackParts(250e-12, 100e-9, 47e-9, 250e3, 250e3, 10e3, 100e3),
    "mesa_dual_rectifier": ToneStackParts(250e-12, 100e-9, 47e-9, 250e3, 1e6, 25e3, 100e3),
    "soldano_slo": ToneStackParts(470e-12, 20e-9, 20e-9, 250e3, 1e6, 25e3, 47e3),
}


def bass_taper(position: float) -> float:
    """The bass pot's audio (log) taper: the fraction of ``r2`` in circuit at a knob ``position`` 0..1."""
    return float(np.exp((position - 1.0) * 3.4))


def tone_stack_coefficients(parts: ToneStackParts, t: float, m: float, l: float) -> tuple[np.ndarray, np.ndarray]:
    """Analog numerator and denominator of the tone stack, highest power of ``s`` first.

    ``t``, ``m`` and ``l`` are the fractions of the treble, mid and bass pots in
    circuit (0..1; see :func:`bass_taper` for the bass knob).
    """
    c1, c2, c3, r1, r2, r3, r4 = parts
    b1 = t * c1 * r1 + m * c3 * r3 + l * (c1 * r2 + c2 * r2) + (c1 * r3 + c2 * r3)
    b2 = (
        t * (c1 * c2 * r1 * r4 + c1 * c3 * r1 * r4)
        - m * m * (c1 * c3 * r3 * r3 + c2 * c3 * r3 * r3)
        + m * (c1 * c3 * r1 * r3 + c1 * c3 * r3 * r3 + c2 * c3 * r3 * r3)
        + l * (c1 * c2 * r1 * r2 + c1 * c2 * r2 * r4 + c1 * c3 * r2 * r4)
        + l * m * (c1 * c3 * r2 * r3 + c2 * c3 * r2 * r3)
        + (c1 * c2 * r1 * r3 + c1 * c2 * r3 * r4 + c1 * c3 * r3 * r4)
    )
    c123 = c1 * c2 * c3
    b3 = c123 * (
        l * m * (r1 * r2 * r3 + r2 * r3 * r4)
        - m * m * (r1 * r3 * r3 + r3 * r3 * r4)
        + m * (r1 * r3 * r3 + r3 * r3 * r4)
        + t * r1 * r3 * r4
        - t * m * r1 * r3 * r4
        + t * l * r1 * r2 * r4
    )
    a1 = (c1 * r1 + c1 * r3 + c2 * r3 + c2 * r4 + c3 * r4) + m * c3 * r3 + l * (c1 * r2 + c2 * r2)
    a2 = (
        m * (c1 * c3 * r1 * r3 - c2 * c3 * r3 * r4 + c1 * c3 * r3 * r3 + c2 * c3 * r3 * r3)
        + l * m * (c1 * c3 * r2 * r3 + c2 * c3 * r2 * r3)
        - m * m * (c1 * c3 * r3 * r3 + c2 * c3 * r3 * r3)
        + l * (c1 * c2 * r2 * r4 + c1 * c2 * r1 * r2 + c1 * c3 * r2 * r4 + c2 * c3 * r2 * r4)
        + (c1 * c2 * r1 * r4 + c1 * c3 * r1 * r4 + c1 * c2 * r3 * r4 + c1 * c2 * r1 * r3 + c1 * c3 * r3 * r4
           + c2 * c3 * r3 * r4)
    )  # fmt: skip
    a3 = c123 * (
        l * m * (r1 * r2 * r3 + r2 * r3 * r4)
        - m * m * (r1 * r3 * r3 + r3 * r3 * r4)
        + m * (r3 * r3 * r4 + r1 * r3 * r3 - r1 * r3 * r4)
        + l * r1 * r2 * r4
        + r1 * r3 * r4
    )
    return np.array([b3, b2, b1, 0.0]), np.array([a3, a2, a1, 1.0])


def tone_stack_sos(parts: ToneStackParts, t: float, m: float, l: float) -> np.ndarray:
    """The tone stack as digital SOS (bilinear, prewarped at 1 kHz)."""
    b, a = tone_stack_coefficients(parts, t, m, l)
    return analog_sos(b, a, 1000.0)


def amplifier(rng: np.random.Generator, length: int = 4096) -> np.ndarray:
    """A guitar amp's preamp, tone stack (random knobs) and power amp, from an impulse."""
    parts = TONE_STACKS[str(rng.choice(list(TONE_STACKS)))]
    # Knobs away from the very ends: a pot at exactly 0 removes a pole-zero pair.
    t, m = rng.uniform(0.05, 1.0, 2)
    l = bass_taper(rng.uniform(0.1, 1.0))
    sections = [
        butter(1, rng.uniform(20, 120), "highpass"),  # coupling capacitors
        butter(1, rng.uniform(40, 160), "highpass"),
        tone_stack_sos(parts, float(t), float(m), l),
        lowpass(rng.uniform(6000, 14000), 0.6),  # Miller capacitance of the gain stages
        shelf("high", rng.uniform(2500, 5000), rng.uniform(0, 6)),  # presence
        peaks([rng.uniform(70, 130)], [rng.uniform(0.7, 1.5)], [rng.uniform(0, 5)]),  # resonance (depth)
    ]
    return chain(impulse(length), sections)
