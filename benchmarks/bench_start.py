"""Start-up of ``aether-rt run`` and ``run --web``: launch to audio, to the page served, to every picture served.

Each start is a real process (``aether-rt run --input demo --loop --no-osc [--web PORT]``)
against the JACK server, timed from its launch by this script:

* **audio**: the run's banner line on stderr (printed once the stream is open and the
  servers listen, just before the audio starts);
* **page**: ``GET /`` first answered 200 (polled every 50 ms): the server listens
  before the model loads, so this comes first;
* **connected**: the page's WebSocket first gets its ``hello`` (refused with 503 until
  the engine is built): from here the page works;
* **pictures**: every ``/img/NAME.png`` answered 200 (503 while it is being drawn).

Configurations, each in a cache folder of its own (``$AETHER_RT_CACHE``), interleaved
over ``--repeats`` rounds (the machine is shared), medians reported:

* ``run``: a plain run, caches warm;
* ``run --web: second start``: the picture, JAX and Numba caches warm (the usual start);
* ``run --web: new model``: no cached pictures (a model this machine has not shown
  before), JAX and Numba warm;
* ``run --web: cold``: the picture, JAX and Numba caches all empty (a fresh install):
  ``$AETHER_RT_CACHE`` and ``$NUMBA_CACHE_DIR`` point at new empty folders.

Needs a JACK server (dummy backend, 48 kHz, 64 frames).

    python benchmarks/bench_start.py [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _common import RESULTS, print_table, write_json
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aether_rt.models.checkpoint import DEFAULT_MODEL, ModelConfig, paths
from aether_rt.web.pictures import picture_names

CONFIGS = ("run", "run --web: second start", "run --web: new model", "run --web: cold")
POLL_S = 0.05
TIMEOUT_S = 600.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def _hello(port: int) -> bool:
    """Whether the page's socket opens and says hello (503 while the effect is starting)."""
    try:
        with connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", open_timeout=2) as ws:
            return json.loads(ws.recv(timeout=2))["type"] == "hello"
    except (InvalidStatus, OSError, TimeoutError):
        return False


def start_once(web: bool, env: dict[str, str], names: list[str]) -> dict[str, float | None]:
    """Launch one run, time it (seconds from launch), stop it with Ctrl-C."""
    port = _free_port()
    cmd = [sys.executable, "-m", "aether_rt", "run", "--input", "demo", "--loop", "--no-osc", "--duration", "900"]
    cmd += ["--web", str(port)] if web else []
    t0 = time.monotonic()
    # Ctrl-C must reach it even when this script runs as a background job (SIGINT ignored).
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    banner: list[float] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not banner and "Ctrl-C stops" in line:
                banner.append(time.monotonic() - t0)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    times: dict[str, float | None] = {"audio_s": None, "page_s": None, "connected_s": None, "pictures_s": None}
    base = f"http://127.0.0.1:{port}"
    todo = list(names) if web else []
    try:
        while time.monotonic() - t0 < TIMEOUT_S and proc.poll() is None:
            if banner and times["audio_s"] is None:
                times["audio_s"] = banner[0]
            if web and times["page_s"] is None and _status(base + "/") == 200:
                times["page_s"] = time.monotonic() - t0
            if times["page_s"] is not None and times["connected_s"] is None and _hello(port):
                times["connected_s"] = time.monotonic() - t0
            if times["connected_s"] is not None:
                todo = [n for n in todo if _status(f"{base}/img/{n}.png") != 200]
                if not todo:
                    times["pictures_s"] = time.monotonic() - t0
            if times["audio_s"] is not None and (not web or times["pictures_s"] is not None):
                break
            time.sleep(POLL_S)
        if proc.poll() is not None:
            raise RuntimeError(f"the run exited with status {proc.returncode}: {' '.join(cmd)}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
    return times


def _env(cache: Path, numba: Path | None) -> dict[str, str]:
    env = dict(os.environ, JACK_NO_START_SERVER="1", AETHER_RT_CACHE=str(cache))
    if numba is not None:
        env["NUMBA_CACHE_DIR"] = str(numba)
    return env


def run_round(configs: tuple[str, ...], warm: Path, tmp: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """One start of each configuration (a fresh empty cache for the cold ones)."""
    out = {}
    for config in configs:
        fresh = Path(tempfile.mkdtemp(dir=tmp))
        if config in ("run", "run --web: second start"):
            env = _env(warm, None)
        elif config == "run --web: new model":
            (fresh / "jax").symlink_to(warm / "jax", target_is_directory=True)
            env = _env(fresh, None)
        else:
            env = _env(fresh, fresh / "numba")
        out[config] = start_once(config != "run", env, names)
        shutil.rmtree(fresh, ignore_errors=True)
        print(f"  {config}: {out[config]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which configurations, comma-separated")
    parser.add_argument("--json", type=Path, default=RESULTS / "start.json", help="(default: %(default)s)")
    args = parser.parse_args()
    configs = tuple(c.strip() for c in args.configs.split(","))
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    latent_dim = ModelConfig.from_dict(json.loads(paths(DEFAULT_MODEL)[1].read_text())).latent_dim
    names = picture_names(latent_dim)
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        warm = tmp / "warm"
        (warm / "jax").mkdir(parents=True)
        print("warming the caches (one start, not counted)", flush=True)
        start_once(True, _env(warm, None), names)
        for k in range(args.repeats):
            print(f"round {k + 1} of {args.repeats}", flush=True)
            for config, times in run_round(configs, warm, tmp, names).items():
                samples[config].append(times)
    rows, table = [], []
    for config in configs:
        keys = ("audio_s", "page_s", "connected_s", "pictures_s")
        med = {key: _median([s[key] for s in samples[config]]) for key in keys}
        rows.append({"configuration": config, "runs": len(samples[config]), **med, "samples": samples[config]})
        table.append([config, len(samples[config]), *(("" if v is None else v) for v in med.values())])
    print_table(["configuration", "runs", "audio s (median)", "page served s", "page connected s",
                 "all pictures served s"], table)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    write_json(args.json, {"pictures": names, "poll_s": POLL_S, "load_average_before": load_before,
                           "load_average_after": list(os.getloadavg()), "runs": rows})  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


if __name__ == "__main__":
    main()
