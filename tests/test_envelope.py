"""The input's envelope follower: its definition, live (in the callback) and offline alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aether_rt.audio.callback import callback_body
from aether_rt.dsp import _stages
from aether_rt.dsp import arena as ar
from aether_rt.dsp.bank import BiquadBank

FS = 48_000
EVERY = 96


def _coefficient(ms: float) -> float:
    """A one-pole's per-frame coefficient for a time constant (the textbook form)."""
    return 1.0 - math.exp(-1.0 / (ms * 1e-3 * FS))


def _reference(x: np.ndarray, attack: float, release: float) -> np.ndarray:
    """The follower written out from its definition: per frame, the peak over channels;
    one pole towards it, the attack coefficient while it rises above the value, else the
    release one. Returns the value before each frame."""
    env, out = 0.0, np.empty(x.shape[0])
    for n in range(x.shape[0]):
        out[n] = env
        level = float(np.max(np.abs(x[n].astype(np.float64))))
        a = attack if level > env else release
        env = env + a * (level - env)
        if abs(env) < 1e-30:
            env = 0.0
    return out


def _quiet_loud_quiet(rng: np.random.Generator, channels: int) -> np.ndarray:
    n = FS
    gain = np.full(n, 0.01)
    gain[n // 3 : 2 * n // 3] = 0.5
    return (gain[:, None] * rng.uniform(-1, 1, (n, channels))).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("block", [32, 100, 2048])
def test_the_live_follower_keeps_its_definition_at_every_tick_in_any_blocks(
    rng: np.random.Generator, block: int, channels: int
) -> None:
    x = _quiet_loud_quiet(rng, channels)
    attack, release = _coefficient(5.0), _coefficient(120.0)
    bank = BiquadBank(4, channels, max_frames=2048, envelope_frames=EVERY)
    arena = bank.arena
    arena.params[ar.P_ENV_ATTACK], arena.params[ar.P_ENV_RELEASE] = attack, release
    y = np.empty_like(x)
    written = []
    for start in range(0, x.shape[0], block):
        callback_body(arena.words, arena.f64, arena.f32, x[start : start + block], y[start : start + block],
                      np.uint64(0), True)  # fmt: skip
        written.append(arena.counter(ar.H_ENV_WRITTEN))
    ticks = -(-x.shape[0] // EVERY)
    assert written[-1] == ticks
    live = arena.envelope[np.arange(ticks) % ar.ENV_CAPACITY]
    expected = _reference(x, attack, release)[::EVERY]
    np.testing.assert_allclose(live, expected, rtol=1e-12, atol=0)
    # It follows the level: ~0.01 before, near 0.5 in the loud part, back down after.
    third = ticks // 3
    assert live[third - 5] < 0.02 and live[2 * third - 5] > 0.4 and live[-1] < 0.05
    # The offline kernel gives the very same values.
    offline = np.empty(ticks + 3)
    _stages.envelope_snapshots(x, EVERY, attack, release, offline)
    np.testing.assert_array_equal(offline[:ticks], live)


def test_offline_snapshots_past_the_end_hold_the_last_value(rng: np.random.Generator) -> None:
    x = (0.3 * rng.standard_normal((1000, 1))).astype(np.float32)
    out = np.full(20, np.nan)
    _stages.envelope_snapshots(x, EVERY, 0.5, 0.01, out)
    ticks = -(-1000 // EVERY)
    ref = _reference(x, 0.5, 0.01)
    np.testing.assert_allclose(out[:ticks], ref[::EVERY], rtol=1e-12)
    assert np.all(np.isfinite(out)) and np.all(out[ticks:] > 0)


def test_the_follower_is_off_without_snapshots(rng: np.random.Generator) -> None:
    bank = BiquadBank(2, 1, max_frames=256)
    arena = bank.arena
    x = (0.5 * rng.standard_normal((256, 1))).astype(np.float32)
    callback_body(arena.words, arena.f64, arena.f32, x, np.empty_like(x), np.uint64(0), True)
    assert arena.counter(ar.H_ENV_WRITTEN) == 0 and arena.post[ar.S_ENV] == 0.0
