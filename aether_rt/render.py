"""Offline rendering: the live engine's control and audio code, block by block, flat out.

:func:`render` runs a source through exactly what the live callback runs (input gain,
the bank, mix, output gain, DC blocker, ceiling) with the tables the control thread
would publish. Without a recording to follow it emulates an ideal control thread: one
tick every ``control_frames`` frames, each table queued before the block it falls in and
adopted at its own frame (the bank splits the block there, live too), so the output does
not depend on the block size; tables for many ticks are designed in one pass. With a recorded live session
(:class:`~aether_rt.record.Session`) it replays the recorded adoptions (which table, at
which frame) and state changes, so the render is what the live engine played.

Deterministic: the same inputs give the same samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from aether_rt.control import ControlState, TableDesigner, stage_params
from aether_rt.dsp import arena as ar
from aether_rt.dsp.bank import BankStats, BiquadBank
from aether_rt.models.checkpoint import LoadedModel
from aether_rt.modulation import latent_at

DEFAULT_CONTROL_RATE_HZ = 500.0
#: Offline block size: any gives the same output; this one is fast.
DEFAULT_BLOCK = 1024
_BATCH_TICKS = 2048


@dataclass(frozen=True)
class RenderResult:
    """Output of :func:`render`.

    Attributes:
        audio: ``[frames, out_channels]`` float32.
        sample_rate_hz: its rate.
        seconds: wall time spent.
        stats: the bank's counters.
        limited_samples: samples the ceiling limiter turned down.

    """

    audio: np.ndarray
    sample_rate_hz: float
    seconds: float
    stats: BankStats
    limited_samples: int

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio per second of wall time."""
        return self.audio.shape[0] / self.sample_rate_hz / max(self.seconds, 1e-9)


def control_frames_for(sample_rate_hz: float, control_rate_hz: float) -> int:
    """Frames per control tick at a rate (at least 1)."""
    return max(1, round(sample_rate_hz / control_rate_hz))


def render(
    source: np.ndarray,
    sample_rate_hz: float,
    model: LoadedModel,
    state: ControlState,
    *,
    out_channels: int | None = None,
    control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ,
    blocksize: int | None = None,
    session: Any = None,
    progress: Callable[[int, int], None] | None = None,
    designer: TableDesigner | None = None,
) -> RenderResult:
    """Render ``source`` (``[frames, channels]`` float32) through the effect.

    Args:
        source: the input.
        sample_rate_hz: its rate (the filters are designed for it).
        model: the model.
        state: the control state (the start state, when following a session).
        out_channels: output channels (default: the source's); input channel
            ``o % in`` feeds output ``o``.
        control_rate_hz: control ticks per second.
        blocksize: frames per block (default: ``DEFAULT_BLOCK``, or the session's). The
            output is the same at every block size: each table is adopted at its own
            tick's frame inside a block, live and here.
        session: a recorded session to follow (its adoptions and states).
        progress: called with (frames done, total).
        designer: a prepared table designer for this model and rate (reused across
            renders; built here if not given).

    """
    from aether_rt.audio.callback import render_segment

    x = np.ascontiguousarray(source, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    ins, total = x.shape[1], x.shape[0]
    outs = out_channels or ins
    if session is not None:
        control_frames, block = session.control_frames, blocksize or session.blocksize
    else:
        control_frames = control_frames_for(sample_rate_hz, control_rate_hz)
        block = blocksize or DEFAULT_BLOCK
    designer = designer or TableDesigner(model, sample_rate_hz)
    started = time.perf_counter()
    if session is not None:
        y, banks = _render_session(x, sample_rate_hz, designer, model, state, session, outs, block, progress)
    else:
        # Channels are independent when each output plays its own input: render them in
        # parallel threads (the kernels release the GIL), one arena each.
        groups = [[c] for c in range(ins)] if ins > 1 and outs == ins else [list(range(ins))]
        group_outs = 1 if len(groups) > 1 else outs
        banks = [_bank(model, len(g), group_outs, block, control_frames, state, sample_rate_hz) for g in groups]
        parts = [np.empty((total, group_outs), np.float32) for _ in groups]
        inputs = [np.ascontiguousarray(x[:, g]) for g in groups]
        segment = _BATCH_TICKS * control_frames
        from aether_rt.engine import EngineSettings, lookahead_for

        delay = lookahead_for(block, control_frames, EngineSettings.lookahead_ticks) + 1
        envelope = offline_envelope(x, state, sample_rate_hz, control_frames, delay, total // control_frames + 2)

        def tables_for(seg: int) -> tuple[int, int, int, np.ndarray]:
            stop = min(total, seg + segment)
            first_tick = (seg // control_frames) * control_frames
            ticks = first_tick + control_frames * np.arange(_BATCH_TICKS + 1)
            env = None if envelope is None else envelope(ticks)
            return seg, stop, first_tick, designer.batch(latent_at(state.modulation, ticks / sample_rate_hz, env))

        def run(i: int, job: tuple[int, int, int, np.ndarray], last_tick: int) -> int:
            seg, stop, first_tick, tables = job
            a = banks[i].arena
            return render_segment(a.words, a.f64, a.f32, inputs[i][seg:stop], parts[i][seg:stop], tables,
                                  first_tick, control_frames, block, last_tick)  # fmt: skip

        # Pipelined: while the channel threads render a segment, this thread designs the
        # next segment's tables (JAX and the kernels both release the GIL).
        last = [-1] * len(groups)
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            job = tables_for(0)
            while True:
                futures = [pool.submit(run, i, job, last[i]) for i in range(len(groups))]
                next_job = tables_for(job[1]) if job[1] < total else None
                last = [f.result() for f in futures]
                if progress is not None:
                    progress(job[1], total)
                if next_job is None:
                    break
                job = next_job
        y = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    seconds = time.perf_counter() - started
    stats = banks[0].stats()
    limited = sum(int(b.arena.words[ar.H_LIMITED_SAMPLES]) for b in banks)
    return RenderResult(y, float(sample_rate_hz), seconds, stats, limited)


def render_controlled(
    source: np.ndarray,
    sample_rate_hz: float,
    model: LoadedModel,
    state: ControlState,
    changes: list[tuple[int, Callable[[ControlState, float], ControlState]]],
    *,
    blocksize: int = 64,
    control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ,
    designer: TableDesigner | None = None,
) -> np.ndarray:
    """Render as the live engine plays with a punctual control thread, changing the state on the way.

    The live path exactly: a :class:`~aether_rt.control.Controller` with the engine's
    lookahead steps before every ``blocksize`` block; ``changes`` are ``(frame, change)``
    pairs, and ``change(state, now_s)`` gives the new state at that frame (a preset
    loaded with :func:`~aether_rt.control.crossfade_to`, an OSC message). What tests and
    benchmarks use to hear what a change does to the sound (clicks, glides).

    Returns:
        ``[frames, channels]`` float32.

    """
    from aether_rt.audio.callback import callback_body
    from aether_rt.control import Controller, StateBox
    from aether_rt.engine import EngineSettings, lookahead_for

    x = np.ascontiguousarray(source, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    total, ins = x.shape
    control_frames = control_frames_for(sample_rate_hz, control_rate_hz)
    lookahead = lookahead_for(blocksize, control_frames, EngineSettings.lookahead_ticks)
    designer = designer or TableDesigner(model, sample_rate_hz)
    bank = BiquadBank(
        model.config.num_filters, ins, out_channels=ins, in_channels=ins, max_frames=max(blocksize, 64),
        smoothing_frames=control_frames, ring_size=4 * (lookahead + 2), envelope_frames=control_frames,
    )  # fmt: skip
    box = StateBox(state)
    controller = Controller(bank, designer, box, sample_rate_hz, control_frames, lookahead)
    controller.step(0, ramp_frames=0)
    bank.arena.settle_params()
    pending = sorted(changes, key=lambda c: c[0])
    arena = bank.arena
    y = np.empty_like(x)
    for start in range(0, total, blocksize):
        while pending and pending[0][0] <= start:
            _, change = pending.pop(0)
            box.modify(lambda s, change=change, now=start / sample_rate_hz: change(s, now))
        controller.step(start)
        stop = min(total, start + blocksize)
        callback_body(arena.words, arena.f64, arena.f32, x[start:stop], y[start:stop], np.uint64(0), True)
    return y


def offline_envelope(
    x: np.ndarray, state: ControlState, fs: float, control_frames: int, delay_ticks: int, n_ticks: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """What the live control thread reads for each tick's table: the input's envelope, per tick.

    The audio side's own follower kernel, run over the whole input, ``delay_ticks`` ticks
    earlier than each tick.
    None when the state's motion does not follow the envelope.
    """
    if state.modulation.envelope is None and (
        state.modulation.morph_from is None or state.modulation.morph_from.envelope is None
    ):
        return None
    from aether_rt.dsp._stages import envelope_snapshots

    params = stage_params(state, fs)
    snapshots = np.zeros(n_ticks)
    envelope_snapshots(np.ascontiguousarray(x, np.float32), control_frames, params[ar.P_ENV_ATTACK],
                       params[ar.P_ENV_RELEASE], snapshots)  # fmt: skip

    def at(ticks: np.ndarray) -> np.ndarray:
        index = np.asarray(ticks) // control_frames - delay_ticks
        return np.where(index >= 0, snapshots[np.clip(index, 0, n_ticks - 1)], 0.0)

    return at


def ring_size_for(block: int, control_frames: int) -> int:
    """Ring slots an offline render needs: every tick of a block is queued before it runs."""
    return max(8, -(-block // control_frames) + 4)


def _bank(
    model: LoadedModel, ins: int, outs: int, block: int, control_frames: int, state: ControlState, fs: float
) -> BiquadBank:
    bank = BiquadBank(
        model.config.num_filters, ins, out_channels=outs, in_channels=ins, max_frames=max(block, 64),
        smoothing_frames=control_frames, ring_size=ring_size_for(block, control_frames),
    )  # fmt: skip
    for slot, value in stage_params(state, fs).items():
        bank.arena.params[slot] = value
    bank.arena.settle_params()
    return bank


def _render_session(
    x: np.ndarray, fs: float, designer: TableDesigner, model: LoadedModel, state: ControlState, session: Any,
    outs: int, block: int, progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[BiquadBank]]:  # fmt: skip
    """Follow a recorded session: its adoptions (table and frame) and its state changes."""
    from aether_rt.audio.callback import callback_body

    control_frames = session.control_frames
    bank = _bank(model, x.shape[1], outs, block, control_frames, state, fs)
    plan = _session_plan(session, state)
    from aether_rt.engine import EngineSettings, lookahead_for

    delay = session.info.get("envelope_delay_ticks") or (
        lookahead_for(session.blocksize, control_frames, EngineSettings.lookahead_ticks) + 1
    )
    plan.envelope = offline_envelope(x, state, fs, control_frames, int(delay), x.shape[0] // control_frames + 2)
    arena, total = bank.arena, x.shape[0]
    y = np.empty((total, outs), np.float32)
    for start in range(0, total, block):
        stop = min(total, start + block)
        plan.before_block(start, stop, bank, designer, fs, control_frames)
        callback_body(arena.words, arena.f64, arena.f32, x[start:stop], y[start:stop], np.uint64(0), True)
        if progress is not None and (start // block) % 4000 == 0:
            progress(stop, total)
    return y, [bank]


class _SessionPlan:
    """Replays a live session: states by publish sequence, table adoptions by frame."""

    def __init__(self, adoptions: list[tuple[int, int, int]], states: list[tuple[int, ControlState]]) -> None:
        self.adoptions = sorted(adoptions, key=lambda a: a[2])
        self.states = sorted(states, key=lambda s: s[0])
        self.next_adoption = 0
        self.first = True
        self.envelope: Callable[[np.ndarray], np.ndarray] | None = None  # the input's, per tick

    def state_at(self, seq: int) -> ControlState:
        """The state the table of publish sequence ``seq`` was computed from."""
        current = self.states[0][1]
        for first_seq, state in self.states:
            if first_seq > seq:
                break
            current = state
        return current

    def before_block(
        self, start: int, stop: int, bank: BiquadBank, designer: TableDesigner, fs: float, control_frames: int
    ) -> None:
        """Queue, as live did, every table adopted in frames ``[start, stop)``, due at its frame.

        The bank adopts each at the frame the live engine did (it splits the block there).
        """
        while self.next_adoption < len(self.adoptions) and self.adoptions[self.next_adoption][2] < stop:
            seq, tag, frame = self.adoptions[self.next_adoption]
            self.next_adoption += 1
            if frame < start:
                continue  # before the recording's first frame
            state = self.state_at(seq)
            # Parameter targets: the audio side reads them once per block, live and here.
            for slot, value in stage_params(state, fs).items():
                bank.arena.params[slot] = value
            env = None if self.envelope is None else self.envelope(np.array([max(tag, 0)]))[0]
            z = latent_at(state.modulation, tag / fs, env)
            bank.publish(designer(z), ramp_frames=0 if self.first else control_frames, tag=frame)
            self.first = False


def _session_plan(session: Any, state: ControlState) -> _SessionPlan:
    states = list(session.states) or [(0, state)]
    return _SessionPlan(list(session.adoptions), states)
