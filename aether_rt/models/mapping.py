"""The decoder's bounded output mapping: raw network outputs to filter parameters.

The model card fixes it: for raw outputs ``r[..., n_filters, 3]``

    freq = sigmoid(r0) * 0.99 + 0.01     (a fraction of the Nyquist frequency)
    Q    = softplus(r1) + 0.1
    gain = tanh(r2) * 20 dB

One definition, shared by the VAE's decoder, training, the runtime and the tests, and
array-module generic (NumPy or JAX, like :mod:`aether_rt.dsp.biquad`). The bounds are a
dataclass so that a model can be built with safer ones; the defaults are the card's.
The normalised frequency refers to the model's training sample rate
(:data:`MODEL_SAMPLE_RATE_HZ`); :func:`freq_frac_to_hz` turns it into Hz, after
which the biquad design guards it for whatever rate the stream runs at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aether_rt.dsp.biquad import array_namespace

#: The sample rate the model's normalised frequencies refer to.
MODEL_SAMPLE_RATE_HZ = 48_000.0


@dataclass(frozen=True)
class MappingBounds:
    """Bounds of the output mapping (defaults: the model card's).

    Attributes:
        freq_min_frac: lowest centre frequency, as a fraction of Nyquist.
        freq_max_frac: highest centre frequency, as a fraction of Nyquist.
        q_min: Q floor added to the softplus.
        gain_max_db: largest boost or cut in dB.

    """

    freq_min_frac: float = 0.01
    freq_max_frac: float = 1.0
    q_min: float = 0.1
    gain_max_db: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.freq_min_frac < self.freq_max_frac <= 1.0:
            raise ValueError(
                f"need 0 < freq_min_frac < freq_max_frac <= 1, got {self.freq_min_frac!r}, {self.freq_max_frac!r}"
            )
        if not self.q_min > 0.0:
            raise ValueError(f"q_min must be > 0, got {self.q_min!r}")
        if not self.gain_max_db > 0.0:
            raise ValueError(f"gain_max_db must be > 0, got {self.gain_max_db!r}")


SEED_BOUNDS = MappingBounds()


def map_outputs(raw: Any, bounds: MappingBounds = SEED_BOUNDS) -> tuple[Any, Any, Any]:
    """Map raw decoder outputs ``[..., n_filters, 3]`` to (freq_frac, q, gain_db).

    Each result is ``[..., n_filters]``. ``sigmoid`` is evaluated as
    ``(1 + tanh(r / 2)) / 2`` and softplus as ``logaddexp(0, r)``, which stay finite
    for any finite input, however large.
    """
    xp = array_namespace(raw)
    r_freq, r_q, r_gain = raw[..., 0], raw[..., 1], raw[..., 2]
    sigmoid = 0.5 * (1.0 + xp.tanh(0.5 * r_freq))
    span = bounds.freq_max_frac - bounds.freq_min_frac
    freq_frac = sigmoid * span + bounds.freq_min_frac
    q = xp.logaddexp(0.0, r_q) + bounds.q_min
    gain_db = xp.tanh(r_gain) * bounds.gain_max_db
    return freq_frac, q, gain_db


def freq_frac_to_hz(freq_frac: Any, sample_rate_hz: float = MODEL_SAMPLE_RATE_HZ) -> Any:
    """A fraction of Nyquist at ``sample_rate_hz`` (the model's rate) in Hz."""
    return freq_frac * (0.5 * sample_rate_hz)
