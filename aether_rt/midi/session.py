"""``run --midi``: the port, the map and the presets a live run's MIDI uses.

:func:`open_midi` checks the user's choices (the port exists, the map file is well
formed) before anything slow is loaded; :func:`start_midi` starts the MIDI thread once
the engine exists. The CLI flags are documented in docs/midi.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, NamedTuple

from aether_rt.control import ControlState
from aether_rt.errors import UserError
from aether_rt.midi.input import MidiInput
from aether_rt.midi.mapping import DEFAULT_MAP, MidiMap, default_map_file, load_map
from aether_rt.midi.ports import MidiPort, input_ports

log = logging.getLogger("aether_rt")


class MidiSetup(NamedTuple):
    """What ``--midi`` asked for, checked: the open port, the map, where learned maps go."""

    port: MidiPort
    midi_map: MidiMap
    map_path: Path


def choose_map(map_file: str | None) -> tuple[MidiMap, Path]:
    """The map to start with and where learned bindings are saved.

    ``--midi-map FILE``: that file (learned bindings are written back to it). Without
    it: the user's saved map (``default_map_file()``) if there is one, else the default map.

    Raises:
        UserError: a map file that cannot be read or is malformed (naming the key).

    """
    if map_file is not None:
        path = Path(map_file).expanduser()
        return load_map(path), path
    path = default_map_file()
    return (load_map(path) if path.is_file() else DEFAULT_MAP), path


def open_midi(args: argparse.Namespace) -> MidiSetup | None:
    """The MIDI input a run asked for (None without ``--midi``).

    Raises:
        UserError: no such port (naming the ports there are), no MIDI system, a bad map
            file, or ``--midi-map``/``--midi-learn`` without ``--midi``.

    """
    if args.midi is None:
        if args.midi_map or args.midi_learn:
            raise UserError("--midi-map and --midi-learn need a MIDI input", "add --midi (or --midi NAME)")
        return None
    midi_map, path = choose_map(args.midi_map)
    return MidiSetup(MidiPort(args.midi or None), midi_map, path)


def preset_programs(shelf: Any) -> Any:
    """Program Change n -> the n-th preset ``aether-rt presets`` lists (0-based), recalled by the shelf."""

    def program(n: int) -> tuple[str, ControlState] | None:
        names = shelf.names()
        if n >= len(names):
            return None
        return names[n], shelf.recall(names[n])

    return program


def start_midi(setup: MidiSetup | None, args: argparse.Namespace, engine: Any, shelf: Any) -> MidiInput | None:
    """Start the MIDI thread for a run (None without ``--midi``); arms ``--midi-learn``."""
    if setup is None:
        return None
    midi = MidiInput(engine.box, engine.clock, setup.port, midi_map=setup.midi_map,
                     program=preset_programs(shelf), map_path=setup.map_path,
                     stamp=engine.clock_stamp)  # fmt: skip
    if args.midi_learn:
        midi.learn(args.midi_learn)
    midi.start()
    return midi


def describe_inputs() -> str:
    """The MIDI input ports, for ``aether-rt devices``."""
    try:
        api, ports = input_ports()
    except UserError as exc:
        return f"MIDI inputs: none ({exc.message})"
    lines = [f"MIDI inputs ({api}):"] + [f"  {p}" for p in ports]
    if not ports:
        lines.append("  (none; run --midi opens a port other programs connect to)")
    return "\n".join(lines)
