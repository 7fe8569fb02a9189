"""Fine-tuning a trained model on a user's own impulse responses (``aether-rt train --init``).

A sound designer's folder holds a handful to a few hundred IRs: too few to hold any out,
and too few to train on alone without the map losing the shape the synthetic corpus
gave it. So :func:`finetune`

1. starts from the given model's weights (same shape: latent size, filters, bounds,
   feature; else a :class:`~aether_rt.errors.UserError` naming both shapes);
2. trains on all of the user's IRs, with ``mix_fraction`` (half) of every batch drawn
   from a synthetic corpus (:data:`~aether_rt.train.FINETUNE_MIX`), the KL weight at
   full strength from the first step and the init model's own KL and smoothness
   weights;
3. measures the fit (LSD of the encoder's mean, dB, mean over IRs) before and after,
   on the user's IRs and on the fixed synthetic held-out set of ``aether-rt eval``
   (seed :data:`~aether_rt.evaluate.EVAL_SEED`, which no training run uses);
4. records in the checkpoint's sidecar what it started from (path and SHA-256), the
   files it used and skipped, the mix, and the figures before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.data.datasets import Dataset, load_dataset
from aether_rt.models.checkpoint import LoadedModel
from aether_rt.train import (
    FINETUNE_LR,
    FINETUNE_MIX,
    FINETUNE_MIX_FRACTION,
    FINETUNE_STEPS,
    FINETUNE_STEPS_PER_EPOCH,
    TrainConfig,
    check_init,
    make_model_fns,
    train,
)

#: Settings taken from the init model's recorded training, unless overridden: the
#: balance it was trained with is the one its map was shaped by.
INHERITED = ("beta", "smooth_weight", "smooth_points", "smooth_step", "smooth_threshold_db", "smooth_box",
             "region_weight", "region_bound")  # fmt: skip
#: What a recorded training that predates a setting ran with (a model trained before the
#: region term had none: fine-tuning it keeps its map's layout).
BEFORE_RECORDED = {"region_weight": 0.0}
#: File names recorded in the sidecar (the count is always recorded).
MAX_RECORDED_FILES = 500


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune`: LSD in dB (mean over IRs) before and after.

    Attributes:
        model_path: the fine-tuned weights (``model.msgpack``; sidecar beside it).
        steps: steps run.
        seconds: wall time of the training loop.
        user_lsd_before_db / user_lsd_after_db: on the user's IRs.
        synthetic_lsd_before_db / synthetic_lsd_after_db: on the synthetic held-out set.
        history: the ``metrics.jsonl`` records.

    """

    model_path: Path
    steps: int
    seconds: float
    user_lsd_before_db: float
    user_lsd_after_db: float
    synthetic_lsd_before_db: float
    synthetic_lsd_after_db: float
    history: list[dict[str, Any]] = field(default_factory=list)


def finetune_config(init: LoadedModel, **overrides: Any) -> TrainConfig:
    """Fine-tuning settings for ``init``: its latent size, filters and balance; the fine-tuning schedule.

    Bounds and feature stay this version's (a model with others is refused by
    :func:`~aether_rt.train.check_init`). :data:`~aether_rt.train.FINETUNE_STEPS` steps, peak rate
    :data:`~aether_rt.train.FINETUNE_LR`, 10 % warmup, no KL ramp, a checkpoint every
    :data:`~aether_rt.train.FINETUNE_STEPS_PER_EPOCH` steps, half of every batch synthetic;
    ``overrides`` replace any field.
    """
    recorded = init.metadata.get("training") or {}
    names = {f.name for f in fields(TrainConfig)}
    settings: dict[str, Any] = {k: recorded[k] for k in INHERITED if k in recorded and k in names}
    if recorded:
        settings = {k: v for k, v in BEFORE_RECORDED.items() if k not in recorded} | settings
    settings |= {
        "latent_dim": init.config.latent_dim,
        "num_filters": init.config.num_filters,
        "steps": FINETUNE_STEPS,
        "learning_rate": FINETUNE_LR,
        "warmup_steps": FINETUNE_STEPS // 10,
        "beta_warmup": 0.0,
        "steps_per_epoch": FINETUNE_STEPS_PER_EPOCH,
        "mix_fraction": FINETUNE_MIX_FRACTION,
    }
    return TrainConfig(**(settings | overrides))


def finetune(
    init: LoadedModel,
    user_data: Dataset,
    out_dir: Path,
    *,
    synthetic_data: Dataset | None = None,
    validation: Dataset | None = None,
    cfg: TrainConfig | None = None,
    steps: int | None = None,
    resume: bool = False,
    command: list[str] | None = None,
    show_progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``init`` on ``user_data`` into ``out_dir``; the fit before and after.

    Args:
        init: the model to start from.
        user_data: the IRs to fit (all of them are trained on).
        out_dir: where the model, training state and ``metrics.jsonl`` go.
        synthetic_data: mixed into every batch (default: :data:`~aether_rt.train.FINETUNE_MIX`,
            seed ``cfg.seed``, cached); not used when ``cfg.mix_fraction`` is 0 or the user
            data is itself synthetic.
        validation: the held-out set (default: ``aether-rt eval``'s synthetic set).
        cfg: the settings (default: :func:`finetune_config`).
        steps: overrides ``cfg.steps``.
        resume: continue an interrupted fine-tuning in ``out_dir``.
        command: the command line, for the sidecar.
        show_progress: draw a progress bar.

    Raises:
        UserError: ``init`` is not of ``cfg``'s shape.

    """
    from aether_rt.evaluate import EVAL_N, EVAL_SEED

    cfg = cfg or finetune_config(init)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    check_init(init, cfg.model_config())
    mix = None
    if cfg.mix_fraction > 0 and user_data.description.get("kind") != "synthetic":
        mix = load_dataset(FINETUNE_MIX, seed=cfg.seed) if synthetic_data is None else synthetic_data
    if validation is None:
        validation = load_dataset(f"synthetic:{EVAL_N}", seed=EVAL_SEED)
    before = {"user_lsd_db": _lsd(init, user_data), "synthetic_lsd_db": _lsd(init, validation)}
    record = {
        "init": {
            "path": str(init.path),
            "weights_sha256": init.metadata.get("weights_sha256"),
            "data": init.metadata.get("data"),
        },
        "user_data": _data_record(user_data),
        "mix": None if mix is None else mix.description,
        "mix_fraction": cfg.mix_fraction if mix is not None else 0.0,
        "validation": validation.description,
        "before": before,
    }
    result = train(
        cfg,
        user_data,
        out_dir,
        resume=resume,
        command=command,
        show_progress=show_progress,
        init=init,
        mix=mix,
        validation=validation,
        metadata={"finetune": record},
    )
    return FinetuneResult(
        result.model_path,
        result.steps,
        result.seconds,
        before["user_lsd_db"],
        result.data_lsd_db,
        before["synthetic_lsd_db"],
        result.val_lsd_db,
        result.history,
    )


def _lsd(model: LoadedModel, data: Dataset) -> float:
    """Mean LSD (dB) of the model's encoder mean, decoded, against the features."""
    import jax.numpy as jnp

    _, _, lsd = make_model_fns(model.config)
    return float(np.mean(lsd(model.params, jnp.asarray(data.features))))


def _data_record(data: Dataset) -> dict[str, Any]:
    """What the user's data was: its description, the files used and those skipped (with why)."""
    root = data.description.get("path")

    def name(path: str) -> str:
        return os.path.relpath(Path(path).resolve(), root) if root else path

    return {
        **data.description,
        "used": [name(n) for n in data.names[:MAX_RECORDED_FILES]],
        "skipped": [[name(n), why] for n, why in data.rejected[:MAX_RECORDED_FILES]],
    }
