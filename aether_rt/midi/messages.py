"""MIDI bytes -> typed messages (no I/O): the messages aether-rt acts on, as data.

:class:`Parser` reads a byte stream the way a MIDI receiver must: running status
(data bytes after a channel message reuse its status), realtime bytes (clock, start,
stop...) anywhere, even inside another message, without disturbing it; SysEx and
every message aether-rt does not act on are skipped and counted, never raised.
Channels are 0-based here (MIDI's channel 1 is 0), as on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class ControlChange(NamedTuple):
    """A control change: ``control`` 0..127 set to ``value`` 0..127 on ``channel`` 0..15."""

    channel: int
    control: int
    value: int


class ProgramChange(NamedTuple):
    """A program change to ``program`` 0..127 on ``channel`` 0..15."""

    channel: int
    program: int


class Clock(NamedTuple):
    """A timing clock pulse (0xF8): 24 per quarter note."""


class Start(NamedTuple):
    """Start (0xFA): play from the beginning; the next pulse is beat 0."""


class Continue(NamedTuple):
    """Continue (0xFB): play on from where Stop left off."""


class Stop(NamedTuple):
    """Stop (0xFC)."""


Message = ControlChange | ProgramChange | Clock | Start | Continue | Stop

_REALTIME = {0xF8: Clock(), 0xFA: Start(), 0xFB: Continue(), 0xFC: Stop()}
#: Data bytes after each channel status (high nibble): note off/on, poly pressure, CC,
#: program, channel pressure, pitch bend.
_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}
#: Data bytes after each system common status (0xF0 SysEx and 0xF7 are handled apart).
_COMMON_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


class Parser:
    """A MIDI byte-stream parser with running status (one per input port).

    Attributes:
        counts: what was seen and not acted on, by kind: ``sysex`` (messages),
            ``ignored`` (notes, bends, pressure, song position, tune request, active
            sensing, reset...), ``stray`` (data bytes without a status, undefined
            status bytes, messages cut short by another status).

    """

    def __init__(self) -> None:
        self._status = 0  # running status (0: none)
        self._data: list[int] = []
        self._in_sysex = False
        self.counts = {"sysex": 0, "ignored": 0, "stray": 0}

    def feed(self, data: Iterable[int]) -> list[Message]:
        """The complete messages in ``data`` (bytes 0..255), in order; partial ones are kept for the next call."""
        out: list[Message] = []
        for byte in data:
            byte &= 0xFF
            if byte >= 0xF8:  # realtime: may appear anywhere, changes nothing else
                msg = _REALTIME.get(byte)
                if msg is not None:
                    out.append(msg)
                else:
                    self.counts["ignored"] += 1  # active sensing, reset, undefined
                continue
            if self._in_sysex:
                if byte == 0xF7:
                    self._in_sysex = False
                    self.counts["sysex"] += 1
                    continue
                if byte < 0x80:
                    continue  # SysEx payload
                self._in_sysex = False  # a status byte ends an unterminated SysEx
                self.counts["sysex"] += 1
            if byte == 0xF0:
                self._drop_partial()
                self._in_sysex, self._status = True, 0
            elif byte >= 0x80:
                self._drop_partial()
                if byte == 0xF7 or byte in (0xF4, 0xF5):
                    self.counts["stray"] += 1
                    self._status = 0
                elif byte >= 0xF0:  # system common: cancels running status
                    self._status = byte
                    if _COMMON_BYTES[byte] == 0:
                        self.counts["ignored"] += 1
                        self._status = 0
                else:
                    self._status = byte
            elif self._status == 0:
                self.counts["stray"] += 1
            else:
                self._data.append(byte)
                msg = self._complete()
                if msg is not None:
                    out.append(msg)
        return out

    def _drop_partial(self) -> None:
        if self._data:
            self.counts["stray"] += 1
            self._data = []

    def _complete(self) -> Message | None:
        status, data = self._status, self._data
        need = _COMMON_BYTES[status] if status >= 0xF0 else _DATA_BYTES[status >> 4]
        if len(data) < need:
            return None
        self._data = []
        if status >= 0xF0:
            self._status = 0  # system common messages have no running status
            self.counts["ignored"] += 1
            return None
        kind, channel = status >> 4, status & 0x0F
        if kind == 0xB:
            return ControlChange(channel, data[0], data[1])
        if kind == 0xC:
            return ProgramChange(channel, data[0])
        self.counts["ignored"] += 1
        return None


def parse(data: Iterable[int]) -> list[Message]:
    """The messages in one complete byte string (a fresh parser: no state carried)."""
    return Parser().feed(data)
