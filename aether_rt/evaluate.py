"""How good is a model? LSD against three anchors, latent activity and smoothness.

On a fixed held-out set (by default synthetic IRs from a seed no training run uses):

* **LSD** (log-spectral distance, dB): per IR, the RMS over the bins in 20 Hz - 20 kHz
  (:mod:`aether_rt.models.objective`: why that band) of the difference between a
  method's response and the target; reported as mean, median and 90th percentile over
  the IRs, against the smoothed target (the training target), the raw Welch spectrum,
  log-frequency weighted (each octave counts equally: bin weights proportional to
  1/f), and over the full band 47 Hz - 24 kHz (bins 1..511: how figures were measured
  before the band was introduced, kept so that they stay comparable).
* **Anchors**, computed in the same run on the same IRs: ``flat`` (0 dB everywhere),
  ``pca4`` (the first 4 principal components of these very IRs' targets: the best
  linear 4-number code for them) and ``oracle`` (32 filters, the model's mapping and
  bounds, fitted to each IR directly by gradient descent with restarts, on the
  training objective: the best any 32-filter decoder can do).
* **KL per latent dimension** over the set (a dimension is active above 0.1 nat).
* **Smoothness**: the largest change of the decoded response (max over the bins of
  the band, dB) for a 0.05 step along any latent dimension, from points sampled
  uniformly in [-2, 2].
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
#: What the LSD is measured against (see the module docstring).
TARGETS = ("smoothed", "raw", "log_weighted", "full_band")
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
    families: list[str] | None = None  # per IR, for a synthetic set

    def family_lsd(self, target: str = "smoothed") -> dict[str, dict[str, float]]:
        """Mean LSD per corpus family and method (``n``: IRs of the family); empty unless synthetic."""
        if self.families is None:
            return {}
        names = np.asarray(self.families)
        return {
            family: {"n": int(np.sum(names == family)),
                     **{m: float(np.mean(self.lsd[target][m][names == family])) for m in METHODS}}
            for family in sorted(set(self.families), key=lambda f: -np.sum(names == f))
        }  # fmt: skip

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
        out["per_family"] = self.family_lsd()
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

    from aether_rt.models.objective import band_mask, lsd_db, response_bins
    from aether_rt.train import bin_freqs_hz, make_model_fns

    config = model.config
    _, decoded_response_db, _ = make_model_fns(config)
    freqs = bin_freqs_hz(config.feature)
    in_band = band_mask(freqs)
    smoothed = response_bins(data.features).astype(np.float64)
    raw = response_bins(data.raw).astype(np.float64)

    mu, logvar = model.encode(data.features)
    model_db = np.asarray(decoded_response_db(model.params, jnp.asarray(mu, jnp.float32)), np.float64)
    centred = smoothed - smoothed.mean(axis=0)  # PCA over all bins: a linear code is not bound to 0 dB at Nyquist
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pca_db = smoothed.mean(axis=0) + centred @ vt[:4].T @ vt[:4]
    oracle_db = oracle_fit(config, smoothed, steps=oracle_steps, restarts=oracle_restarts, seed=seed)
    predictions = {"model": model_db, "flat": np.zeros_like(smoothed), "pca4": pca_db, "oracle": oracle_db}

    everywhere = np.ones_like(in_band)
    lsd: dict[str, dict[str, np.ndarray]] = {target: {} for target in TARGETS}
    for method, pred in predictions.items():
        lsd["smoothed"][method] = lsd_db(pred, smoothed, in_band)
        lsd["raw"][method] = lsd_db(pred, raw, in_band)
        lsd["log_weighted"][method] = lsd_db(pred, smoothed, in_band, weights=1.0 / freqs)
        lsd["full_band"][method] = lsd_db(pred, smoothed, everywhere)

    kl = 0.5 * (np.exp(logvar) + mu**2 - 1.0 - logvar)
    worst, median = smoothness(model, points=smoothness_points, seed=seed)
    return Evaluation(lsd, kl.mean(axis=0), worst, median, len(data), data.description, _families(data))


def _families(data: Dataset) -> list[str] | None:
    """Each IR's corpus family, for a synthetic set (names ``synthetic/<seed>/<index>``)."""
    from aether_rt.data.synthetic import family_of

    parts = [name.split("/") for name in data.names]
    if not all(len(p) == 3 and p[0] == "synthetic" and p[1].isdigit() and p[2].isdigit() for p in parts):
        return None
    return [family_of(int(index), int(seed)) for _, seed, index in parts]


def smoothness(
    model: LoadedModel, *, points: int = 2000, step: float = SMOOTHNESS_STEP, seed: int = 0
) -> tuple[float, float]:
    """Largest and median max-over-bins response change (dB) for a ``step`` in one z dim."""
    import jax.numpy as jnp

    from aether_rt.models.objective import band_mask
    from aether_rt.train import bin_freqs_hz, make_model_fns

    _, decoded_response_db, _ = make_model_fns(model.config)
    in_band = band_mask(bin_freqs_hz(model.config.feature))
    dim = model.config.latent_dim
    z = np.random.default_rng(seed).uniform(-2.0, 2.0 - step, (points, dim))
    base = np.asarray(decoded_response_db(model.params, jnp.asarray(z, jnp.float32)))
    changes = []
    for d in range(dim):
        moved = z.copy()
        moved[:, d] += step
        resp = np.asarray(decoded_response_db(model.params, jnp.asarray(moved, jnp.float32)))
        changes.append(np.max(np.abs(resp - base)[:, in_band], axis=1))
    all_changes = np.concatenate(changes)
    return float(all_changes.max()), float(np.median(all_changes))


def oracle_fit(config: Any, targets_db: np.ndarray, *, steps: int, restarts: int, seed: int = 0) -> np.ndarray:
    """Per-IR best fit of ``num_filters`` filters (the model's mapping and bounds) by Adam.

    Every IR is fitted independently (vmapped); each restart perturbs the spread start;
    the best restart per IR is kept. The objective is training's
    (:func:`aether_rt.models.objective.spectral_loss_db2`). Returns the fitted responses
    ``[n, n_bins - 2]``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from aether_rt.models.design import filters_from_outputs, response_db
    from aether_rt.models.mapping import map_outputs
    from aether_rt.models.objective import band_mask, spectral_loss_db2
    from aether_rt.models.vae import _spread_bias
    from aether_rt.train import bin_freqs_hz

    n_filters, bounds = config.num_filters, config.bounds
    freqs = bin_freqs_hz(config.feature)
    in_band = band_mask(freqs)
    start = _spread_bias(n_filters, bounds)(None, (3 * n_filters,)).reshape(n_filters, 3)

    def response(raw: Any) -> Any:
        f, q, g = map_outputs(raw, bounds)
        return response_db(filters_from_outputs(f, q, g, config.sample_rate_hz), freqs, config.feature.sample_rate_hz)

    optimizer = optax.adam(0.05)

    @jax.jit
    def fit(raw0: Any, target: Any) -> tuple[Any, Any]:
        def body(carry: Any, _: Any) -> tuple[Any, None]:
            raw, opt_state = carry
            grad = jax.grad(lambda r: spectral_loss_db2(response(r), target, in_band))(raw)
            updates, opt_state = optimizer.update(grad, opt_state, raw)
            return (optax.apply_updates(raw, updates), opt_state), None

        (raw, _), _ = jax.lax.scan(body, (raw0, optimizer.init(raw0)), None, length=steps)
        pred = response(raw)
        return pred, spectral_loss_db2(pred, target, in_band)

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
    from aether_rt.models.objective import COMPARED_BAND_HZ

    s = result.summary()
    low, high = COMPARED_BAND_HZ
    lines = [
        f"LSD in dB over {result.n_items} IRs, {low:g} Hz - {high / 1000:g} kHz (mean / median / p90)",
        "| method | smoothed target | raw Welch | log-frequency weighted | smoothed, full band to 24 kHz |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        cells = [f"{s[method][t]['mean']:.3f} / {s[method][t]['median']:.3f} / {s[method][t]['p90']:.3f}"
                 for t in TARGETS]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    kl = ", ".join(f"{v:.2f}" for v in s["kl_per_dim_nats"])
    lines.append(f"KL per latent dim (nats): {kl}; active (> {ACTIVE_KL_NATS}): {s['active_dims']}")
    if s["per_family"]:
        lines += ["", "mean LSD per family, smoothed target (dB)", "| family | n | " + " | ".join(METHODS) + " |",
                  "|---|---|" + "---|" * len(METHODS)]  # fmt: skip
        for family, row in s["per_family"].items():
            lines.append(f"| {family} | {row['n']} | " + " | ".join(f"{row[m]:.3f}" for m in METHODS) + " |")
        lines.append("")
    lines.append(
        f"smoothness: largest response change for a {SMOOTHNESS_STEP} step in one z dim within +-2: "
        f"{s['smoothness_max_db']:.3f} dB (median {s['smoothness_median_db']:.3f} dB)"
    )
    return "\n".join(lines)
