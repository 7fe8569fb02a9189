"""Built-in test signals: a guitar-like demo phrase.

With it the effect can be heard with no files and no sound card.
The phrase is Karplus-Strong plucked strings: a noise burst, shaped by a one-pole
low-pass (pluck brightness), circulating in a delay line of one period whose loop
averages adjacent samples (string damping). Single-note riffs and six-string strums
alternate over an E-minor progression. It is deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Open-string MIDI notes of a guitar in standard tuning, low E first.
_OPEN_STRINGS = np.array([40, 45, 50, 55, 59, 64])
# Chord shapes as frets per string (-1: not played): Em, C, G, D.
_CHORDS = np.array(
    [
        [0, 2, 2, 0, 0, 0],
        [-1, 3, 2, 0, 1, 0],
        [3, 2, 0, 0, 0, 3],
        [-1, -1, 0, 2, 3, 2],
    ]
)
# A riff in E minor pentatonic, as MIDI notes.
_RIFF = np.array([52, 55, 57, 59, 62, 59, 57, 55])


def midi_to_hz(note: float) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


@njit(cache=True)
def _pluck(out, start, period, damping, brightness, excitation):
    """Add one Karplus-Strong note to ``out`` from frame ``start``.

    ``period`` is the delay length in frames, ``damping`` the loop gain per pass,
    ``brightness`` the one-pole coefficient shaping the excitation.
    """
    line = np.empty(period)
    state = 0.0
    for i in range(period):
        state += brightness * (excitation[i] - state)
        line[i] = state
    prev = line[period - 1]
    for n in range(out.shape[0] - start):
        i = n % period
        cur = line[i]
        out[start + n] += cur
        line[i] = damping * 0.5 * (cur + prev)
        prev = cur
        if n > 4 * period and abs(cur) < 1e-5 and abs(prev) < 1e-5:
            break


def demo_phrase(sample_rate_hz: float = 48_000.0, *, seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """A guitar-like phrase of riffs and strums, float32 mono, peak -3 dBFS.

    Args:
        sample_rate_hz: sample rate of the result.
        seconds: length of the phrase.
        seed: seed of the excitation noise and the small timing/velocity variations.

    Returns:
        ``[frames]`` float32.

    """
    if not sample_rate_hz > 0 or not seconds > 0:
        raise ValueError(f"sample_rate_hz and seconds must be > 0, got {sample_rate_hz!r}, {seconds!r}")
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * sample_rate_hz))
    out = np.zeros(frames)
    beat_s = 0.5  # 120 BPM
    t_s, bar = 0.25, 0
    while t_s < seconds - 0.5:
        if bar % 2 == 0:  # a strummed chord, down then up
            shape = _CHORDS[(bar // 2) % len(_CHORDS)]
            for stroke, (direction, velocity) in enumerate(((1, 1.0), (-1, 0.6))):
                strings = range(6) if direction > 0 else range(5, -1, -1)
                onset = t_s + stroke * 2 * beat_s
                for order, s in enumerate(strings):
                    if shape[s] >= 0:
                        _add_note(
                            out,
                            rng,
                            sample_rate_hz,
                            _OPEN_STRINGS[s] + shape[s],
                            onset + order * 0.012,
                            velocity * 0.5,
                        )
            t_s += 4 * beat_s
        else:  # a riff of eighth notes
            for note in _RIFF:
                _add_note(out, rng, sample_rate_hz, note, t_s + rng.normal(0.0, 0.004), 0.9)
                t_s += beat_s / 2
        bar += 1
    peak = float(np.max(np.abs(out))) or 1.0
    return (out * (10 ** (-3 / 20) / peak)).astype(np.float32)


def _add_note(
    out: np.ndarray, rng: np.random.Generator, fs: float, note: float, onset_s: float, velocity: float
) -> None:
    start = int(onset_s * fs)
    if not 0 <= start < out.shape[0]:
        return
    period = max(2, int(round(fs / midi_to_hz(note))))
    brightness = float(np.clip(0.25 + 0.6 * velocity + rng.normal(0.0, 0.05), 0.05, 0.95))
    excitation = rng.uniform(-1.0, 1.0, period) * velocity * rng.uniform(0.8, 1.0)
    _pluck(out, start, period, 0.996, brightness, excitation)
