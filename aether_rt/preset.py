"""YAML presets: a named control state (modulation, mix, gains, bypass, model).

A preset is a YAML mapping, read with ``yaml.safe_load`` and checked against a strict
schema: an unknown key, a wrong type or a value out of range is a :class:`PresetError`
naming the file, the key and what is allowed. Presets are found by name in the user's
folders (``--preset-dir``, then ``$XDG_CONFIG_HOME/aether-rt/presets``, by default
``~/.config/aether-rt/presets``) and then among the
shipped ones (package data: ``presets/`` in the source tree), or by path.

Schema (every key optional except ``description``). Written with numbers, a preset fits a
model of any latent size; a per-dim list must have one value per dim of the model it is
loaded with (checked against the loaded model everywhere: run, render, the listing, OSC
and the web page)::

    description: one line shown by `aether-rt presets`
    mode: spiral | drift | static | manual
    modulation:
      center: c | [z0, z1, ...]       # one number for every dim, or one per dim
      center_fast: c                  # the fast pair's centre, and every other dim's (instead of center)
      center_slow: c
      depth: d | [d0, d1, ...]        # one number for every dim, or one per dim
      depth_fast: d                   # the fast pair's radius (instead of depth)
      depth_slow: d                   # every other dim's depth (instead of depth)
      rate_fast_hz: 0..20             # beats per cycle with sync: 1/16..256
      rate_slow_hz: 0..20
      fast_dims: [a, b]               # the spatial pair; negative counts from the end ([-2, -1]: the last two)
      sync: true | false
      tempo_bpm: 20..400
      bound: 0..10                    # z stays within +-bound
      seed: integer                   # the drift walk
      slow_ratio: r | [r0, r1, ...]   # per-dim slow rate = rate_slow_hz * r (0.1..10)
    center_ir: path to an impulse response (relative to the preset file); the centre
               becomes its latent point at load: the best fit inside the learned region
    mix: 0..1
    input_gain_db: -60..24
    output_gain_db: -60..24
    bypass: true | false
    smoothing:
      params_s: 0.001..1              # glide of gains, mix and bypass (default 0.01)
      crossfade_s: 0..30              # crossfade when this preset is loaded while running (default 0.5)
    model: path to a model folder or file (relative to the preset file)
    envelope:                         # the player's dynamics move z (a latent auto-wah)
      amount: a | [a0, a1, ...]       # z moved per dim at full scale (-2 bound..2 bound); or
      amount_fast: a                  # the fast pair's amount, and
      amount_slow: a                  # every other dim's (default 0)
      attack_ms: 0.5..1000            # the level follower's rise time constant (default 10)
      release_ms: 5..5000             # its fall (default 200)
      floor_db: -96..-6               # the input level that moves z by nothing (default -48)

:func:`save_preset` writes a state back in this schema (``aether-rt presets --save``,
``/aether/preset/save``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aether_rt.control import PARAM_SMOOTHING_RANGE_S, ControlState
from aether_rt.errors import UserError
from aether_rt.modulation import (
    DEPTH_FAST,
    DEPTH_SLOW,
    FAST_DIMS,
    MAX_MORPH_S,
    MAX_SLOW_RATIO,
    MIN_SLOW_RATIO,
    MODES,
    Modulation,
    pair_depths,
)
from aether_rt.params import (
    BEATS_RANGE,
    ENVELOPE_ATTACK_RANGE_MS,
    ENVELOPE_FLOOR_RANGE_DB,
    ENVELOPE_RELEASE_RANGE_MS,
    GAIN_RANGE_DB,
    MIX_RANGE,
    RATE_RANGE_HZ,
    TEMPO_RANGE_BPM,
)
from aether_rt.userdirs import user_presets_dir

SUFFIXES = (".yaml", ".yml")


class PresetError(UserError):
    """A preset that cannot be used, with the file and key at fault."""


@dataclass(frozen=True)
class Preset:
    """A loaded preset.

    Attributes:
        name: file name without the suffix.
        description: the one-line description.
        state: the control state it describes (on top of the defaults), for the latent size it was read for.
        model: a model path, if the preset names one.
        path: where it was read from.
        given: the keys the file set (``mode``, ``modulation.depth``, ``mix``...).
        center_ir: an impulse response whose latent point is the centre (see :meth:`state_for`).

    """

    name: str
    description: str
    state: ControlState
    model: Path | None
    path: Path
    given: frozenset[str]
    center_ir: Path | None = None

    def state_for(self, model: Any) -> ControlState:
        """The state, with ``center_ir`` encoded by ``model`` (a LoadedModel) when the preset has one.

        The centre is the IR's refined point: the best fit inside the learned region
        (:func:`aether_rt.models.fit.refine_latents`), not the encoder's mean, which can
        land far outside it.

        Raises:
            PresetError: the impulse response cannot be read or used.

        """
        if self.center_ir is None:
            return self.state
        from aether_rt.models.fit import encode_ir_cached

        try:
            z = encode_ir_cached(model, self.center_ir).z
        except UserError as exc:
            raise PresetError(f"{self.path}: center_ir: {exc.args[0]}", *exc.args[1:]) from None
        mod = self.state.modulation
        center = tuple(float(v) for v in np.clip(z, -mod.bound, mod.bound))
        return replace(self.state, modulation=replace(mod, center=center))


def _number(where: str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PresetError(f"{where}: {key} must be a number in [{low:g}, {high:g}], got {value!r}")
    if not low <= value <= high:
        raise PresetError(f"{where}: {key} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _flag(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PresetError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _per_dim(where: str, key: str, value: Any, dims: int, low: float, high: float) -> tuple[float, ...]:
    """One number for every dim, or a list of one per dim of the model (``dims``)."""
    if isinstance(value, list):
        if len(value) != dims:
            raise PresetError(
                f"{where}: {key} has {len(value)} values but the model has {dims} latent dims",
                "give one value per dim, or one number for every dim (see docs/presets.md)",
            )
        return tuple(_number(where, f"{key}[{i}]", v, low, high) for i, v in enumerate(value))
    return (_number(where, key, value, low, high),) * dims


def _fast_dims(where: str, key: str, value: Any, dims: int) -> tuple[int, int]:
    """Two different dims of the model; a negative one counts from the end (-1: the last)."""
    ok = isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)
    if not ok:
        raise PresetError(f"{where}: {key} must be two different dims (integers), got {value!r}")
    resolved = [v + dims if v < 0 else v for v in value]
    if not all(0 <= v < dims for v in resolved) or resolved[0] == resolved[1]:
        raise PresetError(
            f"{where}: {key} {value!r} is not two different dims of the model, which has {dims} latent dims",
            f"use dims in 0..{dims - 1}, or count from the end: [-2, -1] is the last two",
        )
    return resolved[0], resolved[1]


_TOP = {"description", "mode", "modulation", "mix", "input_gain_db", "output_gain_db", "bypass", "model",
        "smoothing", "center_ir", "envelope"}  # fmt: skip
_ENVELOPE = {"amount", "amount_fast", "amount_slow", "attack_ms", "release_ms", "floor_db"}
_MODULATION = {"center", "center_fast", "center_slow", "depth", "depth_fast", "depth_slow", "rate_fast_hz",
               "rate_slow_hz", "fast_dims", "sync", "tempo_bpm", "bound", "seed", "slow_ratio"}  # fmt: skip
_SMOOTHING = {"params_s", "crossfade_s"}


def _unknown(where: str, section: str, data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise PresetError(f"{where}: unknown key {section}{extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def parse_preset(data: Any, path: Path, latent_dim: int) -> Preset:
    """Check a preset's parsed YAML against the schema and build the :class:`Preset` for a model.

    Args:
        data: the parsed YAML.
        path: where it was read from (named in errors; relative paths start there).
        latent_dim: the latent size of the model it will run with: per-dim lists and
            ``fast_dims`` are checked against it, numbers fill every dim.

    Raises:
        PresetError: naming the file, the key and what is allowed.

    """
    where = str(path)
    if not isinstance(data, dict):
        raise PresetError(f"{where}: a preset is a YAML mapping of keys to values, got {type(data).__name__}")
    _unknown(where, "", data, _TOP)
    description = data.get("description")
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise PresetError(f"{where}: description must be one line of text")
    given: set[str] = {k for k in data if k != "description"}
    mod: dict[str, Any] = {}
    if "mode" in data:
        if data["mode"] not in MODES:
            raise PresetError(f"{where}: mode must be one of {', '.join(MODES)}, got {data['mode']!r}")
        mod["mode"] = data["mode"]
    section = data.get("modulation", {})
    if not isinstance(section, dict):
        raise PresetError(f"{where}: modulation must be a mapping of keys to values")
    _unknown(where, "modulation.", section, _MODULATION)
    given |= {f"modulation.{k}" for k in section}
    given.discard("modulation")
    bound = _number(where, "modulation.bound", section.get("bound", 2.0), 0.01, 10.0)
    sync = _flag(where, "modulation.sync", section.get("sync", False))
    rate_low, rate_high = BEATS_RANGE if sync else RATE_RANGE_HZ
    for key, value in section.items():
        name = f"modulation.{key}"
        if key == "center":
            mod[key] = _per_dim(where, name, value, latent_dim, -bound, bound)
        elif key == "depth":
            mod[key] = _per_dim(where, name, value, latent_dim, 0.0, 2.0 * bound)
        elif key in ("rate_fast_hz", "rate_slow_hz"):
            mod[key] = 0.0 if value == 0 else _number(where, name, value, rate_low, rate_high)
        elif key in ("center_fast", "center_slow"):
            mod[key] = _number(where, name, value, -bound, bound)
        elif key in ("depth_fast", "depth_slow"):
            mod[key] = _number(where, name, value, 0.0, 2.0 * bound)
        elif key == "fast_dims":
            mod[key] = _fast_dims(where, name, value, latent_dim)
        elif key == "tempo_bpm":
            mod[key] = _number(where, name, value, *TEMPO_RANGE_BPM)
        elif key == "slow_ratio":
            mod[key] = _per_dim(where, name, value, latent_dim, MIN_SLOW_RATIO, MAX_SLOW_RATIO)
        elif key == "seed":
            if type(value) is not int:
                raise PresetError(f"{where}: {name} must be an integer, got {value!r}")
            mod[key] = value
        else:  # sync, bound: checked above
            mod[key] = sync if key == "sync" else bound
    top: dict[str, Any] = {}
    if "mix" in data:
        top["mix"] = _number(where, "mix", data["mix"], *MIX_RANGE)
    for key in ("input_gain_db", "output_gain_db"):
        if key in data:
            top[key] = _number(where, key, data[key], *GAIN_RANGE_DB)
    if "bypass" in data:
        top["bypass"] = _flag(where, "bypass", data["bypass"])
    smoothing = data.get("smoothing", {})
    if not isinstance(smoothing, dict):
        raise PresetError(f"{where}: smoothing must be a mapping of keys to values")
    _unknown(where, "smoothing.", smoothing, _SMOOTHING)
    given |= {f"smoothing.{k}" for k in smoothing}
    given.discard("smoothing")
    if "params_s" in smoothing:
        top["param_smoothing_s"] = _number(where, "smoothing.params_s", smoothing["params_s"], *PARAM_SMOOTHING_RANGE_S)
    if "crossfade_s" in smoothing:
        top["crossfade_s"] = _number(where, "smoothing.crossfade_s", smoothing["crossfade_s"], 0.0, MAX_MORPH_S)
    center_ir = None
    if "center_ir" in data:
        if not isinstance(data["center_ir"], str) or not data["center_ir"]:
            raise PresetError(f"{where}: center_ir must be the path of an impulse response file (WAV, FLAC, AIFF)")
        if "modulation.center" in given:
            raise PresetError(f"{where}: give either center_ir or modulation.center, not both")
        center_ir = (path.parent / os.path.expanduser(data["center_ir"])).resolve()
        if not center_ir.is_file():
            raise PresetError(f"{where}: center_ir: no such file {str(center_ir)!r}")
    model = _model_path(data, path)
    mod.update(_envelope(where, data.get("envelope"), latent_dim, mod.get("fast_dims", FAST_DIMS), bound, given))
    if "center_fast" in mod or "center_slow" in mod:
        if "center" in mod or "center_ir" in data:
            raise PresetError(f"{where}: give one of modulation.center, center_fast/center_slow or center_ir")
        pair = tuple(d % latent_dim for d in mod.get("fast_dims", FAST_DIMS)) if latent_dim >= 2 else (0,)
        fast, slow = mod.pop("center_fast", 0.0), mod.pop("center_slow", 0.0)
        mod["center"] = tuple(fast if d in pair else slow for d in range(latent_dim))
    if "depth" in mod and ("depth_fast" in mod or "depth_slow" in mod):
        raise PresetError(f"{where}: give either modulation.depth or depth_fast/depth_slow, not both")
    fast, slow = mod.pop("depth_fast", DEPTH_FAST), mod.pop("depth_slow", DEPTH_SLOW)
    if "depth" not in mod:
        mod["depth"] = pair_depths(latent_dim, mod.get("fast_dims", FAST_DIMS), fast, slow)
    try:
        state = ControlState(modulation=Modulation.for_latent_dim(latent_dim, **mod), **top)
    except ValueError as exc:
        raise PresetError(f"{where}: {exc}") from None
    return Preset(path.stem, description.strip(), state, model, path, frozenset(given), center_ir)


def _envelope(where: str, section: Any, latent_dim: int, fast_dims: Any, bound: float, given: set[str]) -> dict:
    """The ``envelope:`` section as Modulation fields (none without it)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise PresetError(f"{where}: envelope must be a mapping of keys to values")
    _unknown(where, "envelope.", section, _ENVELOPE)
    given |= {f"envelope.{k}" for k in section}
    given.discard("envelope")
    out: dict[str, Any] = {}
    limit = 2.0 * bound
    if "amount" in section:
        if "amount_fast" in section or "amount_slow" in section:
            raise PresetError(f"{where}: give either envelope.amount or amount_fast/amount_slow, not both")
        out["envelope"] = _per_dim(where, "envelope.amount", section["amount"], latent_dim, -limit, limit)
    else:
        fast = _number(where, "envelope.amount_fast", section.get("amount_fast", 0.0), -limit, limit)
        slow = _number(where, "envelope.amount_slow", section.get("amount_slow", 0.0), -limit, limit)
        pair = fast_dims if latent_dim >= 2 else (0,)
        pair = tuple(d % latent_dim for d in pair)
        out["envelope"] = tuple(fast if d in pair else slow for d in range(latent_dim))
    for key, field, (lo, hi) in (("attack_ms", "envelope_attack_ms", ENVELOPE_ATTACK_RANGE_MS),
                                 ("release_ms", "envelope_release_ms", ENVELOPE_RELEASE_RANGE_MS),
                                 ("floor_db", "envelope_floor_db", ENVELOPE_FLOOR_RANGE_DB)):  # fmt: skip
        if key in section:
            out[field] = _number(where, f"envelope.{key}", section[key], lo, hi)
    return out


def _model_path(data: dict[str, Any], path: Path) -> Path | None:
    if "model" not in data:
        return None
    if not isinstance(data["model"], str) or not data["model"]:
        raise PresetError(f"{path}: model must be a path to a model folder or file")
    return (path.parent / os.path.expanduser(data["model"])).resolve()


def _read(path: Path) -> Any:
    """A preset file's parsed YAML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read preset {str(path)!r}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def load_preset_file(path: Path, latent_dim: int) -> Preset:
    """Read and check one preset file for a model with ``latent_dim`` dims (see :func:`parse_preset`)."""
    return parse_preset(_read(path), Path(path), latent_dim)


def preset_model(path: Path) -> Path | None:
    """The model a preset file names (None: it names none).

    Read before the model is loaded, since the model decides the latent size the rest of
    the file is checked against (:func:`load_preset_file`).

    Raises:
        PresetError: the file cannot be read, or its ``model`` is not a path.

    """
    data = _read(path)
    return _model_path(data, Path(path)) if isinstance(data, dict) else None  # the full check names the rest


def search_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Where presets are looked up by name, first match wins: ``extra``, the user folder, the shipped ones."""
    shipped = Path(str(resources.files("aether_rt.presets")))
    return [*(extra or []), user_presets_dir(), shipped]


def available(extra: list[Path] | None = None) -> dict[str, Path]:
    """Every preset name that can be loaded, with its file (earlier folders shadow later ones)."""
    found: dict[str, Path] = {}
    for folder in search_dirs(extra):
        if folder.is_dir():
            for file in sorted(folder.iterdir()):
                if file.suffix in SUFFIXES and file.stem not in found:
                    found[file.stem] = file
    return found


def locate_preset(spec: str, extra: list[Path] | None = None) -> Path:
    """The file of a preset given by name (see :func:`search_dirs`) or by path.

    Raises:
        PresetError: no such preset (the message lists the names there are).

    """
    path = Path(spec).expanduser()
    if path.suffix in SUFFIXES or os.sep in spec:
        if not path.is_file():
            raise PresetError(f"preset file {spec!r} does not exist")
        return path
    names = available(extra)
    if spec not in names:
        raise PresetError(
            f"no preset named {spec!r}; there are: {', '.join(sorted(names)) or 'none'}",
            "`aether-rt presets` lists them with their descriptions",
        )
    return names[spec]


def find_preset(spec: str, extra: list[Path] | None, latent_dim: int) -> Preset:
    """A preset by name (see :func:`search_dirs`) or by path, for a model with ``latent_dim`` dims.

    Raises:
        PresetError: no such preset (the message lists the names there are), or a bad one.

    """
    return load_preset_file(locate_preset(spec, extra), latent_dim)


#: A preset name that can be saved and recalled by name: no path, no hidden file.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it is a plain preset name (never a path).

    Raises:
        PresetError: it is not.

    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name.endswith(SUFFIXES) or ".." in name:
        raise PresetError(
            f"{name!r} is not a preset name",
            "use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 64), without a suffix",
        )
    return name


def preset_data(state: ControlState, description: str) -> dict[str, Any]:
    """A state in the preset schema (the motion settled: a running crossfade is not kept).

    Values the same on every dim are written as one number (the fast pair's and the
    other dims' depths as ``depth_fast``/``depth_slow``), so such a preset fits a model
    of any latent size; the others are per-dim lists.
    """
    mod = state.modulation

    def num(v: float) -> float | int:
        r = round(float(v), 6)
        return int(r) if r.is_integer() else r

    def per_dim(values: tuple[float, ...]) -> Any:
        out = [num(v) for v in values]
        return out[0] if len(set(out)) == 1 else out

    pair = [num(mod.depth[d]) for d in mod.fast_dims] if mod.latent_dim >= 2 else []
    rest = {num(v) for i, v in enumerate(mod.depth) if i not in mod.fast_dims}
    if len(set(pair)) == 1 and len(rest) <= 1:
        depth = {"depth_fast": pair[0], **({"depth_slow": rest.pop()} if rest else {})}
    else:
        depth = {"depth": per_dim(mod.depth)}
    modulation: dict[str, Any] = {
        "center": per_dim(mod.center),
        **depth,
        "rate_fast_hz": num(mod.rate_fast_hz),
        "rate_slow_hz": num(mod.rate_slow_hz),
        **({"fast_dims": list(mod.fast_dims)} if mod.latent_dim >= 2 else {}),
        "sync": mod.sync,
        "tempo_bpm": num(mod.tempo_bpm),
        "bound": num(mod.bound),
        "seed": mod.seed,
    }
    if mod.slow_ratio is not None:
        modulation["slow_ratio"] = per_dim(mod.slow_ratio)
    envelope: dict[str, Any] = {}
    if mod.envelope is not None:
        env_pair = {num(mod.envelope[d]) for d in mod.fast_dims} if mod.latent_dim >= 2 else set()
        env_rest = {num(v) for i, v in enumerate(mod.envelope) if i not in mod.fast_dims}
        if len(env_pair) == 1 and len(env_rest) <= 1:
            amounts = {"amount_fast": env_pair.pop(), **({"amount_slow": env_rest.pop()} if env_rest else {})}
        else:
            amounts = {"amount": per_dim(mod.envelope)}
        times = {"attack_ms": num(mod.envelope_attack_ms), "release_ms": num(mod.envelope_release_ms)}
        envelope = {"envelope": {**amounts, **times, "floor_db": num(mod.envelope_floor_db)}}
    return {
        "description": " ".join(description.split()) or "saved",
        "mode": mod.mode,
        "modulation": modulation,
        "mix": num(state.mix),
        "input_gain_db": num(state.input_gain_db),
        "output_gain_db": num(state.output_gain_db),
        "bypass": state.bypass,
        "smoothing": {"params_s": num(state.param_smoothing_s), "crossfade_s": num(state.crossfade_s)},
        **envelope,
    }


def save_preset(
    state: ControlState, name: str, description: str, folder: Path | None = None, *, overwrite: bool = False
) -> Path:
    """Write ``state`` as preset ``name`` into ``folder`` (default: the user folder).

    Raises:
        PresetError: a bad name, an existing file without ``overwrite``, or a folder that
            cannot be written.

    """
    check_name(name)
    folder = (folder or user_presets_dir()).expanduser()
    path = folder / f"{name}.yaml"
    if path.exists() and not overwrite:
        raise PresetError(f"preset {str(path)!r} exists", "choose another name, or overwrite it (--force)")
    text = yaml.safe_dump(preset_data(state, description), sort_keys=False, default_flow_style=None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.yaml.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # never a half-written preset
    except OSError as exc:
        raise PresetError(f"cannot write preset {str(path)!r}: {exc}") from None
    return path


def recall(name: str, extra: list[Path] | None, model: Any) -> Preset:
    """A preset by *name only* (never a path) for a running engine with ``model``.

    What OSC and the web page load: a remote client can name a preset in the preset
    folders but cannot make the engine read an arbitrary file.

    Raises:
        PresetError: not a plain name, no such preset, a bad one, or one that needs
            another model than the running one.

    """
    check_name(name)
    names = available(extra)
    if name not in names:
        raise PresetError(f"no preset named {name!r}; there are: {', '.join(sorted(names)) or 'none'}")
    preset = load_preset_file(names[name], model.config.latent_dim)
    running = getattr(model, "path", None)
    if preset.model is not None and running is not None and Path(preset.model).resolve() != Path(running).resolve():
        raise PresetError(
            f"preset {name!r} uses the model {str(preset.model)!r}, not the running one",
            f"restart with --preset {name} to switch models",
        )
    return preset


class PresetShelf:
    """The presets a live run loads and saves by name, and which one it has now.

    One shelf is shared by the OSC server and the web page, so a preset loaded from
    either shows as the current one on both.

    Args:
        dirs: extra preset folders (the first also receives saved presets; default: the user folder).
        model: the running model (presets for another model are refused).
        current: the preset the run started with.

    """

    def __init__(self, dirs: list[Path], model: Any, current: str = "") -> None:
        self.dirs, self.model, self.current = list(dirs), model, current

    def names(self) -> list[str]:
        """Every preset name the run can load, in ``aether-rt presets``' order (MIDI program numbers)."""
        return list(available(self.dirs))

    def recall(self, name: str) -> ControlState:
        """Preset ``name`` as a control state; it becomes the current one.

        Raises:
            PresetError: see :func:`recall`.

        """
        state = recall(name, self.dirs, self.model).state_for(self.model)
        self.current = name
        return state

    def save(self, name: str, state: ControlState, source: str = "a live run") -> Path:
        """Save ``state`` as ``name`` (never overwriting); it becomes the current one.

        Raises:
            PresetError: see :func:`save_preset`.

        """
        path = save_preset(state, name, f"Saved from {source}.", self.dirs[0] if self.dirs else user_presets_dir())
        self.current = name
        return path
