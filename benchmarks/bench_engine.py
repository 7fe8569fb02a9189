"""The live engine on the JACK server PortAudio finds, and the offline renderer.

Measures, for the issue's targets:

* soak: xruns (PortAudio status flags) and slow callbacks (over half the block period)
  over a run of ``--seconds`` (default 60) or ``--minutes``, at 64-frame blocks and
  48 kHz, spiral at its fastest rate, control at 500 Hz, for each callback mode (cfunc,
  python) without and with a pure-Python CPU-hog thread in the same process; before
  them, a no-op client alone for the same time (what the server drops on its own).
  Each soak also gives the callback time distribution (the callback's own cycle
  counter) and the control step time.
* control-to-audio latency: a z change (``StateBox.update``) to the first output sample
  computed with its table: the frame the audio side adopted the table at (its adoption
  log) minus the frame counter when the change was made, over ``--changes`` changes.
* offline render: real-time factor for a stereo 48 kHz file (median of repeats).
* start-up: ``aether-rt run`` from process start to running audio, first and second
  start (the second one loads every compiled function from the caches).

    python benchmarks/bench_engine.py [--seconds 60 | --minutes 10] [--configs cfunc,cfunc+hog,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, adopted_frame, print_table, write_json

import aether_rt
from aether_rt.control import ControlState, StateBox
from aether_rt.dsp import arena as ar
from aether_rt.engine import Engine, EngineSettings, _hist_percentile
from aether_rt.modulation import MAX_RATE_HZ, Modulation
from aether_rt.render import render
from aether_rt.sources import demo_phrase

FS = 48_000
BLOCK = 64
CONFIGS = ("cfunc", "cfunc+hog", "python", "python+hog")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from helpers.hog import hog as spin_python  # noqa: E402  (the tests' hog: one definition)


def _noop_flags(seconds: float) -> int:
    """Status flags a no-op client sees alone on the server in ``seconds`` (own process)."""
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "tests"))
    done = subprocess.run(
        [sys.executable, "-m", "helpers.noop_client", str(seconds), str(BLOCK)],
        capture_output=True, text=True, env=env, check=True, timeout=seconds + 120,
    )  # fmt: skip
    return int(json.loads(done.stdout.strip().splitlines()[-1])["status_flags"])


def _engine(model, callback: str, state: ControlState, blocksize: int = BLOCK, rate: int = FS) -> Engine:
    return Engine(
        EngineSettings(sample_rate_hz=rate, blocksize=blocksize, callback=callback),  # type: ignore[arg-type]
        model, StateBox(state), source=demo_phrase(rate, seconds=12.0)[:, None], loop=True,
    )  # fmt: skip


def soak(model, config: str, seconds: float) -> dict[str, float]:
    """One soak run; returns its figures."""
    callback, with_hog = config.split("+")[0], config.endswith("+hog")
    state = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=MAX_RATE_HZ, rate_slow_hz=0.5))
    engine = _engine(model, callback, state)
    stop = threading.Event()
    if with_hog:
        threading.Thread(target=spin_python, args=(stop,), daemon=True).start()
    try:
        engine.run(seconds)
    finally:
        stop.set()
    s = engine.stats()
    hist = engine.bank.arena.hist
    slow = s["slow_callbacks"]
    return {
        "xruns": s["xruns"],
        "slow_callbacks": slow,
        "callbacks": s["callbacks"],
        "cb_p50_us": _hist_percentile(hist, 50) / 1e3,
        "cb_p99_us": _hist_percentile(hist, 99) / 1e3,
        "cb_p999_us": _hist_percentile(hist, 99.9) / 1e3,
        "cb_max_us": s["callback_us"]["max"],
        "period_us": s["block_period_us"],
        "control_per_s": s["control_updates_per_s"],
        "step_p50_us": s["control_step_us"]["p50"],
        "step_p99_us": s["control_step_us"]["p99"],
        "nonfinite": s["nonfinite_output"],
    }


def control_latency(model, changes: int) -> dict[str, float]:
    """Z changes to the frame the first table computed from them is adopted at (audio time, ms)."""
    engine = _engine(model, "cfunc", ControlState(modulation=Modulation(mode="static")))
    engine.controller.log_states = True  # (first sequence published under each state, tick, state)
    words = engine.bank.arena.words
    rng = np.random.default_rng(0)
    latencies_ms: list[float] = []
    engine.start()
    try:
        time.sleep(0.5)
        for _ in range(changes):
            time.sleep(rng.uniform(0.01, 0.03))  # at random phases of the control and block clocks
            logged = len(engine.controller.state_log)
            frame_at_change = int(words[ar.H_FRAMES])
            engine.box.update(modulation={"center": tuple(rng.uniform(-1.5, 1.5, 4))})
            adopted = adopted_frame(engine, logged)
            if adopted is not None:
                latencies_ms.append((adopted - frame_at_change) / FS * 1e3)
    finally:
        engine.stop()
    lat = np.array(latencies_ms)
    return {
        "changes": len(lat),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "bound_ms": (engine.control_frames + BLOCK) / FS * 1e3,
    }


def render_speed(model, seconds: float, repeats: int) -> dict[str, float]:
    """Real-time factor rendering a stereo 48 kHz file (the designer built once, as the CLI does per file)."""
    from aether_rt.control import TableDesigner

    x = np.stack([demo_phrase(FS, seconds=seconds, seed=s) for s in (1, 2)], 1)
    state = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=2.0))
    designer = TableDesigner(model, FS)
    render(x[: FS * 2], FS, model, state, designer=designer)  # warm
    factors = [render(x, FS, model, state, designer=designer).realtime_factor for _ in range(repeats)]
    return {"seconds_of_audio": seconds, "median_x_realtime": statistics.median(factors), "runs": factors}


def startup(repeats: int) -> dict[str, float]:
    """``aether-rt run`` process start to audio running, first start and then later ones."""
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            stats = Path(tmp) / f"s{i}.json"
            t0 = time.time()
            command = ["run", "--input", "demo", "--duration", "0.5", "--stats", str(stats)]
            subprocess.run([sys.executable, "-m", "aether_rt", *command], check=True, capture_output=True, timeout=300)
            times.append(json.loads(stats.read_text())["started_unix"] - t0)
    return {"first_s": times[0], "later_median_s": statistics.median(times[1:]), "runs": times}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="soak length per configuration")
    p.add_argument("--minutes", type=float, help="soak length in minutes (overrides --seconds)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="soak configurations, comma-separated")
    p.add_argument("--changes", type=int, default=300, help="z changes for the latency figure")
    p.add_argument("--render-seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=RESULTS / "engine.json")
    args = p.parse_args()
    seconds = args.minutes * 60 if args.minutes else args.seconds
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    model = aether_rt.load_model()

    print(f"== soak: {seconds:g} s per configuration, {BLOCK}-frame blocks at {FS} Hz, spiral at {MAX_RATE_HZ:g} Hz")
    reference = _noop_flags(seconds)
    results = {c: soak(model, c, seconds) for c in configs}
    keys = ["xruns", "slow_callbacks", "cb_p50_us", "cb_p99_us", "cb_p999_us", "cb_max_us"]
    keys += ["control_per_s", "step_p50_us", "step_p99_us"]
    rows = [["no-op client alone", reference] + [""] * (len(keys) - 1)]
    rows += [[c] + [results[c][k] for k in keys] for c in configs]
    print_table(["configuration", *keys], rows)
    print(f"block period {results[configs[0]]['period_us']:.0f} us; 10 % of it: {0.1 * BLOCK / FS * 1e6:.0f} us")

    print(f"\n== control-to-audio latency over {args.changes} z changes")
    latency = control_latency(model, args.changes)
    print_table(list(latency), [list(latency.values())])

    print(f"\n== offline render, stereo {FS} Hz, {args.render_seconds:g} s of audio, {args.repeats} runs")
    speed = render_speed(model, args.render_seconds, args.repeats)
    print_table(["median x real time"], [[speed["median_x_realtime"]]])

    print("\n== start-up: aether-rt run, process start to audio")
    start = startup(args.repeats)
    print_table(["first start s", "later starts median s"], [[start["first_s"], start["later_median_s"]]])

    write_json(
        args.json,
        {"soak_seconds": seconds, "noop_flags": reference, "soak": results, "latency": latency,
         "render": speed, "startup": start},
    )  # fmt: skip


if __name__ == "__main__":
    main()
