"""The web page against the live engine: slider-to-state latency, plot rate, and xruns while it draws.

Needs a JACK server (dummy backend, 48 kHz, 64 frames) and Debian's chromium +
chromium-driver. The page runs in headless Chromium, driven by real key presses.

1. **Slider -> engine state**: focus the z0 slider and press arrow keys; the page logs
   the wall-clock time of each input event (``performance.timeOrigin + now()``), a
   listener on the engine's state box logs the time each change lands. Also the page's
   own round trip (send -> ack).
2. **Plot rate and xruns**: the engine plays the demo phrase with the spiral moving for
   ``--seconds``, (a) alone and (b) with the page open and drawing; the page counts what
   it draws each second. Status flags are compared with a no-op JACK client's in the same
   run (the dummy server drops cycles on its own on this machine).

    python benchmarks/bench_web.py [--seconds 60] [--presses 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, print_table, write_json
from bench_engine import FS, _engine, _noop_flags

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.browser import chromium, wait_for
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import aether_rt
from aether_rt.control import ControlState
from aether_rt.modulation import Modulation
from aether_rt.web.pictures import draw_all
from aether_rt.web.server import WebServer

SPIRAL = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=0.5, rate_slow_hz=0.05))


def _web(engine: Any, images: dict[str, bytes]) -> WebServer:
    server = WebServer(engine.box, engine.clock, sample_rate_hz=FS, coeffs=engine.bank.coeffs_in_use,
                       meters=engine.meters, images=images, port=0)  # fmt: skip
    server.start()
    return server


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    wait_for(lambda: driver.execute_script("return window.aether && window.aether.stats.frames > 5"), "frames", 20)


def slider_latency(model: Any, images: dict[str, bytes], presses: int) -> dict[str, Any]:
    """Key presses on the z0 slider -> the state change in the engine's box."""
    engine = _engine(model, "cfunc", SPIRAL)
    landed: list[tuple[float, float]] = []  # (wall time, z0 centre) per change from the page
    engine.box.subscribe(lambda s, src: landed.append((time.time(), s.modulation.center[0])) if src == "web" else None)
    server = _web(engine, images)
    driver = chromium()
    engine.start()
    try:
        wait_for(lambda: engine.clock() > 0.3, "audio", 20)
        _open(driver, server.url)
        slider = driver.find_element(By.ID, "z0")
        slider.click()
        time.sleep(0.5)
        landed.clear()
        driver.execute_script("window.aether.sent.length = 0; window.aether.stats.rttMs.length = 0")
        rng = np.random.default_rng(6)
        for _ in range(presses):
            slider.send_keys(Keys.ARROW_RIGHT if rng.random() < 0.5 else Keys.ARROW_LEFT)
            time.sleep(rng.uniform(0.01, 0.05))
            engine.watchdog()
        time.sleep(0.5)
        sent = driver.execute_script("return window.aether.sent.filter((s) => s.param === 'z/0')")
        rtt = driver.execute_script("return window.aether.stats.rttMs")
    finally:
        engine.stop()
        driver.quit()
        server.stop()
    # Match each input event to the change it made: in order, by value.
    lat, j = [], 0
    for s in sent:
        while j < len(landed) and abs(landed[j][1] - s["value"]) > 1e-9:
            j += 1
        if j == len(landed):
            break
        lat.append((landed[j][0] - s["t_ms"] / 1e3) * 1e3)
        j += 1
    arr = np.array(lat)
    return {
        "presses": presses, "input_events": len(sent), "matched": len(lat),
        "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)), "max_ms": float(arr.max()),
        "ack_round_trip_p50_ms": float(np.percentile(rtt, 50)), "ack_round_trip_p99_ms": float(np.percentile(rtt, 99)),
    }  # fmt: skip


def drawing(model: Any, images: dict[str, bytes], seconds: float, with_page: bool) -> dict[str, Any]:
    """The engine playing for ``seconds`` (after a 1 s settle), with or without the page open and drawing."""
    engine = _engine(model, "cfunc", SPIRAL)
    server = _web(engine, images) if with_page else None
    driver = chromium() if with_page else None
    fps: list[int] = []
    engine.start()
    try:
        wait_for(lambda: engine.clock() > 0.3, "audio", 20)
        if driver is not None:
            _open(driver, server.url)  # type: ignore[union-attr]
        time.sleep(1.0)
        flags0 = engine.stream.stats().status_flags
        frames0 = driver.execute_script("return window.aether.stats.frames") if driver else 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            engine.watchdog()
            if driver is not None:
                fps.append(driver.execute_script("return window.aether.stats.fps"))
        elapsed = time.monotonic() - t0
        xruns = engine.stream.stats().status_flags - flags0
        frames = (driver.execute_script("return window.aether.stats.frames") - frames0) / elapsed if driver else 0
        stats = engine.stats()
    finally:
        engine.stop()
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
    out: dict[str, Any] = {
        "configuration": "engine + page drawing" if with_page else "engine alone",
        "seconds": round(elapsed, 1), "xruns": xruns, "callback_p99_us": stats["callback_us"]["p99"],
        "control_updates_per_s": stats["control_updates_per_s"],
    }  # fmt: skip
    if server is not None:
        steady = fps[1:-1] or fps
        out.update({"plot_fps_median": statistics.median(steady), "plot_fps_min": min(steady),
                    "frames_received_per_s": frames, "frames_skipped": server.counters["frames_skipped"]})  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="length of each drawing run")
    p.add_argument("--presses", type=int, default=300, help="key presses on the slider")
    p.add_argument("--json", type=Path, default=RESULTS / "web.json")
    args = p.parse_args()
    model = aether_rt.load_model()
    images = draw_all(model, FS)

    print(f"== slider -> engine state: {args.presses} arrow-key presses on z0 in headless Chromium")
    lat = slider_latency(model, images, args.presses)
    keys = ["presses", "matched", "p50_ms", "p99_ms", "max_ms", "ack_round_trip_p50_ms", "ack_round_trip_p99_ms"]
    print_table(keys, [[round(lat[k], 2) if isinstance(lat[k], float) else lat[k] for k in keys]])

    print(f"\n== plot rate and xruns: {args.seconds:g} s each, spiral at 0.5 Hz, demo phrase")
    reference = _noop_flags(args.seconds)
    runs = [drawing(model, images, args.seconds, with_page=False), drawing(model, images, args.seconds, True)]
    cols = ["configuration", "xruns", "callback_p99_us", "control_updates_per_s", "plot_fps_median", "plot_fps_min",
            "frames_received_per_s"]  # fmt: skip
    rows = [["no-op client alone", reference, "", "", "", "", ""]]
    rows += [[r.get(c, "") if not isinstance(r.get(c), float) else round(r[c], 1) for c in cols] for r in runs]
    print_table(cols, rows)
    write_json(args.json, {"slider": lat, "noop_xruns": reference, "runs": runs, "seconds": args.seconds})


if __name__ == "__main__":
    main()
