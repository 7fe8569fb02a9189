"""Models of any latent size for the tests: one trained by the real `aether-rt train`, one untrained.

``trained_by_cli`` is what a user does with the model card's default latent size (2):
``aether-rt train --latent-dim 2`` on a small synthetic corpus, a few steps (~25 s).
``untrained`` writes freshly initialised weights through the real checkpoint code, for
sizes where only the shape matters (8): its decoder still maps every z to valid filters,
and two of its layers are scaled so that z moves the response by a few dB (as much as the
tiny trained model's), not the ~0.1 dB of a fresh initialisation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: ``aether-rt train`` flags of the tiny trained model (besides --latent-dim and --out).
TINY_TRAIN = ("--num-filters", "8", "--data", "synthetic:48", "--steps", "60", "--batch-size", "16",
              "--steps-per-epoch", "30", "--seed", "3")  # fmt: skip


def trained_by_cli(latent_dim: int, out: Path, cache: Path) -> Path:
    """Train a tiny model with the command line into ``out`` (the corpus cached in ``cache``)."""
    done = subprocess.run(
        [sys.executable, "-m", "aether_rt", "train", "--latent-dim", str(latent_dim), *TINY_TRAIN, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "AETHER_RT_CACHE": str(cache)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def untrained(latent_dim: int, out: Path, num_filters: int = 8) -> Path:
    """Initialised (not trained) weights of a ``latent_dim`` model, saved as a model folder ``out``."""
    import jax
    import jax.numpy as jnp

    from aether_rt.models.checkpoint import ModelConfig, save_model

    config = ModelConfig(num_filters=num_filters, latent_dim=latent_dim)
    key = jax.random.PRNGKey(latent_dim)
    params = config.module().init(key, jnp.ones((1, config.feature.n_bins)), key)["params"]
    decoder = params["decoder"]
    for layer, scale in (("Dense_0", 3.0), ("filters", 5.0)):
        decoder[layer]["kernel"] = decoder[layer]["kernel"] * scale
    save_model(out / "model", params, config, {"note": "untrained, for tests"})
    return out
