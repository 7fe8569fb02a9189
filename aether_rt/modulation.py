"""Latent-space modulation: z as a pure function of the audio sample clock.

Modes:

* ``spiral``: the fast pair (default z0, z1) circles the centre,
  ``z_a = c_a + r_a cos(2 pi f_fast t + phi)``, ``z_b = c_b + r_b sin(2 pi f_fast t + phi)``
  (spatial, phaser-like motion); every other dim drifts on a slow LFO at ``f_slow``,
  each with its own phase (timbre morphing).
* ``drift``: every dim follows a slow, smooth, bounded random walk, seeded: a sum of
  three sines at incommensurate frequencies around ``f_slow`` with seeded phases.
* ``static``: z is the centre.
* ``manual``: z is the centre, set only from OSC or the web page.

Which dims are fast and which slow is configurable (swap them and z2/z3 become the
spatial controls). Rates are in Hz or, with ``sync``, in beats per cycle at
``tempo_bpm``; each slow dim's rate can be scaled (``slow_ratio``). ``phase_origin_s``
resets the LFOs' phase (``/aether/reset``). z is always clipped to ``[-bound, bound]``
(default 2: the region the model learned).

Changing a running motion never makes z jump:

* :meth:`Modulation.retimed` changes rates, tempo or sync and carries the LFOs' phases
  over (``phase_fast``, ``phase_slow``), so turning a rate knob bends the motion instead
  of teleporting it to where the new rate would have put it.
* :meth:`Modulation.morphed_to` crossfades to another motion (a preset, a mode change):
  z is the smoothstep blend of the old and the new motion over ``morph_s`` seconds.

Time ``t`` is the audio sample clock (frames / rate), never wall time, so the live
engine and the offline renderer compute the same z.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np

from aether_rt.params import (
    BEATS_RANGE,
    DEPTH_FAST,
    DEPTH_SLOW,
    ENVELOPE_ATTACK_MS,
    ENVELOPE_ATTACK_RANGE_MS,
    ENVELOPE_FLOOR_DB,
    ENVELOPE_FLOOR_RANGE_DB,
    ENVELOPE_RELEASE_MS,
    ENVELOPE_RELEASE_RANGE_MS,
    MODES,
    RATE_FAST_HZ,
    RATE_RANGE_HZ,
    RATE_SLOW_HZ,
    TEMPO_BPM,
    TEMPO_RANGE_BPM,
)

Mode = Literal["spiral", "drift", "static", "manual"]
MAX_RATE_HZ = RATE_RANGE_HZ[1]
MIN_BEATS, MAX_BEATS = BEATS_RANGE  # with sync: a cycle lasts this many beats
MIN_SLOW_RATIO, MAX_SLOW_RATIO = 0.1, 10.0
MAX_MORPH_S = 30.0
#: The region the model learned, ``|z_i| <= 2`` (the prior's +-2 sigma): the default bound of
#: the motion, the dashed square of the maps and the page, where ``encode --refine`` searches.
LEARNED_BOUND = 2.0
_DRIFT_RATIOS = (0.61, 1.0, 1.53)  # incommensurate: the sum never repeats audibly
# The default excursions (DEPTH_FAST: the fast pair's radius; DEPTH_SLOW: every other
# dim's depth) and the ranges are the parameter registry's (aether_rt/params.py).
#: The fast pair unless told otherwise: z0 and z1.
FAST_DIMS = (0, 1)


def pair_depths(latent_dim: int, fast_dims: tuple[int, int], fast: float, slow: float) -> tuple[float, ...]:
    """Per-dim depths: ``fast`` on the fast pair, ``slow`` on every other dim (``[latent_dim]``).

    With one latent dim there is no pair: that dim gets ``fast``.
    """
    if latent_dim < 2:
        return (float(fast),) * latent_dim
    return tuple(float(fast) if i in fast_dims else float(slow) for i in range(latent_dim))


@dataclass(frozen=True)
class Modulation:
    """Parameters of the latent motion (immutable; replace to change).

    Attributes:
        mode: ``spiral``, ``drift``, ``static`` or ``manual``.
        center: the centre point, one value per latent dim.
        depth: excursion per dim (the spiral's radius on the fast pair).
        rate_fast_hz: the fast pair's rate in Hz; with ``sync``, beats per cycle (0: stopped).
        rate_slow_hz: the other dims' rate, likewise.
        fast_dims: the two dims that circle (the "spatial" pair).
        sync: rates are beats per cycle at ``tempo_bpm`` instead of Hz.
        tempo_bpm: tempo for ``sync``.
        phase_origin_s: sample-clock time at which every LFO has phase zero.
        bound: z is clipped to ``+-bound``.
        seed: seed of the drift walk.
        slow_ratio: per-dim multiplier of the slow rate (each slow dim its own rate).
        phase_fast: the fast LFO's phase offset, cycles (kept continuous by :meth:`retimed`).
        phase_slow: the slow LFOs' phase offset, cycles of the base slow rate.
        morph_from: the motion being crossfaded from (None: no crossfade).
        morph_start_s: sample-clock time the crossfade started.
        morph_s: crossfade length, seconds.
        envelope: per dim, how far the input's level moves z (z units at full scale; None:
            the dynamics do not move z). See :func:`latent_at`.
        envelope_attack_ms: the follower's time constant while the level rises.
        envelope_release_ms: ... and while it falls.
        envelope_floor_db: the input level (dBFS) that moves z by 0; full scale moves it
            by ``envelope``.

    """

    mode: Mode = "spiral"
    center: tuple[float, ...] = (0.0,) * 4  # the shipped model's size; see for_latent_dim
    depth: tuple[float, ...] = (DEPTH_FAST,) * 2 + (DEPTH_SLOW,) * 2
    rate_fast_hz: float = RATE_FAST_HZ
    rate_slow_hz: float = RATE_SLOW_HZ
    fast_dims: tuple[int, int] = FAST_DIMS
    sync: bool = False
    tempo_bpm: float = TEMPO_BPM
    phase_origin_s: float = 0.0
    bound: float = LEARNED_BOUND
    seed: int = 0
    slow_ratio: tuple[float, ...] | None = None
    phase_fast: float = 0.0
    phase_slow: float = 0.0
    morph_from: Modulation | None = None
    morph_start_s: float = 0.0
    morph_s: float = 0.0
    envelope: tuple[float, ...] | None = None
    envelope_attack_ms: float = ENVELOPE_ATTACK_MS
    envelope_release_ms: float = ENVELOPE_RELEASE_MS
    envelope_floor_db: float = ENVELOPE_FLOOR_DB
    _drift: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        dims = len(self.center)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if dims < 1 or len(self.depth) != dims:
            raise ValueError(
                f"center and depth need one value per latent dim, got {len(self.center)} and {len(self.depth)}"
            )
        if not all(math.isfinite(v) for v in (*self.center, *self.depth)):
            raise ValueError("center and depth must be finite")
        if any(d < 0 for d in self.depth):
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        a, b = self.fast_dims
        if dims >= 2 and not (0 <= a < dims and 0 <= b < dims and a != b):
            raise ValueError(f"fast_dims must be two different dims below {dims}, got {self.fast_dims}")
        for name in ("rate_fast_hz", "rate_slow_hz"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            if self.sync and not (value == 0.0 or MIN_BEATS <= value <= MAX_BEATS):
                raise ValueError(
                    f"with sync, {name} is beats per cycle: 0 or {MIN_BEATS:g}..{MAX_BEATS:g}, got {value!r}"
                )
            if not self.sync and not 0.0 <= value <= MAX_RATE_HZ:
                raise ValueError(f"{name} must be in [0, {MAX_RATE_HZ:g}] Hz, got {value!r}")
        lo, hi = TEMPO_RANGE_BPM
        if not (math.isfinite(self.tempo_bpm) and lo <= self.tempo_bpm <= hi):
            raise ValueError(f"tempo_bpm must be in [{lo:g}, {hi:g}], got {self.tempo_bpm!r}")
        if not (math.isfinite(self.bound) and 0.0 < self.bound <= 10.0):
            raise ValueError(f"bound must be in (0, 10], got {self.bound!r}")
        ratios_ok = self.slow_ratio is None or (
            len(self.slow_ratio) == dims
            and all(math.isfinite(r) and MIN_SLOW_RATIO <= r <= MAX_SLOW_RATIO for r in self.slow_ratio)
        )
        if not ratios_ok:
            raise ValueError(
                f"slow_ratio needs one value per latent dim in [{MIN_SLOW_RATIO:g}, {MAX_SLOW_RATIO:g}], "
                f"got {self.slow_ratio}"
            )
        for name in ("phase_fast", "phase_slow", "phase_origin_s", "morph_start_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if not (math.isfinite(self.morph_s) and 0.0 <= self.morph_s <= MAX_MORPH_S):
            raise ValueError(f"morph_s must be in [0, {MAX_MORPH_S:g}] s, got {self.morph_s!r}")
        if self.envelope is not None and not (
            len(self.envelope) == dims and all(math.isfinite(v) and abs(v) <= 2 * self.bound for v in self.envelope)
        ):
            raise ValueError(
                f"envelope needs one amount per latent dim within +-{2 * self.bound:g}, got {self.envelope}"
            )
        for name, (lo, hi) in (("envelope_attack_ms", ENVELOPE_ATTACK_RANGE_MS),
                               ("envelope_release_ms", ENVELOPE_RELEASE_RANGE_MS),
                               ("envelope_floor_db", ENVELOPE_FLOOR_RANGE_DB)):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
        if self.morph_from is not None and self.morph_from.latent_dim != dims:
            raise ValueError("a crossfade must be between motions of the same latent dims")
        object.__setattr__(self, "_drift", _drift_table(self.seed, dims))

    @classmethod
    def for_latent_dim(cls, latent_dim: int, **changes: object) -> Modulation:
        """The default motion for a model with ``latent_dim`` dims (centre 0, default depths), with ``changes``.

        Raises:
            ValueError: an invalid change.

        """
        fast_dims = changes.get("fast_dims", FAST_DIMS)
        depth = pair_depths(latent_dim, fast_dims, DEPTH_FAST, DEPTH_SLOW)  # type: ignore[arg-type]
        return cls(**{"center": (0.0,) * latent_dim, "depth": depth, **changes})  # type: ignore[arg-type]

    @property
    def latent_dim(self) -> int:
        """Number of latent dims."""
        return len(self.center)

    def rates_hz(self) -> tuple[float, float]:
        """(fast, slow) rates in Hz (converted from beats per cycle when ``sync``)."""
        if not self.sync:
            return self.rate_fast_hz, self.rate_slow_hz
        beat_hz = self.tempo_bpm / 60.0
        to_hz = lambda beats: beat_hz / beats if beats > 0 else 0.0  # noqa: E731
        return to_hz(self.rate_fast_hz), to_hz(self.rate_slow_hz)

    def with_phase_reset(self, t_s: float) -> Modulation:
        """The same motion with every LFO restarting at time ``t_s``."""
        return replace(self, phase_origin_s=float(t_s), phase_fast=0.0, phase_slow=0.0)

    def phases_at(self, t_s: float) -> tuple[float, float]:
        """The (fast, slow) LFO phases at time ``t_s``, in cycles of their base rates."""
        fast_hz, slow_hz = self.rates_hz()
        dt = float(t_s) - self.phase_origin_s
        return fast_hz * dt + self.phase_fast, slow_hz * dt + self.phase_slow

    def retimed(self, t_s: float, **changes: object) -> Modulation:
        """The motion with ``changes`` applied (rates, tempo, sync...), its phases continuous at ``t_s``.

        Raises:
            ValueError: an invalid change.

        """
        new = replace(self, **changes)  # type: ignore[arg-type]
        fast, slow = self.phases_at(t_s)
        fast_hz, slow_hz = new.rates_hz()
        dt = float(t_s) - new.phase_origin_s
        # Reduced modulo one cycle where that changes nothing (the fast circle): keeps the
        # numbers small over hours. The slow phase scales by non-integer ratios: kept whole.
        return replace(new, phase_fast=(fast - fast_hz * dt) % 1.0, phase_slow=slow - slow_hz * dt)

    def settled(self) -> Modulation:
        """The same motion without its crossfade state."""
        return replace(self, morph_from=None, morph_start_s=0.0, morph_s=0.0)

    def morphed_to(self, new: Modulation, t_s: float, seconds: float) -> Modulation:
        """``new``, reached from this motion by a crossfade starting at ``t_s`` lasting ``seconds``.

        A crossfade that starts while another runs starts from where z is at ``t_s``
        (that point, held), so crossfades never nest.
        """
        if seconds <= 0.0:
            return new.settled()
        if self.morph_from is not None and t_s < self.morph_start_s + self.morph_s:
            here = tuple(float(v) for v in latent_at(self, t_s))
            origin = replace(self.settled(), mode="static", center=here)
        else:
            origin = self.settled()
        return replace(new.settled(), morph_from=origin, morph_start_s=float(t_s), morph_s=float(seconds))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (recordings, status)."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Modulation) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Modulation:
        """Inverse of :meth:`to_dict`."""
        kw = dict(data)
        for key in ("center", "depth", "fast_dims", "slow_ratio", "envelope"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])  # type: ignore[arg-type]
        if kw.get("morph_from") is not None:
            kw["morph_from"] = cls.from_dict(kw["morph_from"])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=64)
def _drift_table(seed: int, dims: int) -> np.ndarray:
    """The drift walk's seeded ratios and phases ``[dims, 2, 3]`` (cached: every state change builds a Modulation)."""
    rng = np.random.default_rng(seed)
    drift = np.stack([np.array(_DRIFT_RATIOS) * rng.uniform(0.8, 1.25, 3), rng.uniform(0, 2 * np.pi, 3)])
    table = np.broadcast_to(drift, (dims, 2, 3)) + rng.uniform(0, 0.3, (dims, 2, 3))
    table.flags.writeable = False
    return table


def envelope_level(peak: np.ndarray | float, floor_db: float) -> np.ndarray:
    """The follower's linear peak as 0..1: ``floor_db`` (and below) is 0, full scale (0 dBFS) is 1, in dB between."""
    db = 20.0 * np.log10(np.maximum(np.asarray(peak, dtype=np.float64), 1e-12))
    return np.clip((db - floor_db) / -floor_db, 0.0, 1.0)


def latent_at(mod: Modulation, t_s: np.ndarray | float, envelope: np.ndarray | float | None = None) -> np.ndarray:
    """Z at sample-clock time(s) ``t_s``: ``[..., latent_dim]`` float64, within ``+-bound``.

    ``envelope``: the input's envelope follower (linear peak) for each time (shape of
    ``t_s``); with ``mod.envelope`` set, ``z[d] += envelope[d] * level`` (level 0..1,
    :func:`envelope_level`) before the clip. Without it (or None), the level is 0.
    """
    z = _motion_at(mod, t_s, envelope)
    if mod.morph_from is not None:
        t = np.asarray(t_s, dtype=np.float64)[..., None]
        x = np.clip((t - mod.morph_start_s) / max(mod.morph_s, 1e-9), 0.0, 1.0)
        if np.any(x < 1.0):
            w = x * x * (3.0 - 2.0 * x)  # smoothstep: no kink at either end
            z = _motion_at(mod.morph_from, t_s, envelope) * (1.0 - w) + z * w
    return z


def _motion_at(mod: Modulation, t_s: np.ndarray | float, envelope: np.ndarray | float | None = None) -> np.ndarray:
    t = np.asarray(t_s, dtype=np.float64)[..., None] - mod.phase_origin_s
    center, depth = np.asarray(mod.center), np.asarray(mod.depth)
    ratio = np.ones(mod.latent_dim) if mod.slow_ratio is None else np.asarray(mod.slow_ratio)
    if mod.mode in ("static", "manual"):
        z = np.broadcast_to(center, t.shape[:-1] + center.shape).copy()
    elif mod.mode == "spiral":
        fast_hz, slow_hz = mod.rates_hz()
        dims = np.arange(mod.latent_dim)
        slow_cycles = (slow_hz * t + mod.phase_slow) * ratio
        # Slow dims: one LFO each, phases spread so they never move in lockstep.
        z = center + depth * np.sin(2 * np.pi * slow_cycles + dims * (2 * np.pi / max(mod.latent_dim, 1)) + 0.5)
        if mod.latent_dim >= 2:
            a, b = mod.fast_dims
            angle = 2 * np.pi * (fast_hz * t[..., 0] + mod.phase_fast)
            z[..., a] = center[a] + depth[a] * np.cos(angle)
            z[..., b] = center[b] + depth[b] * np.sin(angle)
    else:  # drift
        _, slow_hz = mod.rates_hz()
        ratios, phases = mod._drift[:, 0, :], mod._drift[:, 1, :]
        cycles = ((slow_hz * t + mod.phase_slow) * ratio)[..., None]
        walk = np.sin(2 * np.pi * cycles * ratios + phases).mean(axis=-1)  # in [-1, 1], smooth
        z = center + depth * walk
    if mod.envelope is not None and envelope is not None:  # the player's dynamics move z
        level = envelope_level(envelope, mod.envelope_floor_db)
        z = z + np.asarray(mod.envelope) * np.broadcast_to(level, t.shape[:-1])[..., None]
    return np.clip(z, -mod.bound, mod.bound)
