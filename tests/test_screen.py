"""Folders of impulse responses with other things in them: each bad file skipped with its reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
import soundfile as sf

from aether_rt.data.datasets import load_dataset
from aether_rt.data.screen import screen_ir
from aether_rt.data.synthetic import FAMILIES, family_of, synthetic_ir
from aether_rt.errors import UserError
from aether_rt.sources import demo_phrase


def cabinet(rate_hz: float, frames: int, *, delay: int = 0) -> np.ndarray:
    """A guitar-cabinet-like IR: 90 Hz - 5 kHz band with a 2.5 kHz peak, a few ms long."""
    x = np.zeros(frames)
    x[delay] = 1.0
    x = ss.sosfilt(ss.butter(4, [90.0, 5000.0], "bandpass", fs=rate_hz, output="sos"), x)
    x = ss.lfilter(*ss.iirpeak(2500.0, 3.0, fs=rate_hz), x) + 0.5 * x
    return x / np.max(np.abs(x))


def reverb(rate_hz: float, rt60_s: float, seconds: float, seed: int, *, direct: bool = True) -> np.ndarray:
    """Exponentially decaying noise (a diffuse tail), with or without a direct sound."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    x = np.random.default_rng(seed).standard_normal(t.size) * np.exp(-6.9 * t / rt60_s) * 0.2
    x[0] += 1.0 if direct else 0.0
    return x / np.max(np.abs(x))


def riff(rate_hz: float) -> np.ndarray:
    """Eight plucked notes half a second apart, each 1 dB softer: a phrase that fades out."""
    t = np.arange(int(0.5 * rate_hz)) / rate_hz
    notes = [10 ** (-k / 20) * np.sin(2 * np.pi * 110.0 * 2 ** (k / 12) * t) * np.exp(-13.8 * t) for k in range(8)]
    return 0.5 * np.concatenate(notes)


def _bad_files(folder: Path) -> dict[str, str]:
    """Write every kind of bad file; name -> a word its reason must contain."""
    rng = np.random.default_rng(3)
    cab = cabinet(48_000.0, 600)
    files = {
        "music.wav": (demo_phrase(48_000.0, seconds=12.0), "music"),
        "fading-riff.wav": (riff(48_000.0), "struck again"),
        "noise.wav": (0.3 * rng.standard_normal(48_000), "noise"),
        "hum.wav": (0.5 * np.sin(2 * np.pi * 50.0 * np.arange(48_000) / 48_000), "does not decay"),
        "silence.wav": (np.zeros(48_000), "silent"),
        "few.wav": (rng.standard_normal(10) * 0.1, "too short"),
        "constant.wav": (np.full(9600, 0.25), "DC offset"),
        "step.wav": (np.r_[np.zeros(20_000), np.full(28_000, 0.5)], "DC offset"),
        "offset.wav": (np.r_[cab, np.zeros(20_000)] + 0.02, "DC offset"),
        "clipped.wav": (np.clip(4.0 * reverb(48_000.0, 0.8, 1.0, 1), -1.0, 1.0), "clipped"),
        "clipped-cab.wav": (np.clip(1.3 * cabinet(48_000.0, 2000), -1.0, 1.0), "clipped"),
        "reversed.wav": (reverb(48_000.0, 1.5, 2.0, 2)[::-1], "reversed reverb"),
        "cancelling.wav": (np.stack([reverb(48_000.0, 1.0, 1.0, 4), -reverb(48_000.0, 1.0, 1.0, 4)], 1), "cancel"),
        "floor.wav": (np.r_[cab, np.zeros(47_400)] + 0.02 * rng.standard_normal(48_000), "noise floor"),
    }
    for name, (audio, _) in files.items():
        sf.write(folder / name, audio, 48_000, subtype="PCM_16")
    nan = reverb(48_000.0, 0.5, 0.5, 5)
    nan[100:110] = np.nan
    sf.write(folder / "nan.wav", nan, 48_000, subtype="FLOAT")
    sf.write(folder / "song.flac", np.zeros(61 * 8000), 8000)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    sf.write(folder / "whole.wav", cab, 48_000)
    (folder / "truncated.wav").write_bytes((folder / "whole.wav").read_bytes()[:50])
    (folder / "whole.wav").unlink()
    more = {"nan.wav": "NaN", "song.flac": "too long", "corrupt.wav": "cannot read", "truncated.wav": "too short"}
    return {**{name: word for name, (_, word) in files.items()}, **more}


def _good_files(folder: Path) -> list[str]:
    """Impulse responses of the kinds sound designers bring, in the formats they come in."""
    writes = [
        ("cab-44k-300.wav", cabinet(44_100.0, 300), 44_100, "PCM_16"),
        ("cab-48k-predelay.wav", cabinet(48_000.0, 1024, delay=40), 48_000, "PCM_24"),
        ("cab-96k.wav", cabinet(96_000.0, 2048), 96_000, "PCM_24"),
        ("cab-linear-phase.wav", np.convolve(cabinet(48_000.0, 300), cabinet(48_000.0, 300)[::-1]), 48_000, "FLOAT"),
        ("hall-5s.flac", reverb(48_000.0, 4.0, 5.0, 10), 48_000, "PCM_24"),
        ("hall-cut-short.wav", reverb(44_100.0, 4.0, 1.0, 11), 44_100, "PCM_32"),
        ("plate-no-direct.aiff", reverb(48_000.0, 3.0, 3.0, 12, direct=False), 48_000, "PCM_24"),
        ("quiet-room.wav", 0.01 * reverb(48_000.0, 0.6, 1.0, 13), 48_000, "FLOAT"),
        ("stereo-hall.wav", np.stack([reverb(48_000.0, 2.0, 2.5, s) for s in (14, 15)], 1), 48_000, "FLOAT"),
        ("quad-room.wav", np.stack([reverb(48_000.0, 0.5, 0.7, s) for s in range(16, 20)], 1), 48_000, "PCM_24"),
    ]
    for name, audio, rate, subtype in writes:
        sf.write(folder / name, audio, rate, subtype=subtype)
    return [name for name, *_ in writes]


def test_bad_files_are_skipped_with_their_reason_and_good_ones_kept(tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    good = _good_files(tmp_path)
    data = load_dataset(str(tmp_path))
    assert sorted(Path(n).name for n in data.names) == sorted(good)
    reasons = {Path(name).name: why for name, why in data.rejected}
    assert set(reasons) == set(bad)
    for name, word in bad.items():
        assert word in reasons[name], (name, reasons[name])


def test_every_synthetic_family_passes_the_checks() -> None:
    firsts = {}
    for i in range(400):
        firsts.setdefault(family_of(i, seed=0), i)
    assert set(firsts) == set(FAMILIES)
    for family, i in firsts.items():
        assert screen_ir(synthetic_ir(i, seed=0), 48_000.0) is None, family


@pytest.mark.parametrize("gain_db", [0.0, -60.0])
@pytest.mark.parametrize("rate_hz", [44_100.0, 48_000.0, 96_000.0, 192_000.0])
def test_checks_do_not_depend_on_level_or_rate(rate_hz: float, gain_db: float) -> None:
    g = 10 ** (gain_db / 20)
    assert screen_ir(g * cabinet(rate_hz, int(rate_hz // 100)), rate_hz) is None
    assert screen_ir(g * reverb(rate_hz, 2.0, 1.5, 1), rate_hz) is None
    noise = g * np.random.default_rng(0).standard_normal(int(rate_hz))
    assert "noise" in screen_ir(noise, rate_hz)


def test_a_folder_of_only_bad_files_is_a_user_error_listing_each(tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    with pytest.raises(UserError, match="no usable impulse response") as caught:
        load_dataset(str(tmp_path))
    for name in bad:
        assert name in str(caught.value)


def test_train_on_a_folder_of_only_bad_files_exits_2_with_the_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "irs"
    folder.mkdir()
    bad = _bad_files(folder)
    out = subprocess.run(
        [sys.executable, "-m", "aether_rt", "train", "--data", str(folder), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "no usable impulse response" in out.stderr
    for name, word in bad.items():
        assert f"{name}: " in out.stderr and word in out.stderr
    assert not (tmp_path / "run").exists()
