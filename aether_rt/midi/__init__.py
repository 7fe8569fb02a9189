"""MIDI input: pedals, footswitches, program changes and clock drive the control state.

Split by role: :mod:`~aether_rt.midi.messages` (bytes -> typed messages, no I/O),
:mod:`~aether_rt.midi.mapping` (the default map, learned and loaded maps, YAML),
:mod:`~aether_rt.midi.clock` (tempo and beat position from clock pulses),
:mod:`~aether_rt.midi.ports` (python-rtmidi: which API, listing, opening), and
:mod:`~aether_rt.midi.input` (the MIDI thread: parse, coalesce, apply to the
:class:`~aether_rt.control.StateBox`, learn). docs/midi.md describes the behaviour.
"""
