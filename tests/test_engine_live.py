"""The live engine on the JACK dummy server: real stream, real threads, real clock."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jack
import numpy as np
import pytest
import soundfile as sf
from helpers.hog import hog as spin_python

import aether_rt
from aether_rt.control import ControlState, StateBox
from aether_rt.engine import Engine, EngineSettings
from aether_rt.modulation import MAX_RATE_HZ, Modulation
from aether_rt.record import Session
from aether_rt.render import render
from aether_rt.sources import demo_phrase

TESTS = Path(__file__).resolve().parent
FS = 48_000
pytestmark = pytest.mark.audio
# The dummy server's own dropouts vary from one 10 s window to the next on a shared
# machine (a no-op client alone: 0 to ~50 flags). What these tests catch is the engine
# waiting on Python: that costs thousands of flags in 10 s (the Python callback beside
# a hog thread: ~3600).
SERVER_NOISE_FLAGS = 40
#: Waiting on Python costs thousands of flags in 10 s; a busy shared VM alone has brought
#: a hundred to a client whose every callback was fast.
WAITING_FLAGS = 1000


def assert_engine_kept_time(stats: dict, reference: int) -> None:
    """The engine adds no xruns: judged by its own callback times (at most 0.1 % over half the
    period), and by the server's flags against a no-op client's, or, when the server was that
    much busier during the run, below what waiting on Python costs."""
    slow = stats["slow_callbacks"]
    print(f"{slow} of {stats['callbacks']} callbacks over half the period")
    assert slow <= max(2, stats["callbacks"] // 1000)
    assert stats["xruns"] <= 3 * reference + SERVER_NOISE_FLAGS or stats["xruns"] < WAITING_FLAGS


@pytest.fixture(scope="module")
def model():
    return aether_rt.load_model()


def _spiral(rate_fast: float = MAX_RATE_HZ) -> ControlState:
    return ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=rate_fast, rate_slow_hz=0.5))


def _noop_flags(seconds: float, blocksize: int) -> int:
    """Status flags a no-op client (own process, same GIL-free callback) sees in ``seconds``.

    It runs alone, just before the engine: JACK reports an xrun to every client of the
    graph, so a reference running beside the engine would also count the engine's.
    """
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    done = subprocess.run(
        [sys.executable, "-m", "helpers.noop_client", str(seconds), str(blocksize)],
        capture_output=True, text=True, env=env, cwd=TESTS, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])["status_flags"]


def _run(model, seconds: float, *, blocksize: int = 64, callback: str = "cfunc", state: ControlState | None = None,
         record_dir: Path | None = None, hog: bool = False) -> dict:  # fmt: skip
    source = demo_phrase(FS, seconds=12.0)[:, None]
    engine = Engine(
        EngineSettings(sample_rate_hz=FS, blocksize=blocksize, callback=callback), model, StateBox(state or _spiral()),
        source=source, loop=True, record_dir=record_dir,
    )  # fmt: skip
    stop = threading.Event()
    hog_thread = threading.Thread(target=spin_python, args=(stop,), daemon=True)
    if hog:
        hog_thread.start()
    try:
        engine.run(seconds)
    finally:
        stop.set()
    return {**engine.stats(), "engine": engine}


@pytest.mark.parametrize("blocksize", [64, 128])
def test_engine_adds_no_xruns_over_a_noop_client(model, blocksize: int, jack_server: None) -> None:
    reference = _noop_flags(10.0, blocksize)
    stats = _run(model, 10.0, blocksize=blocksize)
    print(
        f"block {blocksize}: engine {stats['xruns']} status flags, no-op client {reference}; "
        f"callback p99 {stats['callback_us']['p99']:.1f} us, control {stats['control_updates_per_s']:.0f}/s"
    )
    assert_engine_kept_time(stats, reference)
    # Up to one table per control tick (500 Hz) and at most one per callback (the clock moves a
    # block at a time); late wake-ups on a busy machine skip some (benchmarks/bench_engine.py measures).
    assert stats["control_updates_per_s"] > 0.5 * min(500.0, FS / blocksize)
    assert stats["nonfinite_output"] == 0 and stats["nan_resets"] == 0


def test_live_output_moves_and_replays_offline(model, tmp_path: Path, jack_server: None) -> None:
    stats = _run(model, 8.0, state=_spiral(rate_fast=4.0), record_dir=tmp_path)
    live_in, rate = sf.read(tmp_path / "input.wav", dtype="float32", always_2d=True)
    live_out, _ = sf.read(tmp_path / "output.wav", dtype="float32", always_2d=True)
    assert rate == FS and live_in.shape[0] == live_out.shape[0] == stats["frames"]
    assert np.sqrt(np.mean(live_out**2)) > 0.01  # not silent

    # The spectrum moves: the output/input energy ratio per band swings over time
    # in spiral mode (a static filter would keep it constant).
    frame = 4800
    n = live_in.shape[0] // frame
    bands = np.geomspace(100, 16_000, 9)
    freqs = np.fft.rfftfreq(frame, 1 / FS)

    def band_db(x: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(x[: n * frame, 0].reshape(n, frame) * np.hanning(frame), axis=1)) ** 2
        return np.stack([10 * np.log10(spec[:, (freqs >= lo) & (freqs < hi)].sum(1) + 1e-12)
                         for lo, hi in itertools.pairwise(bands)], 1)  # fmt: skip

    transfer = band_db(live_out) - band_db(live_in)
    loud = band_db(live_in) > band_db(live_in).max() - 50
    swing = np.nanstd(np.where(loud, transfer, np.nan), axis=0)
    print(f"per-band gain swing over time (dB): {np.round(swing, 2)}")
    assert np.nanmedian(swing) > 1.0

    # Re-render the recorded performance offline: the same samples.
    session = Session.load(tmp_path)
    # Most control ticks reached the audio (a late wake-up of the control thread skips one).
    assert len(session.adoptions) > 0.8 * stats["frames"] / session.control_frames
    again = render(live_in, FS, model, _spiral(rate_fast=4.0), out_channels=live_out.shape[1], session=session)
    err = again.audio - live_out
    snr_db = 10 * np.log10(np.sum(live_out**2) / max(np.sum(err**2), 1e-30))
    print(f"live vs re-render: {snr_db:.1f} dB SNR")
    assert snr_db >= 40.0


def test_a_python_hog_thread_hurts_only_the_python_callback(model, jack_server: None) -> None:
    reference = _noop_flags(10.0, 64)
    cfunc = _run(model, 10.0, hog=True)
    python = _run(model, 10.0, callback="python", hog=True)
    print(f"with a pure-Python hog thread, 10 s each: cfunc {cfunc['xruns']} status flags, "
          f"python callback {python['xruns']}; no-op client alone {reference}")  # fmt: skip
    assert_engine_kept_time(cfunc, reference)
    assert python["xruns"] > cfunc["xruns"] + 10


def test_control_thread_failures_are_survived(model, jack_server: None, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(
        EngineSettings(sample_rate_hz=FS),
        model,
        StateBox(_spiral()),
        source=demo_phrase(FS, seconds=3.0)[:, None],
        loop=True,
    )
    real_step = engine.controller.step
    calls = {"n": 0}

    def flaky(frame: int, **kw: object) -> bool:
        calls["n"] += 1
        if calls["n"] == 50:
            raise RuntimeError("injected failure")
        if calls["n"] == 400:
            time.sleep(1.0)  # a stall
        return real_step(frame, **kw)

    engine.controller.step = flaky  # type: ignore[method-assign]
    server = jack.Client("aether-test-clock", no_start_server=True)
    try:
        with caplog.at_level("WARNING", logger="aether_rt.engine"):
            served = server.frame_time
            engine.run(6.0)
            served = server.frame_time - served
    finally:
        server.close()
    stats = engine.stats()
    assert stats["control_restarts"] >= 2  # once for the death, once for the stall
    # Audio never stopped: the engine ran nearly every frame the server did (a busy dummy server
    # runs slower than real time and skips some cycles; a 1 s stop would leave 5/6 of them).
    assert stats["frames"] >= 0.9 * served
    warnings = [r for r in caplog.records if "control thread" in r.getMessage()]
    assert len(warnings) == 1 and "injected failure" in warnings[0].getMessage()


# --- the command line, as a user runs it --------------------------------------------


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JACK_NO_START_SERVER": "1", **(env or {})})  # fmt: skip


def test_run_writes_its_figures(tmp_path: Path, jack_server: None) -> None:
    stats = tmp_path / "stats.json"
    done = _cli("run", "--input", "demo", "--duration", "3", "--mode", "drift", "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    figures = json.loads(stats.read_text())
    for key in ("xruns", "callbacks", "callback_us", "control_updates_per_s", "nan_resets", "clip_events", "latency_s"):
        assert key in figures
    assert set(figures["callback_us"]) == {"p50", "p99", "max"}
    assert figures["callbacks"] > 2.5 * FS / 64 and figures["latency_s"]["output"] > 0


def _as_in_a_terminal(command: list[str], nohup: bool = False) -> list[str]:
    """``command`` started with the signals' default actions, as a shell in a terminal leaves
    them (a test run started in the background or under nohup would pass its ignored ones
    on); SIGHUP ignored with ``nohup``. A small launcher sets them and execs the command
    (exec keeps them): a ``preexec_fn`` would fork this multithreaded process."""
    hup = "SIG_IGN" if nohup else "SIG_DFL"
    launcher = ("import os, signal, sys\n"
                "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
                f"signal.signal(signal.SIGHUP, signal.{hup})\n"
                "os.execv(sys.argv[1], sys.argv[1:])")  # fmt: skip
    return [sys.executable, "-c", launcher, *command]


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP", "SIGHUP under nohup"])
def test_figures_on_request_and_ctrl_c_stops_within_a_second(tmp_path: Path, jack_server: None, stop: str) -> None:
    """Ctrl-C, a supervisor's SIGTERM and a closed terminal's SIGHUP all stop the run cleanly:
    within a second, exit status 0, the figures written and the take recorded to its end
    (SIGTERM and SIGHUP used to kill it on the spot, with neither). Under nohup a SIGHUP
    changes nothing (then Ctrl-C stops it)."""
    stats, takes = tmp_path / "stats.json", tmp_path / "takes"
    nohup = stop.endswith("nohup")
    proc = subprocess.Popen(
        # --no-osc: another program holding OSC's default port would put a warning line first.
        _as_in_a_terminal([sys.executable, "-m", "aether_rt", "run", "--input", "demo", "--loop", "--no-osc",
                           "--stats", str(stats), "--record", str(takes)], nohup),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JACK_NO_START_SERVER": "1"},
    )  # fmt: skip
    try:
        assert "Ctrl-C stops" in proc.stderr.readline()
        time.sleep(1.5)
        proc.send_signal(signal.SIGUSR1)  # print the figures now
        guard = threading.Timer(20.0, proc.kill)  # a missing report must fail the test, not hang it
        guard.start()
        report = proc.stderr.readline()
        guard.cancel()
        assert "xruns" in report and "callback p50" in report and "control" in report, report
        if nohup:
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert proc.poll() is None, "a SIGHUP under nohup stopped the run"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT if nohup else getattr(signal, stop))
        proc.wait(timeout=10)
        assert time.monotonic() - sent < 1.0
        callbacks = json.loads(stats.read_text())["callbacks"]
        assert proc.returncode == 0 and callbacks > 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "callbacks" in rest  # the closing summary
        wavs = sorted(takes.rglob("*.wav"))
        assert wavs and all(sf.info(w).frames >= 0.9 * callbacks * 64 for w in wavs), [(w, sf.info(w)) for w in wavs]
    finally:  # a failing test must not leave a looping run behind (it loads every later test)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--output", "no-such-card", "--duration", "1"], "no output device matches 'no-such-card'"),
        (["run", "--input", "no-such-card", "--duration", "1"], "no input device matches"),
        (
            ["run", "--input", "demo", "--sample-rate", "44100", "--duration", "1"],
            "cannot run 2 channel(s) at 44100 Hz",
        ),
        (["run", "--z", "1,2", "--duration", "1"], "latent space has 4"),
        (["run", "--mode", "spiral", "--rate-fast", "99"], "fast rate must be"),
        (["run", "--osc-feedback", "tablet", "--duration", "1"], "--osc-feedback 'tablet' is not HOST:PORT"),
        (["run", "--osc-allow", "my-laptop", "--duration", "1"], "--osc-allow 'my-laptop' is not an IP address"),
    ],
)
def test_run_mistakes_exit_2_with_a_message(args: list[str], message: str, jack_server: None) -> None:
    done = _cli(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_no_audio_device_is_a_clear_error() -> None:
    done = _cli("run", "--duration", "1", env={"JACK_DEFAULT_SERVER": "aether-no-such-server"})
    assert done.returncode == 2
    assert "no audio" in done.stderr and "jackd" in done.stderr and "Traceback" not in done.stderr


def test_a_device_that_vanishes_mid_run_is_reported(tmp_path: Path) -> None:
    """A private JACK server, killed under a running engine."""
    name = "aether-vanish"
    server = subprocess.Popen(
        [shutil.which("jackd"), "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = {**os.environ, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": name}
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["jack_wait", "-c", "-s", name], capture_output=True, text=True).stdout.strip() != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc = subprocess.Popen([sys.executable, "-m", "aether_rt", "run", "--input", "demo", "--loop", "--no-osc",
                                 "--blocksize", "256"], stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        assert "Ctrl-C stops" in proc.stderr.readline()
        time.sleep(1.0)
    finally:
        server.kill()
        server.wait()
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 2, err
    assert "stopped delivering audio" in err and "Traceback" not in err


def test_mono_input_device_to_stereo_output(model, jack_server: None) -> None:
    engine = Engine(EngineSettings(sample_rate_hz=FS, out_channels=2, in_channels=1), model, StateBox(_spiral()))
    engine.run(1.0)
    layout = engine.bank.arena.layout
    assert (layout.ins, layout.outs, layout.n_channels) == (1, 2, 1)
    assert engine.stats()["callbacks"] > 0


def _take_on_time(folder: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A recorded take's input, output, control period and its frames before the first tick
    adopted late or never (a newer table was due by then): where live and offline may part."""
    live_in = sf.read(folder / "input.wav", dtype="float32", always_2d=True)[0]
    live_out = sf.read(folder / "output.wav", dtype="float32", always_2d=True)[0]
    session = Session.load(folder)
    cf = session.control_frames
    adopted = {tag: frame for _, tag, frame in session.adoptions}
    on_time = next((t for t in range(0, live_in.shape[0], cf) if adopted.get(t) != t), live_in.shape[0])
    return live_in, live_out, cf, on_time


@pytest.mark.parametrize("blocksize", [32, 256, 2048])
def test_a_live_take_is_its_offline_render_at_any_block_size(model, tmp_path: Path, blocksize: int,
                                                             jack_server: None) -> None:  # fmt: skip
    """Sub-block adoption: live, each table is adopted at its own tick's frame inside the
    block, so the offline render (at another block size) plays the same samples up to the
    first tick the control thread did not queue in time (none on a quiet machine)."""
    state = _spiral(rate_fast=8.0)
    stats = _run(model, 4.0, blocksize=blocksize, state=state, record_dir=tmp_path)
    live_in, live_out, cf, on_time = _take_on_time(tmp_path)
    offline = render(live_in, FS, model, state, out_channels=live_out.shape[1], blocksize=1000).audio
    print(f"block {blocksize}: {stats['frames']} frames, the first {on_time} on time")
    assert on_time > cf
    np.testing.assert_allclose(offline[:on_time], live_out[:on_time], rtol=0, atol=1e-5)
    assert np.sqrt(np.mean(live_out**2)) > 0.01


def test_the_envelope_moves_z_live_as_offline(model, tmp_path: Path, jack_server: None) -> None:
    """A take played with the latent auto-wah re-renders to the same samples: the control
    thread reads the audio side's follower at each tick a fixed delay back, and the render
    runs the same follower over the recorded input."""
    from aether_rt.modulation import Modulation

    mod = Modulation(mode="static", center=(-1.4, -1.4, 0.0, 0.0), envelope=(2.8, 2.8, 0.0, 0.0))
    state = ControlState(modulation=mod)
    _run(model, 4.0, blocksize=256, state=state, record_dir=tmp_path)
    live_in, live_out, cf, on_time = _take_on_time(tmp_path)
    offline = render(live_in, FS, model, state, out_channels=live_out.shape[1], blocksize=256).audio
    assert on_time > 10 * cf
    np.testing.assert_allclose(offline[:on_time], live_out[:on_time], rtol=0, atol=1e-5)
    # The motion came from the playing: without the envelope the filter stays put, and sounds otherwise.
    still = render(live_in, FS, model, ControlState(modulation=mod.__class__(mode="static", center=mod.center)),
                   out_channels=live_out.shape[1], blocksize=256).audio  # fmt: skip
    assert np.abs(still[:on_time] - live_out[:on_time]).max() > 0.01
