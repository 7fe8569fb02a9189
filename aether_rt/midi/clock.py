"""Following a MIDI clock: tempo from the pulses' spacing, the LFO phase from their count.

Pure functions over a :class:`ClockState` (a NamedTuple), fed with each pulse's time:

* **numbers**: each pulse gets its number in the clock's sequence from its time, not
  from the order it came in, so a pulse the transport dropped (JACK drops the MIDI of
  a cycle some client missed) leaves a hole instead of shifting every later beat. The
  number is the nearest to where the pulse falls on the grid fitted to the recent ones
  (:func:`_grid`, leaning ``LATE_BIAS`` to the earlier); early on (up to
  ``LINE_PULSES``) the gap is divided by the median gap. Time stamps are never early,
  only late: a pulse given a number an earlier one has was read on time, and the
  earlier ones, held back, move down one each, as far back as they overlap (a stall
  followed by a burst of pulses read at once).
* **tempo**: the slope of that grid over the last ``WINDOW_PULSES`` (two beats): a
  robust start (Theil and Sen's median of pairwise slopes, leaving out pulses a burst
  shows were held back), then least squares over the pulses not read late, so a late
  pulse moves the estimate by a fraction of its lateness instead of all of it. A hole
  cannot tilt it into a count that runs away (see :func:`_grid`). A gap of
  ``GAP_PERIODS`` and ``GAP_MIN_S`` or more (the sender paused) starts the estimate
  afresh.
* **beats**: the number of the last pulse minus beat 0's (the first pulse after Start,
  as MIDI defines it, or the first pulse heard when joining); Stop holds the count,
  Continue goes on from it.
* :func:`locked` sets the motion's phase from the beat count (not just its tempo), so
  the LFO cannot drift from the clock however long it runs: with sync, its phase at a
  pulse is the phase it had at beat 0 plus ``beats / beats_per_cycle``. A pulse read
  late (above the grid) is ``suspect``: no lock on its time.

:class:`TimeMap` maps the port's time stamps onto the audio sample clock (which the
motion runs on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from itertools import pairwise
from statistics import median
from typing import NamedTuple

import numpy as np

from aether_rt.modulation import Modulation
from aether_rt.params import TEMPO_RANGE_BPM

PULSES_PER_BEAT = 24
#: Pulses the tempo is estimated over (two beats).
WINDOW_PULSES = 48
#: Pulses needed before a tempo is reported (a sixteenth note).
MIN_PULSES = 6
#: Pulses needed before they are numbered from the fitted line rather than the median gap.
LINE_PULSES = 12
#: A gap this many pulse periods long, and at least ``GAP_MIN_S``, means the sender
#: paused: the estimate restarts. Shorter ones are lost pulses, or a stall of this
#: machine: the pulses it held back come in a burst and are numbered on the grid (a
#: 95 ms stall at 120 BPM, read as a pause, left a false hole before it).
GAP_PERIODS = 8.0
GAP_MIN_S = 0.25
#: Pulses later than this behind the fitted line are left out of the tempo (read late).
OUTLIER_S = 0.0015
#: Numbering leans this far (periods) towards the earlier number: a stamp is late by up to
#: most of a period (never early, but for the audio block it is placed at the start of).
LATE_BIAS = 0.2
#: A pulse this far (periods) before the fitted line shows a mis-numbered window (stamps are never early).
EARLY_PERIODS = 0.25
#: A pulse this far (periods) from its number is suspect: no lock on its count.
SUSPECT_PERIODS = 0.3
#: The shortest pulse period a clock in the tempo range has: a shorter gap between two
#: pulses is a burst (pulses held back by a stall, read at once), not a tempo.
MIN_PERIOD_S = 60.0 / (PULSES_PER_BEAT * TEMPO_RANGE_BPM[1])


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
            yet clear), or more than ``OUTLIER_S`` after the grid's time for it (read
            late): its count and time are not to be locked to.
        grid: ``(seconds per pulse, intercept)`` of the pulses' grid (:func:`_grid`), once
            there are ``LINE_PULSES``; None before, or when they tell no period.

    """

    times_s: tuple[float, ...] = ()
    numbers: tuple[int, ...] = ()
    zero: int | None = None
    held: int | None = None
    downbeat: bool = False
    received: int = 0
    first: int = 0
    suspect: bool = False
    grid: tuple[float, float] | None = None

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


def _grid(numbers: tuple[int, ...], times: tuple[float, ...]) -> tuple[float, float] | None:
    """``(seconds per pulse, intercept)`` of the pulse grid: time = intercept + slope * number.

    One line through the window's (number, time) points, unless a pulse lies more than
    ``EARLY_PERIODS`` before it: stamps are never early, so then a hole was numbered where
    no pulse was lost (late pulses read as the next ones) and tilted the line. A tilted
    line numbered the next pulses further apart, which kept the window tilted: the count
    ran away (seen: 120 BPM read as 125, two false holes in the window). Then the slope
    is fitted within the runs of consecutive numbers only (each run between two holes
    gets an intercept of its own), which no hole can tilt; with real holes the one line
    is the steadier (it spans the whole window).

    A time stamp is never early, only late (the machine stalled the MIDI system for a
    moment; port stamps also move in audio periods): left in, a few late pulses skewed
    the tempo by a BPM or more. So each fit is repeated on the pulses no more than
    ``OUTLIER_S`` above it, until they stay the same (a few rounds), starting without the
    pulses a burst shows were held back (:func:`_not_held_back`). None when no run has
    two pulses.
    """
    kept = _not_held_back(numbers, times)
    if kept is None:
        return None
    line = _punctual_fit(numbers, times, [0] * len(numbers), kept)
    if line is None:
        return None
    slope, intercept = line
    earliest = min(t - (intercept + slope * i) for i, t in zip(numbers, times, strict=True))
    if slope > 0.0 and earliest >= -EARLY_PERIODS * slope:
        return line
    run, runs = 0, []
    for k in range(len(numbers)):
        if k and numbers[k] - numbers[k - 1] > 1:
            run += 1
        runs.append(run)
    return _punctual_fit(numbers, times, runs, kept) or line


def _punctual_fit(
    numbers: tuple[int, ...], times: tuple[float, ...], runs: list[int], kept: list[int]
) -> tuple[float, float] | None:
    """A least-squares fit (:func:`_fit_runs`) to the pulses no more than ``OUTLIER_S`` above the fit.

    It starts from a fit no late pulse can pull: the median slope over pairs of ``kept``
    pulses of a run (Theil and Sen's estimator) and the median intercept. A least-squares
    start was pulled by a burst's last pulse (late by several periods, yet with a full
    gap after it) far enough that the punctual pulses looked late and were dropped.
    """
    n, t, r = np.asarray(numbers, dtype=np.float64), np.asarray(times, dtype=np.float64), np.asarray(runs)
    k = np.asarray(kept)
    dn, dt = n[k][None, :] - n[k][:, None], t[k][None, :] - t[k][:, None]
    pairs = (dn > 0) & (r[k][None, :] == r[k][:, None])
    if not pairs.any():
        return None
    slope = float(np.median(dt[pairs] / dn[pairs]))
    fitted = (slope, float(np.median(t[k] - slope * n[k])))
    chosen = np.zeros(len(n), dtype=bool)
    for _ in range(5):
        punctual = t - (fitted[1] + fitted[0] * n) <= OUTLIER_S
        if (punctual == chosen).all() or punctual.sum() < max(3, len(n) // 3):
            break
        fit = _fit_runs(n[punctual], t[punctual], r[punctual])
        if fit is None:
            break
        fitted, chosen = fit, punctual
    return fitted


def _not_held_back(numbers: tuple[int, ...], times: tuple[float, ...]) -> list[int] | None:
    """The pulses not certainly late: each followed within half a period by the next was held back.

    A stall holds pulses back and the port then reads them at once: the earlier ones of
    such a burst are late by most of a period each, and when they are most of the window
    (just after a restart) they decide a least-squares line. The period here is the
    median gap between consecutive numbers, leaving out gaps within bursts. None when
    fewer than three gaps are left: the window is mostly a burst, which tells no period.
    """
    gaps = [times[k] - times[k - 1] for k in range(1, len(times)) if numbers[k] - numbers[k - 1] == 1]
    periods = [gap for gap in gaps if gap >= 0.5 * MIN_PERIOD_S]
    if len(periods) < 3:
        return None
    half = 0.5 * median(periods)
    kept = [k for k in range(len(times)) if k == len(times) - 1 or times[k + 1] - times[k] >= half]
    return kept if len(kept) >= 3 else list(range(len(times)))


def _fit_runs(n: np.ndarray, t: np.ndarray, runs: np.ndarray) -> tuple[float, float] | None:
    """Least squares over (number, time) points, one slope, an intercept per run: the slope and the mean intercept."""
    _, run = np.unique(runs, return_inverse=True)
    count = np.bincount(run)
    dn = n - (np.bincount(run, n) / count)[run]
    dt = t - (np.bincount(run, t) / count)[run]
    den = float(dn @ dn)
    if den <= 0.0:
        return None
    slope = float(dn @ dt) / den
    return slope, float(np.mean(t - slope * n))


def _period(state: ClockState) -> float | None:
    """Seconds per pulse from the recent pulses (None with fewer than two)."""
    times, numbers = state.times_s, state.numbers
    if len(times) >= LINE_PULSES:
        return state.grid[0] if state.grid is not None else None
    if len(times) >= 2 and all(b - a >= 0.5 * MIN_PERIOD_S for a, b in pairwise(times)):
        return (times[-1] - times[0]) / (numbers[-1] - numbers[0])
    return None  # too few pulses, or a burst (held-back pulses read at once) among them


def _number(state: ClockState, t_s: float) -> tuple[int, float]:
    """The number of a pulse at ``t_s``, and how far (periods) it falls from it.

    It may equal the last pulse's number or fall below it: then the pulses before were
    read late and move down (:func:`_settled`).
    """
    times, numbers = state.times_s, state.numbers
    if len(times) >= LINE_PULSES:
        grid = state.grid
        if grid is not None and grid[0] >= 0.5 * MIN_PERIOD_S:  # else a burst: no period yet
            slope, intercept = grid
            x = (t_s - intercept) / slope
            k = round(x - LATE_BIAS)
            return k, x - k
    return numbers[-1] + 1, 0.0


def _settled(numbers: tuple[int, ...], n: int) -> tuple[tuple[int, ...], int]:
    """The window's numbers and the new pulse's once it is given ``n``.

    Pulses before that took ``n`` or above were read late (stamps are never early): they
    move down, as far back as they overlap, one number apart. A run of late pulses as
    long as a stall makes (a burst at 240 BPM after a 30 ms stall is three; two stalls
    in a row made nine) moves whole. When the window's first pulse would have to move,
    the new pulse is the one out of place: it takes the next number.
    """
    if not numbers or n > numbers[-1]:
        return numbers, n
    fixed, j, want = list(numbers), len(numbers) - 1, n - 1
    while j >= 0 and fixed[j] > want:
        fixed[j], j, want = want, j - 1, want - 1
    if j < 0:
        return numbers, numbers[-1] + 1
    return tuple(fixed), n


def _renumbered(times: tuple[float, ...], numbers: tuple[int, ...]) -> tuple[int, ...]:
    """Early on (up to ``LINE_PULSES`` pulses): every gap over the median gap, from the first pulse's number.

    Renumbered at each pulse, so a drop among the first few pulses, which no gap could
    tell yet, is found once there are three gaps to take the median of (gaps within a
    burst, shorter than any period in the tempo range, are not periods). A gap shorter
    than a period after a long one was a late pulse: it moves down (:func:`_settled`).
    """
    gaps = [times[i] - times[i - 1] for i in range(1, len(times))]
    periods = [gap for gap in gaps if gap >= 0.5 * MIN_PERIOD_S]  # not within a burst
    if len(periods) < 3:
        return numbers
    period = median(periods)
    out: tuple[int, ...] = (numbers[0],)
    for gap in gaps:
        settled, n = _settled(out, out[-1] + round(gap / period - LATE_BIAS))
        out = (*settled, n)
    return out


def pulse(state: ClockState, t_s: float) -> ClockState:
    """The state after a clock pulse at time ``t_s`` (seconds, any steady clock)."""
    times, numbers = state.times_s, state.numbers
    if not numbers:
        n, off = 0, 0.0
    else:
        period = _period(state)
        if t_s < times[-1] or (period is not None and t_s - times[-1] > max(GAP_PERIODS * period, GAP_MIN_S)):
            n, off = numbers[-1] + 1, 0.0  # paused: the count goes on, the estimate starts afresh
            times, numbers = (), ()
        else:
            n, off = _number(state, t_s)
    zero, first = state.zero, state.first
    fixed, n = _settled(numbers, n)
    if fixed != numbers:
        moved = dict(zip(numbers, fixed, strict=True))
        numbers = fixed
        zero = moved.get(zero, zero) if zero is not None else None
        first = moved.get(first, first)
    times = (*times, float(t_s))[-WINDOW_PULSES:]
    numbers = (*numbers, n)[-WINDOW_PULSES:]
    if len(times) <= LINE_PULSES:  # up to the pulse that completes the first line's points
        fixed = _renumbered(times, numbers)
        moved = dict(zip(numbers, fixed, strict=True))
        numbers, n = fixed, fixed[-1]
        zero = moved.get(zero, zero) if zero is not None else None
        first = moved.get(first, first)
    if not state.received:
        first = n
    if state.downbeat or zero is None:
        zero = n
    grid = _grid(numbers, times) if len(times) >= LINE_PULSES else None
    # Read late (above the grid): its time would set the locked phase that much behind.
    late = grid is not None and t_s - (grid[1] + grid[0] * n) > OUTLIER_S
    suspect = abs(off) > SUSPECT_PERIODS or late
    return ClockState(times, numbers, zero, state.held, False, state.received + 1, first, suspect, grid)


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
