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


class JackLog:
    """Who was late, from the JACK server's own log (its stderr, if it was saved to a file).

    JACK2 logs every xrun it sees: ``JackTimedDriver::Process XRun`` when the driver's
    cycle itself ran late (with the dummy backend: its timer woke late), and
    ``JackEngine::XRun: client = NAME was not finished, state = STATE`` for each client
    still ``Triggered`` (woken, not yet scheduled) or ``Running`` (inside its process
    callback) at the deadline. A client ``Running`` at the deadline is one whose own
    callback may have made the cycle late; ``Triggered`` ones were waiting for a CPU.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._at = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except OSError:
            return 0

    def mark(self) -> None:
        """Start counting from here."""
        self._at = self._size()

    def since(self) -> dict[str, int] | None:
        """Counts since :meth:`mark`: ``driver_late``, ``graph_late`` (cycles whose graph did
        not finish), and ``<client>/<state>`` per client
        not finished (client names with JACK's ``-NN`` suffix folded); None without a log."""
        import re
        from collections import Counter

        if self.path is None:
            return None
        with self.path.open("rb") as f:
            f.seek(self._at)
            text = f.read().decode("utf-8", "replace")
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            if "JackTimedDriver::Process XRun" in line:
                counts["driver_late"] += 1
            elif "ProcessGraphAsyncMaster: Process error" in line:
                counts["graph_late"] += 1
            elif m := re.search(r"client = (.+?) was not finished, state = (\w+)", line):
                client = re.sub(r"-\d+$", "", m[1])
                counts[f"{client}/{m[2]}"] += 1
        return dict(counts)
