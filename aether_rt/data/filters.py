"""Building blocks of the synthetic corpus: analog prototypes, shelves, peaks, combs, tails.

Every device model in :mod:`aether_rt.data.transducers`, :mod:`aether_rt.data.tonestack`
and :mod:`aether_rt.data.spaces` is a chain of these, applied to an impulse or to a
noise tail at :data:`FS`. Analog prototypes (``s``-domain polynomials, the form
physical models are published in) are discretised by the bilinear transform, prewarped
at a frequency of the caller's choice.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss

from aether_rt.dsp.biquad import peaking_coeffs, to_sos

FS = 48_000.0
#: Speed of sound in air at 20 °C, m/s.
SPEED_OF_SOUND_M_S = 343.0


def impulse(n: int) -> np.ndarray:
    """A unit impulse of ``n`` samples."""
    x = np.zeros(n)
    x[0] = 1.0
    return x


def analog_sos(b: np.ndarray, a: np.ndarray, prewarp_hz: float | None = None) -> np.ndarray:
    """An analog ``H(s) = b(s) / a(s)`` (highest power first) as digital SOS at :data:`FS`.

    The bilinear transform maps the analog frequency axis onto the digital one with the
    usual warping; ``prewarp_hz`` is the frequency that lands exactly.
    """
    fs = FS if prewarp_hz is None else np.pi * prewarp_hz / np.tan(np.pi * prewarp_hz / FS)
    bz, az = ss.bilinear(np.atleast_1d(b).astype(float), np.atleast_1d(a).astype(float), fs=fs)
    return ss.tf2sos(bz, az)


def highpass(freq_hz: float, q: float = 0.7071) -> np.ndarray:
    """A second-order analog high-pass ``s^2 / (s^2 + w0/Q s + w0^2)`` as SOS.

    The closed-box loudspeaker's low end is exactly this, with ``Q = Qtc`` (Small, 1972).
    """
    w0 = 2.0 * np.pi * freq_hz
    return analog_sos(np.array([1.0, 0.0, 0.0]), np.array([1.0, w0 / q, w0 * w0]), freq_hz)


def lowpass(freq_hz: float, q: float = 0.7071) -> np.ndarray:
    """A second-order analog low-pass ``w0^2 / (s^2 + w0/Q s + w0^2)`` as SOS."""
    w0 = 2.0 * np.pi * freq_hz
    return analog_sos(np.array([w0 * w0]), np.array([1.0, w0 / q, w0 * w0]), freq_hz)


def butter(order: int, freq_hz: float | tuple[float, float], kind: str) -> np.ndarray:
    """A Butterworth filter (``kind``: lowpass, highpass, bandpass) as SOS at :data:`FS`."""
    edges = np.minimum(np.atleast_1d(np.asarray(freq_hz, float)), 0.45 * FS)
    return ss.butter(order, edges if edges.size > 1 else edges[0], kind, fs=FS, output="sos")


def peaks(freq_hz: np.ndarray, q: np.ndarray, gain_db: np.ndarray) -> np.ndarray:
    """Peaking sections (the runtime's own RBJ design) as SOS rows."""
    return to_sos(peaking_coeffs(np.asarray(freq_hz, float), np.asarray(q, float), np.asarray(gain_db, float), FS))


def shelf(kind: str, freq_hz: float, gain_db: float) -> np.ndarray:
    """An RBJ cookbook shelf (``kind`` low or high, slope 1) as one SOS row ``[1, 6]``.

    Gentle device roll-offs are shelves, not Butterworth low-passes: a bilinear low-pass
    puts a zero at Nyquist (infinite attenuation in the top bins) that a full-range
    device does not have.
    """
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / FS
    cos, alpha = np.cos(w0), np.sin(w0) / np.sqrt(2.0)
    root = 2.0 * np.sqrt(a) * alpha
    sign = 1.0 if kind == "low" else -1.0
    b = a * np.array(
        [(a + 1) - sign * (a - 1) * cos + root, sign * 2 * ((a - 1) - sign * (a + 1) * cos),
         (a + 1) - sign * (a - 1) * cos - root]
    )  # fmt: skip
    den = np.array([(a + 1) + sign * (a - 1) * cos + root, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
                    (a + 1) + sign * (a - 1) * cos - root])  # fmt: skip
    return (np.concatenate([b, den]) / den[0])[None]


def chain(x: np.ndarray, sections: list[np.ndarray]) -> np.ndarray:
    """``x`` through every SOS block of ``sections`` in turn."""
    return ss.sosfilt(np.concatenate(sections), x) if sections else x


def comb(x: np.ndarray, delay_s: float, gain: float, lowpass_hz: float | None = None) -> np.ndarray:
    """``x`` plus one delayed (optionally low-passed) copy: a reflection.

    A microphone hearing a source and its reflection off a floor or a cabinet's baffle
    sees this comb filter; the 1/3-octave feature keeps only its lowest notches.
    """
    d = round(delay_s * FS)
    if d <= 0 or d >= x.size:
        return x
    echo = np.zeros_like(x)
    echo[d:] = gain * x[:-d]
    if lowpass_hz is not None:
        echo = ss.sosfilt(butter(1, lowpass_hz, "lowpass"), echo)
    return x + echo


def log_uniform(rng: np.random.Generator, low: float, high: float, size: int | None = None) -> np.ndarray | float:
    """Uniform in log: frequencies and times spread evenly per octave."""
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def decaying_noise(
    rng: np.random.Generator,
    length: int,
    rt60_s: np.ndarray,
    level_db: np.ndarray,
    *,
    onset_s: float = 0.0,
    fade_in_s: float = 0.02,
) -> np.ndarray:
    """A diffuse tail: octave-band noise (62.5 Hz .. 16 kHz) each with its RT60 and level.

    ``rt60_s`` and ``level_db`` have one value per band (9). The tail starts at
    ``onset_s`` and fades in over ``fade_in_s`` (the build-up of echo density).
    """
    t = np.arange(length) / FS
    tail = np.zeros(length)
    for k, centre in enumerate(OCTAVE_CENTRES_HZ):
        # Independent noise per band: the bands then add in power, flat across their
        # crossovers. One noise through all bands adds them coherently, with a notch at
        # every band edge (an octave-spaced ripple no room has).
        noise = rng.standard_normal(length)
        band = ss.sosfilt(butter(2, (centre / np.sqrt(2), min(centre * np.sqrt(2), 0.45 * FS)), "bandpass"), noise)
        tail += band * 10.0 ** (level_db[k] / 20.0) * np.exp(-6.91 * t / rt60_s[k])
    return tail * np.clip((t - onset_s) / max(fade_in_s, 1.0 / FS), 0.0, 1.0)


#: Octave-band centres of :func:`decaying_noise`.
OCTAVE_CENTRES_HZ = 62.5 * 2.0 ** np.arange(9)
