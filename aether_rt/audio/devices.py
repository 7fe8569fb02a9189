"""Audio devices through PortAudio: listing, lookup by index or name, clear errors.

Devices are found exactly as any PortAudio program finds them: ALSA, OSS or, when a
JACK server runs, PortAudio's JACK host API. Every failure is a
:class:`~aether_rt.errors.UserError` that lists what does exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from aether_rt.errors import UserError

Kind = Literal["input", "output"]

_NO_DEVICE_HINT = (
    "connect a sound card, or start a JACK server (e.g. `jackd -d dummy -r 48000 -p 64` "
    "for a virtual one), then list devices with `aether-rt devices`"
)
_LIST_HINT = "choose one with --input/--output (index or name); `aether-rt devices` lists them"


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio's device index.
        name: device name.
        hostapi: host API name (ALSA, JACK Audio Connection Kit, ...).
        max_input_channels: input channels available.
        max_output_channels: output channels available.
        default_sample_rate_hz: the device's default sample rate.

    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate_hz: float


def portaudio() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into a UserError."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise UserError(
            f"the PortAudio library could not be loaded ({exc})",
            "install it: `sudo apt-get install libportaudio2` (Debian/Ubuntu)",
        ) from None
    return sounddevice


def refresh() -> None:
    """Re-scan the host APIs (PortAudio only sees a JACK server started before a scan)."""
    sd = portaudio()
    sd._terminate()
    sd._initialize()


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio currently sees."""
    sd = portaudio()
    hostapis = sd.query_hostapis()
    return [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            hostapi=str(hostapis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_sample_rate_hz=float(d["default_samplerate"]),
        )
        for d in sd.query_devices()
    ]


def format_devices(devices: list[DeviceInfo]) -> str:
    """A table of devices for people (the default input and output are marked)."""
    if not devices:
        return "no audio devices found"
    sd = portaudio()
    default_in, default_out = (_default_index(sd, k) for k in ("input", "output"))
    rows = ["  idx  in  out  rate_hz  host API                    name"]
    for d in devices:
        mark = ("<" if d.index == default_in else " ") + (">" if d.index == default_out else " ")
        rows.append(
            f"{mark}{d.index:3d} {d.max_input_channels:3d} {d.max_output_channels:4d} "
            f"{d.default_sample_rate_hz:8.0f}  {d.hostapi:<27.27} {d.name}"
        )
    rows.append("(< default input, > default output)")
    return "\n".join(rows)


def resolve(spec: int | str | None, kind: Kind, channels: int = 1) -> int:
    """Find a device by index, by (case-insensitive, partial) name, or the default.

    Args:
        spec: an index, a digit string, a name or part of one, or None for the default.
        kind: ``"input"`` or ``"output"``.
        channels: channels the device must offer for ``kind``.

    Returns:
        The PortAudio device index.

    Raises:
        UserError: no such device, an ambiguous name, too few channels, or no device.

    """
    devices = list_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if getattr(d, key) > 0]
    if not usable:
        raise UserError(f"no audio {kind} device found", _NO_DEVICE_HINT)
    listing = "\n" + format_devices(devices)
    if spec is None:
        index = _default_index(portaudio(), kind)
        if index < 0:
            raise UserError(f"there is no default {kind} device; available:{listing}", _NO_DEVICE_HINT)
        found = next(d for d in devices if d.index == index)
    elif isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        matches = [d for d in devices if d.index == index]
        if not matches:
            raise UserError(f"no audio device with index {index}; available:{listing}", _LIST_HINT)
        found = matches[0]
    else:
        needle = str(spec).strip().lower()
        matches = [d for d in usable if needle in d.name.lower()]
        exact = [d for d in matches if d.name.lower() == needle]
        if exact:
            matches = exact
        if not matches:
            raise UserError(f"no {kind} device matches {spec!r}; available:{listing}", _LIST_HINT)
        if len(matches) > 1:
            names = ", ".join(f"{d.index}: {d.name!r}" for d in matches)
            raise UserError(f"{spec!r} matches several {kind} devices ({names})", "give the index instead")
        found = matches[0]
    if getattr(found, key) < channels:
        raise UserError(
            f"device {found.index} ({found.name!r}) has {getattr(found, key)} {kind} channel(s), {channels} needed; "
            f"available:{listing}",
            "choose fewer channels (--channels, --in-channels) or another device; `aether-rt devices` lists them",
        )
    return found.index


def check_stream(
    *,
    input_device: int | str | None,
    output_device: int | str | None,
    sample_rate_hz: float,
    out_channels: int,
    in_channels: int | None = None,
    output_only: bool = False,
) -> int:
    """Check that the devices can open the stream the engine will open, without opening it.

    Cheap (a device scan and PortAudio's format checks), so a run calls it before
    anything slow (the model, JAX compiles, Numba warm-up): a device mistake is reported
    in a fraction of a second, not after the compiles.

    Args:
        input_device: input device index or name (None: the default); ignored with ``output_only``.
        output_device: output device index or name (None: the default).
        sample_rate_hz: the stream's rate.
        out_channels: output channels.
        in_channels: input channels (None: as many as the outputs, at most what the input has).
        output_only: an output-only stream (a source plays instead of the input).

    Returns:
        The input channels the stream will have (0 with ``output_only``).

    Raises:
        UserError: no device, no such device, too few channels, or a rate or channel
            count the device refuses; the message names the device and lists what there is.

    """
    sd = portaudio()
    out_index = resolve(output_device, "output", out_channels)
    checks = [("output", out_index, out_channels)]
    ins = 0
    if not output_only:
        in_index = resolve(input_device, "input", in_channels or 1)
        found = next(d for d in list_devices() if d.index == in_index)
        ins = in_channels or min(out_channels, found.max_input_channels)
        checks.insert(0, ("input", in_index, ins))
    for kind, index, channels in checks:
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(device=index, channels=channels, samplerate=sample_rate_hz, dtype="float32")
        except (sd.PortAudioError, ValueError) as exc:
            found = next(d for d in list_devices() if d.index == index)
            raise UserError(
                f"{kind} device {index} ({found.name!r}) cannot run {channels} channel(s) at {sample_rate_hz:g} Hz: "
                f"{exc}; its default rate is {found.default_sample_rate_hz:g} Hz; available:\n"
                + format_devices(list_devices()),
                "choose a rate the device supports (--sample-rate), fewer channels, or another device; "
                "`aether-rt devices` lists them",
            ) from None
    return ins


def _default_index(sd: ModuleType, kind: Kind) -> int:
    pair = sd.default.device
    index = pair[0] if kind == "input" else pair[1]
    if index is None or index < 0:
        try:
            index = sd.query_devices(kind=kind)["index"]
        except sd.PortAudioError:  # PortAudio has no default device of this kind
            return -1
    return int(index)
