"""Shared benchmark plumbing: interleaved repeats, medians, tables and JSON.

The machine is shared and noisy, so every figure is the median of repeated runs, and
the methods being compared run interleaved (one repeat of each in turn) so that drift
in the machine's load hits them alike.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def median_us_per_call(methods: dict[str, Callable[[], object]], *, calls: int, repeats: int) -> dict[str, float]:
    """Median wall time per call in microseconds for each method, repeats interleaved."""
    for fn in methods.values():  # warm up: caches, branch predictors, lazy imports
        for _ in range(max(3, calls // 10)):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - t0) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """Print rows as an aligned text table (also valid Markdown)."""
    text = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    print(line(text[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in text[1:]:
        print(line(row))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results, with the machine they came from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def adopted_frame(engine: Any, logged: int, timeout_s: float = 1.0) -> int | None:
    """The frame at which the audio side adopted the first table of a state change.

    ``logged`` is the length of the controller's state log before the change; waits
    (up to ``timeout_s``) for the change to be logged, then for its first publish
    sequence to appear in the arena's adoption log. None if either never came.
    """
    from aether_rt.dsp import arena as ar

    words, log = engine.bank.arena.words, engine.bank.arena.adopt_log
    cap = engine.bank.arena.layout.adopt_capacity
    states = engine.controller.state_log
    deadline = time.monotonic() + timeout_s
    while len(states) == logged and time.monotonic() < deadline:
        time.sleep(0.0001)
    if len(states) == logged:
        return None
    first_seq = states[-1][0]
    while time.monotonic() < deadline:
        written = int(words[ar.H_ADOPT_WRITTEN])
        for i in range(max(0, written - 64), written):
            seq, _, frame = log[i % cap]
            if seq >= first_seq:
                return int(frame)
        time.sleep(0.0001)
    return None
