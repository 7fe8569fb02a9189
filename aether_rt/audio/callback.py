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
from aether_rt.dsp import _kernels
from aether_rt.dsp import arena as ar
from aether_rt.dsp._intrinsics import is_null

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
def _tap(hdr, f32, x, y):
    """Append the block's input and output frames to the tap ring (overwrites the oldest)."""
    capacity = hdr[ar.H_TAP_FRAMES]
    if capacity == 0:
        return
    n_in, n_out = x.shape[1], y.shape[1]
    width = hdr[ar.H_IN_CHANNELS] + hdr[ar.H_OUT_CHANNELS]
    base = 2 * hdr[ar.H_OFF_TAP]
    written = hdr[ar.H_TAP_WRITTEN]
    for n in range(x.shape[0]):
        row = base + ((written + n) % capacity) * width
        for c in range(min(n_in, hdr[ar.H_IN_CHANNELS])):
            f32[row + c] = x[n, c]
        for c in range(min(n_out, hdr[ar.H_OUT_CHANNELS])):
            f32[row + hdr[ar.H_IN_CHANNELS] + c] = y[n, c]
    hdr[ar.H_TAP_WRITTEN] = written + x.shape[0]


def _callback_body(hdr, f64, f32, x, y, status):
    """Everything one audio block does; shared by the cfunc and the Python callback."""
    _count_status(hdr, status)
    _kernels.process(hdr, f64, x, y)
    _tap(hdr, f32, x, y)
    hdr[ar.H_CALLBACKS] += 1


_WORDS = types.Array(types.int64, 1, "C")
_F64 = types.Array(types.float64, 1, "C")
_F32 = types.Array(types.float32, 1, "C")
_AUDIO = types.Array(types.float32, 2, "C")
_AUDIO_RO = types.Array(types.float32, 2, "C", readonly=True)

callback_body = njit(
    [
        types.void(_WORDS, _F64, _F32, _AUDIO, _AUDIO, types.uint64),
        types.void(_WORDS, _F64, _F32, _AUDIO_RO, _AUDIO, types.uint64),
    ],
    **_JIT,
)(_callback_body)

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
    n_out = hdr[ar.H_OUT_CHANNELS]
    y = carray(out, (frames, n_out))
    if is_null(inp):  # no input buffer (cannot happen on a duplex stream): play silence
        for n in range(frames):
            for c in range(n_out):
                y[n, c] = 0.0
        return PA_CONTINUE
    x = carray(inp, (frames, hdr[ar.H_IN_CHANNELS]))
    callback_body(hdr, f64, f32, x, y, status)
    return PA_CONTINUE


def make_python_callback(arena: ar.Arena) -> Callable[..., None]:
    """A sounddevice-style Python callback running the same block code (holds the GIL)."""
    words, f64, f32 = arena.words, arena.f64, arena.f32
    body = callback_body

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        body(words, f64, f32, indata, outdata, int(status._flags))

    return callback
