"""Recording a live performance (``aether-rt run --record DIR``) so it can be re-rendered.

A :class:`Recorder` thread drains the arena's tap (every input and output frame, as
the callback saw and produced them) into ``DIR/input.wav`` and ``DIR/output.wav``
(float32), and the adoption log (which table, by publish sequence and control tick, was
adopted at which frame) into memory. On :meth:`Recorder.finish` it writes ``DIR/session.json``: rate,
block size, control period, channels, model, every control-state change (with the
first sequence published under it) and every adoption. ``aether-rt render DIR/input.wav OUT --replay DIR`` follows it
(:class:`Session`), so the render is what was played.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.control import Controller, ControlState
from aether_rt.dsp import arena as ar
from aether_rt.dsp._kernels import read_acquire
from aether_rt.errors import UserError

SESSION_FILE = "session.json"
SESSION_FORMAT = "aether-rt-session"


class Recorder(threading.Thread):
    """Drains the tap and the adoption log while the engine runs (never touches audio).

    Args:
        folder: where to write (created).
        arena: the live arena (its tap and adoption log).
        controller: the controller (its state log).
        info: session facts to store (rate, block size, control period, model...).

    """

    def __init__(self, folder: Path, arena: ar.Arena, controller: Controller, info: dict[str, Any]) -> None:
        super().__init__(name="aether-recorder", daemon=True)
        import soundfile as sf

        self.folder, self.arena, self.controller, self.info = folder, arena, controller, info
        try:
            folder.mkdir(parents=True, exist_ok=True)
            rate = round(info["sample_rate"])
            layout = arena.layout
            self._in = sf.SoundFile(folder / "input.wav", "w", rate, layout.ins, subtype="FLOAT")
            self._out = sf.SoundFile(folder / "output.wav", "w", rate, layout.outs, subtype="FLOAT")
        except (OSError, RuntimeError) as exc:
            raise UserError(f"cannot record into {str(folder)!r}: {exc}", "give a writable folder") from None
        self._tap_read = 0
        self._adopt_read = 0
        self.adoptions: list[tuple[int, int, int]] = []
        self.lost_frames = 0
        self.lost_adoptions = 0
        self._finish = threading.Event()

    def run(self) -> None:
        """Drain every 50 ms until :meth:`finish`."""
        while not self._finish.wait(0.05):
            self.drain()
        self.drain()

    def drain(self) -> None:
        """Copy everything new from the tap and the adoption log."""
        words, layout = self.arena.words, self.arena.layout
        written = read_acquire(words, ar.H_TAP_WRITTEN)  # then the frames it counts
        capacity = layout.tap_frames
        if written - self._tap_read > capacity:  # fell behind: the oldest frames are gone
            self.lost_frames += written - self._tap_read - capacity
            self._tap_read = written - capacity
        for start in range(self._tap_read, written, capacity):
            stop = min(written, start + capacity)
            idx = np.arange(start, stop) % capacity
            rows = self.arena.tap[idx]
            self._in.write(rows[:, : layout.ins])
            self._out.write(rows[:, layout.ins :])
        self._tap_read = written
        logged = read_acquire(words, ar.H_ADOPT_WRITTEN)
        cap = layout.adopt_capacity
        if logged - self._adopt_read > cap:
            self.lost_adoptions += logged - self._adopt_read - cap
            self._adopt_read = logged - cap
        for i in range(self._adopt_read, logged):
            seq, tag, frame = self.arena.adopt_log[i % cap]
            self.adoptions.append((int(seq), int(tag), int(frame)))
        self._adopt_read = logged

    def finish(self) -> Path:
        """Stop, flush and write ``session.json``; returns its path."""
        self._finish.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self.drain()
        self._in.close()
        self._out.close()
        session = {
            "format": SESSION_FORMAT,
            **self.info,
            "states": [{"seq": q, "tick": t, "state": s} for q, t, s in self.controller.state_log],
            "adoptions": self.adoptions,
            "lost_frames": self.lost_frames,
            "lost_adoptions": self.lost_adoptions,
        }
        path = self.folder / SESSION_FILE
        path.write_text(json.dumps(session, indent=1) + "\n")
        return path


@dataclass(frozen=True)
class Session:
    """A recorded session, to replay offline."""

    sample_rate: float
    blocksize: int
    control_frames: int
    adoptions: list[tuple[int, int, int]]  # (sequence, tag, frame)
    states: list[tuple[int, ControlState]]  # (first sequence published under it, state)
    info: dict[str, Any]

    @classmethod
    def load(cls, folder: Path) -> Session:
        """Read ``folder/session.json``.

        Raises:
            UserError: missing or not a session written by ``aether-rt run --record``.

        """
        path = Path(folder) / SESSION_FILE if Path(folder).is_dir() else Path(folder)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != SESSION_FORMAT:
                raise ValueError("not an aether-rt session")
            return cls(
                sample_rate=float(data["sample_rate"]),
                blocksize=int(data["blocksize"]),
                control_frames=int(data["control_frames"]),
                adoptions=[(int(q), int(t), int(f)) for q, t, f in data["adoptions"]],
                states=[(int(s["seq"]), ControlState.from_dict(s["state"])) for s in data["states"]],
                info=data,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"cannot replay {str(path)!r}: {exc}", "give a folder written by `aether-rt run --record`"
            ) from None
