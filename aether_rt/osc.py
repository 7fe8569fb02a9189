"""OSC control: a UDP server (python-osc's parsing and building) that drives the control state.

Two threads, always two, whatever arrives:

* the **receiver** reads datagrams, checks the sender against the allow-list, parses
  messages and bundles (nesting at most :data:`MAX_BUNDLE_DEPTH` deep), validates each
  message's address, type tags, count and range, and applies it to the
  :class:`~aether_rt.control.StateBox`. Bundles time-tagged for the near future wait in a
  bounded queue that this same thread serves (python-osc's own server parks a sleeping
  thread per future bundle); far-future and stale ones are dropped. Nothing it does
  touches the audio side: the state box wakes the control thread, which publishes.
* the **feedback** thread sends, at most :data:`FEEDBACK_RATE_HZ` times a second, every
  value that changed (from any source, and the moving z) to the subscribers and the
  ``--osc-feedback`` targets, one bundle per target. A value a client has just sent is
  not sent back to it (no echo loops): what a client sends counts as known to it, and
  its own addresses are held for :data:`HOLD_S` while it moves them.

Mistakes (unknown address, wrong type tags or count, NaN/Inf, a non-UTF-8 string, a
malformed packet, a bad time tag) are counted and logged at most once per
:data:`WARN_INTERVAL_S` per kind, naming the address, and change nothing. Out-of-range
numbers are clamped. The address space is in docs/osc.md and in :data:`ADDRESSES`.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pythonosc import osc_message
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from aether_rt.control import GAIN_RANGE_DB, ControlState, StateBox, crossfade_to
from aether_rt.errors import UserError
from aether_rt.modulation import (
    DEPTH_FAST,
    DEPTH_SLOW,
    MAX_BEATS,
    MAX_RATE_HZ,
    MIN_BEATS,
    MODES,
    latent_at,
    pair_depths,
)

log = logging.getLogger("aether_rt.osc")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9000
FEEDBACK_RATE_HZ = 30.0
#: After a client sends an address, that address is not fed back to it for this long.
HOLD_S = 0.3
MAX_SUBSCRIBERS = 16
#: Future-tagged bundle messages held at once; more are dropped.
MAX_PENDING = 256
#: Bundles tagged further ahead than this, or older than MAX_PAST_S, are dropped.
MAX_FUTURE_S = 10.0
MAX_PAST_S = 1.0
MAX_BUNDLE_DEPTH = 8
WARN_INTERVAL_S = 5.0
MAX_DATAGRAM = 65_536
#: Status replies: at most this many a second per client and overall (with a burst).
STATUS_RATE_PER_CLIENT_HZ = 20.0
STATUS_RATE_HZ, STATUS_BURST = 100.0, 20.0
#: Feedback values are rounded to this (so the moving z is not sent for invisible changes).
FEEDBACK_DECIMALS = 4
#: Normalised rates: 0 is stopped, 0..1 spans RATE_NORM_HZ (Hz) or BEATS_NORM (beats) logarithmically.
RATE_NORM_HZ = (0.01, MAX_RATE_HZ)
BEATS_NORM = (MIN_BEATS, MAX_BEATS)
TEMPO_RANGE_BPM = (20.0, 400.0)


class RejectedError(Exception):
    """A message that changes nothing (the text says why)."""


# -- value conversions (one definition each: handlers, feedback, docs and tests use them) --


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


def _rate_range(state: ControlState) -> tuple[float, float, str]:
    return (*BEATS_NORM, "log") if state.modulation.sync else (*RATE_NORM_HZ, "log0")


@dataclass(frozen=True)
class Scalar:
    """A continuous parameter: plain address in its unit, ``/norm`` in 0..1."""

    get: Callable[[ControlState], float]
    put: Callable[[ControlState, float, float], ControlState]  # (state, value, now_s)
    span: Callable[[ControlState], tuple[float, float, str]]  # (lo, hi, norm scale: lin, log, log0)
    unit: str


def _set_depth(state: ControlState, value: float, _t: float) -> ControlState:
    """The fast pair's radius; the other dims keep their proportion to it."""
    mod = state.modulation
    a = mod.fast_dims[0] if mod.latent_dim >= 2 else 0
    old = mod.depth[a]
    if old > 0:
        depth = tuple(min(d * value / old, 2 * mod.bound) for d in mod.depth)
    else:
        depth = pair_depths(mod.latent_dim, mod.fast_dims, value, value * DEPTH_SLOW / DEPTH_FAST)
    return replace(state, modulation=replace(mod, depth=depth))


def _rate_put(key: str) -> Callable[[ControlState, float, float], ControlState]:
    def put(state: ControlState, value: float, t: float) -> ControlState:
        if state.modulation.sync and 0.0 < value < MIN_BEATS:
            value = MIN_BEATS
        return replace(state, modulation=state.modulation.retimed(t, **{key: value}))

    return put


def _rate_span(state: ControlState) -> tuple[float, float, str]:
    return _rate_range(state)


SCALARS: dict[str, Scalar] = {
    "/aether/mix": Scalar(lambda s: s.mix, lambda s, v, t: replace(s, mix=v), lambda s: (0.0, 1.0, "lin"), "0..1"),
    "/aether/gain/in": Scalar(
        lambda s: s.input_gain_db, lambda s, v, t: replace(s, input_gain_db=v), lambda s: (*GAIN_RANGE_DB, "lin"), "dB"
    ),
    "/aether/gain/out": Scalar(
        lambda s: s.output_gain_db,
        lambda s, v, t: replace(s, output_gain_db=v),
        lambda s: (*GAIN_RANGE_DB, "lin"),
        "dB",
    ),
    "/aether/depth": Scalar(
        lambda s: s.modulation.depth[s.modulation.fast_dims[0] if s.modulation.latent_dim >= 2 else 0],
        _set_depth,
        lambda s: (0.0, 2 * s.modulation.bound, "lin"),
        "z units",
    ),
    "/aether/rate/fast": Scalar(lambda s: s.modulation.rate_fast_hz, _rate_put("rate_fast_hz"), _rate_span, "Hz"),
    "/aether/rate/slow": Scalar(lambda s: s.modulation.rate_slow_hz, _rate_put("rate_slow_hz"), _rate_span, "Hz"),
    "/aether/tempo": Scalar(
        lambda s: s.modulation.tempo_bpm,
        lambda s, v, t: replace(s, modulation=s.modulation.retimed(t, tempo_bpm=v)),
        lambda s: (*TEMPO_RANGE_BPM, "lin"),
        "BPM",
    ),
}


def _set_sync(state: ControlState, on: bool, t: float) -> ControlState:
    """Switch rates between Hz and beats per cycle, keeping the speed (as near as the ranges allow)."""
    mod = state.modulation
    if on == mod.sync:
        return state
    beat_hz = mod.tempo_bpm / 60.0
    if on:
        conv = lambda hz: 0.0 if hz <= 0 else min(max(beat_hz / hz, MIN_BEATS), MAX_BEATS)  # noqa: E731
        rates = [conv(r) for r in (mod.rate_fast_hz, mod.rate_slow_hz)]
    else:
        rates = [min(r, MAX_RATE_HZ) for r in mod.rates_hz()]
    return replace(state, modulation=mod.retimed(t, sync=on, rate_fast_hz=rates[0], rate_slow_hz=rates[1]))


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
    }
    for i, v in enumerate(live_z):
        view[f"/aether/z/{i}"], view[f"/aether/z/{i}/norm"] = (r(v),), (zn(v),)
    for i, v in enumerate(mod.center):
        view[f"/aether/center/{i}"], view[f"/aether/center/{i}/norm"] = (r(v),), (zn(v),)
    if mod.latent_dim >= 2:
        a, b = mod.fast_dims
        view["/aether/xy"], view["/aether/xy/norm"] = (r(live_z[a]), r(live_z[b])), (zn(live_z[a]), zn(live_z[b]))
    for address, p in SCALARS.items():
        lo, hi, scale = p.span(state)
        value = p.get(state)
        view[address], view[address + "/norm"] = (r(value),), (r(to_norm(value, lo, hi, scale)),)
    return view


# -- the address table ------------------------------------------------------------------


def _number(address: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RejectedError(f"{address}: expected a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise RejectedError(f"{address}: {v} is not a finite number")
    return float(v)


def _numbers(address: str, args: list[Any], n: int) -> list[float]:
    if len(args) != n:
        raise RejectedError(f"{address}: expected {n} number(s), got {len(args)} argument(s)")
    return [_number(address, v) for v in args]


def _flag(address: str, args: list[Any]) -> bool:
    if len(args) != 1:
        raise RejectedError(f"{address}: expected one argument (0 or 1), got {len(args)}")
    v = args[0]
    if isinstance(v, bool):
        return v
    return _number(address, v) >= 0.5  # TouchOSC toggles send 0.0/1.0


def _text(address: str, args: list[Any]) -> str:
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
        out += ["/aether/mode", "/aether/bypass", "/aether/sync", "/aether/reset"]
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
            (value,) = _numbers(address, args, 1)
            lo, hi, scale = p.span(state)
            floor = 0.0 if scale == "log0" else lo  # log0: lo is the norm's low end; 0 (stopped) is allowed
            if norm:
                value = from_norm(self._unit(value, address), lo, hi, scale)
            else:
                value = self._bounded(value, floor, hi, address)
            return p.put(state, value, now_s)
        parts = base.split("/")  # ['', 'aether', 'z', '0']
        if base in ("/aether/z", "/aether/center"):
            point = tuple(z_values(_numbers(address, args, n)))
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
            (value,) = z_values(_numbers(address, args, 1))
            if parts[2] == "center":
                center = list(mod.center)
                center[i] = value
                return replace(state, modulation=replace(mod, center=tuple(center)))
            here = [float(v) for v in latent_at(state.modulation, now_s)]  # the others stay where they are now
            here[i] = value
            return replace(state, modulation=replace(mod.settled(), mode="manual", center=tuple(here)))
        if base == "/aether/xy" and n >= 2:
            x, y = z_values(_numbers(address, args, 2))
            here = [float(v) for v in latent_at(state.modulation, now_s)]
            a, b = mod.fast_dims
            here[a], here[b] = x, y
            return replace(state, modulation=replace(mod.settled(), mode="manual", center=tuple(here)))
        if norm:
            raise KeyError(address)
        if address == "/aether/mode":
            mode = _text(address, args)
            if mode not in MODES:
                raise RejectedError(f"{address}: mode must be one of {', '.join(MODES)}, got {mode!r}")
            if mode == mod.mode:
                return state
            return crossfade_to(state, replace(state, modulation=replace(mod.settled(), mode=mode)), now_s)
        if address == "/aether/bypass":
            return replace(state, bypass=_flag(address, args))
        if address == "/aether/sync":
            return _set_sync(state, _flag(address, args), now_s)
        if address == "/aether/reset":
            return replace(state, modulation=mod.with_phase_reset(now_s))
        raise KeyError(address)


# -- the server -------------------------------------------------------------------------


@dataclass
class Target:
    """A feedback destination: what it has been sent, and what it holds."""

    host: str
    port: int
    permanent: bool  # --osc-feedback (not removed by /aether/unsubscribe)
    known: dict[str, tuple[Any, ...]]
    held_until: dict[str, float]


class _Throttle:
    """At most one log line per kind per interval, with a count of what was suppressed."""

    def __init__(self, interval_s: float = WARN_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(kind, (-math.inf, 0))
        if now - last >= self.interval_s:
            more = f" ({suppressed} more like it suppressed)" if suppressed else ""
            log.warning("OSC: %s%s", message, more)
            self._last[kind] = (now, 0)
        else:
            self._last[kind] = (last, suppressed + 1)


def parse_endpoint(text: str, what: str = "--osc-feedback") -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``.

    Raises:
        UserError: not of that form.

    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {text!r} is not HOST:PORT", "for example 127.0.0.1:9001")
    return host.strip("[]"), int(port)


def parse_allow(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``--osc-allow`` entries (addresses or networks) as networks.

    Raises:
        UserError: an entry that is neither.

    """
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise UserError(
                f"--osc-allow {entry!r} is not an IP address or network", "for example 192.168.1.20 or 192.168.1.0/24"
            ) from None
    return nets


_MALFORMED = (osc_types.ParseError, osc_message.ParseError, ValueError, IndexError, UnicodeError, struct.error)
_FIXED_SIZE = {"i": 4, "f": 4, "r": 4, "m": 4, "c": 4, "d": 8, "h": 8, "t": 8}
_NO_DATA = set("TFNI[]")


def _padded_end(data: bytes, start: int) -> int:
    """End of the 0-terminated, 4-byte padded string at ``start``."""
    end = data.index(b"\x00", start)  # ValueError if unterminated
    return (end // 4 + 1) * 4


def parse_message(data: bytes) -> OscMessage:
    """One OSC message, strictly: the type tags must be present and account for every byte.

    python-osc's parser is lenient for old senders (a missing type tag string, a
    truncated last number read as padding); here those are malformed.

    Raises:
        ValueError: malformed (also python-osc's ParseError and UnicodeError for bad strings).

    """
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes is not a multiple of 4")
    index = _padded_end(data, 0)
    if data[index : index + 1] != b",":
        raise ValueError("no type tag string")
    tags_end = _padded_end(data, index)
    tags = data[index + 1 : data.index(b"\x00", index)].decode("ascii")
    index = tags_end
    for tag in tags:
        if tag in _FIXED_SIZE:
            index += _FIXED_SIZE[tag]
        elif tag in "sS":
            index = _padded_end(data, index)
        elif tag == "b":
            (size,) = struct.unpack(">i", data[index : index + 4])
            if size < 0:
                raise ValueError("a negative blob size")
            index += 4 + (size + 3) // 4 * 4
        elif tag not in _NO_DATA:
            raise ValueError(f"unknown type tag {tag!r}")
        if index > len(data):
            raise ValueError("the arguments are shorter than their type tags say")
    if index != len(data):
        raise ValueError(f"{len(data) - index} bytes after the last argument")
    return OscMessage(data)


class OscServer:
    """The OSC server (see the module docstring).

    Args:
        box: the control state it drives.
        clock: the audio sample clock in seconds (what the LFOs run on).
        host: interface to bind (127.0.0.1: this machine only).
        port: UDP port (0: any free one; see :attr:`port`).
        allow: if given, only senders in these networks are heard.
        feedback: permanent feedback targets ``(host, port)``.
        recall_preset: loads a preset by name into a state (raises UserError).
        save_preset: saves a state under a name (raises UserError).
        status: extra figures for ``/aether/status`` (engine counters).
        preset_name: the preset the run started with, or where to read the current one
            (a shared :class:`~aether_rt.preset.PresetShelf`'s, which keeps it up to date).

    """

    def __init__(
        self,
        box: StateBox,
        clock: Callable[[], float],
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allow: list[Any] | None = None,
        feedback: Iterable[tuple[str, int]] = (),
        recall_preset: Callable[[str], ControlState] | None = None,
        save_preset: Callable[[str, ControlState], Any] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        preset_name: str | Callable[[], str] = "",
    ) -> None:
        self.box, self.clock = box, clock
        self.host, self._port = host, port
        self.allow = allow
        self.recall_preset, self.save_preset, self.status_figures = recall_preset, save_preset, status
        self._preset_name = preset_name
        self.addresses = Addresses(box.state.modulation.latent_dim)
        self.counters = dict.fromkeys(
            ("packets", "messages", "applied", "rejected", "unknown", "malformed", "denied", "stale", "scheduled",
             "dropped", "feedback_packets"), 0,
        )  # fmt: skip
        self._throttle = _Throttle()
        self._targets: dict[tuple[str, int], Target] = {}
        self._targets_lock = threading.Lock()
        self._feedback_targets = [self._resolve(h, p) for h, p in feedback]
        self._pending: list[tuple[float, int, str, list[Any], tuple[str, int]]] = []
        self._seq = 0
        self._replied: dict[tuple[str, int], float] = {}
        self._reply_tokens, self._reply_refill = float(STATUS_BURST), time.monotonic()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        """The bound UDP port."""
        return self._sock.getsockname()[1] if self._sock is not None else self._port

    @staticmethod
    def _resolve(host: str, port: int) -> tuple[str, int]:
        try:
            info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except OSError as exc:
            raise UserError(f"cannot resolve OSC host {host!r}: {exc}") from None
        return info[0][4][0], port

    def start(self) -> None:
        """Bind the socket and start the receiver and feedback threads.

        Raises:
            UserError: the address cannot be bound (in use, or not this machine's).

        """
        host, port = self._resolve(self.host, self._port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise UserError(
                f"cannot listen for OSC on {self.host}:{self._port}: {exc.strerror or exc}",
                "another program (or another aether-rt) uses that port: pick another with --osc-port",
            ) from None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # ride out bursts
        self._sock = sock
        for target in self._feedback_targets:
            self._add_target(target, permanent=True)
        self._threads = [
            threading.Thread(target=self._receive_loop, name="aether-osc-receive", daemon=True),
            threading.Thread(target=self._feedback_loop, name="aether-osc-feedback", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close the socket."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        if self._sock is not None:
            self._sock.close()

    # -- receiving ----------------------------------------------------------------------

    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            now = time.time()
            wait = 0.1
            if self._pending:
                wait = min(wait, max(0.0, self._pending[0][0] - now))
            sock.settimeout(max(wait, 1e-4))
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                data = None
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self._run_due()
            if data is not None:
                try:
                    self.handle_datagram(data, sender)
                except Exception as exc:  # the server never dies of a packet
                    self.counters["malformed"] += 1
                    self._throttle.warn("internal", f"packet from {sender[0]} not handled: {exc!r}")

    def _run_due(self) -> None:
        now = time.time()
        while self._pending and self._pending[0][0] <= now:
            _, _, address, args, sender = heapq.heappop(self._pending)
            self._dispatch(address, args, sender)

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """One UDP datagram from ``sender`` (the receiver thread calls this)."""
        self.counters["packets"] += 1
        if self.allow is not None:
            ip = ipaddress.ip_address(sender[0])
            if not any(ip in net for net in self.allow):
                self.counters["denied"] += 1
                self._throttle.warn("denied", f"ignored a packet from {sender[0]}, which --osc-allow does not list")
                return
        try:
            if data.startswith(b"#bundle\x00"):
                self._walk_bundle(data, sender, 0)
            elif data.startswith(b"/"):
                msg = parse_message(data)
                self._dispatch(msg.address, list(msg.params), sender)
            else:
                raise ValueError("neither a message nor a bundle")
        except (
            osc_types.ParseError,
            osc_message.ParseError,
            ValueError,
            IndexError,
            UnicodeError,
            struct.error,
        ) as exc:
            self.counters["malformed"] += 1
            self._throttle.warn("malformed", f"ignored a malformed packet from {sender[0]} ({len(data)} bytes): {exc}")

    def _walk_bundle(self, data: bytes, sender: tuple[str, int], depth: int) -> None:
        if depth >= MAX_BUNDLE_DEPTH:
            raise ValueError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        tag, index = osc_types.get_date(data, 8)
        now = time.time()
        when = now if tag == osc_types.IMMEDIATELY else float(tag)
        elements: list[bytes] = []
        while index < len(data):
            size, index = osc_types.get_int(data, index)
            if size <= 0 or size % 4 or index + size > len(data):
                raise ValueError(f"a bundle element of {size} bytes does not fit")
            elements.append(data[index : index + size])
            index += size
        if when < now - MAX_PAST_S or when > now + MAX_FUTURE_S:
            self.counters["stale"] += 1
            self._throttle.warn(
                "timetag", f"dropped a bundle from {sender[0]} time-tagged {when - now:+.1f} s from now "
                f"(only -{MAX_PAST_S:g} .. +{MAX_FUTURE_S:g} s are played)",
            )  # fmt: skip
            return
        for element in elements:
            if element.startswith(b"#bundle\x00"):
                self._walk_bundle(element, sender, depth + 1)
                continue
            msg = parse_message(element)
            if when <= now:
                self._dispatch(msg.address, list(msg.params), sender)
            elif len(self._pending) < MAX_PENDING:
                self._seq += 1
                heapq.heappush(self._pending, (when, self._seq, msg.address, list(msg.params), sender))
                self.counters["scheduled"] += 1
            else:
                self.counters["dropped"] += 1
                self._throttle.warn("queue", f"dropped a timed message: {MAX_PENDING} are already waiting")

    def _dispatch(self, address: str, args: list[Any], sender: tuple[str, int]) -> None:
        self.counters["messages"] += 1
        try:
            self._handle(address, args, sender)
        except RejectedError as exc:
            self.counters["rejected"] += 1
            self._throttle.warn(f"reject {address}", f"ignored {exc}")
        except KeyError:
            self.counters["unknown"] += 1
            shown = address if len(address) <= 80 else address[:77] + "..."
            self._throttle.warn("unknown", f"ignored unknown address {shown!r} (see docs/osc.md)")
        except UserError as exc:
            self.counters["rejected"] += 1
            self._throttle.warn(f"reject {address}", f"{address}: {exc.args[0]}")

    def _handle(self, address: str, args: list[Any], sender: tuple[str, int]) -> None:
        if address == "/aether/status":
            target = self._reply_to(address, args, sender)
            if self._may_reply(target):
                self._send_status(target)
            return
        if address == "/aether/subscribe":
            target = self._reply_to(address, args, sender)
            self._add_target(target, permanent=False)
            if self._may_reply(target):
                self._send_status(target)
            return
        if address == "/aether/unsubscribe":
            self._remove_target(self._reply_to(address, args, sender))
            return
        if address == "/aether/preset":
            name = _text(address, args)
            if self.recall_preset is None:
                raise RejectedError(f"{address}: presets cannot be loaded here")
            new = self.recall_preset(name)
            now = self.clock()
            self.box.modify(lambda s: crossfade_to(s, new, now), source=f"osc:{sender[0]}")
            self._set_preset_name(name)
            self.counters["applied"] += 1
            return
        if address == "/aether/preset/save":
            name = _text(address, args)
            if self.save_preset is None:
                raise RejectedError(f"{address}: presets cannot be saved here")
            path = self.save_preset(name, self.box.state)
            self._set_preset_name(name)
            log.info("saved preset %s (%s)", name, path)
            self.counters["applied"] += 1
            return
        if not address.startswith("/aether/"):
            raise KeyError(address)
        now = self.clock()
        try:
            self.box.modify(lambda s: self.addresses.apply(s, address, args, now), source=f"osc:{sender[0]}")
        except ValueError as exc:  # a value the state refuses (after clamping: should not happen)
            raise RejectedError(f"{address}: {exc}") from None
        self.counters["applied"] += 1
        self._mark_known(sender[0], address, args)

    @property
    def preset_name(self) -> str:
        """The current preset's name ("" when the state is not a preset's)."""
        name = self._preset_name
        return name() if callable(name) else name

    def _set_preset_name(self, name: str) -> None:
        if not callable(self._preset_name):  # a shared shelf records it itself
            self._preset_name = name

    def _may_reply(self, endpoint: tuple[str, int]) -> bool:
        """Status replies are ~2 KB for a 20-byte request: limited, so nobody can aim them at a third party."""
        now = time.monotonic()
        if len(self._replied) > 1024:
            self._replied.clear()
        self._reply_tokens = min(STATUS_BURST, self._reply_tokens + (now - self._reply_refill) * STATUS_RATE_HZ)
        self._reply_refill = now
        if now - self._replied.get(endpoint, -math.inf) < 1.0 / STATUS_RATE_PER_CLIENT_HZ or self._reply_tokens < 1.0:
            self.counters["rejected"] += 1
            self._throttle.warn("status", "status replies are limited: dropped a /aether/status or /aether/subscribe")
            return False
        self._replied[endpoint] = now
        self._reply_tokens -= 1.0
        return True

    def _reply_to(self, address: str, args: list[Any], sender: tuple[str, int]) -> tuple[str, int]:
        if not args:
            return sender
        (port,) = _numbers(address, args, 1)
        if not (port.is_integer() and 0 < port < 65536):
            raise RejectedError(f"{address}: the port must be 1..65535, got {port:g}")
        return sender[0], int(port)

    # -- feedback -----------------------------------------------------------------------

    def _add_target(self, endpoint: tuple[str, int], permanent: bool) -> None:
        with self._targets_lock:
            if endpoint in self._targets:
                return
            if sum(not t.permanent for t in self._targets.values()) >= MAX_SUBSCRIBERS and not permanent:
                oldest = next(k for k, t in self._targets.items() if not t.permanent)
                del self._targets[oldest]
                self._throttle.warn("subscribers", f"more than {MAX_SUBSCRIBERS} subscribers: dropped {oldest}")
            self._targets[endpoint] = Target(endpoint[0], endpoint[1], permanent, {}, {})

    def _remove_target(self, endpoint: tuple[str, int]) -> None:
        with self._targets_lock:
            target = self._targets.get(endpoint)
            if target is not None and not target.permanent:
                del self._targets[endpoint]

    def subscribers(self) -> list[tuple[str, int]]:
        """The current feedback destinations."""
        with self._targets_lock:
            return list(self._targets)

    def _mark_known(self, host: str, address: str, args: list[Any]) -> None:
        """``host`` just sent ``address args``: that is what it shows, so do not send it back.

        The address is also held for :data:`HOLD_S` (the client is moving it). If the
        server ended with another value (clamped), the difference goes out after the hold.
        """
        sent = tuple(round(v, FEEDBACK_DECIMALS) if isinstance(v, float) else v for v in args)
        until = time.monotonic() + HOLD_S
        with self._targets_lock:
            for target in self._targets.values():
                if target.host == host:
                    target.known[address] = sent
                    target.held_until[address] = until

    def view(self) -> dict[str, tuple[Any, ...]]:
        """The current values of every fed-back address."""
        state = self.box.state
        return state_view(state, latent_at(state.modulation, self.clock()), self.preset_name)

    def _send_status(self, endpoint: tuple[str, int]) -> None:
        view = self.view()
        messages = [(a, v) for a, v in view.items()]
        if self.status_figures is not None:
            for key, value in self.status_figures().items():
                messages.append((f"/aether/status/{key}", (value,)))
        for key, value in self.counters.items():
            messages.append((f"/aether/status/osc/{key}", (int(value),)))
        self._send(endpoint, messages)
        with self._targets_lock:
            target = self._targets.get(endpoint)
            if target is not None:
                target.known.update(view)

    def _send(self, endpoint: tuple[str, int], messages: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Send ``messages`` as bundles of at most ~8 KB (safe for any UDP path)."""
        sock = self._sock
        if sock is None or not messages:
            return
        bundle, size = OscBundleBuilder(osc_types.IMMEDIATELY), 16
        for address, args in messages:
            builder = OscMessageBuilder(address)
            for value in args:
                builder.add_arg(value)
            msg = builder.build()
            if size + msg.size + 4 > 8192:
                self._send_bytes(endpoint, bundle.build().dgram)
                bundle, size = OscBundleBuilder(osc_types.IMMEDIATELY), 16
            bundle.add_content(msg)
            size += msg.size + 4
        self._send_bytes(endpoint, bundle.build().dgram)

    def _send_bytes(self, endpoint: tuple[str, int], data: bytes) -> None:
        try:
            self._sock.sendto(data, endpoint)  # type: ignore[union-attr]
            self.counters["feedback_packets"] += 1
        except OSError as exc:  # an unreachable client must not stop the others
            self._throttle.warn(f"send {endpoint}", f"cannot send feedback to {endpoint[0]}:{endpoint[1]}: {exc}")

    def _feedback_loop(self) -> None:
        period = 1.0 / FEEDBACK_RATE_HZ
        while not self._stop.wait(period):
            try:
                self.feedback_once()
            except Exception as exc:  # feedback is best effort; it must not end
                self._throttle.warn("feedback", f"feedback failed: {exc!r}")

    def feedback_once(self) -> None:
        """Send every target what changed since it was last told (the feedback thread's step)."""
        with self._targets_lock:
            targets = list(self._targets.values())
        if not targets:
            return
        view = self.view()
        now = time.monotonic()
        for target in targets:
            changed = [
                (a, v) for a, v in view.items()
                if target.known.get(a) != v and target.held_until.get(a, 0.0) <= now
            ]  # fmt: skip
            if changed:
                self._send((target.host, target.port), changed)
                with self._targets_lock:
                    target.known.update(changed)
