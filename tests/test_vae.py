"""The ParametricVAE: the model card's usage, its exact size, its mapping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aether_rt.models.mapping import SEED_BOUNDS, MappingBounds, map_outputs
from aether_rt.models.vae import ParametricVAE, kl_divergence, region_excess, reparameterize


def test_the_model_card_example_runs_as_written() -> None:
    # The card's snippet, with only `aether` replaced by `aether_rt` in the import.
    from aether_rt.models.vae import ParametricVAE

    model = ParametricVAE(num_filters=5, latent_dim=2)
    key = jax.random.PRNGKey(0)
    variables = model.init(key, jnp.ones((1, 513)), key)
    input_spectrum = jnp.zeros((3, 513))
    outputs = model.apply(variables, input_spectrum, key)
    freqs, qs, gains, mu, logvar = outputs
    assert freqs.shape == qs.shape == gains.shape == (3, 5)
    assert mu.shape == logvar.shape == (3, 2)
    z = jnp.array([[0.5, -0.5]])
    freqs, qs, gains = model.apply(variables, z, method=model.decode)
    assert freqs.shape == (1, 5)


def _expected_parameter_count(num_filters: int, latent_dim: int) -> int:
    """Counted by hand from the card: kernel-5 convolutions with stride 2 and SAME padding."""
    length, channels, total = 513, 1, 0
    for features in (16, 32, 64):
        total += 5 * channels * features + features
        channels, length = features, -(-length // 2)  # 513 -> 257 -> 129 -> 65
    width = length * channels  # 65 * 64 = 4160
    for units in (128, 64):
        total += width * units + units
        width = units
    total += 2 * (64 * latent_dim + latent_dim)  # mu and logvar
    total += latent_dim * 64 + 64 + 64 * 128 + 128 + 128 * 3 * num_filters + 3 * num_filters
    return total


@pytest.mark.parametrize(("num_filters", "latent_dim"), [(5, 2), (32, 4)])
def test_exact_parameter_count(num_filters: int, latent_dim: int) -> None:
    model = ParametricVAE(num_filters=num_filters, latent_dim=latent_dim)
    key = jax.random.PRNGKey(1)
    params = model.init(key, jnp.ones((1, 513)), key)["params"]
    count = sum(x.size for x in jax.tree_util.tree_leaves(params))
    assert count == _expected_parameter_count(num_filters, latent_dim)
    assert _expected_parameter_count(5, 2) == 564_563  # the figure for the card's example


def test_defaults_are_the_cards() -> None:
    model = ParametricVAE()
    assert model.latent_dim == 2 and model.bounds == SEED_BOUNDS
    assert (SEED_BOUNDS.freq_min_frac, SEED_BOUNDS.freq_max_frac, SEED_BOUNDS.q_min, SEED_BOUNDS.gain_max_db) == (
        0.01,
        1.0,
        0.1,
        20.0,
    )


def test_mapping_matches_the_cards_formulas() -> None:
    raw = np.random.default_rng(0).normal(0.0, 3.0, (7, 5, 3))
    freq, q, gain = map_outputs(raw)
    sigmoid = 1.0 / (1.0 + np.exp(-raw[..., 0]))
    np.testing.assert_allclose(freq, sigmoid * 0.99 + 0.01, rtol=1e-12)
    np.testing.assert_allclose(q, np.log1p(np.exp(raw[..., 1])) + 0.1, rtol=1e-12)
    np.testing.assert_allclose(gain, np.tanh(raw[..., 2]) * 20.0, rtol=1e-12)


def test_bounds_are_constructor_options() -> None:
    bounds = MappingBounds(freq_min_frac=0.004, freq_max_frac=0.9, q_min=0.3, gain_max_db=12.0)
    model = ParametricVAE(num_filters=8, latent_dim=3, bounds=bounds)
    key = jax.random.PRNGKey(2)
    variables = model.init(key, jnp.ones((1, 513)), key)
    f, q, g = model.apply(variables, 50.0 * jnp.ones((2, 3)), method=model.decode)
    assert np.all((np.asarray(f) >= 0.004) & (np.asarray(f) <= 0.9))
    assert np.all(np.asarray(q) >= 0.3) and np.all(np.abs(np.asarray(g)) <= 12.0)
    with pytest.raises(ValueError, match="freq_min_frac"):
        MappingBounds(freq_min_frac=0.5, freq_max_frac=0.2)


def test_initial_filters_are_spread_flat_and_moderate() -> None:
    model = ParametricVAE(num_filters=32, latent_dim=4)
    key = jax.random.PRNGKey(3)
    variables = model.init(key, jnp.ones((1, 513)), key)
    f, q, g = (np.asarray(v)[0] for v in model.apply(variables, jnp.zeros((1, 4)), method=model.decode))
    assert np.all(np.diff(f) > 0) and f[-1] / f[0] > 50  # log-spread across the band
    assert np.all(np.abs(g) < 0.5) and np.allclose(q, 1.0, atol=0.1)


def test_reparameterize_and_kl() -> None:
    key = jax.random.PRNGKey(4)
    mu, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.0, np.log(0.25)]])
    samples = jnp.stack([reparameterize(k, mu, logvar) for k in jax.random.split(key, 4000)])
    np.testing.assert_allclose(samples.mean(axis=0)[0], [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(samples.std(axis=0)[0], [1.0, 0.5], atol=0.05)
    # KL(N(mu, s^2) || N(0, 1)) = (s^2 + mu^2 - 1 - ln s^2) / 2
    np.testing.assert_allclose(kl_divergence(mu, logvar)[0], [0.5, 0.5 * (0.25 + 4 - 1 - np.log(0.25))], rtol=1e-6)


def test_region_excess_is_zero_inside_and_quadratic_outside() -> None:
    mu = jnp.array([[2.5, -3.0, 1.0, -2.0], [0.0, 1.9, -1.9, 0.5]])
    np.testing.assert_allclose(region_excess(mu, 2.0), [0.5**2 + 1.0**2, 0.0], rtol=1e-6)
    grad = jax.grad(lambda m: region_excess(m, 2.0).sum())(mu)
    np.testing.assert_allclose(grad[0], [1.0, -2.0, 0.0, 0.0], atol=1e-6)  # pulls inward, d/dmu (|mu| - 2)^2
