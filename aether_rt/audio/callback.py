"""The PortAudio callback: a Numba ``@cfunc`` that never enters the interpreter.

PortAudio calls ``int callback(const void *input, void *output, unsigned long frames,
const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags status, void *userdata)``
on its real-time thread. :data:`pa_callback` is a C function with exactly that
signature, compiled ahead by Numba (``cache=True``, no Python runtime, no GIL). Its
``userdata`` is the address of an :class:`~aether_rt.dsp.arena.Arena`; it views the
arena and the audio buffers with ``carray`` (no copy, no allocation) and runs
:func:`callback_body`.

:func:`make_python_callback` wraps the same :func:`callback_body` for sounddevice's
ordinary (GIL-holding) callback: the fallback for debugging, and the baseline the
benchmarks compare against.

The callback counts instead of reporting: callbacks, PortAudio's status flags (under-
and overflows, priming) and, when the arena has a tap, it records every input and
output frame into the tap ring for ``--record`` and for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import carray, cfunc, njit, types

from aether_rt import _jitcache
from aether_rt.dsp import _kernels, _stages
from aether_rt.dsp import arena as ar
from aether_rt.dsp._intrinsics import is_null, monotonic_ns, store_release

_jitcache.check()

_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "_nrt": False}

# PaStreamCallbackFlags bits (portaudio.h).
PA_INPUT_UNDERFLOW = 0x1
PA_INPUT_OVERFLOW = 0x2
PA_OUTPUT_UNDERFLOW = 0x4
PA_OUTPUT_OVERFLOW = 0x8
PA_PRIMING_OUTPUT = 0x10
PA_CONTINUE = 0


@njit(**_JIT)
def _count_status(hdr, status):
    if status & PA_INPUT_UNDERFLOW:
        hdr[ar.H_STATUS_INPUT_UNDERFLOW] += 1
    if status & PA_INPUT_OVERFLOW:
        hdr[ar.H_STATUS_INPUT_OVERFLOW] += 1
    if status & PA_OUTPUT_UNDERFLOW:
        hdr[ar.H_STATUS_OUTPUT_UNDERFLOW] += 1
    if status & PA_OUTPUT_OVERFLOW:
        hdr[ar.H_STATUS_OUTPUT_OVERFLOW] += 1
    if status & PA_PRIMING_OUTPUT:
        hdr[ar.H_STATUS_PRIMING] += 1


@njit(**_JIT)
def _tap(hdr, f32, x, y, f0, frames):
    """Append frames of the raw input ``x`` and output ``y`` to the tap ring (overwrites the oldest)."""
    capacity = hdr[ar.H_TAP_FRAMES]
    if capacity == 0:
        return
    n_in, n_out = hdr[ar.H_IN_CHANNELS], hdr[ar.H_OUT_CHANNELS]
    width = n_in + n_out
    base = 2 * hdr[ar.H_OFF_TAP]
    written = hdr[ar.H_TAP_WRITTEN]
    for n in range(frames):
        row = base + ((written + n) % capacity) * width
        for c in range(n_in):
            f32[row + c] = x[n, c]
        for c in range(min(n_out, y.shape[1])):
            f32[row + n_in + c] = y[f0 + n, c]
    store_release(hdr, ar.H_TAP_WRITTEN, written + frames)  # the frames before the count (recorder)


def _callback_body(hdr, f64, f32, x, y, status, has_input):
    """One audio block: input, gain, bank, mix/gain/DC/ceiling/meters, tap, counters.

    Shared by the cfunc and the Python callback (and the offline renderer). Blocks
    longer than the arena's ``max_frames`` run in chunks.
    """
    start = monotonic_ns()
    _kernels.stamp_clock(hdr, start)
    _count_status(hdr, status)
    frames, max_frames = y.shape[0], hdr[ar.H_MAX_FRAMES]
    for f0 in range(0, frames, max_frames):
        m = min(max_frames, frames - f0)
        _stages.take_input(hdr, f32, x, f0, m, has_input)
        _stages.follow_envelope(hdr, f64, f32, m)
        _stages.apply_input_gain(hdr, f64, f32, m)
        _kernels.process(hdr, f64, _stages.gained_input(hdr, f32, m), y[f0 : f0 + m])
        _stages.finish_output(hdr, f64, f32, y, f0, m)
        _tap(hdr, f32, _stages.raw_input(hdr, f32, m), y, f0, m)
    hdr[ar.H_CALLBACKS] += 1
    _stages.record_duration(hdr, monotonic_ns() - start)


def _render_segment(hdr, f64, f32, x, y, tables, first_tick, control_frames, block, last_tick):
    """Offline: run ``callback_body`` block by block over ``x`` into ``y``.

    Before each block, the table of every control tick falling in it is published,
    tagged with its tick (``tables[k]`` is tick ``first_tick + k * control_frames``), as
    a punctual control thread has them queued; the bank adopts each at its own frame,
    so the output does not depend on ``block``. Returns the last tick published. The
    same code as live, minus the Python per block.
    """
    total = x.shape[0]
    for start in range(0, total, block):
        stop = min(total, start + block)
        now = hdr[ar.H_FRAMES]
        tick = last_tick + control_frames if last_tick >= 0 else (now // control_frames) * control_frames
        while tick < now + stop - start:
            ramp = control_frames if last_tick >= 0 else 0
            k = min(max((tick - first_tick) // control_frames, 0), tables.shape[0] - 1)
            _kernels.publish(hdr, f64, tables[k], ramp, tick)
            last_tick = tick
            tick += control_frames
        callback_body(hdr, f64, f32, x[start:stop], y[start:stop], 0, True)
    return last_tick


_WORDS = types.Array(types.int64, 1, "C")
_F64 = types.Array(types.float64, 1, "C")
_F32 = types.Array(types.float32, 1, "C")
_AUDIO = types.Array(types.float32, 2, "C")
_AUDIO_RO = types.Array(types.float32, 2, "C", readonly=True)

callback_body = njit(
    [
        types.void(_WORDS, _F64, _F32, _AUDIO, _AUDIO, types.uint64, types.boolean),
        types.void(_WORDS, _F64, _F32, _AUDIO_RO, _AUDIO, types.uint64, types.boolean),
    ],
    **_JIT,
)(_callback_body)


@njit(**_JIT)
def read_clock_ns():
    """The clock the callback times itself with, in ns (tests compare it with ``time.monotonic_ns``)."""
    return monotonic_ns()


_TABLES = types.Array(types.float64, 3, "C")
#: Offline rendering loop (see ``_render_segment``), compiled ahead like the callback.
render_segment = njit(
    [types.int64(_WORDS, _F64, _F32, _AUDIO, _AUDIO, _TABLES, types.int64, types.int64, types.int64, types.int64)],
    **_JIT,
)(_render_segment)

_PA_CALLBACK_SIG = types.intc(
    types.CPointer(types.float32),  # const void *input (interleaved float32)
    types.CPointer(types.float32),  # void *output
    types.uint64,  # unsigned long frameCount
    types.voidptr,  # const PaStreamCallbackTimeInfo *timeInfo
    types.uint64,  # PaStreamCallbackFlags statusFlags
    types.voidptr,  # void *userData: the arena
)


# The cfunc itself keeps Numba's runtime: carray() needs it to build views. Those views
# wrap foreign memory (no meminfo), so nothing is counted or freed; everything it calls
# is compiled without the runtime.
@cfunc(_PA_CALLBACK_SIG, nopython=True, cache=True, error_model="numpy")
def pa_callback(inp, out, frames, time_info, status, userdata):
    """PortAudio stream callback over the arena at ``userdata`` (see module docstring)."""
    head = carray(userdata, (ar.HEADER_WORDS,), np.int64)
    total = head[ar.H_TOTAL_WORDS]
    hdr = carray(userdata, (total,), np.int64)
    f64 = carray(userdata, (total,), np.float64)
    f32 = carray(userdata, (2 * total,), np.float32)
    y = carray(out, (frames, hdr[ar.H_OUT_CHANNELS]))
    has_input = not is_null(inp)  # NULL on an output-only stream: the source or silence
    x = carray(inp if has_input else out, (frames, hdr[ar.H_IN_CHANNELS]))
    callback_body(hdr, f64, f32, x, y, status, has_input)
    return PA_CONTINUE


def make_python_callback(arena: ar.Arena, output_only: bool = False) -> Callable[..., None]:
    """A sounddevice-style Python callback running the same block code (holds the GIL)."""
    words, f64, f32 = arena.words, arena.f64, arena.f32
    body = callback_body

    if output_only:

        def play(outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            body(words, f64, f32, outdata, outdata, int(status._flags), False)

        return play

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        body(words, f64, f32, indata, outdata, int(status._flags), True)

    return callback
