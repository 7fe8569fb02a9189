"""Examples of the synthetic corpus, family by family (``aether-rt corpus --examples``).

The picture shows, for each family, the model's feature (the smoothed colouration the
VAE learns, :mod:`aether_rt.features`) of the first few IRs of that family in a corpus,
so what the model is trained on can be seen and checked against what users bring.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from aether_rt.data.synthetic import FAMILIES, FS, family_of, family_weights, synthetic_ir
from aether_rt.features import DEFAULT_SPEC, feature, prepare_ir


def family_indices(n: int, seed: int = 0) -> dict[str, list[int]]:
    """The indices of each family among the first ``n`` IRs of corpus ``seed``."""
    out: dict[str, list[int]] = {name: [] for name in FAMILIES}
    for i in range(n):
        out[family_of(i, seed)].append(i)
    return out


def family_examples(per_family: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Features ``[per_family, 513]`` of the first ``per_family`` IRs of every family."""
    wanted = {name: [] for name in FAMILIES}
    i = 0
    while any(len(v) < per_family for v in wanted.values()):
        name = family_of(i, seed)
        if len(wanted[name]) < per_family:
            wanted[name].append(i)
        i += 1
    return {
        name: np.stack([feature(prepare_ir(synthetic_ir(j, seed), FS)) for j in idx]) for name, idx in wanted.items()
    }


def save_examples(out: Path | IO[bytes], *, per_family: int = 5, seed: int = 0) -> None:
    """Draw one panel per family with ``per_family`` example features (dB over log frequency)."""
    from aether_rt.plots import _pyplot

    plt = _pyplot()
    examples = family_examples(per_family, seed)
    weights = family_weights()
    freqs = DEFAULT_SPEC.bin_freqs_hz()[1:]
    cols = 4
    rows = (len(examples) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, (name, feats) in zip(axes.flat, examples.items(), strict=False):
        for f in feats:
            ax.semilogx(freqs, f[1:], lw=1.0)
        ax.set_title(f"{name.replace('_', ' ')} ({weights[name]:.0%})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlim(40, 24_000)
        ax.set_ylim(*DEFAULT_SPEC.clip_db)
    for ax in axes.flat[len(examples) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Hz")
    for ax in axes[:, 0]:
        ax.set_ylabel("dB")
    fig.suptitle(f"aether-rt synthetic corpus (seed {seed}): the first {per_family} IRs of each family", fontsize=12)
    fig.tight_layout()
    fig.savefig(out, format=None if isinstance(out, Path) else "png", dpi=110)
    plt.close(fig)
