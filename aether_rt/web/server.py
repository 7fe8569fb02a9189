"""The web page's server: static files and a WebSocket at ``/ws``, on one asyncio thread.

The ``websockets`` library does all of HTTP and WebSocket framing; this module decides
what to answer. One thread, whatever the number of pages:

* **requests**: the page's files (package data, read once at start) and its pictures
  (sweep, map, latent planes: :mod:`aether_rt.web.pictures`), after the Host check;
  ``/ws`` after the Host and Origin checks (:func:`host_allowed`,
  :func:`origin_allowed`): a page from another site, or reached through a DNS name that
  points here (DNS rebinding), cannot open the socket.
* **pictures** are drawn in the background when not cached: one still being drawn is
  answered 503 with ``Retry-After``, and every page is sent ``{"type": "image",
  "name": ...}`` when it is ready (and after its hello, for each one that is).
* **messages** from a page are checked (:mod:`aether_rt.web.protocol`) and applied to
  the :class:`~aether_rt.control.StateBox`, like OSC; every one gets an ack or an error.
* **frames**: ~30 times a second, while a page is open, the server reads the moving z,
  the state, the meters and the coefficient table the audio is running, computes the
  response, and hands the same JSON text to every page. Each page has a one-frame
  mailbox: a page that reads slowly skips frames instead of queueing them, and one
  that stops reading is dropped after :data:`SEND_TIMEOUT_S`.
* **the IR library** (``run --ir-library``), encoded on a thread of its own
  (:mod:`aether_rt.web.library`): :meth:`WebServer.set_library` sends it to every page,
  and to each new page after its hello.

Nothing here waits on the control thread or touches the audio side except to read it:
the state box wakes the control thread, which publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from aether_rt.control import StateBox, crossfade_to
from aether_rt.errors import UserError
from aether_rt.modulation import latent_at
from aether_rt.params import describe
from aether_rt.web import protocol
from aether_rt.web.pictures import Pictures

log = logging.getLogger("aether_rt.web")
#: The websockets library's own log ("server listening", handshake failures a refusal already counts).
_http_log = logging.getLogger("aether_rt.web.http")
_http_log.setLevel(logging.WARNING)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
FRAME_RATE_HZ = 30.0
MAX_CLIENTS = 8
#: A page whose socket accepts nothing for this long is dropped.
SEND_TIMEOUT_S = 2.0
#: Replies waiting for one page (acks, errors); older ones are dropped past this.
MAX_PENDING_REPLIES = 64
#: Bytes buffered towards one page before a send waits (about two frames), in the library
#: and in the kernel: left to itself, Linux grows a socket's send buffer to megabytes,
#: which a slow page would fill with seconds of stale frames.
WRITE_LIMIT = 64 * 1024
SOCKET_SEND_BUFFER = 128 * 1024
STATIC_FILES = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png"}  # fmt: skip
#: The page loads nothing from elsewhere and may not be framed by another site.
SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
     "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)  # fmt: skip


def _split_host(host: str) -> tuple[str, int | None]:
    """``Host`` header -> (name, port); ``("", None)`` if malformed."""
    try:
        parts = urlsplit("//" + host)
        return (parts.hostname or ""), parts.port
    except ValueError:
        return "", None


def host_allowed(host: str | None, extra_names: tuple[str, ...] = ()) -> bool:
    """Whether a request's ``Host`` names this machine in a way DNS rebinding cannot forge.

    A rebinding attack reaches this server through the attacker's own DNS name, so
    the ``Host`` it carries is that name. Allowed: ``localhost``, any IP address
    literal (a phone on the LAN opening ``http://192.168.1.20:8765``), and names the
    user listed (``--web-allow-host``).
    """
    if not host:
        return False
    name, _ = _split_host(host)
    if not name:
        return False
    if name.lower() == "localhost" or name.lower() in {n.lower() for n in extra_names}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str | None, host: str) -> bool:
    """Whether a WebSocket's ``Origin`` is the page this server served (same scheme, host and port).

    No ``Origin`` at all is a program, not a browser (every browser sends one with a
    WebSocket), and programs on an allowed host may connect.
    """
    if origin is None:
        return True
    return origin.lower() == f"http://{host}".lower()


class _Page:
    """One connected page: its socket, its frame mailbox and its reply queue."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.frame: str | None = None
        self.replies: deque[str] = deque(maxlen=MAX_PENDING_REPLIES)
        self.wake = asyncio.Event()

    def post(self, text: str) -> None:
        self.replies.append(text)
        self.wake.set()


class WebServer:
    """The web page's server (see the module docstring).

    It can listen before the effect exists (``box=None``, then :meth:`attach`): ``run``
    starts it before the slow part of its start-up, so the page is served at once (its
    socket and pictures answer 503 "starting" until then; the page retries every second)
    and a taken port is reported before anything is loaded.

    Args:
        box: the control state it drives (None: attached later).
        clock: the audio sample clock in seconds (what the LFOs run on).
        sample_rate_hz: the rate the tables are designed for.
        coeffs: the coefficient table the audio is running now, ``[n_filters, 5]``.
        meters: the engine's live figures (None: the page shows none).
        presets: the run's preset shelf (None: no preset picker).
        images: the page's pictures (served at ``/img/NAME.png``): a :class:`Pictures`
            store filled in the background, or PNG bytes by name.
        host: interface to bind (127.0.0.1: this machine only).
        port: TCP port (0: any free one; see :attr:`port`).
        allow_hosts: DNS names the page may be opened by, beside localhost and IP addresses.
        frame_rate_hz: page updates per second.

    """

    def __init__(
        self,
        box: StateBox | None,
        clock: Callable[[], float] | None = None,
        *,
        sample_rate_hz: float = 0.0,
        coeffs: Callable[[], np.ndarray] | None = None,
        meters: Callable[[], dict[str, Any]] | None = None,
        presets: Any = None,
        images: Pictures | dict[str, bytes] | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allow_hosts: tuple[str, ...] = (),
        frame_rate_hz: float = FRAME_RATE_HZ,
    ) -> None:
        self.host, self._port, self.allow_hosts = host, port, tuple(allow_hosts)
        self.frame_rate_hz = float(frame_rate_hz)
        self.counters = dict.fromkeys(
            ("requests", "refused", "pages", "messages", "applied", "errors", "frames", "frames_skipped",
             "slow_pages_dropped"), 0,
        )  # fmt: skip
        self._files = self._load_files()
        self._attached = False
        #: Binds the next MIDI control change to a parameter (set before ``attach`` with ``run --midi``;
        #: the page then offers MIDI learn per control).
        self.midi_learn: Callable[[str], None] | None = None
        if box is not None:
            if clock is None or coeffs is None:
                raise TypeError("a WebServer with a box needs its clock and coeffs")
            self.attach(box, clock, sample_rate_hz=sample_rate_hz, coeffs=coeffs, meters=meters, presets=presets,
                        images=images)  # fmt: skip
        self._pages: set[_Page] = set()
        self._ready = threading.Event()
        self._error: OSError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._frame_failed = False
        self._library: str | None = None

    def attach(
        self,
        box: StateBox,
        clock: Callable[[], float],
        *,
        sample_rate_hz: float,
        coeffs: Callable[[], np.ndarray],
        meters: Callable[[], dict[str, Any]] | None = None,
        presets: Any = None,
        images: Pictures | dict[str, bytes] | None = None,
    ) -> None:
        """Connect the effect (the arguments as in the class's); pages may open their socket from now on."""
        self.box, self.clock, self.sample_rate_hz = box, clock, float(sample_rate_hz)
        self.coeffs, self.meters, self.presets = coeffs, meters, presets
        self.latent_dim = box.state.modulation.latent_dim
        self.addresses = protocol.page_addresses(self.latent_dim)
        self.pictures = images if isinstance(images, Pictures) else Pictures(sorted(images or {}), images)
        self.pictures.subscribe(self._picture_ready)
        self._attached = True  # last: the server's thread reads it before anything above

    @staticmethod
    def _load_files() -> dict[str, tuple[bytes, str]]:
        static = resources.files("aether_rt.web") / "static"
        files = {}
        for path, name in STATIC_FILES.items():
            files[path] = ((static / name).read_bytes(), CONTENT_TYPES["." + name.rsplit(".", 1)[1]])
        return files

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Where to open the page."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    def start(self) -> None:
        """Listen, and serve on a thread of its own.

        Raises:
            UserError: the address cannot be bound (taken, or not this machine's).

        """
        self._thread = threading.Thread(target=self._run, name="aether-web", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            self._thread.join(1.0)
            raise UserError(
                f"cannot serve the web page on {self.host}:{self._port}: {self._error.strerror or self._error}",
                "choose another port (--web PORT) or stop the program using it",
            )

    def stop(self) -> None:
        """Close every page and stop the thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5.0)

    def pages(self) -> int:
        """Pages connected now."""
        return len(self._pages)

    def set_library(self, message: dict[str, Any]) -> None:
        """Show the IR library (:func:`~aether_rt.web.protocol.library`) to every page, now and on connection.

        Safe from any thread (the library is encoded on a thread of its own).
        """
        text = self._dumps(message)
        self._library = text
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self._loop.call_soon_threadsafe(self._broadcast_text, text)

    def _picture_ready(self, name: str) -> None:
        """Tell every page a picture is ready (called on the drawing thread)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self._loop.call_soon_threadsafe(self._broadcast, _image_message(name))

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            server: Server = await serve(
                self._connection, self.host, self._port, process_request=self._http,
                max_size=protocol.MAX_MESSAGE_BYTES, max_queue=16, write_limit=WRITE_LIMIT, compression=None,
                server_header=None, logger=_http_log,
            )  # fmt: skip
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        frames = asyncio.create_task(self._frames())
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            frames.cancel()
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    # -- HTTP -------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        """Files, refusals, or None to let ``/ws`` open."""
        self.counters["requests"] += 1
        host = request.headers.get("Host")
        if not host_allowed(host, self.allow_hosts):
            self.counters["refused"] += 1
            return connection.respond(
                HTTPStatus.FORBIDDEN,
                f"aether-rt: the page must be opened as http://localhost:{self.port}/ or by IP address, "
                "not by a DNS name (names pointing here are how DNS rebinding attacks work); "
                "allow a name of your own with --web-allow-host NAME\n",
            )
        path = urlsplit(request.path).path
        if not self._attached and (path == "/ws" or path.startswith("/img/")):
            return _unavailable("aether-rt: the effect is starting; the page connects by itself when it is ready\n")
        if path == "/ws":
            origin = request.headers.get("Origin")
            if not origin_allowed(origin, host or ""):
                self.counters["refused"] += 1
                log.warning("web: refused a WebSocket from a page at %r (only this server's own page may connect)",
                            origin)  # fmt: skip
                return connection.respond(HTTPStatus.FORBIDDEN, "aether-rt: pages from elsewhere cannot connect\n")
            return None
        if path.startswith("/img/") and path.endswith(".png"):
            return self._picture(connection, path[len("/img/") : -len(".png")])
        found = self._files.get("/" if path == "/index.html" else path)
        if path == "/favicon.ico":
            return Response(HTTPStatus.NO_CONTENT.value, HTTPStatus.NO_CONTENT.phrase, Headers(SECURITY_HEADERS))
        if found is None:
            return connection.respond(HTTPStatus.NOT_FOUND, f"aether-rt: nothing at {path}\n")
        return _ok(*found)

    def _picture(self, connection: ServerConnection, name: str) -> Response:
        """A picture, or 503 while it is being drawn (the page waits for its ``image`` message)."""
        if name not in self.pictures.names:
            return connection.respond(HTTPStatus.NOT_FOUND, f"aether-rt: no picture called {name}\n")
        png = self.pictures.get(name)
        if png is None:
            return _unavailable(f"aether-rt: the {name} picture is being drawn; it is sent when ready\n")
        return _ok(png, CONTENT_TYPES[".png"])

    # -- a page's connection ----------------------------------------------------------

    async def _connection(self, ws: ServerConnection) -> None:
        if len(self._pages) >= MAX_CLIENTS:
            self.counters["refused"] += 1
            await ws.close(1013, f"at most {MAX_CLIENTS} pages can be open")
            return
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
        page = _Page(ws)
        self._pages.add(page)
        self.counters["pages"] += 1
        registry = describe(self.box.state)
        hello = protocol.hello(self.latent_dim, self.sample_rate_hz, self._preset_names(), list(self.pictures.names),
                               registry, midi=self.midi_learn is not None)  # fmt: skip
        page.post(self._dumps(hello))
        for name in self.pictures.ready():  # the rest follow as they are drawn (_picture_ready)
            page.post(self._dumps(_image_message(name)))
        if self._library is not None:
            page.post(self._library)
        sender = asyncio.create_task(self._sender(page))
        try:
            async for message in ws:
                reply = self._on_message(message)
                if reply is not None:
                    page.post(self._dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self._pages.discard(page)
            sender.cancel()

    async def _sender(self, page: _Page) -> None:
        """The one writer to a page: replies first, then the newest frame."""
        while True:
            await page.wake.wait()
            page.wake.clear()
            while page.replies or page.frame is not None:
                if page.replies:
                    text = page.replies.popleft()
                else:
                    text, page.frame = page.frame, None
                try:
                    await asyncio.wait_for(page.ws.send(text), SEND_TIMEOUT_S)
                except TimeoutError:
                    self.counters["slow_pages_dropped"] += 1
                    log.warning("web: dropped a page that stopped reading for %.0f s", SEND_TIMEOUT_S)
                    page.ws.transport.abort()
                    return
                except ConnectionClosed:
                    return

    def _on_message(self, message: str | bytes) -> dict[str, Any] | None:
        """Check and apply one message; the reply (None: an ack nobody asked for)."""
        self.counters["messages"] += 1
        rid = None
        try:
            request = protocol.parse_request(message, self.latent_dim)
            rid = request.request_id
            now = self.clock()
            if request.kind == "set":
                self.box.modify(lambda s: protocol.apply_set(self.addresses, s, request, now), source="web")
            elif request.kind == "learn":  # the MIDI side binds its next control change
                if self.midi_learn is None:
                    raise protocol.ProtocolError("learn: MIDI is off (run --midi)", rid)
                self.midi_learn(request.param)
            elif self.presets is None:
                raise protocol.ProtocolError(f"{request.kind}: this run has no presets", rid)
            elif request.kind == "preset":
                new = self.presets.recall(request.value)
                self.box.modify(lambda s: crossfade_to(s, new, now), source="web")
            else:
                path = self.presets.save(request.value, self.box.state, "the web page")
                log.info("web: saved preset %s (%s)", request.value, path)
                self._broadcast({"type": "presets", "names": self._preset_names(), "current": request.value})
        except protocol.ProtocolError as exc:
            self.counters["errors"] += 1
            return {"type": "error", "id": exc.request_id, "message": str(exc)}
        except UserError as exc:  # a preset that cannot be loaded or saved
            self.counters["errors"] += 1
            hint = f" ({exc.hint})" if exc.hint else ""
            return {"type": "error", "id": rid, "message": f"{exc.message}{hint}"}
        self.counters["applied"] += 1
        return None if rid is None else {"type": "ack", "id": rid}

    def _preset_names(self) -> list[str]:
        return self.presets.names() if self.presets is not None else []

    def _broadcast(self, message: dict[str, Any]) -> None:
        self._broadcast_text(self._dumps(message))

    def _broadcast_text(self, text: str) -> None:
        for page in list(self._pages):
            page.post(text)

    @staticmethod
    def _dumps(message: dict[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"))

    # -- frames -----------------------------------------------------------------------

    def frame(self) -> dict[str, Any]:
        """The page's next update: moving z, state, response of the running table, meters."""
        state, t = self.box.state, self.clock()
        self._seq += 1
        preset = self.presets.current if self.presets is not None else ""
        return protocol.frame(
            self._seq, t, latent_at(state.modulation, t), state, preset, self.coeffs(), self.sample_rate_hz,
            self.meters() if self.meters is not None else {},
        )  # fmt: skip

    async def _frames(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.frame_rate_hz
        deadline = loop.time()
        while True:
            deadline += period
            delay = deadline - loop.time()
            if delay < -period:  # fell behind: resynchronise, do not burst
                deadline, delay = loop.time(), 0.0
            await asyncio.sleep(max(delay, 0.0))
            if not self._pages:
                continue
            try:
                text = self._dumps(self.frame())
            except Exception:  # a frame must never take the server down; say it once
                if not self._frame_failed:
                    log.exception("web: could not build a frame (the page's plot stops; control still works)")
                    self._frame_failed = True
                await asyncio.sleep(1.0)
                continue
            self.counters["frames"] += 1
            for page in list(self._pages):
                if page.frame is not None:
                    self.counters["frames_skipped"] += 1
                page.frame = text
                page.wake.set()


def _ok(body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), *SECURITY_HEADERS])
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)


def _unavailable(text: str) -> Response:
    """503 with ``Retry-After``: not yet (the effect starting, a picture being drawn)."""
    body = text.encode()
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                       ("Retry-After", "1"), *SECURITY_HEADERS])  # fmt: skip
    status = HTTPStatus.SERVICE_UNAVAILABLE
    return Response(status.value, status.phrase, headers, body)


def _image_message(name: str) -> dict[str, Any]:
    """``/img/NAME.png`` can be loaded now."""
    return {"type": "image", "name": name}
