"""The model on real impulse responses nobody here made (measuring only, never training).

Fetches two Debian packages with ``apt-get download`` (no install, no root), extracts
their IR files into a cache folder, and evaluates a model on them beside the flat,
PCA-4 (fitted on these very IRs) and per-IR oracle anchors:

* ``rakarrack``: nine guitar cabinet and amplifier IRs (``/usr/share/rakarrack/*.wav``);
* ``jconvolver-config-files``: a street recording, left and right
  (``demo-reverbs/street2-{L,R}.wav``).

It prints and writes JSON: per-IR and per-group LSD (smoothed target, 20 Hz - 20 kHz as
every fit here is measured: :mod:`aether_rt.models.objective`; the model's figure over the
full band to 24 kHz too, as measured before) for each method,
each IR's encoded z (the encoder's mean) and its refined in-region point, and, with
``--finetune``, a fine-tune of the model on these files (their LSD after, and the
synthetic held-out LSD after: the cost to the rest of the map).

These files are for measuring. They are never in any training corpus, and the corpus
generator is not tuned to them: the model is also judged on real IRs not in these
packages.

    python benchmarks/bench_real_irs.py [--model DIR] [--finetune] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, print_table, write_json

from aether_rt.data.datasets import default_cache_dir, load_dataset
from aether_rt.errors import UserError
from aether_rt.evaluate import EVAL_N, METHODS, evaluate
from aether_rt.models.checkpoint import load_model
from aether_rt.models.objective import COMPARED_BAND_HZ

BAND = f"{COMPARED_BAND_HZ[0]:g} Hz - {COMPARED_BAND_HZ[1] / 1000:g} kHz"

#: package -> (group name, the IR files inside it).
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "rakarrack": ("guitar cab/amp", tuple(f"usr/share/rakarrack/{i}.wav" for i in range(1, 10))),
    "jconvolver-config-files": (
        "street",
        tuple(f"usr/share/jconvolver/config-files/demo-reverbs/street2-{s}.wav" for s in "LR"),
    ),
}


def fetch_irs(cache: Path) -> dict[str, list[Path]]:
    """The IR files of :data:`PACKAGES`, downloaded and extracted into ``cache`` once."""
    found: dict[str, list[Path]] = {}
    for package, (group, members) in PACKAGES.items():
        folder = cache / package
        paths = [folder / Path(m).name for m in members]
        if not all(p.is_file() for p in paths):
            _download_and_extract(package, members, folder)
        found[group] = paths
    return found


def _download_and_extract(package: str, members: tuple[str, ...], folder: Path) -> None:
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
        folder.mkdir(parents=True, exist_ok=True)
        for member in members:
            shutil.copyfile(tree / member, folder / Path(member).name)


def main() -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder or .msgpack (default: the shipped model)")
    parser.add_argument("--cache", type=Path, help="where the IRs are kept (default: <aether-rt cache>/real-irs)")
    parser.add_argument("--oracle-steps", type=int, default=1500)
    parser.add_argument("--refine", type=int, default=300, help="refinement steps for the refined z")
    parser.add_argument("--finetune", action="store_true", help="also fine-tune on these IRs and measure")
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
    data = load_dataset(str(cache))
    group_of = {str(p.resolve()): g for g, paths in groups.items() for p in paths}
    names = [str(Path(n).resolve()) for n in data.names]
    if set(names) != set(group_of):
        print(f"note: found {len(names)} IR files under {cache}, expected {len(group_of)}", file=sys.stderr)
    result = evaluate(model, data, oracle_steps=args.oracle_steps)
    lsd = result.lsd["smoothed"]
    full_band = result.lsd["full_band"]["model"]  # to 24 kHz, as measured before the band
    z_mean, _ = model.encode(data.features)
    z_refined, refined_lsd = _refined(model, data.features, args.refine)

    per_ir = []
    for i, name in enumerate(names):
        per_ir.append({
            "file": Path(name).name, "group": group_of.get(name, "other"),
            **{m: float(lsd[m][i]) for m in METHODS}, "model_full_band": float(full_band[i]),
            "z": [round(float(v), 3) for v in z_mean[i]], "max_abs_z": float(np.max(np.abs(z_mean[i]))),
            "refined_z": [round(float(v), 3) for v in z_refined[i]], "refined": float(refined_lsd[i]),
        })  # fmt: skip
    order = [g for g, _ in PACKAGES.values()]
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
    print(f"\nPer group: mean LSD (dB, {BAND})")
    print_table(
        ["group", "n", *METHODS, "refined", "model to 24 kHz", "max |z|"],
        [[g, s["n"], *(s[m] for m in METHODS), s["refined"], s["model_full_band"], s["max_abs_z"]]
         for g, s in summary.items()],
    )  # fmt: skip
    payload: dict[str, Any] = {"model": str(model.path), "irs": per_ir, "groups": summary,
                               "kl_per_dim_nats": [float(v) for v in result.kl_per_dim]}  # fmt: skip
    if args.finetune:
        payload["finetune"] = _finetune(model, cache, args.finetune_steps)
    write_json(args.json, payload)
    return 0


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
    groups["all"] = per_ir
    return {
        g: {"n": len(rows), **{m: float(np.mean([r[m] for r in rows])) for m in (*METHODS, *EXTRA)},
            "max_abs_z": float(max(r["max_abs_z"] for r in rows))}
        for g, rows in groups.items()
    }  # fmt: skip


def _finetune(model: Any, cache: Path, steps: int | None) -> dict[str, Any]:
    """Fine-tune on the real IRs (as `train --data <them> --init default` does) and measure both sides."""
    from aether_rt.finetune import finetune

    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        ft = finetune(model, load_dataset(str(cache)), Path(out), steps=steps, show_progress=True)
        seconds = time.monotonic() - started
    row = {"seconds": seconds, "steps": ft.steps, "their_lsd_before": ft.user_lsd_before_db,
           "their_lsd_after": ft.user_lsd_after_db, "synthetic_before": ft.synthetic_lsd_before_db,
           "synthetic_after": ft.synthetic_lsd_after_db}  # fmt: skip
    print(f"\nFine-tuned on these IRs (`aether-rt train --data <them> --init default`), held-out = eval's {EVAL_N}")
    print_table(list(row), [list(row.values())])
    return row


if __name__ == "__main__":
    sys.exit(main())
