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


# -- the envelope moving z: offline, live, presets --------------------------------------


@pytest.fixture(scope="module")
def model():
    import aether_rt

    return aether_rt.load_model()


def _auto_wah(latent_dim: int = 4):
    from aether_rt.control import ControlState
    from aether_rt.modulation import Modulation

    mod = Modulation.for_latent_dim(latent_dim, mode="static", center=(-1.4, -1.4) + (0.0,) * (latent_dim - 2),
                                    envelope=(2.8, 2.8) + (0.0,) * (latent_dim - 2), envelope_attack_ms=8.0,
                                    envelope_release_ms=250.0, envelope_floor_db=-42.0)  # fmt: skip
    return ControlState(modulation=mod)


@pytest.mark.parametrize("block", [64, 512])
def test_a_render_follows_the_level_as_defined(model, rng: np.random.Generator, block: int) -> None:
    """Quiet, loud, quiet: the render equals the bank driven by tables for the z the
    definition gives (follower -> level in dB between the floor and full scale -> z along
    the amounts), each tick's z from the snapshot the fixed delay earlier."""
    from aether_rt.audio.callback import render_segment
    from aether_rt.control import TableDesigner, stage_params
    from aether_rt.engine import EngineSettings, lookahead_for
    from aether_rt.render import render

    x = _quiet_loud_quiet(rng, 1)
    state = _auto_wah()
    mod = state.modulation
    got = render(x, FS, model, state, blocksize=block).audio
    # The definition, written out here.
    cf = 96
    delay = lookahead_for(block, cf, EngineSettings.lookahead_ticks) + 1
    follower = _reference(x, _coefficient(8.0), _coefficient(250.0))[::cf]
    n_ticks = follower.size
    snap = np.array([follower[k - delay] if k >= delay else 0.0 for k in range(n_ticks)])
    level = np.clip((20 * np.log10(np.maximum(snap, 1e-12)) + 42.0) / 42.0, 0.0, 1.0)
    z = np.clip(np.asarray(mod.center) + np.asarray(mod.envelope) * level[:, None], -2.0, 2.0)
    assert level.max() > 0.8 and level[n_ticks // 3 - 5] < 0.3  # the loud part moves z a long way
    tables = TableDesigner(model, FS).batch(z)
    bank = BiquadBank(32, 1, out_channels=1, in_channels=1, max_frames=block, smoothing_frames=cf, ring_size=16)
    for slot, value in stage_params(state, FS).items():
        bank.arena.params[slot] = value
    bank.arena.settle_params()
    want = np.empty_like(x)
    a = bank.arena
    render_segment(a.words, a.f64, a.f32, x, want, tables, 0, cf, block, -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # and the filter did follow: the loud part's spectrum is not the quiet part's
    assert not np.allclose(tables[n_ticks // 2], tables[5], atol=1e-3)


def test_the_shipped_envelope_preset_is_a_latent_auto_wah(model) -> None:
    from pathlib import Path

    from aether_rt.preset import load_preset_file

    root = Path(__file__).resolve().parent.parent / "presets"
    for dims in (2, 4, 8):
        mod = load_preset_file(root / "envelope.yaml", dims).state.modulation
        assert mod.envelope is not None and len(mod.envelope) == dims
        fast = set(mod.fast_dims)
        assert all((v > 0) == (d in fast) for d, v in enumerate(mod.envelope))
        # Quiet playing sits at one end of the fast pair, full scale moves it to the other.
        assert all(mod.center[d] + mod.envelope[d] > 0 > mod.center[d] for d in fast)
