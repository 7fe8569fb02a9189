"""The MIDI thread: read the port, parse, apply to the control state like OSC does.

Control changes are coalesced: each pass drains everything the port holds and keeps
the latest position per binding, and changes reach the :class:`~aether_rt.control.StateBox`
at most every ``COALESCE_S`` (one ``modify`` for all of them), so a pedal sweeping at
1000 CC/s costs the control thread a few hundred state changes a second, not a
thousand. Program changes recall presets; clock pulses set the tempo and lock the LFO
phase to the beat count (:mod:`aether_rt.midi.clock`); learn binds the next CC to a
parameter. Nothing here touches the audio thread: the control thread hears the box.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aether_rt.control import ControlState, StateBox, crossfade_to
from aether_rt.errors import UserError
from aether_rt.midi import clock as mc
from aether_rt.midi.mapping import FINE_CONTROLS, FINE_MAX, Binding, MidiMap, apply_binding, save_map
from aether_rt.midi.messages import Clock, Continue, ControlChange, Message, Parser, ProgramChange, Start, Stop
from aether_rt.params import param

log = logging.getLogger("aether_rt")

#: Shortest gap between two state changes from control changes: a pedal sweep changes the state at
#: most 200 times a second (the control thread redesigns its queued tables on each; at 2 ms, 1000 CC/s
#: cost it 9x its usual tables). A lone CC is applied at once.
COALESCE_S = 0.005
#: How long the MIDI thread sleeps when the port is empty.
POLL_S = 0.0005
#: How often a connected port's presence is checked.
PORT_CHECK_S = 1.0
#: With sync, the motion's phase and tempo are set every this many pulses (a sixteenth note;
#: later while pulses may have been lost).
LOCK_EVERY_PULSES = 6
#: A learned coarse CC followed this soon by its partner 32 above is a 14-bit pair.
FINE_PAIR_S = 0.05


class MidiInput:
    """MIDI driving a running effect (one thread, ``aether-midi``).

    Args:
        box: the control state.
        clock: the audio sample clock, seconds.
        port: an open :class:`~aether_rt.midi.ports.MidiPort` (or anything with ``poll``,
            ``present``, ``close`` and ``name``).
        midi_map: the bindings, and whether program changes and clock are followed.
        program: Program Change n -> ``(preset name, its state)``, or None when there is
            no n-th preset (raises :class:`~aether_rt.errors.UserError` for a broken one).
        map_path: where learned maps are saved (None: not saved).
        stamp: the audio clock's last stamp, ``(wall, sample)`` seconds (the engine's
            :meth:`~aether_rt.engine.Engine.clock_stamp`), or None; with it, clock pulses
            land on their frames however the audio clock's rate differs from the wall clock's.

    """

    def __init__(
        self,
        box: StateBox,
        clock: Callable[[], float],
        port: Any,
        *,
        midi_map: MidiMap,
        program: Callable[[int], tuple[str, ControlState] | None] | None = None,
        map_path: Any = None,
        stamp: Callable[[], tuple[float, float] | None] | None = None,
    ) -> None:
        self.box, self.clock, self.port, self.stamp = box, clock, port, stamp
        self.map, self.program, self.map_path = midi_map, program, map_path
        self.parser = Parser()
        self.counters = dict.fromkeys(("messages", "cc", "applied", "unmapped", "programs", "pulses", "pulses_lost",
                                       "learned", "rejected"), 0)  # fmt: skip
        self._values: dict[tuple[int, int], int] = {}  # (channel, control) -> last value
        self._pending: dict[Binding, float] = {}
        self._last_apply = 0.0
        self._port_t = 0.0  # the port's timestamps, summed: seconds
        self._clock = mc.ClockState()
        self._locked_at = 0  # the beat count at the last lock
        self._anchor: tuple[float, float] | None = None
        self._anchor_key: tuple[Any, ...] = ()
        self._times = mc.TimeMap()
        self._learn: str | None = None
        self._learned: tuple[Binding, float] | None = None
        self._learn_lock = threading.Lock()
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the MIDI thread."""
        self._thread = threading.Thread(target=self._loop, name="aether-midi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.port.close()

    def learn(self, name: str) -> None:
        """Bind the next control change received to parameter ``name``.

        Raises:
            UserError: no such parameter (the message lists them).

        """
        try:
            param(name)
        except KeyError as exc:
            raise UserError(f"cannot learn MIDI for {exc.args[0]}") from None
        with self._learn_lock:
            self._learn = name
        log.info("MIDI learn: move a control to bind it to %s", name)

    @property
    def beat_pulses(self) -> int:
        """Clock pulses since beat 0 (lost ones included once recovered; -1 before beat 0)."""
        return self._clock.pulses

    @property
    def learning(self) -> str | None:
        """The parameter waiting for a control, if any."""
        return self._learn

    def status(self) -> dict[str, int | str]:
        """Figures for ``/aether/status`` (as ``midi/<name>``): counters, SysEx and stray bytes, learning."""
        figures: dict[str, int | str] = {f"midi/{k}": v for k, v in {**self.counters, **self.parser.counts}.items()}
        figures["midi/learning"] = self._learn or ""
        return figures

    # -- the thread -------------------------------------------------------------------

    def _loop(self) -> None:
        next_check = time.monotonic() + PORT_CHECK_S
        while not self._stop.is_set():
            self._note_stamp()
            got = self.drain()
            now = time.monotonic()
            if now >= next_check:
                next_check = now + PORT_CHECK_S
                self._check_port()
            if not got:
                self._stop.wait(POLL_S)

    def drain(self, limit: int = 4096) -> int:
        """Handle what the port holds (at most ``limit`` messages), then due changes; returns how many."""
        n = 0
        while n < limit:
            try:
                item = self.port.poll()
            except Exception as exc:
                self._warn_once("poll", f"MIDI port {self.port.name} failed: {exc!r}")
                break
            if item is None:
                break
            data, delta_s = item
            self._port_t += delta_s
            n += 1
            try:
                for msg in self.parser.feed(data):
                    self.handle(msg, self._port_t)
            except Exception as exc:
                self.counters["rejected"] += 1
                self._warn_once(f"handle {type(exc).__name__}", f"a MIDI message was not handled: {exc!r}")
        if self._pending and time.monotonic() - self._last_apply >= COALESCE_S:
            self._apply_pending()
        return n

    def handle(self, msg: Message, port_t_s: float) -> None:
        """One parsed message, stamped ``port_t_s`` on the port's clock."""
        self.counters["messages"] += 1
        if isinstance(msg, ControlChange):
            self._control_change(msg)
        elif isinstance(msg, ProgramChange):
            self._program_change(msg)
        elif self.map.clock:
            self._note_stamp()
            self._times.observe(port_t_s, time.monotonic() if self._times.stamped else self.clock())
            self._clock_message(msg, self._times.to_sample(port_t_s))

    def _note_stamp(self) -> None:
        stamp = self.stamp() if self.stamp is not None else None
        if stamp is not None:
            self._times.stamp(*stamp)

    def _control_change(self, msg: ControlChange) -> None:
        self.counters["cc"] += 1
        key = (msg.channel, msg.control)
        self._values[key] = msg.value
        if msg.control in FINE_CONTROLS:  # a new coarse value clears the fine part (MIDI 1.0)
            self._values[(msg.channel, msg.control + 32)] = 0
        self._maybe_learn(msg)
        binding = self.map.binding_for(msg.channel, msg.control)
        if binding is None:
            self.counters["unmapped"] += 1
            return
        coarse = self._values.get((msg.channel, binding.control), 0)
        if binding.fine:
            travel = (coarse * 128 + self._values.get((msg.channel, binding.control + 32), 0)) / FINE_MAX
        else:
            travel = coarse / 127.0
        self._pending[binding] = travel

    def _apply_pending(self) -> None:
        changes, self._pending = list(self._pending.items()), {}
        self._last_apply = time.monotonic()
        now = self.clock()

        def change(state: ControlState) -> ControlState:
            for binding, travel in changes:
                state = apply_binding(binding, travel, state, now)
            return state

        try:
            self.box.modify(change, source="midi")
        except ValueError as exc:
            self.counters["rejected"] += 1
            self._warn_once("value", f"a MIDI control change was refused: {exc}")
            return
        self.counters["applied"] += len(changes)

    def _maybe_learn(self, msg: ControlChange) -> None:
        with self._learn_lock:
            name, self._learn = self._learn, None
        learned = self._learned
        if name is None:
            # The partner 32 above a just-learned coarse CC: the controller sends 14 bits.
            if (learned is not None and not learned[0].fine and learned[0].control in FINE_CONTROLS
                    and msg.control == learned[0].control + 32 and msg.channel == learned[0].channel
                    and time.monotonic() - learned[1] < FINE_PAIR_S):  # fmt: skip
                self._bind(replace(learned[0], fine=True))
            return
        self._bind(Binding(msg.control, name, channel=msg.channel))

    def _bind(self, binding: Binding) -> None:
        self.map = self.map.learned(binding)
        self._learned = (binding, time.monotonic())
        self.counters["learned"] += 1
        log.info("MIDI learn: CC %d%s on channel %d -> %s", binding.control, " (14-bit)" if binding.fine else "",
                 (binding.channel or 0) + 1, binding.param)  # fmt: skip
        if self.map_path is not None:
            try:
                save_map(self.map, self.map_path)
            except UserError as exc:
                self._warn_once("save", str(exc))

    def _program_change(self, msg: ProgramChange) -> None:
        if not self.map.program_change or (self.map.channel is not None and msg.channel != self.map.channel):
            self.counters["unmapped"] += 1
            return
        if self._pending:
            self._apply_pending()
        try:
            found = self.program(msg.program) if self.program is not None else None
        except UserError as exc:
            self.counters["rejected"] += 1
            log.warning("MIDI program change %d: %s", msg.program, exc)
            return
        if found is None:
            self.counters["rejected"] += 1
            log.warning("MIDI program change %d: there is no preset %d (aether-rt presets lists them, from 0)",
                        msg.program, msg.program)  # fmt: skip
            return
        name, new = found
        now = self.clock()
        self.box.modify(lambda s: crossfade_to(s, new, now), source="midi")
        self._anchor = None  # the new motion's phase continues; the lock re-anchors on it
        self.counters["programs"] += 1
        log.info("MIDI program change %d: preset %s", msg.program, name)

    def _clock_message(self, msg: Message, t_s: float) -> None:
        if isinstance(msg, Start):
            self._clock = mc.start(self._clock)
            self.box.modify(lambda s: replace(s, modulation=s.modulation.with_phase_reset(t_s)), source="midi")
            self._anchor = (0.0, 0.0)
            self._anchor_key = ("start",)
        elif isinstance(msg, Stop):
            self._clock = mc.stop(self._clock)
        elif isinstance(msg, Continue):
            self._clock = mc.resume(self._clock)
            self._anchor = None
        elif isinstance(msg, Clock):
            self.counters["pulses"] += 1
            self._clock = mc.pulse(self._clock, t_s, self._times.resolution_s())
            self.counters["pulses_lost"] = self._clock.lost
            if self._clock.suspect:  # pulses may have been lost, not yet confirmed: no lock on the count
                return
            pulses = self._clock.pulses
            if pulses == 0 or pulses - self._locked_at >= LOCK_EVERY_PULSES or not self._clock.running:
                self._locked_at = pulses
                due = mc.due_s(self._clock)  # the grid's time for it: a JACK stamp is the start of its period
                self._lock(t_s if due is None else due)

    def _lock(self, t_s: float) -> None:
        tempo = mc.tempo_bpm(self._clock)
        if tempo is None:
            return
        running, beats_now = self._clock.running, mc.beats(self._clock)

        def change(state: ControlState) -> ControlState:
            mod = state.modulation
            if not running:  # stopped: the motion runs free at the clock's tempo
                return replace(state, modulation=mod.retimed(t_s, tempo_bpm=tempo))
            key = (mod.sync, mod.rate_fast_hz, mod.rate_slow_hz)
            if self._anchor is None or (self._anchor_key != ("start",) and self._anchor_key != key):
                self._anchor = mc.anchor_of(mod, t_s, beats_now)  # joined, or the rates changed: no jump
            self._anchor_key = key
            return replace(state, modulation=mc.locked(mod, t_s, beats_now, self._anchor, tempo))

        self.box.modify(change, source="midi")

    def _check_port(self) -> None:
        if not self.port.present():
            self._warn_once("gone", f"MIDI port {self.port.name} went away; MIDI is off until the next start")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message)
