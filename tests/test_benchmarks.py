"""The benchmark scripts run and write their JSON (figures are not asserted: the machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "key"),
    [
        ("bench_bank.py", ["--repeats", "1", "--channels", "1"], "runs"),
        ("bench_forms.py", ["--seconds", "1", "--repeats", "1"], "peak_over_static_worst"),
        ("bench_silence.py", ["--blocks", "20", "--channels", "1"], "rows"),
    ],
)
def test_benchmark_runs_and_writes_json(script: str, args: list[str], key: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result[key] and "machine" in result
    assert "|" in done.stdout  # it printed a table


@pytest.mark.slow
@pytest.mark.audio
def test_web_benchmark_runs_and_writes_json(jack_server: None, tmp_path: Path) -> None:
    out = tmp_path / "web.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_web.py"), "--seconds", "2", "--presses", "10", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["slider"]["matched"] == 10 and "machine" in result
    assert [r["configuration"] for r in result["runs"]] == ["engine alone", "engine + page drawing"]
    assert "|" in done.stdout


@pytest.mark.slow
@pytest.mark.audio
def test_block_size_benchmark_compares_a_live_take_with_its_render(jack_server: None, tmp_path: Path) -> None:
    out = tmp_path / "blocks.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_blocks.py"), "--blocks", "512", "--seconds", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["block"] == 512 and run["adoptions"] > 0
    # The replay follows the recorded adoptions: nothing but rounding can differ.
    assert run["snr_replay_db"] is None or run["snr_replay_db"] > 100  # None: identical
    assert "|" in done.stdout


@pytest.mark.slow
def test_real_ir_benchmark_evaluates_a_cached_folder(tmp_path: Path) -> None:
    # The fetch is skipped when the files are cached; stand-ins (synthetic IRs at 44.1 and
    # 48 kHz) exercise the evaluation and the report without the network.
    import soundfile as sf

    from aether_rt.data.synthetic import synthetic_ir
    from aether_rt.features import resample

    sys.path.insert(0, str(BENCH))
    import bench_real_irs

    k = 0
    for ir_set in bench_real_irs.SETS:
        folder = bench_real_irs.set_folder(tmp_path / "cache", ir_set)
        folder.mkdir(parents=True)
        names = [Path(m).name.replace("*", f"cab {i}") for m in ir_set.members for i in range(2)]
        for name in dict.fromkeys(names):  # a pattern stands for two files, a path for one
            ir = synthetic_ir(k, seed=4242)
            k += 1
            rate = 48_000 if "street" in name or "hall" in name else 44_100
            sf.write(folder / name, resample(ir, 48_000.0, float(rate)) * 0.5, rate)
        (folder / bench_real_irs.EXTRACTED).write_text("")
    out = tmp_path / "real.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_real_irs.py"), "--cache", str(tmp_path / "cache"), "--oracle-steps", "5",
         "--refine", "5", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["file"] for r in result["irs"]] == [
        *(f"{i}.wav" for i in range(1, 10)), "street2-L.wav", "street2-R.wav",
        "cab 0.wav", "cab 1.wav", "greathall.wav",
    ]  # fmt: skip
    groups = result["groups"]
    assert list(groups) == ["guitar cab/amp", "street", "guitarix cab/amp", "guitarix hall", bench_real_irs.TARGET,
                            "all"]  # fmt: skip
    assert [groups[g]["n"] for g in groups] == [9, 2, 2, 1, 11, 14]
    target = [r["model"] for r in result["irs"][:11]]
    assert groups[bench_real_irs.TARGET]["model"] == pytest.approx(np.mean(target))
    assert set(result["kl_per_dim_nats"]) == {"target", "others"}
    for row in result["irs"]:
        assert row["flat"] > 0 and len(row["z"]) == 4 and row["model_full_band"] > 0
        assert max(abs(v) for v in row["refined_z"]) <= 2.0 + 1e-6  # refined points stay on the map
    assert "|" in done.stdout and "20 Hz - 20 kHz" in done.stdout


@pytest.mark.slow
@pytest.mark.audio
def test_start_benchmark_runs_and_writes_json(jack_server: None, tmp_path: Path) -> None:
    out = tmp_path / "start.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_start.py"), "--repeats", "1", "--configs", "run,run --web: second start",
         "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["configuration"] for r in result["runs"]] == ["run", "run --web: second start"]
    plain, web = result["runs"]
    assert plain["audio_s"] > 0 and plain["page_s"] is None
    assert 0 < web["page_s"] <= web["connected_s"] <= web["pictures_s"] and "machine" in result
    assert "|" in done.stdout


@pytest.mark.slow
@pytest.mark.audio
def test_midi_benchmark_runs_and_writes_json(jack_server: None, tmp_path: Path) -> None:
    out = tmp_path / "midi.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_midi.py"), "--seconds", "1", "--repeats", "1", "--changes", "10",
         "--clock-seconds", "2",
         "--tempos", "120", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    # (a CC JACK dropped in an xrun is not timed: a busy shared machine has dozens a second)
    assert result["latency"]["sent"] == 10 and 1 <= result["latency"]["changes"] <= 10 and "machine" in result
    runs = result["sweep"]["runs"]
    assert len(result["sweep"]["noop"]) == 1 and all(len(r) == 1 for r in runs.values())
    assert runs["engine + 1000 CC/s on CC 11"][0]["cc_received"] > 0
    assert runs["engine + 1000 unmapped CC/s"][0]["state_changes_per_s"] == 0
    assert runs["engine, MIDI port idle"][0]["cc_received"] == 0
    assert all(r[0]["late_ticks"] >= 0 and r[0]["slow_callbacks"] >= 0 for r in runs.values())
    assert [c["bpm"] for c in result["clock"]] == [120]
    assert "|" in done.stdout
