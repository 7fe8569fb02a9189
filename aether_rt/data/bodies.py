"""Instrument bodies (the IRs acoustic players load to turn a piezo into a body): modal synthesis.

A body's response is a sum of decaying modes. The low ones are named and measured:

* acoustic guitar: the Helmholtz air mode A0 at 90-125 Hz, the top's T(1,1)_2 at
  170-240 Hz and T(1,1)_3 at 330-450 Hz (Fletcher and Rossing, "The Physics of Musical
  Instruments", ch. 9); above ~1 kHz the modes overlap;
* violin: A0 at 270-290 Hz, the corpus modes B1- at 430-480 Hz and B1+ at 520-580 Hz,
  and the "bridge hill", a broad peak at 2-3 kHz (Jansson; Woodhouse, "The acoustics
  of the violin: a review", Rep. Prog. Phys. 2014); viola and cello scale down.

Above the named modes, modes are drawn with a density that grows with frequency and
amplitudes that fall above the body's cut-off; modal Q is 20-60.
"""

from __future__ import annotations

import numpy as np

from aether_rt.data.filters import FS, butter, chain, log_uniform, peaks

_LENGTH = int(0.6 * FS)


def _modes(freq_hz: np.ndarray, amp: np.ndarray, q: np.ndarray) -> np.ndarray:
    """A sum of exponentially decaying sinusoids (two-pole resonators' impulse responses)."""
    t = np.arange(_LENGTH) / FS
    decay = np.pi * freq_hz / q  # 1/tau = pi f / Q
    return np.sum(amp[:, None] * np.exp(-decay[:, None] * t) * np.sin(2 * np.pi * freq_hz[:, None] * t), axis=0)


def instrument_body(rng: np.random.Generator) -> np.ndarray:
    """A random guitar-family or violin-family body."""
    if rng.random() < 0.6:  # acoustic guitar
        named = np.array([rng.uniform(90, 125), rng.uniform(170, 240), rng.uniform(330, 450)])
        named_amp = np.array([rng.uniform(0.6, 1.0), 1.0, rng.uniform(0.4, 0.9)])
        cutoff_hz = rng.uniform(1500, 4000)
        hill = None
    else:  # violin, viola or cello: one scale for the whole body
        scale = float(rng.choice([1.0, 0.85, 0.45]))
        named = scale * np.array([rng.uniform(270, 290), rng.uniform(430, 480), rng.uniform(520, 580)])
        named_amp = np.array([rng.uniform(0.3, 0.7), rng.uniform(0.6, 1.0), 1.0])
        cutoff_hz = scale * rng.uniform(4000, 7000)
        hill = (scale * rng.uniform(2000, 3000), rng.uniform(4, 10))
    n_dense = int(rng.integers(60, 120))
    # Mode density grows with frequency (a plate's grows linearly): log-uniform, skewed up.
    dense = np.exp(np.log(named[-1]) + (np.log(20000.0) - np.log(named[-1])) * rng.random(n_dense) ** 0.7)
    # Above the cut-off the plates radiate less and less: -6 dB/octave in amplitude.
    dense_amp = rng.uniform(0.1, 0.6, n_dense) / np.sqrt(1.0 + (dense / cutoff_hz) ** 2)
    freq = np.concatenate([named, dense])
    amp = np.concatenate([named_amp, dense_amp]) * rng.choice([-1.0, 1.0], freq.size)
    ir = _modes(freq, amp, rng.uniform(20, 60, freq.size))
    sections = [butter(2, rng.uniform(50, 80), "highpass")]
    if hill is not None:
        sections.append(peaks([hill[0]], [rng.uniform(0.7, 1.5)], [hill[1]]))
    sections.append(peaks([float(log_uniform(rng, 800, 5000))], [rng.uniform(0.5, 1.5)], [rng.uniform(-4, 4)]))
    return chain(ir, sections)
