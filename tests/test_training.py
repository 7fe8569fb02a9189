"""Data, training, checkpoints and evaluation, end to end on a tiny real run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import soundfile as sf

from aether_rt.data.datasets import load_dataset
from aether_rt.data.synthetic import synthetic_ir
from aether_rt.errors import UserError
from aether_rt.evaluate import evaluate, format_table
from aether_rt.models.checkpoint import load_model
from aether_rt.train import TrainConfig, train

TINY = TrainConfig(latent_dim=2, num_filters=8, steps=90, batch_size=16, steps_per_epoch=30, learning_rate=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> object:
    return load_dataset("synthetic:48", seed=7, cache_dir=tmp_path_factory.mktemp("cache"), workers=2)


@pytest.fixture(scope="module")
def trained(corpus: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(TINY, corpus, out, show_progress=False, command=["test"])
    return out


def test_synthetic_corpus_is_seeded_cached_and_realistic(corpus, tmp_path: Path) -> None:
    assert corpus.features.shape == (48, 513) and corpus.raw.shape == (48, 513)
    np.testing.assert_array_equal(synthetic_ir(5, seed=7), synthetic_ir(5, seed=7))
    assert not np.array_equal(synthetic_ir(5, seed=7), synthetic_ir(5, seed=8))
    # Built in parallel or in one process, the corpus is the same.
    again = load_dataset("synthetic:6", seed=7, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(again.features, corpus.features[:6])
    assert list(tmp_path.glob("synthetic-*.npz")), "the corpus is cached on disk"
    # Some rooms (a few dB of colouration), some devices (cabinets and telephones leave the
    # top octaves 20-40 dB down): neither flat nor all alike.
    flat_lsd = np.sqrt(np.mean(corpus.features[:, 1:-1] ** 2, axis=1))
    assert np.min(flat_lsd) > 0.5 and np.any(flat_lsd < 6.0) and np.any(flat_lsd > 15.0)


def test_ir_folder_loads_any_format_and_lists_bad_files(tmp_path: Path) -> None:
    ir = synthetic_ir(0, seed=1)
    sf.write(tmp_path / "room.wav", ir, 48_000, subtype="PCM_16")
    sf.write(tmp_path / "room44.flac", np.stack([ir[::2], ir[::2]], 1), 24_000, subtype="PCM_24")
    sf.write(tmp_path / "room.aiff", ir[:20000], 96_000, subtype="FLOAT")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    sf.write(tmp_path / "silence.wav", np.zeros(1000), 48_000)
    data = load_dataset(str(tmp_path))
    assert len(data) == 3 and data.features.shape == (3, 513)
    rejected = dict(data.rejected)
    assert set(Path(p).name for p in rejected) == {"broken.wav", "silence.wav"}
    assert "silent" in rejected[str(tmp_path / "silence.wav")]


def test_bad_data_sources_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no usable impulse response"):
        load_dataset(str(tmp_path))
    with pytest.raises(UserError, match="synthetic:N"):
        load_dataset("synthetic:many")


def test_training_lowers_the_loss_and_writes_checkpoints(trained: Path) -> None:
    lines = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [30, 60, 90]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_lsd_db"]) for r in lines)
    assert lines[-1]["val_lsd_db"] < lines[0]["val_lsd_db"]
    meta = json.loads((trained / "model.json").read_text())
    for key in ("architecture", "bounds", "feature", "sample_rate_hz", "data", "training", "command", "metrics"):
        assert key in meta
    assert meta["data"]["seed"] == 7 and meta["training"]["steps"] == 90


def test_the_region_term_keeps_the_encoded_means_inside_its_bound(corpus, tmp_path: Path, trained: Path) -> None:
    from dataclasses import replace

    bound = 0.3
    train(replace(TINY, region_bound=bound, region_weight=30.0), corpus, tmp_path, show_progress=False)
    mu_tight = load_model(tmp_path).encode(corpus.features)[0]
    mu_usual = load_model(trained).encode(corpus.features)[0]
    assert np.abs(mu_usual).max() > 2 * bound  # without the tight bound the codes spread beyond it
    assert np.abs(mu_tight).max() < bound + 0.15
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_outside_share"] <= 0.5 and "outside" in last


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("region_weight", -1.0, "region weight"), ("region_bound", 0.0, "bound > 0"), ("steps", 0, "steps must be")],
)
def test_bad_training_settings_are_user_errors(field: str, value: float, message: str) -> None:
    from dataclasses import replace

    with pytest.raises(UserError, match=message):
        replace(TINY, **{field: value})


def test_resume_continues_exactly(corpus, tmp_path: Path, trained: Path) -> None:
    train(TINY, corpus, tmp_path, show_progress=False, until_step=45)  # interrupted mid-epoch
    train(TINY, corpus, tmp_path, resume=True, show_progress=False)
    a, b = load_model(trained), load_model(tmp_path)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_damaged_model_files_give_clear_errors_and_change_nothing(trained: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    shutil.copytree(trained, model_dir)
    weights = model_dir / "model.msgpack"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(UserError, match="corrupt, truncated"):
        load_model(model_dir)
    assert weights.read_bytes() == good[: len(good) // 2]  # untouched by the attempt
    weights.write_bytes(good)
    sidecar = model_dir / "model.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(UserError, match="not a valid aether-rt model"):
        load_model(model_dir)
    sidecar.write_text(json.dumps({**meta, "architecture": {**meta["architecture"], "num_filters": 9}}))
    with pytest.raises(UserError, match="does not fit the architecture"):
        load_model(model_dir)
    sidecar.write_text("{not json")
    with pytest.raises(UserError, match="not a valid"):
        load_model(model_dir)
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing")


def test_evaluation_orders_the_anchors_sensibly(trained: Path, corpus) -> None:
    result = evaluate(load_model(trained), corpus, oracle_steps=200, oracle_restarts=2, smoothness_points=50)
    s = result.summary()
    for method in ("model", "flat", "pca4", "oracle"):
        assert {"mean", "median", "p90"} <= set(s[method]) and s[method]["mean"] > 0
    assert s["oracle"]["mean"] < s["flat"]["mean"] and s["pca4"]["mean"] < s["flat"]["mean"]
    assert len(s["kl_per_dim_nats"]) == 2 and s["smoothness_max_db"] >= s["smoothness_median_db"] >= 0
    # Per family: every IR counted once, under the family the generator drew for it.
    from aether_rt.data.synthetic import family_of

    drawn = [family_of(i, seed=7) for i in range(48)]
    per_family = s["per_family"]
    assert {f: row["n"] for f, row in per_family.items()} == {f: drawn.count(f) for f in set(drawn)}
    cabinets = [i for i, f in enumerate(drawn) if f == "guitar_cabinet"]
    assert per_family["guitar_cabinet"]["model"] == pytest.approx(np.mean(result.lsd["smoothed"]["model"][cabinets]))
    assert "guitar_cabinet" in format_table(result)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=600)


def test_inspect_encode_sweep_and_eval_commands(trained: Path, tmp_path: Path) -> None:
    out = _cli("inspect", "--model", str(trained), "--z", "0.5,-1", "--sample-rate", "96000", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["sample_rate"] == 96000 and report["z"] == [0.5, -1.0] and len(report["filters"]) == 8
    assert {"freq_hz", "q", "gain_db"} == set(report["filters"][0])

    sf.write(tmp_path / "ir.wav", synthetic_ir(3, seed=2), 48_000)
    out = _cli("encode", str(tmp_path / "ir.wav"), "--model", str(trained), "--refine", "50", "--json")
    assert out.returncode == 0, out.stderr
    enc = json.loads(out.stdout)
    assert len(enc["z"]) == 2 and enc["in_region"] and enc["fit_db"] > 0 and enc["refine_steps"] == 50

    out = _cli("sweep", "--model", str(trained), "--out", str(tmp_path / "sweep.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "--z", "1,2,3"], "latent space has"),
        (["inspect", "--z", "a,b"], "not a comma-separated list"),
        (["encode", "/no/such.wav"], "cannot read"),
        (["sweep", "--out", "/no/such/dir/x.png"], "does not exist"),
        (["eval", "--model", "/no/model"], "does not exist"),
        (["train", "--data", "/no/irs", "--out", "/tmp/x"], "does not exist"),
    ],
)
def test_model_command_mistakes_exit_2(args: list[str], message: str, trained: Path) -> None:
    if args[0] in ("inspect", "encode"):
        args = [*args, "--model", str(trained)]
    out = _cli(*args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
