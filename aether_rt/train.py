"""Training the ParametricVAE on IR features.

loss = mean over the bins in 20 Hz - 20 kHz of (cascade response of the decoded filters - target)^2
       + mean over the bins above of [0.05 (response - target)^2 + relu(response - max(target, 0 dB))^2]
       + beta * KL(q(z | spectrum) || N(0, I))
       + smooth_weight * mean(relu(max over the band |R(z + h e_d) - R(z)| - threshold)^2)
       + region_weight * mean(sum_i relu(|mu_i| - region_bound)^2),

with the response from :func:`aether_rt.models.design.response_db` (the closed form;
per-bin constants in float64; DC and Nyquist are 0 dB for any peaking cascade, so they
are left out). The first two terms are :func:`aether_rt.models.objective.spectral_loss_db2`,
whose docstring says why the band, and what holds above it. ``beta`` ramps up linearly
over the first ``beta_warmup`` of the steps.
The last term keeps the latent space playable: at ``smooth_points`` points drawn
uniformly in ``[-smooth_box, smooth_box]^latent_dim`` (where the engine moves z, data
or not), a step of ``h = smooth_step`` along a random dimension may change no bin of
the decoded response in the band by more than ``smooth_threshold_db`` without cost.
Without it, a narrow filter gliding a little shifted its flanks by up to 12.6 dB per
0.05 step.
The region term (:func:`aether_rt.models.vae.region_excess`) keeps the encoder's means
inside the learned region ``|z_i| <= LEARNED_BOUND``, where the engine moves z and
``encode --refine`` searches: with the KL term alone (at a weight that leaves the fit
free) 23 % of the corpus, and real IRs up to |z| = 3, were encoded beyond it. Measured
on 6000-step runs it costs no fit (docs/model.md).
Adam with global-norm gradient clipping and a warmup-cosine learning rate; one jitted
``train_step(state, batch, key, beta) -> (state, metrics)``.

An epoch is ``steps_per_epoch`` steps. After each: the held-out LSD, a checkpoint of
the model (``model.msgpack`` + ``model.json``) and of the full training state
(``train_state.msgpack``, for ``resume``), and a line of ``metrics.jsonl``. Batches are
drawn from a generator seeded by (seed, step) and the dropout-free model is
deterministic on the CPU, so a resumed run continues exactly where it stopped.

:func:`aether_rt.finetune.finetune` starts from a trained model (``train --init``): a
user's few IRs, all of them trained on, share every batch with the synthetic corpus so
the map keeps its shape; the fit to the user's IRs and to the fixed synthetic held-out
set are measured before and after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from aether_rt.data.datasets import Dataset
from aether_rt.errors import UserError
from aether_rt.features import FeatureSpec
from aether_rt.models.checkpoint import LoadedModel, ModelConfig, save_model
from aether_rt.models.mapping import MODEL_SAMPLE_RATE_HZ, MappingBounds
from aether_rt.modulation import LEARNED_BOUND

#: Bounds of the shipped model. The card's, except a 96 Hz floor instead of 240 Hz: the
#: card's lowest filter leaves the bottom bins (the room's bass) to filter skirts. The
#: ceiling stays at Nyquist (measured: capping it at 0.95 raised the per-IR oracle LSD
#: from 0.37 to 0.60 dB); the biquad design caps the frequency at 0.49 fs anyway.
SHIPPED_BOUNDS = MappingBounds(freq_min_frac=0.004, freq_max_frac=1.0, q_min=0.1, gain_max_db=20.0)

#: Fine-tuning defaults (:func:`aether_rt.finetune.finetune_config`): a trained map needs
#: a nudge, not a new start, so about a tenth of the steps at a third of the peak rate,
#: the KL weight at full strength from the first step, half of every batch from this
#: synthetic corpus, and a checkpoint (with the fit measured) every 500 steps.
FINETUNE_STEPS = 3000
FINETUNE_LR = 1e-3
FINETUNE_MIX = "synthetic:2000"
FINETUNE_MIX_FRACTION = 0.5
FINETUNE_STEPS_PER_EPOCH = 500


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (all stored in the checkpoint)."""

    latent_dim: int = 4
    num_filters: int = 32
    steps: int = 16_000  # 32 000 fitted no better on eval's held-out set (docs/model.md)
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 500
    final_lr_fraction: float = 0.05
    beta: float = 0.001
    beta_warmup: float = 0.3
    grad_clip: float = 1.0
    holdout_fraction: float = 0.1
    steps_per_epoch: int = 2000
    smooth_weight: float = 3.0
    smooth_points: int = 48
    smooth_step: float = 0.05
    smooth_threshold_db: float = 0.8
    smooth_box: float = LEARNED_BOUND
    region_weight: float = 1.0
    region_bound: float = LEARNED_BOUND
    seed: int = 0
    bounds: MappingBounds = SHIPPED_BOUNDS
    mix_fraction: float = 0.0  # of every batch from a mix corpus (fine-tuning: FINETUNE_MIX_FRACTION)

    def __post_init__(self) -> None:
        for name in ("latent_dim", "num_filters", "steps", "batch_size", "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and self.beta >= 0 and 0 < self.holdout_fraction < 0.5):
            raise UserError("need learning-rate > 0, beta >= 0 and 0 < holdout < 0.5")
        if not (self.region_weight >= 0 and self.region_bound > 0):
            raise UserError(f"need region weight >= 0 and bound > 0, got {self.region_weight}, {self.region_bound}")
        if not 0 <= self.mix_fraction < 1:
            raise UserError(f"mix-fraction must be in [0, 1), got {self.mix_fraction}")

    def model_config(self) -> ModelConfig:
        """The model this configuration trains."""
        return ModelConfig(self.num_filters, self.latent_dim, self.bounds, FeatureSpec(), MODEL_SAMPLE_RATE_HZ)


class TrainState(NamedTuple):
    """Everything a step changes."""

    params: Any
    opt_state: Any
    step: Any


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    model_path: Path
    val_lsd_db: float
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    data_lsd_db: float = float("nan")  # on the training data itself (with a separate validation set)


def bin_freqs_hz(spec: FeatureSpec) -> np.ndarray:
    """Frequencies of the bins the loss compares (1..n_bins-2), float64."""
    return spec.bin_freqs_hz()[1:-1]


def make_model_fns(config: ModelConfig) -> tuple[Any, Callable[..., Any], Callable[..., Any]]:
    """``(module, decoded_response_db(params, z), lsd(params, features))`` for a config."""
    from aether_rt.models.design import filters_from_outputs, response_db
    from aether_rt.models.objective import band_mask, lsd_db, response_bins

    module = config.module()
    freqs = bin_freqs_hz(config.feature)
    in_band = band_mask(freqs)
    rate = config.sample_rate_hz

    def decoded_response_db(params: Any, z: Any) -> Any:
        f, q, g = module.apply({"params": params}, z, method=module.decode)
        return response_db(filters_from_outputs(f, q, g, rate), freqs, config.feature.sample_rate_hz)

    def lsd(params: Any, features: Any) -> Any:
        mu, _ = module.apply({"params": params}, features, method=module.encode)
        return lsd_db(decoded_response_db(params, mu), response_bins(features), in_band)

    return module, decoded_response_db, lsd


def train(
    cfg: TrainConfig,
    dataset: Dataset,
    out_dir: Path,
    *,
    resume: bool = False,
    command: list[str] | None = None,
    show_progress: bool = True,
    until_step: int | None = None,
    init: LoadedModel | None = None,
    mix: Dataset | None = None,
    validation: Dataset | None = None,
    metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, checkpointing into ``out_dir`` every epoch; returns the final model's path and LSD.

    ``until_step`` stops the run early (with a checkpoint) as an interruption would; a
    later ``resume=True`` call continues it exactly. ``init`` starts from that model's
    weights (its shape must be ``cfg``'s). With ``validation``, all of ``dataset`` is
    trained on and ``validation`` is the held-out set (else a ``holdout_fraction`` split).
    With ``mix``, ``cfg.mix_fraction`` of every batch is drawn from it. ``metadata`` is
    added to the checkpoint's sidecar.
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import serialization

    from aether_rt.models.design import filters_from_outputs, response_db
    from aether_rt.models.objective import band_mask, response_bins, spectral_loss_db2
    from aether_rt.models.vae import kl_divergence, region_excess

    config = cfg.model_config()
    if init is not None:
        check_init(init, config)
    module, decoded_response_db, lsd_fn = make_model_fns(config)
    freqs = bin_freqs_hz(config.feature)
    in_band = band_mask(freqs)
    train_set, held_out = dataset.split(cfg.holdout_fraction, cfg.seed) if validation is None else (dataset, validation)
    x_train = jnp.asarray(train_set.features)
    x_val = jnp.asarray(held_out.features)
    x_mix = None if mix is None else jnp.asarray(mix.features)
    n_mix = 0 if mix is None else round(cfg.mix_fraction * cfg.batch_size)
    warmup = min(cfg.warmup_steps, cfg.steps // 10)  # optax counts the warmup inside decay_steps
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, warmup, max(cfg.steps, warmup + 1), cfg.learning_rate * cfg.final_lr_fraction
    )
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(schedule))

    def loss_fn(params: Any, batch: Any, key: Any, beta: Any) -> tuple[Any, dict[str, Any]]:
        sample_key, smooth_key = jax.random.split(key)
        f, q, g, mu, logvar = module.apply({"params": params}, batch, sample_key)
        pred = response_db(filters_from_outputs(f, q, g, config.sample_rate_hz), freqs, config.feature.sample_rate_hz)
        mse = jnp.mean(spectral_loss_db2(pred, response_bins(batch), in_band))
        kl = kl_divergence(mu, logvar).sum(axis=-1).mean()
        z_key, dim_key = jax.random.split(smooth_key)
        z = jax.random.uniform(z_key, (cfg.smooth_points, cfg.latent_dim), minval=-cfg.smooth_box,
                               maxval=cfg.smooth_box - cfg.smooth_step)  # fmt: skip
        step = cfg.smooth_step * jax.nn.one_hot(jax.random.randint(dim_key, (cfg.smooth_points,), 0, cfg.latent_dim),
                                                cfg.latent_dim)  # fmt: skip
        moved = jnp.abs(decoded_response_db(params, z + step) - decoded_response_db(params, z))
        change = jnp.max(jnp.where(in_band, moved, 0.0), axis=-1)  # what is heard: the band
        rough = jnp.mean(jax.nn.relu(change - cfg.smooth_threshold_db) ** 2)
        outside = jnp.mean(region_excess(mu, cfg.region_bound))
        loss = mse + beta * kl + cfg.smooth_weight * rough + cfg.region_weight * outside
        return loss, {"mse_db2": mse, "kl_nats": kl, "roughness": rough, "max_step_change_db": jnp.max(change),
                      "outside": outside}  # fmt: skip

    @jax.jit
    def train_step(state: TrainState, batch: Any, key: Any, beta: Any) -> tuple[TrainState, dict[str, Any]]:
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key, beta)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), {**metrics, "loss": loss,
                                                               "grad_norm": optax.tree.norm(grads)}  # fmt: skip

    @jax.jit
    def validate(params: Any) -> tuple[Any, Any, Any, Any]:
        mu, logvar = module.apply({"params": params}, x_val, method=module.encode)
        data_lsd = lsd_fn(params, x_train) if validation is not None else jnp.full((1,), jnp.nan)
        outside_share = jnp.mean(jnp.any(jnp.abs(mu) > cfg.region_bound, axis=-1))
        return lsd_fn(params, x_val), kl_divergence(mu, logvar).mean(axis=0), data_lsd, outside_share

    key = jax.random.PRNGKey(cfg.seed)
    if init is None:
        params = module.init(key, jnp.ones((1, config.feature.n_bins)), key)["params"]
    else:
        params = jax.tree_util.tree_map(jnp.asarray, init.params)
    state = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "train_state.msgpack"
    metrics_path = out_dir / "metrics.jsonl"
    if resume:
        if not state_path.is_file():
            raise UserError(f"nothing to resume in {str(out_dir)!r} (no train_state.msgpack)", "drop --resume")
        try:
            state = serialization.from_bytes(state, state_path.read_bytes())
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{str(state_path)!r} does not fit this configuration: {exc}") from None
    elif metrics_path.exists():
        metrics_path.unlink()

    history: list[dict[str, Any]] = []
    start_step = int(state.step)
    started = time.monotonic()
    bar = _progress(cfg.steps, start_step, show_progress)
    val_lsd = data_lsd = float("nan")
    step_metrics: dict[str, Any] = {}
    last_step = cfg.steps if until_step is None else min(cfg.steps, until_step)
    for step in range(start_step, last_step):
        rng = np.random.default_rng([cfg.seed, step])
        batch = x_train[rng.integers(0, x_train.shape[0], cfg.batch_size - n_mix)]
        if x_mix is not None:
            batch = jnp.concatenate([batch, x_mix[rng.integers(0, x_mix.shape[0], n_mix)]])
        beta = cfg.beta * min(1.0, (step + 1) / max(1.0, cfg.beta_warmup * cfg.steps))
        state, step_metrics = train_step(state, batch, jax.random.fold_in(key, step), beta)
        bar.update(1)
        if (step + 1) % cfg.steps_per_epoch == 0 or step + 1 == last_step:
            lsd, kl_dims, data_lsds, outside_share = validate(state.params)
            val_lsd, data_lsd = float(np.mean(lsd)), float(np.mean(data_lsds))
            record = {
                "step": step + 1,
                "epoch": (step + 1 + cfg.steps_per_epoch - 1) // cfg.steps_per_epoch,
                "seconds": round(time.monotonic() - started, 2),
                **{k: round(float(v), 5) for k, v in step_metrics.items()},
                "beta": beta,
                "val_lsd_db": round(val_lsd, 5),
                "val_lsd_median_db": round(float(np.median(lsd)), 5),
                "val_kl_per_dim_nats": [round(float(v), 4) for v in kl_dims],
                "val_outside_share": round(float(outside_share), 5),  # encoded beyond region_bound
                **({"data_lsd_db": round(data_lsd, 5)} if validation is not None else {}),
            }
            history.append(record)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            save_model(
                out_dir / "model",
                state.params,
                config,
                {
                    "training": asdict(cfg),
                    "data": {**dataset.description, "train_items": len(train_set), "held_out_items": len(held_out)},
                    "command": command or [],
                    "metrics": record,
                    **(metadata or {}),
                },
            )
            state_path.write_bytes(serialization.to_bytes(state))
            shown = {"data_lsd": f"{data_lsd:.3f} dB"} if validation is not None else {}
            bar.set_postfix(loss=f"{float(step_metrics['loss']):.3f}", val_lsd=f"{val_lsd:.3f} dB", **shown)
    bar.close()
    seconds = time.monotonic() - started
    return TrainResult(out_dir / "model.msgpack", val_lsd, last_step, seconds, history, data_lsd)


def check_init(init: LoadedModel, config: ModelConfig) -> None:
    """Raise a UserError naming both shapes unless ``init`` is a model of ``config``'s shape."""
    if init.config == config:
        return
    raise UserError(
        f"cannot start from {str(init.path)!r}: it is a model of {_shape(init.config, config)}, "
        f"this run trains {_shape(config, init.config)}",
        "fine-tune with the model's own shape (leave out --latent-dim/--num-filters), or train from scratch "
        "(leave out --init)",
    )


def _shape(config: ModelConfig, other: ModelConfig) -> str:
    """Latent size and filters, plus whatever else differs from ``other``."""
    parts = [f"latent dim {config.latent_dim}", f"{config.num_filters} filters"]
    if config.bounds != other.bounds:
        parts.append(f"bounds {asdict(config.bounds)}")
    if config.feature != other.feature:
        parts.append(f"feature {config.feature.to_dict()}")
    if config.sample_rate_hz != other.sample_rate_hz:
        parts.append(f"frequencies relative to {config.sample_rate_hz:g} Hz")
    return ", ".join(parts)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, desc="train")


def __getattr__(name: str) -> Any:
    """``finetune``, ``finetune_config`` and ``FinetuneResult`` (defined in :mod:`aether_rt.finetune`).

    Loaded on first use: that module builds on this one, so it cannot be imported here.
    """
    if name in ("finetune", "finetune_config", "FinetuneResult"):
        from aether_rt import finetune

        return getattr(finetune, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
