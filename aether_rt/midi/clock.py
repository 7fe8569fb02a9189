"""Following a MIDI clock: tempo from the pulses' spacing, the LFO phase from their count.

Pure functions over a :class:`ClockState` (a NamedTuple), fed with each pulse's time:

* **numbers**: each pulse gets its number in the clock's sequence from its time, not
  from the order it came in, so a pulse the transport dropped (JACK drops the MIDI of
  a cycle some client missed) leaves a hole instead of shifting every later beat. The
  number is the nearest to where the pulse falls on the line fitted to the recent ones
  (leaning ``LATE_BIAS`` to the earlier);
  early on (fewer than ``LINE_PULSES``) the gap is divided by the median gap. Two pulses
  given one number: the earlier was late (stamps are never early, only late) and moves
  down one.
* **tempo**: the least-squares slope of pulse time against pulse number over the last
  ``WINDOW_PULSES`` (two beats), refitted without the pulses read late, so one late pulse
  moves the estimate by a fraction of its lateness instead of all of it; a gap of
  ``GAP_PERIODS`` or more (the sender paused) starts the estimate afresh.
* **beats**: the number of the last pulse minus beat 0's (the first pulse after Start,
  as MIDI defines it, or the first pulse heard when joining); Stop holds the count,
  Continue goes on from it.
* :func:`locked` sets the motion's phase from the beat count (not just its tempo), so
  the LFO cannot drift from the clock however long it runs: with sync, its phase at a
  pulse is the phase it had at beat 0 plus ``beats / beats_per_cycle``.

:class:`TimeMap` maps the port's time stamps onto the audio sample clock (which the
motion runs on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from statistics import median
from typing import NamedTuple

from aether_rt.modulation import Modulation
from aether_rt.params import TEMPO_RANGE_BPM

PULSES_PER_BEAT = 24
#: Pulses the tempo is estimated over (two beats).
WINDOW_PULSES = 48
#: Pulses needed before a tempo is reported (a sixteenth note).
MIN_PULSES = 6
#: Pulses needed before they are numbered from the fitted line rather than the median gap.
LINE_PULSES = 12
#: A gap this many pulse periods long means the sender paused: the estimate restarts
#: (shorter ones are lost pulses).
GAP_PERIODS = 8.0
#: Pulses later than this behind the fitted line are left out of the tempo (read late).
OUTLIER_S = 0.0015
#: Numbering leans this far (periods) towards the earlier number: a stamp is late by up to
#: most of a period (never early, but for the audio block it is placed at the start of).
LATE_BIAS = 0.2
#: At most this many late pulses move down when a later one takes their numbers.
MAX_MOVED = 8
#: A pulse this far (periods) from its number is suspect: no lock on its count.
SUSPECT_PERIODS = 0.3


class ClockState(NamedTuple):
    """What the pulses so far tell.

    Attributes:
        times_s: the recent pulses' times (at most ``WINDOW_PULSES``), oldest first.
        numbers: their numbers in the clock's sequence (increasing; holes are lost pulses).
        zero: the number of beat 0 (None: no pulse yet).
        held: the count Stop froze (None: running).
        downbeat: a Start was received: the next pulse is beat 0.
        received: pulses received since joining.
        first: the number of the first pulse received.
        suspect: the last pulse fell far from its number (a late read, or lost pulses not
            yet clear): its count is not to be locked to.

    """

    times_s: tuple[float, ...] = ()
    numbers: tuple[int, ...] = ()
    zero: int | None = None
    held: int | None = None
    downbeat: bool = False
    received: int = 0
    first: int = 0
    suspect: bool = False

    @property
    def running(self) -> bool:
        """Between Start/Continue and Stop (a clock joined while running counts as running)."""
        return self.held is None

    @property
    def pulses(self) -> int:
        """Pulses since beat 0 at the last pulse (-1 before beat 0)."""
        if self.held is not None:
            return self.held
        if self.zero is None or not self.numbers:
            return -1
        return self.numbers[-1] - self.zero

    @property
    def lost(self) -> int:
        """Pulses missing from the sequence since joining (holes in the numbers)."""
        if not self.numbers:
            return 0
        return max(0, self.numbers[-1] - self.first + 1 - self.received)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``(seconds per pulse, intercept)`` of (pulse number, time) points."""
    n = len(points)
    mean_i = sum(i for i, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    num = sum((i - mean_i) * (t - mean_t) for i, t in points)
    den = sum((i - mean_i) ** 2 for i, _ in points)
    slope = num / den if den > 0 else 0.0
    return slope, mean_t - slope * mean_i


def _line(numbers: tuple[int, ...], times: tuple[float, ...]) -> tuple[float, float]:
    """``(seconds per pulse, intercept)``: a least-squares line through the punctual (number, time) points.

    A time stamp is never early, only late (the machine stalled the MIDI system for a
    moment; port stamps also move in audio periods): left in, a few late pulses skewed
    the tempo by a BPM or more. So the line is refitted to the pulses no more than
    ``OUTLIER_S`` above it, until they stay the same (a few rounds).
    """
    points = list(zip(numbers, times, strict=True))
    kept = points
    slope, intercept = _fit(points)
    for _ in range(4):
        punctual = [(i, t) for i, t in points if t - (intercept + slope * i) <= OUTLIER_S]
        if len(punctual) == len(kept) or len(punctual) < max(3, len(points) // 3):
            break
        kept = punctual
        slope, intercept = _fit(kept)
    return slope, intercept


def _period(state: ClockState) -> float | None:
    """Seconds per pulse from the recent pulses (None with fewer than two)."""
    times, numbers = state.times_s, state.numbers
    if len(times) >= LINE_PULSES:
        return _line(numbers, times)[0]
    if len(times) >= 2:
        return (times[-1] - times[0]) / (numbers[-1] - numbers[0])
    return None


def _number(state: ClockState, t_s: float) -> tuple[int, float]:
    """The number of a pulse at ``t_s``, and how far (periods) it falls from it."""
    times, numbers = state.times_s, state.numbers
    last = numbers[-1]
    if len(times) >= LINE_PULSES:
        slope, intercept = _line(numbers, times)
        if slope > 0.0:
            x = (t_s - intercept) / slope
            k = round(x - LATE_BIAS)
            return k, x - k
    return last + 1, 0.0


def _renumbered(times: tuple[float, ...], numbers: tuple[int, ...]) -> tuple[int, ...]:
    """Early on (fewer than ``LINE_PULSES``): every gap over the median gap, from the first pulse's number.

    Renumbered at each pulse, so a drop among the first few pulses, which no gap could
    tell yet, is found once there are three gaps to take the median of.
    """
    gaps = [times[i] - times[i - 1] for i in range(1, len(times))]
    if len(gaps) < 3:
        return numbers
    period = median(gaps)
    if period <= 0.0:
        return numbers
    out = [numbers[0]]
    for gap in gaps:
        out.append(out[-1] + max(1, round(gap / period - LATE_BIAS)))
    return tuple(out)


def pulse(state: ClockState, t_s: float) -> ClockState:
    """The state after a clock pulse at time ``t_s`` (seconds, any steady clock)."""
    times, numbers = state.times_s, state.numbers
    if not numbers:
        n, off = 0, 0.0
    else:
        period = _period(state)
        if t_s < times[-1] or (period is not None and t_s - times[-1] > GAP_PERIODS * max(period, 1e-4)):
            n, off = numbers[-1] + 1, 0.0  # paused: the count goes on, the estimate starts afresh
            times, numbers = (), ()
        else:
            n, off = _number(state, t_s)
    zero, first = state.zero, state.first
    if numbers and n <= numbers[-1]:
        # The pulses before took this one's number: they were read late and move down, as
        # far back as they overlap (a few at most), unless that leaves no room.
        fixed, j, want = list(numbers), len(numbers) - 1, n - 1
        while j >= max(0, len(numbers) - MAX_MOVED) and fixed[j] > want:
            fixed[j], j, want = want, j - 1, want - 1
        if j < 0 or fixed[j] <= want:
            moved = dict(zip(numbers, fixed, strict=True))
            numbers = tuple(fixed)
            zero = moved.get(zero, zero) if zero is not None else None
            first = moved.get(first, first)
        else:
            n = numbers[-1] + 1
    times = (*times, float(t_s))[-WINDOW_PULSES:]
    numbers = (*numbers, n)[-WINDOW_PULSES:]
    if len(times) < LINE_PULSES:
        fixed = _renumbered(times, numbers)
        moved = dict(zip(numbers, fixed, strict=True))
        numbers, n = fixed, fixed[-1]
        zero = moved.get(zero, zero) if zero is not None else None
        first = moved.get(first, first)
    if not state.received:
        first = n
    if state.downbeat or zero is None:
        zero = n
    return ClockState(times, numbers, zero, state.held, False, state.received + 1, first, abs(off) > SUSPECT_PERIODS)


def start(state: ClockState) -> ClockState:
    """After Start: the next pulse is beat 0."""
    return state._replace(held=None, downbeat=True)


def stop(state: ClockState) -> ClockState:
    """After Stop: the count holds (pulses keep the tempo)."""
    return state._replace(held=state.pulses, downbeat=False)


def resume(state: ClockState) -> ClockState:
    """After Continue: the count goes on from where Stop left it."""
    if state.held is None:
        return state
    zero = state.numbers[-1] - state.held if state.numbers else state.zero
    return state._replace(held=None, zero=zero)


def tempo_bpm(state: ClockState) -> float | None:
    """The tempo the recent pulses give (within the tempo range), or None with too few."""
    if len(state.times_s) < MIN_PULSES:
        return None
    seconds_per_pulse = _period(state)
    if seconds_per_pulse is None or seconds_per_pulse <= 0.0:
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
    """Port time stamps -> sample-clock seconds.

    Two steps when the audio clock is stamped (:meth:`stamp`, from
    :meth:`~aether_rt.engine.Engine.clock_stamp`):

    * port -> wall clock: the port's stamps run at the wall clock's rate (JACK, ALSA and
      CoreMIDI stamp with the system's monotonic clock); the offset is the smallest seen
      over the last ``window_s``, i.e. the message that waited least for the MIDI thread (a
      reading is late, never early);
    * wall -> sample clock: each audio block's start is stamped with the wall clock; a
      moment maps to the last block that started before it, plus the time since, at most
      to the next block's first frame.

    So a sample clock that runs at another rate than the wall clock (a virtual device
    that stalls, a sound card's own crystal) still gets each pulse at its frame. Without
    stamps, the offset maps port times straight onto the sample clock (same rate assumed).

    Args:
        window_s: how far back readings count, port seconds.
        stamps_kept: audio-block stamps kept (1024: over a second at 64-frame blocks).

    """

    def __init__(self, window_s: float = 4.0, stamps_kept: int = 1024) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, float]] = deque(maxlen=4096)
        self._stamps: deque[tuple[float, float]] = deque(maxlen=stamps_kept)

    def observe(self, port_t_s: float, now_s: float) -> None:
        """A message stamped ``port_t_s`` was read at ``now_s``: the wall clock once stamped, else the sample clock."""
        readings = self._readings
        readings.append((port_t_s, now_s - port_t_s))
        while readings[0][0] < port_t_s - self.window_s:
            readings.popleft()

    def stamp(self, wall_s: float, sample_s: float) -> None:
        """The audio clock's latest stamp: a block started at ``wall_s`` with sample time ``sample_s``."""
        if not self._stamps or sample_s > self._stamps[-1][1]:
            self._stamps.append((wall_s, sample_s))

    @property
    def stamped(self) -> bool:
        """Whether stamps have been given (then :meth:`observe` takes the wall clock)."""
        return bool(self._stamps)

    def to_sample(self, port_t_s: float) -> float:
        """The sample-clock time of a port time stamp (after at least one :meth:`observe`)."""
        t = port_t_s + min(offset for _, offset in self._readings)
        stamps = self._stamps
        if not stamps:
            return t
        for i in range(len(stamps) - 1, -1, -1):  # newest first: pulses are read within milliseconds
            wall, sample = stamps[i]
            if wall <= t:
                later = stamps[i + 1][1] if i + 1 < len(stamps) else float("inf")
                return min(sample + (t - wall), later)
        wall, sample = stamps[0]
        return sample - (wall - t)
