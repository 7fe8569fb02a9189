"""``train``, ``eval``, ``inspect``, ``sweep`` and ``map``: the model's commands (``encode``: :mod:`.encode`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError


def load(path: str | None) -> Any:
    """The model at ``path``, or the shipped default model."""
    from aether_rt.models.checkpoint import load_model

    return load_model(Path(path) if path else None)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model (or fine-tune one, with --init): corpus (cached), epochs with checkpoints, metrics.jsonl."""
    from aether_rt.train import TrainConfig, train

    started = time.monotonic()
    if args.init is not None:
        return _finetune(args, started)
    if args.mix is not None or args.mix_fraction is not None:
        raise UserError("--mix and --mix-fraction only apply when fine-tuning", "add --init default, or leave them out")
    cfg = TrainConfig(**_train_flags(args))
    dataset = _load_training_data(args, started)
    result = train(cfg, dataset, Path(args.out), resume=args.resume, command=["aether-rt", *sys.argv[1:]])
    print(
        f"wrote {result.model_path}: held-out LSD {result.val_lsd_db:.3f} dB after {result.steps} steps; "
        f"total {time.monotonic() - started:.0f} s"
    )
    return 0


def _finetune(args: argparse.Namespace, started: float) -> int:
    """``train --init``: fine-tune a model on the data, mixed with synthetic IRs; the fit before and after."""
    from aether_rt.data.datasets import load_dataset
    from aether_rt.evaluate import EVAL_N, EVAL_SEED
    from aether_rt.finetune import finetune, finetune_config
    from aether_rt.models.checkpoint import load_model
    from aether_rt.train import FINETUNE_MIX, check_init

    try:
        init = load_model(None if args.init == "default" else Path(args.init))
    except UserError as exc:
        raise UserError(f"--init {args.init}: {exc.message}", exc.hint) from None
    for flag, given, has in (
        ("--latent-dim", args.latent_dim, init.config.latent_dim),
        ("--num-filters", args.num_filters, init.config.num_filters),
    ):
        if given is not None and given != has:
            raise UserError(
                f"{flag} {given} contradicts the --init model {str(init.path)!r}, which has {has}",
                f"leave out {flag} (fine-tuning keeps the model's shape), or leave out --init",
            )
    cfg = finetune_config(init, **_train_flags(args))
    check_init(init, cfg.model_config())  # before any data is loaded
    dataset = _load_training_data(args, started)
    synthetic = dataset.description.get("kind") == "synthetic"
    mix = None
    if cfg.mix_fraction > 0 and not synthetic:
        mix = load_dataset(args.mix or FINETUNE_MIX, seed=args.seed, progress=_corpus_progress)
    validation = load_dataset(f"synthetic:{EVAL_N}", seed=EVAL_SEED, progress=_corpus_progress)
    sha = str(init.metadata.get("weights_sha256", ""))[:12]
    print(f"fine-tuning {init.path} (sha256 {sha}...) for {cfg.steps} steps" + (
        f", {cfg.mix_fraction:.0%} of every batch from {_describe(mix.description)}" if mix else ""))  # fmt: skip
    result = finetune(init, dataset, Path(args.out), synthetic_data=mix, validation=validation, cfg=cfg,
                      resume=args.resume, command=["aether-rt", *sys.argv[1:]], show_progress=True)  # fmt: skip
    print(f"your IRs ({len(dataset)}): LSD {result.user_lsd_before_db:.3f} -> {result.user_lsd_after_db:.3f} dB")
    print(
        f"synthetic held-out ({len(validation)} IRs, seed {EVAL_SEED}): LSD {result.synthetic_lsd_before_db:.3f} -> "
        f"{result.synthetic_lsd_after_db:.3f} dB"
    )
    print(f"wrote {result.model_path} after {result.steps} steps; total {time.monotonic() - started:.0f} s")
    return 0


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the command line sets (flags left out keep their defaults)."""
    given = {
        "latent_dim": args.latent_dim,
        "num_filters": args.num_filters,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "beta": args.beta,
        "seed": args.seed,
        "steps_per_epoch": args.steps_per_epoch,
        "mix_fraction": args.mix_fraction,
    }
    return {k: v for k, v in given.items() if v is not None}


def _load_training_data(args: argparse.Namespace, started: float) -> Any:
    from aether_rt.data.datasets import load_dataset

    dataset = load_dataset(args.data, seed=args.seed, progress=_corpus_progress)
    print(f"data: {len(dataset)} IRs ({_describe(dataset.description)}), {time.monotonic() - started:.0f} s")
    for name, why in dataset.rejected:
        print(f"skipped {name}: {why}", file=sys.stderr)
    return dataset


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a model against the flat, PCA-4 and oracle anchors."""
    from aether_rt.data.datasets import load_dataset
    from aether_rt.evaluate import EVAL_N, EVAL_SEED, evaluate, format_table

    model = load(args.model)
    data = load_dataset(args.data or f"synthetic:{EVAL_N}", seed=EVAL_SEED if args.data is None else 0)
    for name, why in data.rejected:
        print(f"skipped {name}: {why}", file=sys.stderr)
    result = evaluate(model, data, oracle_steps=args.oracle_steps)
    print(format_table(result))
    if args.json:
        _write_json(Path(args.json), {"model": str(model.path), **result.summary()})
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print the filters (and response) a latent point decodes to, as the engine runs them."""
    from aether_rt.models.design import effective_filters, response_db

    model = load(args.model)
    z = parse_z(args.z, model.config.latent_dim)
    rate = float(args.sample_rate_hz)
    filters = effective_filters(model.decode(z[None]), rate)
    freqs = np.geomspace(20.0, 0.49 * rate, 64)
    response = np.asarray(response_db(model.decode(z[None]), freqs, rate))[0]
    rows = [
        {"freq_hz": float(f), "q": float(q), "gain_db": float(g)}
        for f, q, g in sorted(zip(filters.freq_hz[0], filters.q[0], filters.gain_db[0], strict=True))
    ]
    if args.json:
        print(json.dumps({
            "sample_rate": rate, "z": [float(v) for v in z], "filters": rows,
            "response": {"freqs_hz": [round(float(f), 3) for f in freqs], "db": [round(float(v), 4) for v in response]},
        }))  # fmt: skip
        return 0
    print(f"z = {','.join(f'{v:g}' for v in z)} at {rate:g} Hz: {len(rows)} peaking filters")
    print("   freq_hz        q   gain_db")
    for r in rows:
        print(f"{r['freq_hz']:10.1f} {r['q']:8.3f} {r['gain_db']:+9.2f}")
    print(f"response: {response.min():+.1f} .. {response.max():+.1f} dB between 20 Hz and {0.49 * rate:.0f} Hz")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Draw the latent sweep figure."""
    from aether_rt.plots import save_sweep

    out = _image_path(args.out)
    save_sweep(load(args.model), out)
    print(f"wrote {out}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    """Draw the latent map: a 2-D slice of the latent space coloured by response features."""
    from aether_rt.dsp.measures import FEATURES
    from aether_rt.plots import save_map

    out = _image_path(args.out)
    model = load(args.model)
    n = model.config.latent_dim
    try:
        dims = tuple(int(v) for v in args.dims.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < n for d in dims):
        raise UserError(f"--dims {args.dims!r} is not two different latent dims", f"e.g. --dims 0,1 (dims 0..{n - 1})")
    features = tuple(FEATURES) if args.feature == "both" else (args.feature,)
    at = parse_z(args.at, n, "--at") if args.at else None
    save_map(model, out, dims=(dims[0], dims[1]), features=features, at=at)
    print(f"wrote {out}")
    return 0


def _image_path(text: str) -> Path:
    from aether_rt.audio_files import check_output_folder

    out = Path(text)
    check_output_folder(out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"cannot tell the image format of {str(out)!r}", "use .png, .svg or .pdf")
    return out


def parse_z(text: str, latent_dim: int, flag: str = "--z") -> np.ndarray:
    """``"a,b,c,d"`` as a latent point; a clear error for anything else."""
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise UserError(
            f"{flag} {text!r} is not a comma-separated list of numbers", f"e.g. {flag} 0.5,-1,0,0"
        ) from None
    if values.size != latent_dim:
        raise UserError(f"{flag} has {values.size} values, the model's latent space has {latent_dim}")
    if not np.all(np.isfinite(values)):
        raise UserError(f"{flag} {text!r} must be finite numbers")
    return values


def _corpus_progress(done: int, total: int) -> None:
    if done == total or done % 512 < 64:
        print(f"\rcorpus: {done}/{total} IRs", end="\n" if done == total else "", file=sys.stderr, flush=True)


def _describe(description: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in description.items())


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r}: {exc}") from None
    print(f"wrote {path}")
