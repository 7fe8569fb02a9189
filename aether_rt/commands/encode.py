"""``encode``: an impulse response's latent point and fit, or a folder of them as a table and a map."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from aether_rt.errors import UserError

TABLE_SUFFIXES = (".csv", ".json")


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode a file (its point, fit and region) or every IR below a folder (a table, a map)."""
    from aether_rt.commands.model import _image_path, load
    from aether_rt.models.fit import encode_ir, read_library

    source = Path(args.ir)
    table = _table_path(args.table) if args.table else None
    image = _image_path(args.map) if args.map else None
    model = load(args.model)
    if image is not None and model.config.latent_dim < 2:
        raise UserError("--map needs a model with at least 2 latent dims (a plane to draw on)")
    if source.is_dir():
        library = read_library(source, model.config.feature)
        for name, why in library.skipped:
            print(f"skipped {name}: {why}", file=sys.stderr)
        encodings = _encode_folder(model, library, args.refine)
    else:
        encodings = [encode_ir(model, source, refine_steps=args.refine)]
        library = None
    skipped = library.skipped if library is not None else []
    if table is not None:
        _write(table, _table_text(table.suffix.lower(), encodings, skipped, model))
    if image is not None:
        from aether_rt.plots import save_library_map

        save_library_map(model, image, [(str(Path(e.name).with_suffix("")), e.z) for e in encodings])
        print(f"wrote {image}", file=sys.stderr)
    if args.json:
        if library is None:
            print(json.dumps({**encodings[0].to_dict(), "learned_bound": _bound()}))
        else:
            print(_table_text(".json", encodings, skipped, model), end="")
    elif library is None:
        print(describe(encodings[0]))
    elif table is None:
        print(_text_table(encodings), end="")
    if library is not None:
        print(_summary(encodings, skipped), file=sys.stderr)
    return 0


def _encode_folder(model: Any, library: Any, refine_steps: int) -> list[Any]:
    """The folder's encodings, with a progress bar on stderr while a long refinement runs."""
    from tqdm import tqdm

    from aether_rt.models.fit import CHUNK_IRS, encode_features

    n = len(library.names)
    with tqdm(total=n, unit="IR", desc="refine", disable=not refine_steps or n <= CHUNK_IRS, file=sys.stderr) as bar:
        return encode_features(model, library.features, library.names, refine_steps=refine_steps,
                               progress=lambda done, _: bar.update(done - bar.n))  # fmt: skip


def describe(e: Any) -> str:
    """One IR's encoding as the text report (the point first, then its fit and where it lies)."""
    bound = _bound()
    lines = ["z = " + ",".join(f"{v:.4f}" for v in e.z)]
    if e.refine_steps:
        lines.append(f"fit: {e.fit_db:.3f} dB LSD against the IR's smoothed spectrum "
                     f"(refined: {e.refine_steps} steps inside the learned region |z_i| <= {bound:g})")  # fmt: skip
        where = "inside" if e.encoder_in_region else "OUTSIDE"
        lines.append(
            f"encoder mean: {','.join(f'{v:.4f}' for v in e.encoder_z)}, fit {e.encoder_fit_db:.3f} dB, "
            f"{where} the learned region"
        )
        if e.fit_db > e.encoder_fit_db + 1.0:
            lines.append(
                "note: the model fits this IR only outside the region it learned; it does not cover IRs like this "
                "one well (fine-tune it on your IRs: aether-rt train --data FOLDER --init default --out DIR)"
            )
        return "\n".join(lines)
    lines.append(f"fit: {e.fit_db:.3f} dB LSD against the IR's smoothed spectrum (the encoder's mean)")
    if not e.in_region:
        dims = ", ".join(f"z{i} = {v:+.2f}" for i, v in enumerate(e.z) if abs(v) > bound)
        lines.append(
            f"OUTSIDE the learned region |z_i| <= {bound:g} ({dims}): the decoder is uncharted there; "
            "--refine 200 finds the best point inside"
        )
    return "\n".join(lines)


def _bound() -> float:
    from aether_rt.modulation import LEARNED_BOUND

    return LEARNED_BOUND


def _rows(encodings: list[Any]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in encodings]


def _table_text(suffix: str, encodings: list[Any], skipped: list[tuple[str, str]], model: Any) -> str:
    """The table as CSV (one row per IR) or JSON (rows, skipped files, the model and the bound)."""
    if suffix == ".json":
        payload = {
            "model": str(model.path),
            "learned_bound": _bound(),
            "refine_steps": encodings[0].refine_steps if encodings else 0,
            "irs": _rows(encodings),
            "skipped": [{"file": name, "reason": why} for name, why in skipped],
        }
        return json.dumps(payload, indent=2) + "\n"
    dims = len(encodings[0].z) if encodings else 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", *(f"z{i}" for i in range(dims)), "fit_db", "in_region",
                     *(f"encoder_z{i}" for i in range(dims)), "encoder_fit_db", "encoder_in_region",
                     "refine_steps"])  # fmt: skip
    for e in encodings:
        writer.writerow([e.name, *(f"{v:.4f}" for v in e.z), f"{e.fit_db:.3f}", int(e.in_region),
                         *(f"{v:.4f}" for v in e.encoder_z), f"{e.encoder_fit_db:.3f}", int(e.encoder_in_region),
                         e.refine_steps])  # fmt: skip
    return buf.getvalue()


def _text_table(encodings: list[Any]) -> str:
    """An aligned table for the terminal: file, z, fit, region (and the encoder's, when refined)."""
    width = max(len(e.name) for e in encodings)
    dims = len(encodings[0].z)
    refined = encodings[0].refine_steps > 0
    head = f"{'file'.ljust(width)}  " + " ".join(f"{f'z{i}':>7}" for i in range(dims)) + "  fit_dB  region"
    head += "   encoder fit_dB  region" if refined else ""
    lines = [head]
    for e in encodings:
        line = f"{e.name.ljust(width)}  " + " ".join(f"{v:+7.3f}" for v in e.z)
        line += f"  {e.fit_db:6.2f}  {'inside' if e.in_region else 'OUTSIDE'}"
        if refined:
            line += f"   {e.encoder_fit_db:14.2f}  {'inside' if e.encoder_in_region else 'OUTSIDE'}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _summary(encodings: list[Any], skipped: list[tuple[str, str]]) -> str:
    outside = sum(not e.in_region for e in encodings)
    mean_fit = sum(e.fit_db for e in encodings) / len(encodings)
    text = f"{len(encodings)} IRs encoded, {len(skipped)} skipped; mean fit {mean_fit:.2f} dB; "
    text += f"{outside} outside the learned region |z_i| <= {_bound():g}"
    if encodings[0].refine_steps:
        text += f" (refined; the encoder put {sum(not e.encoder_in_region for e in encodings)} outside)"
    elif outside:
        text += " (--refine 200 puts every one at its best point inside)"
    return text


def _table_path(text: str) -> Path:
    from aether_rt.audio_files import check_output_folder

    out = Path(text)
    check_output_folder(out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise UserError(f"cannot tell the table format of {str(out)!r}", "use .csv or .json")
    return out


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r}: {exc}") from None
    print(f"wrote {path}", file=sys.stderr)
