"""Following a MIDI clock: tempo from the pulses' spacing, the LFO phase from their count.

Pure functions over a :class:`ClockState` (a NamedTuple), fed with each pulse's time:

* **tempo**: the least-squares slope of pulse time against pulse number over the last
  ``WINDOW_PULSES`` (two beats), so one late pulse moves the estimate by a fraction of
  its lateness instead of all of it; a gap of several pulse periods (the sender paused)
  starts the estimate afresh.
* **beats**: pulses counted since Start (the first pulse after Start is beat 0, as MIDI
  defines it) or since the clock was joined; Stop freezes the count, Continue resumes it.
* :func:`locked` sets the motion's phase from the beat count (not just its tempo), so
  the LFO cannot drift from the clock however long it runs: with sync, its phase at a
  pulse is the phase it had at beat 0 plus ``beats / beats_per_cycle``.

:class:`TimeMap` maps the port's timestamps onto the audio sample clock (which the
motion runs on): the smallest offset seen recently, i.e. the pulses that waited least
for the MIDI thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import NamedTuple

from aether_rt.modulation import Modulation
from aether_rt.params import TEMPO_RANGE_BPM

PULSES_PER_BEAT = 24
#: Pulses the tempo is estimated over (two beats).
WINDOW_PULSES = 48
#: Pulses needed before a tempo is reported (a sixteenth note).
MIN_PULSES = 6
#: A gap this many pulse periods long means the sender paused: the estimate restarts.
GAP_PERIODS = 4.0
#: Pulses later than this behind the fitted line are left out of the tempo (read late).
OUTLIER_S = 0.0015


class ClockState(NamedTuple):
    """What the pulses so far tell.

    Attributes:
        times_s: the recent pulses' times (at most ``WINDOW_PULSES``), oldest first.
        pulses: pulses counted since beat 0 (Stop freezes the count).
        running: between Start/Continue and Stop (a clock joined while running counts as running).
        downbeat: a Start was received: the next pulse is beat 0.

    """

    times_s: tuple[float, ...] = ()
    pulses: int = -1
    running: bool = True
    downbeat: bool = False


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``(seconds per pulse, intercept)`` of (pulse number, time) points."""
    n = len(points)
    mean_i = sum(i for i, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    num = sum((i - mean_i) * (t - mean_t) for i, t in points)
    den = sum((i - mean_i) ** 2 for i, _ in points)
    slope = num / den if den > 0 else 0.0
    return slope, mean_t - slope * mean_i


def _slope(times: tuple[float, ...]) -> float:
    """Seconds per pulse of equally numbered ``times``: a least-squares line fitted to the punctual pulses.

    A time stamp is never early, only late (the machine stalled the MIDI system for a
    moment; port stamps also move in audio periods): left in, a few late pulses skewed
    the tempo by a BPM or more. So the line is refitted to the pulses no more than
    ``OUTLIER_S`` above it, until they stay the same (a few rounds).
    """
    points = list(enumerate(times))
    kept = points
    slope, intercept = _fit(points)
    for _ in range(4):
        punctual = [(i, t) for i, t in points if t - (intercept + slope * i) <= OUTLIER_S]
        if len(punctual) == len(kept) or len(punctual) < max(3, len(points) // 3):
            break
        kept = punctual
        slope, intercept = _fit(kept)
    return slope


def pulse(state: ClockState, t_s: float) -> ClockState:
    """The state after a clock pulse at time ``t_s`` (seconds, any steady clock)."""
    times = state.times_s
    if len(times) >= 2:
        period = _slope(times) if len(times) >= 3 else times[-1] - times[-2]
        if t_s - times[-1] > GAP_PERIODS * max(period, 1e-4):
            times = ()
    elif times and t_s < times[-1]:
        times = ()
    times = (*times, float(t_s))[-WINDOW_PULSES:]
    if state.downbeat:
        return ClockState(times, 0, True, False)
    return state._replace(times_s=times, pulses=state.pulses + 1 if state.running else state.pulses)


def start(state: ClockState) -> ClockState:
    """After Start: the next pulse is beat 0."""
    return state._replace(pulses=-1, running=True, downbeat=True)


def stop(state: ClockState) -> ClockState:
    """After Stop: the count holds (pulses keep the tempo)."""
    return state._replace(running=False, downbeat=False)


def resume(state: ClockState) -> ClockState:
    """After Continue: the count goes on from where Stop left it."""
    return state._replace(running=True)


def tempo_bpm(state: ClockState) -> float | None:
    """The tempo the recent pulses give (within the tempo range), or None with too few."""
    if len(state.times_s) < MIN_PULSES:
        return None
    seconds_per_pulse = _slope(state.times_s)
    if seconds_per_pulse <= 0.0:
        return None
    lo, hi = TEMPO_RANGE_BPM
    return min(max(60.0 / (PULSES_PER_BEAT * seconds_per_pulse), lo), hi)


def beats(state: ClockState) -> float:
    """Beats since beat 0 at the last pulse."""
    return max(state.pulses, 0) / PULSES_PER_BEAT


def anchor_of(mod: Modulation, t_s: float, beats_now: float) -> tuple[float, float]:
    """The (fast, slow) phases at beat 0 that continue ``mod``'s motion unchanged at ``t_s`` (beat ``beats_now``)."""
    fast, slow = mod.phases_at(t_s)
    return (fast - _cycles(beats_now, mod.rate_fast_hz), slow - _cycles(beats_now, mod.rate_slow_hz))


def _cycles(beats_now: float, beats_per_cycle: float) -> float:
    return beats_now / beats_per_cycle if beats_per_cycle > 0 else 0.0


def locked(mod: Modulation, t_s: float, beats_now: float, anchor: tuple[float, float], tempo: float) -> Modulation:
    """``mod`` at ``tempo``, its LFO phases at ``t_s`` set from the beat count (with sync).

    Args:
        mod: the current motion.
        t_s: the pulse's time on the sample clock.
        beats_now: beats since beat 0 at that pulse.
        anchor: the (fast, slow) phases at beat 0, cycles.
        tempo: the clock's tempo, BPM.

    Without sync the rates are in Hz: only the tempo changes (phase continuous).

    """
    new = mod.retimed(t_s, tempo_bpm=tempo)
    if not new.sync:
        return new
    now_fast, now_slow = new.phases_at(t_s)
    fast = anchor[0] + _cycles(beats_now, new.rate_fast_hz) if new.rate_fast_hz > 0 else now_fast
    slow = anchor[1] + _cycles(beats_now, new.rate_slow_hz) if new.rate_slow_hz > 0 else now_slow
    return replace(new, phase_origin_s=float(t_s), phase_fast=fast % 1.0, phase_slow=slow)


class TimeMap:
    """Port timestamps -> sample-clock seconds: the smallest offset of the last ``window_s`` (least delayed).

    A reading is late by however long the MIDI thread took to get to it, never early,
    so the smallest offset is the truest; a window (rather than all time) follows an
    audio clock that drifts from the port's, or skips frames in an xrun.

    Args:
        window_s: how far back readings count, port seconds.

    """

    def __init__(self, window_s: float = 4.0) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, float]] = deque(maxlen=4096)

    def observe(self, port_t_s: float, sample_t_s: float) -> None:
        """A message stamped ``port_t_s`` was read when the sample clock said ``sample_t_s``."""
        readings = self._readings
        readings.append((port_t_s, sample_t_s - port_t_s))
        while readings[0][0] < port_t_s - self.window_s:
            readings.popleft()

    def to_sample(self, port_t_s: float) -> float:
        """The sample-clock time of a port timestamp (after at least one :meth:`observe`)."""
        return port_t_s + min(offset for _, offset in self._readings)
