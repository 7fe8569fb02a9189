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
  late (above the grid) is ``suspect``: no lock on its count. The lock is at the pulse's
  time on the grid (:func:`due_s`), not its stamp.
* **ports that stamp by audio periods** (JACK's: each message at the start of the period
  it is read in, 21 ms apart at 1024 frames): the grid is the narrowest band holding
  the pulses, each pulse may take any number its stamp allows within a step, and the
  pulse is due a step after the band's lower edge (the sender placed it within the
  period that starts at its stamp). The step shows in the stamps (:func:`_lattice`) or
  is told (:meth:`TimeMap.resolution_s`, from the engine's blocks).

:class:`TimeMap` maps the port's time stamps onto the audio sample clock (which the
motion runs on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from itertools import islice, pairwise
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
#: The low quantile of the pulses' heights above a line that :func:`_filled_width` measures from.
EDGE_QUANTILE = 0.05
#: The shortest stamp step looked for (:func:`_lattice`), and how far a gap may be from a whole number of steps
#: (a JACK period's callback starts within a few hundred microseconds of its time).
LATTICE_MIN_S = 0.004
LATTICE_TOLERANCE_S = 0.0005
#: The share of the gaps that must be whole steps (a period's callback may start late).
LATTICE_SHARE = 0.9
#: Gaps of one step and two show a step when this share or more are two (:func:`_lattice`).
LATTICE_LONG_SHARE = 0.1
#: A band the pulses fill this evenly (the median's height over the lower edge, doubled,
#: against the width) is a port's resolution, not a few late pulses (:func:`_even_band`).
EVEN_SHARE = 0.6
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


class Grid(NamedTuple):
    """Where the pulses' stamps fall: pulse ``n``'s lowest at ``origin_s + period_s * n``.

    Attributes:
        period_s: seconds per pulse (the tempo).
        origin_s: the time of pulse 0 on the lower edge of the stamps: where the least
            delayed stamps fall.
        spread_s: the width of the band above that edge the stamps fall in: a port's
            step. JACK's ports stamp each pulse at the start of the audio period it was
            sent in, so there it is about one period (10.7 ms at 512 frames and 48 kHz,
            more than a pulse period at 180 BPM), and a pulse is due that long after the
            edge (:func:`due_s`). 0.0 for a precise port (its stamps are on the line or
            late, and a pulse is due on the line).

    """

    period_s: float
    origin_s: float
    spread_s: float


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
        suspect: the last pulse fell far from its number: early (a number too high), or
            later than the grid's spread plus ``OUTLIER_S`` (a late read, or lost pulses
            not yet clear): its count is not to be locked to.
        grid: the pulses' :class:`Grid` (:func:`_grid`), once there are ``LINE_PULSES``;
            None before, or when they tell no period.
        resolution_s: the port's stamp step when known from elsewhere (:meth:`TimeMap.resolution_s`:
            the audio period its stamps sit on), else 0.0.

    """

    times_s: tuple[float, ...] = ()
    numbers: tuple[int, ...] = ()
    zero: int | None = None
    held: int | None = None
    downbeat: bool = False
    received: int = 0
    first: int = 0
    suspect: bool = False
    grid: Grid | None = None
    resolution_s: float = 0.0

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


def _grid(numbers: tuple[int, ...], times: tuple[float, ...], resolution_s: float = 0.0) -> Grid | None:
    """The pulses' :class:`Grid`: one line through the window's (number, time) points.

    Unless a pulse lies more than ``EARLY_PERIODS`` before its lower edge: stamps are
    never early, so then a hole was numbered where no pulse was lost (late pulses read as
    the next ones) and tilted the line. A tilted line numbered the next pulses further
    apart, which kept the window tilted: the count ran away (seen: 120 BPM read as 125,
    two false holes in the window). Then the slope is fitted within the runs of
    consecutive numbers only (each run between two holes gets an intercept of its own),
    which no hole can tilt; with real holes the one line is the steadier (it spans the
    whole window).

    The line is the narrowest band holding the pulses (:func:`_even_band`) when the
    stamps step by audio periods (:func:`_lattice`, or ``resolution_s`` from the engine's
    blocks), else a robust fit to the pulses read on time (:func:`_punctual_fit`). A
    known step is the least spread. None when no run has two pulses.
    """
    kept = _not_held_back(numbers, times)
    if kept is None:
        return None
    known = resolution_s if resolution_s >= LATTICE_MIN_S else 0.0
    even = _even_band(numbers, times) if known > 0.0 or _lattice(times) > 0.0 else None
    grid = even or _punctual_fit(numbers, times, [0] * len(numbers), kept)
    if grid is None:
        return None
    if known > grid.spread_s:  # a whole step, even if the window has not shown it yet
        grid = grid._replace(spread_s=known)
    earliest = min(t - (grid.origin_s + grid.period_s * i) for i, t in zip(numbers, times, strict=True))
    if grid.period_s > 0.0 and earliest >= -EARLY_PERIODS * grid.period_s:
        return grid
    run, runs = 0, []
    for k in range(len(numbers)):
        if k and numbers[k] - numbers[k - 1] > 1:
            run += 1
        runs.append(run)
    return _punctual_fit(numbers, times, runs, kept) or grid


def _filled_width(residuals: np.ndarray) -> float:
    """How wide the residuals spread evenly: twice the median's height above a low quantile.

    A port that stamps at audio periods spreads the pulses evenly over a period, the
    median in its middle; a precise one leaves them all within its jitter, however late a
    few stalled ones were. (A low quantile, not the minimum: one mis-numbered pulse would
    set that.)
    """
    low = float(np.quantile(residuals, EDGE_QUANTILE))
    return 2.0 * max(float(np.median(residuals)) - low, 0.0)


def _lattice(times: tuple[float, ...]) -> float:
    """The step the stamps move by, when they show one that is no pulse period (else 0.0).

    A JACK port stamps each message at the start of the audio period it is read in, so
    its stamps are whole periods apart. They show it two ways. Several pulses share a
    period: gaps of 0 beside gaps of one step longer than the mean gap. Or the gaps are
    different numbers of steps shorter than a pulse period (at 256 frames and 60 BPM, 7
    and 8 steps of 5.3 ms): the step is the smallest difference between the gaps'
    clusters, refined over all of them. Or gaps of one step and of two, the longer ones
    ``LATTICE_LONG_SHARE`` or more of them (at 1024 frames and 97 BPM, a fifth): a
    precise port losing a pulse now and then makes those too, but not as many. Gaps that
    are all one length tell nothing (an even clock looks like that on any port). A
    stall's burst (pulses 50 us apart after a long gap) on a precise port has gaps of 0
    but no step longer than the mean gap.
    """
    gaps = np.diff(np.asarray(times, dtype=np.float64))
    short = gaps < LATTICE_MIN_S
    steps = np.sort(gaps[~short])
    if len(steps) < (1 if short.any() else 3):
        return 0.0
    clusters = np.split(steps, np.nonzero(np.diff(steps) > 2.0 * LATTICE_TOLERANCE_S)[0] + 1)
    # (a gap of its own, one pulse read late, is no cluster)
    centres = [float(np.median(c)) for c in clusters if len(c) >= 2] or [float(steps[0])]
    step = min([centres[0], *(b - a for a, b in pairwise(centres))])
    if step < LATTICE_MIN_S:
        return 0.0
    multiple = np.round(steps / step)
    step = float(steps @ multiple / (multiple @ multiple))  # the step that fits every gap best
    multiple = np.round(gaps / step)
    if np.mean(np.abs(gaps - multiple * step) <= LATTICE_TOLERANCE_S) < LATTICE_SHARE:
        return 0.0
    if short.any():  # several pulses to a step
        return step if step > 1.01 * (times[-1] - times[0]) / (len(times) - 1) else 0.0
    if step < float(np.median(steps)) - 2.0 * LATTICE_TOLERANCE_S:  # gaps of several steps
        return step
    # Gaps of one step and of two: a port that steps, or a precise one losing pulses; as
    # often as here (a tenth of the gaps), only the first (JACK drops pulses in xruns).
    return step if np.mean(multiple[~short] != 1) >= LATTICE_LONG_SHARE else 0.0


def _even_band(numbers: tuple[int, ...], times: tuple[float, ...]) -> Grid | None:
    """The grid of a port that stamps at audio periods: the narrowest band holding the pulses, if they fill it evenly.

    Such a port spreads the pulses over a period, and at some tempos regularly: at 1024
    frames and 120 BPM (a 21.3 ms step, a 20.8 ms pulse period) each pulse falls 0.5 ms
    later within its period than the last, for 42 pulses, then two share one. A line
    through most of them (the robust fit of :func:`_punctual_fit`) followed one such run
    and took the earlier run for pulses read late: the tempo read 2.3 % slow. The band
    holding all of them narrows only along the true slope (:func:`_narrowest`). It is
    taken when the pulses fill it evenly (their median halfway up, as for a period's
    spread); a precise port's band is set by a few stalled pulses, its median at the bottom.
    """
    n = np.asarray(numbers, dtype=np.float64) - numbers[0]
    t = np.asarray(times, dtype=np.float64)
    fit = _narrowest(n, t)
    if fit is None:
        return None
    residuals = t - (fit[1] + fit[0] * n)
    width = float(np.ptp(residuals))
    if _filled_width(residuals) < EVEN_SHARE * width:
        return None
    return Grid(fit[0], fit[1] + float(residuals.min()) - fit[0] * numbers[0], width)


def _punctual_fit(numbers: tuple[int, ...], times: tuple[float, ...], runs: list[int], kept: list[int]) -> Grid | None:
    """The grid of a precise port: least squares (:func:`_fit_runs`) on the pulses no more than ``OUTLIER_S`` above it.

    It starts from a fit no late pulse can pull: the median slope over pairs of ``kept``
    pulses of a run (Theil and Sen's estimator) and the median intercept. A least-squares
    start was pulled by a burst's last pulse (late by several periods, yet with a full
    gap after it) far enough that the punctual pulses looked late and were dropped. Its
    spread is 0: a precise port's stamps are on the line or late. (A spread measured
    from the window, tried, took the pulses after a hole not yet found for a spread of
    stamps, and the hole was never found.)
    """
    n, t, r = np.asarray(numbers, dtype=np.float64), np.asarray(times, dtype=np.float64), np.asarray(runs)
    n = n - n[0]  # small numbers: a clock counted for hours keeps its precision
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
    return Grid(fitted[0], fitted[1] - fitted[0] * numbers[0], 0.0)


def _narrowest(n: np.ndarray, t: np.ndarray) -> tuple[float, float] | None:
    """The slope of the narrowest band holding all the (number, time) points, and the mean intercept.

    ``n`` increasing. The band's top follows the points' upper convex hull and its bottom
    the lower one, so its width, convex in the slope, turns only at a hull edge's slope:
    the narrowest is at one of those (a few dozen, not every pair's).
    """
    if len(n) < 2 or n[-1] <= n[0]:
        return None
    slopes = np.asarray(_hull_slopes(n, t, 1.0) + _hull_slopes(n, t, -1.0))[:, None]
    residuals = t[None, :] - slopes * n[None, :]
    slope = float(slopes[np.argmin(np.ptp(residuals, axis=1)), 0])
    return slope, float(np.mean(t - slope * n))


def _hull_slopes(n: np.ndarray, t: np.ndarray, side: float) -> list[float]:
    """The edge slopes of the points' lower (``side`` 1) or upper (-1) convex hull (Andrew's monotone chain)."""
    hull: list[int] = []
    for k in range(len(n)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            turn = (n[b] - n[a]) * (t[k] - t[a]) - (t[b] - t[a]) * (n[k] - n[a])
            if side * turn > 0.0:
                break
            hull.pop()
        hull.append(k)
    return [float((t[b] - t[a]) / (n[b] - n[a])) for a, b in pairwise(hull)]


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
        return state.grid.period_s if state.grid is not None else None
    if len(times) >= 2 and all(b - a >= 0.5 * MIN_PERIOD_S for a, b in pairwise(times)):
        return (times[-1] - times[0]) / (numbers[-1] - numbers[0])
    return None  # too few pulses, or a burst (held-back pulses read at once) among them


def _number(state: ClockState, t_s: float) -> tuple[int, float]:
    """The number of a pulse at ``t_s``, and how far (periods) after its lower edge it falls.

    The stamp allows any number from the one it would have if read on time (the highest)
    down to the one it would have if read as late as the spread allows (the lowest). The
    next number in the sequence is taken when it is among them: only a stamp too late for
    it to be the next one leaves a hole (a lost pulse), and only one too early for the
    last one's number to be right moves the last ones down (:func:`_settled`: they were
    held back). With a precise port the two are the same.
    """
    times, numbers = state.times_s, state.numbers
    if len(times) >= LINE_PULSES:
        grid = state.grid
        if grid is not None and grid.period_s >= 0.5 * MIN_PERIOD_S:  # else a burst: no period yet
            x = (t_s - grid.origin_s) / grid.period_s
            highest = round(x - LATE_BIAS)
            lowest = round(x - LATE_BIAS - grid.spread_s / grid.period_s)
            k = min(max(numbers[-1] + 1, lowest), highest)
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


def _renumbered(times: tuple[float, ...], numbers: tuple[int, ...], resolution_s: float = 0.0) -> tuple[int, ...]:
    """Early on (up to ``LINE_PULSES`` pulses): each gap over the period, from the first pulse's number.

    Renumbered at each pulse, so a drop among the first few pulses, which no gap could
    tell yet, is found once there are three gaps. The period is the median gap, leaving
    out gaps within bursts (shorter than any period in the tempo range). When the stamps
    step by audio periods (:func:`_lattice`, or ``resolution_s``), it is the mean gap
    instead, and a gap is one pulse unless it is longer than a step more than a period:
    such a port makes gaps of whole steps only (at 512 frames and 180 BPM, 10.7 ms and
    21.3 ms for a 13.9 ms pulse period), whose median is no pulse period, and whose long
    ones are no lost pulses. A gap shorter than a period after a long one was a late
    pulse: it moves down (:func:`_settled`).
    """
    span = times[-1] - times[0]
    if len(times) < 4 or span < 0.5 * MIN_PERIOD_S * (len(times) - 1):  # a burst tells no period
        return numbers
    step = max(_lattice(times), resolution_s if resolution_s >= LATTICE_MIN_S else 0.0)
    periods = [b - a for a, b in pairwise(times) if b - a >= 0.5 * MIN_PERIOD_S]  # not within a burst
    period = span / (len(times) - 1) if step > 0.0 or len(periods) < 3 else median(periods)
    out: tuple[int, ...] = (numbers[0],)
    for gap in (b - a for a, b in pairwise(times)):
        highest, lowest = round(gap / period - LATE_BIAS), round((gap - step) / period - LATE_BIAS)
        settled, n = _settled(out, out[-1] + min(max(1, lowest), highest))
        out = (*settled, n)
    return out


def pulse(state: ClockState, t_s: float, resolution_s: float | None = None) -> ClockState:
    """The state after a clock pulse at time ``t_s`` (seconds, any steady clock).

    ``resolution_s``: the port's stamp step, when known (None: as before; 0.0: unknown).
    """
    if resolution_s is not None:
        state = state._replace(resolution_s=resolution_s)
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
        fixed = _renumbered(times, numbers, state.resolution_s)
        moved = dict(zip(numbers, fixed, strict=True))
        numbers, n = fixed, fixed[-1]
        zero = moved.get(zero, zero) if zero is not None else None
        first = moved.get(first, first)
    if not state.received:
        first = n
    if state.downbeat or zero is None:
        zero = n
    grid = _grid(numbers, times, state.resolution_s) if len(times) >= LINE_PULSES else None
    # Later than the port's spread: a stall, or a pulse lost but not yet shown by a hole.
    late = grid is not None and t_s - (grid.origin_s + grid.period_s * n) > grid.spread_s + OUTLIER_S
    suspect = off < -SUSPECT_PERIODS or late
    return ClockState(times, numbers, zero, state.held, False, state.received + 1, first, suspect, grid,
                      state.resolution_s)  # fmt: skip


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


def due_s(state: ClockState) -> float | None:
    """When the last pulse was due on the grid (None without a grid).

    Locked to, it places the beat better than the stamp: a JACK port's stamp is the start
    of the period the pulse was sent in, up to a period early (21 ms at 1024 frames); the
    grid, fitted to two beats of pulses, is within a fraction of that. It is the top of
    the stamps' band (a precise port's band has no width).
    """
    grid = state.grid
    if grid is None or not state.numbers:
        return None
    return grid.origin_s + grid.spread_s + grid.period_s * state.numbers[-1]


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


#: A message stamped this close to an audio period's start was stamped there (a JACK port).
EDGE_S = 0.001
#: Clock messages in a row that must all be at a period's start for the port to count as stepped.
EDGE_MESSAGES = 12
#: Period stamps looked at for the period.
PERIODS_LOOKED_AT = 64


class TimeMap:
    """Port time stamps -> sample-clock seconds.

    Two steps when the audio clock is stamped (:meth:`stamp`, from
    :meth:`~aether_rt.engine.Engine.clock_stamp`):

    * port -> wall clock: the port's stamps run at the wall clock's rate (JACK, ALSA and
      CoreMIDI stamp with the system's monotonic clock); the offset is the smallest seen
      over the last ``window_s``, i.e. the message that waited least for the MIDI thread (a
      reading is late, never early);
    * wall -> sample clock: each audio period's start is stamped with the wall clock (the
      engine's blocks shorter than the device's period run back to back at its start and
      share the stamp of its first); a moment maps to the last period that started before
      it, plus the time since, at most to the next period's first frame.

    So a sample clock that runs at another rate than the wall clock (a virtual device
    that stalls, a sound card's own crystal) still gets each pulse at its frame. Without
    stamps, the offset maps port times straight onto the sample clock (same rate assumed).

    It also tells the port's resolution (:meth:`resolution_s`): a JACK port on the
    engine's own server stamps every message at the start of an audio period, which is
    when the engine's blocks start.

    Args:
        window_s: how far back readings count, port seconds.
        stamps_kept: audio stamps kept (1024: over a second at 64-frame periods).

    """

    def __init__(self, window_s: float = 4.0, stamps_kept: int = 1024) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, float]] = deque(maxlen=4096)
        self._stamps: deque[tuple[float, float]] = deque(maxlen=stamps_kept)
        self._at_edge: deque[bool] = deque(maxlen=EDGE_MESSAGES)

    def observe(self, port_t_s: float, now_s: float) -> None:
        """A message stamped ``port_t_s`` was read at ``now_s``: the wall clock once stamped, else the sample clock."""
        readings = self._readings
        readings.append((port_t_s, now_s - port_t_s))
        while readings[0][0] < port_t_s - self.window_s:
            readings.popleft()

    def stamp(self, wall_s: float, sample_s: float) -> None:
        """The audio clock's latest stamp: a period started at ``wall_s`` with sample time ``sample_s``."""
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
        self._at_edge.append(self._edge_distance(t) <= EDGE_S)
        for i in range(len(stamps) - 1, -1, -1):  # newest first: pulses are read within milliseconds
            wall, sample = stamps[i]
            if wall <= t:
                later = stamps[i + 1][1] if i + 1 < len(stamps) else float("inf")
                return min(sample + (t - wall), later)
        wall, sample = stamps[0]
        return sample - (wall - t)

    def _periods(self) -> tuple[list[float], float]:
        """The recent audio periods' start times (wall clock) and the period (0.0 with too few).

        Each stamp is a period's start: the engine's callback keeps a period's first stamp
        through the blocks it runs back to back after it (``aether_rt.dsp._kernels.stamp_clock``).
        """
        starts = [wall for wall, _ in islice(reversed(self._stamps), PERIODS_LOOKED_AT)][::-1]
        if len(starts) < 3:
            return starts, 0.0
        return starts, median(b - a for a, b in pairwise(starts))

    def _edge_distance(self, wall_s: float) -> float:
        """How far ``wall_s`` is from the nearest audio period's start (inf when unknown)."""
        starts, period = self._periods()
        if period <= 0.0:
            return float("inf")
        return min(abs(wall_s - start) for start in (*starts[-4:], starts[-1] + period))

    def resolution_s(self) -> float:
        """The port's stamp step: the audio period, or 0.0 (a precise port, or not known yet).

        The period when the last ``EDGE_MESSAGES`` clock messages all came within
        ``EDGE_S`` of a period's start: a JACK port on the engine's server.
        """
        if len(self._at_edge) < EDGE_MESSAGES or not all(self._at_edge):
            return 0.0
        return self._periods()[1]
