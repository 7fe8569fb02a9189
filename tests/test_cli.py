"""The command line as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aether_rt.demo import render_demo
from aether_rt.sources import demo_phrase, midi_to_hz


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, JACK_NO_START_SERVER="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_the_installed_command_is_the_same_command_line(tmp_path: Path) -> None:
    # The `aether-rt` script pip writes beside the interpreter (the README's first command runs it).
    script = Path(sys.executable).with_name("aether-rt")
    assert script.is_file(), "install the project (pip install .) to get the aether-rt command"
    ok = subprocess.run([str(script), "inspect", "--z", "0,0,0,0", "--json"], capture_output=True, text=True,
                        timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("freq_hz") == 32
    bad = subprocess.run([str(script), "inspect", "--z", "0,0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "latent space has 4" in bad.stderr and "Traceback" not in bad.stderr


def test_demo_writes_a_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "demo.flac"
    result = _cli("demo", "--out", str(out), "--seconds", "3", "--sample-rate", "44100")
    assert result.returncode == 0, result.stderr
    assert "real time" in result.stdout
    audio, rate = sf.read(out)
    assert rate == 44100 and audio.shape == (3 * 44100,)
    assert 0.05 < np.max(np.abs(audio)) < 1.0
    assert sf.info(out).subtype == "PCM_24"


def test_sounddevices_spelling_of_the_sample_rate_flag_also_works(tmp_path: Path) -> None:
    out = tmp_path / "demo.wav"
    result = _cli("demo", "--out", str(out), "--seconds", "0.5", "--samplerate", "96000")
    assert result.returncode == 0, result.stderr
    assert sf.info(out).samplerate == 96000


def test_the_demo_render_is_deterministic_and_moves_the_filters() -> None:
    source = demo_phrase(48_000, seconds=2.0, seed=3)
    a, b = render_demo(source, 48_000), render_demo(source, 48_000)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.stats.tables_applied > 900  # a control step every 96 frames
    assert not np.allclose(a.audio, source, atol=1e-3)  # the filters did something


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--blocksize", "0"], "block size in frames must be 1..8192"),
        (["demo", "--sample-rate", "8000"], "sample rate in Hz must be 32000..192000"),
        (["demo", "--sample-rate", "fast"], "expected sample rate in Hz"),
        (["demo", "--seconds", "-2"], "a length in seconds must be 0.01..86400"),
        (["demo", "--out", "/no/such/folder/x.wav"], "does not exist"),
        (["demo", "--out", "song.mp9"], "cannot tell the audio format"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_exit_2_with_a_message_and_no_traceback(args: list[str], message: str, tmp_path: Path) -> None:
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert _cli("--version").stdout.startswith("aether-rt ")
    assert "devices" in _cli("--help").stdout


@pytest.mark.audio
def test_devices_lists_the_jack_device(jack_server: None) -> None:
    result = _cli("devices")
    assert result.returncode == 0
    assert "JACK Audio Connection Kit" in result.stdout


def test_demo_phrase_is_tuned_and_normalised() -> None:
    assert midi_to_hz(69) == pytest.approx(440.0)
    phrase = demo_phrase(48_000, seconds=4.0, seed=1)
    assert phrase.dtype == np.float32 and phrase.shape == (4 * 48_000,)
    assert np.max(np.abs(phrase)) == pytest.approx(10 ** (-3 / 20), rel=1e-4)
    np.testing.assert_array_equal(phrase, demo_phrase(48_000, seconds=4.0, seed=1))
    # The opening Em strum: its spectrum peaks at a harmonic of a chord tone.
    segment = phrase[int(0.3 * 48_000) : int(0.8 * 48_000)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size)))
    peak_hz = np.fft.rfftfreq(segment.size, 1 / 48_000)[np.argmax(spectrum)]
    chord_hz = [midi_to_hz(n) for n in (40, 47, 52, 55, 59, 64)]
    assert any(abs(peak_hz / (f * h) - 1) < 0.03 for f in chord_hz for h in range(1, 6)), peak_hz


# -- device mistakes come before anything slow ---------------------------------------------


@pytest.mark.audio
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "no-such-card"], "no output device matches 'no-such-card'"),
        (["--input", "no-such-card"], "no input device matches 'no-such-card'"),
        (["--output", "97"], "no audio device with index 97"),
        (["--sample-rate", "44100"], "cannot run 2 channel(s) at 44100 Hz"),
        (["--input", "demo", "--sample-rate", "96000"], "output device 0 ('system') cannot run 2 channel(s)"),
        (["--channels", "9"], "has 2 output channel(s), 9 needed"),
        (["--in-channels", "5"], "has 2 input channel(s), 5 needed"),
    ],
)
def test_device_mistakes_exit_2_before_the_model_is_loaded(
    jack_server: None, args: list[str], message: str, tmp_path: Path
) -> None:
    # The model named does not exist: had the run loaded it before checking the devices,
    # the error would be about the model.
    missing_model = str(tmp_path / "no-model")
    started = time.monotonic()
    result = _cli("run", "--no-osc", "--duration", "1", "--model", missing_model, *args)
    print(f"device mistake {args}: exit {result.returncode} after {time.monotonic() - started:.2f} s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert "JACK Audio Connection Kit" in result.stderr  # what there is, listed
    assert "`aether-rt devices`" in result.stderr
    assert "no-model" not in result.stderr
    # The same run with a usable device gets as far as the model.
    fine = _cli("run", "--no-osc", "--duration", "1", "--model", missing_model)
    assert fine.returncode == 2 and "no-model" in fine.stderr and "does not exist" in fine.stderr


def test_with_no_audio_device_at_all_run_says_so(tmp_path: Path) -> None:
    # A JACK server of a name nobody runs: on a machine without sound cards (the CI's
    # containers) PortAudio then sees no device at all.
    env = {"JACK_DEFAULT_SERVER": f"aether-absent-{os.getpid()}"}
    listing = _cli("devices", env=env)
    if "no audio devices found" not in listing.stdout + listing.stderr:
        pytest.skip("this machine has sound cards: PortAudio cannot be shown an empty device list honestly")
    result = _cli("run", "--no-osc", "--duration", "1", "--model", str(tmp_path / "no-model"), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no audio output device found" in result.stderr and "aether-rt devices" in result.stderr
    assert "no-model" not in result.stderr
