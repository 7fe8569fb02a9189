"""The live engine: a duplex (or output-only) stream, the control thread, the watchdog.

Start-up order (everything compiles before audio): Numba kernels and the callback
(``warmup``), the jitted table designer (JAX, persistent cache), the first table
published with no ramp, then the stream, then the control thread. While running, the
main thread's :meth:`Engine.run` loop watches: the control thread (restarted if it
dies or stalls; audio keeps the last table meanwhile, and the failure is logged
once), the device (a stream that stops delivering frames is reported, exit 2), the
duration, the source's end, Ctrl-C and SIGUSR1 (print the figures).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.audio import devices
from aether_rt.audio.stream import BankStream, CallbackMode
from aether_rt.control import Controller, ControlThread, StateBox, TableDesigner
from aether_rt.dsp import arena as ar
from aether_rt.dsp._kernels import read_stamp
from aether_rt.dsp.bank import BiquadBank
from aether_rt.errors import UserError
from aether_rt.models.checkpoint import LoadedModel
from aether_rt.render import control_frames_for

log = logging.getLogger("aether_rt.engine")

STALL_S = 0.5  # a control thread silent this long is replaced
DEVICE_SILENT_S = 1.5  # a stream that delivers no frame this long has lost its device
TAP_SECONDS = 4.0
# While the engine runs, a thread that wants the GIL gets it within this long. CPython's
# default (5 ms) let a busy Python thread (a plug-in host's, a UI's) hold the control
# thread off for whole periods: 136 control updates/s instead of 500 beside a hog thread.
GIL_SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class EngineSettings:
    """How the engine talks to the audio device.

    Attributes:
        sample_rate_hz: stream rate in Hz.
        blocksize: frames per callback.
        input_device: input device index or name (None: default).
        output_device: output device index or name (None: default).
        out_channels: output channels.
        in_channels: input channels (None: as many as the outputs, at most what the
            input device has; a source's own channel count when one plays).
        callback: ``"cfunc"`` (GIL-free) or ``"python"``.
        control_rate_hz: control ticks per second.
        lookahead_ticks: tables the control thread keeps published ahead of the audio
            beyond two blocks (16 ms at the defaults): how long it may be held off
            without the motion stalling (see :func:`lookahead_for`).

    """

    sample_rate_hz: int = 48_000
    blocksize: int = 64
    input_device: int | str | None = None
    output_device: int | str | None = None
    out_channels: int = 2
    in_channels: int | None = None
    callback: CallbackMode = "cfunc"
    control_rate_hz: float = 500.0
    lookahead_ticks: int = 8


class Engine:
    """The live effect (see the module docstring).

    Args:
        settings: device side.
        model: the model.
        box: the control state (OSC, web and CLI write it).
        source: ``[frames, channels]`` float32 played instead of the input device.
        loop: loop the source.
        record_dir: record input, output and the session here.

    """

    def __init__(
        self,
        settings: EngineSettings,
        model: LoadedModel,
        box: StateBox,
        *,
        source: np.ndarray | None = None,
        loop: bool = False,
        record_dir: Path | None = None,
    ) -> None:
        self.settings, self.model, self.box = settings, model, box
        fs = float(settings.sample_rate_hz)
        if source is not None:
            ins = source.shape[1]
        else:
            ins = settings.in_channels or min(settings.out_channels, _max_inputs(settings.input_device))
        self.control_frames = control_frames_for(fs, settings.control_rate_hz)
        self.lookahead = lookahead_for(settings.blocksize, self.control_frames, settings.lookahead_ticks)
        self.bank = BiquadBank(
            model.config.num_filters,
            ins,
            out_channels=settings.out_channels,
            in_channels=ins,
            max_frames=max(2048, settings.blocksize),
            smoothing_frames=self.control_frames,
            ring_size=4 * (self.lookahead + 2),
            tap_frames=int(TAP_SECONDS * fs) if record_dir else 0,
            source_frames=0 if source is None else source.shape[0],
            envelope_frames=self.control_frames,
        )
        arena = self.bank.arena
        arena.words[ar.H_FRAME_PS] = round(1e12 / fs)  # the clock stamp tells a period's blocks apart
        self._stamp_out = np.zeros(2, dtype=np.int64)
        if source is not None:
            arena.source[:] = source
            arena.words[ar.H_SRC_LOOP] = int(loop)
        self.source_frames = 0 if source is None else source.shape[0]
        self.designer = TableDesigner(model, fs)
        self.controller = Controller(self.bank, self.designer, box, fs, self.control_frames, self.lookahead)
        self.designer.warmup()
        self.controller.log_states = record_dir is not None
        self.controller.step(0, ramp_frames=0)  # the first table: in place before any audio
        self.bank.arena.settle_params()  # and the first gains and mix, without a glide
        self.stream = BankStream(
            self.bank, sample_rate_hz=fs, blocksize=settings.blocksize, input_device=settings.input_device,
            output_device=settings.output_device, callback=settings.callback, output_only=source is not None,
        )  # fmt: skip
        self._generation = 0
        self._thread: ControlThread | None = None
        self.control_restarts = 0
        self._reported_failure = False
        self._started = 0.0
        self.started_unix = 0.0  # wall-clock time the stream started (start-up measurements)
        self._switch_interval = sys.getswitchinterval()
        box.subscribe(lambda _state, _source: self._wake_control())
        self.recorder = None
        if record_dir is not None:
            from aether_rt.record import Recorder

            self.recorder = Recorder(record_dir, arena, self.controller, self._session_info())

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Open the audio and start the control thread (and the recorder)."""
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_INTERVAL_S))
        self.stream.start()
        self._started, self.started_unix = time.monotonic(), time.time()
        self._start_control()
        if self.recorder is not None:
            self.recorder.start()

    def stop(self) -> None:
        """Stop the control thread, then the audio; flush a recording."""
        if self._thread is not None:
            self._thread.stop()
            self._thread.join(timeout=1.0)
        if not self.stream.close():
            log.warning("the audio stream did not close (its device is gone); abandoning it")
        sys.setswitchinterval(self._switch_interval)
        if self.recorder is not None:
            path = self.recorder.finish()
            log.info("recorded into %s", path.parent)

    def _wake_control(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.wake()

    def _start_control(self) -> None:
        self._generation += 1
        self._thread = ControlThread(
            self.controller, self.settings.control_rate_hz, self._generation, lambda: self._generation
        )
        self._thread.start()

    def watchdog(self) -> None:
        """Restart the control thread if it died or stalled (logged once)."""
        thread = self._thread
        if thread is None:
            return
        dead = not thread.is_alive()
        stalled = time.monotonic() - thread.heartbeat > STALL_S
        if not (dead or stalled):
            return
        if not self._reported_failure:
            why = f"died: {thread.error!r}" if dead and thread.error else ("died" if dead else "stalled")
            log.warning("control thread %s; audio continues on the last table; restarting it", why)
            self._reported_failure = True
        self.control_restarts += 1
        self._start_control()  # the old thread, if it wakes, sees it is no longer current

    # -- figures --------------------------------------------------------------------

    def clock(self) -> float:
        """The audio sample clock, seconds (what the LFOs run on)."""
        return int(self.bank.arena.words[ar.H_FRAMES]) / float(self.settings.sample_rate_hz)

    def clock_stamp(self) -> tuple[float, float] | None:
        """``(wall clock, sample clock)`` at the start of the last audio block, seconds (None before the first).

        The wall clock is ``time.monotonic()``'s; MIDI maps its time stamps onto the sample
        clock with these (:class:`~aether_rt.midi.clock.TimeMap`). One thread at a time.
        """
        out = self._stamp_out
        if not read_stamp(self.bank.arena.words, out):
            return None
        return int(out[0]) * 1e-9, int(out[1]) / float(self.settings.sample_rate_hz)

    def meters(self) -> dict[str, float | int]:
        """Cheap live figures (status replies, meters): counters and peak levels, no percentiles."""
        arena, words = self.bank.arena, self.bank.arena.words
        post, n_out = arena.post, arena.layout.outs
        out_peak = max(float(post[ar.POST_FIXED + ar.POST_PER_OUT * o + 3]) for o in range(n_out))
        in_peak = max(float(post[ar.POST_FIXED + ar.POST_PER_OUT * n_out + c]) for c in range(arena.layout.ins))
        period_ns = self.settings.blocksize / self.stream.sample_rate_hz * 1e9
        return {
            "frames": int(words[ar.H_FRAMES]),
            "xruns": self.stream.stats().status_flags,
            "callback_max_load": round(int(words[ar.H_CALLBACK_NS_MAX]) / max(period_ns, 1.0), 4),
            "input_peak_dbfs": _dbfs(in_peak),
            "output_peak_dbfs": _dbfs(out_peak),
            "clip_events": int(words[ar.H_LIMITED_SAMPLES]),
            "control_restarts": self.control_restarts,
            "late_ticks": self.controller.late_ticks,
        }

    def stats(self) -> dict[str, Any]:
        """The run's figures (see ``--stats``)."""
        words, arena = self.bank.arena.words, self.bank.arena
        stream = self.stream.stats()
        elapsed = max(time.monotonic() - self._started, 1e-9) if self._started else 0.0
        hist = arena.hist.copy()
        # Callbacks that took half the block period or more (bin b's lower edge is 2**(b/8) ns):
        # the xruns the engine's own work could have caused.
        half_period_ns = 0.5 * self.settings.blocksize / self.stream.sample_rate_hz * 1e9
        slow = int(hist[np.arange(hist.size) >= 8 * np.log2(half_period_ns)].sum())
        step_us = np.array(self.controller.step_us) if self.controller.step_us else np.zeros(1)
        n_out = arena.layout.outs
        post = arena.post
        out_peaks = [float(post[ar.POST_FIXED + ar.POST_PER_OUT * o + 3]) for o in range(n_out)]
        in_peaks = [float(post[ar.POST_FIXED + ar.POST_PER_OUT * n_out + c]) for c in range(arena.layout.ins)]
        return {
            "sample_rate": self.stream.sample_rate_hz,
            "blocksize": self.settings.blocksize,
            "callback": self.settings.callback,
            "seconds": round(elapsed, 3),
            "started_unix": self.started_unix,
            "callbacks": stream.callbacks,
            "frames": stream.frames,
            "xruns": stream.status_flags,
            "status_flags": stream._asdict(),
            "callback_us": {
                "p50": _hist_percentile(hist, 50) / 1e3,
                "p99": _hist_percentile(hist, 99) / 1e3,
                "max": int(words[ar.H_CALLBACK_NS_MAX]) / 1e3,
            },
            "block_period_us": self.settings.blocksize / self.stream.sample_rate_hz * 1e6,
            "slow_callbacks": slow,
            "control_updates_per_s": self.controller.updates / elapsed if elapsed else 0.0,
            "control_step_us": {"p50": float(np.percentile(step_us, 50)), "p99": float(np.percentile(step_us, 99))},
            "control_restarts": self.control_restarts,
            "late_ticks": self.controller.late_ticks,
            "nan_resets": int(words[ar.H_NAN_EVENTS]) + int(words[ar.H_BLOWUPS]),
            "clip_events": int(words[ar.H_LIMITED_SAMPLES]),
            "nonfinite_output": int(words[ar.H_NONFINITE_OUT]),
            "latency_s": {"input": self.stream.latency_s[0], "output": self.stream.latency_s[1]},
            "peak_dbfs": {"input": [_dbfs(p) for p in in_peaks], "output": [_dbfs(p) for p in out_peaks]},
            "z": [round(float(v), 4) for v in self.controller.last_z],
        }

    def report(self) -> str:
        """One line of figures for people."""
        s = self.stats()
        cb = s["callback_us"]
        return (
            f"{s['seconds']:.1f} s, {s['callbacks']} callbacks, {s['xruns']} xruns, callback "
            f"p50 {cb['p50']:.1f} / p99 {cb['p99']:.1f} / max {cb['max']:.1f} us "
            f"(period {s['block_period_us']:.0f} us), "
            f"control {s['control_updates_per_s']:.0f}/s ({s['late_ticks']} ticks late), "
            f"latency out {s['latency_s']['output'] * 1e3:.1f} ms, "
            f"clip events {s['clip_events']}, NaN resets {s['nan_resets']}"
        )

    # -- the main loop --------------------------------------------------------------

    def run(self, duration_s: float | None = None, stats_path: Path | None = None) -> int:
        """Run until Ctrl-C (or SIGTERM, SIGHUP), the duration, or the source's end; returns the exit status.

        SIGTERM (a supervisor, ``kill``) and SIGHUP (the terminal closed) stop it as Ctrl-C
        does: the stream stops, a recording is finished and the figures are written. Their
        default action killed the process on the spot, losing a take's end and the figures.
        SIGUSR1 prints the figures now.
        """
        # Plain flags, set by the handlers: a threading.Event's set() takes a lock that the
        # interrupted main thread may hold (inside its own wait), and would deadlock there.
        asked = {"report": False, "stop": False}
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for name, flag in (("SIGUSR1", "report"), ("SIGTERM", "stop"), ("SIGHUP", "stop")):
                number = getattr(signal, name, None)
                if number is not None and signal.getsignal(number) is not signal.SIG_IGN:  # nohup's stays ignored
                    previous[number] = signal.signal(number, lambda *_, f=flag: asked.__setitem__(f, True))
        status = 0
        self.start()
        try:
            last_frames, last_change, source_done = -1, time.monotonic(), None
            while True:
                time.sleep(0.1)  # a signal's handler runs within it; the sleep then goes on (PEP 475)
                if asked["stop"]:
                    break
                now = time.monotonic()
                self.watchdog()
                frames = int(self.bank.arena.words[ar.H_FRAMES])
                if frames != last_frames:
                    last_frames, last_change = frames, now
                elif now - last_change > DEVICE_SILENT_S:
                    raise UserError(
                        "the audio device stopped delivering audio (it was disconnected, or the JACK server stopped)",
                        "check the device and run again; `aether-rt devices` lists what is there",
                    )
                if asked["report"]:
                    asked["report"] = False
                    print(self.report(), file=sys.stderr, flush=True)
                if duration_s is not None and now - self._started >= duration_s:
                    break
                words = self.bank.arena.words
                if self.source_frames and not words[ar.H_SRC_LOOP] and words[ar.H_SRC_POS] >= self.source_frames:
                    source_done = source_done or now
                    if now - source_done > 0.25:  # the source has played; let the tail ring out
                        break
        except KeyboardInterrupt:
            status = 0
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            figures = self.stats()
            self.stop()
            if stats_path is not None:
                write_stats(stats_path, figures)
        return status

    def _session_info(self) -> dict[str, Any]:
        return {
            "sample_rate": float(self.settings.sample_rate_hz),
            "blocksize": self.settings.blocksize,
            "control_frames": self.control_frames,
            "envelope_delay_ticks": self.controller.envelope_delay_ticks,
            "channels": {"in": self.bank.arena.layout.ins, "out": self.bank.arena.layout.outs},
            "model": {"path": str(self.model.path), "weights_sha256": self.model.metadata.get("weights_sha256")},
        }


def lookahead_for(blocksize: int, control_frames: int, margin_ticks: int) -> int:
    """Ticks the control thread keeps published ahead of the frame counter for a block size.

    The audio side adopts each table at its own tick inside a block, so every tick of
    the block being played and of the next one must already be queued when it starts
    (the frame counter the control thread reads may be a block old), plus
    ``margin_ticks`` for a control thread held off for a while.
    """
    return margin_ticks + -(-2 * max(int(blocksize), 1) // control_frames)


def write_stats(path: Path, figures: dict[str, Any]) -> None:
    """Write the figures as JSON (a user error if the path cannot be written)."""
    try:
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the stats to {str(path)!r}: {exc}") from None


def _max_inputs(device: int | str | None) -> int:
    index = devices.resolve(device, "input")
    return next(d.max_input_channels for d in devices.list_devices() if d.index == index)


def _hist_percentile(hist: np.ndarray, q: float) -> float:
    """The q-th percentile, in ns, of the log2 histogram (bin centres)."""
    total = hist.sum()
    if total == 0:
        return 0.0
    b = int(np.searchsorted(np.cumsum(hist), q / 100.0 * total))
    return float(2.0 ** ((b + 0.5) / 8.0))


def _dbfs(peak: float) -> float:
    return round(20.0 * np.log10(max(peak, 1e-10)), 2)
