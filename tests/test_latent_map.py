"""Response features (centroid, tilt) and the latent map: against independent references."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

import aether_rt
from aether_rt.dsp.measures import spectral_centroid_hz, spectral_tilt_db_per_octave
from aether_rt.models.design import coefficient_table
from aether_rt.plots import MAP_FREQS_HZ, latent_slice

FREQS = np.geomspace(20.0, 20_000.0, 300)


@pytest.fixture(scope="module")
def model():
    return aether_rt.load_model()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)  # fmt: skip


def test_tilt_of_a_straight_line_in_octaves_is_its_slope() -> None:
    for slope in (-4.5, 0.0, 3.0):
        db = slope * np.log2(FREQS / 1000.0) + 7.0
        assert spectral_tilt_db_per_octave(db, FREQS) == pytest.approx(slope, abs=1e-9)


def test_tilt_of_a_first_order_lowpass_far_above_its_corner_is_minus_6_db_per_octave() -> None:
    freqs = np.geomspace(2_000.0, 16_000.0, 200)
    b, a = signal.butter(1, 2 * np.pi * 20.0, analog=True)  # the analog prototype: no bilinear warp
    _, h = signal.freqs(b, a, worN=2 * np.pi * freqs)
    # 20 log10(2) per doubling: 6.02 dB/octave
    assert spectral_tilt_db_per_octave(20 * np.log10(np.abs(h)), freqs) == pytest.approx(-6.02, abs=0.01)


def test_centroid_of_flat_is_the_geometric_middle_and_a_lone_band_pulls_it_there() -> None:
    assert spectral_centroid_hz(np.zeros(FREQS.size), FREQS) == pytest.approx(np.sqrt(20.0 * 20_000.0), rel=1e-9)
    db = np.full(FREQS.size, -90.0)
    band = np.abs(np.log2(FREQS / 3_000.0)) < 0.05
    db[band] = 0.0
    assert spectral_centroid_hz(db, FREQS) == pytest.approx(3_000.0, rel=0.03)
    # batched: one centroid per row, each row on its own
    both = np.stack([np.zeros(FREQS.size), db])
    np.testing.assert_allclose(spectral_centroid_hz(both, FREQS), [np.sqrt(20.0 * 20_000.0), 3_000.0], rtol=0.03)


def test_the_features_refuse_a_grid_that_is_not_log_spaced() -> None:
    with pytest.raises(ValueError, match="log-spaced"):
        spectral_tilt_db_per_octave(np.zeros(100), np.linspace(20, 20_000, 100))
    with pytest.raises(ValueError, match="positive"):
        spectral_centroid_hz(np.zeros(3), np.array([0.0, 1.0, 2.0]))


def test_a_map_cell_is_the_feature_of_that_z_through_scipy(model) -> None:
    values, grid = latent_slice(model, (2, 3), "tilt", at=np.array([0.5, -0.5, 0.0, 0.0]), points=7)
    assert values[0] == -3.0 and values[-1] == 3.0 and grid.shape == (7, 7)
    for row, col in ((0, 6), (3, 3), (5, 1)):
        z = np.array([0.5, -0.5, values[col], values[row]])  # x: dims[0], y: dims[1]
        sos = np.asarray(coefficient_table(model.decode(z[None]), 48_000.0))[0]
        sos6 = np.concatenate([sos[:, :3], np.ones((sos.shape[0], 1)), sos[:, 3:]], axis=1)
        _, h = signal.sosfreqz(sos6, worN=MAP_FREQS_HZ, fs=48_000)
        expected = spectral_tilt_db_per_octave(20 * np.log10(np.abs(h)), MAP_FREQS_HZ)
        assert grid[row, col] == pytest.approx(expected, abs=0.02)
    assert np.ptp(grid) > 0.5  # the slice is not flat: the dims change the tilt


def test_latent_slice_refuses_bad_arguments(model) -> None:
    with pytest.raises(ValueError, match="two different"):
        latent_slice(model, (1, 1), "tilt")
    with pytest.raises(ValueError, match="feature"):
        latent_slice(model, (0, 1), "loudness")


def test_map_command_writes_the_figure_and_explains_mistakes(tmp_path: Path) -> None:
    done = _cli("map", "--out", "m.png", "--dims", "2,3", "--at", "1,1,0,0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    png = (tmp_path / "m.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    for args, message in (
        (["--dims", "0,0"], "is not two different latent dims"),
        (["--dims", "0,9"], "is not two different latent dims"),
        (["--at", "1,2"], "--at has 2 values"),
        (["--out", "m.bmp"], "cannot tell the image format"),
        (["--out", "missing/m.png"], "missing"),
    ):
        done = _cli("map", *args, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
