"""The OSC server over real UDP sockets: every address, validation, time tags, status, feedback."""

from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types
from pythonosc.udp_client import SimpleUDPClient

from aether_rt.control import ControlState, StateBox
from aether_rt.errors import UserError
from aether_rt.modulation import Modulation, latent_at
from aether_rt.osc import HOLD_S, MAX_PENDING, OscServer, parse_allow, parse_endpoint
from aether_rt.preset import PresetError, check_name

START = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=0.5, rate_slow_hz=0.05))


class Clock:
    """A sample clock the test sets (the LFOs' time)."""

    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


class Listener:
    """A UDP socket collecting what the server sends (as address -> list of argument lists)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[float, str, list[Any]]] = []
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.packets += 1
            now = time.monotonic()
            items = list(OscBundle(data)) if data.startswith(b"#bundle") else [OscMessage(data)]
            for m in items:
                self.received.append((now, m.address, list(m.params)))

    def values(self, address: str) -> list[list[Any]]:
        return [p for _, a, p in self.received if a == address]

    def wait_for(self, address: str, timeout: float = 2.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.values(address)
            if got:
                return got[-1]
            time.sleep(0.01)
        raise AssertionError(f"nothing arrived on {address}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box() -> StateBox:
    return StateBox(START)


@pytest.fixture
def server(box: StateBox, clock: Clock, tmp_path: Path) -> Iterator[OscServer]:
    from aether_rt.preset import save_preset

    saved = tmp_path / "saved"

    def recall(name: str) -> ControlState:
        check_name(name)
        if name != "gentle":
            raise PresetError(f"no preset named {name!r}")
        return replace(START, mix=0.4, modulation=replace(START.modulation, mode="drift"), crossfade_s=1.0)

    srv = OscServer(box, clock, port=0, recall_preset=recall,
                    save_preset=lambda name, state: save_preset(state, name, "live", saved))  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: OscServer) -> SimpleUDPClient:
    return SimpleUDPClient("127.0.0.1", server.port)


def _settle(box: StateBox, version: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while box.version == version and time.monotonic() < deadline:
        time.sleep(0.002)
    assert box.version != version, "the state did not change"


def _send(client: SimpleUDPClient, box: StateBox, address: str, *args: Any) -> ControlState:
    version = box.version
    client.send_message(address, list(args) if len(args) != 1 else args[0])
    _settle(box, version)
    return box.state


def _sync(server: OscServer, client: SimpleUDPClient) -> None:
    """Wait until the server has handled everything sent so far (a marker message)."""
    before = server.counters["unknown"]
    client.send_message("/sync-marker", 0)
    deadline = time.monotonic() + 2.0
    while server.counters["unknown"] == before and time.monotonic() < deadline:
        time.sleep(0.002)


# -- every address ----------------------------------------------------------------------


def test_scalars_in_their_units_and_normalised(client: SimpleUDPClient, box: StateBox) -> None:
    assert _send(client, box, "/aether/mix", 0.25).mix == 0.25
    assert _send(client, box, "/aether/mix/norm", 0.75).mix == 0.75
    assert _send(client, box, "/aether/gain/in", -6.0).input_gain_db == -6.0
    # norm spans -60..+24 dB linearly: 0.5 is -18 dB; 1.0 is +24 dB
    assert _send(client, box, "/aether/gain/in/norm", 0.5).input_gain_db == pytest.approx(-18.0)
    assert _send(client, box, "/aether/gain/out/norm", 1.0).output_gain_db == pytest.approx(24.0)
    assert _send(client, box, "/aether/gain/out", 3).output_gain_db == 3.0  # an int is a number too
    assert _send(client, box, "/aether/tempo", 90.0).modulation.tempo_bpm == 90.0
    assert _send(client, box, "/aether/tempo/norm", 0.0).modulation.tempo_bpm == 20.0
    assert _send(client, box, "/aether/rate/slow", 0.2).modulation.rate_slow_hz == pytest.approx(0.2)
    assert _send(client, box, "/aether/rate/fast", 3.0).modulation.rate_fast_hz == pytest.approx(3.0)
    # rates' norm is logarithmic, 0.01..20 Hz, with 0 = stopped: 0.5 is sqrt(0.01 * 20) Hz
    assert _send(client, box, "/aether/rate/fast/norm", 0.5).modulation.rate_fast_hz == pytest.approx(math.sqrt(0.2))
    assert _send(client, box, "/aether/rate/fast/norm", 0.0).modulation.rate_fast_hz == 0.0


def test_depth_scales_the_whole_shape(client: SimpleUDPClient, box: StateBox) -> None:
    # START's depth is (1, 1, 0.8, 0.8): the fast pair's radius 1.5 keeps the slow dims at 0.8x
    depth = _send(client, box, "/aether/depth", 1.5).modulation.depth
    np.testing.assert_allclose(depth, (1.5, 1.5, 1.2, 1.2))
    depth = _send(client, box, "/aether/depth/norm", 0.25).modulation.depth  # of 0..2*bound = 0..4
    np.testing.assert_allclose(depth, (1.0, 1.0, 0.8, 0.8))


def test_z_sets_the_point_and_stops_the_motion(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    state = _send(client, box, "/aether/z", 0.5, -0.5, 1.0, -1.0)
    assert state.modulation.mode == "manual" and state.modulation.center == (0.5, -0.5, 1.0, -1.0)
    np.testing.assert_allclose(latent_at(state.modulation, clock.t + 3.0), (0.5, -0.5, 1.0, -1.0))
    assert _send(client, box, "/aether/z/norm", 0.0, 0.5, 1.0, 0.75).modulation.center == (-2.0, 0.0, 2.0, 1.0)


def test_one_z_dim_keeps_the_others_where_they_are_now(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    here = latent_at(box.state.modulation, clock.t)  # spiral: z is moving
    state = _send(client, box, "/aether/z/2", 1.25)
    expected = here.copy()
    expected[2] = 1.25
    np.testing.assert_allclose(state.modulation.center, expected, atol=1e-12)
    assert state.modulation.mode == "manual"
    assert _send(client, box, "/aether/z/3/norm", 1.0).modulation.center[3] == 2.0


def test_xy_pad_drives_the_fast_pair(client: SimpleUDPClient, box: StateBox) -> None:
    box.update(modulation={"fast_dims": (2, 3)})
    center = _send(client, box, "/aether/xy/norm", 0.75, 0.25).modulation.center
    assert (center[2], center[3]) == (1.0, -1.0)
    center = _send(client, box, "/aether/xy", -0.5, 0.5).modulation.center
    assert (center[2], center[3]) == (-0.5, 0.5)


def test_center_moves_the_motion_without_stopping_it(client: SimpleUDPClient, box: StateBox) -> None:
    state = _send(client, box, "/aether/center", 0.1, 0.2, 0.3, 0.4)
    # (OSC floats are 32-bit: 0.1 arrives as 0.10000000149...)
    assert state.modulation.mode == "spiral" and state.modulation.center == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert _send(client, box, "/aether/center/1", -1.5).modulation.center == pytest.approx((0.1, -1.5, 0.3, 0.4))
    assert _send(client, box, "/aether/center/0/norm", 1.0).modulation.center[0] == 2.0


def test_mode_change_crossfades_the_motion(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    before = box.state.modulation
    state = _send(client, box, "/aether/mode", "static")
    mod = state.modulation
    assert mod.mode == "static" and mod.morph_s == START.crossfade_s
    # z is continuous at the change, and reaches the centre when the crossfade ends
    np.testing.assert_allclose(latent_at(mod, clock.t), latent_at(before, clock.t), atol=1e-9)
    np.testing.assert_allclose(latent_at(mod, clock.t + mod.morph_s), mod.center)


def test_bypass_and_sync_take_ints_floats_and_booleans(client: SimpleUDPClient, box: StateBox) -> None:
    assert _send(client, box, "/aether/bypass", 1).bypass is True
    assert _send(client, box, "/aether/bypass", 0.0).bypass is False  # a TouchOSC toggle
    assert _send(client, box, "/aether/bypass", True).bypass is True
    assert _send(client, box, "/aether/bypass", False).bypass is False


def test_sync_keeps_the_speed_and_the_phase(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    box.update(modulation={"rate_fast_hz": 1.0, "tempo_bpm": 120.0})
    before = box.state.modulation
    mod = _send(client, box, "/aether/sync", 1).modulation
    assert mod.sync and mod.rate_fast_hz == 2.0  # 1 Hz at 2 beats/s is 2 beats per cycle
    assert mod.rates_hz()[0] == pytest.approx(1.0)
    np.testing.assert_allclose(latent_at(mod, clock.t), latent_at(before, clock.t), atol=1e-9)
    mod = _send(client, box, "/aether/tempo", 60.0).modulation  # 2 beats at 1 beat/s: 0.5 Hz, no jump
    assert mod.rates_hz()[0] == pytest.approx(0.5)
    np.testing.assert_allclose(latent_at(mod, clock.t), latent_at(before, clock.t), atol=1e-9)


def test_rate_change_keeps_z_continuous(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    clock.t = 1234.567  # far into a run: a naive rate change would jump by a random phase
    before = latent_at(box.state.modulation, clock.t)
    mod = _send(client, box, "/aether/rate/fast", 7.0).modulation
    np.testing.assert_allclose(latent_at(mod, clock.t), before, atol=1e-9)
    step = latent_at(mod, clock.t + 1e-3) - before  # and it now moves at 7 Hz: ~2 pi 7 r per second
    assert np.hypot(step[0], step[1]) == pytest.approx(2 * np.pi * 7.0 * 1.0 * 1e-3, rel=0.01)


def test_reset_restarts_the_lfos_now(client: SimpleUDPClient, box: StateBox, clock: Clock) -> None:
    clock.t = 77.0
    version = box.version
    client.send_message("/aether/reset", [])
    _settle(box, version)
    mod = box.state.modulation
    assert mod.phase_origin_s == 77.0
    np.testing.assert_allclose(latent_at(mod, 77.0)[:2], (1.0, 0.0))  # cos 0, sin 0: the circle's start


def test_preset_by_name_crossfades_and_paths_are_refused(
    client: SimpleUDPClient, box: StateBox, server: OscServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = _send(client, box, "/aether/preset", "gentle")
    assert state.mix == 0.4 and state.modulation.mode == "drift" and state.modulation.morph_s == 1.0
    assert server.preset_name == "gentle"
    version = box.version
    with caplog.at_level(logging.WARNING, logger="aether_rt.osc"):
        for bad in ("../../etc/passwd", "/tmp/x.yaml", "spiral.yaml", "nope"):
            client.send_message("/aether/preset", bad)
        _sync(server, client)
    assert box.version == version
    assert "'../../etc/passwd' is not a preset name" in caplog.text


def test_preset_save_writes_the_running_state(client: SimpleUDPClient, box: StateBox, server: OscServer,
                                              tmp_path: Path) -> None:  # fmt: skip
    box.update(mix=0.6, modulation={"center": (0.5, 0.0, 0.0, -0.5)})
    client.send_message("/aether/preset/save", "my-sound")
    path = tmp_path / "saved" / "my-sound.yaml"
    deadline = time.monotonic() + 2.0
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    data = yaml.safe_load(path.read_text())
    assert data["mix"] == 0.6 and data["modulation"]["center"] == [0.5, 0, 0, -0.5]
    client.send_message("/aether/preset/save", "my-sound")  # never overwrites
    client.send_message("/aether/preset/save", "../escape")
    _sync(server, client)
    assert server.counters["rejected"] == 2 and not (tmp_path / "escape.yaml").exists()


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "args", "logged"),
    [
        ("/aether/mix", ["loud"], "/aether/mix: expected a number, got str"),
        ("/aether/mix", [float("nan")], "/aether/mix: nan is not a finite number"),
        ("/aether/gain/in", [float("inf")], "/aether/gain/in: inf is not a finite number"),
        ("/aether/mix", [0.1, 0.2], "/aether/mix: expected 1 number(s), got 2"),
        ("/aether/z", [0.1, 0.2, 0.3], "/aether/z: expected 4 number(s), got 3"),
        ("/aether/z/7", [0.1], "/aether/z/7: the model has 4 latent dims, so z/0 .. z/3"),
        ("/aether/mode", ["wobble"], "mode must be one of spiral, drift, static, manual"),
        ("/aether/mode", [3], "/aether/mode: expected one string"),
        ("/aether/bypass", [], "/aether/bypass: expected one argument"),
        ("/aether/nonsense", [1], "unknown address '/aether/nonsense'"),
        ("/other/app", [1], "unknown address '/other/app'"),
        ("/aether/status", [70000], "/aether/status: the port must be 1..65535"),
    ],
)
def test_bad_messages_change_nothing_and_are_named(
    client: SimpleUDPClient, box: StateBox, server: OscServer, caplog: pytest.LogCaptureFixture,
    address: str, args: list[Any], logged: str,
) -> None:  # fmt: skip
    version = box.version
    with caplog.at_level(logging.WARNING, logger="aether_rt.osc"):
        client.send_message(address, args)
        _sync(server, client)
    assert box.version == version
    assert logged in caplog.text


def test_out_of_range_values_are_clamped(client: SimpleUDPClient, box: StateBox) -> None:
    assert _send(client, box, "/aether/mix", 1.7).mix == 1.0
    assert _send(client, box, "/aether/gain/out", -500.0).output_gain_db == -60.0
    assert _send(client, box, "/aether/z", 9.0, -9.0, 0.0, 0.0).modulation.center == (2.0, -2.0, 0.0, 0.0)
    assert _send(client, box, "/aether/rate/fast", 1e9).modulation.rate_fast_hz == 20.0


def test_malformed_packets_and_non_utf8_strings_are_ignored(
    server: OscServer, box: StateBox, caplog: pytest.LogCaptureFixture
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad = [
        b"",
        b"hello",
        b"/aether/mix\x00",  # no type tags
        b"/aether/mix\x00,f\x00\x00",  # a float tag without its 4 bytes
        b"/aether/mode\x00\x00\x00\x00,s\x00\x00\xff\xfe\x00\x00",  # not UTF-8
        b"#bundle\x00" + b"\x00" * 4,  # a truncated time tag
        b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", 1000) + b"/a",  # an element longer than the packet
    ]
    with caplog.at_level(logging.WARNING, logger="aether_rt.osc"):
        for data in bad:
            sock.sendto(data, ("127.0.0.1", server.port))
        client = SimpleUDPClient("127.0.0.1", server.port)
        _sync(server, client)
    assert server.counters["malformed"] == len(bad)
    assert box.version == 0
    assert "ignored a malformed packet from 127.0.0.1" in caplog.text
    assert caplog.text.count("malformed packet") == 1  # rate-limited: one line for the burst
    assert _send(client, box, "/aether/mix", 0.5).mix == 0.5  # and it still works


def _bundle(when: float, *messages: tuple[str, Any]) -> bytes:
    builder = OscBundleBuilder(when)
    for address, value in messages:
        m = OscMessageBuilder(address)
        m.add_arg(value)
        builder.add_content(m.build())
    return builder.build().dgram


def test_time_tags_near_future_waits_far_or_stale_dropped_no_threads(server: OscServer, box: StateBox) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    threads = threading.active_count()
    now = time.time()
    sock.sendto(_bundle(now + 3600, ("/aether/mix", 0.1)), ("127.0.0.1", server.port))
    sock.sendto(_bundle(now - 3600, ("/aether/mix", 0.2)), ("127.0.0.1", server.port))
    sock.sendto(_bundle(osc_types.IMMEDIATELY, ("/aether/gain/in", -3.0)), ("127.0.0.1", server.port))
    sent = time.monotonic()
    sock.sendto(_bundle(time.time() + 0.4, ("/aether/mix", 0.3)), ("127.0.0.1", server.port))
    deadline = time.monotonic() + 3.0
    while box.state.mix != pytest.approx(0.3) and time.monotonic() < deadline:
        time.sleep(0.005)
    waited = time.monotonic() - sent
    assert box.state.mix == pytest.approx(0.3) and box.state.input_gain_db == -3.0
    assert 0.3 <= waited < 1.5  # played when due, not at arrival
    assert server.counters["stale"] == 2
    # A flood of future bundles: a bounded queue, no thread per bundle.
    for _ in range(MAX_PENDING + 200):
        sock.sendto(_bundle(time.time() + 5.0, ("/aether/mix", 0.5)), ("127.0.0.1", server.port))
    _sync(server, SimpleUDPClient("127.0.0.1", server.port))
    assert server.counters["dropped"] >= 200 - 1 and len(server._pending) <= MAX_PENDING
    assert threading.active_count() == threads


def test_nested_bundles_play_and_deep_nesting_is_refused(server: OscServer, box: StateBox) -> None:
    inner = OscBundleBuilder(osc_types.IMMEDIATELY)
    m = OscMessageBuilder("/aether/mix")
    m.add_arg(0.35)
    inner.add_content(m.build())
    outer = OscBundleBuilder(osc_types.IMMEDIATELY)
    outer.add_content(inner.build())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(outer.build().dgram, ("127.0.0.1", server.port))
    deep = b"#bundle\x00" + b"\x00" * 7 + b"\x01"
    for _ in range(2000):  # deeper than any recursion limit
        deep = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(deep)) + deep
    sock.sendto(deep[:60000], ("127.0.0.1", server.port))
    _sync(server, SimpleUDPClient("127.0.0.1", server.port))
    assert box.state.mix == pytest.approx(0.35)
    assert server.counters["malformed"] == 1


def test_the_allow_list_keeps_other_senders_out(box: StateBox, clock: Clock) -> None:
    srv = OscServer(box, clock, port=0, allow=parse_allow(["10.0.0.0/8"]))
    srv.start()
    try:
        SimpleUDPClient("127.0.0.1", srv.port).send_message("/aether/mix", 0.1)
        deadline = time.monotonic() + 2.0
        while srv.counters["denied"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert srv.counters["denied"] == 1 and box.state.mix == 1.0
    finally:
        srv.stop()
    srv = OscServer(box, clock, port=0, allow=parse_allow(["127.0.0.1"]))
    srv.start()
    try:
        assert _send(SimpleUDPClient("127.0.0.1", srv.port), box, "/aether/mix", 0.25).mix == 0.25
    finally:
        srv.stop()


def test_option_mistakes_are_user_errors(box: StateBox, clock: Clock, server: OscServer) -> None:
    with pytest.raises(UserError, match="is not HOST:PORT"):
        parse_endpoint("localhost")
    with pytest.raises(UserError, match="is not an IP address or network"):
        parse_allow(["my-laptop"])
    taken = OscServer(box, clock, port=server.port)
    with pytest.raises(UserError, match=f"cannot listen for OSC on 127.0.0.1:{server.port}"):
        taken.start()


# -- status and feedback ----------------------------------------------------------------


def test_status_replies_with_the_full_state(client: SimpleUDPClient, box: StateBox, server: OscServer) -> None:
    box.update(mix=0.3, bypass=True, modulation={"center": (0.5, 0.0, 0.0, 0.0), "mode": "static"})
    listener = Listener()
    try:
        client.send_message("/aether/status", listener.port)
        assert listener.wait_for("/aether/mix") == [pytest.approx(0.3)]
        assert listener.wait_for("/aether/bypass") == [1]
        assert listener.wait_for("/aether/mode") == ["static"]
        assert listener.wait_for("/aether/z") == [pytest.approx(v) for v in (0.5, 0.0, 0.0, 0.0)]
        assert listener.wait_for("/aether/mix/norm") == [pytest.approx(0.3)]
        assert listener.wait_for("/aether/gain/in/norm") == [pytest.approx(60 / 84, abs=1e-4)]  # 0 dB
        assert listener.wait_for("/aether/status/osc/messages")[0] >= 1
    finally:
        listener.close()


def test_status_replies_to_the_sender_by_default(server: OscServer, box: StateBox) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    m = OscMessageBuilder("/aether/status")
    sock.sendto(m.build().dgram, ("127.0.0.1", server.port))
    data, source = sock.recvfrom(65536)
    assert source[1] == server.port  # from the server's own port: a reply the client can match
    assert "/aether/mix" in {msg.address for msg in OscBundle(data)}


def test_feedback_reaches_subscribers_without_echoing_their_own_values(
    client: SimpleUDPClient, box: StateBox, server: OscServer
) -> None:
    box.update(modulation={"mode": "static"})  # no moving z: only real changes are sent
    listener = Listener()
    try:
        client.send_message("/aether/subscribe", listener.port)
        listener.wait_for("/aether/mix")  # the full state on subscribing
        listener.received.clear()
        box.update(source="web", mix=0.42)  # another source: the subscriber follows
        assert listener.wait_for("/aether/mix") == [pytest.approx(0.42)]
        assert listener.wait_for("/aether/mix/norm") == [pytest.approx(0.42)]
        # The subscriber's own change is not sent back, during the hold or after it.
        listener.received.clear()
        _send(client, box, "/aether/mix", 0.2)
        time.sleep(HOLD_S + 0.3)
        assert listener.values("/aether/mix") == []
        # A value the server clamped is corrected once the hold is over.
        _send(client, box, "/aether/gain/out", 99.0)
        assert listener.wait_for("/aether/gain/out", timeout=HOLD_S + 1.0) == [pytest.approx(24.0)]
        client.send_message("/aether/unsubscribe", listener.port)
        time.sleep(0.1)
        listener.received.clear()
        box.update(source="web", mix=0.9)
        time.sleep(0.3)
        assert listener.values("/aether/mix") == []
    finally:
        listener.close()


def test_moving_z_is_fed_back_at_most_30_times_a_second(box: StateBox) -> None:
    listener = Listener()
    t0 = time.monotonic()
    srv = OscServer(box, lambda: time.monotonic() - t0, port=0, feedback=[("127.0.0.1", listener.port)])
    box.update(modulation={"rate_fast_hz": 2.0})
    srv.start()
    try:
        time.sleep(0.3)
        start = listener.packets
        time.sleep(2.0)
        packets = listener.packets - start
        zs = np.array(listener.values("/aether/z")[-20:])
        print(f"feedback packets in 2 s: {packets}")
        assert 5 <= packets <= 2 * 30 + 1
        assert np.ptp(zs[:, 0]) > 0.1  # it moves
        # --osc-feedback targets are permanent
        SimpleUDPClient("127.0.0.1", srv.port).send_message("/aether/unsubscribe", listener.port)
        time.sleep(0.2)
        assert ("127.0.0.1", listener.port) in srv.subscribers()
    finally:
        srv.stop()
        listener.close()


def test_params_replies_with_the_registry_as_json(client: SimpleUDPClient, box: StateBox, server: OscServer) -> None:
    """/aether/params: every parameter's address, unit, range and scale, for a client to build controls from."""
    import json

    listener = Listener()
    try:
        client.send_message("/aether/params", listener.port)
        (text,) = listener.wait_for("/aether/params")
    finally:
        listener.close()
    served = json.loads(text)
    assert served["latent_dim"] == box.state.modulation.latent_dim
    by_address = {p["address"]: p for p in served["params"]}
    # Ranges as the state classes enforce them: the ends are accepted, just beyond is refused.
    tempo = by_address["/aether/tempo"]
    assert (tempo["min"], tempo["max"], tempo["unit"]) == (20.0, 400.0, "BPM")
    for name in ("gain/in", "gain/out"):
        p = by_address[f"/aether/{name}"]
        key = "input_gain_db" if name == "gain/in" else "output_gain_db"
        box.update(**{key: p["min"]})
        box.update(**{key: p["max"]})
        with pytest.raises(ValueError):
            box.update(**{key: p["max"] + 0.01})
    assert by_address["/aether/rate/fast"]["scale"] == "log0" and by_address["/aether/rate/fast"]["min"] == 0.0
    assert by_address["/aether/mode"]["choices"] == ["spiral", "drift", "static", "manual"]
    # Every served number is an address the server applies (plain and /norm).
    for p in served["params"]:
        if p["kind"] == "number":
            client.send_message(p["address"] + "/norm", 0.5)
    time.sleep(0.3)
    assert server.counters["unknown"] == 0 and server.counters["rejected"] == 0


def test_the_docs_list_every_registry_address() -> None:
    """docs/osc.md's table stays true to the registry: every parameter's address is in it."""
    from pathlib import Path

    from aether_rt.params import PARAMS

    text = (Path(__file__).resolve().parent.parent / "docs" / "osc.md").read_text()
    missing = [p.address for p in PARAMS if f"`{p.address}`" not in text]
    assert missing == []
