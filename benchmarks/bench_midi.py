"""MIDI into a running engine: CC -> audio latency, a 1000 CC/s pedal sweep, clock following.

A JACK MIDI sender in a process of its own (``tests/helpers/jack_midi.py``, the one the
tests use) plays into aether-rt's virtual port on the JACK dummy server; the engine
runs in this process at 64-frame blocks, control at 500 Hz, as in bench_osc.py.

* **latency**: CC 11 (the expression pedal -> sweep) -> the first output frame computed
  with a table designed from it: the frame the audio side adopted that table at (its
  adoption log) minus the JACK frame the CC was sent at (mapped to the engine's frame
  counter), over ``--changes`` changes at random moments. As for OSC, the device's own
  output latency comes on top.
* **sweep**: a pedal at 1 000 CC/s for ``--seconds``, ``--repeats`` times, interleaved
  with a no-op client alone (the server's own xruns on this machine) and three other
  configurations: the engine without MIDI, with its port open and idle, and with 1 000
  CC/s on an unmapped control (the transport and parser without state changes). Per
  configuration: status flags (xruns, median and range), the engine's own slow callbacks
  (over half the period), late ticks (the control thread fell behind its lookahead), watchdog
  restarts, CCs read, state changes, callback p99, control tables/s, step p99. With
  ``--jack-log`` (the server's stderr in a file) also who JACK found unfinished at each
  xrun, from its log.
* **clock**: 24 pulses per beat at 60/120/240 BPM (``--tempos``) after a Start, sync on:
  the tempo error after 2 beats, the LFO phase error at beat 2 and at the last beat
  (against the beats' own JACK frames), its drift between the two over
  ``--clock-seconds``, pulses the clock took for lost ones (``pulses_recovered``: none
  are, unless the server dropped a cycle's MIDI) and beats it counted short.

    python benchmarks/bench_midi.py [--seconds 10] [--repeats 3] [--changes 300] [--clock-seconds 60]
                                    [--jack-log FILE] [--only latency|sweep|clock] [--clock-block N]

The clock at other JACK periods: start the server with ``jackd -d dummy -p N`` and pass
``--only clock --clock-block N`` (its MIDI port then stamps pulses a period apart).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jack
import numpy as np
from _common import RESULTS, JackLog, adopted_frame, print_table, write_json
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

    def __init__(self, model, state: ControlState, *, midi: bool = True, block: int = BLOCK, rate: int = FS) -> None:
        self.engine = _engine(model, "cfunc", state, blocksize=block, rate=rate)
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
        """JACK's frame time minus the engine's frame counter for the same frame.

        In a cycle every client renders the same frames, from the cycle's frame time on: the
        engine's first block starts at its counter before the callbacks advanced it by the
        server's period (one block, or several back to back when the block is shorter).
        The smallest difference seen is just after a callback (the frame time then least
        past the cycle's start). (Before December 2026 the counter after the callback was
        taken: every frame mapped one block late, latencies one block short and the clock's
        phase errors one block high.)
        """
        words, block = self.engine.bank.arena.words, max(self.engine.settings.blocksize, self.frames.blocksize)
        diffs = []
        for _ in range(300):
            diffs.append(self.frames.frame_time - (int(words[ar.H_FRAMES]) - block))
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


#: The pedal-sweep configurations: the MIDI control the sender sweeps (None: the engine's
#: port is open and wired but nothing is sent; "no MIDI": no port at all).
SWEEPS: dict[str, int | str | None] = {
    "engine, no MIDI": "no MIDI",
    "engine, MIDI port idle": None,
    "engine + 1000 unmapped CC/s": 99,  # the transport and the parser, no state change
    "engine + 1000 CC/s on CC 11": 11,  # the pedal: z moves, a state change every 5 ms
}


def sweep(model, seconds: float, control: int | str | None, jack_log: JackLog) -> dict[str, Any]:
    """The engine playing a spiral while the sender sweeps ``control`` at 1000 CC/s."""
    state = ControlState(modulation=Modulation(mode="spiral", rate_fast_hz=2.0))
    with Rig(model, state, midi=control != "no MIDI") as rig:
        changes = []
        rig.engine.box.subscribe(lambda _s, source: changes.append(source))
        sent = int(seconds * 1000) if isinstance(control, int) else 0
        jack_log.mark()
        if sent:
            rig.sender.sweep(control, FS // 1000, sent)
        rig.engine.run(seconds + 0.1)
        stats = rig.engine.stats()
        counters = rig.midi.counters if rig.midi is not None else {}
        late = jack_log.since()
    return {
        "cc_sent": sent,
        "cc_received": counters.get("cc", 0),
        "state_changes_per_s": sum(s == "midi" for s in changes) / seconds,
        "xruns": stats["xruns"],
        "slow_callbacks": stats["slow_callbacks"],
        "late_ticks": stats["late_ticks"],
        "callback_p99_us": stats["callback_us"]["p99"],
        "control_updates_per_s": stats["control_updates_per_s"],
        "control_step_p99_us": stats["control_step_us"]["p99"],
        "control_restarts": stats["control_restarts"],
        "jack_log": late,
    }


def _range(values: list[float]) -> str:
    """``median [min-max]`` of repeated runs."""
    return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


def sweeps(model, seconds: float, repeats: int, jack_log: JackLog) -> dict[str, Any]:
    """Every configuration ``repeats`` times, interleaved with a no-op client alone (the
    server's own xruns), so that the machine's drifting load hits them alike."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SWEEPS}
    noop: list[dict[str, Any]] = []
    for r in range(repeats):
        jack_log.mark()
        noop.append({"xruns": _noop_flags(seconds), "jack_log": jack_log.since()})
        for name, control in SWEEPS.items():
            runs[name].append(sweep(model, seconds, control, jack_log))
        print(f"sweep repeat {r + 1}/{repeats}: done", file=sys.stderr, flush=True)
    return {"noop": noop, "runs": runs}


def print_sweeps(result: dict[str, Any]) -> None:
    noop, runs = result["noop"], result["runs"]
    cols = ["xruns median [range]", "slow callbacks", "late ticks", "restarts", "CCs sent/received",
            "state changes/s", "callback p99 us", "control tables/s", "step p99 us"]  # fmt: skip
    rows = [["no-op client alone", _range([n["xruns"] for n in noop])] + [""] * (len(cols) - 1)]
    for name, rs in runs.items():

        def med(k: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[k] for r in rs)

        def total(k: str, rs: list[dict[str, Any]] = rs) -> int:
            return sum(r[k] for r in rs)

        rows.append([name, _range([r["xruns"] for r in rs]), total("slow_callbacks"), total("late_ticks"),
                     total("control_restarts"), f"{total('cc_sent')}/{total('cc_received')}",
                     med("state_changes_per_s"), med("callback_p99_us"), med("control_updates_per_s"),
                     med("control_step_p99_us")])  # fmt: skip
    print_table(["configuration", *cols], rows)
    if noop[0]["jack_log"] is None:
        print("(start jackd with its stderr in a file and pass --jack-log FILE to see who was late)")
        return
    # Per client and state, medians over the repeats, from the server's own log.
    keys = sorted({k for rs in [noop, *runs.values()] for r in rs for k in r["jack_log"]})
    rows = [[name, *[statistics.median(r["jack_log"].get(k, 0) for r in rs) for k in keys]]
            for name, rs in [("no-op client alone", noop), *runs.items()]]  # fmt: skip
    print(
        "\nthe JACK server's log, medians over the repeats (PortAudio: the engine or the no-op client; "
        "aether-rt: the engine's MIDI port; aether-bench-sender: the sender)"
    )
    print_table(["configuration", *keys], rows)


def clock_follow(model, bpm: int, seconds: float, block: int = BLOCK, rate: int = FS) -> dict[str, float]:
    """A MIDI clock at ``bpm`` for ``seconds``: tempo after 2 beats, phase error at beat 2 and at the end.

    ``block``: the engine's block (the JACK server's period, or shorter: PortAudio then runs
    several back to back); ``rate``: the server's sample rate.
    """
    start = ControlState(modulation=Modulation(mode="spiral", sync=True, rate_fast_hz=2.0, rate_slow_hz=8.0,
                                               tempo_bpm=100.0))  # fmt: skip
    fpp = rate * 60 // (24 * bpm)
    beats = int(seconds * bpm / 60)
    with Rig(model, start, block=block, rate=rate) as rig:
        box, counters = rig.engine.box, rig.midi.counters
        time.sleep(0.3)
        # A beat more than measured: a pulse JACK drops in an xrun is recovered by the one after it.
        first = rig.sender.clock(fpp, 24 * (beats + 1) + 1)
        midi = rig.midi
        # Waits on the beat count, and on JACK's frames (a pulse dropped at the very end never comes).
        deadline = first + 48 * fpp + rate
        while midi.beat_pulses < 49 and rig.frames.frame_time < deadline:
            time.sleep(0.001)
        early = box.state.modulation
        offsets = [rig.offset()]
        deadline = first + 24 * beats * fpp + rate
        while midi.beat_pulses < 24 * beats + 1 and rig.frames.frame_time < deadline:
            time.sleep(0.01)
        late = box.state.modulation
        offsets.append(rig.offset())
        counted, recovered = midi.beat_pulses, counters["pulses_lost"]

    def phase_error_ms(mod: Modulation, beat: int, offset: int) -> float:
        t = (first + 24 * beat * fpp - offset) / rate
        err = (mod.phases_at(t)[0] - beat / 2.0 + 0.5) % 1.0 - 0.5
        return err * 2 * 60_000.0 / bpm

    e2, e_end = phase_error_ms(early, 2, offsets[0]), phase_error_ms(late, beats, offsets[1])
    sent_bpm = rate * 60 / (24 * fpp)  # the sender's whole frames per pulse: 180 BPM is 180.18 at 48 kHz
    return {"bpm": bpm, "bpm_sent": sent_bpm, "block": block, "rate": rate, "seconds": seconds,
            "pulses_recovered": recovered, "beat_count_short": max(0, 24 * beats - counted),
            "tempo_error_after_2_beats_bpm": early.tempo_bpm - sent_bpm,
            "phase_error_beat_2_ms": e2, "phase_error_end_ms": e_end, "drift_ms": e_end - e2}  # fmt: skip


def _server_rate() -> int:
    """The JACK server's sample rate (the clock runs at it: 44.1, 48 or 96 kHz)."""
    probe = jack.Client("aether-bench-rate", no_start_server=True)
    try:
        return int(probe.samplerate)
    finally:
        probe.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each sweep run")
    p.add_argument("--repeats", type=int, default=3, help="runs of each sweep configuration, interleaved")
    p.add_argument("--jack-log", type=Path, help="the JACK server's stderr, saved to a file: who was late in each run")
    p.add_argument("--changes", type=int, default=300, help="CCs timed for the latency")
    p.add_argument("--clock-seconds", type=float, default=10.0, help="clock length per tempo (the target: 60)")
    p.add_argument("--tempos", default="60,120,240")
    p.add_argument(
        "--clock-block",
        type=int,
        default=BLOCK,
        help="the engine's block for the clock runs: the JACK server's period (start jackd -p N)",
    )
    p.add_argument(
        "--only",
        choices=("latency", "sweep", "clock"),
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    p.add_argument("--json", type=Path, default=RESULTS / "midi.json")
    args = p.parse_args()
    parts = set(args.only or ("latency", "sweep", "clock"))
    model = aether_rt.load_model()
    out: dict[str, Any] = {"seconds": args.seconds, "repeats": args.repeats}

    if "latency" in parts:
        print(f"== MIDI CC 11 -> first output frame with its table ({args.changes} changes, {BLOCK}-frame blocks)")
        out["latency"] = lat = midi_latency(model, args.changes)
        keys = ("sent", "changes", "p50_ms", "p99_ms", "max_ms", "device_output_latency_ms")
        print_table(["sent", "timed", "p50 ms", "p99 ms", "max ms", "+ device output latency ms"],
                    [[lat[k] for k in keys]])  # fmt: skip

    if "sweep" in parts:
        print(f"\n== pedal sweep: 1000 CC/s for {args.seconds:g} s x {args.repeats}, spiral at 2 Hz, "
              f"{BLOCK}-frame blocks")  # fmt: skip
        out["sweep"] = swept = sweeps(model, args.seconds, args.repeats, JackLog(args.jack_log))
        print_sweeps(swept)

    if "clock" in parts:
        print(f"\n== MIDI clock, {args.clock_seconds:g} s per tempo, sync, fast pair at 2 beats per cycle, "
              f"{args.clock_block}-frame blocks, at the JACK server's rate")  # fmt: skip
        tempos = [int(b) for b in args.tempos.split(",") if b]
        rate = _server_rate()
        out["clock"] = clocks = [clock_follow(model, bpm, args.clock_seconds, args.clock_block, rate) for bpm in tempos]
        ckeys = list(clocks[0])
        print_table(ckeys, [[c[k] for k in ckeys] for c in clocks])
    write_json(args.json, out)


if __name__ == "__main__":
    main()
