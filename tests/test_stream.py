"""The bank live on a JACK dummy server, through PortAudio, from both callback kinds.

A C JACK client (jack_metro, shipped with jackd2) plays a click track into the
stream's input ports. The stream records every input and output frame into its tap;
the recorded output must equal an offline run of the same kernel over the recorded
input, and frames must arrive at the server's 48 kHz.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import jack
import numpy as np
import pytest
from conftest import JACK_RATE_HZ, random_sections

from aether_rt.audio import devices
from aether_rt.audio.stream import BankStream
from aether_rt.dsp import arena as ar
from aether_rt.dsp.bank import BiquadBank
from aether_rt.errors import UserError

RUN_S = 5.0


def _jack_ports() -> set[str]:
    return set(subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.audio
@pytest.mark.parametrize("callback", ["cfunc", "python"])
def test_stream_runs_the_bank_live_and_matches_offline(
    callback: str, jack_server: None, rng: np.random.Generator
) -> None:
    assert shutil.which("jack_metro"), "jack_metro (package jackd2) plays the test input"
    coeffs = random_sections(rng, 32)
    bank = BiquadBank(32, 2, coeffs=coeffs, tap_frames=int(JACK_RATE_HZ * (RUN_S + 3)))
    before = _jack_ports()
    server = jack.Client("aether-test-clock", no_start_server=True)
    with BankStream(bank, sample_rate_hz=JACK_RATE_HZ, blocksize=64, callback=callback) as stream:
        ours = sorted(p for p in _jack_ports() - before if ":in_" in p)
        assert len(ours) == 2, f"expected the stream's two input ports, found {ours}"
        name = f"aether-test-{callback}"
        metro = subprocess.Popen(
            ["jack_metro", "-n", name, "-b", "480", "-f", "880", "-A", "0.5", "-D", "30"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while f"{name}:480_bpm" not in _jack_ports():
                assert time.monotonic() < deadline, "jack_metro did not start"
                time.sleep(0.05)
            for port in ours:
                subprocess.run(["jack_connect", f"{name}:480_bpm", port], check=True)
            time.sleep(0.5)
            # The server's own frame clock beside the stream's: a dummy server on a busy
            # shared machine runs slower than real time and skips cycles (xruns).
            frames0, flags0, jack0 = stream.stats().frames, stream.stats().status_flags, server.frame_time
            time.sleep(RUN_S)
            frames1, flags1, jack1 = stream.stats().frames, stream.stats().status_flags, server.frame_time
        finally:
            metro.terminate()
            metro.wait(timeout=10)
    server.close()
    stats = stream.stats()  # after close: no callback can run between this read and the tap's
    ran, served, flagged = frames1 - frames0, jack1 - jack0, (flags1 - flags0) * 64
    print(f"{callback}: {ran} frames run of the server's {served} ({flagged} in flagged cycles), "
          f"{stats.callbacks} callbacks, {stats.status_flags} xrun flags")  # fmt: skip
    # Every cycle the server ran, the stream ran, but for those PortAudio flagged (xruns).
    assert served - flagged - 0.01 * served <= ran <= served + 0.01 * served
    assert stats.callbacks * 64 == stats.frames
    tap = ar.tap_frames(bank.arena)
    assert tap.shape[0] == stats.frames  # the tap held the whole run
    x, y = np.ascontiguousarray(tap[:, :2]), tap[:, 2:]
    assert np.sqrt(np.mean(x**2)) > 0.01, "the click track did not reach the stream's input"
    np.testing.assert_array_equal(y, BiquadBank(32, 2, coeffs=coeffs).process(x))


@pytest.mark.audio
def test_bad_devices_and_settings_give_user_errors(jack_server: None) -> None:
    bank = BiquadBank(4, 2)
    with pytest.raises(UserError, match="no input device matches 'no-such-card'") as err:
        BankStream(bank, input_device="no-such-card")
    assert "JACK" in str(err.value)  # it lists what exists
    with pytest.raises(UserError, match="no audio device with index 99"):
        BankStream(bank, output_device=99)
    with pytest.raises(UserError, match="3 needed"):
        BankStream(BiquadBank(4, 3))  # the dummy server has 2 channels
    with pytest.raises(UserError, match="sample rate 8000"):
        BankStream(bank, sample_rate_hz=8000)
    with pytest.raises(UserError, match="callback must be one of"):
        BankStream(bank, callback="fortran")  # type: ignore[arg-type]


@pytest.mark.audio
def test_devices_are_found_by_name_and_index(jack_server: None) -> None:
    found = devices.list_devices()
    jack = next(d for d in found if d.hostapi.startswith("JACK"))
    assert devices.resolve(jack.name.upper(), "output") == jack.index
    assert devices.resolve(str(jack.index), "input") == jack.index
    assert devices.resolve(None, "output") in {d.index for d in found}
