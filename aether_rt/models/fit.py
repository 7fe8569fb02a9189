"""Fitting a latent point to a target spectrum (``aether-rt encode --refine``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError
from aether_rt.models.checkpoint import LoadedModel


def ir_latent(model: LoadedModel, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An impulse-response file's feature and latent point (the encoder's mean).

    Returns:
        ``(feature [513], z [latent_dim])``.

    Raises:
        UserError: the file cannot be read or is not a usable impulse response.

    """
    import soundfile as sf

    from aether_rt.features import ir_feature

    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
        feature = ir_feature(audio, float(rate), model.config.feature)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc}", "give a WAV, FLAC or AIFF impulse response") from None
    except ValueError as exc:
        raise UserError(f"{str(path)!r} is not a usable impulse response: {exc}") from None
    mu, _ = model.encode(feature[None])
    return feature, np.asarray(mu[0], dtype=np.float64)


def refine_latent(
    model: LoadedModel, feature: np.ndarray, z0: np.ndarray, *, steps: int = 200, bound: float = 3.0
) -> tuple[np.ndarray, float, float]:
    """Move ``z`` by Adam steps so the decoded response fits ``feature`` better.

    Args:
        model: the model.
        feature: the target feature ``[513]``.
        z0: the starting point (the encoder's mean), ``[latent_dim]``.
        steps: gradient steps.
        bound: z is kept within ``+-bound`` (the decoder is unreliable far outside its
            training region).

    Returns:
        ``(z, lsd_before_db, lsd_after_db)``; ``z`` is the better of start and end.

    """
    import jax
    import jax.numpy as jnp
    import optax

    from aether_rt.train import make_model_fns

    _, decoded_response_db, _ = make_model_fns(model.config)
    target = jnp.asarray(feature[1:-1], jnp.float32)

    def lsd(z: Any) -> Any:
        err = decoded_response_db(model.params, z[None])[0] - target
        return jnp.sqrt(jnp.mean(err * err))

    optimizer = optax.adam(0.02)

    @jax.jit
    def run(z: Any) -> Any:
        def body(carry: Any, _: Any) -> tuple[Any, None]:
            z, opt_state = carry
            updates, opt_state = optimizer.update(jax.grad(lsd)(z), opt_state, z)
            return (jnp.clip(optax.apply_updates(z, updates), -bound, bound), opt_state), None

        (z, _), _ = jax.lax.scan(body, (z, optimizer.init(z)), None, length=steps)
        return z

    start = jnp.asarray(z0, jnp.float32)
    before = float(lsd(start))
    end = run(start) if steps > 0 else start
    after = float(lsd(end))
    if after > before:
        return np.asarray(start, np.float64), before, before
    return np.asarray(end, np.float64), before, after
