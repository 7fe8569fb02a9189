"""Low-level Numba intrinsics: atomics and fences, a NULL test, views, a nanosecond clock.

The coefficient hand-off between the control thread and the audio callback is a
single-producer/single-consumer ring: the producer fills a slot, then publishes a
sequence number; the consumer reads the sequence number, then the slot. Plain loads
and stores would let the compiler merge or reorder them, and a weakly ordered CPU
(AArch64, POWER) may reorder them in hardware too, so the sequence number goes through
LLVM atomics with acquire/release ordering, and the sequence lock's two other orderings
are fences (see :mod:`aether_rt.dsp._kernels`). On x86-64 (TSO) every one of these is a
plain ``mov``; on AArch64 they become ``ldar``/``stlr`` and ``dmb`` barriers.
``tests/test_memory_order.py`` compiles the callback for AArch64 and checks them.
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _element_pointer(context, builder, arrty, arr, idx):
    ary = make_array(arrty)(context, builder, value=arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx], wraparound=False)


@intrinsic
def load_acquire(typingctx, arr, idx):
    """``arr[idx]`` as an atomic acquire load (``arr``: 1-D int64 array)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, types.intp), codegen


@intrinsic
def store_release(typingctx, arr, idx, value):
    """``arr[idx] = value`` as an atomic release store (``arr``: 1-D int64 array)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return types.none(arr, types.intp, value), codegen


@intrinsic
def fetch_add_release(typingctx, arr, idx, value):
    """``arr[idx] += value`` as one atomic read-modify-write with release ordering; returns the old value.

    For a counter more than one thread may increment (a reset request): a plain
    load-add-store from two threads could lose one of the increments.
    """
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "release")

    return types.int64(arr, types.intp, value), codegen


@intrinsic
def fence_acquire(typingctx):
    """An acquire fence: loads before it are ordered before every load and store after it."""

    def codegen(context, builder, sig, args):
        builder.fence("acquire")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def fence_release(typingctx):
    """A release fence: loads and stores before it are ordered before every store after it."""

    def codegen(context, builder, sig, args):
        builder.fence("release")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def is_null(typingctx, ptr):
    """Whether a raw pointer (``CPointer`` or ``voidptr``) is NULL."""
    if not (isinstance(ptr, types.CPointer) or ptr == types.voidptr):
        return None

    def codegen(context, builder, sig, args):
        return builder.icmp_unsigned("==", args[0], args[0].type(None))

    return types.boolean(ptr), codegen


@intrinsic
def region(typingctx, base, offset, shape):
    """A C-contiguous view ``base[offset:offset + prod(shape)]`` shaped as ``shape``.

    Unlike ``reshape`` it has no failure path (nothing that could raise and so need
    the GIL) and carries no meminfo, so it also works in kernels compiled without
    Numba's runtime. The caller guarantees the region lies inside ``base``.
    """
    if not (isinstance(base, types.Array) and base.ndim == 1 and base.layout == "C"):
        return None
    if not (isinstance(shape, types.UniTuple) and isinstance(shape.dtype, types.Integer)):
        return None
    ndim = shape.count
    retty = types.Array(base.dtype, ndim, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, value=args[0])
        offset_val = context.cast(builder, args[1], sig.args[1], types.intp)
        dims = [
            context.cast(builder, d, sig.args[2].dtype, types.intp)
            for d in cgutils.unpack_tuple(builder, args[2], ndim)
        ]
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(base.dtype)))
        strides, stride = [], itemsize
        for d in reversed(dims):
            strides.append(stride)
            stride = builder.mul(stride, d)
        out = make_array(retty)(context, builder)
        populate_array(
            out,
            data=builder.gep(src.data, [offset_val]),
            shape=cgutils.pack_array(builder, dims),
            strides=cgutils.pack_array(builder, list(reversed(strides))),
            itemsize=itemsize,
            meminfo=None,
        )
        return out._getvalue()

    return retty(base, offset, shape), codegen


# CLOCK_MONOTONIC's number differs between systems (<time.h>).
_CLOCK_MONOTONIC = {"darwin": 6, "freebsd": 4}.get(sys.platform, 1)


@intrinsic
def monotonic_ns(typingctx):
    """A monotonic clock in nanoseconds, the same unit on every CPU.

    Not ``llvm.readcyclecounter``: on x86-64 that is the TSC, at a rate that must be
    calibrated; on AArch64 it is a timer at a board-specific rate (``CNTVCT_EL0`` with
    the LLVM Numba ships today), or the cycle counter ``PMCCNTR_EL0``, which user code may
    not read on Linux (a trap), and which older LLVM releases emitted there. Linux and the BSDs call
    ``clock_gettime(CLOCK_MONOTONIC)`` (the vDSO: no system call, no lock), macOS
    ``clock_gettime_nsec_np``, Windows ``QueryPerformanceCounter``. The ``timespec`` /
    counter lives on the stack: nothing allocated. The symbols are resolved by name when
    the code is loaded, so a cached function stays valid in the next process.
    """

    def codegen(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        module = builder.module
        if sys.platform == "win32":
            fnty = ir.FunctionType(i32, [i64.as_pointer()])
            counter = cgutils.alloca_once(builder, i64)
            freq = cgutils.alloca_once(builder, i64)
            builder.call(cgutils.get_or_insert_function(module, fnty, "QueryPerformanceCounter"), [counter])
            builder.call(cgutils.get_or_insert_function(module, fnty, "QueryPerformanceFrequency"), [freq])
            ticks, hz = builder.load(counter), builder.load(freq)
            # ticks * 1e9 / hz without overflow: whole seconds and the remainder apart.
            sec, rem = builder.sdiv(ticks, hz), builder.srem(ticks, hz)
            billion = i64(1_000_000_000)
            return builder.add(builder.mul(sec, billion), builder.sdiv(builder.mul(rem, billion), hz))
        if sys.platform == "darwin":
            fnty = ir.FunctionType(i64, [i32])
            fn = cgutils.get_or_insert_function(module, fnty, "clock_gettime_nsec_np")
            return builder.call(fn, [i32(8)])  # CLOCK_UPTIME_RAW
        timespec = ir.LiteralStructType([i64, i64])  # time_t, long on LP64
        ts = cgutils.alloca_once(builder, timespec)
        fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
        builder.call(cgutils.get_or_insert_function(module, fnty, "clock_gettime"), [i32(_CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, i64(1_000_000_000)), nsec)

    return types.int64(), codegen
