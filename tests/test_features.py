"""The IR feature against SciPy's Welch estimate and known colourations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

from aether_rt.dsp import biquad as bq
from aether_rt.features import DEFAULT_SPEC, FeatureSpec, feature, ir_feature, prepare_ir, raw_feature, welch_power


def test_welch_power_equals_scipy_welch(rng: np.random.Generator) -> None:
    ir = rng.standard_normal(20_000) * np.exp(-np.arange(20_000) / 4000)
    padded = np.concatenate([np.zeros(512), ir, np.zeros(512)])
    _, ref = ss.welch(padded, nperseg=1024, noverlap=512, window="hann", scaling="spectrum", detrend=False)
    ours = welch_power(ir)
    # Same estimate up to SciPy's one-sided scaling of interior bins and window normalisation.
    ratio = ours[1:-1] / ref[1:-1]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_feature_of_a_known_filter_is_its_response() -> None:
    """A +9 dB, Q 1 peak at 2 kHz: its impulse response's feature is that bump."""
    coeffs = bq.peaking_coeffs([2000.0], 1.0, 9.0, 48_000.0)
    impulse = np.zeros(4096)
    impulse[0] = 1.0
    ir = ss.sosfilt(bq.to_sos(coeffs), impulse)
    f = feature(prepare_ir(ir, 48_000.0))
    freqs = DEFAULT_SPEC.bin_freqs_hz()
    expected = bq.cascade_response_db(coeffs, freqs, 48_000.0)
    band = (freqs >= DEFAULT_SPEC.norm_band_hz[0]) & (freqs <= DEFAULT_SPEC.norm_band_hz[1])
    expected = expected - expected[band].mean()
    interior = (freqs > 300) & (freqs < 15_000)
    # The bump survives 1/3-octave smoothing to within a fraction of a dB.
    assert np.max(np.abs(f[interior] - expected[interior])) < 0.6
    assert freqs[np.argmax(f)] == pytest.approx(2000.0, rel=0.1)


def test_feature_ignores_level_channels_and_sample_rate(rng: np.random.Generator) -> None:
    ir = rng.standard_normal(30_000) * np.exp(-np.arange(30_000) / 5000)
    base = ir_feature(ir, 48_000.0)
    np.testing.assert_allclose(ir_feature(0.01 * ir, 48_000.0), base, atol=1e-4)
    stereo = np.stack([ir, ir], axis=1)
    np.testing.assert_allclose(ir_feature(stereo, 48_000.0), base, atol=1e-4)
    resampled = ss.resample_poly(ir, 147, 160)  # to 44.1 kHz
    at_44k = ir_feature(resampled, 44_100.0)
    interior = (DEFAULT_SPEC.bin_freqs_hz() > 100) & (DEFAULT_SPEC.bin_freqs_hz() < 20_000)
    assert np.sqrt(np.mean((at_44k - base)[interior] ** 2)) < 0.5


def test_smoothing_removes_fine_structure(rng: np.random.Generator) -> None:
    ir = np.zeros(20_000)
    ir[0], ir[96] = 1.0, 0.9  # a 2 ms echo: a comb with 500 Hz spacing, +-19 dB
    raw, smooth = raw_feature(prepare_ir(ir, 48e3)), feature(prepare_ir(ir, 48e3))
    interior = slice(40, 400)
    assert np.std(raw[interior]) > 4.0
    assert np.std(smooth[interior]) < np.std(raw[interior]) / 2


def test_feature_is_normalised_and_clipped(rng: np.random.Generator) -> None:
    ir = rng.standard_normal(10_000) * np.exp(-np.arange(10_000) / 2000)
    spec = FeatureSpec(clip_db=(-3.0, 3.0))
    f = feature(prepare_ir(ir, 48e3, spec), spec)
    freqs = spec.bin_freqs_hz()
    band = (freqs >= 200) & (freqs <= 8000)
    assert f.shape == (513,) and f.dtype == np.float32
    assert abs(float(np.mean(np.clip(f[band], -3, 3)))) < 0.5
    assert f.min() >= -3.0 and f.max() <= 3.0


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(100), "silent"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.zeros((0,)), "frames"),
        (np.ones((2, 2, 2)), "frames"),
    ],
)
def test_unusable_irs_are_refused(audio: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_ir(audio, 48_000.0)


def test_spec_round_trips_through_json_form() -> None:
    spec = FeatureSpec(smoothing_octaves=0.25, clip_db=(-30.0, 10.0))
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
