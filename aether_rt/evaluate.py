"""How good is a model? LSD against three anchors, latent activity and smoothness.

On a fixed held-out set (by default synthetic IRs from a seed no training run uses):

* **LSD** (log-spectral distance, dB): per IR, the RMS over bins 1..511 of the
  difference between a method's response and the target; reported as mean, median
  and 90th percentile over the IRs, against the smoothed target (the training
  target), the raw Welch spectrum, and log-frequency weighted (each octave counts
  equally: bin weights proportional to 1/f).
* **Anchors**, computed in the same run on the same IRs: ``flat`` (0 dB everywhere),
  ``pca4`` (the first 4 principal components of these very IRs' targets: the best
  linear 4-number code for them) and ``oracle`` (32 filters, the model's mapping and
  bounds, fitted to each IR directly by gradient descent with restarts: the best any
  32-filter decoder can do).
* **KL per latent dimension** over the set (a dimension is active above 0.1 nat).
* **Smoothness**: the largest change of the decoded response (max over bins, dB) for
  a 0.05 step along any latent dimension, from points sampled uniformly in [-2, 2].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aether_rt.data.datasets import Dataset
from aether_rt.models.checkpoint import LoadedModel

EVAL_SEED = 20_240_901  # the default held-out set: no training run uses this seed
EVAL_N = 300
METHODS = ("model", "flat", "pca4", "oracle")
ACTIVE_KL_NATS = 0.1
SMOOTHNESS_STEP = 0.05


@dataclass(frozen=True)
class Evaluation:
    """Results of :func:`evaluate` (``lsd[target][method]`` holds the per-IR LSDs)."""

    lsd: dict[str, dict[str, np.ndarray]]
    kl_per_dim: np.ndarray
    smoothness_max_db: float
    smoothness_median_db: float
    n_items: int
    description: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: per method mean/median/p90 LSD per target, KL, smoothness."""
        out: dict[str, Any] = {
            method: {
                target: {
                    "mean": float(np.mean(values[method])),
                    "median": float(np.median(values[method])),
                    "p90": float(np.percentile(values[method], 90)),
                }
                for target, values in self.lsd.items()
            }
            for method in METHODS
        }
        for method in METHODS:  # the headline figures, flat, as the issue names them
            out[method].update(out[method]["smoothed"])
        out["kl_per_dim_nats"] = [float(v) for v in self.kl_per_dim]
        out["active_dims"] = int(np.sum(self.kl_per_dim > ACTIVE_KL_NATS))
        out["smoothness_max_db"] = self.smoothness_max_db
        out["smoothness_median_db"] = self.smoothness_median_db
        out["n_items"] = self.n_items
        out["data"] = self.description
        return out


def evaluate(
    model: LoadedModel,
    data: Dataset,
    *,
    oracle_steps: int = 1500,
    oracle_restarts: int = 3,
    smoothness_points: int = 2000,
    seed: int = 0,
) -> Evaluation:
    """Evaluate ``model`` on ``data`` beside the flat, PCA-4 and oracle anchors."""
    import jax.numpy as jnp

    from aether_rt.train import bin_freqs_hz, make_model_fns

    config = model.config
    _, decoded_response_db, _ = make_model_fns(config)
    freqs = bin_freqs_hz(config.feature)
    smoothed = data.features[:, 1:-1].astype(np.float64)
    raw = data.raw[:, 1:-1].astype(np.float64)

    mu, logvar = model.encode(data.features)
    model_db = np.asarray(decoded_response_db(model.params, jnp.asarray(mu, jnp.float32)), np.float64)
    centred = smoothed - smoothed.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pca_db = smoothed.mean(axis=0) + centred @ vt[:4].T @ vt[:4]
    oracle_db = oracle_fit(config, smoothed, steps=oracle_steps, restarts=oracle_restarts, seed=seed)
    predictions = {"model": model_db, "flat": np.zeros_like(smoothed), "pca4": pca_db, "oracle": oracle_db}

    weights = 1.0 / freqs
    weights /= weights.sum()
    lsd: dict[str, dict[str, np.ndarray]] = {"smoothed": {}, "raw": {}, "log_weighted": {}}
    for method, pred in predictions.items():
        lsd["smoothed"][method] = np.sqrt(np.mean((pred - smoothed) ** 2, axis=1))
        lsd["raw"][method] = np.sqrt(np.mean((pred - raw) ** 2, axis=1))
        lsd["log_weighted"][method] = np.sqrt(((pred - smoothed) ** 2) @ weights)

    kl = 0.5 * (np.exp(logvar) + mu**2 - 1.0 - logvar)
    worst, median = smoothness(model, points=smoothness_points, seed=seed)
    return Evaluation(lsd, kl.mean(axis=0), worst, median, len(data), data.description)


def smoothness(
    model: LoadedModel, *, points: int = 2000, step: float = SMOOTHNESS_STEP, seed: int = 0
) -> tuple[float, float]:
    """Largest and median max-over-bins response change (dB) for a ``step`` in one z dim."""
    import jax.numpy as jnp

    from aether_rt.train import make_model_fns

    _, decoded_response_db, _ = make_model_fns(model.config)
    dim = model.config.latent_dim
    z = np.random.default_rng(seed).uniform(-2.0, 2.0 - step, (points, dim))
    base = np.asarray(decoded_response_db(model.params, jnp.asarray(z, jnp.float32)))
    changes = []
    for d in range(dim):
        moved = z.copy()
        moved[:, d] += step
        resp = np.asarray(decoded_response_db(model.params, jnp.asarray(moved, jnp.float32)))
        changes.append(np.max(np.abs(resp - base), axis=1))
    all_changes = np.concatenate(changes)
    return float(all_changes.max()), float(np.median(all_changes))


def oracle_fit(config: Any, targets_db: np.ndarray, *, steps: int, restarts: int, seed: int = 0) -> np.ndarray:
    """Per-IR best fit of ``num_filters`` filters (the model's mapping and bounds) by Adam.

    Every IR is fitted independently (vmapped); each restart perturbs the spread start;
    the best restart per IR is kept. Returns the fitted responses ``[n, n_bins - 2]``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from aether_rt.models.design import filters_from_outputs, response_db
    from aether_rt.models.mapping import map_outputs
    from aether_rt.models.vae import _spread_bias
    from aether_rt.train import bin_freqs_hz

    n_filters, bounds = config.num_filters, config.bounds
    freqs = bin_freqs_hz(config.feature)
    start = _spread_bias(n_filters, bounds)(None, (3 * n_filters,)).reshape(n_filters, 3)

    def response(raw: Any) -> Any:
        f, q, g = map_outputs(raw, bounds)
        return response_db(filters_from_outputs(f, q, g, config.sample_rate_hz), freqs, config.feature.sample_rate_hz)

    optimizer = optax.adam(0.05)

    @jax.jit
    def fit(raw0: Any, target: Any) -> tuple[Any, Any]:
        def body(carry: Any, _: Any) -> tuple[Any, None]:
            raw, opt_state = carry
            grad = jax.grad(lambda r: jnp.mean((response(r) - target) ** 2))(raw)
            updates, opt_state = optimizer.update(grad, opt_state, raw)
            return (optax.apply_updates(raw, updates), opt_state), None

        (raw, _), _ = jax.lax.scan(body, (raw0, optimizer.init(raw0)), None, length=steps)
        pred = response(raw)
        return pred, jnp.mean((pred - target) ** 2)

    targets = jnp.asarray(targets_db, jnp.float32)
    key = jax.random.PRNGKey(seed)
    best_pred, best_err = None, None
    for r in range(restarts):
        key, sub = jax.random.split(key)
        raw0 = start[None] + 0.5 * r * jax.random.normal(sub, (targets.shape[0], n_filters, 3))
        pred, err = jax.vmap(fit)(raw0, targets)
        if best_pred is None:
            best_pred, best_err = pred, err
        else:
            better = err < best_err
            best_pred = jnp.where(better[:, None], pred, best_pred)
            best_err = jnp.minimum(err, best_err)
    return np.asarray(best_pred, np.float64)


def format_table(result: Evaluation) -> str:
    """The evaluation as a text table."""
    s = result.summary()
    lines = [
        f"LSD in dB over {result.n_items} IRs, bins 1..511 (mean / median / p90)",
        "| method | smoothed target | raw Welch | log-frequency weighted |",
        "|---|---|---|---|",
    ]
    for method in METHODS:
        cells = [f"{s[method][t]['mean']:.3f} / {s[method][t]['median']:.3f} / {s[method][t]['p90']:.3f}"
                 for t in ("smoothed", "raw", "log_weighted")]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    kl = ", ".join(f"{v:.2f}" for v in s["kl_per_dim_nats"])
    lines.append(f"KL per latent dim (nats): {kl}; active (> {ACTIVE_KL_NATS}): {s['active_dims']}")
    lines.append(
        f"smoothness: largest response change for a {SMOOTHNESS_STEP} step in one z dim within +-2: "
        f"{s['smoothness_max_db']:.3f} dB (median {s['smoothness_median_db']:.3f} dB)"
    )
    return "\n".join(lines)
