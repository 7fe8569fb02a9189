"""An impulse response's place on the latent map (``aether-rt encode``, ``center_ir``, the web page's library).

The encoder's mean is where the model *puts* an IR; for an IR unlike the training data
it can land far outside the learned region (``|z_i| <= LEARNED_BOUND``), where the
decoder is uncharted. Refining searches the region itself for the point whose decoded
response fits the IR best:

1. starts: the encoder's mean projected onto the region (each dim clipped), the origin,
   and the :data:`SPREAD_STARTS` best fits among :data:`POOL_POINTS` seeded points spread
   over the region (a Latin hypercube; the pool is decoded once and compared with every
   IR, so a large pool costs little);
2. each start runs projected Adam (a step, then clip back into the region), all starts
   of all IRs at once, as one batch;
3. the best point per IR over every start and every end is kept: in the region by
   construction, and never worse than the projected mean or the origin.

Why so many starts: the fit is not convex in z. On a small random model, 8 fixed starts
left one of four decoded points at 4.3 dB (a local minimum); screening a pool first
found all four below 0.1 dB.

The fit is the LSD in dB between the decoded response and the IR's smoothed feature
(the training target) over 20 Hz - 20 kHz; the search minimises training's objective
(:mod:`aether_rt.models.objective`: the band, and what holds above it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError
from aether_rt.features import DEFAULT_SPEC, FeatureSpec
from aether_rt.models.checkpoint import LoadedModel, ModelConfig
from aether_rt.models.objective import response_bins
from aether_rt.modulation import LEARNED_BOUND

#: Refinement steps where none are asked for (``center_ir`` presets, the web page's library).
DEFAULT_REFINE_STEPS = 200
#: Seeded starts besides the projected encoder mean and the origin: the best fits of a seeded pool.
SPREAD_STARTS = 6
POOL_POINTS = 512
#: Adam's step size at the start; a cosine decay takes it to 2 % of that by the last step.
LEARNING_RATE = 0.05
#: IRs refined per compiled call (a short last chunk is padded to the same shape: no recompiling).
CHUNK_IRS = 16


@dataclass(frozen=True)
class Encoding:
    """An IR's latent point and how well it fits.

    Attributes:
        name: the file (as given, or relative to the encoded folder).
        z: the point to use ``[latent_dim]``: the refined point when refined, else the encoder's mean.
        fit_db: LSD of ``z``'s decoded response against the IR's feature.
        encoder_z: the encoder's mean ``[latent_dim]``.
        encoder_fit_db: LSD of the encoder's mean.
        refine_steps: Adam steps of the refinement (0: not refined).

    """

    name: str
    z: np.ndarray
    fit_db: float
    encoder_z: np.ndarray
    encoder_fit_db: float
    refine_steps: int = 0

    @property
    def in_region(self) -> bool:
        """Whether ``z`` is inside the learned region."""
        return in_region(self.z)

    @property
    def encoder_in_region(self) -> bool:
        """Whether the encoder's mean is inside the learned region."""
        return in_region(self.encoder_z)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``z`` rounded to 1e-4, dB to 1e-3)."""
        return {
            "file": self.name,
            "z": [round(float(v), 4) for v in self.z],
            "fit_db": round(self.fit_db, 3),
            "in_region": self.in_region,
            "encoder_z": [round(float(v), 4) for v in self.encoder_z],
            "encoder_fit_db": round(self.encoder_fit_db, 3),
            "encoder_in_region": self.encoder_in_region,
            "refine_steps": self.refine_steps,
        }


def in_region(z: np.ndarray, bound: float = LEARNED_BOUND) -> bool:
    """Whether every dim of ``z`` is within ``+-bound`` (default: the learned region)."""
    return bool(np.all(np.abs(np.asarray(z)) <= bound + 1e-9))


def ir_latent(model: LoadedModel, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An impulse-response file's feature and latent point (the encoder's mean).

    The file must pass :func:`aether_rt.data.screen.screen_ir`, as every file of a folder does.

    Returns:
        ``(feature [513], z [latent_dim])``.

    Raises:
        UserError: the file cannot be read or is not a usable impulse response.

    """
    from aether_rt.data.datasets import UnreadableIRError, read_ir
    from aether_rt.features import feature as ir_feature

    try:
        feature = ir_feature(read_ir(path, model.config.feature), model.config.feature)
    except UnreadableIRError as exc:
        why = str(exc).removeprefix("cannot read it as audio: ")
        raise UserError(f"cannot read {str(path)!r}: {why}", "give a WAV, FLAC or AIFF impulse response") from None
    except ValueError as exc:
        raise UserError(f"{str(path)!r} is not a usable impulse response: {exc}") from None
    mu, _ = model.encode(feature[None])
    return feature, np.asarray(mu[0], dtype=np.float64)


def encode_ir(model: LoadedModel, path: Path, *, refine_steps: int = 0) -> Encoding:
    """An IR file's :class:`Encoding` (refined in the learned region when ``refine_steps`` > 0).

    Raises:
        UserError: the file cannot be read or is not a usable impulse response.

    """
    feature, _ = ir_latent(model, path)
    return encode_features(model, feature[None], [str(path)], refine_steps=refine_steps)[0]


def encode_ir_cached(model: LoadedModel, path: Path, *, refine_steps: int = DEFAULT_REFINE_STEPS) -> Encoding:
    """:func:`encode_ir`, remembered per model weights, file (path, size, modification time) and steps.

    What ``center_ir`` presets use: a preset recalled mid-performance (OSC, the web page)
    refines its IR once, not at every recall.

    Raises:
        UserError: the file cannot be read or is not a usable impulse response.

    """
    try:
        stat = path.stat()
    except OSError:
        return encode_ir(model, path, refine_steps=refine_steps)  # raises the user-facing error
    key = (id(model.params), str(path.resolve()), stat.st_size, stat.st_mtime_ns, refine_steps)
    params, found = _ENCODED.get(key, (None, None))
    if params is not model.params or found is None:  # the entry holds its weights: an id is never reused under it
        found = encode_ir(model, path, refine_steps=refine_steps)
        if len(_ENCODED) >= 64:
            _ENCODED.clear()
        _ENCODED[key] = (model.params, found)
    return found


_ENCODED: dict[tuple[Any, ...], tuple[Any, Encoding]] = {}


@dataclass(frozen=True)
class Library:
    """A folder of impulse responses, read (features), not yet encoded.

    Attributes:
        folder: the folder.
        features: ``[n, 513]`` features of the usable files.
        names: their paths relative to ``folder``.
        skipped: ``(relative path, reason)`` of every file that could not be used.
        spec: the feature the files were read with (a model's ``config.feature``).

    """

    folder: Path
    features: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]]
    spec: FeatureSpec = DEFAULT_SPEC


def read_library(folder: Path, spec: FeatureSpec = DEFAULT_SPEC) -> Library:
    """Every usable IR below ``folder`` (the loader of ``train --data FOLDER``), names relative to it.

    ``spec`` is the feature of the model the library is for (``model.config.feature``);
    reading needs no model, so ``run`` can report a bad folder before it opens any audio.

    Raises:
        UserError: the folder does not exist or holds no usable impulse response.

    """
    from aether_rt.data.datasets import folder_dataset

    if not folder.is_dir():
        raise UserError(f"IR library {str(folder)!r} is not a folder", "give a folder of WAV/FLAC/AIFF files")
    data = folder_dataset(folder, spec=spec)

    def relative(name: str) -> str:
        path = Path(name)
        return str(path.relative_to(folder)) if path.is_relative_to(folder) else name

    def plain(reason: str) -> str:  # a reason names the file as read: keep the folder's own path out
        return reason.replace(str(folder) + "/", "")

    return Library(folder, data.features, [relative(n) for n in data.names],
                   [(relative(n), plain(why)) for n, why in data.rejected], spec)  # fmt: skip


def encode_features(
    model: LoadedModel,
    features: np.ndarray,
    names: list[str],
    *,
    refine_steps: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Encoding]:
    """Encodings of IR features ``[n, 513]`` (refined in the learned region when ``refine_steps`` > 0).

    ``progress(done, total)`` is called as the refinement goes (IRs).
    """
    mu, _ = model.encode(features)
    before = fit_db(model, features, mu)
    if refine_steps > 0:
        z, after = refine_latents(model, features, mu, steps=refine_steps, progress=progress)
    else:
        z, after = mu, before
    return [
        Encoding(name, z[i], float(after[i]), mu[i], float(before[i]), refine_steps) for i, name in enumerate(names)
    ]


def fit_db(model: LoadedModel, features: np.ndarray, z: np.ndarray) -> np.ndarray:
    """LSD in dB of each latent point's decoded response against its feature: ``[n]``.

    Args:
        model: the model.
        features: IR features ``[n, 513]``.
        z: latent points ``[n, latent_dim]``.

    """
    lsd = _compiled(model.config, 0)["lsd"](model.params, np.asarray(z, np.float32), _targets(features))
    return np.asarray(lsd, np.float64)


def spread_points(latent_dim: int, count: int = POOL_POINTS, *, seed: int = 0) -> np.ndarray:
    """``count`` seeded points spread over the learned region: a Latin hypercube (each dim in ``count`` strata).

    Returns:
        ``[count, latent_dim]`` float64, within ``+-LEARNED_BOUND``.

    """
    rng = np.random.default_rng(seed)
    strata = np.stack([rng.permutation(count) for _ in range(latent_dim)], axis=1)
    u = (strata + rng.uniform(size=(count, latent_dim))) / count
    return (2.0 * u - 1.0) * LEARNED_BOUND


def refine_latents(
    model: LoadedModel,
    features: np.ndarray,
    z0: np.ndarray,
    *,
    steps: int = DEFAULT_REFINE_STEPS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The best point in the learned region for each IR (see the module docstring).

    Args:
        model: the model.
        features: the IRs' features ``[n, 513]``.
        z0: where to start, e.g. the encoder's means ``[n, latent_dim]``; anywhere (projected).
        steps: Adam steps per start (>= 1).
        progress: called with ``(done, n)`` after each chunk of IRs.

    Returns:
        ``(z [n, latent_dim], fit_db [n])``: every ``|z_i| <= LEARNED_BOUND``.

    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n, dim = np.shape(z0)
    fixed = np.stack([np.clip(z0, -LEARNED_BOUND, LEARNED_BOUND), np.zeros((n, dim))], axis=1).astype(np.float32)
    pool = spread_points(dim).astype(np.float32)
    targets = _targets(features)
    chunk = min(n, CHUNK_IRS)
    refine = _compiled(model.config, steps)["refine"]
    best_z, best_fit = np.empty((n, dim)), np.empty(n)
    for lo in range(0, n, chunk):
        take = min(chunk, n - lo)
        s, t = np.zeros((chunk, 2, dim), np.float32), np.zeros((chunk, targets.shape[1]), np.float32)
        s[:take], t[:take] = fixed[lo : lo + take], targets[lo : lo + take]
        z, fit = refine(model.params, s, pool, t)
        best_z[lo : lo + take], best_fit[lo : lo + take] = np.asarray(z)[:take], np.asarray(fit)[:take]
        if progress is not None:
            progress(lo + take, n)
    return best_z, best_fit


def _targets(features: np.ndarray) -> np.ndarray:
    return response_bins(np.asarray(features, np.float32))


@functools.lru_cache(maxsize=8)
def _compiled(config: ModelConfig, steps: int) -> dict[str, Any]:
    """The jitted ``lsd(params, z [m, d], targets [m, bins]) -> [m]`` and ``refine(params, fixed, pool, targets)``.

    Cached per model shape and step count: a live run (presets, the library) compiles once.
    The starts of all IRs run as one flat batch, not a ``vmap`` over starts: the loss is a
    sum of per-point terms and Adam acts elementwise, so each point still descends on its
    own, and one batched decoder call is 5x faster than vmapping single-point calls
    (measured, 40 points x 200 steps: 0.44 s vs 2.3 s).
    """
    import jax
    import jax.numpy as jnp
    import optax

    from aether_rt.control import enable_compilation_cache
    from aether_rt.models.objective import band_mask, lsd_db, spectral_loss_db2
    from aether_rt.train import bin_freqs_hz, make_model_fns

    enable_compilation_cache()  # a second `encode` (or start with a center_ir preset) compiles nothing
    _, decoded_response_db, _ = make_model_fns(config)
    in_band = band_mask(bin_freqs_hz(config.feature))

    def loss(params: Any, z: Any, targets: Any) -> Any:
        return spectral_loss_db2(decoded_response_db(params, z), targets, in_band)

    def lsd(params: Any, z: Any, targets: Any) -> Any:
        return lsd_db(decoded_response_db(params, z), targets, in_band)

    out: dict[str, Any] = {"lsd": jax.jit(lsd)}
    if steps == 0:
        return out
    optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps, alpha=0.02))

    def descend(params: Any, z: Any, targets: Any) -> Any:
        # The squared error's gradient: the LSD's square root has none at a perfect fit.
        grad = jax.grad(lambda v: jnp.sum(loss(params, v, targets)))

        def body(carry: Any, _: Any) -> tuple[Any, None]:
            z, state = carry
            updates, state = optimizer.update(grad(z), state, z)
            return (jnp.clip(optax.apply_updates(z, updates), -LEARNED_BOUND, LEARNED_BOUND), state), None

        (z, _), _ = jax.lax.scan(body, (z, optimizer.init(z)), None, length=steps)
        return z

    def refine(params: Any, fixed: Any, pool: Any, targets: Any) -> tuple[Any, Any]:
        """Starts ``[n, 2, d]``, a pool ``[p, d]``, targets ``[n, bins]`` -> the best ``z [n, d]``, its LSD ``[n]``."""
        pool_db = decoded_response_db(params, pool)  # [p, bins], once for every IR
        _, picked = jax.lax.top_k(-spectral_loss_db2(pool_db[None], targets[:, None], in_band), SPREAD_STARTS)
        starts = jnp.concatenate([fixed, pool[picked]], axis=1)
        n, s, d = starts.shape
        flat_targets = jnp.repeat(targets, s, axis=0)
        flat_starts = starts.reshape(n * s, d)
        ends = descend(params, flat_starts, flat_targets)
        candidates = jnp.concatenate([starts, ends.reshape(n, s, d)], axis=1)  # [n, 2s, d]
        fits = lsd(params, candidates.reshape(n * 2 * s, d), jnp.repeat(targets, 2 * s, axis=0)).reshape(n, 2 * s)
        fits = jnp.nan_to_num(fits, nan=jnp.inf)
        best = jnp.argmin(fits, axis=1)
        rows = jnp.arange(n)
        return candidates[rows, best], fits[rows, best]

    out["refine"] = jax.jit(refine)
    return out
