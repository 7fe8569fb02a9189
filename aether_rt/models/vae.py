"""ParametricVAE: spectra -> a latent z -> the parameters of a chain of peaking filters.

The architecture is the model card's (``../shared/seed``):

* Encoder, input ``(B, 513)``: three 1-D convolutions with 16, 32 and 64 features,
  ReLU, stride 2 (kernel size 5, "SAME" padding: 513 -> 257 -> 129 -> 65 positions),
  flatten, Dense 128 and Dense 64 (ReLU), then Dense ``mu`` and Dense ``logvar``
  (``latent_dim`` each, default 2).
* Reparameterised sample ``z = mu + exp(logvar / 2) * eps``.
* Decoder: Dense 64 and Dense 128 (ReLU), Dense ``num_filters * 3``, reshaped to
  ``(B, num_filters, 3)`` and mapped by :func:`aether_rt.models.mapping.map_outputs`:
  frequency as a fraction of Nyquist (of the 48 kHz training rate), Q, gain in dB.

Usage exactly as on the card::

    model = ParametricVAE(num_filters=5, latent_dim=2)
    variables = model.init(key, jnp.ones((1, 513)), key)
    freqs, qs, gains, mu, logvar = model.apply(variables, spectrum, key)
    freqs, qs, gains = model.apply(variables, z, method=model.decode)

Two choices the card leaves open: the encoder scales its dB input by 1/20 (features
span about -40..+20 dB), and the decoder's last layer starts small, with its biases
spread so that the initial filters are log-spaced across the frequency range at Q ~ 1
and 0 dB. With the default init the first loss was 585 dB^2 and the gradient norm ~9000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aether_rt.models.mapping import SEED_BOUNDS, MappingBounds, map_outputs

INPUT_BINS = 513
CONV_FEATURES = (16, 32, 64)
CONV_KERNEL = 5
ENCODER_DENSE = (128, 64)
DECODER_DENSE = (64, 128)
_INPUT_SCALE = 1.0 / 20.0  # dB -> order 1
_INITIAL_Q = 1.0


def reparameterize(key: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """Sample ``z ~ N(mu, exp(logvar))`` differentiably: ``mu + exp(logvar/2) * eps``."""
    return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)


def kl_divergence(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per latent dimension, in nats (same shape as mu)."""
    return 0.5 * (jnp.exp(logvar) + mu * mu - 1.0 - logvar)


def region_excess(mu: jax.Array, bound: float) -> jax.Array:
    """How far encoded means lie outside ``|z_i| <= bound``: ``sum_i relu(|mu_i| - bound)^2`` over the last axis.

    Zero inside the region. Training adds it to the loss (``region_weight``) so that the
    encoder puts the IRs inside the learned region, where the engine moves z: the KL term
    at the weight that keeps the fit alone left 23 % of the corpus beyond +-2.
    """
    return jnp.sum(jax.nn.relu(jnp.abs(mu) - bound) ** 2, axis=-1)


class Encoder(nn.Module):
    """Spectrum ``(B, 513)`` -> ``(mu, logvar)``, each ``(B, latent_dim)``."""

    latent_dim: int

    @nn.compact
    def __call__(self, spectrum: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encode a batch of spectra."""
        h = (spectrum * _INPUT_SCALE)[..., None]
        for features in CONV_FEATURES:
            h = nn.relu(nn.Conv(features, kernel_size=(CONV_KERNEL,), strides=(2,), padding="SAME")(h))
        h = h.reshape(h.shape[0], -1)
        for width in ENCODER_DENSE:
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.latent_dim, name="mu")(h), nn.Dense(self.latent_dim, name="logvar")(h)


class Decoder(nn.Module):
    """``z (B, latent_dim)`` -> (freqs, qs, gains), each ``(B, num_filters)``."""

    num_filters: int
    bounds: MappingBounds

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Decode a batch of latent points."""
        h = z
        for width in DECODER_DENSE:
            h = nn.relu(nn.Dense(width)(h))
        raw = nn.Dense(
            self.num_filters * 3,
            kernel_init=nn.initializers.normal(stddev=1e-3),
            bias_init=_spread_bias(self.num_filters, self.bounds),
            name="filters",
        )(h)
        return map_outputs(raw.reshape(*z.shape[:-1], self.num_filters, 3), self.bounds)


class ParametricVAE(nn.Module):
    """The model card's VAE: spectra to a latent space of peaking-filter chains.

    Attributes:
        num_filters: filters decoded per latent point.
        latent_dim: size of z (the card's default, 2).
        bounds: the output mapping's bounds (default: the card's).

    """

    num_filters: int = 32
    latent_dim: int = 2
    bounds: MappingBounds = SEED_BOUNDS

    def setup(self) -> None:
        """Build the encoder and decoder."""
        self.encoder = Encoder(self.latent_dim)
        self.decoder = Decoder(self.num_filters, self.bounds)

    def __call__(self, spectrum: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
        """Encode, sample and decode: ``(freqs, qs, gains, mu, logvar)``."""
        mu, logvar = self.encoder(spectrum)
        freqs, qs, gains = self.decoder(reparameterize(key, mu, logvar))
        return freqs, qs, gains, mu, logvar

    def encode(self, spectrum: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(mu, logvar)`` of a batch of spectra ``(B, 513)``."""
        return self.encoder(spectrum)

    def decode(self, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Filters of latent points ``(B, latent_dim)``: ``(freqs, qs, gains)``, each ``(B, num_filters)``."""
        return self.decoder(z)


def _spread_bias(num_filters: int, bounds: MappingBounds) -> Callable[..., jax.Array]:
    """Initial raw outputs: log-spaced frequencies, Q ~ 1, 0 dB (inverting the mapping)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        del key
        lo = max(bounds.freq_min_frac, 1e-3)
        hi = 0.9 * bounds.freq_max_frac
        frac = jnp.geomspace(lo * 1.2, hi, num_filters) if num_filters > 1 else jnp.array([math.sqrt(lo * hi)])
        span = bounds.freq_max_frac - bounds.freq_min_frac
        s = jnp.clip((frac - bounds.freq_min_frac) / span, 1e-4, 1 - 1e-4)
        freq_raw = jnp.log(s / (1.0 - s))  # inverse sigmoid
        q_raw = jnp.full(num_filters, math.log(math.expm1(max(_INITIAL_Q - bounds.q_min, 1e-3))))  # inverse softplus
        bias = jnp.stack([freq_raw, q_raw, jnp.zeros(num_filters)], axis=-1).reshape(-1)
        return bias.astype(dtype).reshape(shape)

    return init
