"""A live take against its offline render, at every block size.

For each block size, ``aether-rt run --input demo --preset PRESET --blocksize B --record
DIR`` plays the demo phrase live on the JACK server PortAudio finds (the dummy backend
here), then ``aether-rt render DIR/input.wav --preset PRESET`` renders the recorded input
offline, and the two outputs are compared:

* SNR of the live output against the render (the live output is the reference signal,
  the difference the noise);
* late tables: adoptions the live audio side made after their tick (the control
  thread had not queued them in time), from the session's adoption log, the most frames
  one was late by, and ticks never adopted (a newer table was due by then);
* SNR against ``render --replay DIR`` too, which follows the recorded adoptions: what is
  left there is not timing.

    python benchmarks/bench_blocks.py [--blocks 32,64,...] [--seconds 8] [--preset tremor]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import RESULTS, print_table, write_json

BLOCKS = (32, 64, 128, 256, 512, 1024, 2048)


def _cli(*args: str, timeout: float = 600) -> None:
    done = subprocess.run([sys.executable, "-m", "aether_rt", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"aether-rt {' '.join(args)} failed:\n{done.stderr}")


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10 of the reference's energy over the difference's (inf when identical)."""
    n = min(reference.shape[0], other.shape[0])
    noise = float(np.sum((reference[:n].astype(np.float64) - other[:n]) ** 2))
    signal = float(np.sum(reference[:n].astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def _finite(snr: float) -> float | None:
    """Rounded, or None (JSON null; "exact" in the table) when the outputs are identical."""
    return round(snr, 1) if np.isfinite(snr) else None


def take(block: int, seconds: float, preset: str, folder: Path) -> dict[str, float]:
    """One live take at ``block`` frames and its renders; the figures."""
    _cli("run", "--input", "demo", "--loop", "--preset", preset, "--blocksize", str(block), "--duration", str(seconds),
         "--record", str(folder), "--no-osc", "--stats", str(folder / "stats.json"))  # fmt: skip
    _cli("render", str(folder / "input.wav"), str(folder / "render.wav"), "--preset", preset)
    _cli("render", str(folder / "input.wav"), str(folder / "replay.wav"), "--replay", str(folder))
    live = sf.read(folder / "output.wav", dtype="float32", always_2d=True)[0]
    rendered = sf.read(folder / "render.wav", dtype="float32", always_2d=True)[0]
    replayed = sf.read(folder / "replay.wav", dtype="float32", always_2d=True)[0]
    session = json.loads((folder / "session.json").read_text())
    stats = json.loads((folder / "stats.json").read_text())
    adoptions = np.array(session["adoptions"], dtype=np.int64).reshape(-1, 3)
    late = adoptions[adoptions[:, 2] > adoptions[:, 1]] if adoptions.size else adoptions
    # Ticks never adopted: a newer table was already due when the audio got there.
    cf = session["control_frames"]
    ticks = set(adoptions[:, 1].tolist())
    skipped = sum(1 for t in range(0, live.shape[0] - cf, cf) if t not in ticks)
    return {
        "block": block,
        "seconds": live.shape[0] / stats["sample_rate"],
        "snr_render_db": _finite(snr_db(live, rendered)),
        "snr_replay_db": _finite(snr_db(live, replayed)),
        "adoptions": int(adoptions.shape[0]),
        "late_tables": int(late.shape[0]),
        "late_frames_max": int((late[:, 2] - late[:, 1]).max()) if late.size else 0,
        "skipped_ticks": skipped,
        "xruns": stats["xruns"],
        "callback_p99_us": round(stats["callback_us"]["p99"], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", default=",".join(map(str, BLOCKS)), help="block sizes, comma-separated")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each take")
    p.add_argument("--preset", default="tremor")
    p.add_argument("--json", type=Path, default=RESULTS / "blocks.json")
    p.add_argument("--keep", help="keep the takes in this folder")
    args = p.parse_args()
    blocks = [int(b) for b in args.blocks.split(",") if b]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        for block in blocks:
            rows.append(take(block, args.seconds, args.preset, Path(tmp) / f"take-{block}"))
            print(f"block {block}: done", file=sys.stderr, flush=True)
    keys = list(rows[0])
    print(f"== live take vs offline render, preset {args.preset}, demo phrase, JACK dummy server")
    print_table(keys, [["exact" if r[k] is None else r[k] for k in keys] for r in rows])
    write_json(args.json, {"preset": args.preset, "runs": rows})


if __name__ == "__main__":
    main()
