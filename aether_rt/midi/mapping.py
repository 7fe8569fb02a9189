"""Which MIDI control drives which parameter: the default map, learned and loaded maps.

A :class:`Binding` ties a control change number (on one channel or any) to a
parameter of the registry (:mod:`aether_rt.params`), with a range (in the parameter's
units, or of its 0..1 form), an invert switch, and 14-bit resolution (CC n carries the
most significant 7 bits, CC n+32 the least). A :class:`MidiMap` holds the bindings and
whether program changes and clock are followed. Maps are YAML files (docs/midi.md);
learned ones are saved in the user config folder and loaded at the next start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from aether_rt.control import ControlState
from aether_rt.errors import UserError
from aether_rt.params import BY_NAME, param
from aether_rt.userdirs import config_dir

#: Controllers whose value carries 14 bits with their partner 32 above.
FINE_CONTROLS = range(32)
FINE_MAX = 16383


@dataclass(frozen=True)
class Binding:
    """One control change number driving one parameter.

    Attributes:
        control: the CC number 0..127 (with ``fine``, the coarse one, 0..31).
        param: the parameter's registry name (``sweep``, ``mix``...).
        channel: 0..15 (MIDI's channels 1..16), or None for any channel.
        fine: 14-bit: ``control`` is the most significant 7 bits, ``control + 32`` the rest.
        minimum: the value at the bottom of the pedal, in the parameter's units
            (numbers only; None: the bottom of its 0..1 form, see ``norm_range``).
        maximum: likewise at the top.
        norm_range: the part of the parameter's 0..1 form the travel covers (when
            ``minimum``/``maximum`` are not given).
        invert: the top of the travel gives the bottom of the range.

    """

    control: int
    param: str
    channel: int | None = None
    fine: bool = False
    minimum: float | None = None
    maximum: float | None = None
    norm_range: tuple[float, float] = (0.0, 1.0)
    invert: bool = False

    def controls(self) -> tuple[int, ...]:
        """The CC numbers this binding listens to."""
        return (self.control, self.control + 32) if self.fine else (self.control,)

    def hears(self, channel: int, control: int) -> bool:
        """Whether a CC ``control`` on ``channel`` moves this binding."""
        return (self.channel is None or self.channel == channel) and control in self.controls()


def apply_binding(binding: Binding, travel: float, state: ControlState, now_s: float) -> ControlState:
    """``state`` with ``binding``'s parameter set from a pedal position ``travel`` (0..1).

    Args:
        binding: which parameter, over which range.
        travel: 0 (heel, CC value 0) .. 1 (toe, 127 or 16383).
        state: the current state.
        now_s: the sample clock (rate changes keep the LFO's phase).

    """
    x = min(max(float(travel), 0.0), 1.0)
    if binding.invert:
        x = 1.0 - x
    p = param(binding.param)
    if binding.minimum is not None and binding.maximum is not None:
        _, hi, _ = p.norm_span(state)
        value = binding.minimum + x * (binding.maximum - binding.minimum)
        return p.put(state, min(max(value, p.floor(state)), hi), now_s)
    lo, hi = binding.norm_range
    return p.set_norm(state, lo + x * (hi - lo), now_s)


@dataclass(frozen=True)
class MidiMap:
    """What MIDI drives (see docs/midi.md).

    Attributes:
        bindings: control changes -> parameters (a CC drives the first binding that hears it).
        program_change: Program Change n loads the n-th preset of ``aether-rt presets``.
        clock: clock pulses set the tempo (and lock the LFO phase with sync); Start restarts the motion.
        channel: the one channel program changes are heard on (0..15), or None for any.

    """

    bindings: tuple[Binding, ...] = ()
    program_change: bool = True
    clock: bool = True
    channel: int | None = None

    def binding_for(self, channel: int, control: int) -> Binding | None:
        """The binding a CC ``control`` on ``channel`` moves, if any."""
        return next((b for b in self.bindings if b.hears(channel, control)), None)

    def learned(self, binding: Binding) -> MidiMap:
        """The map with ``binding`` added, replacing any binding on the same controls and channel."""
        taken = set(binding.controls())
        kept = tuple(
            b for b in self.bindings
            if not (taken & set(b.controls()) and (b.channel is None or binding.channel is None
                                                   or b.channel == binding.channel))
        )  # fmt: skip
        return replace(self, bindings=(binding, *kept))


#: The default map (docs/midi.md): expression pedal wah, mod wheel depth, volume mix, sustain footswitch bypass.
DEFAULT_MAP = MidiMap(
    bindings=(
        Binding(11, "sweep"),  # expression pedal: z along the fast pair's diagonal, like a wah
        Binding(1, "depth"),  # modulation wheel
        Binding(7, "mix"),  # channel volume
        Binding(64, "bypass"),  # sustain footswitch: >= 64 is bypassed
    )
)


def default_map_file() -> Path:
    """Where learned maps are saved, and loaded from at start when no ``--midi-map`` is given."""
    return config_dir() / "midi-map.yaml"


# -- YAML -------------------------------------------------------------------------------

_TOP_KEYS = {"controls", "program_change", "clock", "channel"}
_BINDING_KEYS = {"cc", "param", "channel", "fine", "min", "max", "norm_min", "norm_max", "invert"}


def _bad(path: Path, key: str, problem: str) -> UserError:
    return UserError(f"MIDI map {path}: {key}: {problem}", "see docs/midi.md for the file's format")


def _int(path: Path, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(path, key, f"must be a whole number {lo}..{hi}, got {value!r}")
    return value


def _bool(path: Path, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, key, f"must be true or false, got {value!r}")
    return value


def _float(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, key, f"must be a number, got {value!r}")
    return float(value)


def _channel(path: Path, key: str, value: Any) -> int | None:
    if value in (None, "all", "any"):
        return None
    return _int(path, key, value, 1, 16) - 1  # people count channels from 1


def _binding(path: Path, where: str, data: Any) -> Binding:
    if not isinstance(data, dict):
        raise _bad(path, where, f"must be a mapping (cc:, param:, ...), got {data!r}")
    unknown = set(data) - _BINDING_KEYS
    if unknown:
        keys = ", ".join(sorted(_BINDING_KEYS))
        raise _bad(path, f"{where}.{sorted(unknown)[0]}", f"unknown key; the keys are {keys}")
    for key in ("cc", "param"):
        if key not in data:
            raise _bad(path, f"{where}.{key}", "missing")
    name = data["param"]
    if name not in BY_NAME:
        raise _bad(path, f"{where}.param", f"no parameter {name!r}; there are: {', '.join(BY_NAME)}")
    fine = _bool(path, f"{where}.fine", data.get("fine", False))
    control = _int(path, f"{where}.cc", data["cc"], 0, 31 if fine else 127)
    lo_hi = [data.get("min"), data.get("max")]
    if (lo_hi[0] is None) != (lo_hi[1] is None):
        raise _bad(path, f"{where}.{'max' if lo_hi[1] is None else 'min'}", "min and max go together")
    minimum = maximum = None
    if lo_hi[0] is not None:
        p = BY_NAME[name]
        if p.kind != "number":
            raise _bad(path, f"{where}.min", f"{name} is a {p.kind}: use norm_min/norm_max, not min/max")
        minimum, maximum = _float(path, f"{where}.min", lo_hi[0]), _float(path, f"{where}.max", lo_hi[1])
        for key, value in (("min", minimum), ("max", maximum)):
            if not p.limits[0] <= value <= p.limits[1]:
                raise _bad(path, f"{where}.{key}", f"{value:g} is outside {name}'s range "
                           f"{p.limits[0]:g}..{p.limits[1]:g} {p.unit}".rstrip())  # fmt: skip
    norm = []
    for key, default in (("norm_min", 0.0), ("norm_max", 1.0)):
        value = _float(path, f"{where}.{key}", data.get(key, default))
        if not 0.0 <= value <= 1.0:
            raise _bad(path, f"{where}.{key}", f"must be in 0..1, got {value:g}")
        norm.append(value)
    return Binding(control, name, _channel(path, f"{where}.channel", data.get("channel")), fine, minimum, maximum,
                   (norm[0], norm[1]), _bool(path, f"{where}.invert", data.get("invert", False)))  # fmt: skip


def parse_map(data: Any, path: Path) -> MidiMap:
    """A map from a YAML document's data.

    Raises:
        UserError: a malformed map, naming the file and the key.

    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _bad(path, "(top)", "must be a mapping with controls:, program_change:, clock:, channel:")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _bad(path, sorted(unknown)[0], f"unknown key; the keys are {', '.join(sorted(_TOP_KEYS))}")
    controls = data.get("controls", [])
    if not isinstance(controls, list):
        raise _bad(path, "controls", "must be a list of bindings")
    return MidiMap(
        bindings=tuple(_binding(path, f"controls[{i}]", b) for i, b in enumerate(controls)),
        program_change=_bool(path, "program_change", data.get("program_change", True)),
        clock=_bool(path, "clock", data.get("clock", True)),
        channel=_channel(path, "channel", data.get("channel")),
    )


def load_map(path: Path) -> MidiMap:
    """Read a map file.

    Raises:
        UserError: the file cannot be read, is not YAML, or is malformed (naming the key).

    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read MIDI map {path}: {exc.strerror or exc}", "check the --midi-map path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"MIDI map {path} is not valid YAML: {exc}", "see docs/midi.md for the format") from None
    return parse_map(data, Path(path))


def map_data(midi_map: MidiMap) -> dict[str, Any]:
    """The YAML-ready form of a map (:func:`parse_map` reads it back)."""
    controls = []
    for b in midi_map.bindings:
        entry: dict[str, Any] = {"cc": b.control, "param": b.param}
        if b.channel is not None:
            entry["channel"] = b.channel + 1
        if b.fine:
            entry["fine"] = True
        if b.minimum is not None:
            entry.update(min=b.minimum, max=b.maximum)
        if b.norm_range != (0.0, 1.0):
            entry.update(norm_min=b.norm_range[0], norm_max=b.norm_range[1])
        if b.invert:
            entry["invert"] = True
        controls.append(entry)
    out: dict[str, Any] = {"controls": controls, "program_change": midi_map.program_change, "clock": midi_map.clock}
    if midi_map.channel is not None:
        out["channel"] = midi_map.channel + 1
    return out


def save_map(midi_map: MidiMap, path: Path) -> Path:
    """Write ``midi_map`` to ``path`` (atomically: a crash never leaves half a file).

    Raises:
        UserError: the folder cannot be written.

    """
    path = Path(path)
    text = "# aether-rt MIDI map (docs/midi.md)\n" + yaml.safe_dump(map_data(midi_map), sort_keys=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot save the MIDI map to {path}: {exc.strerror or exc}") from None
    return path
