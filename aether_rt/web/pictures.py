"""The web page's pictures (sweep, map, latent planes): cached on disk per model, drawn in the background.

Drawing them takes seconds (matplotlib, and the model decoded over thousands of latent
points), so ``run --web`` never waits for it:

* :func:`cached_pictures`, before the server starts, reads what an earlier run drew for
  the same model, rate and drawing code (a few small files: milliseconds). Nothing is
  drawn, and matplotlib is not even imported, when every picture is there.
* :func:`start_drawing`, once the server listens, draws the missing ones on a thread of
  its own (``aether-pictures``), writes each to the cache and hands it to the
  :class:`Pictures` store, which tells the server (the page then loads it).

The cache lives in ``default_cache_dir()/pictures`` (``$AETHER_RT_CACHE`` moves it). A
file's name holds a digest of everything the picture depends on (:func:`cache_key`),
files are written atomically (a temporary file, then a rename), and one that is
unreadable or not an intact PNG is drawn again, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("aether_rt.web")

#: Bump when a picture's look changes in a way the source digest of plots.py cannot see
#: (this module's choice of arguments, say), so old cache files are never served.
DRAWING_VERSION = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: How often a drawing thread waiting for the audio to start looks again.
AFTER_POLL_S = 0.02


class Pictures:
    """The page's pictures by name: every name known at once, the bytes once drawn (thread-safe).

    Args:
        names: every picture the page will get, in the order they are drawn.
        ready: those already at hand (from the cache), by name.

    """

    def __init__(self, names: Iterable[str], ready: Mapping[str, bytes] | None = None) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self._png = {n: p for n, p in (ready or {}).items() if n in self.names}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._all = threading.Event()
        if len(self._png) == len(self.names):
            self._all.set()

    def get(self, name: str) -> bytes | None:
        """The PNG bytes of ``name``, or None while it is being drawn (or not a picture of this page)."""
        return self._png.get(name)

    def ready(self) -> list[str]:
        """The names drawn so far, in :attr:`names` order."""
        return [n for n in self.names if n in self._png]

    def missing(self) -> list[str]:
        """The names still to draw, in :attr:`names` order."""
        return [n for n in self.names if n not in self._png]

    def put(self, name: str, png: bytes) -> None:
        """Store a drawn picture and tell every listener (from the drawing thread)."""
        with self._lock:
            self._png[name] = png
            listeners = list(self._listeners)
            if len(self._png) == len(self.names):
                self._all.set()
        for listener in listeners:
            listener(name)

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` whenever a picture becomes ready (on the drawing thread)."""
        with self._lock:
            self._listeners.append(listener)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every picture is ready; whether they all are."""
        return self._all.wait(timeout_s)


def picture_names(latent_dim: int) -> list[str]:
    """The page's pictures for a model: its latent planes (the backdrops, first), then the map and the sweep."""
    planes = [f"plane-{a}-{a + 1}" for a in range(0, latent_dim - 1, 2)]
    return [*planes, "map", "sweep"]


def draw(model: Any, name: str, sample_rate_hz: float) -> bytes:
    """Draw one of :func:`picture_names` as PNG bytes (matplotlib, and the model over a latent grid).

    Raises:
        ValueError: a name that is not one of the page's pictures.

    """
    from aether_rt.plots import figure_png, plane_png, save_map, save_sweep

    if name == "sweep":
        return figure_png(save_sweep, model, sample_rate_hz=sample_rate_hz)
    if name == "map":
        return figure_png(save_map, model, sample_rate_hz=sample_rate_hz)
    if name.startswith("plane-"):
        a, b = (int(d) for d in name.removeprefix("plane-").split("-"))
        return plane_png(model, (a, b), sample_rate_hz=sample_rate_hz)
    raise ValueError(f"no picture called {name!r}")


def draw_all(model: Any, sample_rate_hz: float) -> dict[str, bytes]:
    """Every picture of the page, drawn now (no cache): for tests and benchmarks that want them at once."""
    return {name: draw(model, name, sample_rate_hz) for name in picture_names(model.config.latent_dim)}


def model_digest(model: Any) -> str:
    """SHA-256 of the model's weights: the one its sidecar records (checked on load), else of the parameters."""
    recorded = model.metadata.get("weights_sha256") if isinstance(model.metadata, dict) else None
    if recorded:
        return str(recorded)
    from flax import serialization

    return hashlib.sha256(serialization.to_bytes(model.params)).hexdigest()


def cache_key(model: Any, name: str, sample_rate_hz: float) -> str:
    """A digest of what picture ``name`` depends on: the weights, the rate, the drawing code.

    The drawing code is :data:`DRAWING_VERSION` and the source of :mod:`aether_rt.plots`
    (read, not imported: importing it would import JAX and matplotlib).
    """
    parts = [f"v{DRAWING_VERSION}", model_digest(model), name, f"{float(sample_rate_hz):.3f}", _plots_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cache_path(model: Any, name: str, sample_rate_hz: float, cache_dir: Path | None = None) -> Path:
    """Where picture ``name`` of this model is cached (``cache_dir`` default: ``default_cache_dir()/pictures``)."""
    return _folder(cache_dir) / f"{name}-{cache_key(model, name, sample_rate_hz)}.png"


def png_intact(data: bytes) -> bool:
    """Whether ``data`` is a whole PNG: the signature, then chunks whose CRCs match, ending with IEND."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        end = at + 12 + length
        if end > len(data):
            return False
        kind, body = data[at + 4 : at + 8], data[at + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4 : end])[0]:
            return False
        if kind == b"IEND":
            return end == len(data)
        at = end
    return False


def read_cached(path: Path) -> bytes | None:
    """The cached PNG at ``path``, or None when it is missing, unreadable or damaged (then it is redrawn)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not png_intact(data):
        log.info("web: the cached picture %s is damaged; drawing it again", path.name)
        return None
    return data


def write_cached(path: Path, png: bytes) -> bool:
    """Write ``png`` at ``path`` atomically (temporary file, then rename); whether it was written.

    A cache that cannot be written (a read-only home, a full disk) only costs the next
    start the drawing: it is logged, not raised.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("web: could not cache the picture in %s (%s); the next start draws it again", path.parent, exc)
        return False
    return True


def cached_pictures(model: Any, sample_rate_hz: float, cache_dir: Path | None = None) -> Pictures:
    """The page's pictures for this model and rate, with those an earlier run cached already in place."""
    names = picture_names(model.config.latent_dim)
    found = {}
    for name in names:
        png = read_cached(cache_path(model, name, sample_rate_hz, cache_dir))
        if png is not None:
            found[name] = png
    return Pictures(names, found)


def draw_missing(
    pictures: Pictures,
    model: Any,
    sample_rate_hz: float,
    cache_dir: Path | None = None,
    *,
    stop: threading.Event | None = None,
) -> None:
    """Draw each missing picture, cache it and hand it to ``pictures``; stops between pictures when ``stop`` is set.

    A picture that cannot be drawn is logged and left out (the page keeps its placeholder):
    the effect runs on without it.
    """
    for name in pictures.missing():
        if stop is not None and stop.is_set():
            return
        try:
            png = draw(model, name, sample_rate_hz)
        except Exception:
            log.exception("web: could not draw the %s picture (the page shows it as missing)", name)
            continue
        write_cached(cache_path(model, name, sample_rate_hz, cache_dir), png)
        pictures.put(name, png)


def start_drawing(
    pictures: Pictures,
    model: Any,
    sample_rate_hz: float,
    cache_dir: Path | None = None,
    *,
    stop: threading.Event | None = None,
    after: Callable[[], bool] | None = None,
) -> list[threading.Thread]:
    """Draw the missing pictures on a thread (``aether-pictures``); the started threads (none if all are cached).

    With ``after``, the thread waits until it returns true (``run``: until the audio
    runs), so that importing matplotlib and compiling the model's decoding for the
    grids, which hold the interpreter for seconds, do not delay the start.

    The caller joins the thread before it returns: it runs JAX, and a thread inside XLA
    at interpreter shutdown can crash the process.
    """
    if not pictures.missing():
        return []

    def work() -> None:
        while after is not None and not after():
            if stop is not None and stop.wait(AFTER_POLL_S):
                return
            if stop is None:
                time.sleep(AFTER_POLL_S)
        draw_missing(pictures, model, sample_rate_hz, cache_dir, stop=stop)

    thread = threading.Thread(target=work, name="aether-pictures")
    thread.start()
    return [thread]


def _folder(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from aether_rt.data.datasets import default_cache_dir

    return default_cache_dir() / "pictures"


_PLOTS_DIGEST: list[str] = []


def _plots_digest() -> str:
    if not _PLOTS_DIGEST:
        spec = importlib.util.find_spec("aether_rt.plots")
        source = Path(spec.origin).read_bytes() if spec is not None and spec.origin else b""
        _PLOTS_DIGEST.append(hashlib.sha256(source).hexdigest())
    return _PLOTS_DIGEST[0]
