"""Low-level Numba intrinsics: acquire/release atomics, a NULL test, views, the cycle counter.

The coefficient hand-off between the control thread and the audio callback is a
single-producer/single-consumer ring: the producer fills a slot, then publishes a
sequence number; the consumer reads the sequence number, then the slot. Plain loads
and stores would let the compiler merge or reorder them, so the sequence number goes
through LLVM atomics with acquire/release ordering (free on x86-64, correct elsewhere).
"""

from __future__ import annotations

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


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``: RDTSC on x86-64), a few ns to read."""

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=ir.FunctionType(ir.IntType(64), []))
        return builder.call(fn, [])

    return types.int64(), codegen
