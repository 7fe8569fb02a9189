"""Presets: the schema, lookup, the shipped ones, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import aether_rt
from aether_rt.preset import PresetError, available, find_preset, load_preset_file, parse_preset
from aether_rt.render import render

SHIPPED = {"spiral", "drift", "static", "slow-phaser", "tremor", "swapped"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, "HOME": str(cwd)})  # fmt: skip


def test_every_shipped_preset_loads_and_renders(rng: np.random.Generator) -> None:
    assert set(available()) >= SHIPPED
    model = aether_rt.load_model()
    x = (0.1 * rng.standard_normal((48_000, 1))).astype(np.float32)
    for name in sorted(SHIPPED):
        preset = find_preset(name)
        assert preset.description and "\n" not in preset.description
        y = render(x, 48_000, model, preset.state).audio
        assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y**2)) > 0.01, name


def test_shipped_presets_mean_what_they_say() -> None:
    assert find_preset("swapped").state.modulation.fast_dims == (2, 3)
    assert find_preset("tremor").state.modulation.rate_fast_hz >= 5.0
    assert find_preset("static").state.modulation.mode == "static"
    assert find_preset("slow-phaser").state.mix == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "a preset is a YAML mapping"),
        ("mode: spiral", "description must be one line"),
        ("description: x\ncolour: red", "unknown key 'colour'; allowed: bypass, description"),
        ("description: x\nmodulation: {wobble: 1}", "unknown key modulation.'wobble'"),
        ("description: x\nmode: wobble", "mode must be one of spiral, drift, static, manual"),
        ("description: x\nmix: 1.5", "mix must be in [0, 1]"),
        ("description: x\nmix: loud", "mix must be a number in [0, 1]"),
        ("description: x\ninput_gain_db: 40", "input_gain_db must be in [-60, 24]"),
        ("description: x\nbypass: 1", "bypass must be true or false"),
        ("description: x\nmodulation: {center: [0, 0]}", "modulation.center needs 4 values"),
        ("description: x\nmodulation: {center: [0, 0, 0, 9]}", "modulation.center[3] must be in [-2, 2]"),
        ("description: x\nmodulation: {depth: -1}", "modulation.depth must be in [0, 4]"),
        ("description: x\nmodulation: {rate_fast_hz: 50}", "modulation.rate_fast_hz must be in [0, 20]"),
        ("description: x\nmodulation: {sync: true, rate_fast_hz: 1000}", "must be in [0.0625, 256]"),
        ("description: x\nmodulation: {fast_dims: [1, 1]}", "fast_dims must be two different dims in 0..3"),
        ("description: x\nmodulation: {tempo_bpm: 5}", "tempo_bpm must be in [20, 400]"),
        ("description: x\nmodulation: {seed: 1.5}", "seed must be an integer"),
        ("description: x\nmodulation: {bound: .nan}", "bound must be a number"),
        ("description: x\nmodulation: 3", "modulation must be a mapping"),
        ("description: x\nmodel: 3", "model must be a path"),
        ("description: [unclosed", "not valid YAML"),
    ],
)
def test_schema_errors_name_the_file_the_key_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_a_user_folder_shadows_a_shipped_name_and_paths_work(tmp_path: Path) -> None:
    (tmp_path / "spiral.yaml").write_text(yaml.safe_dump({"description": "mine", "mix": 0.25}))
    assert find_preset("spiral", [tmp_path]).description == "mine"
    assert find_preset(str(tmp_path / "spiral.yaml")).state.mix == 0.25
    assert find_preset("spiral").description != "mine"
    with pytest.raises(PresetError, match=r"no preset named 'nope'; there are: .*spiral"):
        find_preset("nope")
    with pytest.raises(PresetError, match="does not exist"):
        find_preset(str(tmp_path / "missing.yaml"))


def test_values_not_given_keep_the_defaults() -> None:
    preset = parse_preset({"description": "only the mix", "mix": 0.3}, Path("p.yaml"))
    assert preset.given == {"mix"}
    assert preset.state.modulation.mode == "spiral" and preset.state.modulation.depth == (1.0, 1.0, 0.8, 0.8)


def test_cli_lists_presets_and_flags_override_the_preset(tmp_path: Path) -> None:
    # From another folder and with another HOME: the shipped presets come with the package.
    listed = _cli("presets", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in SHIPPED:
        assert name in listed.stdout
    assert "z2/z3 are the spatial pair" in listed.stdout

    from aether_rt.cli import _parser
    from aether_rt.commands.live import control_state, load_preset

    args = _parser().parse_args(["render", "demo", "o.wav", "--preset", "tremor", "--mix", "0.5", "--rate-fast", "2"])
    state = control_state(args, 4, load_preset(args))
    assert state.mix == 0.5 and state.modulation.rate_fast_hz == 2.0
    assert state.modulation.depth == find_preset("tremor").state.modulation.depth  # kept from the preset
    args = _parser().parse_args(["render", "demo", "o.wav", "--mode", "spiral"])
    assert load_preset(args).name == "spiral"  # --mode spiral loads the spiral preset
    args = _parser().parse_args(["render", "demo", "o.wav", "--preset", "swapped", "--depth", "1.5"])
    depth = control_state(args, 4, load_preset(args)).modulation.depth
    np.testing.assert_allclose(depth, (1.2, 1.2, 1.5, 1.5))  # the fast pair is z2/z3


def test_cli_preset_mistakes_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: x\nmix: 7\n")
    for args, message in [
        (["render", "demo", str(tmp_path / "o.wav"), "--preset", "nope"], "no preset named 'nope'"),
        (["render", "demo", str(tmp_path / "o.wav"), "--preset", str(bad)], "mix must be in [0, 1]"),
    ]:
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
