"""The demonstration render: the demo phrase through a moving 32-filter bank.

Until the trained model drives the filters, this shows the real-time DSP path at work:
32 peaking filters, spread log-uniformly from 120 Hz to 9 kHz, orbit their resting
frequencies at 0.3 Hz with phases spread around the circle (a phaser-like motion);
a control step every ``control_rate_hz`` designs the table for the upcoming sample time
and publishes it; the bank ramps to it per frame while processing fixed-size blocks.
The sample clock, not wall time, drives everything, so the render is deterministic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from aether_rt.dsp.bank import BankStats, BiquadBank
from aether_rt.dsp.biquad import peaking_coeffs

N_FILTERS = 32


@dataclass(frozen=True)
class DemoResult:
    """Outcome of :func:`render_demo`.

    Attributes:
        audio: the processed phrase, ``[frames]`` float32.
        sample_rate_hz: its sample rate.
        elapsed_s: wall time spent processing (control steps included).
        stats: the bank's counters after the render.

    """

    audio: np.ndarray
    sample_rate_hz: float
    elapsed_s: float
    stats: BankStats

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio rendered per second of wall time."""
        return self.audio.shape[0] / self.sample_rate_hz / max(self.elapsed_s, 1e-9)


def demo_table(t_s: float, sample_rate_hz: float) -> np.ndarray:
    """The demo's 32 filters at time ``t_s``: ``[32, 5]`` coefficients."""
    k = np.arange(N_FILTERS)
    rest_hz = 120.0 * (9000.0 / 120.0) ** (k / (N_FILTERS - 1))
    phase = 2.0 * math.pi * (0.3 * t_s + 3.0 * k / N_FILTERS)
    freq_hz = rest_hz * 2.0 ** (0.4 * np.sin(phase))
    gain_db = np.where(k % 2 == 0, 7.0, -5.0) * (0.6 + 0.4 * np.cos(2.0 * math.pi * 0.05 * t_s))
    return peaking_coeffs(freq_hz, 3.0, gain_db, sample_rate_hz)


def render_demo(
    source: np.ndarray,
    sample_rate_hz: float,
    *,
    blocksize: int = 64,
    control_rate_hz: float = 500.0,
) -> DemoResult:
    """Run ``source`` ([frames] float32) through the moving bank, block by block."""
    if not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"blocksize must be an integer >= 1, got {blocksize!r}")
    if not control_rate_hz > 0:
        raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz!r}")
    x = np.ascontiguousarray(source, dtype=np.float32)
    bank = BiquadBank(N_FILTERS, 1, max_frames=max(blocksize, 64), coeffs=demo_table(0.0, sample_rate_hz))
    out = np.empty_like(x)
    control_frames = max(1, int(round(sample_rate_hz / control_rate_hz)))
    next_control = control_frames
    t0 = time.perf_counter()
    for start in range(0, x.shape[0], blocksize):
        if start >= next_control:  # a control step for the upcoming block
            bank.publish(demo_table(start / sample_rate_hz, sample_rate_hz))
            next_control += control_frames * (1 + (start - next_control) // control_frames)
        bank.process(x[start : start + blocksize], out[start : start + blocksize])
    elapsed = time.perf_counter() - t0
    return DemoResult(out, sample_rate_hz, elapsed, bank.stats())
