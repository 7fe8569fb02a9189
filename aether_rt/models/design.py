"""From decoder outputs to filters, responses and coefficient tables: one path for all.

Training (its loss), evaluation, ``inspect``, ``sweep``, the web page's curve and the
control thread all call these, so a latent point z means the same filters everywhere.
The decoder's frequencies are fractions of Nyquist at the model's training rate
(:data:`~aether_rt.models.mapping.MODEL_SAMPLE_RATE_HZ`): they are turned into Hz, then
designed (and guarded) for whatever rate the audio runs at, rate-matched
(:func:`rate_matched`) so that a z sounds the same at every rate. Array-module
generic.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aether_rt.dsp.biquad import (
    array_namespace,
    coeffs_from_params,
    peaking_params,
    peaking_response_db,
)
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


def rate_matched(filters: Filters, sample_rate_hz: float, model_rate_hz: float = MODEL_SAMPLE_RATE_HZ) -> Filters:
    """The filters to design at ``sample_rate_hz`` so that they sound as at the model's rate.

    The model learned digital sections at its own rate, each the bilinear image of an
    analog prototype centred at ``(fs_m / pi) tan(pi f / fs_m)``: a broad section the model
    put near its Nyquist has its prototype far above it, squeezed into the top octave.
    Above the model's rate the same centre and Q would let that section loose into the
    audio band (measured with the shipped model at 96 kHz: -20 to -38 dB at 4-14 kHz), so
    there the prototype itself is designed: centre ``(fs / pi) atan((fs_m / fs) tan(pi f /
    fs_m))``, same Q and gain (below ~4 kHz the responses agree within 0.5 dB). Below the
    model's rate the centre in Hz and the Q are kept (the closest of the designs measured:
    the prototype's, or the bandwidth in octaves, moved the top octave by 5-20 dB at 32
    kHz); what lies above the stream's Nyquist is clamped by the design guard.
    """
    if sample_rate_hz <= model_rate_hz:
        return filters
    xp = array_namespace(filters.freq_hz)
    # Below the model's Nyquist: tan's pole is at 0.5, and float32 rounding could step past it.
    warped = xp.tan(xp.pi * xp.minimum(filters.freq_hz, 0.4999 * model_rate_hz) / model_rate_hz)
    freq_hz = (sample_rate_hz / xp.pi) * xp.arctan((model_rate_hz / sample_rate_hz) * warped)
    return Filters(freq_hz, filters.q, filters.gain_db)


def _designed(filters: Filters, sample_rate_hz: float) -> Any:
    """The guarded peaking parameters of the filters at ``sample_rate_hz`` (rate-matched)."""
    f = rate_matched(filters, sample_rate_hz)
    return peaking_params(f.freq_hz, f.q, f.gain_db, sample_rate_hz)


def response_db(filters: Filters, freqs_hz: Any, sample_rate_hz: float) -> Any:
    """Magnitude response in dB of the filter chain, designed at ``sample_rate_hz``.

    Returns ``[..., n_freqs]``: the closed-form response of the guarded sections (the
    training loss's function, differentiable in JAX).
    """
    return peaking_response_db(_designed(filters, sample_rate_hz), freqs_hz, sample_rate_hz).sum(axis=-2)


def section_responses_db(filters: Filters, freqs_hz: Any, sample_rate_hz: float) -> Any:
    """Per-filter responses in dB, ``[..., n_filters, n_freqs]`` (for plots of the filters)."""
    return peaking_response_db(_designed(filters, sample_rate_hz), freqs_hz, sample_rate_hz)


def coefficient_table(filters: Filters, sample_rate_hz: float) -> Any:
    """Direct-form coefficients ``[..., n_filters, 5]`` the bank runs at ``sample_rate_hz``."""
    return coeffs_from_params(_designed(filters, sample_rate_hz))


def effective_filters(filters: Filters, sample_rate_hz: float) -> Filters:
    """The filters as the bank will run them at ``sample_rate_hz``: after the design guards.

    Frequency, Q and gain are clamped into the design domain, and Q reflects the pole
    radius guard (``Q = sin(w0) / (2 x A)`` with the guarded damping ``x``).
    """
    p = _designed(filters, sample_rate_hz)
    xp = array_namespace(*p)
    freq_hz = p.w0 * (sample_rate_hz / (2.0 * xp.pi))
    q = xp.sin(p.w0) / (2.0 * p.damping * p.amp)
    gain_db = 40.0 * xp.log10(p.amp)
    return Filters(freq_hz, q, gain_db)
