"""Peaking design and cascade response against SciPy and closed-form facts."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal as ss
from conftest import SAMPLE_RATES_HZ, random_sections
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aether_rt.dsp import biquad as bq
from aether_rt.models.mapping import freq_frac_to_hz, map_outputs


def _sosfreqz_db(coeffs: np.ndarray, freqs_hz: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    _, h = ss.sosfreqz(bq.to_sos(coeffs), worN=freqs_hz, fs=fs)
    return h, 20.0 * np.log10(np.abs(h))


@pytest.mark.parametrize("fs", SAMPLE_RATES_HZ)
def test_cascade_response_matches_sosfreqz(fs: float, rng: np.random.Generator) -> None:
    coeffs = random_sections(rng, 32, fs, q_range=(0.1, 40.0), gain_db=24.0)
    freqs = np.concatenate([[0.0], np.geomspace(5.0, 0.5 * fs, 3000)])
    h_ref, db_ref = _sosfreqz_db(coeffs, freqs, fs)
    assert np.max(np.abs(bq.cascade_response_db(coeffs, freqs, fs) - db_ref)) < 0.01
    np.testing.assert_allclose(bq.cascade_response(coeffs, freqs, fs), h_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fs", SAMPLE_RATES_HZ)
def test_closed_form_peaking_response_matches_sosfreqz(fs: float, rng: np.random.Generator) -> None:
    freq_hz = rng.uniform(5.0, 0.5 * fs, 32)
    q, gain_db = rng.uniform(0.05, 60.0, 32), rng.uniform(-30.0, 30.0, 32)  # guards bite too
    params = bq.peaking_params(freq_hz, q, gain_db, fs)
    freqs = np.geomspace(5.0, 0.5 * fs, 3000)
    _, db_ref = _sosfreqz_db(bq.coeffs_from_params(params), freqs, fs)
    per_section = bq.peaking_response_db(params, freqs, fs)
    assert per_section.shape == (32, freqs.size)
    assert np.max(np.abs(per_section.sum(axis=0) - db_ref)) < 0.01


def test_peaking_section_has_its_gain_at_the_centre_and_unity_at_the_band_edges() -> None:
    fs = 48_000.0
    freq_hz = np.array([100.0, 1000.0, 5000.0, 15000.0])
    gain_db = np.array([12.0, -9.0, 6.0, -18.0])
    coeffs = bq.peaking_coeffs(freq_hz, 2.0, gain_db, fs)
    for k in range(4):
        at = bq.cascade_response_db(coeffs[k : k + 1], np.array([0.0, freq_hz[k], fs / 2]), fs)
        np.testing.assert_allclose(at, [0.0, gain_db[k], 0.0], atol=1e-9)


def test_design_matches_the_cookbook_where_no_guard_applies() -> None:
    fs, f0, q, gain_db = 44_100.0, 1234.0, 1.7, 7.5
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / fs
    alpha = math.sin(w0) / (2 * q)
    a0 = 1 + alpha / a
    cookbook = np.array(
        [
            (1 + alpha * a) / a0,
            -2 * math.cos(w0) / a0,
            (1 - alpha * a) / a0,
            -2 * math.cos(w0) / a0,
            (1 - alpha / a) / a0,
        ]
    )
    np.testing.assert_allclose(bq.peaking_coeffs(f0, q, gain_db, fs), cookbook, rtol=1e-14, atol=1e-15)


def test_design_vectorises_over_filters_and_batches(rng: np.random.Generator) -> None:
    freq_hz = rng.uniform(50, 15000, (3, 4, 32))
    q = rng.uniform(0.5, 5, (3, 4, 32))
    gain_db = rng.uniform(-12, 12, (1, 4, 32))  # broadcasts over the batch
    coeffs = bq.peaking_coeffs(freq_hz, q, gain_db, 48_000)
    assert coeffs.shape == (3, 4, 32, 5)
    np.testing.assert_array_equal(coeffs[2, 1], bq.peaking_coeffs(freq_hz[2, 1], q[2, 1], gain_db[0, 1], 48_000))
    assert bq.cascade_response_db(coeffs, np.array([100.0, 1000.0]), 48_000).shape == (3, 4, 2)


def test_guard_limits_only_the_bandwidth_of_extreme_sections() -> None:
    fs = 48_000.0
    coeffs = bq.peaking_coeffs([40.0, 20_000.0], [bq.Q_MAX, bq.Q_MIN], [24.0, -24.0], fs)
    assert np.all(bq.pole_radius(coeffs) <= bq.POLE_RADIUS_MAX + 1e-12)
    for k, (f0, g) in enumerate([(40.0, 24.0), (20_000.0, -24.0)]):
        np.testing.assert_allclose(bq.cascade_response_db(coeffs[k : k + 1], np.array([f0]), fs), [g], atol=1e-9)


def test_frequency_q_and_gain_are_clamped_into_the_design_domain() -> None:
    fs = 48_000.0
    lo, hi = bq.freq_limits_hz(fs)
    assert lo == pytest.approx(10.0) and hi == pytest.approx(0.49 * fs)
    np.testing.assert_array_equal(bq.peaking_coeffs(1e9, 1.0, 3.0, fs), bq.peaking_coeffs(hi, 1.0, 3.0, fs))
    np.testing.assert_array_equal(bq.peaking_coeffs(-5.0, 1.0, 3.0, fs), bq.peaking_coeffs(lo, 1.0, 3.0, fs))
    np.testing.assert_array_equal(bq.peaking_coeffs(1e3, 1e9, 3.0, fs), bq.peaking_coeffs(1e3, bq.Q_MAX, 3.0, fs))
    np.testing.assert_array_equal(bq.peaking_coeffs(1e3, 1.0, -99.0, fs), bq.peaking_coeffs(1e3, 1.0, -24.0, fs))
    # The low-frequency floor rises with the rate so that the radius guard stays feasible.
    assert bq.freq_limits_hz(192_000.0)[0] == pytest.approx(2 * (1 - bq.POLE_RADIUS_MAX) * 192_000 / (2 * math.pi))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: bq.peaking_coeffs(np.nan, 1.0, 0.0, 48_000), "freq_hz"),
        (lambda: bq.peaking_coeffs(1e3, np.inf, 0.0, 48_000), "q"),
        (lambda: bq.peaking_coeffs(1e3, 1.0, "loud", 48_000), "gain_db"),
        (lambda: bq.peaking_coeffs(1e3, 1.0, 0.0, 0), "sample_rate"),
        (lambda: bq.peaking_coeffs(1e3, 1.0, 0.0, -48_000), "sample_rate"),
        (lambda: bq.peaking_coeffs(1e3, 1.0, 0.0, float("nan")), "sample_rate"),
        (lambda: bq.cascade_response_db(np.zeros((3, 4)), np.array([1.0]), 48_000), "coeffs"),
        (lambda: bq.cascade_response_db(bq.identity_coeffs(2), np.ones((2, 2)), 48_000), "freqs_hz"),
        (lambda: bq.cascade_response_db(bq.identity_coeffs(2), np.array([-1.0]), 48_000), "freqs_hz"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


# --- JAX: same numbers, differentiable, total ------------------------------------


def test_jax_design_and_response_agree_with_numpy(rng: np.random.Generator) -> None:
    fs = 48_000.0
    freq_hz, q, gain_db = rng.uniform(240, 23_000, 32), rng.uniform(0.1, 30, 32), rng.uniform(-20, 20, 32)
    freqs = np.linspace(0.0, fs / 2, 513)[1:-1]
    ref = bq.peaking_response_db(bq.peaking_params(freq_hz, q, gain_db, fs), freqs, fs).sum(0)
    params = bq.peaking_params(*(jnp.asarray(v, jnp.float32) for v in (freq_hz, q, gain_db)), fs)
    got = jax.jit(lambda p: bq.peaking_response_db(p, freqs, fs).sum(0))(params)
    assert got.dtype == jnp.float32
    assert np.max(np.abs(np.asarray(got) - ref)) < 0.01
    np.testing.assert_allclose(
        np.asarray(bq.coeffs_from_params(params)), bq.peaking_coeffs(freq_hz, q, gain_db, fs), atol=2e-6
    )


def test_jax_gradient_matches_finite_differences(rng: np.random.Generator) -> None:
    fs = 48_000.0
    freqs = np.geomspace(50, 20_000, 200)
    theta = np.stack([rng.uniform(300, 8000, 8), rng.uniform(0.5, 4, 8), rng.uniform(-12, 12, 8)])

    def loss(t):
        db = bq.peaking_response_db(bq.peaking_params(t[0], t[1], t[2], fs), freqs, fs).sum(0)
        return (db**2).mean()

    grad = np.asarray(jax.grad(loss)(jnp.asarray(theta, jnp.float32)))
    eps = 1e-4 * np.maximum(np.abs(theta), 1.0)
    numeric = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[idx] += eps[idx]
        down[idx] -= eps[idx]
        numeric[idx] = (loss(up) - loss(down)) / (2 * eps[idx])
    np.testing.assert_allclose(grad, numeric, rtol=2e-2, atol=1e-4 * np.abs(numeric).max())


def test_non_finite_jax_parameters_design_a_flat_stable_section() -> None:
    coeffs = bq.peaking_coeffs(jnp.array([jnp.nan, 1e3]), jnp.array([1.0, jnp.inf]), jnp.array([3.0, jnp.nan]), 48e3)
    c = np.asarray(coeffs, dtype=np.float64)
    assert np.all(np.isfinite(c)) and np.all(bq.pole_radius(c) < 1.0)
    # NaN gain becomes 0 dB: a flat section.
    np.testing.assert_allclose(bq.cascade_response_db(c[1:], np.geomspace(20, 20e3, 50), 48e3), 0.0, atol=1e-5)


# --- property tests: nothing the decoder or a user can send is unstable ----------

_RAW = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([-1e300, 1e300, -40.0, 40.0, 0.0, -1e-300]),
)


@settings(max_examples=300, deadline=None)
@given(raw=arrays(np.float64, (32, 3), elements=_RAW), fs=st.sampled_from(SAMPLE_RATES_HZ))
def test_any_decoder_output_designs_sections_inside_radius(raw: np.ndarray, fs: float) -> None:
    # Raw outputs of any magnitude: what z far outside +-2 produces after the network.
    freq_frac, q, gain_db = map_outputs(raw)
    coeffs = bq.peaking_coeffs(freq_frac_to_hz(freq_frac), q, gain_db, fs)
    assert np.all(np.isfinite(coeffs))
    assert np.all(bq.pole_radius(coeffs) < 0.9995)


@settings(max_examples=100, deadline=None)
@given(raw=arrays(np.float32, (32, 3), elements=st.floats(-1e4, 1e4, width=32)), fs=st.sampled_from(SAMPLE_RATES_HZ))
def test_the_float32_jax_path_designs_sections_inside_radius(raw: np.ndarray, fs: float) -> None:
    freq_frac, q, gain_db = map_outputs(jnp.asarray(raw))
    coeffs = np.asarray(bq.peaking_coeffs(freq_frac_to_hz(freq_frac), q, gain_db, fs), dtype=np.float64)
    assert np.all(np.isfinite(coeffs))
    assert np.all(bq.pole_radius(coeffs) < 0.9995)


_USER = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


@settings(max_examples=500, deadline=None)
@given(freq=_USER, q=_USER, gain=_USER, fs=st.sampled_from(SAMPLE_RATES_HZ))
def test_any_finite_user_value_designs_a_section_inside_radius(freq: float, q: float, gain: float, fs: float) -> None:
    coeffs = bq.peaking_coeffs(freq, q, gain, fs)
    assert np.all(np.isfinite(coeffs))
    assert bq.pole_radius(coeffs[None])[0] < 0.9995
