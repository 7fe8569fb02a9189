"""MIDI into a running engine: CC -> audio latency, a 1000 CC/s pedal sweep, clock following.

A JACK MIDI sender in a process of its own (``tests/helpers/jack_midi.py``, the one the
tests use) plays into aether-rt's virtual port on the JACK dummy server; the engine
runs in this process at 64-frame blocks, control at 500 Hz, as in bench_osc.py.

* **latency**: CC 11 (the expression pedal -> sweep) -> the first output frame computed
  with a table designed from it: the frame the audio side adopted that table at (its
  adoption log) minus the JACK frame the CC was sent at (mapped to the engine's frame
  counter), over ``--changes`` changes at random moments. As for OSC, the device's own
  output latency comes on top.
* **sweep**: CC 11 swept up and down at 1 000 CC/s for ``--seconds``, against the same
  engine without MIDI: status flags (xruns), callback p99, control updates/s, control
  step p99, watchdog restarts (a stalled control thread), state changes MIDI made; and
  the same sweep into aether-rt's port with no engine, beside a no-op client: the xruns
  the JACK MIDI path brings by itself.
* **clock**: 24 pulses per beat at 60/120/240 BPM after a Start, sync on: the tempo
  error after 2 beats, the LFO phase error at beat 2 and at the last beat (against the
  beats' own JACK frames), and its drift between the two over ``--clock-seconds``.

    python benchmarks/bench_midi.py [--seconds 10] [--changes 300] [--clock-seconds 60]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import jack
import numpy as np
from _common import RESULTS, adopted_frame, print_table, write_json
from bench_engine import BLOCK, FS, _engine, _noop_flags

import aether_rt
from aether_rt.control import ControlState
from aether_rt.dsp import arena as ar
from aether_rt.midi.input import MidiInput
from aether_rt.midi.mapping import DEFAULT_MAP
from aether_rt.midi.ports import MidiPort
from aether_rt.modulation import Modulation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.jack_midi import RemoteSender  # the tests' sender, shared


class Rig:
    """An engine with MIDI on its virtual port, a sender wired to it, and a passive client reading JACK's frame time."""

    def __init__(self, model, state: ControlState, *, midi: bool = True) -> None:
        self.engine = _engine(model, "cfunc", state)
        box, clock = self.engine.box, self.engine.clock
        self.midi = (
            MidiInput(box, clock, MidiPort(None), midi_map=DEFAULT_MAP, stamp=self.engine.clock_stamp) if midi else None
        )
        self.sender = RemoteSender("aether-bench-sender")
        self.frames = jack.Client("aether-bench-frames", no_start_server=True)

    def __enter__(self) -> Rig:
        if self.midi is not None:
            self.midi.start()
        self.engine.start()
        if self.midi is not None:
            self.sender.connect_to("aether-rt:midi in")
        return self

    def __exit__(self, *exc: object) -> None:
        self.sender.close()
        self.frames.close()
        self.engine.stop()
        if self.midi is not None:
            self.midi.stop()

    def offset(self) -> int:
        """JACK frame time minus the engine's frame counter (smallest difference seen: just after a callback)."""
        words = self.engine.bank.arena.words
        diffs = []
        for _ in range(300):
            diffs.append(self.frames.frame_time - int(words[ar.H_FRAMES]))
            time.sleep(0.0005)
        return min(diffs)


def midi_latency(model, changes: int) -> dict[str, float]:
    """CC 11 -> the frame its first table is adopted at (ms of audio time)."""
    with Rig(model, ControlState(modulation=Modulation(mode="static"))) as rig:
        engine = rig.engine
        engine.controller.log_states = True
        rng = np.random.default_rng(0)
        time.sleep(0.5)
        offset = rig.offset()
        latencies_ms: list[float] = []
        value = 0
        for i in range(changes):
            if i % 50 == 49:
                offset = rig.offset()  # a missed cycle moves it
            time.sleep(rng.uniform(0.01, 0.03))
            logged = len(engine.controller.state_log)
            value = (value + int(rng.integers(1, 127))) % 128
            sent_frame = rig.sender.send([0xB0, 11, value]) - offset
            adopted = adopted_frame(engine, logged)
            if adopted is not None:
                latencies_ms.append((adopted - sent_frame) / FS * 1e3)
    lat = np.array(latencies_ms)
    # A CC the transport dropped (JACK drops a cycle's MIDI in an xrun) changes nothing: not timed.
    return {"sent": changes, "changes": len(lat), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
            "device_output_latency_ms": engine.stream.latency_s[1] * 1e3}  # fmt: skip


def sweep(model, seconds: float, *, midi: bool) -> dict[str, float]:
    """The engine playing a spiral while CC 11 sweeps at 1000 CC/s (or with no MIDI at all)."""
    state = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=2.0))
    with Rig(model, state, midi=midi) as rig:
        changes = []
        rig.engine.box.subscribe(lambda _s, source: changes.append(source))
        if midi:
            rig.sender.sweep(11, FS // 1000, int(seconds * 1000))
        rig.engine.run(seconds + 0.1)
        stats = rig.engine.stats()
        counters = rig.midi.counters if rig.midi is not None else {}
    return {
        "cc_received": counters.get("cc", 0),
        "state_changes_per_s": sum(s == "midi" for s in changes) / seconds,
        "xruns": stats["xruns"],
        "callback_p99_us": stats["callback_us"]["p99"],
        "control_updates_per_s": stats["control_updates_per_s"],
        "control_step_p99_us": stats["control_step_us"]["p99"],
        "control_restarts": stats["control_restarts"],
    }


def sweep_without_engine(seconds: float) -> dict[str, float]:
    """The JACK MIDI path alone: the sender sweeping CC 11 at 1000 CC/s into aether-rt's port
    (a thread drains it), beside a no-op client: the xruns MIDI itself brings, no engine."""
    port = MidiPort(None)
    sender = RemoteSender("aether-bench-sender")
    received, stop = [0], threading.Event()

    def drain() -> None:
        while not stop.is_set():
            if port.poll() is None:
                time.sleep(0.0005)
            else:
                received[0] += 1

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        sender.connect_to("aether-rt:midi in")
        # longer than the no-op client's run, which starts a second or two later
        sender.sweep(11, FS // 1000, int((seconds + 10) * 1000))
        xruns = _noop_flags(seconds)
    finally:
        stop.set()
        thread.join()
        sender.close()
        port.close()
    return {"cc_received": received[0], "xruns": xruns}


def clock_follow(model, bpm: int, seconds: float) -> dict[str, float]:
    """A MIDI clock at ``bpm`` for ``seconds``: tempo after 2 beats, phase error at beat 2 and at the end."""
    start = ControlState(modulation=Modulation(mode="spiral", sync=True, rate_fast_hz=2.0, rate_slow_hz=8.0,
                                               tempo_bpm=100.0))  # fmt: skip
    fpp = FS * 60 // (24 * bpm)
    beats = int(seconds * bpm / 60)
    with Rig(model, start) as rig:
        box, counters = rig.engine.box, rig.midi.counters
        time.sleep(0.3)
        # A beat more than measured: a pulse JACK drops in an xrun is recovered by the one after it.
        first = rig.sender.clock(fpp, 24 * (beats + 1) + 1)
        midi = rig.midi
        # Waits on the beat count, and on JACK's frames (a pulse dropped at the very end never comes).
        deadline = first + 48 * fpp + FS
        while midi.beat_pulses < 49 and rig.frames.frame_time < deadline:
            time.sleep(0.001)
        early = box.state.modulation
        offsets = [rig.offset()]
        deadline = first + 24 * beats * fpp + FS
        while midi.beat_pulses < 24 * beats + 1 and rig.frames.frame_time < deadline:
            time.sleep(0.01)
        late = box.state.modulation
        offsets.append(rig.offset())
        counted, recovered = midi.beat_pulses, counters["pulses_lost"]

    def phase_error_ms(mod: Modulation, beat: int, offset: int) -> float:
        t = (first + 24 * beat * fpp - offset) / FS
        err = (mod.phases_at(t)[0] - beat / 2.0 + 0.5) % 1.0 - 0.5
        return err * 2 * 60_000.0 / bpm

    e2, e_end = phase_error_ms(early, 2, offsets[0]), phase_error_ms(late, beats, offsets[1])
    return {"bpm": bpm, "seconds": seconds, "pulses_recovered": recovered,
            "beat_count_short": max(0, 24 * beats - counted), "tempo_error_after_2_beats_bpm": early.tempo_bpm - bpm,
            "phase_error_beat_2_ms": e2, "phase_error_end_ms": e_end, "drift_ms": e_end - e2}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="sweep length (and the no-MIDI reference's)")
    p.add_argument("--changes", type=int, default=300, help="CCs timed for the latency")
    p.add_argument("--clock-seconds", type=float, default=10.0, help="clock length per tempo (the target: 60)")
    p.add_argument("--tempos", default="60,120,240")
    p.add_argument("--json", type=Path, default=RESULTS / "midi.json")
    args = p.parse_args()
    model = aether_rt.load_model()

    print(f"== MIDI CC 11 -> first output frame with its table ({args.changes} changes, {BLOCK}-frame blocks)")
    lat = midi_latency(model, args.changes)
    keys = ("sent", "changes", "p50_ms", "p99_ms", "max_ms", "device_output_latency_ms")
    print_table(["sent", "timed", "p50 ms", "p99 ms", "max ms", "+ device output latency ms"], [[lat[k] for k in keys]])

    print(f"\n== pedal sweep: CC 11 at 1000 CC/s for {args.seconds:g} s, spiral at 2 Hz, {BLOCK}-frame blocks")
    reference = _noop_flags(args.seconds)
    runs = {"engine alone": sweep(model, args.seconds, midi=False),
            "engine + 1000 CC/s": sweep(model, args.seconds, midi=True)}  # fmt: skip
    transport = sweep_without_engine(args.seconds)
    keys = list(next(iter(runs.values())))
    alone = [("no-op client alone", {"xruns": reference}), ("no-op client + 1000 CC/s, no engine", transport)]
    rows = [[name, *[part.get(k, "") for k in keys]] for name, part in alone]
    print_table(["configuration", *keys], rows + [[name, *[r[k] for k in keys]] for name, r in runs.items()])

    print(f"\n== MIDI clock, {args.clock_seconds:g} s per tempo, sync, fast pair at 2 beats per cycle")
    clocks = [clock_follow(model, int(b), args.clock_seconds) for b in args.tempos.split(",") if b]
    ckeys = list(clocks[0])
    print_table(ckeys, [[c[k] for k in ckeys] for c in clocks])
    write_json(args.json, {"latency": lat, "noop_xruns": reference, "sweep": runs, "transport_alone": transport,
                           "clock": clocks, "seconds": args.seconds})  # fmt: skip


if __name__ == "__main__":
    main()
