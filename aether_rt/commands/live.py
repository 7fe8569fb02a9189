"""``run`` (the live effect) and ``render`` (offline), with the modulation flags they share."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError

DEMO_SECONDS = 12.0


def add_modulation_args(p: argparse.ArgumentParser, bounded: Any) -> None:
    """The flags ``run`` and ``render`` share (how z moves, mix and gains).

    Each overrides the preset's value when given; without a preset the defaults apply.
    """
    from aether_rt.params import MODES, PARAMS

    p.add_argument("--preset", help="a preset name (see `aether-rt presets`) or a YAML file; flags override it")
    p.add_argument("--preset-dir", action="append", default=[], help="look for presets here first (repeatable)")
    p.add_argument("--mode", choices=MODES, help="how z moves (default: spiral)")
    p.add_argument("--z", help="the centre point, comma-separated (in static mode, the point itself); default 0")
    p.add_argument("--sync", action="store_true", default=None, help="rates are beats per cycle at --tempo")
    for param in PARAMS:  # the registry's numbers with a flag: range, unit, default from their declaration
        if param.flag is not None:
            lo, hi = param.limits
            unit = f"{param.unit}, " if param.unit else ""
            p.add_argument(param.flag, type=bounded(float, lo, hi, param.label.lower()),
                           help=f"{param.doc} ({unit}{lo:g}..{hi:g}; default: {param.default:g})")  # fmt: skip
    p.add_argument("--model", help="model folder or file (default: the preset's, else the shipped model)")
    p.add_argument("--control-rate", type=bounded(float, 50.0, 4000.0, "control rate"), default=500.0,
                   help="control ticks per second (default: %(default)s)")  # fmt: skip


def preset_file(args: argparse.Namespace) -> Path | None:
    """The file of the preset ``--preset`` names, else of the one named after ``--mode`` if any, else None.

    So ``--mode spiral`` loads the spiral preset.
    """
    from aether_rt.preset import available, locate_preset

    dirs = [Path(d).expanduser() for d in args.preset_dir]
    if args.preset:
        return locate_preset(args.preset, dirs)
    if args.mode and args.mode in available(dirs):
        return locate_preset(args.mode, dirs)
    return None


def load_preset(args: argparse.Namespace, latent_dim: int) -> Any:
    """The preset (see :func:`preset_file`) checked for a model with ``latent_dim`` dims, or None."""
    from aether_rt.preset import load_preset_file

    path = preset_file(args)
    return None if path is None else load_preset_file(path, latent_dim)


def model_and_preset(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (``--model``, else the preset's, else the shipped one) and the preset checked against it.

    The preset's per-dim values must fit the model's latent size, so the model is loaded
    first (a preset may name it).

    Raises:
        UserError: no such preset or model, or a preset that does not fit the model.

    """
    from aether_rt.commands.model import load
    from aether_rt.preset import load_preset_file, preset_model

    path = preset_file(args)
    named = preset_model(path) if path is not None and not args.model else None
    model = load(args.model or (str(named) if named is not None else None))
    return model, None if path is None else load_preset_file(path, model.config.latent_dim)


def control_state(args: argparse.Namespace, latent_dim: int, preset: Any = None, model: Any = None) -> Any:
    """The :class:`~aether_rt.control.ControlState`: the preset's (or the defaults), then the flags.

    With ``model``, a preset's ``center_ir`` is encoded (without, its centre stays 0).
    """
    from dataclasses import replace

    from aether_rt.commands.model import parse_z
    from aether_rt.control import ControlState
    from aether_rt.modulation import DEPTH_FAST, DEPTH_SLOW, Modulation, pair_depths

    if preset is not None:
        state = preset.state_for(model) if model is not None else preset.state
    else:
        state = ControlState(modulation=Modulation.for_latent_dim(latent_dim))
    mod = state.modulation
    changes: dict[str, Any] = {}
    if args.mode is not None:
        changes["mode"] = args.mode
    if args.z:
        changes["center"] = tuple(float(v) for v in parse_z(args.z, latent_dim))
    if args.depth is not None:
        changes["depth"] = pair_depths(latent_dim, mod.fast_dims, args.depth, args.depth * DEPTH_SLOW / DEPTH_FAST)
    for flag, key in (("rate_fast", "rate_fast_hz"), ("rate_slow", "rate_slow_hz"), ("tempo", "tempo_bpm")):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    if args.sync:
        changes["sync"] = True
    top = {key: getattr(args, flag) for flag, key in (("mix", "mix"), ("input_gain", "input_gain_db"),
           ("output_gain", "output_gain_db")) if getattr(args, flag) is not None}  # fmt: skip
    try:
        return replace(state, modulation=replace(mod, **changes), **top)
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
    """The live effect; its log lines go to stderr as ``aether-rt: ...`` while it runs."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("aether-rt: %(message)s"))
    logger = logging.getLogger("aether_rt")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _run(args)
    finally:  # called again in the same process (tests, a host program): no handler piles up
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from aether_rt.midi.session import open_midi

    osc_options(args)  # mistakes in the OSC flags: before anything is loaded
    settings = engine_settings(args)
    midi = open_midi(args)  # MIDI flags, a bad map, a missing port: before anything slow
    try:
        library = read_ir_library(args)  # a bad --ir-library: before the audio device is even looked at
        check_devices(settings, output_only=is_source(args.input))  # device mistakes: before anything slow
        # The page is served from now on (it says "starting" until the effect is attached),
        # and a taken port is reported before the seconds of loading and compiling.
        web = start_web(args)
    except BaseException:
        if midi is not None:
            midi.port.close()
        raise
    try:
        return _run_effect(args, settings, web, midi, library)
    finally:
        if web is not None:  # (already stopped, unless the start-up failed)
            web.stop()


def _run_effect(args: argparse.Namespace, settings: Any, web: Any, midi_setup: Any = None, library: Any = None) -> int:
    from aether_rt.control import StateBox
    from aether_rt.engine import Engine
    from aether_rt.midi.session import start_midi

    try:
        model, preset = model_and_preset(args)
        if library is not None and library.spec != model.config.feature:  # a model with its own feature
            library = read_ir_library(args, model.config.feature, warned=library.skipped)
        state = control_state(args, model.config.latent_dim, preset, model)
        source = load_source(args.input, settings.sample_rate_hz)[0] if is_source(args.input) else None
        engine = Engine(settings, model, StateBox(state), source=source, loop=args.loop,
                        record_dir=Path(args.record) if args.record else None)  # fmt: skip
        shelf = preset_shelf(args, model, preset)
        midi = start_midi(midi_setup, args, engine, shelf)
    except BaseException:
        if midi_setup is not None:
            midi_setup.port.close()
        raise
    try:
        osc = start_osc(args, engine, shelf, midi)
    except BaseException:
        if midi is not None:
            midi.stop()
        raise
    # Threads doing JAX work beside the run; joined before returning (a daemon thread in XLA
    # code at interpreter shutdown crashed the process: exit status -11 after a port error).
    background: list[threading.Thread] = []
    stop = threading.Event()
    try:
        if web is not None:  # pictures from the cache now; the ones it lacks follow, once the audio runs
            from aether_rt.web.pictures import start_drawing

            web.midi_learn = midi.learn if midi is not None else None  # before attach: every page hears of it
            attach_web(web, engine, model, shelf)
            audio_runs = lambda: engine.clock() > 0.0  # noqa: E731
            background += start_drawing(web.pictures, model, web.sample_rate_hz, stop=stop, after=audio_runs)
        if shelf is not None:
            background += warm_centres(args, model)
        if library is not None:
            from aether_rt.web.library import start_library

            background.append(start_library(web, model, library, stop=stop))
        print(
            f"aether-rt: {state.modulation.mode} at {engine.stream.sample_rate_hz:g} Hz, "
            f"{args.blocksize}-frame blocks, "
            f"{engine.bank.arena.layout.ins} in / {args.channels} out, {args.callback} callback"
            + (f"; OSC on {args.osc_host}:{osc.port}" if osc else "")
            + (f"; web page at {web.url}" if web else "")
            + (f"; MIDI in {midi.port.name}" if midi else "")
            + "; Ctrl-C stops",
            file=sys.stderr,
        )
        status = engine.run(args.duration, Path(args.stats) if args.stats else None)
    finally:
        stop.set()
        for server in (web, osc, midi):
            if server is not None:
                server.stop()
        for thread in background:  # at most the chunk, preset or picture in flight
            thread.join()
    print("aether-rt: " + engine.report(), file=sys.stderr)
    return status


def engine_settings(args: argparse.Namespace) -> Any:
    """The :class:`~aether_rt.engine.EngineSettings` of a run: devices, rate, channels, blocks.

    The rate is ``--sample-rate``, else an ``--input`` file's own (read from its header),
    else 48 kHz. With a source (``demo`` or a file) there is no input device.

    Raises:
        UserError: an ``--input`` file that cannot be read.

    """
    from aether_rt.audio_files import audio_rate
    from aether_rt.engine import EngineSettings

    rate = args.sample_rate_hz
    if rate is None and is_source(args.input) and args.input != "demo":
        rate = audio_rate(Path(args.input))
    return EngineSettings(
        sample_rate_hz=rate or 48_000,
        blocksize=args.blocksize,
        input_device=None if is_source(args.input) else args.input,
        output_device=args.output,
        out_channels=args.channels,
        in_channels=args.in_channels,
        callback=args.callback,
        control_rate_hz=args.control_rate,
    )


def check_devices(settings: Any, *, output_only: bool) -> None:
    """Check the devices can run the stream (:func:`~aether_rt.audio.devices.check_stream`).

    Raises:
        UserError: no device, no such device, or a rate or channel count it refuses.

    """
    from aether_rt.audio.devices import check_stream

    check_stream(
        input_device=settings.input_device, output_device=settings.output_device,
        sample_rate_hz=settings.sample_rate_hz, out_channels=settings.out_channels,
        in_channels=settings.in_channels, output_only=output_only,
    )  # fmt: skip


def preset_shelf(args: argparse.Namespace, model: Any, preset: Any) -> Any:
    """The presets OSC and the web page load and save by name (None when neither is on)."""
    from aether_rt.preset import PresetShelf

    if args.no_osc and args.web is None and args.midi is None:
        return None
    dirs = [Path(d).expanduser() for d in args.preset_dir]
    return PresetShelf(dirs, model, preset.name if preset is not None else "")


def warm_centres(args: argparse.Namespace, model: Any) -> list[threading.Thread]:
    """Encode and refine the presets centred on an IR on a thread (``aether-presets``).

    That compiles the refinement and remembers each IR's point, so a recall
    mid-performance finds it ready, and the start does not wait ~2 s for it. Started
    once the servers listen, so a mistake in their flags exits at once.
    """
    from aether_rt.preset import PresetError, load_preset_file

    dirs = [Path(d).expanduser() for d in args.preset_dir]
    centred = []
    for path in _available_presets(dirs):
        try:
            found = load_preset_file(path, model.config.latent_dim)
        except PresetError:
            continue  # a broken preset is named when someone loads it
        if found.center_ir is not None:
            centred.append(found)
    if not centred:
        return []
    thread = threading.Thread(target=_refine_centres, args=(centred, model), name="aether-presets")
    thread.start()
    return [thread]


def _refine_centres(presets: list[Any], model: Any) -> None:
    from aether_rt.preset import PresetError

    for preset in presets:
        with contextlib.suppress(PresetError):  # named when someone loads it
            preset.state_for(model)  # remembered by aether_rt.models.fit.encode_ir_cached


def read_ir_library(args: argparse.Namespace, spec: Any = None, warned: Any = ()) -> Any:
    """``--ir-library``'s folder, read with feature ``spec`` (default: the shipped models') (None without the flag).

    Each skipped file is logged as a warning, except those in ``warned`` (the skips of an
    earlier read of the same folder, already reported).

    Raises:
        UserError: without ``--web``, or a folder that does not exist or holds no usable IR.

    """
    if args.ir_library is None:
        return None
    if args.web is None:
        raise UserError("--ir-library shows the impulse responses on the web page", "add --web")
    from aether_rt.features import DEFAULT_SPEC
    from aether_rt.models.fit import read_library

    library = read_library(Path(args.ir_library).expanduser(), spec or DEFAULT_SPEC)
    for name, why in library.skipped:
        if (name, why) not in warned:
            logging.getLogger("aether_rt").warning("IR library: skipped %s: %s", name, why)
    return library


def start_osc(args: argparse.Namespace, engine: Any, shelf: Any, midi: Any = None) -> Any:
    """The OSC server for a run (None with ``--no-osc``), listening before the audio starts.

    The default port being taken is a warning (the effect runs without OSC); a port
    the user asked for being taken is an error.
    """
    from aether_rt.osc import DEFAULT_PORT, OscServer

    if args.no_osc:
        return None
    feedback, allow = osc_options(args)
    server = OscServer(
        engine.box,
        engine.clock,
        host=args.osc_host,
        port=args.osc_port or DEFAULT_PORT,
        allow=allow,
        feedback=feedback,
        recall_preset=shelf.recall,
        save_preset=lambda name, state: shelf.save(name, state, "a live run (OSC)"),
        status=engine.meters if midi is None else lambda: {**engine.meters(), **midi.status()},
        preset_name=lambda: shelf.current,
        midi_learn=midi.learn if midi is not None else None,
    )
    try:
        server.start()
    except UserError as exc:
        if args.osc_port is not None or args.osc_host != "127.0.0.1":
            raise
        logging.getLogger("aether_rt").warning("OSC is off: %s (choose a free one with --osc-port)", exc.args[0])
        return None
    return server


def start_web(args: argparse.Namespace) -> Any:
    """The web page's server for a run (None without ``--web``), listening before the effect is built.

    Until :func:`attach_web`, it serves the page and answers its socket and pictures
    with 503 "starting" (the page retries by itself).

    Raises:
        UserError: the port is taken or the host is not this machine's.

    """
    from aether_rt.web.server import WebServer

    if args.web is None:
        return None
    server = WebServer(None, host=args.web_host, port=args.web, allow_hosts=tuple(args.web_allow_host or ()))
    server.start()
    if args.web_host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("aether_rt").warning(
            "the web page is served on %s: anyone who can reach this machine's port %d can drive the effect",
            args.web_host, server.port,
        )  # fmt: skip
    return server


def attach_web(server: Any, engine: Any, model: Any, shelf: Any) -> None:
    """Connect the page's server to the built engine, before the audio starts.

    Its pictures are those cached for this model and rate
    (:func:`~aether_rt.web.pictures.cached_pictures`); the caller draws the rest
    (:func:`~aether_rt.web.pictures.start_drawing`).
    """
    from aether_rt.web.pictures import cached_pictures

    fs = float(engine.stream.sample_rate_hz)
    server.attach(engine.box, engine.clock, sample_rate_hz=fs, coeffs=engine.bank.coeffs_in_use, meters=engine.meters,
                  presets=shelf, images=cached_pictures(model, fs))  # fmt: skip


def osc_options(args: argparse.Namespace) -> tuple[list[tuple[str, int]], list[Any] | None]:
    """``--osc-feedback`` targets and the ``--osc-allow`` networks (None: everyone).

    Raises:
        UserError: a malformed entry.

    """
    from aether_rt.osc import parse_allow, parse_endpoint

    feedback = [parse_endpoint(e) for e in args.osc_feedback or []]
    return feedback, (parse_allow(args.osc_allow) if args.osc_allow else None)


def _available_presets(dirs: list[Path]) -> list[Path]:
    from aether_rt.preset import available

    return list(available(dirs).values())


def cmd_render(args: argparse.Namespace) -> int:
    """Offline: a file or the demo phrase through the effect, as fast as possible."""
    from tqdm import tqdm

    from aether_rt.audio_files import check_output_path, write_audio
    from aether_rt.render import render

    out = Path(args.output)
    check_output_path(out)
    session = None
    if args.replay:
        from aether_rt.record import Session

        session = Session.load(Path(args.replay))
    model, preset = model_and_preset(args)
    if session is not None:
        _check_session_size(session, args.replay, model.config.latent_dim)
    state = control_state(args, model.config.latent_dim, preset, model)
    source, rate, subtype = load_source(args.input, args.sample_rate_hz if args.input == "demo" else None)
    if session is not None and abs(session.sample_rate - rate) > 0.5:
        raise UserError(f"{args.input!r} is at {rate} Hz but the session was recorded at {session.sample_rate:g} Hz")
    seconds = source.shape[0] / rate
    with tqdm(total=source.shape[0], unit="frame", unit_scale=True, disable=seconds < 30, desc="render") as bar:
        result = render(source, rate, model, state, out_channels=args.channels, control_rate_hz=args.control_rate,
                        blocksize=args.blocksize, session=session,
                        progress=lambda done, total: bar.update(done - bar.n))  # fmt: skip
    write_audio(out, result.audio, rate, subtype=subtype)
    print(
        f"wrote {out}: {seconds:.1f} s, {result.audio.shape[1]} channel(s) at {rate} Hz, rendered in "
        f"{result.seconds:.2f} s ({result.realtime_factor:.0f}x real time), {result.limited_samples} samples limited"
    )
    return 0


def _check_session_size(session: Any, folder: str, latent_dim: int) -> None:
    """A session replays only with a model of the latent size it was recorded with.

    Raises:
        UserError: it was recorded with another size.

    """
    sizes = sorted({state.modulation.latent_dim for _, state in session.states})
    if sizes and sizes != [latent_dim]:
        recorded = (session.info.get("model") or {}).get("path")
        raise UserError(
            f"{folder!r} was recorded with a model of {sizes[0]} latent dims; this model has {latent_dim}",
            f"replay with the model it was recorded with: --model {recorded}" if recorded else "give its --model",
        )


def cmd_presets(args: argparse.Namespace) -> int:
    """List the presets there are (name and description), or save one with ``--save``.

    Both for a model (``--model``, else a preset's own, else the shipped one): a preset
    whose per-dim values do not fit its latent size is listed as unusable with it.
    """
    from aether_rt.commands.model import load
    from aether_rt.preset import available, load_preset_file, preset_model, save_preset

    dirs = [Path(d).expanduser() for d in args.preset_dir]
    if args.save:
        model, preset = model_and_preset(args)
        state = control_state(args, model.config.latent_dim, preset, model)
        description = args.description or (f"Saved from {preset.name}." if preset else "Saved.")
        path = save_preset(state, args.save, description, Path(args.to).expanduser() if args.to else None,
                           overwrite=args.force)  # fmt: skip
        print(f"saved {path}")
        return 0
    found = available(dirs)
    if not found:
        print("no presets found")
        return 0
    models: dict[str | None, Any] = {}  # each model loaded once

    def model_for(path: Path) -> Any:
        named = None if args.model else preset_model(path)
        key = args.model or (str(named) if named is not None else None)
        if key not in models:
            models[key] = load(key)
        return models[key]

    width = max(len(n) for n in found)
    for name, path in found.items():
        try:
            line = load_preset_file(path, model_for(path).config.latent_dim).description
        except UserError as exc:  # a bad preset, or the model it names
            line = f"(cannot be used: {exc})"
        print(f"{name.ljust(width)}  {line}")
    return 0
