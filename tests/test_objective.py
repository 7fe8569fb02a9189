"""The comparison every fit uses: the 20 Hz - 20 kHz band and the ceiling above it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from aether_rt.features import DEFAULT_SPEC
from aether_rt.models.objective import (
    ABOVE_BAND_WEIGHT,
    band_mask,
    ceiling_excess_db2,
    lsd_db,
    response_bins,
    spectral_loss_db2,
    squared_error_db2,
)
from aether_rt.train import bin_freqs_hz

FREQS = bin_freqs_hz(DEFAULT_SPEC)  # bins 1..511, 46.875 Hz apart


def test_the_band_is_20_hz_to_20_khz_of_the_response_bins() -> None:
    band = band_mask(FREQS)
    assert band.shape == (511,) and band.sum() == 426  # 46.9 Hz .. 19 968.8 Hz
    assert FREQS[band].max() <= 20_000 < FREQS[~band].min()
    assert response_bins(np.arange(513.0)).tolist() == list(range(1, 512))


def test_errors_above_the_band_do_not_count() -> None:
    band = band_mask(FREQS)
    target = np.zeros((1, 511))
    pred = np.where(band, 2.0, -30.0)[None]  # 2 dB off in the band, 30 dB below above it
    assert lsd_db(pred, target, band)[0] == pytest.approx(2.0)
    assert squared_error_db2(pred, target, band)[0] == pytest.approx(4.0)
    # Per-bin weights: only their ratio matters, and only in the band.
    tilted = np.where(FREQS < 1000, 3.0, 1.0)[None] * band
    weights = 1.0 / FREQS
    expected = np.sqrt(np.sum(weights[band] * tilted[0, band] ** 2) / weights[band].sum())
    assert lsd_db(tilted, target, band, weights=weights)[0] == pytest.approx(expected)


def test_above_the_band_a_rise_over_both_the_target_and_0_db_costs() -> None:
    band = band_mask(FREQS)
    above = int((~band).sum())
    target = np.where(band, 0.0, -40.0)[None]  # a cabinet's empty top
    back_to_zero = np.where(band, 0.0, np.linspace(-40.0, 0.0, 511))[None]  # as a peaking cascade must
    assert ceiling_excess_db2(back_to_zero, target, band)[0] == 0.0
    boost = np.where(band, 0.0, 6.0)[None]  # a +6 dB ultrasonic shelf
    assert ceiling_excess_db2(boost, target, band)[0] == pytest.approx(36.0)
    one_bin = back_to_zero.copy()
    one_bin[0, -1] = 10.0
    assert ceiling_excess_db2(one_bin, target, band)[0] == pytest.approx(100.0 / above)
    bright = np.where(band, 0.0, 5.0)[None]  # a target above 0 dB there: up to it is free
    assert ceiling_excess_db2(bright, bright, band)[0] == 0.0
    # The training objective: the band in full; above it the ceiling, and 5 % of the squared error.
    assert spectral_loss_db2(boost, target, band)[0] == pytest.approx(36.0 + 0.05 * 46.0**2)
    following = np.where(band, 0.0, -40.0)[None]  # follows the roll-off: no cost at all
    assert spectral_loss_db2(following, target, band)[0] == 0.0
    rise = back_to_zero[0, ~band] + 40.0
    assert spectral_loss_db2(back_to_zero, target, band)[0] == pytest.approx(0.05 * np.mean(rise**2))
    assert ABOVE_BAND_WEIGHT == 0.05


def test_numpy_and_jax_agree() -> None:
    rng = np.random.default_rng(3)
    band = band_mask(FREQS)
    pred, target = rng.normal(0, 10, (2, 4, 511))
    for fn in (lsd_db, spectral_loss_db2, ceiling_excess_db2):
        ours = fn(pred, target, band)
        traced = np.asarray(fn(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), band))
        assert ours.shape == (4,) and np.allclose(ours, traced, rtol=1e-4)
