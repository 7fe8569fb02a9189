"""Bad input, blown state, denormals, concurrency and the real-time contract of the bank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import scipy.signal as ss
from conftest import random_sections

from aether_rt.dsp import _kernels
from aether_rt.dsp import biquad as bq
from aether_rt.dsp.bank import BiquadBank


def _fresh_bank_output(coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    return BiquadBank(coeffs.shape[0], x.shape[1], coeffs=coeffs).process(np.ascontiguousarray(x))


def test_nan_and_inf_input_are_silenced_counted_and_do_not_poison(rng: np.random.Generator) -> None:
    coeffs = random_sections(rng, 32)
    bank = BiquadBank(32, 2, coeffs=coeffs)
    x = (0.3 * rng.standard_normal((512, 2))).astype(np.float32)
    x[100, 0], x[300, 0] = np.nan, np.inf
    y = bank.process(x)
    assert np.all(np.isfinite(y))
    assert y[100, 0] == 0.0 and y[300, 0] == 0.0
    # The other channel never saw the bad samples.
    ref = ss.sosfilt(bq.to_sos(coeffs), x[:, 1].astype(np.float64))
    np.testing.assert_allclose(y[:, 1], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert bank.stats().nan_events == 1
    # The state was reset: the next block is what a fresh bank makes of it.
    nxt = (0.3 * rng.standard_normal((256, 2))).astype(np.float32)
    np.testing.assert_array_equal(bank.process(nxt)[:, 0], _fresh_bank_output(coeffs, nxt)[:, 0])


def test_a_blown_up_state_is_silenced_reset_and_counted(rng: np.random.Generator) -> None:
    coeffs = random_sections(rng, 8)
    bank = BiquadBank(8, 1, coeffs=coeffs)
    x = (0.3 * rng.standard_normal((256, 1))).astype(np.float32)
    x[50, 0] = 1e30  # finite, but drives the state far past any audio level
    y = bank.process(x)
    assert np.all(np.isfinite(y)) and np.all(y[50:] == 0.0)
    assert bank.stats().blowup_resets == 1
    nxt = (0.3 * rng.standard_normal((256, 1))).astype(np.float32)
    np.testing.assert_array_equal(bank.process(nxt), _fresh_bank_output(coeffs, nxt))


def test_unstable_tables_are_refused_on_both_sides(rng: np.random.Generator) -> None:
    good = random_sections(rng, 2)
    bank = BiquadBank(2, 1, coeffs=good)
    unstable = good.copy()
    unstable[1, 4] = 1.2  # a2 outside the triangle
    with pytest.raises(ValueError, match="section 1 is unstable"):
        bank.publish(unstable)
    # Bypassing the checked wrapper: the audio side refuses it too and keeps its table.
    _kernels.publish(bank.arena.words, bank.arena.f64, np.ascontiguousarray(unstable), 0, -1)
    bank.process(np.zeros((8, 1), np.float32))
    assert bank.stats().bad_tables == 1
    np.testing.assert_allclose(bank.coeffs_in_use(), good, atol=1e-12)


def test_silence_after_signal_leaves_no_subnormal_numbers(rng: np.random.Generator) -> None:
    # Q 40 resonances decay slowest; long silence would walk them into subnormals.
    coeffs = bq.peaking_coeffs(np.geomspace(20, 20000, 32), bq.Q_MAX, 24.0, 48_000)
    bank = BiquadBank(32, 2, coeffs=coeffs)
    bank.process((0.5 * rng.standard_normal((48_000, 2))).astype(np.float32))
    silence = np.zeros((4096, 2), np.float32)
    tiny = np.finfo(np.float64).tiny
    for _ in range(48_000 * 60 // 4096):  # a minute of silence
        out = bank.process(silence)
        state = bank.arena.state
        assert not np.any((state != 0) & (np.abs(state) < tiny))
        assert not np.any((out != 0) & (np.abs(out) < np.finfo(np.float32).tiny))
    assert np.all(bank.arena.state == 0.0)  # flushed to exact silence


def test_reset_request_zeroes_the_state_before_the_next_block(rng: np.random.Generator) -> None:
    coeffs = random_sections(rng, 4)
    bank = BiquadBank(4, 1, coeffs=coeffs)
    bank.process(rng.standard_normal((500, 1)).astype(np.float32))
    bank.reset()
    x = rng.standard_normal((100, 1)).astype(np.float32)
    np.testing.assert_array_equal(bank.process(x), _fresh_bank_output(coeffs, x))


def test_a_producer_thread_never_tears_a_table() -> None:
    """The control thread publishes as fast as it can into a 2-slot ring while audio runs."""
    n = 32
    bank = BiquadBank(n, 1, ring_size=2, max_frames=16)

    def table(seq: int) -> np.ndarray:
        t = np.zeros((n, 5))
        t[:, 0] = 1.0 + 1e-6 * (seq % 100_000)  # every row encodes the sequence number
        return t

    stop = threading.Event()
    published = [0]

    def producer() -> None:
        while not stop.is_set():
            bank.publish(table(published[0]), ramp_frames=0)
            published[0] += 1

    thread = threading.Thread(target=producer)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the two threads finely
    thread.start()
    block = np.zeros((16, 1), np.float32)
    checked = 0
    started = time.monotonic()
    try:
        # 2 s, or longer on a loaded machine until enough interleavings were checked (at most 20 s)
        while (elapsed := time.monotonic() - started) < 2.0 or (
            (checked < 2000 or bank.stats().tables_applied < 200) and elapsed < 20.0
        ):
            bank.process(block)
            b0 = bank.coeffs_in_use()[:, 0]
            assert np.all(b0 == b0[0]), "a table mixed rows of two publications"
            checked += 1
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
    stats = bank.stats()
    assert checked > 1000 and stats.tables_applied > 100
    print(f"hand-off: {published[0]} published, {stats.tables_applied} adopted, {stats.torn_reads} torn copies retried")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.process(np.zeros((8, 2), np.float64)), "x must be float32"),
        (lambda b: b.process([0.0] * 8), "x must be a NumPy float32 array"),
        (lambda b: b.process(np.zeros((8, 2, 2), np.float32)), r"x must be \[frames\]"),
        (lambda b: b.process(np.zeros((8, 4), np.float32)[:, ::2]), "C-contiguous"),
        (lambda b: b.process(np.zeros((8, 2), np.float32), np.zeros((9, 2), np.float32)), "out has 9 frames"),
        (lambda b: b.publish(np.zeros((3, 5))), r"coeffs must have shape \(4, 5\)"),
        (lambda b: b.publish(np.full((4, 5), np.nan)), "coeffs must be finite"),
        (lambda b: b.publish(bq.identity_coeffs(4), ramp_frames=-3), "ramp_frames"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, message: str) -> None:
    bank = BiquadBank(4, 2)
    with pytest.raises(ValueError, match=message):
        call(bank)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_sections": 0}, "n_sections"), ({"n_channels": 1.5}, "n_channels"), ({"max_frames": -1}, "max_frames")],
)
def test_bad_geometry_raises_value_error_naming_it(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        BiquadBank(**kwargs)


_IR_PROBE = r"""
import json, re
from aether_rt.audio import callback
from aether_rt.dsp import _kernels
forbidden = ("NRT_MemInfo_alloc", "NRT_Allocate", "NRT_incref", "NRT_decref", "numba_gil_ensure",
             "PyGILState_Ensure", "PyEval_", "numba_do_raise", "PyErr_")
def calls_by_function(ir):
    found, current = {}, None
    for line in ir.splitlines():
        m = re.match(r'^define .*?@"?([\w.$]+)', line)
        if m:
            current = m.group(1)
        for name in forbidden:
            if current and re.search(r"call[^@]*@" + name, line):
                found.setdefault(current, set()).add(name)
    return {k: sorted(v) for k, v in found.items()}
print(json.dumps({
    "process": [calls_by_function(ir) for ir in _kernels.process.inspect_llvm().values()],
    "callback": calls_by_function(callback.pa_callback.inspect_llvm()),
}))
"""


def test_the_compiled_audio_path_never_allocates_locks_or_takes_the_gil(tmp_path) -> None:
    """Compile afresh (an empty Numba cache) and read the LLVM IR of every function."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _IR_PROBE], env=env, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # Our own functions (mangled as _ZN9aether_rt...) must make no forbidden call. Numba
    # adds generic wrappers around them: "_ZN7cpython..." converts Python objects when
    # Python calls a kernel, and "cfunc..." reports an exception under the GIL if the
    # wrapped function raised. Our code has no raise site, so that branch is dead.
    for functions in [*report["process"], report["callback"]]:
        ours = {fn: calls for fn, calls in functions.items() if fn.startswith("_ZN9aether_rt")}
        assert ours == {}, ours
        assert functions, "the probe should at least see the wrappers' C-API calls"
