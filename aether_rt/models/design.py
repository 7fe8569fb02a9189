"""From decoder outputs to filters, responses and coefficient tables: one path for all.

Training (its loss), evaluation, ``inspect``, ``sweep``, the web page's curve and the
control thread all call these, so a latent point z means the same filters everywhere.
The decoder's frequencies are fractions of Nyquist at the model's training rate
(:data:`~aether_rt.models.mapping.MODEL_SAMPLE_RATE_HZ`): they are turned into Hz, then
designed (and guarded) for whatever rate the audio runs at. Array-module generic.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aether_rt.dsp.biquad import array_namespace, coeffs_from_params, peaking_params, peaking_response_db
from aether_rt.models.mapping import MODEL_SAMPLE_RATE_HZ, freq_frac_to_hz


class Filters(NamedTuple):
    """Decoded peaking filters, each field ``[..., n_filters]``.

    Attributes:
        freq_hz: centre frequencies in Hz.
        q: quality factors.
        gain_db: peak gains in dB.

    """

    freq_hz: Any
    q: Any
    gain_db: Any


def filters_from_outputs(freq_frac: Any, q: Any, gain_db: Any, model_rate_hz: float = MODEL_SAMPLE_RATE_HZ) -> Filters:
    """The decoder's (fraction of Nyquist, Q, dB) as :class:`Filters` in Hz."""
    return Filters(freq_frac_to_hz(freq_frac, model_rate_hz), q, gain_db)


def response_db(filters: Filters, freqs_hz: Any, sample_rate_hz: float) -> Any:
    """Magnitude response in dB of the filter chain, designed at ``sample_rate_hz``.

    Returns ``[..., n_freqs]``: the closed-form response of the guarded sections (the
    training loss's function, differentiable in JAX).
    """
    params = peaking_params(filters.freq_hz, filters.q, filters.gain_db, sample_rate_hz)
    return peaking_response_db(params, freqs_hz, sample_rate_hz).sum(axis=-2)


def section_responses_db(filters: Filters, freqs_hz: Any, sample_rate_hz: float) -> Any:
    """Per-filter responses in dB, ``[..., n_filters, n_freqs]`` (for plots of the filters)."""
    params = peaking_params(filters.freq_hz, filters.q, filters.gain_db, sample_rate_hz)
    return peaking_response_db(params, freqs_hz, sample_rate_hz)


def coefficient_table(filters: Filters, sample_rate_hz: float) -> Any:
    """Direct-form coefficients ``[..., n_filters, 5]`` the bank runs at ``sample_rate_hz``."""
    return coeffs_from_params(peaking_params(filters.freq_hz, filters.q, filters.gain_db, sample_rate_hz))


def effective_filters(filters: Filters, sample_rate_hz: float) -> Filters:
    """The filters as the bank will run them at ``sample_rate_hz``: after the design guards.

    Frequency, Q and gain are clamped into the design domain, and Q reflects the pole
    radius guard (``Q = sin(w0) / (2 x A)`` with the guarded damping ``x``).
    """
    p = peaking_params(filters.freq_hz, filters.q, filters.gain_db, sample_rate_hz)
    xp = array_namespace(*p)
    freq_hz = p.w0 * (sample_rate_hz / (2.0 * xp.pi))
    q = xp.sin(p.w0) / (2.0 * p.damping * p.amp)
    gain_db = 40.0 * xp.log10(p.amp)
    return Filters(freq_hz, q, gain_db)
