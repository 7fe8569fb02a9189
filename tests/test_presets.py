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

SHIPPED = {"spiral", "drift", "static", "slow-phaser", "tremor", "swapped", "room"}
FS = 48_000


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}, "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)  # fmt: skip


def test_every_shipped_preset_loads_and_renders(rng: np.random.Generator) -> None:
    assert set(available()) >= SHIPPED
    model = aether_rt.load_model()
    x = (0.1 * rng.standard_normal((48_000, 1))).astype(np.float32)
    for name in sorted(SHIPPED):
        preset = find_preset(name, None, 4)
        assert preset.description and "\n" not in preset.description
        y = render(x, 48_000, model, preset.state_for(model)).audio
        assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y**2)) > 0.01, name


def test_shipped_presets_mean_what_they_say() -> None:
    assert find_preset("swapped", None, 4).state.modulation.fast_dims == (2, 3)
    assert find_preset("tremor", None, 4).state.modulation.rate_fast_hz >= 5.0
    assert find_preset("static", None, 4).state.modulation.mode == "static"
    assert find_preset("slow-phaser", None, 4).state.mix == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "a preset is a YAML mapping"),
        ("mode: spiral", "description must be one line"),
        ("description: x\ncolour: red", "unknown key 'colour'; allowed: bypass, center_ir, description"),
        ("description: x\nsmoothing: {fade: 1}", "unknown key smoothing.'fade'; allowed: crossfade_s, params_s"),
        ("description: x\nsmoothing: {params_s: 0}", "smoothing.params_s must be in [0.001, 1]"),
        ("description: x\nsmoothing: {crossfade_s: 60}", "smoothing.crossfade_s must be in [0, 30]"),
        ("description: x\nsmoothing: 1", "smoothing must be a mapping"),
        (
            "description: x\nmodulation: {slow_ratio: [1, 1, 1]}",
            "modulation.slow_ratio has 3 values but the model has 4 latent dims",
        ),
        ("description: x\nmodulation: {slow_ratio: 50}", "modulation.slow_ratio must be in [0.1, 10]"),
        ("description: x\ncenter_ir: 5", "center_ir must be the path of an impulse response file"),
        ("description: x\ncenter_ir: nowhere.wav", "center_ir: no such file"),
        ("description: x\ncenter_ir: bad.yaml\nmodulation: {center: 0}", "either center_ir or modulation.center"),
        ("description: x\nmodulation: {wobble: 1}", "unknown key modulation.'wobble'"),
        ("description: x\nmode: wobble", "mode must be one of spiral, drift, static, manual"),
        ("description: x\nmix: 1.5", "mix must be in [0, 1]"),
        ("description: x\nmix: loud", "mix must be a number in [0, 1]"),
        ("description: x\ninput_gain_db: 40", "input_gain_db must be in [-60, 24]"),
        ("description: x\nbypass: 1", "bypass must be true or false"),
        (
            "description: x\nmodulation: {center: [0, 0]}",
            "modulation.center has 2 values but the model has 4 latent dims",
        ),
        ("description: x\nmodulation: {center: [0, 0, 0, 9]}", "modulation.center[3] must be in [-2, 2]"),
        ("description: x\nmodulation: {depth: -1}", "modulation.depth must be in [0, 4]"),
        ("description: x\nmodulation: {rate_fast_hz: 50}", "modulation.rate_fast_hz must be in [0, 20]"),
        ("description: x\nmodulation: {sync: true, rate_fast_hz: 1000}", "must be in [0.0625, 256]"),
        (
            "description: x\nmodulation: {fast_dims: [1, 1]}",
            "fast_dims [1, 1] is not two different dims of the model, which has 4 latent dims",
        ),
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
        load_preset_file(path, 4)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_a_user_folder_shadows_a_shipped_name_and_paths_work(tmp_path: Path) -> None:
    (tmp_path / "spiral.yaml").write_text(yaml.safe_dump({"description": "mine", "mix": 0.25}))
    assert find_preset("spiral", [tmp_path], 4).description == "mine"
    assert find_preset(str(tmp_path / "spiral.yaml"), None, 4).state.mix == 0.25
    assert find_preset("spiral", None, 4).description != "mine"
    with pytest.raises(PresetError, match=r"no preset named 'nope'; there are: .*spiral"):
        find_preset("nope", None, 4)
    with pytest.raises(PresetError, match="does not exist"):
        find_preset(str(tmp_path / "missing.yaml"), None, 4)


def test_values_not_given_keep_the_defaults() -> None:
    preset = parse_preset({"description": "only the mix", "mix": 0.3}, Path("p.yaml"), 4)
    assert preset.given == {"mix"}
    assert preset.state.modulation.mode == "spiral" and preset.state.modulation.depth == (1.0, 1.0, 0.8, 0.8)


def test_cli_lists_presets_and_flags_override_the_preset(tmp_path: Path) -> None:
    # From another folder and with another HOME: the shipped presets come with the package.
    listed = _cli("presets", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in SHIPPED:
        assert name in listed.stdout
    assert "(z2/z3 of a 4-D model) are the spatial pair" in listed.stdout
    assert "cannot be used" not in listed.stdout  # the room preset's IR was installed too

    from aether_rt.cli import _parser
    from aether_rt.commands.live import control_state, load_preset

    args = _parser().parse_args(["render", "demo", "o.wav", "--preset", "tremor", "--mix", "0.5", "--rate-fast", "2"])
    state = control_state(args, 4, load_preset(args, 4))
    assert state.mix == 0.5 and state.modulation.rate_fast_hz == 2.0
    assert state.modulation.depth == find_preset("tremor", None, 4).state.modulation.depth  # kept from the preset
    args = _parser().parse_args(["render", "demo", "o.wav", "--mode", "spiral"])
    assert load_preset(args, 4).name == "spiral"  # --mode spiral loads the spiral preset
    args = _parser().parse_args(["render", "demo", "o.wav", "--preset", "swapped", "--depth", "1.5"])
    depth = control_state(args, 4, load_preset(args, 4)).modulation.depth
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


def test_room_preset_centres_on_its_impulse_response() -> None:
    """The encoded centre fits the IR's spectrum better than the origin does (an independent check)."""
    import soundfile as sf

    from aether_rt.features import ir_feature
    from aether_rt.models.objective import band_mask
    from aether_rt.train import bin_freqs_hz, make_model_fns

    model = aether_rt.load_model()
    preset = find_preset("room", None, 4)
    assert preset.center_ir is not None and preset.center_ir.is_file()
    center = np.array(preset.state_for(model).modulation.center)
    assert np.linalg.norm(center) > 0.3
    audio, rate = sf.read(preset.center_ir, always_2d=True)
    target = ir_feature(audio, float(rate), model.config.feature)[1:-1]
    _, decoded_response_db, _ = make_model_fns(model.config)
    band = band_mask(bin_freqs_hz(model.config.feature))

    def lsd(z: np.ndarray) -> float:
        decoded = np.asarray(decoded_response_db(model.params, z[None].astype(np.float32))[0])
        return float(np.sqrt(np.mean((decoded - target)[band] ** 2)))

    print(f"room preset centre {np.round(center, 3)}: LSD {lsd(center):.2f} dB vs {lsd(np.zeros(4)):.2f} at z=0")
    assert lsd(center) < 0.7 * lsd(np.zeros(4))


def test_a_bad_impulse_response_in_a_preset_is_named(tmp_path: Path) -> None:
    (tmp_path / "ir.wav").write_bytes(b"RIFF not really")
    (tmp_path / "p.yaml").write_text("description: x\ncenter_ir: ir.wav\n")
    preset = load_preset_file(tmp_path / "p.yaml", 4)
    with pytest.raises(PresetError, match=r"p.yaml: center_ir: cannot read .*ir.wav"):
        preset.state_for(aether_rt.load_model())


def test_saved_presets_load_back_as_the_same_state(tmp_path: Path) -> None:
    from dataclasses import replace

    from aether_rt.modulation import Modulation
    from aether_rt.preset import save_preset

    state = replace(
        find_preset("swapped", None, 4).state, mix=0.35, output_gain_db=-4.5, param_smoothing_s=0.05, crossfade_s=2.0,
        modulation=replace(find_preset("swapped", None, 4).state.modulation, center=(0.25, -0.5, 1.0, 0.0), sync=True,
                           rate_fast_hz=4.0, rate_slow_hz=64.0, slow_ratio=(1.0, 0.5, 2.0, 1.0), seed=3),
    )  # fmt: skip
    path = save_preset(state, "mine", "my sound", tmp_path)
    loaded = load_preset_file(path, 4)
    assert loaded.state == state and loaded.description == "my sound"
    with pytest.raises(PresetError, match="exists"):
        save_preset(state, "mine", "again", tmp_path)
    for bad in ("../up", "a/b", ".hidden", "x.yaml", ""):
        with pytest.raises(PresetError, match="is not a preset name"):
            save_preset(state, bad, "x", tmp_path)
    assert isinstance(loaded.state.modulation, Modulation)


def test_cli_saves_a_preset_from_flags(tmp_path: Path) -> None:
    done = _cli("presets", "--save", "wide", "--preset", "tremor", "--mix", "0.6", "--description", "Tremor, wetter",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = tmp_path / ".config/aether-rt/presets/wide.yaml"  # HOME is tmp_path
    assert path.is_file()
    listed = _cli("presets", cwd=tmp_path)
    assert "wide" in listed.stdout and "Tremor, wetter" in listed.stdout
    saved = load_preset_file(path, 4).state
    assert saved.mix == 0.6 and saved.modulation.depth == find_preset("tremor", None, 4).state.modulation.depth
    again = _cli("presets", "--save", "wide", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert _cli("presets", "--save", "wide", "--force", cwd=tmp_path).returncode == 0


def test_user_presets_follow_xdg_config_home(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-m", "aether_rt", "presets", "--save", "mine", "--mix", "0.3"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "xdg/aether-rt/presets/mine.yaml").is_file()
    assert not (tmp_path / "home/.config").exists()
    listed = subprocess.run([sys.executable, "-m", "aether_rt", "presets"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert "mine" in listed.stdout
    bad = _cli("presets", "--save", "../x", cwd=tmp_path)
    assert bad.returncode == 2 and "is not a preset name" in bad.stderr and "Traceback" not in bad.stderr


def _click_db(y: np.ndarray, change: int) -> tuple[float, float]:
    """HF peak (above 3 kHz, dB re the 220 Hz tone) around a change, and the louder steady state either side."""
    import scipy.signal as ss

    hp = np.abs(ss.sosfilt(ss.butter(8, 3000, "high", fs=FS, output="sos"), y[:, 0]))
    db = lambda v: 20 * np.log10(v / 0.25 + 1e-12)  # noqa: E731
    around = db(hp[change - FS // 50 : change + int(0.6 * FS)].max())
    steady = max(db(hp[FS // 2 : change - FS // 50].max()), db(hp[change + int(0.7 * FS) :].max()))
    return around, steady


def test_every_shipped_preset_crossfades_in_without_a_click() -> None:
    """A preset loaded while running (from static, at 1 s): no HF burst beyond the motion's own.

    The input is a pure 220 Hz tone, so anything above 3 kHz is made by the change or
    the motion. A change adds at most 6 dB over the louder steady state, or stays below
    -70 dB re the tone. A switch without the crossfade is the contrast: it clicks.
    """
    from dataclasses import replace

    from aether_rt.control import TableDesigner, crossfade_to
    from aether_rt.render import render_controlled

    model = aether_rt.load_model()
    designer = TableDesigner(model, FS)
    t = np.arange(3 * FS) / FS
    x = (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    start = find_preset("static", None, 4).state
    abrupt_excess = []
    for name in sorted(SHIPPED):
        target = find_preset(name, None, 4).state_for(model)
        for label, new in (("crossfade", target), ("abrupt", replace(target, crossfade_s=0.0))):
            y = render_controlled(x, FS, model, start, [(FS, lambda s, now, new=new: crossfade_to(s, new, now))],
                                  designer=designer)  # fmt: skip
            around, steady = _click_db(y, FS)
            print(f"{name:12s} {label:9s} HF peak around the change {around:6.1f} dB, steady {steady:6.1f} dB")
            if label == "crossfade":
                assert around <= max(steady + 6.0, -70.0), name
            else:
                abrupt_excess.append(around - steady)
    assert max(abrupt_excess) > 10.0  # the measurement can see a click when there is one


def test_the_page_midi_programs_and_the_listing_share_one_order(tmp_path: Path, monkeypatch) -> None:
    """Program Change n is the n-th name of `aether-rt presets`; the page's picker shows them in that order."""
    from aether_rt.midi.session import preset_programs
    from aether_rt.preset import PresetShelf, save_preset

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    extra = tmp_path / "extra"
    state = find_preset("tremor", None, 4).state
    save_preset(state, "zz-first", "an extra folder's preset", extra)
    save_preset(state, "aa-mine", "the user's own", None)
    shelf = PresetShelf([extra], aether_rt.load_model())
    names = shelf.names()
    assert names[:2] == ["zz-first", "aa-mine"]  # extra folders, then the user's, then the shipped, each sorted
    assert names == list(available([extra]))
    assert names != sorted(names)
    program = preset_programs(shelf)
    assert program(0)[0] == "zz-first" and program(1)[0] == "aa-mine" and program(len(names)) is None
    done = subprocess.run([sys.executable, "-m", "aether_rt", "presets", "--preset-dir", str(extra)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines() if line.strip()] == names
