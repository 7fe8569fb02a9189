"""Which biquad form survives fast modulation? Direct form I, transposed direct form II
and the bank's state-space TPT SVF, each smoothing its own coefficients per frame.

Scenarios (targets jump every 64-frame block, 48 kHz):
  random:      each section jumps between 40 random tables at the extremes
               (Q 0.1 or 40, gain +-24 dB, any frequency the design allows);
  alternating: one +24 dB, Q 40 section switched between two far-apart tunings.
Figure: output peak / static worst case, where the static worst case multiplies, over
the sections, the largest L1 norm any table gives that section (the largest peak a
fixed table could produce). A form that pumps energy shows ratios above 1, or inf.
Also the cost of a ramping 64-frame stereo block, all three as plain loops.

    python benchmarks/bench_forms.py [--seconds 20] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.signal as ss
from _common import RESULTS, median_us_per_call, print_table, write_json
from numba import njit

from aether_rt.dsp import biquad as bq
from aether_rt.dsp.bank import BiquadBank
from aether_rt.dsp.svf import svf_table

FS = 48_000.0
BLOCK = 64
_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}}


@njit(**_JIT)
def _df1(c, step, st, x, y):
    """Direct form I, coefficients (b0, b1, b2, a1, a2) ramped by ``step`` per frame."""
    for k in range(c.shape[0]):
        for ch in range(x.shape[1]):
            b0, b1, b2, a1, a2 = c[k, 0], c[k, 1], c[k, 2], c[k, 3], c[k, 4]
            x1, x2, y1, y2 = st[ch, k, 0], st[ch, k, 1], st[ch, k, 2], st[ch, k, 3]
            for n in range(x.shape[0]):
                b0, b1, b2, a1, a2 = b0 + step[k, 0], b1 + step[k, 1], b2 + step[k, 2], a1 + step[k, 3], a2 + step[k, 4]
                v = x[n, ch] if k == 0 else y[n, ch]
                out = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
                x2, x1, y2, y1 = x1, v, y1, out
                y[n, ch] = out
            st[ch, k, 0], st[ch, k, 1], st[ch, k, 2], st[ch, k, 3] = x1, x2, y1, y2


@njit(**_JIT)
def _tdf2(c, step, st, x, y):
    """Transposed direct form II, same coefficients and ramp."""
    for k in range(c.shape[0]):
        for ch in range(x.shape[1]):
            b0, b1, b2, a1, a2 = c[k, 0], c[k, 1], c[k, 2], c[k, 3], c[k, 4]
            s1, s2 = st[ch, k, 0], st[ch, k, 1]
            for n in range(x.shape[0]):
                b0, b1, b2, a1, a2 = b0 + step[k, 0], b1 + step[k, 1], b2 + step[k, 2], a1 + step[k, 3], a2 + step[k, 4]
                v = x[n, ch] if k == 0 else y[n, ch]
                out = b0 * v + s1
                s1 = b1 * v - a1 * out + s2
                s2 = b2 * v - a2 * out
                y[n, ch] = out
            st[ch, k, 0], st[ch, k, 1] = s1, s2


@njit(**_JIT)
def _svf(c, step, st, x, y):
    """The bank's state-space SVF as the same plain loop (for a like-for-like cost)."""
    for k in range(c.shape[0]):
        for ch in range(x.shape[1]):
            p11, p12, p21, p22, q1, q2 = c[k, 0], c[k, 1], c[k, 2], c[k, 3], c[k, 4], c[k, 5]
            r0, r1, r2 = c[k, 6], c[k, 7], c[k, 8]
            s1, s2 = st[ch, k, 0], st[ch, k, 1]
            for n in range(x.shape[0]):
                p11, p12, p21, p22 = p11 + step[k, 0], p12 + step[k, 1], p21 + step[k, 2], p22 + step[k, 3]
                q1, q2, r0, r1, r2 = q1 + step[k, 4], q2 + step[k, 5], r0 + step[k, 6], r1 + step[k, 7], r2 + step[k, 8]
                v = x[n, ch] if k == 0 else y[n, ch]
                y[n, ch] = r0 * v + r1 * s1 + r2 * s2
                s1, s2 = p11 * s1 + p12 * s2 + q1 * v, p21 * s1 + p22 * s2 + q2 * v


class _DirectForm:
    """Runs a direct-form kernel block by block, ramping to each new table over the block."""

    def __init__(self, kernel, n_sections: int, channels: int, table: np.ndarray, n_state: int) -> None:
        self.kernel, self.cur = kernel, table.copy()
        self.state = np.zeros((channels, n_sections, n_state))

    def block(self, table: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        step = (table - self.cur) / x.shape[0]
        self.kernel(self.cur, step, self.state, x, y)
        self.cur = table.copy()


class _Bank:
    def __init__(self, n_sections: int, channels: int, table: np.ndarray) -> None:
        self.bank = BiquadBank(n_sections, channels, coeffs=table)

    def block(self, table: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.bank.publish(table)
        self.bank.process(x, y)


FORMS = {
    "direct form I": lambda n, ch, t: _DirectForm(_df1, n, ch, t, 4),
    "transposed DF-II": lambda n, ch, t: _DirectForm(_tdf2, n, ch, t, 2),
    "SVF (the bank)": lambda n, ch, t: _Bank(n, ch, t),
}


def _l1(coeffs: np.ndarray) -> float:
    impulse = np.zeros(1 << 17)
    impulse[0] = 1.0
    return float(np.abs(ss.sosfilt(bq.to_sos(coeffs), impulse)).sum())


def modulation_ratio(form: str, tables: list[np.ndarray], order: np.ndarray, seconds: float, seed: int) -> float:
    """Peak over static worst case for one form running the table sequence ``order``."""
    n = tables[0].shape[0]
    worst = np.array([[_l1(t[k : k + 1]) for k in range(n)] for t in tables]).max(axis=0)
    static_worst = float(np.prod(worst))
    x = np.random.default_rng(seed).uniform(-1, 1, (int(FS * seconds), 1)) / static_worst
    x = x.astype(np.float32)
    runner = FORMS[form](n, 1, tables[order[0]])
    y = np.empty_like(x)
    with np.errstate(all="ignore"):
        for i, start in enumerate(range(0, x.shape[0], BLOCK)):
            runner.block(tables[order[i % order.size]], x[start : start + BLOCK], y[start : start + BLOCK])
        peak = float(np.max(np.abs(y))) if np.all(np.isfinite(y)) else float("inf")
    if form == "SVF (the bank)" and runner.bank.stats().blowup_resets:
        peak = float("inf")  # a reset means the state ran away
    return peak / (float(np.max(np.abs(x))) * static_worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per scenario (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=15, help="timing repeats (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_forms.json", help="(default: %(default)s)")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    lo, hi = bq.freq_limits_hz(FS)

    def extreme(n: int) -> np.ndarray:
        return bq.peaking_coeffs(
            np.exp(rng.uniform(np.log(lo), np.log(hi), n)),
            rng.choice([bq.Q_MIN, bq.Q_MAX], n),
            rng.choice([-bq.GAIN_MAX_DB, bq.GAIN_MAX_DB], n),
            FS,
        )

    scenarios: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    for n in (1, 4):
        tables = [extreme(n) for _ in range(40)]
        scenarios[f"random, {n} section(s)"] = (tables, rng.integers(40, size=int(FS * args.seconds) // BLOCK + 1))
    for f_a, f_b in ((40.0, 2000.0), (20.0, 10_000.0), (200.0, 12_000.0)):
        tables = [bq.peaking_coeffs([f], bq.Q_MAX, bq.GAIN_MAX_DB, FS) for f in (f_a, f_b)]
        scenarios[f"alternating {f_a:g} <-> {f_b:g} Hz"] = (tables, np.array([1, 0]))

    rows, results = [], {"block": BLOCK, "seconds": args.seconds, "peak_over_static_worst": {}, "us_per_block": {}}
    for name, (tables, order) in scenarios.items():
        ratios = {form: modulation_ratio(form, tables, order, args.seconds, seed=2) for form in FORMS}
        results["peak_over_static_worst"][name] = ratios
        rows.append([name, *ratios.values()])
    print(f"\npeak / static worst case, targets jumping every {BLOCK} frames (lower is better; inf = ran away)")
    print_table(["scenario", *FORMS], rows)

    table = bq.peaking_coeffs(np.geomspace(60, 16000, 32), 2.0, 6.0, FS)
    x = (0.1 * rng.standard_normal((BLOCK, 2))).astype(np.float32)
    y = np.empty_like(x)
    tiny = np.full((32, 5), 1e-15)
    svf = svf_table(table)
    st4, st2, st_svf = np.zeros((2, 32, 4)), np.zeros((2, 32, 2)), np.zeros((2, 32, 2))
    bank = BiquadBank(32, 2, coeffs=table, smoothing_frames=1 << 30)
    bank.publish(table * (1 + 1e-9))
    timings = median_us_per_call(
        {
            "direct form I (plain loop)": lambda: _df1(table, tiny, st4, x, y),
            "transposed DF-II (plain loop)": lambda: _tdf2(table, tiny, st2, x, y),
            "SVF (plain loop)": lambda: _svf(svf, np.full((32, 9), 1e-15), st_svf, x, y),
            "SVF (the bank, tuned)": lambda: bank.process(x, y),
        },
        calls=2000,
        repeats=args.repeats,
    )
    results["us_per_block"] = timings
    print(f"\nramping {BLOCK}-frame stereo block, 32 sections, microseconds (median of {args.repeats})")
    print_table(["form", "us per block"], [[k, v] for k, v in timings.items()])
    write_json(args.json, results)


if __name__ == "__main__":
    main()
