"""The ``aether-rt`` command line: parses arguments and delegates.

Subcommands: ``devices``, ``demo``, the live ones (``run``, ``render``, ``presets``;
:mod:`aether_rt.commands.live`) and the model's (``train``, ``eval``, ``encode``,
``inspect``, ``sweep``, ``map``; :mod:`aether_rt.commands.model`). ``aether-rt --help``
lists them with what they do.

A user's mistake prints ``aether-rt: error: ...`` with a hint and exits with status 2;
there is no traceback for anything a user can fix.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aether_rt import __version__
from aether_rt.errors import UserError


def entry() -> None:
    """The process entry point (``aether-rt``, ``python -m aether_rt``): :func:`main`, then exit.

    Before the interpreter shuts down, every object is frozen out of the garbage
    collector's reach: its final collection walks JAX's, XLA's and Numba's object graphs.
    Ctrl-C to process exit in a live run measured 0.60-0.71 s with it and 0.17-0.21 s
    without (2 cores; the audio itself stops within 0.09 s). Nothing is lost: the commands
    write and close their files themselves, and the operating system takes back the memory.
    """
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"aether-rt: error: {exc}", file=sys.stderr)
        _leave_if_audio_abandoned(2)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `aether-rt inspect ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _leave_if_audio_abandoned(status: int) -> None:
    """Exit now if a dead device left a stream that cannot close.

    PortAudio's exit handler (registered by sounddevice) would wait on it forever.
    """
    if "aether_rt.audio.stream" in sys.modules and sys.modules["aether_rt.audio.stream"].abandoned():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aether-rt",
        description="A real-time latent-space filter effect: a VAE decoder drives 32 peaking filters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("devices", help="list audio devices and MIDI inputs",
                       description="List the audio devices PortAudio sees, and the MIDI input ports.")  # fmt: skip
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser(
        "demo",
        help="render the built-in guitar phrase through the moving filter bank",
        description="Render the built-in guitar phrase through 32 moving peaking filters, offline.",
    )
    p.add_argument("--out", type=Path, default=Path("aether-demo.wav"), help="output file (default: %(default)s)")
    p.add_argument("--seconds", type=_seconds, default=12.0, help="length in seconds (default: %(default)s)")
    _add_sample_rate(p, default=48_000, help="sample rate in Hz (default: %(default)s)")
    p.add_argument("--blocksize", type=_blocksize, default=64, help="frames per block (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phrase (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)
    _add_model_commands(sub)
    _add_live_commands(sub)
    return parser


def _add_live_commands(sub: argparse._SubParsersAction) -> None:
    from aether_rt.commands import live

    show = "(default: %(default)s)"
    p = sub.add_parser(
        "run", help="the live effect", description="Run the effect live: input device (or a file, or demo) to output."
    )
    p.add_argument(
        "--input", help="input device (index or name), an audio FILE played live, or demo (default: the default input)"
    )
    p.add_argument("--output", help="output device, index or name (default: the default output)")
    live.add_modulation_args(p, _bounded)
    _add_sample_rate(p, help="stream rate in Hz (default: 48000, or the file's)")
    p.add_argument("--blocksize", type=_blocksize, default=64, help="frames per callback " + show)
    p.add_argument("--channels", type=_bounded(int, 1, 32, "channel count"), default=2, help="output channels " + show)
    p.add_argument("--in-channels", type=_bounded(int, 1, 32, "channel count"),
                   help="input channels (default: as many as the outputs, at most what the device has)")  # fmt: skip
    p.add_argument("--callback", choices=("cfunc", "python"), default="cfunc",
                   help="cfunc: compiled, never takes the GIL; python: for debugging " + show)  # fmt: skip
    p.add_argument("--duration", type=_bounded(float, 0.1, 1e7, "duration"), help="stop after this many seconds")
    p.add_argument("--loop", action="store_true", help="loop an --input FILE or demo")
    p.add_argument("--stats", help="write the run's figures as JSON here on exit")
    p.add_argument("--record", help="save the live input, output and session into this folder (for render --replay)")
    osc = p.add_argument_group("OSC control (docs/osc.md)")
    osc.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    osc.add_argument("--osc-host", default="127.0.0.1",
                     help="interface to listen on; anything that can reach it can drive the effect "
                          "(default: %(default)s, this machine only; 0.0.0.0 for a tablet on the network)")  # fmt: skip
    osc.add_argument("--osc-port", type=_bounded(int, 1, 65535, "OSC port"), help="UDP port (default: 9000)")
    osc.add_argument(
        "--osc-allow", action="append", metavar="ADDR", help="hear only these senders (address or network; repeatable)"
    )
    osc.add_argument("--osc-feedback", action="append", metavar="HOST:PORT",
                     help="send every state change here (TouchOSC, a DAW); repeatable")  # fmt: skip
    web = p.add_argument_group("web page (docs/web.md)")
    web.add_argument("--web", nargs="?", const=8765, type=_bounded(int, 1, 65535, "web port"), metavar="PORT",
                     help="serve the control page on this TCP port (default port: 8765)")  # fmt: skip
    web.add_argument("--web-host", default="127.0.0.1",
                     help="interface to serve on; anything that can reach it can drive the effect "
                          "(default: %(default)s, this machine only; 0.0.0.0 for a tablet on the network)")  # fmt: skip
    web.add_argument("--web-allow-host", action="append", metavar="NAME",
                     help="a DNS name the page may be opened by (besides localhost and IPs); repeatable")  # fmt: skip
    web.add_argument("--ir-library", metavar="FOLDER",
                     help="show the impulse responses below FOLDER on the page's latent planes (click one to go "
                          "there); encoded at start, beside the running effect")  # fmt: skip
    midi = p.add_argument_group("MIDI control (docs/midi.md)")
    midi.add_argument("--midi", nargs="?", const="", metavar="NAME",
                      help="follow MIDI: alone, open a port other programs connect to; with NAME, connect to the "
                           "input port whose name contains NAME (aether-rt devices lists them)")  # fmt: skip
    midi.add_argument("--midi-map", metavar="FILE",
                      help="the MIDI map to use, and where learned bindings are saved (default: "
                           "~/.config/aether-rt/midi-map.yaml if it exists, else the default map)")  # fmt: skip
    midi.add_argument("--midi-learn", metavar="PARAM", choices=_param_names(),
                      help="bind the next control change received to PARAM (%(choices)s) and save the map")  # fmt: skip
    p.set_defaults(func=live.cmd_run)

    p = sub.add_parser(
        "render",
        help="render a file (or demo) through the effect, offline",
        description="Offline: the same control and audio code, block by block, as fast as possible.",
    )
    p.add_argument("input", help="an audio file, or demo")
    p.add_argument("output", help="the file to write (.wav, .flac, .aiff, .ogg)")
    live.add_modulation_args(p, _bounded)
    _add_sample_rate(p, default=48_000, help="rate of the demo " + show)
    p.add_argument(
        "--channels", type=_bounded(int, 1, 32, "channel count"), help="output channels (default: the input's)"
    )
    p.add_argument("--replay", help="follow a session recorded by run --record (its folder)")
    p.add_argument(
        "--blocksize",
        type=_blocksize,
        help="frames per block; any size renders the same (default: 1024, or the replay's)",
    )
    p.set_defaults(func=live.cmd_render)

    p = sub.add_parser(
        "presets",
        help="list the presets, or save one",
        description="List the presets (name and description), or --save the state the flags describe "
        "(a --preset and/or modulation flags) as a new preset in the user folder.",
    )
    p.add_argument("--save", metavar="NAME", help="write a preset NAME (to ~/.config/aether-rt/presets, or --to)")
    p.add_argument("--description", default="", help="the saved preset's one-line description")
    p.add_argument("--to", help="folder to save into (default: ~/.config/aether-rt/presets)")
    p.add_argument("--force", action="store_true", help="overwrite an existing preset of that name")
    live.add_modulation_args(p, _bounded)
    p.set_defaults(func=live.cmd_presets)


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    from aether_rt.commands import model as m
    from aether_rt.data.datasets import DEFAULT_SYNTHETIC_N as DEFAULT_CORPUS_N
    from aether_rt.train import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a model on impulse responses, or fine-tune one on yours (--init)",
        description="Train the ParametricVAE; with --init, fine-tune a trained one on your IRs (docs/model.md).",
    )
    d = TrainConfig()  # one definition of the defaults
    from aether_rt.train import FINETUNE_LR, FINETUNE_MIX, FINETUNE_MIX_FRACTION, FINETUNE_STEPS
    from aether_rt.train import FINETUNE_STEPS_PER_EPOCH as FT_EPOCH

    show = "(default: %(default)s)"
    p.add_argument("--data", default="synthetic", help="a folder of IRs, or synthetic[:N] " + show)
    p.add_argument("--latent-dim", type=_bounded(int, 1, 64, "latent dim"),
                   help=f"(default: {d.latent_dim}, or the --init model's)")  # fmt: skip
    p.add_argument("--num-filters", type=_bounded(int, 1, 256, "filter count"),
                   help=f"(default: {d.num_filters}, or the --init model's)")  # fmt: skip
    p.add_argument("--steps", type=_bounded(int, 1, 10**7, "steps"),
                   help=f"(default: {d.steps}, or {FINETUNE_STEPS} with --init)")  # fmt: skip
    p.add_argument("--batch-size", type=_bounded(int, 1, 4096, "batch size"), default=d.batch_size, help=show)
    p.add_argument("--lr", type=_bounded(float, 1e-6, 1.0, "learning rate"),
                   help=f"peak learning rate (default: {d.learning_rate:g}, {FINETUNE_LR:g} with --init)")  # fmt: skip
    p.add_argument("--beta", type=_bounded(float, 0.0, 10.0, "beta"),
                   help=f"KL weight (default: {d.beta:g}, or the --init model's)")  # fmt: skip
    p.add_argument("--steps-per-epoch", type=_bounded(int, 1, 10**6, "steps per epoch"),
                   help=f"checkpoint interval (default: {d.steps_per_epoch}, or {FT_EPOCH} with --init)")  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed, help="data split, batches and init " + show)
    p.add_argument("--out", required=True, help="output folder (model.msgpack, model.json, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init", metavar="MODEL",
                   help="fine-tune this model (default, or a model folder or file), not a fresh one")  # fmt: skip
    p.add_argument("--mix", metavar="DATA", help="with --init: synthetic IRs in every batch, so the map keeps its "
                   f"shape (default: {FINETUNE_MIX})")  # fmt: skip
    p.add_argument("--mix-fraction", type=_bounded(float, 0.0, 0.95, "mix fraction"),
                   help=f"with --init: share of each batch from --mix (default: {FINETUNE_MIX_FRACTION})")  # fmt: skip
    p.set_defaults(func=m.cmd_train)

    p = sub.add_parser("eval", help="evaluate a model beside flat, PCA-4 and oracle anchors")
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.add_argument("--data", help="a folder of IRs, or synthetic:N (default: the fixed held-out synthetic set)")
    p.add_argument("--oracle-steps", type=_bounded(int, 1, 100_000, "oracle steps"), default=1500,
                   help="gradient steps per oracle restart (default: %(default)s)")  # fmt: skip
    p.add_argument("--json", help="also write the figures as JSON here")
    p.set_defaults(func=m.cmd_eval)

    from aether_rt.commands.encode import cmd_encode

    p = sub.add_parser(
        "encode",
        help="an impulse response's latent point and fit, or a folder of them as a table and a map",
        description="Encode an IR (or every IR below a folder): its latent point, the fit (LSD in dB against "
        "the IR's smoothed spectrum), and whether it lies in the learned region |z_i| <= 2.",
    )
    p.add_argument("ir", metavar="IR", help="a WAV/FLAC/AIFF impulse response, or a folder of them")
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.add_argument("--refine", type=_bounded(int, 0, 100_000, "refine steps"), default=0, metavar="N",
                   help="Adam steps from several starts for the best-fitting point inside the learned region "
                        "(e.g. 200; default: %(default)s, the encoder's mean)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--table", metavar="FILE", help="write the table here (.csv or .json; default: print it)")
    p.add_argument("--map", metavar="IMAGE", help="draw the IRs as labelled points on the latent planes (.png, .svg)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("inspect", help="print the filters a latent point decodes to")
    p.add_argument("--z", required=True, help="the latent point, comma-separated (e.g. 0.5,-1,0,0)")
    _add_sample_rate(p, default=48_000, help="design rate in Hz (default: %(default)s)")
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=m.cmd_inspect)

    p = sub.add_parser("sweep", help="draw each latent dim's effect on the response")
    p.add_argument("--out", default="sweep.png", help="image file (default: %(default)s)")
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.set_defaults(func=m.cmd_sweep)

    p = sub.add_parser(
        "map",
        help="draw a 2-D slice of the latent space coloured by response features",
        description="Colour a z_a x z_b slice (|z| <= 3, the learned |z| <= 2 dashed) by the response's "
        "spectral centroid and tilt.",
    )
    p.add_argument("--out", default="map.png", help="image file (default: %(default)s)")
    p.add_argument("--dims", default="0,1", help="the two latent dims spanned (default: %(default)s)")
    p.add_argument("--feature", choices=["centroid", "tilt", "both"], default="both", help="colour by (default: both)")
    p.add_argument("--at", help="where the other dims stay, a full latent point (default: 0)")
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.set_defaults(func=m.cmd_map)

    from aether_rt.commands.corpus import cmd_corpus

    p = sub.add_parser(
        "corpus",
        help="the synthetic training corpus: families, examples, cache",
        description="List the synthetic corpus's families (docs/model.md), draw examples of each, build its cache.",
    )
    p.add_argument("--n", type=_bounded(int, 2, 10**6, "corpus size"), default=DEFAULT_CORPUS_N,
                   help="corpus size counted (default: %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default: %(default)s)")
    p.add_argument("--examples", metavar="IMAGE", help="draw the first IRs of every family into this image")
    p.add_argument("--per-family", type=_bounded(int, 1, 50, "examples per family"), default=5,
                   help="examples per family in the picture (default: %(default)s)")  # fmt: skip
    p.add_argument("--build", action="store_true", help="generate (in parallel) and cache the corpus now")
    p.set_defaults(func=cmd_corpus)


def _cmd_devices(args: argparse.Namespace) -> int:
    from aether_rt.audio import devices
    from aether_rt.midi.session import describe_inputs

    found = devices.list_devices()
    print(devices.format_devices(found))
    if not found:
        print(f"hint: {devices._NO_DEVICE_HINT}")
    print(describe_inputs())
    return 0


def _param_names() -> list[str]:
    from aether_rt.params import BY_NAME

    return list(BY_NAME)


def _cmd_demo(args: argparse.Namespace) -> int:
    from aether_rt.audio_files import check_output_path, write_audio
    from aether_rt.demo import render_demo
    from aether_rt.sources import demo_phrase

    check_output_path(args.out)
    source = demo_phrase(args.sample_rate_hz, seconds=args.seconds, seed=args.seed)
    result = render_demo(source, args.sample_rate_hz, blocksize=args.blocksize)
    write_audio(args.out, result.audio, args.sample_rate_hz)
    s = result.stats
    print(
        f"wrote {args.out} ({args.seconds:g} s at {args.sample_rate_hz} Hz): "
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


def _add_sample_rate(p: argparse.ArgumentParser, **kwargs: Any) -> None:
    """``--sample-rate HZ`` (``--samplerate``, sounddevice's spelling, also works) into ``sample_rate_hz``."""
    p.add_argument("--sample-rate", "--samplerate", dest="sample_rate_hz", type=_sample_rate, **kwargs)


_sample_rate = _bounded(int, 32_000, 192_000, "sample rate in Hz")
_blocksize = _bounded(int, 1, 8192, "block size in frames")
