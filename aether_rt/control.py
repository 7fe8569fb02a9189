"""The control side: state, the z -> coefficient-table function, and the control thread.

* :class:`ControlState` holds what a player changes (modulation, mix, gains, bypass) as
  plain immutable values; :class:`StateBox` is its single mutable holder: writers (CLI,
  OSC, web page, presets) replace it under a lock, the control thread reads it without one.
* :class:`TableDesigner` is one jitted JAX function, decode -> mapping -> biquad design at
  the stream's rate, the same path as :mod:`aether_rt.models.design`.
* :class:`Controller` turns the state into tables for ticks of the audio sample clock:
  every ``control_frames`` frames (default 96 = 500 Hz at 48 kHz) it computes z for the
  current tick, designs the table and publishes it, tagged with the tick, to the bank's
  lock-free ring; the bank ramps to it over one control period. Parameter targets
  (gains, mix, bypass) go to the arena, where the audio side smooths them.
* :class:`ControlThread` runs the controller at ``rate_hz`` against the live frame
  counter; the engine's watchdog restarts it if it dies or stalls, while audio carries
  on with the last table.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from aether_rt.dsp import arena as ar
from aether_rt.dsp.bank import BiquadBank
from aether_rt.models.checkpoint import LoadedModel
from aether_rt.modulation import MAX_MORPH_S, Modulation, latent_at
from aether_rt.params import GAIN_RANGE_DB, MIX_RANGE

#: Output ceiling: nothing above -0.1 dBFS reaches the device.
CEILING_DBFS = -0.1
#: Time constant of the gain/mix/bypass smoothing on the audio side (default, and allowed range).
PARAM_SMOOTHING_S = 0.010
PARAM_SMOOTHING_RANGE_S = (0.001, 1.0)
#: Default crossfade of the motion when a preset or the mode changes while running.
CROSSFADE_S = 0.5
#: DC blocker corner (DC is gone within 100 ms: 54 dB down).
DC_CORNER_HZ = 10.0
#: Limiter recovery time constant; peak-meter fall time constant.
LIMIT_RELEASE_S = 0.050
METER_FALL_S = 0.300
#: Shortest gap between two control steps when state changes wake the thread early.
MIN_WAKE_GAP_S = 0.0005


@dataclass(frozen=True)
class ControlState:
    """What a player controls (immutable: change it with :meth:`StateBox.update`).

    Attributes:
        modulation: how z moves.
        mix: 0 (dry) .. 1 (wet).
        input_gain_db: gain before the bank, dB.
        output_gain_db: gain after the mix, dB.
        bypass: crossfade to the dry signal.
        param_smoothing_s: time constant of the audio side's glide of gains, mix and bypass.
        crossfade_s: how long a change of preset or mode crossfades the motion.

    """

    modulation: Modulation = field(default_factory=Modulation)
    mix: float = 1.0
    input_gain_db: float = 0.0
    output_gain_db: float = 0.0
    bypass: bool = False
    param_smoothing_s: float = PARAM_SMOOTHING_S
    crossfade_s: float = CROSSFADE_S

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mix) and MIX_RANGE[0] <= self.mix <= MIX_RANGE[1]):
            raise ValueError(f"mix must be in [{MIX_RANGE[0]:g}, {MIX_RANGE[1]:g}], got {self.mix!r}")
        lo, hi = GAIN_RANGE_DB
        for name in ("input_gain_db", "output_gain_db"):
            value = getattr(self, name)
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}] dB, got {value!r}")
        lo, hi = PARAM_SMOOTHING_RANGE_S
        if not (math.isfinite(self.param_smoothing_s) and lo <= self.param_smoothing_s <= hi):
            raise ValueError(f"param_smoothing_s must be in [{lo:g}, {hi:g}] s, got {self.param_smoothing_s!r}")
        if not (math.isfinite(self.crossfade_s) and 0.0 <= self.crossfade_s <= MAX_MORPH_S):
            raise ValueError(f"crossfade_s must be in [0, {MAX_MORPH_S:g}] s, got {self.crossfade_s!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded sessions, status replies)."""
        rest = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "modulation"}
        return {**rest, "modulation": self.modulation.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlState:
        """Inverse of :meth:`to_dict`."""
        rest = {k: v for k, v in data.items() if k != "modulation"}
        return cls(modulation=Modulation.from_dict(data["modulation"]), **rest)


def crossfade_to(current: ControlState, new: ControlState, t_s: float) -> ControlState:
    """``new``, with its motion reached from ``current``'s by a crossfade starting at ``t_s``.

    The crossfade lasts ``new.crossfade_s``; gains, mix and bypass glide on the audio side
    (``param_smoothing_s``). Used for presets and mode changes while running.
    """
    return replace(new, modulation=current.modulation.morphed_to(new.modulation, t_s, new.crossfade_s))


class StateBox:
    """The one mutable holder of the :class:`ControlState`, with a version number.

    Writers serialise on a lock (so two changes cannot lose each other); readers take
    ``state`` (one attribute read: atomic) without it. Listeners hear every change.
    """

    def __init__(self, state: ControlState) -> None:
        self._state, self._version = state, 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ControlState, str], None]] = []

    @property
    def state(self) -> ControlState:
        """The current state."""
        return self._state

    @property
    def version(self) -> int:
        """Incremented by every change."""
        return self._version

    def update(self, source: str = "api", **changes: Any) -> ControlState:
        """Apply ``changes`` (fields of ControlState, or ``modulation=`` a dict of its fields).

        Raises:
            ValueError: an invalid value (nothing changes).

        """
        with self._lock:
            mod_changes = changes.pop("modulation", None)
            state = self._state
            if mod_changes:
                state = replace(state, modulation=replace(state.modulation, **mod_changes))
            state = replace(state, **changes)
            self._state, self._version = state, self._version + 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(state, source)
        return state

    def modify(self, change: Callable[[ControlState], ControlState], source: str = "api") -> ControlState:
        """Replace the state by ``change(current state)``, atomically with respect to other writers.

        For changes that depend on the current state (a rate change that keeps the LFO
        phase, a crossfade from the current motion).

        Raises:
            ValueError: ``change`` raised it (nothing changes).

        """
        with self._lock:
            state = change(self._state)
            self._state, self._version = state, self._version + 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(state, source)
        return state

    def subscribe(self, listener: Callable[[ControlState, str], None]) -> None:
        """Call ``listener(state, source)`` after every change."""
        self._listeners.append(listener)


#: Latent points designed per call. Every table, live or offline, is computed by the one
#: compiled program for this batch shape: XLA's results for a row differ between batch
#: shapes by up to ~4e-6 (a different matrix kernel), which a live take and its offline
#: render would otherwise disagree by. 4 costs ~80 us a call (1 point: ~75 us).
DESIGN_BATCH = 4


class TableDesigner:
    """z -> coefficient table at the stream's rate: one jitted JAX function.

    Args:
        model: the trained model.
        sample_rate_hz: the rate the tables are designed for (frequencies stay in Hz).

    """

    def __init__(self, model: LoadedModel, sample_rate_hz: float) -> None:
        enable_compilation_cache()
        import jax

        # Run these tiny computations on the calling thread: JAX's default asynchronous
        # dispatch woke a worker thread per call (control step p50 82 -> 40 us, p99 292 -> 148 us).
        jax.config.update("jax_cpu_enable_async_dispatch", False)

        from aether_rt.models.design import coefficient_table, filters_from_outputs

        module, rate = model.module, model.config.sample_rate_hz
        self.latent_dim = model.config.latent_dim
        self.n_filters = model.config.num_filters

        def design(params: Any, z: Any) -> Any:
            f, q, g = module.apply({"params": params}, z, method=module.decode)
            return coefficient_table(filters_from_outputs(f, q, g, rate), sample_rate_hz)

        # The weights are baked into the compiled program as constants: passing them as an
        # argument made JAX flatten the parameter tree on every call (131 us vs 67 us).
        params = model.params
        self._batch = jax.jit(lambda z: design(params, z))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """The table ``[n_filters, 5]`` (float64) for one latent point."""
        return self.batch(np.asarray(z)[None])[0]

    def batch(self, z: np.ndarray) -> np.ndarray:
        """Tables ``[n, n_filters, 5]`` (float64) for ``n`` latent points ``[n, latent_dim]``.

        Computed ``DESIGN_BATCH`` points at a time (the last call padded), so a table
        does not depend on how many were asked for together, and no count makes JAX
        compile again.
        """
        z = np.asarray(z, np.float32).reshape(-1, self.latent_dim)
        n = z.shape[0]
        padded = np.zeros((-(-n // DESIGN_BATCH) * DESIGN_BATCH, self.latent_dim), np.float32)
        padded[:n] = z
        out = np.empty((padded.shape[0], self.n_filters, 5))
        for i in range(0, padded.shape[0], DESIGN_BATCH):
            out[i : i + DESIGN_BATCH] = np.asarray(self._batch(padded[i : i + DESIGN_BATCH]))
        return out[:n]

    def warmup(self) -> None:
        """Compile (or load from JAX's persistent cache) before any audio runs."""
        self.batch(np.zeros((1, self.latent_dim)))


def enable_compilation_cache() -> None:
    """Keep JAX's compiled functions on disk, so a second start compiles nothing."""
    import jax

    from aether_rt.data.datasets import default_cache_dir

    path = default_cache_dir() / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no writable cache: compile each time
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def stage_params(state: ControlState, sample_rate_hz: float) -> dict[int, float]:
    """The arena parameter slots for a state at a rate (targets; the audio side glides)."""
    fs = float(sample_rate_hz)
    return {
        ar.P_IN_GAIN: 10.0 ** (state.input_gain_db / 20.0),
        ar.P_OUT_GAIN: 10.0 ** (state.output_gain_db / 20.0),
        ar.P_MIX: state.mix,
        ar.P_BYPASS: 1.0 if state.bypass else 0.0,
        ar.P_SMOOTH: one_pole(state.param_smoothing_s, fs),
        ar.P_CEILING: 10.0 ** (CEILING_DBFS / 20.0),
        ar.P_DC_POLE: 1.0 - 2.0 * math.pi * DC_CORNER_HZ / fs,
        ar.P_LIMIT_RELEASE: one_pole(LIMIT_RELEASE_S, fs),
        ar.P_METER_DECAY: math.exp(-1.0 / (METER_FALL_S * fs)),
        ar.P_ENV_ATTACK: one_pole(state.modulation.envelope_attack_ms * 1e-3, fs),
        ar.P_ENV_RELEASE: one_pole(state.modulation.envelope_release_ms * 1e-3, fs),
    }


def one_pole(time_constant_s: float, sample_rate_hz: float) -> float:
    """A one-pole smoother's per-frame coefficient for a time constant."""
    return 1.0 - math.exp(-1.0 / (time_constant_s * sample_rate_hz))


class Controller:
    """Publishes the tables and parameter targets for the control ticks of the sample clock.

    Each step keeps tables published ``lookahead`` ticks ahead of the frame counter:
    the audio side adopts each one when its tick is due, so a control thread held off
    for a while (a busy interpreter, a slow machine) leaves the motion intact for that
    long. A state change republishes from the current tick: the newer tables supersede
    the queued ones.

    Args:
        bank: the bank (its arena) to publish to.
        designer: the z -> table function.
        box: the control state.
        sample_rate_hz: the stream's rate.
        control_frames: frames per control tick (the ramp length too).
        lookahead: ticks published ahead (0: only the current one).
        envelope_delay_ticks: how many ticks before its own a table's envelope snapshot is
            (default: the lookahead and one: always written by then).

    """

    def __init__(
        self,
        bank: BiquadBank,
        designer: TableDesigner,
        box: StateBox,
        sample_rate_hz: float,
        control_frames: int,
        lookahead: int = 0,
        envelope_delay_ticks: int | None = None,
    ) -> None:
        self.bank, self.designer, self.box = bank, designer, box
        self.sample_rate_hz, self.control_frames = float(sample_rate_hz), int(control_frames)
        self.lookahead = int(lookahead)
        self.envelope_delay_ticks = self.lookahead + 1 if envelope_delay_ticks is None else int(envelope_delay_ticks)
        self.envelope_late = 0  # tables designed before their envelope snapshot existed (should stay 0)
        if bank.arena.layout.ring_size < 2 * (self.lookahead + 1) + 2:
            raise ValueError(f"a lookahead of {lookahead} ticks needs a ring of {2 * (self.lookahead + 1) + 2} slots")
        self.last_tick = -1  # the furthest tick published
        self.last_version = -1
        self.last_z = np.zeros(designer.latent_dim)
        self.updates = 0  # tables published
        #: Ticks the audio side reached before their table was queued (it kept the previous
        #: table meanwhile): the control thread fell behind its lookahead. 0 on a healthy run.
        self.late_ticks = 0
        self.step_us: deque[float] = deque(maxlen=20_000)
        self.log_states = False  # keep (first sequence, tick, state) at every change (for recordings)
        self.state_log: list[tuple[int, int, dict[str, Any]]] = []
        self._publish_lock = threading.Lock()  # among control threads only; audio never takes it

    def tick_of(self, frame: int) -> int:
        """The control tick (a multiple of ``control_frames``) that ``frame`` falls in."""
        return (int(frame) // self.control_frames) * self.control_frames

    def step(self, frame: int, *, ramp_frames: int | None = None, owner: Callable[[], bool] | None = None) -> bool:
        """Publish what is missing up to ``lookahead`` ticks past the tick of ``frame``.

        Everything from the current tick when the state changed. Returns whether it
        published. ``ramp_frames`` sets the first table's ramp (default: one control
        period). ``owner`` (the threaded case) is asked, under the publish lock, whether
        the caller is still the one allowed to publish.
        """
        cf = self.control_frames
        tick, version = self.tick_of(frame), self.box.version
        horizon = tick + self.lookahead * cf
        changed = version != self.last_version
        played = self.tick_of(frame - 1) if frame > 0 else -1  # the last tick the audio has played into
        if 0 <= self.last_tick < played:  # it got there (and to any before) with nothing queued
            self.late_ticks += (played - self.last_tick) // cf
        if not changed and self.last_tick >= horizon:
            return False
        started = time.perf_counter()
        state = self.box.state
        first = tick if changed else max(self.last_tick + cf, tick)
        ticks = np.arange(first, horizon + 1, cf)
        envelope = self.envelope_for(ticks) if state.modulation.envelope is not None else None
        z = latent_at(state.modulation, ticks / self.sample_rate_hz, envelope)
        tables = self.designer.batch(z)
        with self._publish_lock:
            if owner is not None and not owner():
                return False
            if changed:
                self.write_params(state)
                if self.log_states:
                    seq = int(self.bank.arena.words[ar.H_PUBLISHED])
                    self.state_log.append((seq, int(first), state.to_dict()))
            for i, t in enumerate(ticks):
                ramp = cf if (i > 0 or ramp_frames is None) else ramp_frames
                self.bank.publish_trusted(tables[i], ramp, int(t))
            self.last_tick, self.last_version, self.last_z = int(ticks[-1]), version, z[0]
            self.updates += len(ticks)
        self.step_us.append((time.perf_counter() - started) * 1e6)
        return True

    def envelope_for(self, ticks: np.ndarray) -> np.ndarray:
        """The input's envelope (linear peak) each tick's table is designed from.

        The audio side's snapshot ``envelope_delay_ticks`` ticks earlier (0 before the start).
        A fixed delay, at least the lookahead, so the snapshot is always there when the
        table is designed and the offline render can use the very same value.
        """
        from aether_rt.dsp._kernels import read_acquire

        words = self.bank.arena.words
        written = read_acquire(words, ar.H_ENV_WRITTEN)
        index = ticks // self.control_frames - self.envelope_delay_ticks
        late = index >= written  # only if the thread ran ahead of its own lookahead: the newest there is
        self.envelope_late += int(late.sum())
        index = np.minimum(index, written - 1)
        ring = self.bank.arena.envelope
        return np.where(index >= 0, ring[np.maximum(index, 0) % ar.ENV_CAPACITY], 0.0)

    def write_params(self, state: ControlState) -> None:
        """Write the state's gain/mix/bypass targets (and the stage constants) to the arena."""
        for slot, value in stage_params(state, self.sample_rate_hz).items():
            self.bank.arena.params[slot] = value


class ControlThread(threading.Thread):
    """Runs :meth:`Controller.step` at ``rate_hz`` against the live frame counter.

    A state change wakes it at once (:meth:`wake`), so a new z or mix does not wait
    for the next period. The engine owns a generation number: a thread that is no
    longer current (it was replaced after a stall) stops publishing and exits when it
    next wakes.
    """

    def __init__(self, controller: Controller, rate_hz: float, generation: int, current: Callable[[], int]) -> None:
        super().__init__(name=f"aether-control-{generation}", daemon=True)
        self.controller, self.period_s = controller, 1.0 / rate_hz
        self.generation, self._current = generation, current
        self.heartbeat = time.monotonic()
        self.error: BaseException | None = None
        self.stopping = False
        self._wake = threading.Event()

    def wake(self) -> None:
        """Step now (a state change)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the thread to exit at its next wake-up (now)."""
        self.stopping = True
        self._wake.set()

    def run(self) -> None:
        """Step the controller every period until stopped or replaced; keep any error for the watchdog."""
        words = self.controller.bank.arena.words
        owner = lambda: self._current() == self.generation  # noqa: E731
        deadline = time.monotonic()
        try:
            while not self.stopping and owner():
                self._wake.clear()
                self.controller.step(int(words[ar.H_FRAMES]), owner=owner)
                self.heartbeat = stepped = time.monotonic()
                deadline += self.period_s
                delay = deadline - stepped
                if delay > 0:
                    if self._wake.wait(delay) and not self.stopping:
                        # A flood of changes (OSC at 10 kHz) must not turn this into a busy loop.
                        time.sleep(max(0.0, stepped + MIN_WAKE_GAP_S - time.monotonic()))
                else:  # fell behind (a stall, a busy machine): resynchronise, do not burst
                    deadline = time.monotonic()
        except BaseException as exc:  # reported by the watchdog, which restarts the thread
            self.error = exc
