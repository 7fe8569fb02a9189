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
numbers are clamped. The address space is in docs/osc.md and :mod:`aether_rt.addresses`
(transport-free, shared with the web page and MIDI); the wire format in
:mod:`aether_rt.osc_wire`.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pythonosc import osc_message
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from aether_rt.addresses import FEEDBACK_DECIMALS, Addresses, RejectedError, numbers_arg, state_view, text_arg
from aether_rt.control import ControlState, StateBox, crossfade_to
from aether_rt.errors import UserError
from aether_rt.modulation import latent_at
from aether_rt.osc_wire import parse_message
from aether_rt.params import describe

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
        midi_learn: binds the next MIDI control change to a parameter (``/aether/midi/learn``;
            raises UserError for an unknown one), when MIDI is on.

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
        midi_learn: Callable[[str], None] | None = None,
    ) -> None:
        self.box, self.clock = box, clock
        self.host, self._port = host, port
        self.allow = allow
        self.recall_preset, self.save_preset, self.status_figures = recall_preset, save_preset, status
        self._preset_name = preset_name
        self.midi_learn = midi_learn
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
        if address == "/aether/params":  # the registry as JSON: a client builds its controls from it
            target = self._reply_to(address, args, sender)
            if self._may_reply(target):
                self._send(target, [("/aether/params", (json.dumps(describe(self.box.state)),))])
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
            name = text_arg(address, args)
            if self.recall_preset is None:
                raise RejectedError(f"{address}: presets cannot be loaded here")
            new = self.recall_preset(name)
            now = self.clock()
            self.box.modify(lambda s: crossfade_to(s, new, now), source=f"osc:{sender[0]}")
            self._set_preset_name(name)
            self.counters["applied"] += 1
            return
        if address == "/aether/preset/save":
            name = text_arg(address, args)
            if self.save_preset is None:
                raise RejectedError(f"{address}: presets cannot be saved here")
            path = self.save_preset(name, self.box.state)
            self._set_preset_name(name)
            log.info("saved preset %s (%s)", name, path)
            self.counters["applied"] += 1
            return
        if address == "/aether/midi/learn":  # the MIDI side binds its next control change
            name = text_arg(address, args)
            if self.midi_learn is None:
                raise RejectedError(f"{address}: MIDI is off (run --midi)")
            self.midi_learn(name)
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
        (port,) = numbers_arg(address, args, 1)
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
