"""OSC under load: message rate handled, OSC -> audio latency, xruns while flooded.

* **rate**: a sender process blasts valid messages (z, mix, xy) at the server as fast
  as it can for ``--rate-seconds``; handled/s is what the server applied to the state
  (the rest was dropped by the kernel's socket buffer). Median of ``--repeats``.
* **latency**: ``/aether/z`` sent over UDP to a running engine (JACK dummy server,
  64-frame blocks, control at 500 Hz) -> the first output frame computed with a table
  designed from it: the frame the audio side adopted that table at (its adoption log)
  minus the frame counter when the message was sent, over ``--changes`` changes at
  random phases. The counter moves a block at a time, so up to one block (1.33 ms)
  of waiting for the next callback comes on top (the "p99 + 1 block" column), and then
  the device's own output latency (reported), as for any parameter change.
* **flood**: the engine plays while a sender process sends valid messages at 1 000 and
  10 000 msg/s for ``--seconds``; status flags against a no-op client alone on the
  server just before, RSS and thread count before and after, and what the server did.

    python benchmarks/bench_osc.py [--seconds 60] [--changes 300]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, adopted_frame, print_table, write_json
from bench_engine import BLOCK, FS, _engine, _noop_flags
from pythonosc.osc_message_builder import OscMessageBuilder

import aether_rt
from aether_rt.control import ControlState, StateBox
from aether_rt.dsp import arena as ar
from aether_rt.modulation import Modulation
from aether_rt.osc import OscServer


def _messages(rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        kind = i % 3
        m = OscMessageBuilder(["/aether/z/0", "/aether/mix", "/aether/xy"][kind])
        for v in rng.uniform(-1.5, 1.5, 2 if kind == 2 else 1):
            m.add_arg(float(abs(v) / 1.5 if kind == 1 else v))
        out.append(m.build().dgram)
    return out


def sender(port: int, rate: float, seconds: float) -> None:
    """Send valid messages at ``rate`` per second (0: flat out) for ``seconds`` (a child process)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packets = _messages(np.random.default_rng(0), 4096)
    sent, start = 0, time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        due = len(packets) * 1_000_000 if rate == 0 else int((now - start) * rate)
        burst = 0
        while sent < due and burst < 256:
            sock.sendto(packets[sent % len(packets)], ("127.0.0.1", port))
            sent += 1
            burst += 1
        if rate:
            time.sleep(0.0005)
    print(sent)


def _spawn_sender(port: int, rate: float, seconds: float) -> subprocess.Popen[str]:
    here = Path(__file__).resolve().parent
    return subprocess.Popen([sys.executable, str(here / "bench_osc.py"), "--send", str(port), str(rate), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=here)  # fmt: skip


def message_rate(seconds: float, repeats: int) -> dict[str, float]:
    """Valid messages applied per second with a sender going flat out (no engine)."""
    rates, offered = [], []
    for _ in range(repeats):
        box = StateBox(ControlState())
        server = OscServer(box, time.monotonic, port=0)
        server.start()
        proc = _spawn_sender(server.port, 0, seconds)
        out, _ = proc.communicate(timeout=seconds + 60)
        time.sleep(0.2)
        server.stop()
        rates.append(server.counters["applied"] / seconds)
        offered.append(int(out.strip()) / seconds)
    return {"handled_per_s": statistics.median(rates), "offered_per_s": statistics.median(offered)}


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def osc_latency(model, changes: int) -> dict[str, float]:
    """/aether/z over UDP -> the frame its first table is adopted at (ms of audio time)."""
    engine = _engine(model, "cfunc", ControlState(modulation=Modulation(mode="static")))
    engine.controller.log_states = True
    server = OscServer(engine.box, engine.clock, port=0)
    server.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    words = engine.bank.arena.words
    rng = np.random.default_rng(0)
    latencies_ms: list[float] = []
    engine.start()
    try:
        time.sleep(0.5)
        for _ in range(changes):
            time.sleep(rng.uniform(0.01, 0.03))
            logged = len(engine.controller.state_log)
            m = OscMessageBuilder("/aether/z")
            for v in rng.uniform(-1.5, 1.5, 4):
                m.add_arg(float(v))
            data = m.build().dgram
            frame_at_send = int(words[ar.H_FRAMES])
            sock.sendto(data, ("127.0.0.1", server.port))
            adopted = adopted_frame(engine, logged)
            if adopted is not None:
                latencies_ms.append((adopted - frame_at_send) / FS * 1e3)
    finally:
        engine.stop()
        server.stop()
    lat = np.array(latencies_ms)
    return {
        "changes": len(lat),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        # The frame counter moves a block at a time: a message that arrives mid-block waits up
        # to one block for the next callback, on top of the frames counted above.
        "p99_bound_ms": float(np.percentile(lat, 99)) + BLOCK / FS * 1e3,
        "device_output_latency_ms": engine.stream.latency_s[1] * 1e3,
    }


def flood(model, rate: float, seconds: float) -> dict[str, float]:
    """The engine playing while valid messages arrive at ``rate`` per second."""
    state = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=2.0))
    engine = _engine(model, "cfunc", state)
    server = OscServer(engine.box, engine.clock, port=0, status=engine.meters)
    server.start()
    rss = _rss_kb()
    proc = _spawn_sender(server.port, rate, seconds)
    counts: list[int] = []
    done = threading.Event()

    def sample_threads() -> None:  # (this sampler itself excluded below)
        while not done.wait(0.25):
            counts.append(threading.active_count() - 1)

    sampler = threading.Thread(target=sample_threads, daemon=True)
    sampler.start()
    engine.run(seconds + 0.5)
    done.set()
    sampler.join()
    out, _ = proc.communicate(timeout=120)
    server.stop()
    stats = engine.stats()
    return {
        "rate_per_s": rate,
        "sent": int(out.strip()),
        "applied": server.counters["applied"],
        "xruns": stats["xruns"],
        "callback_p99_us": stats["callback_us"]["p99"],
        "control_updates_per_s": stats["control_updates_per_s"],
        "rss_growth_kb": _rss_kb() - rss,
        "threads_min": min(counts),
        "threads_max": max(counts),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--send":
        sender(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="flood length per rate")
    p.add_argument("--rates", default="1000,10000", help="flood rates, msg/s")
    p.add_argument("--rate-seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--changes", type=int, default=300)
    p.add_argument("--json", type=Path, default=RESULTS / "osc.json")
    args = p.parse_args()
    model = aether_rt.load_model()

    print(f"== message rate: a sender flat out for {args.rate_seconds:g} s, median of {args.repeats}")
    rate = message_rate(args.rate_seconds, args.repeats)
    print_table(["offered msg/s", "handled msg/s"], [[round(rate["offered_per_s"]), round(rate["handled_per_s"])]])

    print(f"\n== OSC /aether/z -> first output frame with its table ({args.changes} changes, {BLOCK}-frame blocks)")
    lat = osc_latency(model, args.changes)
    row = [lat[k] for k in ("changes", "p50_ms", "p99_ms", "max_ms", "p99_bound_ms", "device_output_latency_ms")]
    print_table(["changes", "p50 ms", "p99 ms", "max ms", "p99 + 1 block ms", "+ device output latency ms"], [row])

    print(f"\n== flood: {args.seconds:g} s per rate, spiral at 2 Hz, {BLOCK}-frame blocks")
    reference = _noop_flags(args.seconds)
    floods = [flood(model, float(r), args.seconds) for r in args.rates.split(",") if r]
    keys = ["rate_per_s", "sent", "applied", "xruns", "callback_p99_us", "control_updates_per_s", "rss_growth_kb",
            "threads_min", "threads_max"]  # fmt: skip
    noop_row = ["no-op client alone", *["" for _ in keys]]
    noop_row[1 + keys.index("xruns")] = reference
    print_table(["configuration", *keys], [noop_row] + [["engine + OSC flood", *[f[k] for k in keys]] for f in floods])
    write_json(args.json, {"message_rate": rate, "latency": lat, "noop_xruns": reference, "floods": floods,
                           "seconds": args.seconds})  # fmt: skip


if __name__ == "__main__":
    main()
