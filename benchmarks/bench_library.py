"""Encoding a folder of IRs: how long it takes, and what it costs a running engine (``run --ir-library``).

1. **Speed**: ``--irs`` synthetic coloured IRs (band-limited clicks with a resonance,
   seeded) in a temporary folder: reading (the folder loader and its checks), the
   encoder's means, and the refinement into the learned region (``--steps`` Adam steps,
   8 starts per IR), warm (compiled) and first call.
2. **Beside the engine**: the engine plays the demo phrase on JACK with the spiral
   moving, with the web server up; for as long as the library takes to encode, then
   for as long again without it: xruns (status flags), control tables per second and
   the control step's p99, and the page's HTTP answer time meanwhile.

Needs a JACK server (dummy backend, 48 kHz, 64 frames).

    python benchmarks/bench_library.py [--irs 48] [--steps 200]
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from _common import RESULTS, print_table, write_json
from bench_engine import FS, _engine
from scipy import signal

import aether_rt
from aether_rt.control import ControlState
from aether_rt.models.fit import encode_features, read_library
from aether_rt.modulation import Modulation
from aether_rt.web.library import start_library
from aether_rt.web.server import WebServer

SPIRAL = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=0.5, rate_slow_hz=0.05))


def write_irs(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` seeded coloured IRs (a resonance over a band-limited click), at 44.1, 48 or 96 kHz."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        rate = int(rng.choice([44_100, 48_000, 96_000]))
        x = np.zeros(rate // 10)
        x[0] = 1.0
        b, a = signal.butter(2, rng.uniform(2_000, 18_000), fs=rate)
        x = signal.lfilter(b, a, x)
        b, a = signal.butter(1, rng.uniform(30, 150), "high", fs=rate)
        x = signal.lfilter(b, a, x)
        b, a = signal.iirpeak(rng.uniform(100, 8_000), rng.uniform(0.7, 4), fs=rate)
        sf.write(folder / f"ir{i:03d}.wav", 0.5 * (x + rng.uniform(0, 3) * signal.lfilter(b, a, x)), rate)


def speed(model: Any, folder: Path, steps: int) -> dict[str, float]:
    t0 = time.perf_counter()
    lib = read_library(folder, model.config.feature)
    t1 = time.perf_counter()
    encode_features(model, lib.features, lib.names)
    t2 = time.perf_counter()
    first = encode_features(model, lib.features, lib.names, refine_steps=steps)
    t3 = time.perf_counter()
    encode_features(model, lib.features, lib.names, refine_steps=steps)
    t4 = time.perf_counter()
    n = len(lib.names)
    return {
        "irs": n,
        "read_s": t1 - t0,
        "encode_s": t2 - t1,
        "refine_first_s": t3 - t2,
        "refine_warm_s": t4 - t3,
        "refine_warm_ms_per_ir": (t4 - t3) / n * 1e3,
        "encoder_outside": sum(not e.encoder_in_region for e in first),
        "mean_fit_db": float(np.mean([e.fit_db for e in first])),
        "mean_encoder_fit_db": float(np.mean([e.encoder_fit_db for e in first])),
    }


def _window(engine: Any, port: int, until: Any) -> dict[str, float]:
    """Figures of the engine while ``until()`` is false; HTTP answer times of the page meanwhile."""
    flags0, updates0 = engine.stream.stats().status_flags, engine.controller.updates
    engine.controller.step_us.clear()
    http_ms: list[float] = []
    started = time.monotonic()
    while not until(time.monotonic() - started):
        t = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()
        http_ms.append((time.perf_counter() - t) * 1e3)
        time.sleep(0.2)
    seconds = time.monotonic() - started
    step = np.array(engine.controller.step_us)
    return {
        "seconds": seconds,
        "xruns": engine.stream.stats().status_flags - flags0,
        "tables_per_s": (engine.controller.updates - updates0) / seconds,
        "control_step_p99_us": float(np.percentile(step, 99)) if step.size else 0.0,
        "http_max_ms": max(http_ms),
    }


def beside_engine(model: Any, folder: Path, steps: int) -> dict[str, dict[str, float]]:
    engine = _engine(model, "cfunc", SPIRAL)
    server = WebServer(engine.box, engine.clock, sample_rate_hz=FS, coeffs=engine.bank.coeffs_in_use,
                       meters=engine.meters, port=0)  # fmt: skip
    server.start()
    engine.start()
    try:
        time.sleep(2.0)
        thread = start_library(server, model, read_library(folder, model.config.feature), refine_steps=steps)
        encoding = _window(engine, server.port, lambda _: not thread.is_alive())
        quiet = _window(engine, server.port, lambda t: t >= encoding["seconds"])
    finally:
        engine.stop()
        server.stop()
    return {"encoding": encoding, "quiet": quiet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--irs", type=int, default=48)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    model = aether_rt.load_model()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_irs(folder, args.irs)
        fast = speed(model, folder, args.steps)
        print_table(list(fast), [list(fast.values())])
        live = beside_engine(model, folder, args.steps)
    print_table(["window", *live["quiet"]], [[name, *row.values()] for name, row in live.items()])
    write_json(RESULTS / "library.json", {"steps": args.steps, "speed": fast, "live": live})


if __name__ == "__main__":
    main()
