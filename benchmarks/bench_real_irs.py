"""The model on real impulse responses nobody here made (measuring only, never training).

Fetches Debian packages with ``apt-get download`` (no install, no root), extracts their
IR files into a cache folder, and evaluates a model on them beside the flat, PCA-4
(fitted on these very IRs) and per-IR oracle anchors:

* ``rakarrack``: nine guitar cabinet and amplifier IRs (``/usr/share/rakarrack/*.wav``);
* ``jconvolver-config-files``: a street recording, left and right
  (``demo-reverbs/street2-{L,R}.wav``);
* ``guitarix-common``: 90 guitar cabinet and amplifier IRs (``gx_head/sounds/amps`` and
  ``bands``, 44.1 kHz) and a great hall (``greathall.wav``).

The first two are issue 11's target set (the "target" row: 11 files); guitarix's are a
wider sample of what guitarists load, measured beside it. It prints and writes JSON:
per-IR and per-group LSD (smoothed target, 20 Hz - 20 kHz as every fit here is measured:
:mod:`aether_rt.models.objective`; the model's figure over the full band to 24 kHz too,
as measured before) for each method, each IR's encoded z (the encoder's mean) and its
refined in-region point, and, with ``--finetune``, a fine-tune of the model on the target
set (their LSD after, and the synthetic held-out LSD after: the cost to the rest of the map).

These files are for measuring. They are never in any training corpus, and the corpus
generator is not tuned to them: the model is also judged on real IRs not in these
packages.

    python benchmarks/bench_real_irs.py [--model DIR] [--finetune] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from _common import RESULTS, print_table, write_json

from aether_rt.data.datasets import Dataset, default_cache_dir, load_dataset
from aether_rt.errors import UserError
from aether_rt.evaluate import EVAL_N, METHODS, evaluate
from aether_rt.models.checkpoint import load_model
from aether_rt.models.objective import COMPARED_BAND_HZ

BAND = f"{COMPARED_BAND_HZ[0]:g} Hz - {COMPARED_BAND_HZ[1] / 1000:g} kHz"


class IrSet(NamedTuple):
    """IR files of one Debian package, measured as one group."""

    package: str
    group: str
    members: tuple[str, ...]  # paths inside the package, or glob patterns
    target: bool  # in issue 11's target figure


SETS: tuple[IrSet, ...] = (
    IrSet("rakarrack", "guitar cab/amp", tuple(f"usr/share/rakarrack/{i}.wav" for i in range(1, 10)), True),
    IrSet("jconvolver-config-files", "street",
          tuple(f"usr/share/jconvolver/config-files/demo-reverbs/street2-{s}.wav" for s in "LR"), True),
    IrSet("guitarix-common", "guitarix cab/amp",
          ("usr/share/gx_head/sounds/amps/*.wav", "usr/share/gx_head/sounds/bands/*.wav"), False),
    IrSet("guitarix-common", "guitarix hall", ("usr/share/gx_head/sounds/greathall.wav",), False),
)  # fmt: skip
TARGET = "target (the 11 above)"
TARGET_GROUPS = frozenset(s.group for s in SETS if s.target)
EXTRACTED = ".extracted"  # marks a set's folder as complete


def set_folder(cache: Path, ir_set: IrSet) -> Path:
    """Where a set's files are kept: ``<cache>/<package>/<group, as a file name>``."""
    return cache / ir_set.package / re.sub(r"[^a-z0-9]+", "-", ir_set.group.lower()).strip("-")


def fetch_irs(cache: Path) -> dict[str, list[Path]]:
    """Each set's IR files (group -> files), downloaded and extracted into ``cache`` once."""
    missing = {s.package for s in SETS if not (set_folder(cache, s) / EXTRACTED).is_file()}
    for package in sorted(missing):
        _download_and_extract(package, [s for s in SETS if s.package == package], cache)
    return {s.group: sorted(p for p in set_folder(cache, s).iterdir() if p.name != EXTRACTED) for s in SETS}


def _download_and_extract(package: str, sets: list[IrSet], cache: Path) -> None:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found", "this benchmark fetches Debian packages: run it on Debian or Ubuntu")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if done.returncode != 0 or not debs:
            raise UserError(
                f"apt-get download {package} failed: {done.stderr.strip()[-300:]}",
                "run `apt-get update` once (as root) so apt knows the package",
            )
        tree = Path(tmp) / "tree"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], check=True)
        for ir_set in sets:
            files = sorted({f for pattern in ir_set.members for f in tree.glob(pattern)})
            if not files:
                raise UserError(f"{package} holds none of {', '.join(ir_set.members)}",
                                "the package changed: update SETS in this script")  # fmt: skip
            folder = set_folder(cache, ir_set)
            folder.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, folder / f.name)
            (folder / EXTRACTED).write_text("\n".join(f.name for f in files) + "\n")


def _linked(groups: dict[str, list[Path]], into: Path) -> dict[str, str]:
    """Links to the files in a folder of their own (one subfolder per group); link path -> group."""
    group_of = {}
    for k, (group, paths) in enumerate(groups.items()):
        sub = into / f"{k:02d}"
        sub.mkdir(parents=True)
        for p in paths:
            (sub / p.name).symlink_to(p.resolve())
            group_of[str(sub / p.name)] = group
    return group_of


def main() -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder or .msgpack (default: the shipped model)")
    parser.add_argument("--cache", type=Path, help="where the IRs are kept (default: <aether-rt cache>/real-irs)")
    parser.add_argument("--oracle-steps", type=int, default=1500)
    parser.add_argument("--refine", type=int, default=300, help="refinement steps for the refined z")
    parser.add_argument("--finetune", action="store_true", help="also fine-tune on the target set and measure")
    parser.add_argument("--finetune-steps", type=int, help="fine-tuning steps (default: train's --init default)")
    parser.add_argument("--json", type=Path, default=RESULTS / "real_irs.json")
    args = parser.parse_args()
    try:
        return run(args)
    except UserError as exc:
        print(f"bench_real_irs: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Evaluate (and optionally fine-tune) and report."""
    cache = args.cache or default_cache_dir() / "real-irs"
    groups = fetch_irs(cache)
    model = load_model(Path(args.model) if args.model else None)
    print(f"model: {model.path}")
    links = Path(tempfile.mkdtemp(prefix="aether-real-irs-"))
    try:
        group_of = _linked(groups, links)
        data = load_dataset(str(links))
        for name, why in data.rejected:
            print(f"skipped {Path(name).name} ({group_of.get(name, '?')}): {why}", file=sys.stderr)
        payload = _measure(args, model, data, group_of)
        if args.finetune:
            target = {g: paths for g, paths in groups.items() if g in TARGET_GROUPS}
            payload["finetune"] = _finetune(model, target, _part(data, group_of, False), args.finetune_steps)
    finally:
        shutil.rmtree(links, ignore_errors=True)
    write_json(args.json, payload)
    return 0


def _measure(args: argparse.Namespace, model: Any, data: Any, group_of: dict[str, str]) -> dict[str, Any]:
    """Evaluate the target set and the others apart (PCA-4 is fitted on each part's own IRs), per IR."""
    per_ir, kl = [], {}
    for part, wanted in (("target", True), ("others", False)):
        sub = _part(data, group_of, wanted)
        if sub is None:
            continue
        result = evaluate(model, sub, oracle_steps=args.oracle_steps)
        kl[part] = [float(v) for v in result.kl_per_dim]
        lsd = result.lsd["smoothed"]
        full_band = result.lsd["full_band"]["model"]  # to 24 kHz, as measured before the band
        z_mean, _ = model.encode(sub.features)
        z_refined, refined_lsd = _refined(model, sub.features, args.refine)
        for i, name in enumerate(sub.names):
            per_ir.append({
                "file": Path(name).name, "group": group_of.get(name, "other"),
                **{m: float(lsd[m][i]) for m in METHODS}, "model_full_band": float(full_band[i]),
                "z": [round(float(v), 3) for v in z_mean[i]], "max_abs_z": float(np.max(np.abs(z_mean[i]))),
                "refined_z": [round(float(v), 3) for v in z_refined[i]], "refined": float(refined_lsd[i]),
            })  # fmt: skip
    order = [s.group for s in SETS]
    per_ir.sort(key=lambda r: (order.index(r["group"]) if r["group"] in order else len(order), r["file"]))
    print(
        f"\nPer IR: LSD against the smoothed target (dB, {BAND}); z = the encoder's mean; refined = in-region"
        " refit; model to 24 kHz = the model over the full band, as measured before the band"
    )
    print_table(
        ["file", "group", *METHODS, "refined", "model to 24 kHz", "max |z|", "z"],
        [[r["file"], r["group"], *(r[m] for m in METHODS), r["refined"], r["model_full_band"], r["max_abs_z"],
          ",".join(f"{v:.2f}" for v in r["z"])] for r in per_ir],
    )  # fmt: skip
    summary = _groups(per_ir)
    print(f"\nPer group: mean LSD (dB, {BAND}); PCA-4 fitted on the target set's IRs, or on the others'")
    print_table(
        ["group", "n", *METHODS, "refined", "model to 24 kHz", "max |z|"],
        [[g, s["n"], *(s[m] for m in METHODS), s["refined"], s["model_full_band"], s["max_abs_z"]]
         for g, s in summary.items()],
    )  # fmt: skip
    return {"model": str(model.path), "irs": per_ir, "groups": summary, "kl_per_dim_nats": kl}


def _part(data: Dataset, group_of: dict[str, str], target: bool) -> Dataset | None:
    """The IRs of the target set (or of the others), None when there are none."""
    index = [i for i, n in enumerate(data.names) if (group_of.get(n) in TARGET_GROUPS) == target]
    if not index:
        return None
    return Dataset(data.features[index], data.raw[index], [data.names[i] for i in index], data.description)


def _refined(model: Any, features: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``encode --refine``'s best in-region point for each IR, and its fit."""
    from aether_rt.models.fit import refine_latents

    mu, _ = model.encode(features)
    return refine_latents(model, features, mu, steps=steps)


EXTRA = ("refined", "model_full_band")  # per-IR figures besides the methods


def _groups(per_ir: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in per_ir:
        groups.setdefault(row["group"], []).append(row)
    groups[TARGET] = [r for r in per_ir if r["group"] in TARGET_GROUPS]
    groups["all"] = per_ir
    return {
        g: {"n": len(rows), **{m: float(np.mean([r[m] for r in rows])) for m in (*METHODS, *EXTRA)},
            "max_abs_z": float(max(r["max_abs_z"] for r in rows))}
        for g, rows in groups.items()
    }  # fmt: skip


def _finetune(model: Any, target: dict[str, list[Path]], others: Any, steps: int | None) -> dict[str, Any]:
    """Fine-tune on the target set (as `train --data <them> --init default` does) and measure: those
    IRs, the synthetic held-out set (the rest of the map) and the other real IRs (none trained on)."""
    from aether_rt.finetune import finetune
    from aether_rt.models.fit import fit_db

    def others_lsd(m: Any) -> float:
        return float(np.mean(fit_db(m, others.features, m.encode(others.features)[0]))) if others else float("nan")

    with tempfile.TemporaryDirectory() as tmp:
        _linked(target, Path(tmp) / "irs")
        started = time.monotonic()
        ft = finetune(model, load_dataset(str(Path(tmp) / "irs")), Path(tmp) / "out", steps=steps, show_progress=True)
        seconds = time.monotonic() - started
        tuned = load_model(ft.model_path)
    row = {"seconds": seconds, "steps": ft.steps, "their_lsd_before": ft.user_lsd_before_db,
           "their_lsd_after": ft.user_lsd_after_db, "synthetic_before": ft.synthetic_lsd_before_db,
           "synthetic_after": ft.synthetic_lsd_after_db, "other_real_before": others_lsd(model),
           "other_real_after": others_lsd(tuned)}  # fmt: skip
    print(f"\nFine-tuned on the target set (`train --data <them> --init default`); held-out = eval's {EVAL_N};"
          " other real = the IRs outside the target set (encoder mean)")  # fmt: skip
    print_table(list(row), [list(row.values())])
    return row


if __name__ == "__main__":
    sys.exit(main())
