"""Encoding IRs onto the latent map: refinement into the learned region, ``encode`` of files and folders, center_ir.

The refinement's properties are checked on small models made here (random weights
whose decoder responds strongly to z, and an encoder pushed far outside the region),
so they hold whatever the shipped model is; the shipped model is used only where a
test needs a realistic one, without its numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

import aether_rt
from aether_rt.cli import main
from aether_rt.models.checkpoint import LoadedModel, ModelConfig, save_model
from aether_rt.models.fit import (
    DEFAULT_REFINE_STEPS,
    encode_features,
    encode_ir,
    fit_db,
    in_region,
    read_library,
    refine_latents,
    spread_points,
)
from aether_rt.modulation import LEARNED_BOUND
from aether_rt.plots import KEY_ROW_IN, key_layout, library_planes, save_library_map
from aether_rt.preset import load_preset_file
from aether_rt.train import make_model_fns

FS = 48_000
STEPS = 100  # one step count for every refinement here: JAX compiles it once


def toy_model(latent_dim: int = 2, *, mu_offset: float = 0.0, seed: int = 0) -> LoadedModel:
    """A small random model whose decoded response depends strongly on z.

    The flax init keeps the decoder's last layer tiny (every z decodes to nearly the
    same filters); here it is drawn wide. ``mu_offset`` pushes every encoder mean out
    by that much (alternating signs), as an encoder meeting unfamiliar IRs does.
    """
    config = ModelConfig(num_filters=8, latent_dim=latent_dim)
    module = config.module()
    key = jax.random.PRNGKey(seed)
    params = jax.tree_util.tree_map(np.asarray, module.init(key, jnp.ones((1, 513)), key)["params"])
    kernel = params["decoder"]["filters"]["kernel"]
    params["decoder"]["filters"]["kernel"] = (
        np.random.default_rng(seed).normal(0.0, 0.15, kernel.shape).astype(np.float32)
    )
    signs = np.where(np.arange(latent_dim) % 2 == 0, 1.0, -1.0)
    params["encoder"]["mu"]["bias"] = (params["encoder"]["mu"]["bias"] + mu_offset * signs).astype(np.float32)
    return LoadedModel(config, params, {}, Path("toy"))


def decoded_feature(model: LoadedModel, z: np.ndarray) -> np.ndarray:
    """The 513-bin feature whose bins 1..511 are exactly the response ``z`` decodes to."""
    _, decoded_response_db, _ = make_model_fns(model.config)
    response = np.asarray(decoded_response_db(model.params, jnp.asarray(z, jnp.float32)[None])[0])
    return np.concatenate([[response[0]], response, [response[-1]]])


def write_ir(path: Path, *, lowpass_hz: float, highpass_hz: float, peak_hz: float, peak: float, rate: int = FS) -> Path:
    """A small coloured impulse response (a peak over a band-limited click), decaying within ~10 ms."""
    x = np.zeros(4096)
    x[0] = 1.0
    for b, a in (signal.butter(2, lowpass_hz, fs=rate), signal.butter(1, highpass_hz, "high", fs=rate)):
        x = signal.lfilter(b, a, x)
    b, a = signal.iirpeak(peak_hz, 2.0, fs=rate)
    sf.write(path, 0.5 * (x + peak * signal.lfilter(b, a, x)), rate)
    return path


@pytest.fixture(scope="module")
def toy() -> LoadedModel:
    return toy_model()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Three IRs (one in a subfolder, one FLAC at 44.1 kHz), a broken file and a text file."""
    folder = tmp_path / "irs"
    (folder / "cabs").mkdir(parents=True)
    write_ir(folder / "bright.wav", lowpass_hz=15_000, highpass_hz=40, peak_hz=5_000, peak=0.5)
    write_ir(folder / "dark.flac", lowpass_hz=2_000, highpass_hz=80, peak_hz=300, peak=0.5, rate=44_100)
    write_ir(folder / "cabs" / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    (folder / "notes.txt").write_text("not audio either")
    return folder


# -- refinement ----------------------------------------------------------------------------


def test_the_spread_points_are_seeded_and_cover_the_region() -> None:
    points = spread_points(4, 8)
    np.testing.assert_array_equal(points, spread_points(4, 8))
    assert points.shape == (8, 4) and np.all(np.abs(points) <= LEARNED_BOUND)
    for d in range(4):  # a Latin hypercube: one point in each eighth of every dim
        assert sorted(np.floor((points[:, d] / LEARNED_BOUND + 1.0) / 2.0 * 8).astype(int)) == list(range(8))


def test_refinement_from_far_outside_lands_inside_and_beats_the_projected_start(toy: LoadedModel) -> None:
    targets = np.stack([decoded_feature(toy, np.array(z)) for z in ([1.3, -0.7], [-1.6, 1.8], [0.4, 0.2])])
    far = np.array([[9.0, -14.0], [-12.0, 7.0], [14.0, 14.0]])
    z, fit = refine_latents(toy, targets, far, steps=STEPS)
    projected = fit_db(toy, targets, np.clip(far, -LEARNED_BOUND, LEARNED_BOUND))
    assert all(in_region(p) for p in z)
    np.testing.assert_allclose(fit, fit_db(toy, targets, z), rtol=1e-4)  # the fit reported is the point's
    assert np.all(fit < 0.5 * projected), (fit, projected)


def test_a_decoded_point_is_recovered(toy: LoadedModel) -> None:
    known = np.array([[1.3, -0.7], [-1.6, 1.8], [0.4, 0.2], [-1.95, -1.2]])
    targets = np.stack([decoded_feature(toy, z) for z in known])
    _, fit = refine_latents(toy, targets, np.zeros_like(known) + 5.0, steps=STEPS)
    assert np.all(fit < 0.1), fit  # dB: the response is matched
    flat = fit_db(toy, targets, np.zeros_like(known))
    assert np.all(flat > 1.0), flat  # and it was not matched from the start


def test_the_shipped_model_recovers_its_own_decoded_points_from_anywhere() -> None:
    model = aether_rt.load_model()
    known = np.array([[1.0, -0.5, 0.3, 1.5], [-1.5, 1.2, -0.8, 0.4]])
    targets = np.stack([decoded_feature(model, z) for z in known])
    z, fit = refine_latents(model, targets, np.array([[10.0, -10.0, 10.0, -10.0]] * 2), steps=DEFAULT_REFINE_STEPS)
    assert all(in_region(p) for p in z) and np.all(fit < 0.3), fit


def test_encodings_report_the_encoder_mean_and_the_refined_point(toy: LoadedModel, library: Path) -> None:
    far = toy_model(mu_offset=8.0)
    lib = read_library(library, far.config.feature)
    plain = encode_features(far, lib.features, lib.names)
    assert all(not e.in_region and not e.encoder_in_region and e.refine_steps == 0 for e in plain)
    assert all(e.fit_db == e.encoder_fit_db for e in plain)
    refined = encode_features(far, lib.features, lib.names, refine_steps=STEPS)
    for e, p in zip(refined, plain, strict=True):
        assert e.in_region and not e.encoder_in_region and e.refine_steps == STEPS
        np.testing.assert_allclose(e.encoder_z, p.z)
        projected = fit_db(far, lib.features[[lib.names.index(e.name)]], np.clip(e.encoder_z, -2, 2)[None])[0]
        assert e.fit_db <= projected + 1e-6
    row = refined[0].to_dict()
    assert set(row) == {"file", "z", "fit_db", "in_region", "encoder_z", "encoder_fit_db", "encoder_in_region",
                        "refine_steps"}  # fmt: skip


def test_a_folder_is_read_with_names_relative_to_it_and_bad_files_named(toy: LoadedModel, library: Path) -> None:
    lib = read_library(library, toy.config.feature)
    assert sorted(lib.names) == ["bright.wav", "cabs/cab.wav", "dark.flac"]
    assert lib.features.shape == (3, 513)
    assert [name for name, _ in lib.skipped] == ["broken.wav"]
    assert str(library) not in lib.skipped[0][1]  # the reason does not carry the folder's path


# -- center_ir -------------------------------------------------------------------------------


def test_center_ir_presets_use_the_refined_point_in_the_region(tmp_path: Path) -> None:
    model = toy_model(4, mu_offset=6.0, seed=3)
    ir = write_ir(tmp_path / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    (tmp_path / "p.yaml").write_text("description: on a cab\ncenter_ir: cab.wav\n")
    center = np.array(load_preset_file(tmp_path / "p.yaml", model.config.latent_dim).state_for(model).modulation.center)
    encoded = encode_ir(model, ir, refine_steps=DEFAULT_REFINE_STEPS)
    assert not encoded.encoder_in_region  # the encoder put it far out ...
    np.testing.assert_allclose(center, encoded.z)  # ... the preset uses the refined point
    assert in_region(center)
    feature = read_library(tmp_path, model.config.feature).features
    assert fit_db(model, feature, center[None])[0] <= fit_db(model, feature, np.clip(encoded.encoder_z, -2, 2)[None])[0]


# -- the map -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("latent_dim", "planes"), [(2, [(0, 1)]), (4, [(0, 1), (2, 3)]), (8, [(0, 1), (2, 3)])])
def test_library_maps_draw_one_plane_per_pair(latent_dim: int, planes: list[tuple[int, int]], tmp_path: Path) -> None:
    assert library_planes(latent_dim) == planes
    model = toy_model(latent_dim)
    points = [("inside", np.full(latent_dim, 0.5)), ("outside", np.full(latent_dim, 2.5)),
              ("beyond", np.full(latent_dim, -9.0))]  # fmt: skip
    save_library_map(model, tmp_path / "map.png", points)
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("count", "width_in", "layout"),
    [(1, 12.8, (0, 0)), (12, 12.8, (0, 0)), (13, 12.8, (1, 13)), (20, 12.8, (1, 20)),
     (21, 12.8, (2, 11)), (70, 12.8, (4, 18)), (300, 12.8, (4, 75)), (70, 6.4, (2, 35))],
)  # fmt: skip
def test_a_crowded_library_is_numbered_with_a_key_in_columns(count: int, width_in: float,
                                                             layout: tuple[int, int]) -> None:  # fmt: skip
    """Names beside the points up to 12 IRs; beyond, numbers and a key of 20-line columns, as many as fit
    (2.6 inches each), then longer columns."""
    assert key_layout(count, width_in) == layout


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_a_library_map_grows_a_key_as_long_as_its_library(tmp_path: Path) -> None:
    """70 guitar cabinets crowd a unit square: their names go in a key below the planes, which
    makes the figure taller by the key's rows (18 at 7 pt); 300 IRs take 75 rows."""
    model = toy_model(4)
    rng = np.random.default_rng(0)
    sizes = {}
    for count in (5, 70, 300):
        points = [(f"Cabinet {k} with a long descriptive name.wav", rng.normal(-0.5, 0.3, 4)) for k in range(count)]
        save_library_map(model, tmp_path / f"{count}.png", points)
        sizes[count] = _png_size(tmp_path / f"{count}.png")
    assert sizes[5][0] == sizes[70][0] == sizes[300][0]  # the same width
    key_px = {n: sizes[n][1] - sizes[5][1] for n in (70, 300)}
    for n, rows in ((70, 18), (300, 75)):
        assert key_px[n] == pytest.approx((0.35 + rows * KEY_ROW_IN) * 110, abs=40)


def test_crowded_labels_are_moved_off_each_other() -> None:
    """40 numbers on points within 0.3 of each other: most boxes overlap where they were put, few after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aether_rt.plots import LABEL_BOX, _spread_labels

    def overlaps(fig, texts) -> int:
        fig.canvas.draw()
        boxes = [t.get_window_extent() for t in texts]
        return sum(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i))

    xy = np.random.default_rng(1).normal(0.0, 0.15, (40, 2))
    fig, ax = plt.subplots(figsize=(6.4, 5.8))
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    texts = [ax.text(x, y, str(k + 1), fontsize=6, bbox=LABEL_BOX) for k, (x, y) in enumerate(xy)]
    before = overlaps(fig, texts)
    _spread_labels(ax, texts, xy[:, 0], xy[:, 1])
    after = overlaps(fig, texts)
    plt.close(fig)
    assert before > 100 and after <= before // 10


def test_a_one_dim_model_has_no_plane_to_draw(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no plane"):
        save_library_map(toy_model(1), tmp_path / "map.png", [("a", np.zeros(1))])


# -- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def far_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model on disk whose encoder puts every IR outside the region."""
    model = toy_model(4, mu_offset=6.0, seed=3)
    out = tmp_path_factory.mktemp("model") / "model"
    save_model(out, model.params, model.config, {"data": {"kind": "test"}})
    return out.parent


def test_encode_a_file_says_when_it_lands_outside_and_refines_it_inside(
    far_model: Path, library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ir = str(library / "cabs" / "cab.wav")
    assert main(["encode", ir, "--model", str(far_model)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("z = ") and "fit: " in text and "OUTSIDE the learned region |z_i| <= 2" in text
    assert "--refine" in text
    assert main(["encode", ir, "--model", str(far_model), "--refine", str(STEPS), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["in_region"] and not report["encoder_in_region"] and report["refine_steps"] == STEPS
    assert max(abs(v) for v in report["z"]) <= 2.0 and max(abs(v) for v in report["encoder_z"]) > 2.0
    assert report["fit_db"] > 0 and report["encoder_fit_db"] > 0 and report["learned_bound"] == 2.0
    assert main(["encode", ir, "--model", str(far_model), "--refine", str(STEPS)]) == 0
    text = capsys.readouterr().out
    assert "refined: 100 steps inside the learned region" in text and "encoder mean: " in text
    assert "OUTSIDE the learned region" in text


def test_encode_a_folder_writes_the_table_and_the_map(
    far_model: Path, library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, image = tmp_path / "irs.csv", tmp_path / "irs.png"
    args = ["encode", str(library), "--model", str(far_model), "--refine", str(STEPS)]
    assert main([*args, "--table", str(table), "--map", str(image)]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # the table went to the file
    assert "skipped broken.wav: " in err and "3 IRs encoded, 1 skipped" in err
    rows = list(csv.DictReader(table.open()))
    assert sorted(r["file"] for r in rows) == ["bright.wav", "cabs/cab.wav", "dark.flac"]
    assert all(r["in_region"] == "1" and r["encoder_in_region"] == "0" for r in rows)
    assert all(max(abs(float(r[f"z{i}"])) for i in range(4)) <= 2.0 for r in rows)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main([*args[:4], "--json"]) == 0  # no refinement: the encoder's means, flagged
    report = json.loads(capsys.readouterr().out)
    assert report["learned_bound"] == 2.0 and report["skipped"][0]["file"] == "broken.wav"
    assert len(report["irs"]) == 3 and not any(r["in_region"] for r in report["irs"])
    assert main(args[:4]) == 0  # the table on the terminal
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["file", "z0", "z1", "z2", "z3", "fit_dB"] and len(out) == 4
    assert all(line.endswith("OUTSIDE") for line in out[1:])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--map", "/no/such/dir/map.png"], "the folder '/no/such/dir' does not exist"),
        (["--map", "{tmp}/map.txt"], "cannot tell the image format"),
        (["--table", "{tmp}/table.xlsx"], "cannot tell the table format"),
        (["--table", "/no/such/dir/t.csv"], "does not exist"),
    ],
)
def test_bad_output_paths_exit_2_before_any_work(
    extra: list[str], message: str, far_model: Path, library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    assert main(["encode", str(library), "--model", str(far_model), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_folder_without_a_usable_ir_exits_2(
    far_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    sf.write(tmp_path / "silence.wav", np.zeros(4800), FS)
    assert main(["encode", str(tmp_path), "--model", str(far_model)]) == 2
    err = capsys.readouterr().err
    assert "no usable impulse response" in err and "broken.wav" in err and "silence.wav" in err


def test_run_ir_library_mistakes_exit_2_before_any_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--ir-library", str(tmp_path)]) == 2
    assert "--ir-library shows the impulse responses on the web page" in capsys.readouterr().err
    web = ["run", "--web", "18765", "--no-osc", "--ir-library"]
    assert main([*web, str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    assert main([*web, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no usable impulse response" in err and "broken.wav" in err


def test_encodings_of_one_ir_agree_file_and_folder(toy: LoadedModel, library: Path) -> None:
    lib = read_library(library, toy.config.feature)
    one = encode_ir(toy, library / "cabs" / "cab.wav")
    many = {e.name: e for e in encode_features(toy, lib.features, lib.names)}
    np.testing.assert_allclose(one.z, many["cabs/cab.wav"].z, atol=1e-4)
    assert one.fit_db == pytest.approx(many["cabs/cab.wav"].fit_db, abs=1e-3)


def test_a_library_is_read_with_the_feature_of_the_model_it_is_for(tmp_path: Path) -> None:
    # `run` reads --ir-library before the model loads (the shipped feature), and reads it
    # again only for a model with a feature of its own.
    import argparse
    from dataclasses import replace

    from aether_rt.commands.live import read_ir_library
    from aether_rt.features import DEFAULT_SPEC, ir_feature

    write_ir(tmp_path / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    args = argparse.Namespace(ir_library=str(tmp_path), web=0)
    shipped = read_ir_library(args)
    assert shipped.spec == DEFAULT_SPEC and shipped.names == ["cab.wav"]
    finer = replace(DEFAULT_SPEC, smoothing_octaves=1.0 / 6.0)
    own = read_ir_library(args, finer)
    audio, rate = sf.read(tmp_path / "cab.wav", always_2d=True)
    assert own.spec == finer
    np.testing.assert_allclose(own.features[0], ir_feature(audio, float(rate), finer), atol=1e-4)
    assert not np.allclose(own.features[0], shipped.features[0], atol=0.1)
    assert read_ir_library(argparse.Namespace(ir_library=None, web=0)) is None


def test_a_library_read_again_warns_once_per_skipped_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import argparse
    from dataclasses import replace

    from aether_rt.commands.live import read_ir_library
    from aether_rt.features import DEFAULT_SPEC

    write_ir(tmp_path / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    (tmp_path / "notes.wav").write_bytes(b"not audio")
    args = argparse.Namespace(ir_library=str(tmp_path), web=0)
    with caplog.at_level("WARNING", logger="aether_rt"):
        first = read_ir_library(args)
        again = read_ir_library(args, replace(DEFAULT_SPEC, smoothing_octaves=1.0 / 6.0), warned=first.skipped)
    assert [name for name, _ in again.skipped] == ["notes.wav"]
    assert [r.getMessage() for r in caplog.records].count(f"IR library: skipped notes.wav: {first.skipped[0][1]}") == 1
