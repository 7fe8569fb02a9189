"""Private Numba kernels around the bank: input, gains, mix, DC blocker, ceiling, meters.

One audio block goes through, in order (all in the arena, no allocation, no GIL):

1. ``take_input``: the device input, or the next frames of the source buffer (a file or
   the demo phrase played live), into the arena's raw-input region; ``follow_envelope``:
   the input's peak level, one pole up and down, kept at every control tick for the
   control thread (the player's dynamics can move z);
2. ``apply_input_gain``: times the input gain, smoothed per frame, into the gained
   region (the bank's input and the dry signal);
3. the bank (:mod:`aether_rt.dsp._kernels`) writes the wet signal into the output;
4. ``finish_output``: per frame, the smoothed mix (``mix * (1 - bypass)``, so bypass is a
   crossfade, never a click) of dry and wet, the smoothed output gain, a DC blocker
   (one pole at ``P_DC_POLE``), a peak limiter with instant attack and exponential
   release that keeps every sample within the ceiling (default -0.1 dBFS), a
   non-finite guard, and the peak meters.

Parameters come from the control thread (``P_*`` slots); their smoothed values, the
DC and limiter states and the meters belong to the audio thread (``S_*`` slots).

No subnormal numbers: every recursive state here (the glides, the DC blocker, the
limiter's recovery, the meters) is landed on its target or flushed to 0 at the end of
each block once it is below audibility, so minutes of digital silence cost what signal
costs (``tests/test_bank_safety.py``, ``benchmarks/bench_silence.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from aether_rt import _jitcache
from aether_rt.dsp import arena as ar
from aether_rt.dsp._intrinsics import region, store_release

_jitcache.check()

_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}, "_nrt": False}


@njit(inline="always", **_JIT)  # returns a view: must inline without NRT
def raw_input(hdr, f32, frames):
    return region(f32, 2 * hdr[ar.H_OFF_RAW], (frames, hdr[ar.H_IN_CHANNELS]))


@njit(inline="always", **_JIT)  # returns a view: must inline without NRT
def gained_input(hdr, f32, frames):
    return region(f32, 2 * hdr[ar.H_OFF_GAINED], (frames, hdr[ar.H_IN_CHANNELS]))


@njit(inline="always", **_JIT)
def _flushed(v):
    """``v``, or 0 once it is below the denormal floor (a state decaying in silence)."""
    return v if abs(v) >= ar.DENORMAL_FLOOR else 0.0


@njit(inline="always", **_JIT)
def _settled(v, target):
    """A one-pole glide's value, landed on its target once it is within ``GLIDE_SNAP``.

    A glide towards 0 (mix at bypass) otherwise decays into subnormal numbers after
    ~7 s and stays there: its step rounds to nothing before it reaches 0.
    """
    return target if abs(v - target) < ar.GLIDE_SNAP else v


@njit(**_JIT)
def take_input(hdr, f32, x, f0, frames, has_input):
    """Fill the raw-input region from the source buffer if there is one, else from ``x``."""
    n_in = hdr[ar.H_IN_CHANNELS]
    raw = raw_input(hdr, f32, frames)
    src_frames = hdr[ar.H_SRC_FRAMES]
    if src_frames > 0:
        src = region(f32, 2 * hdr[ar.H_OFF_SRC], (src_frames, n_in))
        pos = hdr[ar.H_SRC_POS]
        for n in range(frames):
            if pos >= src_frames and hdr[ar.H_SRC_LOOP] != 0:
                pos = 0
            for c in range(n_in):
                raw[n, c] = src[pos, c] if pos < src_frames else 0.0
            if pos < src_frames:
                pos += 1
        hdr[ar.H_SRC_POS] = pos
    elif has_input:
        x_in = x.shape[1]
        for n in range(frames):
            for c in range(n_in):
                raw[n, c] = x[f0 + n, c] if c < x_in else 0.0
    else:
        for n in range(frames):
            for c in range(n_in):
                raw[n, c] = 0.0


@njit(inline="always", **_JIT)
def envelope_step(env, level, attack, release):
    """The follower's next value: one pole towards ``level``, ``attack`` rising, ``release`` falling.

    The one definition of the envelope follower, shared by the live stage and the
    offline render (:func:`envelope_snapshots`), so a take re-renders to the same values.
    Flushed to 0 below the denormal floor at every frame (not at block ends: the same
    values whatever the blocks).
    """
    return _flushed(env + (attack if level > env else release) * (level - env))


@njit(inline="always", **_JIT)
def _peak(x, n):
    level = 0.0
    for c in range(x.shape[1]):
        level = max(level, abs(np.float64(x[n, c])))
    return level


@njit(**_JIT)
def follow_envelope(hdr, f64, f32, frames):
    """Follow the raw input's peak level; keep the value at every control tick for the control thread.

    Snapshot ``k`` is the follower's value before frame ``k * H_ENV_FRAMES``. The control
    thread designs the tables of tick ``t`` from the snapshot a fixed delay earlier, which
    is always written by then, so live and offline use the same values.
    """
    every = hdr[ar.H_ENV_FRAMES]
    if every <= 0:
        return
    params = region(f64, hdr[ar.H_OFF_PARAMS], (ar.N_PARAMS,))
    post = region(f64, hdr[ar.H_OFF_POST], (ar.POST_FIXED,))
    ring = region(f64, hdr[ar.H_OFF_ENV], (ar.ENV_CAPACITY,))
    raw = raw_input(hdr, f32, frames)
    attack, release = params[ar.P_ENV_ATTACK], params[ar.P_ENV_RELEASE]
    env, first = post[ar.S_ENV], hdr[ar.H_FRAMES]
    written = hdr[ar.H_ENV_WRITTEN]
    for n in range(frames):
        frame = first + n
        if frame % every == 0:
            ring[(frame // every) % ar.ENV_CAPACITY] = env
            written = frame // every + 1
        env = envelope_step(env, _peak(raw, n), attack, release)
    post[ar.S_ENV] = env
    store_release(hdr, ar.H_ENV_WRITTEN, written)  # the values before the count (control thread)


@njit(**_JIT)
def envelope_snapshots(x, every, attack, release, out):
    """Offline: the follower over all of ``x`` ``[frames, channels]``, its value at every ``every`` frames into ``out``.

    Exactly what :func:`follow_envelope` keeps live for the same input, in any blocks.
    Ticks past the input's end hold its last value.
    """
    env = 0.0
    for frame in range(x.shape[0]):
        if frame % every == 0 and frame // every < out.shape[0]:
            out[frame // every] = env
        env = envelope_step(env, _peak(x, frame), attack, release)
    for k in range((x.shape[0] + every - 1) // every, out.shape[0]):
        out[k] = env


@njit(**_JIT)
def apply_input_gain(hdr, f64, f32, frames):
    """Gained = raw * input gain, the gain gliding one-pole towards its target per frame."""
    params = region(f64, hdr[ar.H_OFF_PARAMS], (ar.N_PARAMS,))
    post = region(f64, hdr[ar.H_OFF_POST], (ar.POST_FIXED,))
    raw, out = raw_input(hdr, f32, frames), gained_input(hdr, f32, frames)
    target, a = params[ar.P_IN_GAIN], params[ar.P_SMOOTH]
    g = post[ar.S_IN_GAIN]
    n_in = raw.shape[1]
    for n in range(frames):
        g += a * (target - g)
        for c in range(n_in):
            out[n, c] = raw[n, c] * g
    post[ar.S_IN_GAIN] = _settled(g, target)


@njit(**_JIT)
def finish_output(hdr, f64, f32, y, f0, frames):
    """Mix, output gain, DC blocker, ceiling limiter, non-finite guard and meters, in place on ``y``."""
    n_in, n_out = hdr[ar.H_IN_CHANNELS], y.shape[1]
    params = region(f64, hdr[ar.H_OFF_PARAMS], (ar.N_PARAMS,))
    post = region(f64, hdr[ar.H_OFF_POST], (ar.POST_FIXED + ar.POST_PER_OUT * n_out + n_in,))
    dry = gained_input(hdr, f32, frames)
    a = params[ar.P_SMOOTH]
    mix_target = params[ar.P_MIX] * (1.0 - params[ar.P_BYPASS])
    gain_target = params[ar.P_OUT_GAIN]
    ceiling, pole, release = params[ar.P_CEILING], params[ar.P_DC_POLE], params[ar.P_LIMIT_RELEASE]
    mix, gain = post[ar.S_MIX], post[ar.S_OUT_GAIN]
    dc_on = pole < 1.0
    limited, nonfinite = 0, 0
    for o in range(n_out):
        c = o % n_in
        base = ar.POST_FIXED + ar.POST_PER_OUT * o
        x1, y1, lim, peak = post[base], post[base + 1], post[base + 2], 0.0
        m, g = post[ar.S_MIX], post[ar.S_OUT_GAIN]  # every channel glides the same way
        for n in range(frames):
            m += a * (mix_target - m)
            g += a * (gain_target - g)
            # In float64, and in this form, so that fully wet (m = 1) and fully dry (m = 0)
            # are exact: float32 arithmetic on the difference rounded wet by an ulp.
            v = (m * np.float64(y[f0 + n, o]) + (1.0 - m) * np.float64(dry[n, c])) * g
            if dc_on:  # y = x - x[-1] + pole * y[-1]
                x1, v, y1 = v, v - x1 + pole * y1, v - x1 + pole * y1
            if not np.isfinite(v):
                v, x1, y1 = 0.0, 0.0, 0.0
                nonfinite += 1
            lim += release * (1.0 - lim)
            mag = abs(v)
            if mag * lim > ceiling:  # instant attack: never let a sample through above the ceiling
                lim = ceiling / mag
                limited += 1
            v *= lim
            v = min(max(v, -ceiling), ceiling)  # rounding can leave a hair above
            y[f0 + n, o] = v
            peak = max(peak, abs(v))
        decay = params[ar.P_METER_DECAY] ** frames
        # The DC blocker's state decays geometrically in silence (and the limiter's gain
        # recovers towards 1): flushed here, before they reach subnormal numbers.
        post[base], post[base + 1], post[base + 2] = _flushed(x1), _flushed(y1), _settled(lim, 1.0)
        post[base + 3] = _flushed(max(post[base + 3] * decay, peak))
        mix, gain = m, g
    post[ar.S_MIX], post[ar.S_OUT_GAIN] = _settled(mix, mix_target), _settled(gain, gain_target)
    # input meters
    decay = params[ar.P_METER_DECAY] ** frames
    for c in range(n_in):
        peak = 0.0
        for n in range(frames):
            peak = max(peak, abs(dry[n, c]))
        slot = ar.POST_FIXED + ar.POST_PER_OUT * n_out + c
        post[slot] = _flushed(max(post[slot] * decay, peak))
    hdr[ar.H_LIMITED_SAMPLES] += limited
    hdr[ar.H_NONFINITE_OUT] += nonfinite


@njit(**_JIT)
def record_duration(hdr, ns):
    """Count one callback's duration in the log2 histogram (8 bins per octave of nanoseconds)."""
    if ns > hdr[ar.H_CALLBACK_NS_MAX]:
        hdr[ar.H_CALLBACK_NS_MAX] = ns
    b = int(8.0 * np.log2(max(ns, 1))) if ns > 0 else 0
    hdr[hdr[ar.H_OFF_HIST] + min(b, ar.HIST_BINS - 1)] += 1
