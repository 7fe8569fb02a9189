"""The web page's messages (docs/web.md): what the page may send, checked; what the server sends, built.

Pure functions, no sockets, so every rule is testable on its own. The page's parameter
names are the OSC addresses without ``/aether/`` (``mix``, ``z/0``, ``rate/fast/norm``),
applied by the same :class:`~aether_rt.addresses.Addresses` table, so a slider and a TouchOSC
fader mean the same thing. One difference: OSC clamps an out-of-range value, the page's
messages are refused with an error reply (a page that sends 7 for a ±3 slider is broken,
and saying so is more useful than guessing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aether_rt.addresses import SCALARS, Addresses, RejectedError, state_view
from aether_rt.control import ControlState
from aether_rt.dsp.biquad import section_response_db
from aether_rt.modulation import LEARNED_BOUND, MODES
from aether_rt.params import BY_NAME

PROTOCOL_VERSION = 1
#: Largest message the page may send (a set is ~60 bytes; a preset save a few hundred).
MAX_MESSAGE_BYTES = 4096
#: The response plot's frequency grid: log-spaced (the plot's axis), 20 Hz up to 20 kHz or Nyquist.
N_PLOT_FREQS = 160
#: The plot's curves are sent in tenths of a dB, as integers (half the bytes of floats, and
#: far finer than a screen pixel).
DB_STEP = 0.1
MESSAGE_TYPES = ("set", "preset", "save", "learn")
#: The z sliders' reach (|z| <= 3); the region the model learned is LEARNED_BOUND (2).
Z_SLIDER_BOUND = 3.0
_FLAGS = ("bypass", "sync")


class ProtocolError(Exception):
    """A message the server refuses: the text says why; ``request_id`` echoes the message's id."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    """A checked message from the page.

    Attributes:
        kind: ``set``, ``preset`` (load by name), ``save`` (the current state, by name) or
            ``learn`` (bind the next MIDI control change to ``param``, a registry name).
        request_id: the page's number for the reply (None: the page wants no ack).
        param: for ``set``: the parameter (an OSC address without ``/aether/``).
        value: for ``set``: the value; for ``preset``/``save``: the name.

    """

    kind: str
    request_id: int | None
    param: str
    value: Any


def param_names(latent_dim: int) -> list[str]:
    """Every parameter a ``set`` may name."""
    scalars = [a.removeprefix("/aether/") for a in SCALARS]
    dims = [f"{k}/{i}" for k in ("z", "center") for i in range(latent_dim)]
    return ["z", "center", *dims, *scalars, *(s + "/norm" for s in scalars), "mode", *_FLAGS, "reset"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_value(param: str, value: Any, latent_dim: int, rid: int | None) -> list[Any]:
    """The value as the address's argument list, or ProtocolError for the wrong type or shape."""
    if param in ("z", "center"):
        if not (isinstance(value, list) and len(value) == latent_dim and all(_is_number(v) for v in value)):
            raise ProtocolError(f"{param}: expected a list of {latent_dim} finite numbers", rid)
        return list(value)
    if param == "mode":
        if not isinstance(value, str):
            raise ProtocolError(f"mode: expected one of {', '.join(MODES)}", rid)
        return [value]
    if param in _FLAGS:
        if not isinstance(value, bool):
            raise ProtocolError(f"{param}: expected true or false", rid)
        return [value]
    if param == "reset":
        if value is not True:
            raise ProtocolError("reset: expected true", rid)
        return []
    if not _is_number(value):
        raise ProtocolError(f"{param}: expected a finite number", rid)
    return [value]


def parse_request(text: str | bytes, latent_dim: int) -> Request:
    """Check one message from the page (JSON text).

    Raises:
        ProtocolError: not JSON, not an object, an unknown type or parameter, a missing or
            extra field, or a value of the wrong type or shape. Ranges are checked when
            the change is applied (:func:`apply_set`).

    """
    if isinstance(text, bytes):
        raise ProtocolError("messages are JSON text, not binary")
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} characters; the limit is {MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message is a JSON object with a 'type'")
    rid = msg.get("id")
    if rid is not None and not (isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 2**53):
        raise ProtocolError("id: expected a non-negative integer")
    kind = msg.get("type")
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"type: expected one of {', '.join(MESSAGE_TYPES)}, got {kind!r}", rid)
    fields = {"set": {"param", "value"}, "learn": {"param"}}.get(kind, {"name"})
    allowed = {"type", "id", *fields}
    extra = sorted(set(msg) - allowed)
    if extra:
        raise ProtocolError(f"{kind}: unknown field(s) {', '.join(map(repr, extra))}", rid)
    if kind == "set":
        param = msg.get("param")
        if param not in param_names(latent_dim):
            kind_dim = param.split("/") if isinstance(param, str) else []
            if len(kind_dim) == 2 and kind_dim[0] in ("z", "center") and kind_dim[1].isdigit():
                raise ProtocolError(
                    f"param: {param!r}: the model has {latent_dim} latent dims "
                    f"({kind_dim[0]}/0 .. {kind_dim[0]}/{latent_dim - 1})",
                    rid,
                )
            raise ProtocolError(f"param: unknown parameter {param!r} (see docs/web.md)", rid)
        if "value" not in msg:
            raise ProtocolError(f"{param}: no 'value'", rid)
        return Request(kind, rid, param, _check_value(param, msg["value"], latent_dim, rid))
    if kind == "learn":
        param = msg.get("param")
        if param not in BY_NAME:
            raise ProtocolError(f"learn: unknown parameter {param!r}; MIDI learns {', '.join(BY_NAME)}", rid)
        return Request(kind, rid, param, None)
    name = msg.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{kind}: expected a preset 'name'", rid)
    return Request(kind, rid, "", name)


def page_addresses(latent_dim: int) -> Addresses:
    """The address table with the page's rules: strict ranges, z sliders out to :data:`Z_SLIDER_BOUND`."""
    return Addresses(latent_dim, strict=True, z_limit=Z_SLIDER_BOUND)


def apply_set(addresses: Addresses, state: ControlState, request: Request, now_s: float) -> ControlState:
    """The state after a checked ``set`` at sample-clock time ``now_s`` (``addresses``: :func:`page_addresses`).

    Raises:
        ProtocolError: the value is out of range, or the state refuses it.

    """
    try:
        return addresses.apply(state, "/aether/" + request.param, request.value, now_s)
    except (RejectedError, ValueError) as exc:
        raise ProtocolError(str(exc).removeprefix("/aether/"), request.request_id) from None


def plot_freqs_hz(sample_rate_hz: float) -> np.ndarray:
    """The response plot's frequency grid."""
    return np.geomspace(20.0, min(20_000.0, 0.49 * sample_rate_hz), N_PLOT_FREQS)


def page_state(state: ControlState, live_z: np.ndarray, preset: str) -> dict[str, Any]:
    """The state as the page shows it: parameter name -> value (the OSC feedback view, renamed)."""
    out: dict[str, Any] = {}
    for address, args in state_view(state, live_z, preset).items():
        key = address.removeprefix("/aether/")
        if key.startswith(("z", "center/", "xy")) or key == "center/norm":
            continue  # the moving z is the frame's own field; the per-dim forms repeat the vectors
        out[key] = list(args) if key == "center" else args[0]
    for key in _FLAGS:
        out[key] = bool(out[key])
    return out


def hello(
    latent_dim: int,
    sample_rate_hz: float,
    presets: list[str],
    images: list[str],
    registry: dict[str, Any],
    *,
    midi: bool = False,
) -> dict[str, Any]:
    """The first message on a connection: what the page needs to lay itself out.

    ``registry`` is :func:`aether_rt.params.describe` of the current state: the
    parameters' ranges and descriptions, from which the page builds its controls.
    ``midi``: MIDI is on, so the page offers MIDI learn per control.
    """
    return {
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "latent_dim": latent_dim,
        "z_bound": Z_SLIDER_BOUND,
        "learned_bound": LEARNED_BOUND,
        "sample_rate_hz": sample_rate_hz,
        "freqs_hz": [round(float(f), 2) for f in plot_freqs_hz(sample_rate_hz)],
        "db_step": DB_STEP,
        "modes": list(MODES),
        "presets": presets,
        "images": images,
        "params": param_names(latent_dim),
        "registry": registry,
        "midi": midi,
    }


def library(
    status: str, folder: str, encodings: list[Any], skipped: list[tuple[str, str]], note: str = ""
) -> dict[str, Any]:
    """The run's IR library (``--ir-library``): its state and, once encoded, a point per IR.

    Args:
        status: ``encoding``, ``ready`` or ``failed``.
        folder: the folder's name (not its full path: a remote page learns no more than it needs).
        encodings: :class:`~aether_rt.models.fit.Encoding` per IR (names relative to the folder).
        skipped: ``(relative path, reason)`` per file that is not a usable IR.
        note: what went wrong, for ``failed``.

    """
    return {
        "type": "library",
        "status": status,
        "folder": folder,
        "irs": [
            {"name": e.name, "z": [round(float(v), 4) for v in e.z], "fit_db": round(float(e.fit_db), 2),
             "encoder_in_region": bool(e.encoder_in_region)}
            for e in encodings
        ],
        "skipped": [{"name": name, "reason": why} for name, why in skipped],
        "message": note,
    }  # fmt: skip


def response_curves(coeffs: np.ndarray, sample_rate_hz: float) -> tuple[list[int], list[list[int]]]:
    """The total and per-filter responses of a coefficient table, in :data:`DB_STEP` units.

    The engine's own table, through :func:`~aether_rt.dsp.biquad.section_response_db`:
    the curve drawn is the response of what is playing.
    """
    sections = section_response_db(coeffs, plot_freqs_hz(sample_rate_hz), sample_rate_hz)
    total = sections.sum(axis=0)
    scale = 1.0 / DB_STEP
    return np.rint(total * scale).astype(int).tolist(), np.rint(sections * scale).astype(int).tolist()


def frame(
    seq: int,
    t_s: float,
    live_z: np.ndarray,
    state: ControlState,
    preset: str,
    coeffs: np.ndarray,
    sample_rate_hz: float,
    meters: dict[str, Any],
) -> dict[str, Any]:
    """One update of the page (sent ~30 times a second)."""
    total, filters = response_curves(coeffs, sample_rate_hz)
    return {
        "type": "frame",
        "seq": seq,
        "t_s": round(t_s, 4),
        "z": [round(float(v), 4) for v in live_z],
        "state": page_state(state, live_z, preset),
        "response": total,
        "filters": filters,
        "meters": meters,
    }
