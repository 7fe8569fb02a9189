"""The benchmark scripts run and write their JSON (figures are not asserted: the machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "key"),
    [
        ("bench_bank.py", ["--repeats", "1", "--channels", "1"], "runs"),
        ("bench_forms.py", ["--seconds", "1", "--repeats", "1"], "peak_over_static_worst"),
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
