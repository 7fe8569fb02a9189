"""Figures: the latent sweep (the model card's feature visualisation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aether_rt.models.checkpoint import LoadedModel
from aether_rt.models.design import response_db

SWEEP_VALUES = np.linspace(-2.0, 2.0, 9)


def sweep_responses(model: LoadedModel, freqs_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Responses ``[latent_dim, len(SWEEP_VALUES), n_freqs]`` in dB: each dim swept, the others 0."""
    dim = model.config.latent_dim
    z = np.zeros((dim, SWEEP_VALUES.size, dim))
    for d in range(dim):
        z[d, :, d] = SWEEP_VALUES
    return np.asarray(response_db(model.decode(z), freqs_hz, sample_rate_hz))


def save_sweep(model: LoadedModel, out: Path, *, sample_rate_hz: float = 48_000.0) -> None:
    """Draw one panel per latent dim: the response as it sweeps -2..2 (log frequency, dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.geomspace(20.0, 0.49 * sample_rate_hz, 400)
    curves = sweep_responses(model, freqs, sample_rate_hz)
    dim = curves.shape[0]
    cols = 2 if dim > 1 else 1
    rows = (dim + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.4 * rows), squeeze=False, sharey=True)
    cmap = plt.get_cmap("coolwarm")
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= dim:
            ax.axis("off")
            continue
        for i, value in enumerate(SWEEP_VALUES):
            ax.semilogx(freqs, curves[d, i], color=cmap(i / (SWEEP_VALUES.size - 1)), lw=1.2, label=f"{value:+.1f}")
        ax.set_title(f"z{d} swept -2..2, others 0")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("gain (dB)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(title="z", fontsize=7, ncol=3)
    fig.suptitle(f"aether-rt latent sweep ({out.name})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
