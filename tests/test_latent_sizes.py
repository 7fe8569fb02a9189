"""Any latent size, everywhere: models of latent size 2 (trained here by the CLI), 4 and 8.

Every shipped preset (the presets/ folder, so a new one is covered without editing this
file) with every size, through the command line; every OSC address over real UDP; the
web page's messages; and the model commands producing their files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import LATENT_SIZES
from pythonosc.udp_client import SimpleUDPClient
from test_osc import Clock, Listener

import aether_rt
from aether_rt.control import ControlState, StateBox
from aether_rt.errors import UserError
from aether_rt.modulation import Modulation, latent_at
from aether_rt.osc import OscServer
from aether_rt.preset import PresetShelf, load_preset_file
from aether_rt.render import render
from aether_rt.sources import demo_phrase

SHIPPED = sorted(Path(str(resources.files("aether_rt.presets"))).glob("*.yaml"))
FS = 48_000


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)} if cwd else None  # no user presets
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)  # fmt: skip


def _model(models: dict[int, str], size: int):
    return aether_rt.load_model(models[size])


def test_the_shipped_presets_are_the_folder() -> None:
    assert {p.stem for p in SHIPPED} >= {"spiral", "drift", "static", "slow-phaser", "tremor", "swapped", "room"}


def test_models_have_the_size_they_say(models_by_latent_size: dict[int, str]) -> None:
    for size in LATENT_SIZES:
        model = _model(models_by_latent_size, size)
        assert model.config.latent_dim == size
        z = np.linspace(-1, 1, size)
        assert np.all(np.isfinite(model.decode(z[None]).freq_hz))
    # the 2-D one was trained by the command line, and learned something
    metrics = Path(models_by_latent_size[2], "metrics.jsonl").read_text().splitlines()
    first, last = json.loads(metrics[0]), json.loads(metrics[-1])
    assert last["step"] == 60 and last["val_lsd_db"] < first["val_lsd_db"]


# -- presets: the schema, for every size ----------------------------------------------------

#: What the shipped presets were, written for the 4-D model as per-dim lists before the
#: size-independent form: they must still mean exactly this with the 4-D model.
BEFORE_4D = {
    "room": {"depth": (0.4, 0.4, 0.25, 0.25)},
    "slow-phaser": {"depth": (1.4, 1.4, 0.3, 0.3)},
    "spiral": {"center": (0, 0, 0, 0), "depth": (1.0, 1.0, 0.8, 0.8), "fast_dims": (0, 1)},
    "static": {"center": (0, 0, 0, 0)},
    "swapped": {"depth": (0.8, 0.8, 1.0, 1.0), "fast_dims": (2, 3)},
    "tremor": {"depth": (1.8, 1.8, 0.5, 0.5)},
    "drift": {"depth": (1.2, 1.2, 1.2, 1.2)},
}


@pytest.mark.parametrize("name", sorted(BEFORE_4D))
def test_shipped_presets_mean_on_the_4d_model_what_they_meant(name: str) -> None:
    mod = load_preset_file(next(p for p in SHIPPED if p.stem == name), 4).state.modulation
    for key, value in BEFORE_4D[name].items():
        assert getattr(mod, key) == value, (name, key)


def _fast_pair(data: dict, size: int) -> tuple[int, int]:
    a, b = data.get("modulation", {}).get("fast_dims", [0, 1])
    return a % size, b % size


@pytest.mark.parametrize("size", LATENT_SIZES)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_preset_fits_every_size_and_moves_as_written(path: Path, size: int) -> None:
    """The motion, from the file's own numbers: the fast pair circles at depth_fast, the rest swing depth_slow."""
    data = yaml.safe_load(path.read_text())
    mod = load_preset_file(path, size).state.modulation
    assert mod.latent_dim == size and len(mod.depth) == size
    section = data.get("modulation", {})
    if mod.mode != "spiral" or "center_ir" in data:
        return
    a, b = _fast_pair(data, size)
    assert mod.fast_dims == (a, b)
    fast = section.get("depth_fast", 1.0)
    slow = section.get("depth_slow", 0.8)
    _, slow_hz = mod.rates_hz()
    t = np.linspace(0.0, 1.0 / slow_hz, 20_001)  # one whole slow cycle
    z = latent_at(mod, t)
    np.testing.assert_allclose(np.hypot(z[:, a], z[:, b]), min(fast, mod.bound), atol=1e-9)
    for d in set(range(size)) - {a, b}:
        assert abs(np.max(np.abs(z[:, d])) - slow) < 1e-3, d


@pytest.mark.parametrize("size", LATENT_SIZES)
def test_a_per_dim_list_must_fit_the_model(tmp_path: Path, size: int) -> None:
    from aether_rt.preset import PresetError

    path = tmp_path / "lists.yaml"
    path.write_text(yaml.safe_dump({"description": "x", "modulation": {"center": [0.5] * size, "depth": 1.5}}))
    mod = load_preset_file(path, size).state.modulation
    assert mod.center == (0.5,) * size and mod.depth == (1.5,) * size
    for other in set(LATENT_SIZES) - {size}:
        with pytest.raises(PresetError) as err:
            load_preset_file(path, other)
        message = str(err.value)
        assert str(path) in message and "modulation.center" in message
        assert f"{size} values" in message and f"model has {other} latent dims" in message
    path.write_text(yaml.safe_dump({"description": "x", "modulation": {"fast_dims": [1, size]}}))
    with pytest.raises(PresetError, match=rf"modulation.fast_dims \[1, {size}\] .* has {size} latent dims"):
        load_preset_file(path, size)


# -- render through the command line: every preset, every size ------------------------------


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    return demo_phrase(float(FS), seconds=12.0)[:, None].astype(np.float32)


@pytest.mark.parametrize("size", LATENT_SIZES)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_render_every_preset_with_every_size(
    path: Path, size: int, models_by_latent_size: dict[int, str], demo: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"
    done = _cli("render", "demo", str(out), "--model", models_by_latent_size[size], "--preset", str(path))
    assert done.returncode == 0, done.stderr
    y, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == FS and y.shape[0] == demo.shape[0] and np.all(np.isfinite(y))
    assert np.sqrt(np.mean(y**2)) > 0.01
    # Against the same preset held still (in this process): a moving preset moves the sound.
    model = _model(models_by_latent_size, size)
    state = load_preset_file(path, size).state_for(model)
    held = replace(state, modulation=replace(state.modulation, mode="static"))
    still = render(demo, FS, model, held).audio[:, : y.shape[1]]
    difference_db = 10 * np.log10(np.mean((y - still) ** 2) / np.mean(still**2))
    if state.modulation.mode == "static":
        assert difference_db < -100, difference_db  # the same filter (24-bit file)
    else:
        assert difference_db > -40, difference_db


def test_a_preset_for_another_size_is_named_and_exits_2(models_by_latent_size: dict[int, str], tmp_path: Path) -> None:
    four = tmp_path / "four-dims.yaml"
    four.write_text("description: written for the 4-D model\nmodulation:\n  depth: [1.8, 1.8, 0.5, 0.5]\n")
    for command in (["render", "demo", str(tmp_path / "o.wav")], ["presets", "--save", "copy", "--to", str(tmp_path)]):
        done = _cli(*command, "--model", models_by_latent_size[2], "--preset", str(four), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert str(four) in done.stderr and "modulation.depth has 4 values" in done.stderr
        assert "the model has 2 latent dims" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "copy.yaml").exists()
    # and the listing, for that model, says which ones cannot be used with it
    listed = _cli("presets", "--preset-dir", str(tmp_path), "--model", models_by_latent_size[2], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("four-dims"))
    assert "cannot be used" in line and "model has 2 latent dims" in line
    assert all("cannot be used" not in x for x in listed.stdout.splitlines() if not x.startswith("four-dims"))


def test_a_session_recorded_with_another_size_is_named(models_by_latent_size: dict[int, str], tmp_path: Path) -> None:
    from aether_rt.record import SESSION_FILE, SESSION_FORMAT

    four = ControlState(modulation=Modulation.for_latent_dim(4))
    states = [{"seq": 0, "tick": 0, "state": four.to_dict()}]
    session = {"format": SESSION_FORMAT, "sample_rate": FS, "blocksize": 64, "control_frames": 96, "adoptions": [],
               "states": states, "model": {"path": "/models/four.msgpack"}}  # fmt: skip
    (tmp_path / SESSION_FILE).write_text(json.dumps(session))
    done = _cli("render", "demo", str(tmp_path / "o.wav"), "--replay", str(tmp_path), "--model",
                models_by_latent_size[2], cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "recorded with a model of 4 latent dims; this model has 2" in done.stderr
    assert "--model /models/four.msgpack" in done.stderr


def test_saved_presets_fit_other_sizes_when_their_values_are_the_same_on_every_dim(
    models_by_latent_size: dict[int, str], tmp_path: Path
) -> None:
    done = _cli("presets", "--save", "wide", "--to", str(tmp_path), "--preset", "tremor", "--model",
                models_by_latent_size[2], cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for size in LATENT_SIZES:
        mod = load_preset_file(tmp_path / "wide.yaml", size).state.modulation
        assert mod.depth[:2] == (1.8, 1.8) and mod.latent_dim == size
    done = _cli("presets", "--save", "placed", "--to", str(tmp_path), "--z", "0.5,-0.25", "--mode", "static",
                "--model", models_by_latent_size[2], cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_preset_file(tmp_path / "placed.yaml", 2).state.modulation.center == (0.5, -0.25)
    with pytest.raises(UserError, match="center has 2 values but the model has 8"):
        load_preset_file(tmp_path / "placed.yaml", 8)


# -- OSC over UDP ---------------------------------------------------------------------------


class Osc:
    """An OSC server on a free port driving a state box for a model, with a client and a listener."""

    def __init__(self, model) -> None:
        self.size = model.config.latent_dim
        self.box = StateBox(ControlState(modulation=Modulation.for_latent_dim(self.size, mode="static")))
        self.clock = Clock()
        self.shelf = PresetShelf([], model)
        self.server = OscServer(self.box, self.clock, port=0, recall_preset=self.shelf.recall)
        self.server.start()
        self.client = SimpleUDPClient("127.0.0.1", self.server.port)

    def send(self, address: str, args: list, counter: str = "applied") -> ControlState:
        before = self.server.counters[counter]
        self.client.send_message(address, args)
        deadline = time.monotonic() + 60.0  # a preset centred on an IR is refined first (compiles once)
        while self.server.counters[counter] == before:
            assert time.monotonic() < deadline, (address, args, self.server.counters)
            time.sleep(0.002)
        return self.box.state


@pytest.mark.parametrize("size", LATENT_SIZES)
def test_every_osc_address_with_every_size(size: int, models_by_latent_size: dict[int, str], caplog) -> None:
    model = _model(models_by_latent_size, size)
    osc = Osc(model)
    try:
        point = [round(0.3 * (i + 1) - 1.0, 3) for i in range(size)]
        state = osc.send("/aether/z", point)
        assert state.modulation.mode == "manual" and state.modulation.center == pytest.approx(point, abs=1e-6)
        state = osc.send("/aether/z/norm", [0.75] * size)
        assert state.modulation.center == pytest.approx([1.0] * size)  # 0.75 of -2..2
        state = osc.send("/aether/center", [0.0] * size)
        for i in range(size):
            state = osc.send(f"/aether/center/{i}", [0.1 * (i + 1)])
            assert state.modulation.center[i] == pytest.approx(0.1 * (i + 1), abs=1e-6)
            state = osc.send(f"/aether/z/{i}/norm", [1.0])
            assert state.modulation.center[i] == pytest.approx(2.0)
        state = osc.send("/aether/center/norm", [0.5] * size)
        assert state.modulation.center == pytest.approx([0.0] * size)
        state = osc.send("/aether/xy", [0.5, -0.5])
        a, b = state.modulation.fast_dims
        assert (state.modulation.center[a], state.modulation.center[b]) == pytest.approx((0.5, -0.5))
        state = osc.send("/aether/depth", [1.5])
        assert state.modulation.depth[a] == state.modulation.depth[b] == pytest.approx(1.5)
        # A layout made for another size: refused with the reason, nothing changes.
        before = osc.box.state
        with caplog.at_level("WARNING", logger="aether_rt.osc"):
            for address, args in ((f"/aether/z/{size}", [0.5]), (f"/aether/center/{size}/norm", [0.5])):
                assert osc.send(address, args, "rejected") == before
                assert f"{address}: the model has {size} latent dims" in caplog.text
            assert osc.send("/aether/z", [0.0] * (size + 1), "rejected") == before
        # Every shipped preset, by name
        for path in SHIPPED:
            state = osc.send("/aether/preset", [path.stem])
            expected = yaml.safe_load(path.read_text()).get("mode", "spiral")
            assert state.modulation.latent_dim == size and osc.shelf.current == path.stem
            assert state.modulation.mode == expected
        # Status: every dim, and no more
        listener = Listener()
        try:
            osc.client.send_message("/aether/status", [listener.port])
            z = listener.wait_for("/aether/z")
            assert len(z) == size and len(listener.wait_for("/aether/z/norm")) == size
            assert len(listener.wait_for("/aether/center")) == size
            assert listener.wait_for(f"/aether/z/{size - 1}") and not listener.values(f"/aether/z/{size}")
        finally:
            listener.close()
    finally:
        osc.server.stop()


# -- the web page's messages ----------------------------------------------------------------


@pytest.mark.parametrize("size", LATENT_SIZES)
def test_web_messages_with_every_size(size: int) -> None:
    from aether_rt.params import describe
    from aether_rt.web import protocol

    state = ControlState(modulation=Modulation.for_latent_dim(size))
    hello = protocol.hello(size, 48_000.0, ["spiral"], [], describe(state))
    assert hello["latent_dim"] == size and hello["registry"]["latent_dim"] == size
    assert f"z/{size - 1}" in hello["params"] and f"z/{size}" not in hello["params"]
    addresses = protocol.page_addresses(size)
    z = [2.5 - 0.5 * i for i in range(size)]
    request = protocol.parse_request(json.dumps({"type": "set", "id": 1, "param": "z", "value": z}), size)
    assert protocol.apply_set(addresses, state, request, 0.0).modulation.center == pytest.approx(z)
    request = protocol.parse_request(json.dumps({"type": "set", "param": f"center/{size - 1}", "value": -1}), size)
    assert protocol.apply_set(addresses, state, request, 0.0).modulation.center[size - 1] == -1
    for value in (z[:-1], [*z, 0.0]):
        with pytest.raises(protocol.ProtocolError, match=f"expected a list of {size} finite numbers"):
            protocol.parse_request(json.dumps({"type": "set", "param": "z", "value": value}), size)
    with pytest.raises(protocol.ProtocolError, match=f"'z/{size}': the model has {size} latent dims"):
        protocol.parse_request(json.dumps({"type": "set", "param": f"z/{size}", "value": 0}), size)


# -- the model commands ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ir_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aether_rt.data.synthetic import synthetic_ir

    folder = tmp_path_factory.mktemp("irs")
    for i in range(3):
        sf.write(folder / f"ir{i}.wav", synthetic_ir(i, seed=11), FS)
    return folder


PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("size", [2, 8])  # the 4-D model's: test_latent_map.py, test_encode.py, test_training.py
def test_model_commands_with_other_sizes(
    size: int, models_by_latent_size: dict[int, str], ir_folder: Path, tmp_path: Path
) -> None:
    model = models_by_latent_size[size]
    z = ",".join(["0.5"] * size)
    done = _cli("inspect", "--model", model, "--z", z, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["z"] == [0.5] * size
    done = _cli("inspect", "--model", model, "--z", ",".join(["0"] * (size + 1)))
    assert done.returncode == 2 and f"latent space has {size}" in done.stderr and "Traceback" not in done.stderr
    assert _cli("sweep", "--model", model, "--out", str(tmp_path / "sweep.png")).returncode == 0
    last = f"{size - 2},{size - 1}"
    done = _cli("map", "--model", model, "--dims", last, "--feature", "tilt", "--out", str(tmp_path / "map.png"))
    assert done.returncode == 0, done.stderr
    done = _cli("map", "--model", model, "--dims", f"0,{size}", "--out", str(tmp_path / "bad.png"))
    assert done.returncode == 2 and f"dims 0..{size - 1}" in done.stderr
    done = _cli("encode", str(ir_folder / "ir0.wav"), "--model", model, "--refine", "20", "--json")
    assert done.returncode == 0, done.stderr
    encoded = json.loads(done.stdout)
    assert len(encoded["z"]) == size and np.all(np.abs(encoded["z"]) <= 2.0) and encoded["fit_db"] > 0
    table, picture = tmp_path / "table.csv", tmp_path / "irs.png"
    done = _cli("encode", str(ir_folder), "--model", model, "--refine", "20", "--table", str(table),
                "--map", str(picture))  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, *rows = table.read_text().splitlines()
    assert len(rows) == 3 and all(f"z{i}" in header for i in range(size)) and f"z{size}," not in header
    done = _cli("eval", "--model", model, "--data", str(ir_folder), "--oracle-steps", "20",
                "--json", str(tmp_path / "eval.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads((tmp_path / "eval.json").read_text())["kl_per_dim_nats"]) == size
    for image in ("sweep.png", "map.png", "irs.png"):
        assert (tmp_path / image).read_bytes()[:8] == PNG, image


# -- run: the live effect with OSC and the page -----------------------------------------------


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.audio
@pytest.mark.parametrize("size", [2, 8])
def test_run_with_every_size_a_preset_osc_and_the_page(
    size: int, models_by_latent_size: dict[int, str], tmp_path: Path, jack_server: None
) -> None:
    stats = tmp_path / "stats.json"
    osc_port, web_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    done = _cli("run", "--input", "demo", "--duration", "2", "--model", models_by_latent_size[size], "--preset",
                "swapped", "--osc-port", str(osc_port), "--web", str(web_port), "--stats", str(stats),
                cwd=tmp_path, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(stats.read_text())
    assert len(figures["z"]) == size and figures["frames"] > 1.5 * FS and figures["nonfinite_output"] == 0
    assert max(figures["peak_dbfs"]["output"]) > -40.0
    assert "web page at http://127.0.0.1:" in done.stderr and "OSC on 127.0.0.1:" in done.stderr
