"""aether-rt: a real-time latent-space filter effect.

A small VAE decoder maps a 4-number latent vector z to 32 peaking biquad filters; an
LFO moves z; a Numba biquad bank filters a guitar or microphone signal in a GIL-free
audio callback, smoothing coefficients per sample. See README.md and docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aether_rt.models.checkpoint import LoadedModel

__version__ = "0.1.0"


def load_model(path: str | Path | None = None) -> LoadedModel:
    """Load a trained model: the shipped default (latent_dim 4, 32 filters) unless told otherwise.

    Args:
        path: a model folder, or its ``.msgpack``/``.json`` file; None for the default.

    Returns:
        A :class:`~aether_rt.models.checkpoint.LoadedModel`: ``encode(features)``,
        ``decode(z)`` (filters in Hz), ``config``, ``params``, ``metadata``.

    """
    from aether_rt.models.checkpoint import load_model as _load

    return _load(path)
