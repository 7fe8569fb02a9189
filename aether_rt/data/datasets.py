"""Datasets of IR features: from a folder of files, or the synthetic corpus (cached).

``load_dataset("path/to/irs")`` reads every WAV/FLAC/AIFF below a folder (any channel
count, bit depth or sample rate; resampled to the feature's rate). Files that cannot be
used are listed with the reason, not fatal. ``load_dataset("synthetic:4000")`` builds
(in parallel) or loads (from the on-disk cache) the seeded synthetic corpus.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aether_rt.errors import UserError
from aether_rt.features import DEFAULT_SPEC, FeatureSpec, feature, prepare_ir, raw_feature

IR_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
#: The default corpus size: 24 000 fitted 0.03 dB closer than 12 000 on 2000 fresh IRs
#: (paired, mostly cabinets, amps and instrument bodies) for 2.3 more minutes of building.
DEFAULT_SYNTHETIC_N = 24_000
# Bump when the synthetic generator changes, so stale caches are never reused.
SYNTHETIC_VERSION = 4


@dataclass(frozen=True)
class Dataset:
    """Features of a set of impulse responses.

    Attributes:
        features: smoothed model features ``[n, 513]`` float32 (the training target).
        raw: unsmoothed normalised Welch dB ``[n, 513]`` float32 (for evaluation).
        names: one name per IR (file path, or ``synthetic/<seed>/<index>``).
        description: what the data is, for checkpoints and reports.
        rejected: ``(name, reason)`` for each file that could not be used.

    """

    features: np.ndarray
    raw: np.ndarray
    names: list[str]
    description: dict[str, object]
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def split(self, holdout_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """A seeded (train, held-out) split."""
        order = np.random.default_rng(seed).permutation(len(self))
        n_hold = max(1, round(holdout_fraction * len(self)))
        return self._subset(order[n_hold:], "train"), self._subset(order[:n_hold], "held-out")

    def _subset(self, idx: np.ndarray, part: str) -> Dataset:
        return Dataset(
            self.features[idx],
            self.raw[idx],
            [self.names[i] for i in idx],
            {**self.description, "part": part},
        )


def load_dataset(
    source: str,
    *,
    seed: int = 0,
    spec: FeatureSpec = DEFAULT_SPEC,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Load ``"synthetic[:N]"`` or a folder of IR files.

    Raises:
        UserError: a folder that does not exist or holds no usable IR, or a bad
            ``synthetic:N``.

    """
    if source == "synthetic" or source.startswith("synthetic:"):
        count = source.partition(":")[2]
        if count and not (count.isdigit() and int(count) >= 2):
            raise UserError(f"bad data source {source!r}", "use synthetic or synthetic:N with N >= 2")
        n = int(count) if count else DEFAULT_SYNTHETIC_N
        return synthetic_dataset(n, seed=seed, spec=spec, cache_dir=cache_dir, workers=workers, progress=progress)
    return folder_dataset(Path(source), spec=spec)


def folder_dataset(folder: Path, *, spec: FeatureSpec = DEFAULT_SPEC) -> Dataset:
    """Features of every usable IR file below ``folder``; the others are listed with the reason.

    A file is skipped when it cannot be read, or is no impulse response by the checks
    of :mod:`aether_rt.data.screen` (music, noise, silence, DC, clipping, ...).

    Raises:
        UserError: no such folder, or no usable file in it (every file and its reason listed).

    """
    if not folder.is_dir():
        raise UserError(
            f"data folder {str(folder)!r} does not exist", "give a folder of WAV/FLAC/AIFF files, or synthetic"
        )
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IR_EXTENSIONS and p.is_file())
    features, raws, names, rejected = [], [], [], []
    for path in files:
        try:
            ir = read_ir(path, spec)
        except ValueError as exc:
            rejected.append((str(path), str(exc)))
            continue
        features.append(feature(ir, spec))
        raws.append(raw_feature(ir, spec))
        names.append(str(path))
    if not names:
        raise _nothing_usable(folder, rejected)
    return Dataset(
        np.stack(features),
        np.stack(raws),
        names,
        {"kind": "folder", "path": str(folder.resolve()), "files": len(files), "usable": len(names)},
        rejected,
    )


class UnreadableIRError(ValueError):
    """The file cannot be read as audio (as opposed to: read, but no impulse response)."""


def read_ir(path: Path, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """The prepared IR of one file, after the checks of :mod:`aether_rt.data.screen`.

    One reader for a folder's files and a single file (``encode``, ``center_ir``). Raises
    ValueError saying why not (:class:`UnreadableIRError` when it is not readable audio).
    """
    import soundfile as sf

    from aether_rt.data.screen import MAX_SECONDS, screen_ir

    try:
        info = sf.info(str(path))
        if info.frames > MAX_SECONDS * info.samplerate:  # before reading: a song is not loaded whole
            raise ValueError(f"too long: {info.frames / info.samplerate:.0f} s (music or a recording?)")
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UnreadableIRError(f"cannot read it as audio: {getattr(exc, 'error_string', None) or exc}") from None
    reason = screen_ir(audio, float(rate))
    if reason:
        raise ValueError(reason)
    ir = prepare_ir(audio, float(rate), spec)
    if ir.size < 32:
        raise ValueError(f"too short: {ir.size} samples after the onset")
    return ir


def _nothing_usable(folder: Path, rejected: list[tuple[str, str]]) -> UserError:
    if not rejected:
        return UserError(f"no usable impulse response in {str(folder)!r}: it holds no WAV/FLAC/AIFF file")
    shown = [f"  {Path(name).relative_to(folder)}: {why}" for name, why in rejected[:20]]
    if len(rejected) > len(shown):
        shown.append(f"  ... and {len(rejected) - len(shown)} more")
    return UserError(
        f"no usable impulse response in {str(folder)!r}: all {len(rejected)} files skipped\n" + "\n".join(shown),
        "an impulse response starts at its loudest moment and decays (docs/model.md, 'Your own IRs')",
    )


def synthetic_dataset(
    n: int,
    *,
    seed: int = 0,
    spec: FeatureSpec = DEFAULT_SPEC,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """The first ``n`` IRs of synthetic corpus ``seed``: built in parallel, cached on disk."""
    from aether_rt.data import synthetic

    key = {"version": SYNTHETIC_VERSION, "seed": seed, "n": n, "families": synthetic.family_weights(), **spec.to_dict()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = (cache_dir or default_cache_dir()) / f"synthetic-{digest}.npz"
    description = {"kind": "synthetic", "seed": seed, "n": n, "generator_version": SYNTHETIC_VERSION}
    names = [f"synthetic/{seed}/{i}" for i in range(n)]
    if cache.exists():
        try:
            with np.load(cache) as z:
                return Dataset(z["features"], z["raw"], names, description)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    chunks = [list(range(i, min(n, i + 64))) for i in range(0, n, 64)]
    features = np.empty((n, spec.n_bins), np.float32)
    raw = np.empty((n, spec.n_bins), np.float32)
    done = 0
    # forkserver, not fork: the caller may already run JAX's threads, which fork would copy.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count(), mp_context=context) as pool:
        for idx, f, r in pool.map(_synthetic_chunk, chunks, [seed] * len(chunks), [spec] * len(chunks)):
            features[idx], raw[idx] = f, r
            done += len(idx)
            if progress:
                progress(done, n)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, features=features, raw=raw)
    os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache
    return Dataset(features, raw, names, description)


def default_cache_dir() -> Path:
    """``$AETHER_RT_CACHE``, else ``$XDG_CACHE_HOME/aether-rt``, else ``~/.cache/aether-rt``."""
    if os.environ.get("AETHER_RT_CACHE"):
        return Path(os.environ["AETHER_RT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aether-rt"


def _synthetic_chunk(indices: list[int], seed: int, spec: FeatureSpec) -> tuple[list[int], np.ndarray, np.ndarray]:
    from aether_rt.data.synthetic import FS, synthetic_ir

    irs = [prepare_ir(synthetic_ir(i, seed), FS, spec) for i in indices]
    return indices, np.stack([feature(ir, spec) for ir in irs]), np.stack([raw_feature(ir, spec) for ir in irs])
