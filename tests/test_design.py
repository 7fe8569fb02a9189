"""The z -> sound path's design at rates other than the model's (rate matching)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

from aether_rt.dsp.biquad import coeffs_from_params, peaking_params
from aether_rt.models.design import Filters, coefficient_table, rate_matched
from aether_rt.models.mapping import MODEL_SAMPLE_RATE_HZ

FS_M = MODEL_SAMPLE_RATE_HZ


def _db(coeffs: np.ndarray, freqs_hz: np.ndarray, fs: float) -> np.ndarray:
    sos = np.concatenate([coeffs[..., :3], np.ones(coeffs.shape[:-1] + (1,)), coeffs[..., 3:]], axis=-1)
    _, h = ss.sosfreqz(sos, worN=freqs_hz, fs=fs)
    return 20 * np.log10(np.abs(h))


def _filters(rng: np.random.Generator, n: int) -> Filters:
    # Moderate Q and gain: the pole-radius guard does not act, so the designs are exact.
    return Filters(np.exp(rng.uniform(np.log(300.0), np.log(23_500.0), n)), rng.uniform(0.3, 3.0, n),
                   rng.uniform(-18.0, 18.0, n))  # fmt: skip


@pytest.mark.parametrize("rate", [88_200.0, 96_000.0, 192_000.0])
def test_above_the_model_rate_each_section_is_its_48k_prototype(rate: float, rng: np.random.Generator) -> None:
    # Both designs are bilinear images of one analog prototype, so the stream's response at f
    # is the model-rate response at the frequency with the same analog image (scipy as the reference).
    filters = _filters(rng, 24)
    at_rate = coefficient_table(filters, rate)
    at_model = coefficient_table(filters, FS_M)
    f = np.geomspace(20.0, 20_000.0, 200)
    analog = 2 * rate * np.tan(np.pi * f / rate)  # rad/s
    f_model = FS_M / np.pi * np.arctan(analog / (2 * FS_M))
    for k in range(24):
        np.testing.assert_allclose(_db(at_rate[k], f, rate), _db(at_model[k], f_model, FS_M), atol=1e-6)


def test_at_and_below_the_model_rate_nothing_moves(rng: np.random.Generator) -> None:
    filters = _filters(rng, 16)
    for rate in (FS_M, 44_100.0, 32_000.0):
        same = rate_matched(filters, rate)
        np.testing.assert_array_equal(same.freq_hz, filters.freq_hz)
        p = peaking_params(filters.freq_hz, filters.q, filters.gain_db, rate)
        np.testing.assert_array_equal(coefficient_table(filters, rate), coeffs_from_params(p))


def test_a_broad_cut_near_nyquist_stays_out_of_the_midrange_at_96k() -> None:
    # The case that broke 96 kHz: Q 0.1, -20 dB at 20 kHz spans 1.3 octaves at 48 kHz.
    cut = Filters(np.array([20_000.0]), np.array([0.1]), np.array([-20.0]))
    f = np.array([1000.0, 4000.0])
    at_48k = _db(coefficient_table(cut, FS_M)[0], f, FS_M)
    at_96k = _db(coefficient_table(cut, 96_000.0)[0], f, 96_000.0)
    np.testing.assert_allclose(at_96k, at_48k, atol=0.3)
    same_q = _db(coeffs_from_params(peaking_params(cut.freq_hz, cut.q, cut.gain_db, 96_000.0))[0], f, 96_000.0)
    assert same_q[0] < at_48k[0] - 3.0  # what the design did before: the cut reached 1 kHz
