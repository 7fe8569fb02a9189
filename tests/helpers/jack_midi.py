"""A JACK MIDI sender on the test server: what a foot controller's driver would send.

Events are queued with an absolute JACK frame time and written into the output port's
buffer at that frame inside the process cycle that covers it, so a clock's pulses are
exactly evenly spaced in the server's sample time.

The process callback is compiled (a Numba ``cfunc`` calling libjack through ctypes), as a
hardware controller's driver is C: a Python callback would wait for the GIL and run
Python in every cycle of the graph, and JACK counts the cycles it makes late against
every client (it made the MIDI benchmark's sender the client JACK most often found
unfinished). The queue is a single-producer/single-consumer ring in one int64 array: the
events ``(frame, byte start, size)`` and their bytes, published with release stores and
read with acquire loads (the engine's own intrinsics), so it is correct on weakly ordered
CPUs too. The ``JACK-Client`` package still opens the client and its port.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Iterable

import jack
import numpy as np
from numba import carray, cfunc, njit, types

from aether_rt.dsp._intrinsics import load_acquire, store_release

_LIBJACK = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
# Pointers go as uint64 (the ABI passes both in integer registers on x86-64 and AArch64).
_u64, _u32 = ctypes.c_uint64, ctypes.c_uint32
_last_frame_time = ctypes.CFUNCTYPE(_u32, _u64)(("jack_last_frame_time", _LIBJACK))
_port_buffer = ctypes.CFUNCTYPE(_u64, _u64, _u32)(("jack_port_get_buffer", _LIBJACK))
_clear_buffer = ctypes.CFUNCTYPE(None, _u64)(("jack_midi_clear_buffer", _LIBJACK))
_event_write = ctypes.CFUNCTYPE(ctypes.c_int, _u64, _u32, _u64, ctypes.c_size_t)(("jack_midi_event_write", _LIBJACK))

# The ring's header words; the events ([capacity, 3] int64) follow, then the bytes.
_CLIENT, _PORT, _BASE, _TOTAL, _EV_CAP, _BYTE_CAP = 0, 1, 2, 3, 4, 5
_EV_WRITE, _EV_READ, _BYTE_READ, _WRITTEN = 8, 9, 10, 11  # producer / consumer counters (monotonic)
_HEADER = 16
EVENT_CAPACITY = 1 << 16
BYTE_CAPACITY = 1 << 22


@cfunc(types.int32(types.uint32, types.voidptr))
def _process(frames, arg):  # pragma: no cover - runs in JACK's thread
    head = carray(arg, _HEADER, np.int64)
    ring = carray(arg, head[_TOTAL], np.int64)
    buf = _port_buffer(np.uint64(head[_PORT]), frames)
    _clear_buffer(buf)
    start = np.int64(_last_frame_time(np.uint64(head[_CLIENT])))
    ev_cap, byte_cap = ring[_EV_CAP], ring[_BYTE_CAP]
    data = ring[_BASE] + 8 * (_HEADER + 3 * ev_cap)
    written = load_acquire(ring, _EV_WRITE)  # then the events and bytes it counts
    read = ring[_EV_READ]
    while read < written:
        e = _HEADER + 3 * (read % ev_cap)
        at, first, size = ring[e], ring[e + 1], ring[e + 2]
        if at >= start + frames:
            break  # a later cycle's
        offset = max(at - start, 0)
        if _event_write(buf, np.uint32(offset), np.uint64(data + first % byte_cap), size) != 0:
            break  # the cycle's MIDI buffer is full: the rest goes in the next ones
        read += 1
        ring[_WRITTEN] += 1
        store_release(ring, _BYTE_READ, first + size)
    store_release(ring, _EV_READ, read)  # the slots and bytes before it are free again
    return 0


@njit(cache=True)
def _publish(ring, count):
    store_release(ring, _EV_WRITE, count)


@njit(cache=True)
def _consumed(ring):
    return load_acquire(ring, _EV_READ), load_acquire(ring, _BYTE_READ)


class JackMidiSender:
    """A JACK client with one MIDI output port.

    Args:
        name: the client's name (JACK makes it unique).

    """

    def __init__(self, name: str = "aether-test-sender") -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        words = _HEADER + 3 * EVENT_CAPACITY + BYTE_CAPACITY // 8
        self._ring = np.zeros(words, np.int64)
        self._bytes = self._ring[_HEADER + 3 * EVENT_CAPACITY :].view(np.uint8)
        self._events = self._ring[_HEADER : _HEADER + 3 * EVENT_CAPACITY].reshape(EVENT_CAPACITY, 3)
        ffi = jack._ffi
        self._ring[[_CLIENT, _PORT, _BASE, _TOTAL, _EV_CAP, _BYTE_CAP]] = [
            int(ffi.cast("uintptr_t", self.client._ptr)), int(ffi.cast("uintptr_t", self.port._ptr)),
            self._ring.ctypes.data, words, EVENT_CAPACITY, BYTE_CAPACITY,
        ]  # fmt: skip
        self._count = 0  # events queued (the producer's copy of _EV_WRITE)
        self._byte_end = 0  # bytes queued, monotonic (skips included)
        self._lock = threading.Lock()  # among producers; the process callback never takes it
        _publish(self._ring, 0), _consumed(self._ring)  # compiled (or loaded) now, not at the first event
        status = jack._lib.jack_set_process_callback(
            self.client._ptr,
            ffi.cast("JackProcessCallback", _process.address),
            ffi.cast("void *", self._ring.ctypes.data),
        )
        assert status == 0, f"jack_set_process_callback failed: {status}"
        self.client.activate()

    @property
    def rate_hz(self) -> int:
        return self.client.samplerate

    @property
    def written(self) -> int:
        """Events written into the port so far."""
        return int(self._ring[_WRITTEN])

    def connect_to(self, fragment: str) -> str:
        """Connect to the MIDI input port whose name contains ``fragment``; returns its full name."""
        deadline = time.monotonic() + 5.0
        while True:
            ports = [p.name for p in self.client.get_ports(fragment, is_midi=True, is_input=True)]
            if ports or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ports, f"no JACK MIDI input port matching {fragment!r}"
        self.client.connect(self.port, ports[0])
        return ports[0]

    def send(self, *messages: Iterable[int]) -> int:
        """Queue ``messages`` for the next cycle; returns the frame they are due at."""
        at = self.client.frame_time + self.client.blocksize
        self.schedule([(at, m) for m in messages])
        return at

    def schedule(self, events: Iterable[tuple[int, Iterable[int]]]) -> None:
        """Queue ``(frame, bytes)`` events (in frame order, after any queued); waits while the ring is full."""
        with self._lock:
            for at, data in events:
                self._push(int(at), bytes(data))

    def _push(self, at: int, data: bytes) -> None:
        size = len(data)
        assert 0 < size <= BYTE_CAPACITY // 4, f"a MIDI event of {size} bytes"
        first = self._byte_end
        if first % BYTE_CAPACITY + size > BYTE_CAPACITY:  # no room before the end: start again at 0
            first += BYTE_CAPACITY - first % BYTE_CAPACITY
        while True:
            ev_read, byte_read = _consumed(self._ring)
            if self._count - ev_read < EVENT_CAPACITY and first + size - byte_read <= BYTE_CAPACITY:
                break
            time.sleep(0.001)  # full: the callback frees slots as their frames pass
        pos = first % BYTE_CAPACITY
        self._bytes[pos : pos + size] = np.frombuffer(data, np.uint8)
        self._events[self._count % EVENT_CAPACITY] = (at, first, size)
        self._byte_end = first + size
        self._count += 1
        _publish(self._ring, self._count)  # the event and its bytes before the count

    def pending(self) -> int:
        """Events queued and not yet written."""
        return self._count - int(_consumed(self._ring)[0])

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class RemoteSender:
    """A :class:`JackMidiSender` in a process of its own, driven over a pipe.

    Its JACK process callback runs Python: in the test's process it would wait for the
    GIL behind the engine's threads, and JACK would then get its events late or drop
    them. Its own process keeps the clock it sends exact.
    """

    def __init__(self, name: str = "aether-test-sender") -> None:
        import subprocess
        import sys
        from pathlib import Path

        here = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen([sys.executable, "-m", "helpers.jack_midi", name], cwd=here, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        self.name = self._call("name")

    def _call(self, *command: object) -> object:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the JACK MIDI sender died"
        return json.loads(line)

    def connect_to(self, fragment: str) -> str:
        return str(self._call("connect", fragment))

    def send(self, *messages: Iterable[int]) -> int:
        return int(self._call("send", [list(m) for m in messages]))  # type: ignore[arg-type]

    def clock(self, bpm_frames_per_pulse: int, pulses: int, *, lead_frames: int = 4096) -> int:
        """Start, then ``pulses`` pulses ``bpm_frames_per_pulse`` apart from the returned frame (beat 0)."""
        return int(self._call("clock", bpm_frames_per_pulse, pulses, lead_frames))  # type: ignore[arg-type]

    def sweep(self, control: int, frames_apart: int, count: int) -> int:
        """``count`` CCs sweeping ``control`` up and down, ``frames_apart`` apart; returns the first's frame."""
        return int(self._call("sweep", control, frames_apart, count))  # type: ignore[arg-type]

    def pending(self) -> int:
        return int(self._call("pending"))  # type: ignore[arg-type]

    def close(self) -> None:
        if self.proc.poll() is None:
            self._call("quit")
        self.proc.wait(timeout=10)


def _serve(name: str) -> None:
    import sys

    sender = JackMidiSender(name)
    try:
        _answer(sender, sys.stdin)
    finally:  # also when the parent died (stdin at EOF): its process callback reads arrays this frees
        sender.close()


def _answer(sender: JackMidiSender, lines: Iterable[str]) -> None:
    """Answer the parent's commands, a JSON line each, until ``quit`` or the end of ``lines``."""
    import json

    for line in lines:
        command, *args = json.loads(line)
        if command == "name":
            out: object = sender.client.name
        elif command == "connect":
            out = sender.connect_to(args[0])
        elif command == "send":
            out = sender.send(*args[0])
        elif command == "clock":
            fpp, pulses, lead = args
            first = sender.client.frame_time + lead
            sender.schedule([(first - 100, [0xFA])] + [(first + k * fpp, [0xF8]) for k in range(pulses)])
            out = first
        elif command == "sweep":  # a pedal: CC ``control`` up and down, one event every ``frames_apart``
            control, frames_apart, count = args
            first = sender.client.frame_time + 2048
            values = [abs((k % 254) - 127) for k in range(count)]
            sender.schedule([(first + k * frames_apart, [0xB0, control, v]) for k, v in enumerate(values)])
            out = first
        elif command == "pending":
            out = sender.pending()
        else:
            print(json.dumps("bye"), flush=True)
            return
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    import sys

    _serve(sys.argv[1])
