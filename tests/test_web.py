"""The web page's server over real sockets (no audio): files, Host/Origin, messages, frames, slow pages, IR library."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import signal
from test_encode import write_ir
from test_osc import START, Clock
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

import aether_rt
from aether_rt.control import StateBox, TableDesigner
from aether_rt.errors import UserError
from aether_rt.models.fit import Encoding, read_library
from aether_rt.modulation import latent_at
from aether_rt.preset import PresetShelf, save_preset
from aether_rt.web import protocol
from aether_rt.web.library import start_library
from aether_rt.web.server import MAX_CLIENTS, SEND_TIMEOUT_S, WebServer, host_allowed, origin_allowed

FS = 48_000.0


@pytest.fixture(scope="module")
def model():
    return aether_rt.load_model()


@pytest.fixture(scope="module")
def designer(model) -> TableDesigner:
    return TableDesigner(model, FS)


class Rig:
    """A web server on a free port, driving a state box, with the tables of the moving z."""

    def __init__(self, model, designer: TableDesigner, folder: Path) -> None:
        self.box, self.clock = StateBox(START), Clock()
        save_preset(START, "mine", "a test preset", folder)
        self.shelf = PresetShelf([folder], model)
        self.designer = designer
        self.server = WebServer(
            self.box, self.clock, sample_rate_hz=FS, coeffs=self.coeffs, presets=self.shelf,
            images={"sweep": b"\x89PNG fake"}, port=0,
        )  # fmt: skip
        self.server.start()
        self.url = f"ws://127.0.0.1:{self.server.port}/ws"

    def coeffs(self) -> np.ndarray:
        return np.asarray(self.designer(latent_at(self.box.state.modulation, self.clock())))

    @contextlib.contextmanager
    def page(self) -> Iterator[ClientConnection]:
        with connect(self.url, origin=f"http://127.0.0.1:{self.server.port}", open_timeout=5) as ws:
            hello = json.loads(ws.recv(timeout=5))
            assert hello["type"] == "hello"
            yield ws


@pytest.fixture
def rig(model, designer: TableDesigner, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(model, designer, tmp_path)
    yield r
    r.server.stop()


def _reply(ws: ClientConnection, request_id: int, timeout: float = 3.0) -> dict[str, Any]:
    """The ack or error for ``request_id`` (frames in between are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg["type"] in ("ack", "error") and msg.get("id") == request_id:
            return msg
    raise AssertionError(f"no reply to {request_id}")


def _get(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


def _handshake(host: str, origin: str | None = None) -> bytes:
    """A WebSocket opening request, by hand: for clients no library would be (stalled, forged)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /ws HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]  # fmt: skip
    lines += [f"Origin: {origin}"] if origin else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "ok"),
    [("127.0.0.1:8765", True), ("localhost:8765", True), ("[::1]:8765", True), ("192.168.1.20:8765", True),
     ("LOCALHOST", True), ("evil.example:8765", False), ("127.0.0.1.nip.io:8765", False), ("", False),
     (None, False), ("localhost.evil.example", False), ("[zz]:1", False)],
)  # fmt: skip
def test_host_check_allows_only_names_dns_rebinding_cannot_forge(host: str | None, ok: bool) -> None:
    assert host_allowed(host) is ok
    assert host_allowed("studio.lan:8765", ("studio.lan",))  # a name the user allowed


def test_origin_must_be_the_page_this_server_served() -> None:
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert origin_allowed(None, "127.0.0.1:8765")  # a program, not a browser
    for origin in ("http://evil.example", "http://127.0.0.1:3000", "https://127.0.0.1:8765", "null"):
        assert not origin_allowed(origin, "127.0.0.1:8765"), origin


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "launch"}', "type: expected one of set, preset, save"),
        ('{"type": "set", "param": "volume", "value": 1}', "unknown parameter 'volume'"),
        ('{"type": "set", "param": "mix"}', "mix: no 'value'"),
        ('{"type": "set", "param": "mix", "value": "loud"}', "mix: expected a finite number"),
        ('{"type": "set", "param": "mix", "value": true}', "mix: expected a finite number"),
        ('{"type": "set", "param": "mix", "value": 0.5, "extra": 1}', "unknown field(s) 'extra'"),
        ('{"type": "set", "param": "z", "value": [1, 2]}', "z: expected a list of 4 finite numbers"),
        ('{"type": "set", "param": "z/9", "value": 1}', "'z/9': the model has 4 latent dims (z/0 .. z/3)"),
        ('{"type": "set", "param": "bypass", "value": 1}', "bypass: expected true or false"),
        ('{"type": "set", "param": "reset", "value": false}', "reset: expected true"),
        ('{"type": "preset"}', "expected a preset 'name'"),
        ('{"type": "set", "id": -4, "param": "mix", "value": 0.5}', "id: expected a non-negative integer"),
        ('{"type": "set", "param": "mix", "value": 1e999}', "mix: expected a finite number"),
        ("[" * 100_000, "characters; the limit is"),
    ],
)
def test_malformed_messages_are_named(message: str, error: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=None) as info:
        protocol.parse_request(message, 4)
    assert error in str(info.value)


@pytest.mark.parametrize(
    ("param", "value", "error"),
    [("mix", 1.5, "mix: 1.5 is outside [0, 1]"), ("gain/in", -100, "gain/in: -100 is outside [-60, 24]"),
     ("z/0", 3.5, "z/0: 3.5 is outside [-3, 3]"), ("rate/fast/norm", 1.2, "rate/fast/norm: 1.2 is outside [0, 1]"),
     ("tempo", 5, "tempo: 5 is outside [20, 400]"), ("mode", "wobble", "mode must be one of")],
)  # fmt: skip
def test_out_of_range_values_are_refused_not_clamped(param: str, value: Any, error: str) -> None:
    request = protocol.parse_request(json.dumps({"type": "set", "id": 3, "param": param, "value": value}), 4)
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.apply_set(protocol.page_addresses(4), START, request, 0.0)
    assert error in str(info.value) and info.value.request_id == 3


def test_z_sliders_reach_past_the_motion_bound_and_widen_it() -> None:
    assert START.modulation.bound == 2.0
    request = protocol.parse_request('{"type": "set", "param": "z/1", "value": -2.75}', 4)
    state = protocol.apply_set(protocol.page_addresses(4), START, request, 5.0)
    assert state.modulation.mode == "manual" and state.modulation.bound == 2.75
    assert latent_at(state.modulation, 9.0)[1] == pytest.approx(-2.75)  # not clipped back to 2


def test_the_plotted_curves_are_the_tables_response_through_scipy(designer: TableDesigner) -> None:
    table = np.asarray(designer(np.array([1.0, -0.5, 0.3, 1.5])))
    total, filters = protocol.response_curves(table, FS)
    freqs = protocol.plot_freqs_hz(FS)
    sos = np.concatenate([table[:, :3], np.ones((table.shape[0], 1)), table[:, 3:]], axis=1)
    _, h = signal.sosfreqz(sos, worN=freqs, fs=FS)
    np.testing.assert_allclose(np.array(total) * protocol.DB_STEP, 20 * np.log10(np.abs(h)), atol=0.051)
    _, h7 = signal.sosfreqz(sos[7:8], worN=freqs, fs=FS)
    np.testing.assert_allclose(np.array(filters[7]) * protocol.DB_STEP, 20 * np.log10(np.abs(h7)), atol=0.051)
    assert len(filters) == table.shape[0] and len(total) == protocol.N_PLOT_FREQS


# -- the server over real sockets --------------------------------------------------------


def test_files_are_served_with_a_strict_policy_and_foreign_hosts_refused(rig: Rig) -> None:
    port = rig.server.port
    status, headers, body = _get(port, "/")
    assert status == 200 and b'<script src="/app.js"' in body and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"] and "frame-ancestors 'none'" in headers[
        "Content-Security-Policy"]  # fmt: skip
    for path in ("/app.js", "/style.css", "/img/sweep.png"):
        assert _get(port, path)[0] == 200, path
    html = body.decode()
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html  # nothing from elsewhere
    assert _get(port, "/nothing")[0] == 404
    status, _, body = _get(port, "/", host=f"attacker.example:{port}")
    assert status == 403 and b"DNS rebinding" in body
    assert rig.server.counters["refused"] == 1


def test_a_foreign_origin_or_host_cannot_open_the_socket(rig: Rig) -> None:
    for kwargs in ({"origin": "http://evil.example"}, {"origin": f"http://127.0.0.1:{rig.server.port + 1}"}):
        with pytest.raises(InvalidStatus) as info:
            connect(rig.url, open_timeout=5, **kwargs)
        assert info.value.response.status_code == 403
    with socket.create_connection(("127.0.0.1", rig.server.port), timeout=5) as s:  # a rebinding page's handshake
        s.sendall(_handshake(f"evil.example:{rig.server.port}", f"http://evil.example:{rig.server.port}"))
        assert s.recv(100).startswith(b"HTTP/1.1 403")
    assert rig.server.counters["refused"] == 3
    assert rig.box.version == 0 and rig.server.pages() == 0


def test_a_set_changes_the_state_and_is_acknowledged(rig: Rig) -> None:
    with rig.page() as ws:
        ws.send(json.dumps({"type": "set", "id": 1, "param": "mix", "value": 0.25}))
        assert _reply(ws, 1) == {"type": "ack", "id": 1}
        assert rig.box.state.mix == 0.25
        ws.send(json.dumps({"type": "set", "id": 2, "param": "z", "value": [0.5, -1.0, 2.5, 0.0]}))
        assert _reply(ws, 2)["type"] == "ack"
        assert rig.box.state.modulation.mode == "manual"
        np.testing.assert_allclose(rig.box.state.modulation.center, (0.5, -1.0, 2.5, 0.0))
        ws.send(json.dumps({"type": "set", "id": 3, "param": "rate/fast/norm", "value": 0.0}))
        assert _reply(ws, 3)["type"] == "ack" and rig.box.state.modulation.rate_fast_hz == 0.0


def test_mistakes_get_an_error_reply_and_change_nothing(rig: Rig) -> None:
    with rig.page() as ws:
        version = rig.box.version
        for i, msg in enumerate([
            {"type": "set", "param": "mix", "value": 2.0},
            {"type": "set", "param": "gain/out", "value": "max"},
            {"type": "set", "param": "mode", "value": "wobble"},
            {"type": "preset", "name": "../../etc/passwd"},
            {"type": "preset", "name": "nope"},
            {"type": "save", "name": "mine"},  # exists: never overwritten
        ]):  # fmt: skip
            ws.send(json.dumps({**msg, "id": 10 + i}))
            reply = _reply(ws, 10 + i)
            assert reply["type"] == "error" and reply["message"], msg
        ws.send(b"\x00\x01binary")
        error = json.loads(ws.recv(timeout=3))
        while error["type"] == "frame":
            error = json.loads(ws.recv(timeout=3))
        assert error == {"type": "error", "id": None, "message": "messages are JSON text, not binary"}
        assert rig.box.version == version and rig.box.state == START
        assert rig.server.counters["errors"] == 7 and rig.server.counters["applied"] == 0


def test_presets_load_by_name_and_save_under_a_new_one(rig: Rig, tmp_path: Path) -> None:
    with rig.page() as ws:
        ws.send(json.dumps({"type": "set", "id": 1, "param": "mix", "value": 0.4}))
        _reply(ws, 1)
        ws.send(json.dumps({"type": "save", "id": 2, "name": "from-the-page"}))
        assert _reply(ws, 2)["type"] == "ack"
        saved = (tmp_path / "from-the-page.yaml").read_text()
        assert "mix: 0.4" in saved and "web page" in saved
        ws.send(json.dumps({"type": "preset", "id": 3, "name": "mine"}))
        assert _reply(ws, 3)["type"] == "ack"
        assert rig.box.state.mix == START.mix and rig.shelf.current == "mine"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # the frames say which preset is on
            msg = json.loads(ws.recv(timeout=2))
            if msg["type"] == "frame" and msg["state"]["preset"] == "mine":
                break
        else:
            raise AssertionError("the frames never named the loaded preset")


def test_frames_come_at_30_per_second_with_the_moving_z_and_the_running_table(rig: Rig) -> None:
    with rig.page() as ws:
        frames, started = [], time.monotonic()
        while time.monotonic() - started < 1.5:
            msg = json.loads(ws.recv(timeout=2))
            if msg["type"] == "frame":
                frames.append(msg)
                rig.clock.t += 0.1  # the LFOs move between frames
        assert len(frames) >= 30  # >= 20 per second
        last = frames[-1]
        assert set(last) == {"type", "seq", "t_s", "z", "state", "response", "filters", "meters"}
        assert last["state"]["mode"] == "spiral" and last["state"]["mix"] == 1.0 and last["state"]["bypass"] is False
        assert len({tuple(f["z"]) for f in frames}) > 10  # the moving z
        np.testing.assert_allclose(last["z"], latent_at(START.modulation, last["t_s"]), atol=1e-3)
        total, _ = protocol.response_curves(np.asarray(rig.designer(np.array(last["z"]))), FS)
        assert np.max(np.abs(np.array(last["response"]) - total)) <= 2  # 0.2 dB: z is rounded to 1e-4


def test_a_stalled_page_is_dropped_and_never_delays_the_others(rig: Rig) -> None:
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
    stalled.connect(("127.0.0.1", rig.server.port))
    stalled.sendall(_handshake(f"127.0.0.1:{rig.server.port}"))
    try:
        with rig.page() as ws:
            frames, started, sets = 0, time.monotonic(), 0
            while time.monotonic() - started < 3 * SEND_TIMEOUT_S:
                msg = json.loads(ws.recv(timeout=2))
                frames += msg["type"] == "frame"
                if frames % 10 == 0 and msg["type"] == "frame":
                    sets += 1
                    ws.send(json.dumps({"type": "set", "param": "mix", "value": (sets % 10) / 10}))
            assert frames >= 20 * 3 * SEND_TIMEOUT_S  # the healthy page kept its >= 20 frames/s
            assert rig.box.version >= sets - 1  # and its changes kept landing
        assert rig.server.counters["slow_pages_dropped"] == 1
    finally:
        stalled.close()


def test_pages_beyond_the_limit_are_turned_away(rig: Rig) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_CLIENTS):
            stack.enter_context(rig.page())
        with connect(rig.url, open_timeout=5) as extra, pytest.raises(ConnectionClosed) as info:
            extra.recv(timeout=3)
        assert info.value.rcvd.code == 1013 and "at most" in info.value.rcvd.reason


def test_a_taken_port_is_a_clear_error(rig: Rig) -> None:
    other = WebServer(rig.box, rig.clock, sample_rate_hz=FS, coeffs=rig.coeffs, port=rig.server.port)
    with pytest.raises(UserError) as info:
        other.start()
    assert f"cannot serve the web page on 127.0.0.1:{rig.server.port}" in info.value.message
    assert "--web PORT" in info.value.hint


# -- the IR library (run --ir-library) ----------------------------------------------------


def _library_message(ws: ClientConnection, status: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``library`` message with ``status`` (frames in between are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg["type"] == "library" and msg["status"] == status:
            return msg
    raise AssertionError(f"no library message with status {status!r}")


def _encoding(name: str, z: list[float], fit_db: float, encoder_inside: bool) -> Encoding:
    encoder_z = np.array(z) * (1.0 if encoder_inside else 5.0)
    return Encoding(name, np.array(z), fit_db, encoder_z, fit_db + 3.0, 200)


def test_the_library_message_names_each_ir_by_its_place_in_the_folder() -> None:
    irs = [_encoding("cabs/a.wav", [0.123456, -1.5, 2.0, 0.0], 1.234567, False)]
    msg = protocol.library("ready", "irs", irs, [("notes/b.wav", "cannot read it as audio")])
    assert msg == {
        "type": "library", "status": "ready", "folder": "irs",
        "irs": [{"name": "cabs/a.wav", "z": [0.1235, -1.5, 2.0, 0.0], "fit_db": 1.23, "encoder_in_region": False}],
        "skipped": [{"name": "notes/b.wav", "reason": "cannot read it as audio"}], "message": "",
    }  # fmt: skip
    assert json.loads(json.dumps(msg)) == msg


def test_every_page_gets_the_library_and_a_click_moves_z_or_the_centre(rig: Rig) -> None:
    irs = [
        _encoding("a.wav", [1.5, -0.5, 0.25, -2.0], 1.2, True),
        _encoding("b.wav", [-1.0, 2.0, 0.0, 0.5], 3.4, False),
    ]
    with rig.page() as early:
        rig.server.set_library(protocol.library("encoding", "irs", [], []))
        assert _library_message(early, "encoding")["irs"] == []
        rig.server.set_library(protocol.library("ready", "irs", irs, [("x.wav", "silent")]))
        shown = _library_message(early, "ready")  # pushed to a page that is open
        with rig.page() as late:  # and given to one that opens later, after its hello
            assert _library_message(late, "ready") == shown
        # A click is an ordinary checked set of the IR's whole point: z (the motion stops there) ...
        early.send(json.dumps({"type": "set", "id": 1, "param": "z", "value": shown["irs"][0]["z"]}))
        assert _reply(early, 1)["type"] == "ack"
        assert rig.box.state.modulation.mode == "manual"
        np.testing.assert_allclose(rig.box.state.modulation.center, irs[0].z)
        # ... or the centre the motion runs around.
        early.send(json.dumps({"type": "set", "id": 2, "param": "mode", "value": "spiral"}))
        early.send(json.dumps({"type": "set", "id": 3, "param": "center", "value": shown["irs"][1]["z"]}))
        assert _reply(early, 3)["type"] == "ack"
        assert rig.box.state.modulation.mode == "spiral"
        np.testing.assert_allclose(rig.box.state.modulation.center, irs[1].z)


def test_the_library_is_encoded_beside_a_running_server(rig: Rig, model, tmp_path: Path) -> None:
    folder = tmp_path / "irs"
    (folder / "cabs").mkdir(parents=True)
    write_ir(folder / "bright.wav", lowpass_hz=15_000, highpass_hz=40, peak_hz=5_000, peak=0.5)
    write_ir(folder / "cabs" / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    with rig.page() as ws:
        thread = start_library(rig.server, model, read_library(folder, model.config.feature), refine_steps=50)
        first = _library_message(ws, "encoding")
        assert first["folder"] == "irs" and [s["name"] for s in first["skipped"]] == ["broken.wav"]
        frames_before = rig.server.counters["frames"]
        ready = _library_message(ws, "ready", timeout=120)
        thread.join(5)
        assert rig.server.counters["frames"] > frames_before  # the page kept its frames meanwhile
    assert sorted(ir["name"] for ir in ready["irs"]) == ["bright.wav", "cabs/cab.wav"]
    for ir in ready["irs"]:
        assert len(ir["z"]) == 4 and max(abs(v) for v in ir["z"]) <= 2.0 and ir["fit_db"] > 0
