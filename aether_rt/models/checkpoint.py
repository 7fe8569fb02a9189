"""Model files: safe weights (flax msgpack, never pickle) plus a JSON sidecar.

A model is two files with one stem, e.g. ``model.msgpack`` and ``model.json``. The
sidecar records everything needed to use and to reproduce the weights: the
architecture and mapping bounds, the feature spec and the sample rate its
frequencies refer to, the data and seed, the command line, the metrics, and the
SHA-256 of the weights file. Loading checks all of it. A missing, corrupt,
truncated or mismatched file gives a :class:`~aether_rt.errors.UserError` naming the
file and the problem, and changes nothing. Writing is atomic (a temporary file
renamed into place), so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from aether_rt.errors import UserError
from aether_rt.features import DEFAULT_SPEC, FeatureSpec
from aether_rt.models.mapping import MODEL_SAMPLE_RATE_HZ, SEED_BOUNDS, MappingBounds

#: The shipped default model (package data), trained by ``aether-rt train`` (docs/model.md).
DEFAULT_MODEL = Path(__file__).resolve().parent / "default" / "model"
FORMAT = "aether-rt-model"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".msgpack"
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class ModelConfig:
    """What a set of weights means.

    Attributes:
        num_filters: filters the decoder emits.
        latent_dim: size of z.
        bounds: the output mapping's bounds.
        feature: the spec of the encoder's input feature.
        sample_rate_hz: the rate the normalised frequencies refer to.

    """

    num_filters: int = 32
    latent_dim: int = 4
    bounds: MappingBounds = SEED_BOUNDS
    feature: FeatureSpec = DEFAULT_SPEC
    sample_rate_hz: float = MODEL_SAMPLE_RATE_HZ

    def module(self) -> Any:
        """The flax module for this config."""
        from aether_rt.models.vae import ParametricVAE

        return ParametricVAE(num_filters=self.num_filters, latent_dim=self.latent_dim, bounds=self.bounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the sidecar's ``architecture``, ``bounds``, ``feature`` fields)."""
        from aether_rt.models import vae

        return {
            "architecture": {
                "name": "ParametricVAE",
                "num_filters": self.num_filters,
                "latent_dim": self.latent_dim,
                "input_bins": vae.INPUT_BINS,
                "conv_features": list(vae.CONV_FEATURES),
                "conv_kernel": vae.CONV_KERNEL,
                "encoder_dense": list(vae.ENCODER_DENSE),
                "decoder_dense": list(vae.DECODER_DENSE),
            },
            "bounds": asdict(self.bounds),
            "feature": self.feature.to_dict(),
            "sample_rate_hz": self.sample_rate_hz,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict` (raises KeyError/TypeError/ValueError on bad data)."""
        arch = data["architecture"]
        return cls(
            num_filters=int(arch["num_filters"]),
            latent_dim=int(arch["latent_dim"]),
            bounds=MappingBounds(**data["bounds"]),
            feature=FeatureSpec.from_dict(data["feature"]),
            sample_rate_hz=float(data["sample_rate_hz"]),
        )


@dataclass(frozen=True)
class LoadedModel:
    """A trained model ready to encode spectra and decode latent points.

    Attributes:
        config: architecture, bounds, feature spec and rate.
        params: the flax parameters.
        metadata: the whole sidecar (data, seed, command, metrics, hash).
        path: the weights file it came from.

    """

    config: ModelConfig
    params: Any
    metadata: dict[str, Any]
    path: Path

    @cached_property
    def module(self) -> Any:
        """The flax module."""
        return self.config.module()

    @cached_property
    def _decode_jit(self) -> Any:
        import jax

        return jax.jit(lambda p, z: self.module.apply({"params": p}, z, method=self.module.decode))

    @cached_property
    def _encode_jit(self) -> Any:
        import jax

        return jax.jit(lambda p, x: self.module.apply({"params": p}, x, method=self.module.encode))

    def decode(self, z: Any) -> Any:
        """Filters (:class:`~aether_rt.models.design.Filters`, Hz) of latent points ``[..., latent_dim]``."""
        import jax.numpy as jnp

        from aether_rt.models.design import filters_from_outputs

        z = jnp.asarray(z, jnp.float32)
        flat = z.reshape(-1, self.config.latent_dim)
        f, q, g = self._decode_jit(self.params, flat)
        shape = z.shape[:-1] + (self.config.num_filters,)
        return filters_from_outputs(
            np.asarray(f, np.float64).reshape(shape),
            np.asarray(q, np.float64).reshape(shape),
            np.asarray(g, np.float64).reshape(shape),
            self.config.sample_rate_hz,
        )

    def encode(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, logvar)`` of features ``[batch, 513]``, as float64 NumPy arrays."""
        import jax.numpy as jnp

        mu, logvar = self._encode_jit(self.params, jnp.asarray(features, jnp.float32))
        return np.asarray(mu, np.float64), np.asarray(logvar, np.float64)


def paths(path: Path | str) -> tuple[Path, Path]:
    """The (weights, sidecar) pair for a path given as either file, the stem, or a folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "model"
    if p.suffix in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX):
        p = p.with_suffix("")
    return p.with_suffix(WEIGHTS_SUFFIX), p.with_suffix(SIDECAR_SUFFIX)


def save_model(path: Path | str, params: Any, config: ModelConfig, metadata: dict[str, Any]) -> Path:
    """Write weights and sidecar atomically; returns the weights path."""
    from flax import serialization

    weights_path, sidecar_path = paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    blob = serialization.to_bytes(params)
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **config.to_dict(),
        **metadata,
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    _atomic_write(weights_path, blob)
    _atomic_write(sidecar_path, (json.dumps(sidecar, indent=2, default=_json_default) + "\n").encode())
    return weights_path


def load_model(path: Path | str | None = None) -> LoadedModel:
    """Load and verify a model written by :func:`save_model` (default: the shipped model).

    Raises:
        UserError: a missing file, a sidecar that is not an aether-rt model, a weights
            file whose hash does not match (corrupt or truncated), or weights that do not
            fit the recorded architecture.

    """
    from flax import serialization

    weights_path, sidecar_path = paths(DEFAULT_MODEL if path is None else path)
    for p in (sidecar_path, weights_path):
        if not p.is_file():
            raise UserError(
                f"model file {str(p)!r} does not exist", "train one with `aether-rt train`, or omit --model"
            )
    try:
        meta = json.loads(sidecar_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('format_version')!r}, this version reads {FORMAT_VERSION}")
        config = ModelConfig.from_dict(meta)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{str(sidecar_path)!r} is not a valid aether-rt model description: {exc}") from None
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise UserError(
            f"{str(weights_path)!r} does not match its description (SHA-256 differs): the file is corrupt, "
            "truncated or from another model",
            "restore it, or retrain with `aether-rt train`",
        )
    template = _template_params(config)
    try:
        params = serialization.from_bytes(template, blob)
        _check_shapes(template, params)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{str(weights_path)!r} does not fit the architecture in its description: {exc}") from None
    return LoadedModel(config, params, meta, weights_path)


def _template_params(config: ModelConfig) -> Any:
    import jax
    import jax.numpy as jnp

    module = config.module()
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(lambda: module.init(key, jnp.ones((1, config.feature.n_bins)), key)["params"])
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _check_shapes(template: Any, params: Any) -> None:
    import jax

    for (path, want), got in zip(
        jax.tree_util.tree_leaves_with_path(template), jax.tree_util.tree_leaves(params), strict=True
    ):
        if np.shape(got) != np.shape(want):
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            raise ValueError(f"{name} has shape {np.shape(got)}, expected {np.shape(want)}")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a model description")
