"""The page's start-up: served before the effect is built; its pictures cached per model, drawn in the background."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import numpy as np
import pytest
from PIL import Image
from test_osc import START, Clock
from test_web import _get
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import aether_rt
from aether_rt.control import StateBox
from aether_rt.web import pictures
from aether_rt.web.pictures import Pictures, cache_path, cached_pictures, draw_missing, png_intact, start_drawing
from aether_rt.web.server import WebServer

FS = 48_000.0


def _png(seed: int, size: int = 8) -> bytes:
    """A real PNG written by Pillow (not by the code under test)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _model(weights: str = "a" * 64, latent_dim: int = 4) -> Any:
    """What the cache reads of a model: its latent size and recorded weights hash."""
    return SimpleNamespace(config=SimpleNamespace(latent_dim=latent_dim), metadata={"weights_sha256": weights})


class CountingDraw:
    """Stands in for the slow drawing: a distinct real PNG per call, counted by name."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, name: str, sample_rate_hz: float) -> bytes:
        self.calls.append(name)
        return _png(len(self.calls))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> CountingDraw:
    fake = CountingDraw()
    monkeypatch.setattr(pictures, "draw", fake)
    return fake


# -- PNG check -------------------------------------------------------------------------


def test_a_whole_png_is_intact_and_a_damaged_one_is_not() -> None:
    good = _png(1)
    assert png_intact(good)
    assert not png_intact(good[:-1])  # truncated inside IEND
    assert not png_intact(good[: len(good) // 2])
    assert not png_intact(good + b"junk")
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40  # one bit inside the image data: its CRC no longer matches
    assert not png_intact(bytes(flipped))
    with pytest.raises((OSError, SyntaxError)):  # Pillow agrees that it is broken
        Image.open(io.BytesIO(bytes(flipped))).load()
    assert not png_intact(b"")
    assert not png_intact(b"GIF89a" + good[6:])


# -- the cache -------------------------------------------------------------------------


def test_the_pictures_are_a_plane_per_pair_of_dims_then_the_map_and_the_sweep() -> None:
    assert pictures.picture_names(4) == ["plane-0-1", "plane-2-3", "map", "sweep"]
    assert pictures.picture_names(2) == ["plane-0-1", "map", "sweep"]
    assert pictures.picture_names(8) == ["plane-0-1", "plane-2-3", "plane-4-5", "plane-6-7", "map", "sweep"]


def test_a_first_start_draws_and_caches_and_a_second_draws_nothing(drawn: CountingDraw, tmp_path: Path) -> None:
    model = _model()
    first = cached_pictures(model, FS, tmp_path)
    assert first.ready() == [] and first.missing() == list(first.names)
    draw_missing(first, model, FS, tmp_path)
    assert sorted(drawn.calls) == sorted(first.names)
    files = sorted(tmp_path.iterdir())
    assert len(files) == len(first.names)
    assert all(Image.open(f).size == (8, 8) for f in files)  # whole PNGs, readable by Pillow
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    drawn.calls.clear()
    second = cached_pictures(model, FS, tmp_path)
    assert second.missing() == [] and second.wait(0)
    assert start_drawing(second, model, FS, tmp_path) == []  # no thread at all
    assert drawn.calls == []
    assert {name: second.get(name) for name in second.names} == {name: first.get(name) for name in first.names}
    assert {f: f.stat().st_mtime_ns for f in sorted(tmp_path.iterdir())} == mtimes


def test_a_damaged_or_unreadable_cache_file_is_drawn_again(drawn: CountingDraw, tmp_path: Path) -> None:
    model = _model()
    draw_missing(cached_pictures(model, FS, tmp_path), model, FS, tmp_path)
    truncated, garbage, unreadable = (cache_path(model, n, FS, tmp_path) for n in ("map", "sweep", "plane-2-3"))
    truncated.write_bytes(truncated.read_bytes()[:100])
    garbage.write_bytes(b"not a picture")
    unreadable.unlink()
    unreadable.mkdir()  # a folder where the file should be: reading fails with an OSError
    drawn.calls.clear()
    again = cached_pictures(model, FS, tmp_path)
    assert sorted(again.missing()) == ["map", "plane-2-3", "sweep"]
    draw_missing(again, model, FS, tmp_path)
    assert sorted(drawn.calls) == ["map", "plane-2-3", "sweep"]
    assert again.missing() == []
    assert Image.open(truncated).size == Image.open(garbage).size == (8, 8)  # rewritten whole
    assert again.get("plane-2-3") is not None  # served from memory though it could not be cached


def test_a_cache_that_cannot_be_written_only_costs_the_next_start(drawn: CountingDraw, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    model = _model()
    store = cached_pictures(model, FS, blocked)
    draw_missing(store, model, FS, blocked)
    assert store.missing() == [] and blocked.is_file()


def test_the_key_changes_with_the_weights_the_rate_and_the_picture(tmp_path: Path) -> None:
    one, other = _model("a" * 64), _model("b" * 64)
    assert cache_path(one, "map", FS, tmp_path) == cache_path(_model("a" * 64), "map", FS, tmp_path)
    keys = {
        cache_path(one, "map", FS, tmp_path),
        cache_path(other, "map", FS, tmp_path),
        cache_path(one, "map", 44_100.0, tmp_path),
        cache_path(one, "sweep", FS, tmp_path),
    }
    assert len(keys) == 4


def test_the_key_of_a_saved_model_is_its_weights_files_hash(tmp_path: Path) -> None:
    model = aether_rt.load_model()
    assert pictures.model_digest(model) == hashlib.sha256(model.path.read_bytes()).hexdigest()
    # A model that records no hash (built in memory) is keyed by its parameters.
    bare = SimpleNamespace(config=model.config, metadata={}, params=model.params)
    same = SimpleNamespace(config=model.config, metadata={}, params=jax.tree_util.tree_map(np.array, model.params))
    nudged = SimpleNamespace(config=model.config, metadata={},
                             params=jax.tree_util.tree_map(lambda p: np.asarray(p) + 1e-3, model.params))  # fmt: skip
    assert cache_path(bare, "map", FS, tmp_path) == cache_path(same, "map", FS, tmp_path)
    assert cache_path(bare, "map", FS, tmp_path) != cache_path(nudged, "map", FS, tmp_path)


def test_the_default_folder_follows_the_cache_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AETHER_RT_CACHE", str(tmp_path / "c"))
    assert cache_path(_model(), "map", FS).parent == tmp_path / "c" / "pictures"


def test_drawing_stops_between_pictures_when_asked(drawn: CountingDraw, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    store = cached_pictures(_model(), FS, tmp_path)
    threads = start_drawing(store, _model(), FS, tmp_path, stop=stop)
    for thread in threads:
        thread.join(5)
    assert len(threads) == 1 and not threads[0].is_alive()
    assert drawn.calls == [] and store.missing() == list(store.names)


def test_drawing_waits_for_the_audio_and_can_be_stopped_while_waiting(drawn: CountingDraw, tmp_path: Path) -> None:
    audio = threading.Event()
    store = cached_pictures(_model(), FS, tmp_path)
    (thread,) = start_drawing(store, _model(), FS, tmp_path, stop=threading.Event(), after=audio.is_set)
    time.sleep(0.3)
    assert drawn.calls == [] and thread.is_alive()
    audio.set()
    thread.join(10)
    assert sorted(drawn.calls) == sorted(store.names)

    stop = threading.Event()
    (waiting,) = start_drawing(cached_pictures(_model("c" * 64), FS, tmp_path), _model("c" * 64), FS, tmp_path,
                               stop=stop, after=lambda: False)  # fmt: skip
    stop.set()
    waiting.join(5)
    assert not waiting.is_alive()


def test_a_picture_that_cannot_be_drawn_is_left_out_and_the_rest_are_drawn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def draw(model: Any, name: str, sample_rate_hz: float) -> bytes:
        if name == "map":
            raise RuntimeError("no")
        return _png(3)

    monkeypatch.setattr(pictures, "draw", draw)
    store = cached_pictures(_model(), FS, tmp_path)
    draw_missing(store, _model(), FS, tmp_path)
    assert store.missing() == ["map"]


# -- served while they are drawn ------------------------------------------------------


class Gate:
    """A drawing that waits to be let through, one picture at a time."""

    def __init__(self) -> None:
        self.open = threading.Semaphore(0)
        self.started = threading.Event()

    def __call__(self, model: Any, name: str, sample_rate_hz: float) -> bytes:
        self.started.set()
        assert self.open.acquire(timeout=20), "the test never let the drawing through"
        return _png(sum(map(ord, name)))


def _server(store: Pictures) -> WebServer:
    server = WebServer(StateBox(START), Clock(), sample_rate_hz=FS, coeffs=lambda: np.zeros((32, 5)), images=store,
                       port=0)  # fmt: skip
    server.start()
    return server


def _messages_until(ws: Any, kind: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == kind and msg.get("name") == name:
            return msg
    raise AssertionError(f"no {kind} message for {name}")


def test_the_page_is_served_before_the_pictures_and_told_when_each_is_ready(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gate = Gate()
    monkeypatch.setattr(pictures, "draw", gate)
    model = _model(latent_dim=2)
    store = cached_pictures(model, FS, tmp_path)
    server = _server(store)
    stop = threading.Event()
    threads = start_drawing(store, model, FS, tmp_path, stop=stop)
    try:
        assert gate.started.wait(10)
        status, _, body = _get(server.port, "/")
        assert status == 200 and b"aether-rt" in body
        status, headers, body = _get(server.port, "/img/plane-0-1.png")
        assert status == 503 and headers["Retry-After"] == "1" and b"being drawn" in body
        assert _get(server.port, "/img/nothing.png")[0] == 404
        origin = f"http://127.0.0.1:{server.port}"
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=origin, open_timeout=5) as early:
            hello = json.loads(early.recv(timeout=5))
            assert hello["images"] == ["plane-0-1", "map", "sweep"]
            gate.open.release()  # plane-0-1 is drawn
            _messages_until(early, "image", "plane-0-1")
            status, headers, png = _get(server.port, "/img/plane-0-1.png")
            assert status == 200 and headers["Content-Type"] == "image/png"
            assert png == cache_path(model, "plane-0-1", FS, tmp_path).read_bytes()
            assert _get(server.port, "/img/map.png")[0] == 503
            gate.open.release()  # map
            _messages_until(early, "image", "map")
        # A page opened later is told at once about what is ready, right after its hello.
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=origin, open_timeout=5) as late:
            assert json.loads(late.recv(timeout=5))["type"] == "hello"
            told = [json.loads(late.recv(timeout=5)) for _ in range(2)]
            assert told == [{"type": "image", "name": "plane-0-1"}, {"type": "image", "name": "map"}]
            gate.open.release()  # sweep
            _messages_until(late, "image", "sweep")
        assert store.wait(5)
        assert all(_get(server.port, f"/img/{n}.png")[0] == 200 for n in store.names)
    finally:
        stop.set()
        for _ in range(3):
            gate.open.release()
        for thread in threads:
            thread.join(20)
        server.stop()


def test_the_page_is_served_before_the_effect_exists_and_connects_once_it_is_attached() -> None:
    server = WebServer(None, port=0)
    server.start()
    try:
        status, _, body = _get(server.port, "/")
        assert status == 200 and b"aether-rt" in body
        assert _get(server.port, "/app.js")[0] == 200
        status, headers, body = _get(server.port, "/img/map.png")
        assert status == 503 and headers["Retry-After"] == "1" and b"starting" in body
        origin = f"http://127.0.0.1:{server.port}"
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{server.port}/ws", origin=origin, open_timeout=5)
        assert refused.value.response.status_code == 503
        # Host checks hold from the first request.
        assert _get(server.port, "/", host=f"evil.example:{server.port}")[0] == 403

        box = StateBox(START)
        server.attach(box, Clock(), sample_rate_hz=FS, coeffs=lambda: np.zeros((32, 5)), images={"map": _png(5)})
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=origin, open_timeout=5) as ws:
            hello = json.loads(ws.recv(timeout=5))
            assert hello["type"] == "hello" and hello["latent_dim"] == 4 and hello["images"] == ["map"]
            assert json.loads(ws.recv(timeout=5)) == {"type": "image", "name": "map"}
            ws.send(json.dumps({"type": "set", "id": 1, "param": "mix", "value": 0.25}))
            _messages_until_reply(ws, 1)
        assert box.state.mix == 0.25
        assert _get(server.port, "/img/map.png")[2] == _png(5)
    finally:
        server.stop()


def _messages_until_reply(ws: Any, request_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=10))
        if msg.get("id") == request_id:
            assert msg["type"] == "ack", msg
            return msg
    raise AssertionError(f"no reply to {request_id}")
