"""A seeded synthetic corpus of the impulse responses users bring (no download needed).

Thirteen families, drawn with the weights of :data:`FAMILIES` (docs/model.md, "The
corpus", gives each family's physics and sources):

* devices: guitar cabinets, bass cabinets, guitar amplifiers (tone stack and band
  limits, most through a cabinet), small speakers and telephone/radio channels,
  microphones (:mod:`aether_rt.data.transducers`, :mod:`aether_rt.data.tonestack`);
* spaces: image-source shoebox rooms, stochastic rooms, halls, outdoor/street,
  booths, plates and springs (:mod:`aether_rt.data.spaces`);
* instrument bodies (:mod:`aether_rt.data.bodies`).

IR number ``i`` depends only on ``(seed, i)``, so a corpus is the same however it is
split across processes, and its family is known without generating it
(:func:`family_of`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aether_rt.data import bodies, spaces, tonestack, transducers
from aether_rt.data.filters import FS
from aether_rt.features import resample

__all__ = ["FAMILIES", "FS", "SHARE_44K", "family_of", "family_weights", "synthetic_ir"]


def _amp_and_cab(rng: np.random.Generator) -> np.ndarray:
    """A guitar amp: most through a miked cabinet, some as a direct (DI) recording."""
    amp = tonestack.amplifier(rng)
    return transducers.guitar_cabinet(rng, amp) if rng.random() < 0.6 else amp


#: name -> (weight, generator). Weights are what users bring: guitar rigs first (the
#: effect's main audience), then spaces, then the rest.
FAMILIES: dict[str, tuple[float, Callable[[np.random.Generator], np.ndarray]]] = {
    "guitar_cabinet": (0.24, transducers.guitar_cabinet),
    "bass_cabinet": (0.05, transducers.bass_cabinet),
    "amplifier": (0.12, _amp_and_cab),
    "shoebox_room": (0.10, spaces.shoebox_room),
    "stochastic_room": (0.08, spaces.stochastic_room),
    "hall": (0.07, spaces.hall),
    "outdoor": (0.04, spaces.outdoor),
    "booth": (0.04, spaces.booth),
    "plate": (0.04, spaces.plate),
    "spring": (0.04, spaces.spring),
    "small_speaker": (0.08, transducers.small_speaker),
    "microphone": (0.05, transducers.microphone),
    "instrument_body": (0.05, bodies.instrument_body),
}


def family_weights() -> dict[str, float]:
    """Each family's share of the corpus (sums to 1)."""
    total = sum(w for w, _ in FAMILIES.values())
    return {name: w / total for name, (w, _) in FAMILIES.items()}


def _pick(rng: np.random.Generator) -> str:
    names = list(FAMILIES)
    cumulative = np.cumsum([FAMILIES[n][0] for n in names])
    return names[int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))]


def family_of(index: int, seed: int = 0) -> str:
    """The family of IR ``index`` of corpus ``seed`` (without generating it)."""
    return _pick(np.random.default_rng([seed, index]))


#: Share of IRs delivered as if recorded at 44.1 kHz (the CD rate many IR libraries use):
#: nothing above 22.05 kHz once resampled to the model's 48 kHz.
SHARE_44K = 0.4


def synthetic_ir(index: int, seed: int = 0) -> np.ndarray:
    """Impulse response number ``index`` of the corpus ``seed``, float64 at 48 kHz, peak 1."""
    rng = np.random.default_rng([seed, index])
    ir = FAMILIES[_pick(rng)][1](rng)
    if rng.random() < SHARE_44K:  # the same resampler a 44.1 kHz file goes through
        ir = resample(resample(ir, FS, 44_100.0), 44_100.0, FS)
    return ir / np.max(np.abs(ir))
