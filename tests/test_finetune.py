"""Fine-tuning a trained model on a user's folder of IRs (``aether-rt train --init``), tiny and end to end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aether_rt.data.datasets import Dataset, load_dataset
from aether_rt.data.synthetic import synthetic_ir
from aether_rt.errors import UserError
from aether_rt.finetune import finetune, finetune_config
from aether_rt.models.checkpoint import load_model
from aether_rt.train import TrainConfig, train

TINY = TrainConfig(latent_dim=2, num_filters=8, steps=90, batch_size=16, steps_per_epoch=30, learning_rate=3e-3)
TINY_FINETUNE = {"steps": 120, "batch_size": 16, "steps_per_epoch": 40, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def corpus(cache: Path) -> Dataset:
    return load_dataset("synthetic:48", seed=7, cache_dir=cache, workers=2)


@pytest.fixture(scope="module")
def trained(corpus: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(TINY, corpus, out, show_progress=False, command=["test"])
    return out


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five IRs from another corpus seed, and one file that is not an IR."""
    folder = tmp_path_factory.mktemp("my-irs")
    for i in range(5):
        sf.write(folder / f"ir{i}.wav", synthetic_ir(i, seed=99), 48_000, subtype="PCM_24")
    sf.write(folder / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(48_000), 48_000)
    return folder


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AETHER_RT_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=900, env=env
    )


def test_finetuning_keeps_the_balance_the_model_was_trained_with(trained: Path) -> None:
    from dataclasses import replace

    init = load_model(trained)
    recorded = init.metadata["training"]
    cfg = finetune_config(init)
    assert (cfg.smooth_weight, cfg.region_weight, cfg.region_bound) == (
        recorded["smooth_weight"], recorded["region_weight"], recorded["region_bound"])  # fmt: skip
    own = replace(init, metadata={**init.metadata, "training": {**recorded, "region_weight": 0.25, "beta": 0.002}})
    assert (finetune_config(own).region_weight, finetune_config(own).beta) == (0.25, 0.002)
    # A model trained before the region term had none: fine-tuning it adds none.
    older = {k: v for k, v in recorded.items() if k not in ("region_weight", "region_bound")}
    assert finetune_config(replace(init, metadata={**init.metadata, "training": older})).region_weight == 0.0
    assert finetune_config(init, region_weight=2.0).region_weight == 2.0


def test_finetune_fits_the_users_irs_and_records_where_it_started(
    trained: Path, corpus: Dataset, user_folder: Path, tmp_path: Path
) -> None:
    init = load_model(trained)
    user = load_dataset(str(user_folder))
    validation = load_dataset("synthetic:8", seed=11, cache_dir=tmp_path, workers=1)
    cfg = finetune_config(init, **TINY_FINETUNE)
    assert (cfg.latent_dim, cfg.num_filters, cfg.beta_warmup) == (2, 8, 0.0)
    result = finetune(init, user, tmp_path / "ft", synthetic_data=corpus, validation=validation, cfg=cfg)
    assert result.steps == 120
    assert result.user_lsd_after_db < result.user_lsd_before_db
    assert np.isfinite(result.synthetic_lsd_after_db) and np.isfinite(result.synthetic_lsd_before_db)

    meta = json.loads((tmp_path / "ft" / "model.json").read_text())
    start = meta["finetune"]["init"]
    assert start["weights_sha256"] == hashlib.sha256((trained / "model.msgpack").read_bytes()).hexdigest()
    assert start["path"] == str(init.path) and start["data"]["seed"] == 7
    used = meta["finetune"]["user_data"]
    assert sorted(used["used"]) == [f"ir{i}.wav" for i in range(5)] and used["skipped"][0][0] == "noise.wav"
    assert meta["finetune"]["mix"]["seed"] == 7 and meta["finetune"]["mix_fraction"] == 0.5
    assert meta["finetune"]["before"]["user_lsd_db"] == pytest.approx(result.user_lsd_before_db)
    assert meta["data"]["kind"] == "folder" and meta["training"]["steps"] == 120
    lines = [json.loads(x) for x in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["data_lsd_db"] == pytest.approx(result.user_lsd_after_db, abs=1e-4)


def test_a_model_of_another_shape_is_refused_naming_both(trained: Path, user_folder: Path, tmp_path: Path) -> None:
    init = load_model(trained)
    with pytest.raises(UserError, match=r"latent dim 2, 8 filters.*latent dim 4, 8 filters"):
        finetune(init, load_dataset(str(user_folder)), tmp_path, cfg=TrainConfig(latent_dim=4, num_filters=8))
    assert not (tmp_path / "model.json").exists()


def test_train_init_on_a_folder_end_to_end(trained: Path, user_folder: Path, cache: Path, tmp_path: Path) -> None:
    out = _cli(
        "train", "--data", str(user_folder), "--init", str(trained), "--out", str(tmp_path / "ft"),
        "--steps", "120", "--batch-size", "16", "--steps-per-epoch", "40", "--lr", "3e-3", "--mix", "synthetic:16",
        cache=cache,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stderr and "noise.wav" in out.stderr
    user_line = next(line for line in out.stdout.splitlines() if line.startswith("your IRs"))
    before, after = (float(v) for v in user_line.split("LSD ")[1].removesuffix(" dB").split(" -> "))
    assert after < before
    assert "synthetic held-out (300 IRs" in out.stdout
    meta = json.loads((tmp_path / "ft" / "model.json").read_text())
    assert meta["finetune"]["init"]["weights_sha256"] == load_model(trained).metadata["weights_sha256"]
    assert meta["finetune"]["mix"]["n"] == 16 and meta["command"][:2] == ["aether-rt", "train"]


def test_finetune_mistakes_exit_2_without_a_traceback(trained: Path, user_folder: Path, tmp_path: Path) -> None:
    base = ["train", "--data", str(user_folder), "--out", str(tmp_path / "out")]
    bad_feature = tmp_path / "other-feature"
    shutil.copytree(trained, bad_feature)
    meta = json.loads((bad_feature / "model.json").read_text())
    meta["feature"]["smoothing_octaves"] = 1 / 6
    (bad_feature / "model.json").write_text(json.dumps(meta))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained, corrupt)
    (corrupt / "model.msgpack").write_bytes((corrupt / "model.msgpack").read_bytes()[:1000])
    cases = [
        (["--init", str(trained), "--latent-dim", "3"], "--latent-dim 3 contradicts"),
        (["--init", str(trained), "--num-filters", "32"], "--num-filters 32 contradicts"),
        (["--init", str(bad_feature)], "feature"),
        (["--init", str(corrupt)], "corrupt"),
        (["--init", str(tmp_path / "nothing")], "does not exist"),
        (["--mix-fraction", "0.3"], "only apply when fine-tuning"),
    ]
    for extra, message in cases:
        out = _cli(*base, *extra, cache=tmp_path)
        assert out.returncode == 2, (extra, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (extra, out.stderr)
    assert not (tmp_path / "out").exists()
