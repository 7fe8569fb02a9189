"""The ``aether-rt`` command line: parses arguments and delegates.

Subcommands:

* ``devices``: list the audio devices PortAudio sees.
* ``demo``: render the built-in guitar phrase through the moving filter bank to a
  WAV/FLAC file and report how fast it ran.

A user's mistake prints ``aether-rt: error: ...`` with a hint and exits with status 2;
there is no traceback for anything a user can fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from aether_rt import __version__
from aether_rt.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"aether-rt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aether-rt",
        description="A real-time latent-space filter effect: a VAE decoder drives 32 peaking filters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("devices", help="list audio devices", description="List the audio devices PortAudio sees.")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser(
        "demo",
        help="render the built-in guitar phrase through the moving filter bank",
        description="Render the built-in guitar phrase through 32 moving peaking filters, offline.",
    )
    p.add_argument("--out", type=Path, default=Path("aether-demo.wav"), help="output file (default: %(default)s)")
    p.add_argument("--seconds", type=_seconds, default=12.0, help="length in seconds (default: %(default)s)")
    p.add_argument("--samplerate", type=_samplerate, default=48_000, help="sample rate in Hz (default: %(default)s)")
    p.add_argument("--blocksize", type=_blocksize, default=64, help="frames per block (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phrase (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)
    return parser


def _cmd_devices(args: argparse.Namespace) -> int:
    from aether_rt.audio import devices

    found = devices.list_devices()
    print(devices.format_devices(found))
    if not found:
        print(f"hint: {devices._NO_DEVICE_HINT}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from aether_rt.audio_files import check_output_path, write_audio
    from aether_rt.demo import render_demo
    from aether_rt.sources import demo_phrase

    check_output_path(args.out)
    source = demo_phrase(args.samplerate, seconds=args.seconds, seed=args.seed)
    result = render_demo(source, args.samplerate, blocksize=args.blocksize)
    write_audio(args.out, result.audio, args.samplerate)
    s = result.stats
    print(
        f"wrote {args.out} ({args.seconds:g} s at {args.samplerate} Hz): "
        f"rendered {result.realtime_factor:.0f}x real time, {s.blocks} blocks, "
        f"{s.tables_applied} filter tables, {s.nan_events + s.blowup_resets} resets"
    )
    return 0


def _bounded(cast: type, low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: ``cast(text)`` within ``[low, high]``, else a message naming ``what``."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low:g}..{high:g}, got {text}")
        return value

    return parse


_seconds = _bounded(float, 0.01, 86_400, "a length in seconds")
_samplerate = _bounded(int, 32_000, 192_000, "sample rate in Hz")
_blocksize = _bounded(int, 1, 8192, "block size in frames")
