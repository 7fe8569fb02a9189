"""Modulation: z as a pure function of the sample clock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether_rt.modulation import MAX_RATE_HZ, Modulation, latent_at

T = np.arange(0, 40.0, 0.01)


def test_spiral_circles_the_centre_on_the_fast_pair() -> None:
    mod = Modulation(mode="spiral", center=(0.3, -0.2, 0.0, 0.0), depth=(0.7, 0.7, 0.5, 0.5), rate_fast_hz=2.0)
    z = latent_at(mod, T)
    radius = np.hypot(z[:, 0] - 0.3, z[:, 1] + 0.2)
    np.testing.assert_allclose(radius, 0.7, atol=1e-12)
    # angle advances 2 pi * 2 Hz per second
    angle = np.unwrap(np.arctan2(z[:, 1] + 0.2, z[:, 0] - 0.3))
    np.testing.assert_allclose(np.diff(angle), 2 * np.pi * 2.0 * 0.01, atol=1e-9)


def test_spiral_slow_dims_move_slowly_and_differently() -> None:
    mod = Modulation(mode="spiral", rate_fast_hz=5.0, rate_slow_hz=0.05)
    z = latent_at(mod, T)
    slow_speed = np.abs(np.diff(z[:, 2:], axis=0)).max() / 0.01
    fast_speed = np.abs(np.diff(z[:, :2], axis=0)).max() / 0.01
    assert slow_speed <= 2 * np.pi * 0.05 * 0.8 + 1e-9  # depth 0.8 at 0.05 Hz
    assert fast_speed > 20 * slow_speed
    assert np.abs(z[:, 2] - z[:, 3]).max() > 0.3  # not in lockstep
    assert np.ptp(z[:, 2]) > 1.0  # but they do move over 40 s


def test_swapping_fast_dims_makes_z2_z3_spatial() -> None:
    mod = Modulation(mode="spiral", fast_dims=(2, 3), rate_fast_hz=3.0, depth=(0.5, 0.5, 1.0, 1.0))
    z = latent_at(mod, T)
    np.testing.assert_allclose(np.hypot(z[:, 2], z[:, 3]), 1.0, atol=1e-12)
    assert np.abs(np.diff(z[:, 0])).max() < np.abs(np.diff(z[:, 2])).max() / 10


def test_static_and_manual_hold_the_centre() -> None:
    for mode in ("static", "manual"):
        z = latent_at(Modulation(mode=mode, center=(1.0, -1.5, 0.5, 0.0)), T)
        np.testing.assert_array_equal(z, np.tile([1.0, -1.5, 0.5, 0.0], (T.size, 1)))


def test_drift_is_smooth_bounded_seeded_and_different_per_dim() -> None:
    mod = Modulation(mode="drift", depth=(1.0,) * 4, rate_slow_hz=0.1, seed=3)
    z = latent_at(mod, np.arange(0, 200.0, 0.01))
    assert np.abs(z).max() <= 1.0 + 1e-12
    assert (
        np.abs(np.diff(z, axis=0)).max() < 2 * np.pi * 0.1 * 2.0 * 0.01
    )  # no jumps: the fastest component is < 2x the rate
    np.testing.assert_array_equal(z, latent_at(Modulation(mode="drift", depth=(1.0,) * 4, rate_slow_hz=0.1, seed=3),
                                               np.arange(0, 200.0, 0.01)))  # fmt: skip
    other = latent_at(Modulation(mode="drift", depth=(1.0,) * 4, rate_slow_hz=0.1, seed=4), np.arange(0, 200.0, 0.01))
    assert np.abs(other - z).max() > 0.5
    corr = np.corrcoef(z.T)
    assert np.abs(corr[np.triu_indices(4, 1)]).max() < 0.9
    assert np.ptp(z, axis=0).min() > 0.8  # every dim wanders


def test_sync_converts_beats_per_cycle_to_hz() -> None:
    mod = Modulation(rate_fast_hz=1.0, rate_slow_hz=16.0, sync=True, tempo_bpm=120.0)
    assert mod.rates_hz() == pytest.approx((2.0, 0.125))
    # one cycle per beat at 120 BPM: back where it started after 0.5 s
    np.testing.assert_allclose(latent_at(mod, 0.5)[:2], latent_at(mod, 0.0)[:2], atol=1e-12)


def test_phase_reset_restarts_every_lfo() -> None:
    mod = Modulation(rate_fast_hz=1.3, rate_slow_hz=0.2)
    reset = mod.with_phase_reset(7.25)
    np.testing.assert_allclose(latent_at(reset, 7.25 + T), latent_at(mod, T), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    center=st.lists(st.floats(-10, 10), min_size=4, max_size=4),
    depth=st.lists(st.floats(0, 10), min_size=4, max_size=4),
    rate=st.floats(0, MAX_RATE_HZ),
    bound=st.floats(0.1, 10),
    mode=st.sampled_from(["spiral", "drift", "static", "manual"]),
    t=st.floats(-1e6, 1e6),
)
def test_z_never_leaves_the_bound(center, depth, rate, bound, mode, t) -> None:
    mod = Modulation(mode=mode, center=tuple(center), depth=tuple(depth), rate_fast_hz=rate, rate_slow_hz=rate,
                     bound=bound)  # fmt: skip
    z = latent_at(mod, t)
    assert np.all(np.isfinite(z)) and np.abs(z).max() <= bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "wobble"}, "mode must be one of"),
        ({"center": (0.0, 0.0)}, "one value per latent dim"),
        ({"center": (float("nan"), 0.0, 0.0, 0.0)}, "finite"),
        ({"depth": (-1.0, 1.0, 1.0, 1.0)}, "depth must be >= 0"),
        ({"fast_dims": (1, 1)}, "two different dims"),
        ({"fast_dims": (0, 4)}, "two different dims"),
        ({"rate_fast_hz": 50.0}, "rate_fast_hz must be in"),
        ({"rate_slow_hz": float("inf")}, "rate_slow_hz must be finite"),
        ({"rate_fast_hz": 1000.0, "sync": True}, "beats per cycle"),
        ({"tempo_bpm": 5.0}, "tempo_bpm"),
        ({"bound": 0.0}, "bound must be"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Modulation(**kwargs)


def test_a_crossfade_is_continuous_and_lands_on_the_new_motion() -> None:
    old = Modulation(mode="spiral", rate_fast_hz=3.0)
    new = Modulation(mode="static", center=(1.0, -1.0, 0.5, 0.0))
    mod = old.morphed_to(new, 10.0, 0.5)
    t = np.linspace(9.0, 12.0, 30_001)
    z = latent_at(mod, t)
    np.testing.assert_allclose(z[t < 10.0], latent_at(old, t[t < 10.0]))  # before: the old motion
    np.testing.assert_allclose(z[t >= 10.5], np.broadcast_to(new.center, z[t >= 10.5].shape))  # after: the new
    # Continuous: no step bigger than the motions' own speed allows at this resolution.
    assert np.max(np.abs(np.diff(z, axis=0))) < 0.01


def test_a_crossfade_started_during_another_starts_where_z_is() -> None:
    a = Modulation(mode="spiral", rate_fast_hz=5.0)
    b = Modulation(mode="static", center=(2.0, 2.0, 2.0, 2.0))
    c = Modulation(mode="static", center=(-2.0, 0.0, 0.0, 0.0))
    first = a.morphed_to(b, 1.0, 1.0)
    second = first.morphed_to(c, 1.4, 1.0)  # mid-way through the first
    np.testing.assert_allclose(latent_at(second, 1.4), latent_at(first, 1.4), atol=1e-12)
    assert second.morph_from is not None and second.morph_from.morph_from is None  # never nested
    np.testing.assert_allclose(latent_at(second, 2.5), c.center)


def test_retimed_rates_keep_z_and_change_the_speed() -> None:
    mod = Modulation(mode="drift", rate_slow_hz=0.3, slow_ratio=(1.0, 2.0, 0.5, 1.0))
    t = 987.654
    faster = mod.retimed(t, rate_slow_hz=0.9)
    np.testing.assert_allclose(latent_at(faster, t), latent_at(mod, t), atol=1e-9)
    dz_old = np.abs(latent_at(mod, t + 1e-6) - latent_at(mod, t))
    dz_new = np.abs(latent_at(faster, t + 1e-6) - latent_at(faster, t))
    np.testing.assert_allclose(dz_new, 3.0 * dz_old, rtol=0.02)


def test_slow_ratio_gives_each_slow_dim_its_rate() -> None:
    mod = Modulation(mode="spiral", rate_slow_hz=0.5, slow_ratio=(1.0, 1.0, 1.0, 4.0), depth=(0, 0, 1, 1))
    t = np.arange(0, 8, 1 / 200)
    z = latent_at(mod, t)
    crossings = [int(np.sum(np.diff(np.sign(z[:, d])) != 0)) for d in (2, 3)]
    assert crossings[0] in (7, 8, 9) and crossings[1] in (31, 32, 33)  # 0.5 Hz vs 2 Hz over 8 s: 8 vs 32
    with pytest.raises(ValueError, match="slow_ratio needs one value per latent dim"):
        Modulation(slow_ratio=(1.0, 1.0))


def test_a_crossfading_motion_survives_its_json_form() -> None:
    mod = Modulation(mode="drift", seed=4).morphed_to(Modulation(mode="spiral", slow_ratio=(1, 2, 3, 4)), 2.0, 1.0)
    again = Modulation.from_dict(mod.to_dict())
    t = np.linspace(0, 5, 501)
    np.testing.assert_array_equal(latent_at(again, t), latent_at(mod, t))
