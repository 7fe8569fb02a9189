"""The parameter registry: every parameter a player changes, declared once.

Each :class:`Param` has a name (its OSC address is ``/aether/<name>``), a unit, a range
(its plain values), a scale for its normalised 0..1 form (``lin``, ``log``, or ``log0``:
logarithmic with 0 at the bottom, for rates that may stop), a default, how to read it
from a :class:`~aether_rt.control.ControlState` and how to set it. The control surfaces
derive from this table instead of keeping their own copies: the CLI's flags
(:func:`add_flag`), the preset schema's ranges, OSC's plain and ``/norm`` addresses and
their feedback (:mod:`aether_rt.addresses`), the web page's controls and MIDI (learn and
the default map); :func:`describe` serves it as JSON (``/aether/params`` over OSC, and
to the page), the way OSCQuery serves a namespace.

The ranges here are also what the state classes validate against
(:mod:`aether_rt.control`, :mod:`aether_rt.modulation`), so a range is written once.
This module imports neither at load time (they import it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aether_rt.control import ControlState

Scale = Literal["lin", "log", "log0"]
Kind = Literal["number", "toggle", "choice"]

# -- ranges and defaults (the one definition of each) -----------------------------------
MIX_RANGE = (0.0, 1.0)
GAIN_RANGE_DB = (-60.0, 24.0)
#: LFO rates in Hz (0: stopped); with sync, beats per cycle (0: stopped).
RATE_RANGE_HZ = (0.0, 20.0)
BEATS_RANGE = (1.0 / 16.0, 256.0)
#: The /norm forms of rates: logarithmic over these (0 is "stopped").
RATE_NORM_HZ = (0.01, RATE_RANGE_HZ[1])
TEMPO_RANGE_BPM = (20.0, 400.0)
RATE_FAST_HZ, RATE_SLOW_HZ, TEMPO_BPM = 0.5, 0.05, 120.0
#: The fast pair's radius, and the other dims' depth, by default (z units).
DEPTH_FAST, DEPTH_SLOW = 1.0, 0.8
MODES = ("spiral", "drift", "static", "manual")
#: The input's envelope follower (attack and release time constants) and the level that
#: maps to 0 (full scale maps to 1).
ENVELOPE_ATTACK_MS, ENVELOPE_RELEASE_MS, ENVELOPE_FLOOR_DB = 10.0, 200.0, -48.0
ENVELOPE_ATTACK_RANGE_MS, ENVELOPE_RELEASE_RANGE_MS = (0.5, 1000.0), (5.0, 5000.0)
ENVELOPE_FLOOR_RANGE_DB = (-96.0, -6.0)


def to_norm(value: float, lo: float, hi: float, scale: str) -> float:
    """A value in ``[lo, hi]`` as 0..1: ``lin``, ``log`` (lo > 0), or ``log0`` (0 maps to 0)."""
    if scale == "lin":
        return (value - lo) / (hi - lo)
    if scale == "log0" and value <= 0.0:
        return 0.0
    return math.log(max(value, lo) / lo) / math.log(hi / lo)


def from_norm(x: float, lo: float, hi: float, scale: str) -> float:
    """Inverse of :func:`to_norm` (``x`` clamped to 0..1)."""
    x = min(max(x, 0.0), 1.0)
    if scale == "lin":
        return lo + x * (hi - lo)
    if scale == "log0" and x == 0.0:
        return 0.0
    return lo * (hi / lo) ** x


@dataclass(frozen=True)
class Param:
    """One parameter (see the module docstring).

    Attributes:
        name: its name; the OSC address is ``/aether/<name>``.
        label: for people (the page's label).
        unit: of its plain values ("dB", "Hz", "BPM", "z", "" for 0..1 or a toggle).
        kind: ``number``, ``toggle`` (0/1) or ``choice`` (one of ``choices``).
        default: the value a fresh state has.
        limits: the plain values' range (numbers).
        scale: the ``/norm`` form's mapping over ``limits`` (numbers).
        get: the current value in a state.
        put: ``(state, value, now_s) -> state`` (a value within range; now_s: the sample
            clock, for changes that keep an LFO's phase).
        doc: what it does.
        choices: the values of a ``choice``.
        span: when the normalised range depends on the state (rates: Hz, or beats with
            sync), ``state -> (lo, hi, scale)``.
        flag: the CLI flag setting it (``run``, ``render``), if any.

    """

    name: str
    label: str
    unit: str
    kind: Kind
    default: Any
    get: Callable[[ControlState], Any]
    put: Callable[[ControlState, Any, float], ControlState]
    doc: str
    limits: tuple[float, float] = (0.0, 1.0)
    scale: Scale = "lin"
    choices: tuple[str, ...] = ()
    span: Callable[[ControlState], tuple[float, float, Scale]] | None = None
    flag: str | None = None

    @property
    def address(self) -> str:
        """Its OSC address (the page uses the same names)."""
        return f"/aether/{self.name}"

    def norm_span(self, state: ControlState) -> tuple[float, float, Scale]:
        """``(lo, hi, scale)`` of the ``/norm`` form in this state."""
        return self.span(state) if self.span is not None else (*self.limits, self.scale)

    def floor(self, state: ControlState) -> float:
        """The lowest plain value allowed in this state (0 for a rate, which stops it)."""
        lo, _, scale = self.norm_span(state)
        return 0.0 if scale == "log0" else lo

    def set_norm(self, state: ControlState, x: float, now_s: float) -> ControlState:
        """The state with this parameter at normalised position ``x`` (clamped to 0..1)."""
        if self.kind == "toggle":
            return self.put(state, x >= 0.5, now_s)
        if self.kind == "choice":
            i = min(int(min(max(x, 0.0), 1.0) * len(self.choices)), len(self.choices) - 1)
            return self.put(state, self.choices[i], now_s)
        return self.put(state, from_norm(x, *self.norm_span(state)), now_s)

    def norm(self, state: ControlState) -> float:
        """The current value as 0..1."""
        value = self.get(state)
        if self.kind == "toggle":
            return float(bool(value))
        if self.kind == "choice":
            return (self.choices.index(value) + 0.5) / len(self.choices)
        return to_norm(float(value), *self.norm_span(state))


# -- how each parameter applies to the state --------------------------------------------


def _set_depth(state: ControlState, value: float, _t: float) -> ControlState:
    """The fast pair's radius; the other dims keep their proportion to it."""
    from aether_rt.modulation import pair_depths

    mod = state.modulation
    a = mod.fast_dims[0] if mod.latent_dim >= 2 else 0
    old = mod.depth[a]
    if old > 0:
        depth = tuple(min(d * value / old, 2 * mod.bound) for d in mod.depth)
    else:
        depth = pair_depths(mod.latent_dim, mod.fast_dims, value, value * DEPTH_SLOW / DEPTH_FAST)
    return replace(state, modulation=replace(mod, depth=depth))


def _get_depth(state: ControlState) -> float:
    mod = state.modulation
    return mod.depth[mod.fast_dims[0] if mod.latent_dim >= 2 else 0]


def _rate_span(state: ControlState) -> tuple[float, float, Scale]:
    return (*BEATS_RANGE, "log") if state.modulation.sync else (*RATE_NORM_HZ, "log0")


def _rate_put(key: str) -> Callable[[ControlState, float, float], ControlState]:
    def put(state: ControlState, value: float, t: float) -> ControlState:
        if state.modulation.sync and 0.0 < value < BEATS_RANGE[0]:
            value = BEATS_RANGE[0]
        return replace(state, modulation=state.modulation.retimed(t, **{key: value}))

    return put


def _set_sync(state: ControlState, on: bool, t: float) -> ControlState:
    """Switch rates between Hz and beats per cycle, keeping the speed (as near as the ranges allow)."""
    mod = state.modulation
    if on == mod.sync:
        return state
    beat_hz = mod.tempo_bpm / 60.0
    lo, hi = BEATS_RANGE
    if on:
        conv = lambda hz: 0.0 if hz <= 0 else min(max(beat_hz / hz, lo), hi)  # noqa: E731
        rates = [conv(r) for r in (mod.rate_fast_hz, mod.rate_slow_hz)]
    else:
        rates = [min(r, RATE_RANGE_HZ[1]) for r in mod.rates_hz()]
    return replace(state, modulation=mod.retimed(t, sync=on, rate_fast_hz=rates[0], rate_slow_hz=rates[1]))


def _set_mode(state: ControlState, mode: str, t: float) -> ControlState:
    """Another mode, crossfaded from the current motion (``crossfade_s``)."""
    from aether_rt.control import crossfade_to

    mod = state.modulation
    if mode == mod.mode:
        return state
    return crossfade_to(state, replace(state, modulation=replace(mod.settled(), mode=mode)), t)


def _envelope_get(state: ControlState) -> float:
    mod = state.modulation
    return 0.0 if mod.envelope is None else mod.envelope[mod.fast_dims[0] if mod.latent_dim >= 2 else 0]


def _envelope_put(state: ControlState, value: float, _t: float) -> ControlState:
    """The fast pair's envelope amount; other dims keep their proportion to it (none at first)."""
    mod = state.modulation
    a = mod.fast_dims[0] if mod.latent_dim >= 2 else 0
    old = None if mod.envelope is None else mod.envelope[a]
    if old:
        amounts = tuple(min(max(v * value / old, -2 * mod.bound), 2 * mod.bound) for v in mod.envelope)
    else:
        fast = mod.fast_dims if mod.latent_dim >= 2 else (0,)
        amounts = tuple(value if d in fast else 0.0 for d in range(mod.latent_dim))
    return replace(state, modulation=replace(mod, envelope=amounts))


def _envelope_setter(key: str) -> Callable[[ControlState, float, float], ControlState]:
    def put(state: ControlState, value: float, _t: float) -> ControlState:
        return replace(state, modulation=replace(state.modulation, **{key: value}))

    return put


def _sweep_get(state: ControlState) -> float:
    mod = state.modulation
    a, b = mod.fast_dims if mod.latent_dim >= 2 else (0, 0)
    return 0.5 * (mod.center[a] + mod.center[b])


def _sweep_put(state: ControlState, value: float, _t: float) -> ControlState:
    """The centre's fast pair, both at ``value``: a pedal moves the filter along the pair's diagonal."""
    mod = state.modulation
    center = list(mod.center)
    for d in mod.fast_dims if mod.latent_dim >= 2 else (0,):
        center[d] = min(max(value, -mod.bound), mod.bound)
    return replace(state, modulation=replace(mod, center=tuple(center)))


PARAMS: tuple[Param, ...] = (
    Param("mix", "Mix", "", "number", 1.0, lambda s: s.mix, lambda s, v, t: replace(s, mix=v),
          "0 dry .. 1 wet (a glide on the audio side)", MIX_RANGE, flag="--mix"),
    Param("gain/in", "Input gain", "dB", "number", 0.0, lambda s: s.input_gain_db,
          lambda s, v, t: replace(s, input_gain_db=v), "gain before the filters", GAIN_RANGE_DB,
          flag="--input-gain"),
    Param("gain/out", "Output gain", "dB", "number", 0.0, lambda s: s.output_gain_db,
          lambda s, v, t: replace(s, output_gain_db=v), "gain after the mix", GAIN_RANGE_DB, flag="--output-gain"),
    Param("depth", "Depth", "z", "number", DEPTH_FAST, _get_depth, _set_depth,
          "the fast pair's radius; the other dims keep their proportion to it", (0.0, 4.0),
          span=lambda s: (0.0, 2 * s.modulation.bound, "lin"), flag="--depth"),
    Param("rate/fast", "Fast rate", "Hz", "number", RATE_FAST_HZ, lambda s: s.modulation.rate_fast_hz,
          _rate_put("rate_fast_hz"), "the fast pair's rate (beats per cycle with sync; 0 stops it)", RATE_RANGE_HZ,
          "log0", span=_rate_span, flag="--rate-fast"),
    Param("rate/slow", "Slow rate", "Hz", "number", RATE_SLOW_HZ, lambda s: s.modulation.rate_slow_hz,
          _rate_put("rate_slow_hz"), "the other dims' rate (beats per cycle with sync; 0 stops it)", RATE_RANGE_HZ,
          "log0", span=_rate_span, flag="--rate-slow"),
    Param("tempo", "Tempo", "BPM", "number", TEMPO_BPM, lambda s: s.modulation.tempo_bpm,
          lambda s, v, t: replace(s, modulation=s.modulation.retimed(t, tempo_bpm=v)),
          "the tempo rates follow with sync", TEMPO_RANGE_BPM, flag="--tempo"),
    Param("sweep", "Sweep", "z", "number", 0.0, _sweep_get, _sweep_put,
          "the centre along the fast pair's diagonal, both dims at this value: an expression pedal's wah",
          (-2.0, 2.0), span=lambda s: (-s.modulation.bound, s.modulation.bound, "lin")),
    Param("envelope/amount", "Envelope", "z", "number", 0.0, _envelope_get, _envelope_put,
          "how far the input's level moves z along the fast pair at full scale (a latent auto-wah; "
          "negative: the other way)", (-4.0, 4.0),
          span=lambda s: (-2 * s.modulation.bound, 2 * s.modulation.bound, "lin")),
    Param("envelope/attack", "Envelope attack", "ms", "number", ENVELOPE_ATTACK_MS,
          lambda s: s.modulation.envelope_attack_ms, _envelope_setter("envelope_attack_ms"),
          "the level follower's time constant while the level rises", ENVELOPE_ATTACK_RANGE_MS, "log"),
    Param("envelope/release", "Envelope release", "ms", "number", ENVELOPE_RELEASE_MS,
          lambda s: s.modulation.envelope_release_ms, _envelope_setter("envelope_release_ms"),
          "the level follower's time constant while the level falls", ENVELOPE_RELEASE_RANGE_MS, "log"),
    Param("envelope/floor", "Envelope floor", "dB", "number", ENVELOPE_FLOOR_DB,
          lambda s: s.modulation.envelope_floor_db, _envelope_setter("envelope_floor_db"),
          "the input level that moves z by nothing (full scale moves it by the amount)", ENVELOPE_FLOOR_RANGE_DB),
    Param("bypass", "Bypass", "", "toggle", False, lambda s: s.bypass, lambda s, v, t: replace(s, bypass=bool(v)),
          "crossfade to the dry signal"),
    Param("sync", "Sync", "", "toggle", False, lambda s: s.modulation.sync, lambda s, v, t: _set_sync(s, bool(v), t),
          "rates in beats per cycle at the tempo"),
    Param("mode", "Mode", "", "choice", "spiral", lambda s: s.modulation.mode, _set_mode,
          "how z moves (crossfaded)", choices=MODES),
)  # fmt: skip

#: By name.
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
#: The continuous ones (plain and /norm OSC forms).
NUMBERS: dict[str, Param] = {p.name: p for p in PARAMS if p.kind == "number"}


def param(name: str) -> Param:
    """The parameter called ``name``.

    Raises:
        KeyError: no such parameter (the message lists them).

    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no parameter {name!r}; there are: {', '.join(BY_NAME)}") from None


def describe(state: ControlState) -> dict[str, Any]:
    """The registry as JSON-ready data, for a state (its latent size and current ranges).

    Per parameter: name, address, label, unit, kind, default, current value, min/max
    and scale (numbers, as they are now: rates follow sync), choices, doc; and the
    positional addresses (z, centre, xy) with the latent size.
    """
    out = []
    for p in PARAMS:
        entry: dict[str, Any] = {"name": p.name, "address": p.address, "label": p.label, "unit": p.unit,
                                 "kind": p.kind, "default": p.default, "value": p.get(state), "doc": p.doc}  # fmt: skip
        if p.kind == "number":
            lo, hi, scale = p.norm_span(state)
            entry.update(min=p.floor(state), max=hi, scale=scale, norm_min=lo)
            if p.name.startswith("rate/") and state.modulation.sync:
                entry["unit"] = "beats"
        if p.choices:
            entry["choices"] = list(p.choices)
        out.append(entry)
    mod = state.modulation
    return {
        "params": out,
        "latent_dim": mod.latent_dim,
        "z_bound": mod.bound,
        "positional": {
            "/aether/z": f"{mod.latent_dim} numbers: z itself (the motion stops there)",
            "/aether/z/<i>": "one dim of z",
            "/aether/center": f"{mod.latent_dim} numbers: the centre the motion moves around",
            "/aether/center/<i>": "one dim of the centre",
            "/aether/xy": "the fast pair's two dims of z",
            "/aether/reset": "restart the LFOs' phases",
            "/aether/envelope": f"{mod.latent_dim} numbers: per dim, how far the input's level moves z",
        },
    }
