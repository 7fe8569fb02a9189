"""``run`` (the live effect) and ``render`` (offline), with the modulation flags they share."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError

DEMO_SECONDS = 12.0


def add_modulation_args(p: argparse.ArgumentParser, bounded: Any) -> None:
    """The flags ``run`` and ``render`` share (how z moves, mix and gains)."""
    from aether_rt.modulation import MAX_RATE_HZ, MODES

    show = "(default: %(default)s)"
    p.add_argument("--mode", choices=MODES, default="spiral", help="how z moves " + show)
    p.add_argument("--z", help="the centre point, comma-separated (in static mode, the point itself); default 0")
    p.add_argument("--depth", type=bounded(float, 0.0, 4.0, "depth"), default=1.0,
                   help="radius of the fast pair's circle (the slow dims move 0.8x this) " + show)  # fmt: skip
    p.add_argument("--rate-fast", type=bounded(float, 0.0, MAX_RATE_HZ, "fast rate"), default=0.5,
                   help="the fast pair's rate in Hz (beats per cycle with --sync) " + show)  # fmt: skip
    p.add_argument("--rate-slow", type=bounded(float, 0.0, MAX_RATE_HZ, "slow rate"), default=0.05,
                   help="the slow dims' rate in Hz (beats per cycle with --sync) " + show)  # fmt: skip
    p.add_argument("--sync", action="store_true", help="rates are beats per cycle at --tempo")
    p.add_argument("--tempo", type=bounded(float, 20.0, 400.0, "tempo"), default=120.0, help="BPM for --sync " + show)
    p.add_argument("--mix", type=bounded(float, 0.0, 1.0, "mix"), default=1.0, help="0 dry .. 1 wet " + show)
    p.add_argument("--input-gain", type=bounded(float, -60.0, 24.0, "input gain"), default=0.0, help="dB " + show)
    p.add_argument("--output-gain", type=bounded(float, -60.0, 24.0, "output gain"), default=0.0, help="dB " + show)
    p.add_argument("--model", help="model folder or file (default: the shipped model)")
    p.add_argument("--control-rate", type=bounded(float, 50.0, 4000.0, "control rate"), default=500.0,
                   help="control ticks per second " + show)  # fmt: skip


def control_state(args: argparse.Namespace, latent_dim: int) -> Any:
    """The :class:`~aether_rt.control.ControlState` the flags describe."""
    from aether_rt.commands.model import parse_z
    from aether_rt.control import ControlState
    from aether_rt.modulation import Modulation

    center = parse_z(args.z, latent_dim) if args.z else np.zeros(latent_dim)
    depth = np.full(latent_dim, 0.8 * args.depth)
    depth[: min(2, latent_dim)] = args.depth
    try:
        mod = Modulation(
            mode=args.mode, center=tuple(float(v) for v in center), depth=tuple(float(v) for v in depth),
            rate_fast_hz=args.rate_fast, rate_slow_hz=args.rate_slow, sync=args.sync, tempo_bpm=args.tempo,
        )  # fmt: skip
        return ControlState(
            modulation=mod, mix=args.mix, input_gain_db=args.input_gain, output_gain_db=args.output_gain
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def load_source(spec: str, sample_rate: int | None) -> tuple[np.ndarray, int, str | None]:
    """``demo`` or an audio file as ``([frames, channels] float32, rate, subtype)``.

    A file is resampled to ``sample_rate`` when one is given and differs.
    """
    from aether_rt.audio_files import read_audio
    from aether_rt.features import resample
    from aether_rt.sources import demo_phrase

    if spec == "demo":
        rate = sample_rate or 48_000
        return demo_phrase(float(rate), seconds=DEMO_SECONDS)[:, None], rate, None
    audio, rate, subtype = read_audio(Path(spec))
    if sample_rate and sample_rate != rate:
        audio = np.stack(
            [resample(audio[:, c].astype(np.float64), rate, sample_rate) for c in range(audio.shape[1])], 1
        )
        audio, rate = audio.astype(np.float32), sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), rate, subtype


def is_source(spec: str | None) -> bool:
    """Whether ``--input`` names a source (``demo`` or an existing file), not a device."""
    return spec is not None and (spec == "demo" or Path(spec).is_file())


def cmd_run(args: argparse.Namespace) -> int:
    """The live effect."""
    from aether_rt.commands.model import load
    from aether_rt.control import StateBox
    from aether_rt.engine import Engine, EngineSettings

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("aether-rt: %(message)s"))
    logger = logging.getLogger("aether_rt")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    model = load(args.model)
    state = control_state(args, model.config.latent_dim)
    source, rate = None, args.samplerate
    if is_source(args.input):
        source, file_rate, _ = load_source(args.input, args.samplerate)
        rate = args.samplerate or file_rate
    settings = EngineSettings(
        samplerate=rate or 48_000,
        blocksize=args.blocksize,
        input_device=None if source is not None else args.input,
        output_device=args.output,
        out_channels=args.channels,
        in_channels=args.in_channels,
        callback=args.callback,
        control_rate_hz=args.control_rate,
    )
    engine = Engine(settings, model, StateBox(state), source=source, loop=args.loop,
                    record_dir=Path(args.record) if args.record else None)  # fmt: skip
    print(
        f"aether-rt: {state.modulation.mode} at {engine.stream.samplerate:g} Hz, {args.blocksize}-frame blocks, "
        f"{engine.bank.arena.layout.ins} in / {args.channels} out, {args.callback} callback; Ctrl-C stops",
        file=sys.stderr,
    )
    status = engine.run(args.duration, Path(args.stats) if args.stats else None)
    print("aether-rt: " + engine.report(), file=sys.stderr)
    return status


def cmd_render(args: argparse.Namespace) -> int:
    """Offline: a file or the demo phrase through the effect, as fast as possible."""
    from tqdm import tqdm

    from aether_rt.audio_files import check_output_path, write_audio
    from aether_rt.commands.model import load
    from aether_rt.render import render

    out = Path(args.output)
    check_output_path(out)
    session = None
    if args.replay:
        from aether_rt.record import Session

        session = Session.load(Path(args.replay))
    model = load(args.model)
    state = control_state(args, model.config.latent_dim)
    source, rate, subtype = load_source(args.input, args.samplerate if args.input == "demo" else None)
    if session is not None and abs(session.sample_rate - rate) > 0.5:
        raise UserError(f"{args.input!r} is at {rate} Hz but the session was recorded at {session.sample_rate:g} Hz")
    seconds = source.shape[0] / rate
    with tqdm(total=source.shape[0], unit="frame", unit_scale=True, disable=seconds < 30, desc="render") as bar:
        result = render(source, rate, model, state, out_channels=args.channels, control_rate_hz=args.control_rate,
                        session=session, progress=lambda done, total: bar.update(done - bar.n))  # fmt: skip
    write_audio(out, result.audio, rate, subtype=subtype)
    print(
        f"wrote {out}: {seconds:.1f} s, {result.audio.shape[1]} channel(s) at {rate} Hz, rendered in "
        f"{result.seconds:.2f} s ({result.realtime_factor:.0f}x real time), {result.limited_samples} samples limited"
    )
    return 0
