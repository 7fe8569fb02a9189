"""No subnormal numbers anywhere on the audio path after a minute of digital silence.

A recursive state decaying towards 0 in silence (the DC blocker, a glide towards a mix of
0, the meters, the bank's sections) reaches subnormal numbers after seconds and, for a
one-pole glide, stays there for good: each operation on one costs ~100x. Every stage is
driven here with signal and then a minute of zeros through the callback body the live
callback runs, and every state it keeps is checked.
"""

from __future__ import annotations

import numpy as np
import pytest

from aether_rt.audio.callback import callback_body
from aether_rt.control import ControlState, stage_params
from aether_rt.dsp import arena as ar
from aether_rt.dsp import biquad as bq
from aether_rt.dsp.bank import BiquadBank

TINY64 = np.finfo(np.float64).tiny
TINY32 = np.finfo(np.float32).tiny

# What each scenario drives towards 0 in the silence (the test fails if that stage's flush goes).
SCENARIOS = {
    "wet": {},  # the bank's sections, the DC blocker, the meters, the envelope follower
    "bypassed after the signal": {"bypass_after": True},  # the mix glide towards 0
    "dry": {"mix": 0.0},  # the wet path unused; the DC blocker on the dry signal
    "limiting": {"input_gain_db": 24.0},  # the limiter recovering after hard limiting
}


def _subnormal(values: np.ndarray, tiny: float) -> np.ndarray:
    return (values != 0) & (np.abs(values) < tiny)


@pytest.mark.parametrize("rate", [44_100, 96_000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_minute_of_silence_leaves_no_subnormal_state(rng: np.random.Generator, scenario: str, channels: int,
                                                       rate: int) -> None:  # fmt: skip
    setup = dict(SCENARIOS[scenario])
    bypass_after = setup.pop("bypass_after", False)
    state = ControlState(**setup)
    # Q 40 resonances decay slowest; the DC blocker and meters decay over seconds.
    coeffs = bq.peaking_coeffs(np.geomspace(20, 20000, 32), bq.Q_MAX, 24.0, rate)
    bank = BiquadBank(32, channels, coeffs=coeffs, out_channels=channels, in_channels=channels, max_frames=512,
                      envelope_frames=96)  # fmt: skip
    arena = bank.arena
    for slot, value in stage_params(state, rate).items():
        arena.params[slot] = value
    arena.params[ar.P_ENV_ATTACK], arena.params[ar.P_ENV_RELEASE] = 0.01, 1e-4  # the slowest release
    arena.settle_params()
    block = 512
    signal = (0.5 * rng.standard_normal((rate, channels))).astype(np.float32)
    signal += 0.2  # DC for the blocker to remove
    out = np.empty_like(signal)
    for start in range(0, rate, block):
        callback_body(arena.words, arena.f64, arena.f32, signal[start : start + block], out[start : start + block],
                      np.uint64(0), True)  # fmt: skip
    assert np.abs(out).max() > 0.05
    before = arena.post.copy()
    if bypass_after:
        arena.params[ar.P_BYPASS] = 1.0
    silence = np.zeros((block, channels), np.float32)
    y = np.empty_like(silence)
    for _ in range(60 * rate // block):
        callback_body(arena.words, arena.f64, arena.f32, silence, y, np.uint64(0), True)
        assert not np.any(_subnormal(y, TINY32))
    post, states = arena.post, arena.state
    assert not np.any(_subnormal(post, TINY64)), post
    assert not np.any(_subnormal(states, TINY64))
    assert not np.any(_subnormal(arena.envelope, TINY64)) and post[ar.S_ENV] == 0.0
    assert np.all(y == 0.0)
    # The states did move: meters fell, the DC blocker emptied, the glides arrived.
    n_out = arena.layout.outs
    meters = [ar.POST_FIXED + ar.POST_PER_OUT * o + 3 for o in range(n_out)]
    assert np.all(before[meters] > 0) and np.all(post[meters] == 0.0)
    dc_y1 = [ar.POST_FIXED + ar.POST_PER_OUT * o + 1 for o in range(n_out)]
    assert np.all(post[dc_y1] == 0.0)
    limiter = [ar.POST_FIXED + ar.POST_PER_OUT * o + 2 for o in range(n_out)]
    assert np.all(post[limiter] == 1.0)
    expected_mix = 0.0 if bypass_after else state.mix
    assert post[ar.S_MIX] == expected_mix
    if scenario == "limiting":
        assert arena.counter(ar.H_LIMITED_SAMPLES) > 0
