"""Shared fixtures: random sections, and a real JACK server for the audio tests.

Audio tests run against a JACK server with the dummy backend, found through
PortAudio's JACK host API exactly as a user's program finds a sound card. `.ci/run`
starts one for the whole session; run on its own, the ``jack_server`` fixture starts
(and afterwards stops) one itself. A missing ``jackd`` fails those tests: they test
features, so they are never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
from helpers.signals import let_children_hear_ctrl_c

from aether_rt.dsp import biquad as bq

# PortAudio must never start a JACK server behind our back.
os.environ.setdefault("JACK_NO_START_SERVER", "1")
os.environ.setdefault("JACK_NO_AUDIO_RESERVATION", "1")
# The runs tests stop with Ctrl-C must hear it when the suite runs as a background job.
let_children_hear_ctrl_c()

SAMPLE_RATES_HZ = (32_000, 44_100, 48_000, 96_000, 192_000)
JACK_RATE_HZ = 48_000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


def random_sections(
    rng: np.random.Generator,
    n: int,
    sample_rate: float = 48_000.0,
    *,
    q_range: tuple[float, float] = (0.3, 8.0),
    gain_db: float = 15.0,
) -> np.ndarray:
    """``n`` peaking sections with log-uniform frequencies across the audio band."""
    freq_hz = np.exp(rng.uniform(np.log(30.0), np.log(min(18_000.0, 0.45 * sample_rate)), n))
    q = np.exp(rng.uniform(*np.log(q_range), n))
    return bq.peaking_coeffs(freq_hz, q, rng.uniform(-gain_db, gain_db, n), sample_rate)


def _jack_visible() -> bool:
    from aether_rt.audio import devices

    devices.refresh()
    return any(d.hostapi.startswith("JACK") for d in devices.list_devices())


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    """A running JACK server (dummy backend, 48 kHz, 64 frames) visible to PortAudio."""
    if _jack_visible():
        yield
        return
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.fail("audio tests need jackd (Debian: apt-get install jackd2); .ci/run installs it")
    proc = subprocess.Popen(
        [jackd, "--no-realtime", "-d", "dummy", "-r", str(JACK_RATE_HZ), "-p", "64", "-C", "2", "-P", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15.0
        while not _jack_visible():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("could not start a JACK dummy server for the audio tests")
            time.sleep(0.2)
        yield
    finally:
        # PortAudio must let go of the server first: its JACK host API asserts (and
        # aborts the interpreter at exit) if the server vanished under it.
        import sounddevice

        sounddevice._terminate()
        proc.terminate()
        proc.wait(timeout=10)


#: The latent sizes every command, preset, OSC address and the page are tested with.
LATENT_SIZES = (2, 4, 8)


@pytest.fixture(scope="session")
def models_by_latent_size(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """A model folder per latent size: 2 trained by `aether-rt train` here, 4 the shipped one, 8 untrained."""
    from helpers.models import trained_by_cli, untrained

    from aether_rt.models.checkpoint import DEFAULT_MODEL

    root = tmp_path_factory.mktemp("models")
    return {
        2: str(trained_by_cli(2, root / "latent2", root / "cache")),
        4: str(DEFAULT_MODEL.parent),
        8: str(untrained(8, root / "latent8")),
    }
