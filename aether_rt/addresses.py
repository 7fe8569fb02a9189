"""The control address space, transport-free: what OSC, the web page and MIDI change, and how.

:class:`Addresses` turns ``(address, arguments)`` into a new
:class:`~aether_rt.control.ControlState` (a pure function: no sockets, no threads), and
:func:`state_view` is every fed-back address with its current value. The continuous
parameters (``/aether/mix``, ``/aether/rate/fast``, ...) and their ``/norm`` forms come
from the parameter registry (:mod:`aether_rt.params`); the positional ones (z, the
centre, the fast pair's xy) depend on the model's latent size. The address table is in
docs/osc.md.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from aether_rt.control import ControlState
from aether_rt.modulation import latent_at
from aether_rt.params import BY_NAME, MODES, NUMBERS, Param, from_norm, to_norm

#: Feedback values are rounded to this (so the moving z is not sent for invisible changes).
FEEDBACK_DECIMALS = 4
#: The continuous parameters by address (plain value in its unit; ``/norm`` in 0..1).
SCALARS: dict[str, Param] = {p.address: p for p in NUMBERS.values()}


class RejectedError(Exception):
    """A message that changes nothing (the text says why)."""


def state_view(state: ControlState, live_z: np.ndarray, preset: str = "") -> dict[str, tuple[Any, ...]]:
    """Every fed-back address with its current arguments (plain and ``/norm`` forms).

    ``/aether/z`` (and its parts, and ``/aether/xy``) carry the moving z; ``/aether/center``
    the centre it moves around.
    """
    mod = state.modulation
    bound = mod.bound
    r = lambda v: round(float(v), FEEDBACK_DECIMALS)  # noqa: E731
    zn = lambda v: r(to_norm(float(v), -bound, bound, "lin"))  # noqa: E731
    view: dict[str, tuple[Any, ...]] = {
        "/aether/z": tuple(r(v) for v in live_z),
        "/aether/z/norm": tuple(zn(v) for v in live_z),
        "/aether/center": tuple(r(v) for v in mod.center),
        "/aether/center/norm": tuple(zn(v) for v in mod.center),
        "/aether/mode": (mod.mode,),
        "/aether/bypass": (int(state.bypass),),
        "/aether/sync": (int(mod.sync),),
        "/aether/preset": (preset,),
        "/aether/envelope": tuple(r(v) for v in (mod.envelope or (0.0,) * mod.latent_dim)),
    }
    for i, v in enumerate(live_z):
        view[f"/aether/z/{i}"], view[f"/aether/z/{i}/norm"] = (r(v),), (zn(v),)
    for i, v in enumerate(mod.center):
        view[f"/aether/center/{i}"], view[f"/aether/center/{i}/norm"] = (r(v),), (zn(v),)
    if mod.latent_dim >= 2:
        a, b = mod.fast_dims
        view["/aether/xy"], view["/aether/xy/norm"] = (r(live_z[a]), r(live_z[b])), (zn(live_z[a]), zn(live_z[b]))
    for address, p in SCALARS.items():
        lo, hi, scale = p.norm_span(state)
        value = p.get(state)
        view[address], view[address + "/norm"] = (r(value),), (r(to_norm(value, lo, hi, scale)),)
    return view


def number_arg(address: str, v: Any) -> float:
    """One finite number (not a bool), else RejectedError naming the address."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RejectedError(f"{address}: expected a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise RejectedError(f"{address}: {v} is not a finite number")
    return float(v)


def numbers_arg(address: str, args: list[Any], n: int) -> list[float]:
    """Exactly ``n`` finite numbers."""
    if len(args) != n:
        raise RejectedError(f"{address}: expected {n} number(s), got {len(args)} argument(s)")
    return [number_arg(address, v) for v in args]


def flag_arg(address: str, args: list[Any]) -> bool:
    """One on/off value: a bool, or a number (>= 0.5 is on: TouchOSC toggles send 0.0/1.0)."""
    if len(args) != 1:
        raise RejectedError(f"{address}: expected one argument (0 or 1), got {len(args)}")
    v = args[0]
    if isinstance(v, bool):
        return v
    return number_arg(address, v) >= 0.5  # TouchOSC toggles send 0.0/1.0


def text_arg(address: str, args: list[Any]) -> str:
    """One string."""
    if len(args) != 1 or not isinstance(args[0], str):
        raise RejectedError(f"{address}: expected one string")
    return args[0]


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


class Addresses:
    """The address space: parses a message and returns the new state (pure, no I/O).

    Args:
        latent_dim: the model's latent dims.
        strict: refuse out-of-range values (the web page's rule) instead of clamping them
            (OSC's rule: a fader overshooting by a hair still lands at the end).
        z_limit: if given, plain z and centre values may go this far (the web page's
            sliders reach past the learned region), widening the motion's bound to
            reach them; otherwise they stay within the bound.

    """

    def __init__(self, latent_dim: int, *, strict: bool = False, z_limit: float | None = None) -> None:
        self.latent_dim, self.strict, self.z_limit = latent_dim, strict, z_limit
        self.clamped = 0

    def names(self) -> list[str]:
        """Every address that changes the state (the documented table)."""
        n = self.latent_dim
        out = ["/aether/z", "/aether/z/norm", "/aether/center", "/aether/center/norm", "/aether/xy", "/aether/xy/norm"]
        out += [f"/aether/{k}/{i}{s}" for k in ("z", "center") for i in range(n) for s in ("", "/norm")]
        out += [a + s for a in SCALARS for s in ("", "/norm")]
        out += ["/aether/mode", "/aether/bypass", "/aether/sync", "/aether/reset", "/aether/envelope"]
        return out

    def _bounded(self, value: float, lo: float, hi: float, address: str = "") -> float:
        if not lo <= value <= hi:
            if self.strict:
                raise RejectedError(f"{address}: {value:g} is outside [{lo:g}, {hi:g}]")
            self.clamped += 1
        return _clamp(value, lo, hi)

    def _unit(self, value: float, address: str) -> float:
        """A /norm value: 0..1 (clamped, or refused when strict)."""
        return self._bounded(value, 0.0, 1.0, address) if self.strict else value

    def apply(self, state: ControlState, address: str, args: list[Any], now_s: float) -> ControlState:
        """The state after ``address args`` at sample-clock time ``now_s``.

        Raises:
            RejectedError: an unknown address, or arguments of the wrong type or count.
            KeyError: an address this table does not handle (callers handle it).

        """
        mod = state.modulation
        bound, n = mod.bound, mod.latent_dim
        norm = address.endswith("/norm")
        base = address[: -len("/norm")] if norm else address

        limit = bound if self.z_limit is None else max(bound, self.z_limit)

        def z_values(values: list[float]) -> list[float]:
            if norm:
                return [from_norm(self._unit(v, address), -bound, bound, "lin") for v in values]
            values = [self._bounded(v, -limit, limit, address) for v in values]
            nonlocal mod
            peak = max(abs(v) for v in values)
            if peak > mod.bound:  # only with z_limit: the motion's clip widens to reach the value
                mod = replace(mod, bound=peak)
            return values

        if base in SCALARS:
            p = SCALARS[base]
            (value,) = numbers_arg(address, args, 1)
            lo, hi, scale = p.norm_span(state)
            floor = p.floor(state)  # log0: lo is the norm's low end; 0 (stopped) is allowed
            if norm:
                value = from_norm(self._unit(value, address), lo, hi, scale)
            else:
                value = self._bounded(value, floor, hi, address)
            return p.put(state, value, now_s)
        parts = base.split("/")  # ['', 'aether', 'z', '0']
        if base in ("/aether/z", "/aether/center"):
            point = tuple(z_values(numbers_arg(address, args, n)))
            if base == "/aether/z":  # z itself: the motion stops there
                return replace(state, modulation=replace(mod.settled(), mode="manual", center=point))
            return replace(state, modulation=replace(mod, center=point))
        if len(parts) == 4 and parts[2] in ("z", "center") and parts[3].isdigit():
            i = int(parts[3])
            if i >= n:  # a layout made for a bigger model: say so, rather than "unknown address"
                raise RejectedError(
                    f"{address}: the model has {n} latent dims, so {parts[2]}/0 .. {parts[2]}/{n - 1} (and the "
                    f"{n}-value /aether/{parts[2]})"
                )
            (value,) = z_values(numbers_arg(address, args, 1))
            if parts[2] == "center":
                center = list(mod.center)
                center[i] = value
                return replace(state, modulation=replace(mod, center=tuple(center)))
            here = [float(v) for v in latent_at(state.modulation, now_s)]  # the others stay where they are now
            here[i] = value
            return replace(state, modulation=replace(mod.settled(), mode="manual", center=tuple(here)))
        if address == "/aether/envelope":  # per dim: how far the input's level moves z
            limit = 2 * bound
            amounts = tuple(self._bounded(v, -limit, limit, address) for v in numbers_arg(address, args, n))
            return replace(state, modulation=replace(mod, envelope=amounts))
        if base == "/aether/xy" and n >= 2:
            x, y = z_values(numbers_arg(address, args, 2))
            here = [float(v) for v in latent_at(state.modulation, now_s)]
            a, b = mod.fast_dims
            here[a], here[b] = x, y
            return replace(state, modulation=replace(mod.settled(), mode="manual", center=tuple(here)))
        if norm:
            raise KeyError(address)
        if address == "/aether/mode":
            mode = text_arg(address, args)
            if mode not in MODES:
                raise RejectedError(f"{address}: mode must be one of {', '.join(MODES)}, got {mode!r}")
            return BY_NAME["mode"].put(state, mode, now_s)
        if address in ("/aether/bypass", "/aether/sync"):
            return BY_NAME[address.rsplit("/", 1)[1]].put(state, flag_arg(address, args), now_s)
        if address == "/aether/reset":
            return replace(state, modulation=mod.with_phase_reset(now_s))
        raise KeyError(address)
