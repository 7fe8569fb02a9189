"""A JACK MIDI sender on the test server (the ``JACK-Client`` package): what a foot controller would send.

Events are queued with an absolute JACK frame time and written into the output port's
buffer at that frame inside the process cycle that covers it, so a clock's pulses are
exactly evenly spaced in the server's sample time.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable

import jack


class JackMidiSender:
    """A JACK client with one MIDI output port.

    Args:
        name: the client's name (JACK makes it unique).

    """

    def __init__(self, name: str = "aether-test-sender") -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self._queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self._lock = threading.Lock()
        self.written = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    @property
    def rate_hz(self) -> int:
        return self.client.samplerate

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        start = self.client.last_frame_time
        with self._lock:
            while self._queue and self._queue[0][0] < start + frames:
                at, data = self._queue[0]
                try:
                    self.port.write_midi_event(max(0, at - start), data)
                except jack.JackErrorCode:  # the cycle's MIDI buffer is full: the rest goes in the next ones
                    break
                self._queue.popleft()
                self.written += 1

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
        """Queue ``(frame, bytes)`` events (in frame order, after any queued)."""
        with self._lock:
            self._queue.extend((int(at), bytes(data)) for at, data in events)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

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
    import json
    import sys

    sender = JackMidiSender(name)
    for line in sys.stdin:
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
            sender.close()
            print(json.dumps("bye"), flush=True)
            return
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    import sys

    _serve(sys.argv[1])
