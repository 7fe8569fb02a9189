"""Callback time with signal against after a minute of digital silence, stage by stage.

Subnormal numbers cost ~100x per operation on most CPUs. A state decaying in silence
(the bank's sections, the DC blocker, a glide towards a mix of 0, the meters) would
reach them after seconds; the audio path flushes or lands every such state (see
``aether_rt/dsp/_stages.py``). This measures it: for each scenario (which states it
drives towards 0 in the silence), two arenas alike get one second of noise with DC, then
one of them a minute of zeros; then blocks of each (noise and zeros) are timed in turn,
through the stages the live callback runs, in order, each on its own (median over
``--blocks`` blocks), and the whole callback body.

    python benchmarks/bench_silence.py [--block 64] [--rate 48000] [--channels 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, print_table, write_json

from aether_rt.audio.callback import callback_body
from aether_rt.control import ControlState, stage_params
from aether_rt.dsp import _kernels, _stages
from aether_rt.dsp import arena as ar
from aether_rt.dsp import biquad as bq
from aether_rt.dsp.bank import BiquadBank

# scenario -> (control state, bypass once the silence starts, the states it drives towards 0)
SCENARIOS = {
    "wet": ({}, False, "bank sections, DC blocker, meters"),
    "bypassed at the silence": ({}, True, "mix glide -> 0, DC blocker, meters"),
    "dry": ({"mix": 0.0}, False, "DC blocker on the dry path, meters"),
    "limiting": ({"input_gain_db": 24.0}, False, "limiter recovery, input gain glide"),
}
STAGES = ("input + input gain", "bank", "mix, gain, DC, limiter, meters", "whole callback")


def _stage_times(arena: ar.Arena, x: np.ndarray, y: np.ndarray) -> list[int]:
    """One block through the callback's stages in its order, each timed (ns); then the whole body."""
    words, f64, f32 = arena.words, arena.f64, arena.f32
    frames, ins = x.shape[0], arena.layout.ins
    start = 2 * int(words[ar.H_OFF_GAINED])
    gained = f32[start : start + frames * ins].reshape(frames, ins)  # the bank's input region
    t0 = time.perf_counter_ns()
    _stages.take_input(words, f32, x, 0, frames, True)
    _stages.apply_input_gain(words, f64, f32, frames)
    t1 = time.perf_counter_ns()
    _kernels.process(words, f64, gained, y)
    t2 = time.perf_counter_ns()
    _stages.finish_output(words, f64, f32, y, 0, frames)
    t3 = time.perf_counter_ns()
    callback_body(words, f64, f32, x, y, np.uint64(0), True)
    t4 = time.perf_counter_ns()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3]


def _arena(name: str, block: int, rate: int, channels: int) -> ar.Arena:
    setup = SCENARIOS[name][0]
    coeffs = bq.peaking_coeffs(np.geomspace(20, 20000, 32), bq.Q_MAX, 24.0, rate)  # slowest decays
    arena = BiquadBank(32, channels, coeffs=coeffs, max_frames=block).arena
    for slot, value in stage_params(ControlState(**setup), rate).items():
        arena.params[slot] = value
    arena.settle_params()
    return arena


def scenario(name: str, block: int, rate: int, channels: int, blocks: int) -> list[dict[str, object]]:
    """Two arenas alike, one kept in signal, one after a minute of silence; their blocks timed in turn."""
    _, bypass_after, drives = SCENARIOS[name]
    rng = np.random.default_rng(0)
    y = np.empty((block, channels), np.float32)
    silence = np.zeros((block, channels), np.float32)

    def noise() -> np.ndarray:
        return (0.5 * rng.standard_normal((block, channels)) + 0.2).astype(np.float32)

    loud, quiet = _arena(name, block, rate, channels), _arena(name, block, rate, channels)
    for _ in range(rate // block):  # a second of signal through both
        x = noise()
        for arena in (loud, quiet):
            callback_body(arena.words, arena.f64, arena.f32, x, y, np.uint64(0), True)
    if bypass_after:
        quiet.params[ar.P_BYPASS] = 1.0
    for _ in range(60 * rate // block):  # then a minute of silence through one
        callback_body(quiet.words, quiet.f64, quiet.f32, silence, y, np.uint64(0), True)
    # Interleaved, so that the shared machine's drift hits both alike.
    with_signal, after = [], []
    for _ in range(blocks):
        with_signal.append(_stage_times(loud, noise(), y))
        after.append(_stage_times(quiet, silence, y))
    with_signal, after = np.array(with_signal), np.array(after)
    rows = []
    for i, stage in enumerate(STAGES):
        sig, sil = statistics.median(with_signal[:, i]) / 1e3, statistics.median(after[:, i]) / 1e3
        rows.append({"scenario": name, "decaying": drives, "stage": stage, "signal_us": round(sig, 2),
                     "silence_us": round(sil, 2), "ratio": round(sil / sig, 3)})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--rate", type=int, default=48_000)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--blocks", type=int, default=3000, help="blocks timed in each phase")
    p.add_argument("--json", type=Path, default=RESULTS / "silence.json")
    args = p.parse_args()
    rows = [r for name in SCENARIOS for r in scenario(name, args.block, args.rate, args.channels, args.blocks)]
    print(f"== {args.block}-frame blocks at {args.rate} Hz, {args.channels} channel(s), 32 sections at Q 40; "
          f"median us per block: with signal, after a minute of silence")  # fmt: skip
    keys = list(rows[0])
    print_table(keys, [[r[k] for k in keys] for r in rows])
    write_json(args.json, {"block": args.block, "rate": args.rate, "channels": args.channels, "rows": rows})


if __name__ == "__main__":
    main()
