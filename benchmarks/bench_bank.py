"""The biquad bank against scipy.signal.sosfilt and pedalboard, side by side.

32 peaking sections at 48 kHz, per block size: microseconds per block including the
Python call, real-time factor, and how many times faster the bank is than each peer on
the same static work. "bank smoothing" runs every block inside a coefficient ramp (the
per-frame interpolation always active), which is the live engine's steady state.
Also: silence after signal must not cost more than signal (no subnormal slowdown).

    python benchmarks/bench_bank.py [--channels 2] [--repeats 15] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pedalboard
import scipy.signal as ss
from _common import RESULTS, median_us_per_call, print_table, write_json

from aether_rt.dsp import biquad as bq
from aether_rt.dsp.bank import BiquadBank

FS = 48_000
N_SECTIONS = 32
BLOCKS = (32, 64, 128, 256, 512, 1024)


def _filters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    freq_hz = np.geomspace(60.0, 16_000.0, N_SECTIONS)
    return freq_hz, rng.uniform(0.5, 4.0, N_SECTIONS), rng.uniform(-12.0, 12.0, N_SECTIONS)


def bench_block(block: int, channels: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    freq_hz, q, gain_db = _filters(rng)
    coeffs = bq.peaking_coeffs(freq_hz, q, gain_db, FS)
    other = bq.peaking_coeffs(freq_hz * 1.5, q, gain_db, FS)
    x = (0.1 * rng.standard_normal((block, channels))).astype(np.float32)
    y = np.empty_like(x)

    static = BiquadBank(N_SECTIONS, channels, max_frames=block, coeffs=coeffs)
    # A ramp longer than the run: every block interpolates every coefficient per frame.
    smoothing = BiquadBank(N_SECTIONS, channels, max_frames=block, smoothing_frames=1 << 30, coeffs=coeffs)
    smoothing.publish(other)
    sos = bq.to_sos(coeffs)
    zi = [np.zeros((N_SECTIONS, 2, channels))]

    def scipy_step() -> None:
        _, zi[0] = ss.sosfilt(sos, x, axis=0, zi=zi[0])

    board = pedalboard.Pedalboard(
        [
            pedalboard.PeakFilter(cutoff_frequency_hz=f, gain_db=g, q=qq)
            for f, qq, g in zip(freq_hz, q, gain_db, strict=True)
        ]
    )
    x_planar = np.ascontiguousarray(x.T)
    calls = max(50, 20_000 // block)
    return median_us_per_call(
        {
            "bank static": lambda: static.process(x, y),
            "bank smoothing": lambda: smoothing.process(x, y),
            "scipy sosfilt": scipy_step,
            "pedalboard": lambda: board(x_planar, FS, reset=False),
        },
        calls=calls,
        repeats=repeats,
    )


def bench_silence(channels: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Per-block cost on signal and on long silence after it (Q 40 boosts ring longest)."""
    coeffs = bq.peaking_coeffs(np.geomspace(20, 20_000, N_SECTIONS), bq.Q_MAX, 24.0, FS)
    bank = BiquadBank(N_SECTIONS, channels, coeffs=coeffs)
    signal = (0.3 * rng.standard_normal((64, channels))).astype(np.float32)
    silence = np.zeros_like(signal)
    out = np.empty_like(signal)
    for _ in range(FS // 64):
        bank.process(signal, out)
    t_signal = median_us_per_call({"signal": lambda: bank.process(signal, out)}, calls=2000, repeats=repeats)
    for _ in range(60 * FS // 64):  # a minute of silence: where subnormals would appear
        bank.process(silence, out)
    t_silence = median_us_per_call({"silence": lambda: bank.process(silence, out)}, calls=2000, repeats=repeats)
    return {**t_signal, **t_silence}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[2, 1], help="channel counts (default: 2 1)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_bank.json", help="(default: %(default)s)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict[str, object] = {"sample_rate_hz": FS, "n_sections": N_SECTIONS, "runs": []}
    for channels in args.channels:
        print(f"\n{N_SECTIONS} sections, {channels} channel(s), {FS} Hz: us per block, median of {args.repeats}")
        rows = []
        for block in BLOCKS:
            t = bench_block(block, channels, args.repeats, rng)
            period_us = block / FS * 1e6
            row = {
                "channels": channels,
                "block": block,
                "us": t,
                "realtime_factor_smoothing": period_us / t["bank smoothing"],
                "scipy_over_bank_static": t["scipy sosfilt"] / t["bank static"],
                "pedalboard_over_bank_static": t["pedalboard"] / t["bank static"],
                "scipy_over_bank_smoothing": t["scipy sosfilt"] / t["bank smoothing"],
                "pedalboard_over_bank_smoothing": t["pedalboard"] / t["bank smoothing"],
            }
            results["runs"].append(row)  # type: ignore[union-attr]
            rows.append(
                [
                    block,
                    t["bank static"],
                    t["bank smoothing"],
                    t["scipy sosfilt"],
                    t["pedalboard"],
                    row["realtime_factor_smoothing"],
                    row["scipy_over_bank_static"],
                    row["pedalboard_over_bank_static"],
                ]
            )
        print_table(
            [
                "block",
                "bank static",
                "bank smoothing",
                "sosfilt",
                "pedalboard",
                "RT x (smoothing)",
                "sosfilt / bank",
                "pedalboard / bank",
            ],
            rows,
        )
        silence = bench_silence(channels, args.repeats, rng)
        results.setdefault("silence", []).append({"channels": channels, "us_per_64_block": silence})  # type: ignore[union-attr]
        print(
            f"64-frame block on signal {silence['signal']:.2f} us, on silence after a minute of decay "
            f"{silence['silence']:.2f} us"
        )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
