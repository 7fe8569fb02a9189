"""MIDI input ports through python-rtmidi: which API, listing, opening by name or as a virtual port.

The API is JACK's when a JACK server runs (the same graph the audio may be in), else
the platform's default (ALSA on Linux, CoreMIDI on macOS, Windows MM). The port is
read by polling (:meth:`MidiPort.poll`), never through rtmidi's callback: with JACK that
callback runs in a JACK process thread and would take the GIL there, which could hold
up the whole JACK graph, audio included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from aether_rt.errors import UserError

#: The client name other programs see.
CLIENT_NAME = "aether-rt"
#: The virtual port's name (``run --midi`` without a NAME).
VIRTUAL_PORT = "midi in"
#: Messages rtmidi holds for the MIDI thread (~4 s of a 1000 CC/s pedal sweep).
QUEUE_LIMIT = 4096
#: How long a JACK port waits before it is closed, for the graph to settle (see MidiPort.close).
JACK_SETTLE_S = 0.1


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError:  # pragma: no cover - a dependency
        raise UserError("MIDI needs python-rtmidi", "pip install python-rtmidi") from None
    return rtmidi


def _open_api(api: int, name: str) -> Any:
    """A MidiIn on ``api``, or None when that API cannot start (no JACK server, no ALSA sequencer)."""
    rtmidi = _rtmidi()
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never start a JACK server behind the user's back
    try:
        return rtmidi.MidiIn(api, name=name, queue_size_limit=QUEUE_LIMIT)
    except (rtmidi.SystemError, RuntimeError, rtmidi.RtMidiError):
        return None


def open_client(name: str = CLIENT_NAME) -> tuple[Any, str]:
    """An rtmidi input client and its API's name: JACK if a server runs, else the platform default.

    Raises:
        UserError: no MIDI system can be opened.

    """
    rtmidi = _rtmidi()
    apis = [a for a in (rtmidi.API_UNIX_JACK,) if a in rtmidi.get_compiled_api()]
    apis += [a for a in rtmidi.get_compiled_api() if a not in apis and a != rtmidi.API_RTMIDI_DUMMY]
    for api in apis:
        midi_in = _open_api(api, name)
        if midi_in is not None:
            return midi_in, rtmidi.get_api_display_name(api)
    raise UserError(
        "no MIDI system is available (no JACK server runs, and the platform's MIDI cannot be opened)",
        "start JACK, or on Linux load ALSA's sequencer (modprobe snd-seq)",
    )


def input_ports() -> tuple[str, list[str]]:
    """The MIDI API's name and the input ports other programs offer (for ``aether-rt devices``).

    Raises:
        UserError: no MIDI system can be opened.

    """
    midi_in, api = open_client(CLIENT_NAME + "-list")
    try:
        return api, [p for p in midi_in.get_ports() if not p.startswith(CLIENT_NAME + "-list")]
    finally:
        midi_in.delete()


class MidiPort:
    """One open MIDI input (see the module docstring).

    Args:
        name: None for a virtual port other programs connect to; else part of an
            existing input port's name (case-insensitive; the first match).

    Raises:
        UserError: no port matches ``name`` (the message lists the ports there are).

    """

    def __init__(self, name: str | None = None) -> None:
        self._in, self.api = open_client()
        self._in.ignore_types(sysex=False, timing=False, active_sense=True)  # SysEx counted, clock followed
        if name is None:
            self._in.open_virtual_port(VIRTUAL_PORT)
            self.name = f"{CLIENT_NAME}:{VIRTUAL_PORT}"  # as JACK and ALSA name it (client:port)
            self.virtual = True
            return
        ports = [p for p in self._in.get_ports() if not p.startswith(CLIENT_NAME)]
        match = next((i for i, p in enumerate(self._in.get_ports()) if name.lower() in p.lower()
                      and not p.startswith(CLIENT_NAME)), None)  # fmt: skip
        if match is None:
            self._in.delete()
            raise UserError(
                f"no MIDI input port matches {name!r} ({self.api}); "
                + (f"there are: {', '.join(repr(p) for p in ports)}" if ports else "there are none"),
                "give part of one of those names to --midi, or --midi alone for a port others connect to",
            )
        self.name = self._in.get_ports()[match]
        self._in.open_port(match, "in")
        self.virtual = False

    def poll(self) -> tuple[list[int], float] | None:
        """The next message's bytes and the seconds since the one before, or None (also once closed)."""
        midi_in = self._in
        return None if midi_in is None else midi_in.get_message()

    def present(self) -> bool:
        """Whether the port it connected to is still there (a virtual port always is)."""
        if self.virtual:
            return True
        try:
            return self.name in self._in.get_ports()
        except Exception:
            return False

    def close(self) -> None:
        """Close the port and the client (once; closing again does nothing).

        With JACK it first waits :data:`JACK_SETTLE_S`. rtmidi unregisters its port while
        its client is still active, and JACK2's client library then removes the port from
        a list that its notification thread may be walking to answer a latency callback
        (jackaudio/jack2 issue 216): a use after free, and a segmentation fault. The server
        sends those callbacks a cycle or more after any graph change, asynchronously,
        so closing right after the audio stream or another client closed met one (seen once
        in a test run, in a rig that had just closed two clients and the audio stream). Waiting lets
        those notifications finish; a graph change by another program at that very
        moment is still a (remote) risk that only deactivating first would remove, which
        rtmidi does not offer.
        """
        if self._in is None:
            return
        midi_in, self._in = self._in, None
        try:
            if midi_in.get_current_api() == _rtmidi().API_UNIX_JACK:
                time.sleep(JACK_SETTLE_S)
            midi_in.close_port()
        finally:
            midi_in.delete()


PortFactory = Callable[[str | None], MidiPort]
