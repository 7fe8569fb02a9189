"""Private Numba kernels of the biquad bank. Real-time safe: no allocation, no GIL.

These run inside the PortAudio callback (a GIL-free ``@cfunc``) and behind
:meth:`aether_rt.dsp.bank.BiquadBank.process`. Everything they touch lives in the
arena (:mod:`aether_rt.dsp.arena`), addressed through its int64 header ``hdr`` and its
float64 view ``f64`` (the same memory).

Filter form: each section runs as a trapezoidal state-variable filter written in
state-space form (:mod:`aether_rt.dsp.svf`), converted from the published direct-form
table when the audio side adopts it. Its state matrix is a contraction, and so is every
frame of a linear ramp between two tables, so fast modulation cannot make a section
gain energy (a direct form can: ``benchmarks/bench_forms.py``).

Smoothing: a new table starts a ramp. For ``ramp_left`` frames every state-space
coefficient moves by ``step = (target - cur) / ramp`` per frame; when the ramp ends the
coefficients land exactly on the target.

Speed: the state update ``s1' = (q1 x + p12 s2) + p11 s1`` puts each state's own
feedback last, so the loop-carried chain is two fused multiply-adds; channels run in
interleaved pairs and a lone channel runs two sections at once (a wavefront), which
keeps several independent recursions in flight.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from aether_rt import _jitcache
from aether_rt.dsp import arena as ar
from aether_rt.dsp._intrinsics import (
    fence_acquire,
    fence_release,
    fetch_add_release,
    load_acquire,
    region,
    store_release,
)
from aether_rt.dsp.svf import N_SVF, df_to_svf

_jitcache.check()

# error_model="numpy": a division never raises (raising needs the GIL).
# fastmath "contract" only: fused multiply-adds, no reassociation (which both breaks
# the dependency ordering above and makes results depend on the compiler's whims).
# _nrt=False: compiled without Numba's runtime, so these kernels cannot allocate (an
# allocation is a compile error) and carry no reference counting: with it, every array
# view handed to a helper cost an atomic incref/decref pair, ~65 ns per section per block.
_JIT = {
    "nogil": True,
    "cache": True,
    "error_model": "numpy",
    "fastmath": {"contract"},
    "_nrt": False,
}
_NC = 5  # coefficients per section of a published (direct-form) table
_df_to_svf = njit(**_JIT)(df_to_svf)  # the one conversion, compiled for the audio side


@njit(inline="always", **_JIT)  # returns a view: must inline without NRT
def _table(hdr, f64, slot, width):
    """The [sections, width] float64 region whose offset is in header ``slot``."""
    return region(f64, hdr[slot], (hdr[ar.H_N_SECTIONS], width))


@njit(inline="always", **_JIT)  # returns a view: must inline without NRT
def _state(hdr, f64):
    return region(f64, hdr[ar.H_OFF_STATE], (hdr[ar.H_N_CHANNELS], hdr[ar.H_N_SECTIONS], 2))


@njit(**_JIT)
def _table_ok(t):
    """Finite, and every (a1, a2) strictly inside the stability triangle."""
    for k in range(t.shape[0]):
        for j in range(_NC):
            if not np.isfinite(t[k, j]):
                return False
        a1, a2 = t[k, 3], t[k, 4]
        if not (abs(a2) < 1.0 and abs(a1) < 1.0 + a2):
            return False
    return True


def _publish(hdr, f64, table, ramp_frames, tag):
    """Producer side of the hand-off: copy ``table`` into the next ring slot, publish it.

    Single producer only. ``ramp_frames`` < 0 asks for the arena's default smoothing,
    0 for an immediate jump. ``tag`` is the sample-clock time the table was computed
    for (the control tick); the audio side logs it with the frame it adopted it at.
    """
    ring_size, n = hdr[ar.H_RING_SIZE], hdr[ar.H_N_SECTIONS]
    seq = hdr[ar.H_PUBLISHED]
    slot = seq % ring_size
    base = hdr[ar.H_OFF_RING] + slot * n * _NC
    # The slot last held table seq - ring_size. A consumer still copying it re-reads
    # `published` afterwards and drops the copy if it reached seq; that only works if
    # the store that made `published` seq is visible before any of the writes below.
    # A release store orders only what came before it, so a weakly ordered CPU could
    # show these writes first: the release fence forbids that (dmb on AArch64).
    fence_release()
    for k in range(n):
        for j in range(_NC):
            f64[base + k * _NC + j] = table[k, j]
    hdr[hdr[ar.H_OFF_RING_RAMP] + slot] = ramp_frames
    hdr[hdr[ar.H_OFF_RING_TAG] + slot] = tag
    store_release(hdr, ar.H_PUBLISHED, seq + 1)  # the table, its ramp and tag before the number


@njit(**_JIT)
def _next_due(hdr):
    """Frames from now to the earliest queued table that is not yet due (-1: none queued).

    The block is split there, so each table is adopted at its own tick's frame whatever
    the block size. A tag read from a slot the producer is rewriting only moves a split
    point; the adoption itself checks its copy.
    """
    published = load_acquire(hdr, ar.H_PUBLISHED)
    ring_size, now = hdr[ar.H_RING_SIZE], hdr[ar.H_FRAMES]
    lowest = max(hdr[ar.H_CONSUMED], published - ring_size + 1)
    earliest = -1
    for seq in range(lowest, published):
        tag = hdr[hdr[ar.H_OFF_RING_TAG] + seq % ring_size]
        if tag > now and (earliest < 0 or tag < earliest):
            earliest = tag
    return earliest - now if earliest >= 0 else -1


@njit(**_JIT)
def _adopt_newest(hdr, f64, frames):
    """Consumer side of the hand-off: start a ramp towards the newest table that is due.

    A table is due when its tag (the sample-clock frame it was computed for; -1: at
    once) is at or before this block's first frame. Tables published ahead of time (the
    control thread's lookahead) wait in the ring until due; among due tables the newest
    published wins, so a table republished after a state change supersedes the one
    queued before it for the same tick.
    """
    published = load_acquire(hdr, ar.H_PUBLISHED)
    consumed = hdr[ar.H_CONSUMED]
    if published == consumed:
        return
    ring_size, n = hdr[ar.H_RING_SIZE], hdr[ar.H_N_SECTIONS]
    now = hdr[ar.H_FRAMES]
    # Sequences older than published - ring_size + 1 may be overwritten by the producer.
    lowest = max(consumed, published - ring_size + 1)
    seq = published - 1
    while seq >= lowest and hdr[hdr[ar.H_OFF_RING_TAG] + seq % ring_size] > now:
        seq -= 1
    if seq < lowest:
        return  # nothing due yet
    slot = seq % ring_size
    base = hdr[ar.H_OFF_RING] + slot * n * _NC
    stage = _table(hdr, f64, ar.H_OFF_STAGE, _NC)
    for k in range(n):
        for j in range(_NC):
            stage[k, j] = f64[base + k * _NC + j]
    ramp = hdr[hdr[ar.H_OFF_RING_RAMP] + slot]
    tag = hdr[hdr[ar.H_OFF_RING_TAG] + slot]
    # Table `seq + ring_size` reuses our slot; the producer starts writing it once
    # `published` reaches that number. If it may have done so while we copied, the copy
    # could be torn: retry at the next segment. The acquire fence keeps the copy's loads
    # before this re-read (a weakly ordered CPU could otherwise satisfy some of them
    # after it, from a slot already being overwritten).
    fence_acquire()
    if load_acquire(hdr, ar.H_PUBLISHED) - seq >= ring_size:
        hdr[ar.H_TORN_READS] += 1
        return
    hdr[ar.H_CONSUMED] = seq + 1
    if not _table_ok(stage):
        hdr[ar.H_BAD_TABLES] += 1
        return
    if ramp < 0:
        ramp = hdr[ar.H_SMOOTH_FRAMES] if hdr[ar.H_SMOOTH_FRAMES] > 0 else frames
    cur = _table(hdr, f64, ar.H_OFF_CUR, N_SVF)
    step = _table(hdr, f64, ar.H_OFF_STEP, N_SVF)
    target = _table(hdr, f64, ar.H_OFF_TARGET, N_SVF)
    inv = 1.0 / ramp if ramp > 0 else 0.0
    for k in range(n):
        svf = _df_to_svf(stage[k, 0], stage[k, 1], stage[k, 2], stage[k, 3], stage[k, 4])
        for j in range(N_SVF):
            target[k, j] = svf[j]
            if ramp > 0:
                step[k, j] = (svf[j] - cur[k, j]) * inv
            else:
                cur[k, j] = svf[j]
                step[k, j] = 0.0
    hdr[ar.H_RAMP_LEFT] = ramp
    hdr[ar.H_TABLES_APPLIED] += 1
    hdr[ar.H_LAST_TAG] = tag
    # The adoption log lets a recorded live run be re-rendered with the very same timing.
    entry = hdr[ar.H_OFF_ADOPT] + ar.ADOPT_FIELDS * (hdr[ar.H_ADOPT_WRITTEN] % hdr[ar.H_ADOPT_CAPACITY])
    hdr[entry], hdr[entry + 1], hdr[entry + 2] = seq, tag, hdr[ar.H_FRAMES]
    store_release(hdr, ar.H_ADOPT_WRITTEN, hdr[ar.H_ADOPT_WRITTEN] + 1)  # the entry before the count (recorder)


@njit(**_JIT)
def _pair(work, st, cur, step, target, k, ca, cb, frames, ramp):
    """Section ``k`` over channels ``ca`` and ``cb`` (two recursions interleaved)."""
    p11, p12, p21, p22, q1, q2 = cur[k, 0], cur[k, 1], cur[k, 2], cur[k, 3], cur[k, 4], cur[k, 5]
    r0, r1, r2 = cur[k, 6], cur[k, 7], cur[k, 8]
    # Steps in locals: `work` shares the arena with `step`, so the compiler would reload them.
    d0, d1, d2, d3, d4 = step[k, 0], step[k, 1], step[k, 2], step[k, 3], step[k, 4]
    d5, d6, d7, d8 = step[k, 5], step[k, 6], step[k, 7], step[k, 8]
    s1, s2, t1, t2 = st[ca, k, 0], st[ca, k, 1], st[cb, k, 0], st[cb, k, 1]
    for n in range(frames):
        if n < ramp:  # ramping: every coefficient moves one step per frame
            p11, p12, p21, p22, q1, q2 = p11 + d0, p12 + d1, p21 + d2, p22 + d3, q1 + d4, q2 + d5
            r0, r1, r2 = r0 + d6, r1 + d7, r2 + d8
        elif n == ramp:  # ramp over (or none): land exactly on the target
            p11, p12, p21, p22 = target[k, 0], target[k, 1], target[k, 2], target[k, 3]
            q1, q2, r0, r1, r2 = target[k, 4], target[k, 5], target[k, 6], target[k, 7], target[k, 8]
        xa, xb = work[n, ca], work[n, cb]
        ya = r0 * xa + r2 * s2 + r1 * s1
        yb = r0 * xb + r2 * t2 + r1 * t1
        s1, s2 = (q1 * xa + p12 * s2) + p11 * s1, (q2 * xa + p21 * s1) + p22 * s2
        t1, t2 = (q1 * xb + p12 * t2) + p11 * t1, (q2 * xb + p21 * t1) + p22 * t2
        work[n, ca], work[n, cb] = ya, yb
    st[ca, k, 0], st[ca, k, 1], st[cb, k, 0], st[cb, k, 1] = s1, s2, t1, t2


@njit(**_JIT)
def _wavefront(work, st, cur, step, target, k, c, frames, ramp):
    """Sections ``k`` and ``j = k + 1`` over one channel, interleaved frame by frame."""
    j = k + 1
    p11, p12, p21, p22, q1, q2 = cur[k, 0], cur[k, 1], cur[k, 2], cur[k, 3], cur[k, 4], cur[k, 5]
    r0, r1, r2 = cur[k, 6], cur[k, 7], cur[k, 8]
    u11, u12, u21, u22, v1, v2 = cur[j, 0], cur[j, 1], cur[j, 2], cur[j, 3], cur[j, 4], cur[j, 5]
    w0, w1, w2 = cur[j, 6], cur[j, 7], cur[j, 8]
    d0, d1, d2, d3, d4 = step[k, 0], step[k, 1], step[k, 2], step[k, 3], step[k, 4]
    d5, d6, d7, d8 = step[k, 5], step[k, 6], step[k, 7], step[k, 8]
    e0, e1, e2, e3, e4 = step[j, 0], step[j, 1], step[j, 2], step[j, 3], step[j, 4]
    e5, e6, e7, e8 = step[j, 5], step[j, 6], step[j, 7], step[j, 8]
    s1, s2, t1, t2 = st[c, k, 0], st[c, k, 1], st[c, j, 0], st[c, j, 1]
    for n in range(frames):
        if n < ramp:
            p11, p12, p21, p22, q1, q2 = p11 + d0, p12 + d1, p21 + d2, p22 + d3, q1 + d4, q2 + d5
            r0, r1, r2 = r0 + d6, r1 + d7, r2 + d8
            u11, u12, u21, u22, v1, v2 = u11 + e0, u12 + e1, u21 + e2, u22 + e3, v1 + e4, v2 + e5
            w0, w1, w2 = w0 + e6, w1 + e7, w2 + e8
        elif n == ramp:
            p11, p12, p21, p22 = target[k, 0], target[k, 1], target[k, 2], target[k, 3]
            q1, q2, r0, r1, r2 = target[k, 4], target[k, 5], target[k, 6], target[k, 7], target[k, 8]
            u11, u12, u21, u22 = target[j, 0], target[j, 1], target[j, 2], target[j, 3]
            v1, v2, w0, w1, w2 = target[j, 4], target[j, 5], target[j, 6], target[j, 7], target[j, 8]
        x = work[n, c]
        mid = r0 * x + r2 * s2 + r1 * s1
        out = w0 * mid + w2 * t2 + w1 * t1
        s1, s2 = (q1 * x + p12 * s2) + p11 * s1, (q2 * x + p21 * s1) + p22 * s2
        t1, t2 = (v1 * mid + u12 * t2) + u11 * t1, (v2 * mid + u21 * t1) + u22 * t2
        work[n, c] = out
    st[c, k, 0], st[c, k, 1], st[c, j, 0], st[c, j, 1] = s1, s2, t1, t2


@njit(**_JIT)
def _single(work, st, cur, step, target, k, c, frames, ramp):
    """Section ``k`` over one channel (the odd section left after the wavefronts)."""
    p11, p12, p21, p22, q1, q2 = cur[k, 0], cur[k, 1], cur[k, 2], cur[k, 3], cur[k, 4], cur[k, 5]
    r0, r1, r2 = cur[k, 6], cur[k, 7], cur[k, 8]
    d0, d1, d2, d3, d4 = step[k, 0], step[k, 1], step[k, 2], step[k, 3], step[k, 4]
    d5, d6, d7, d8 = step[k, 5], step[k, 6], step[k, 7], step[k, 8]
    s1, s2 = st[c, k, 0], st[c, k, 1]
    for n in range(frames):
        if n < ramp:
            p11, p12, p21, p22, q1, q2 = p11 + d0, p12 + d1, p21 + d2, p22 + d3, q1 + d4, q2 + d5
            r0, r1, r2 = r0 + d6, r1 + d7, r2 + d8
        elif n == ramp:
            p11, p12, p21, p22 = target[k, 0], target[k, 1], target[k, 2], target[k, 3]
            q1, q2, r0, r1, r2 = target[k, 4], target[k, 5], target[k, 6], target[k, 7], target[k, 8]
        x = work[n, c]
        y = r0 * x + r2 * s2 + r1 * s1
        s1, s2 = (q1 * x + p12 * s2) + p11 * s1, (q2 * x + p21 * s1) + p22 * s2
        work[n, c] = y
    st[c, k, 0], st[c, k, 1] = s1, s2


@njit(**_JIT)
def _cascade(hdr, f64, work, frames):
    """Run every section over ``work[:frames]`` in place and advance the ramp."""
    n, n_ch = hdr[ar.H_N_SECTIONS], hdr[ar.H_N_CHANNELS]
    st = _state(hdr, f64)
    cur = _table(hdr, f64, ar.H_OFF_CUR, N_SVF)
    step = _table(hdr, f64, ar.H_OFF_STEP, N_SVF)
    target = _table(hdr, f64, ar.H_OFF_TARGET, N_SVF)
    ramp = hdr[ar.H_RAMP_LEFT]
    for ca in range(0, n_ch - 1, 2):
        for k in range(n):
            _pair(work, st, cur, step, target, k, ca, ca + 1, frames, ramp)
    if n_ch % 2 == 1:
        c = n_ch - 1
        for k in range(0, n - 1, 2):
            _wavefront(work, st, cur, step, target, k, c, frames, ramp)
        if n % 2 == 1:
            _single(work, st, cur, step, target, n - 1, c, frames, ramp)
    if ramp > 0:  # move `cur` to where the ramp got to
        if ramp <= frames:
            for k in range(n):
                for j in range(N_SVF):
                    cur[k, j] = target[k, j]
            hdr[ar.H_RAMP_LEFT] = 0
        else:
            for k in range(n):
                for j in range(N_SVF):
                    cur[k, j] += step[k, j] * frames
            hdr[ar.H_RAMP_LEFT] = ramp - frames


@njit(**_JIT)
def _load_input(hdr, x, f0, frames, work, flags):
    """Copy input frames into the float64 work block; NaN/Inf become 0 and flag the channel."""
    n_ch, n_in = hdr[ar.H_N_CHANNELS], x.shape[1]
    for c in range(n_ch):
        src = c % n_in
        for n in range(frames):
            v = x[f0 + n, src]
            if not np.isfinite(v):
                v = 0.0
                flags[c] |= ar.FLAG_BAD_INPUT
            work[n, c] = v


@njit(**_JIT)
def _guard_output(hdr, x, f0, frames, work, flags):
    """Silence bad-input frames and everything after a blow-up; flag blown channels."""
    n_ch, n_in = hdr[ar.H_N_CHANNELS], x.shape[1]
    for c in range(n_ch):
        bad_input = flags[c] & ar.FLAG_BAD_INPUT
        blown = False
        for n in range(frames):
            v = work[n, c]
            if not blown and not abs(v) <= ar.STATE_LIMIT:  # also catches NaN
                blown = True
                flags[c] |= ar.FLAG_BLOWN
            if blown or (bad_input and not np.isfinite(x[f0 + n, c % n_in])):
                work[n, c] = 0.0


@njit(**_JIT)
def _settle_state(hdr, f64, flags):
    """Flush near-denormal state, reset flagged channels, count the events."""
    st = _state(hdr, f64)
    for c in range(st.shape[0]):
        for node in range(st.shape[1]):
            for h in range(2):
                v = st[c, node, h]
                if not abs(v) <= ar.STATE_LIMIT:
                    flags[c] |= ar.FLAG_BLOWN
                elif abs(v) < ar.DENORMAL_FLOOR:
                    st[c, node, h] = 0.0
        if flags[c] != 0:
            if flags[c] & ar.FLAG_BAD_INPUT:
                hdr[ar.H_NAN_EVENTS] += 1
            if flags[c] & ar.FLAG_BLOWN:
                hdr[ar.H_BLOWUPS] += 1
            for node in range(st.shape[1]):
                st[c, node, 0] = 0.0
                st[c, node, 1] = 0.0
            flags[c] = 0


def _process(hdr, f64, x, y):
    """Filter ``x`` [frames, in] into ``y`` [frames, out] (float32) through the bank.

    Bank channel c reads input channel ``c % in``; output channel o plays bank channel
    ``o % channels`` (so mono in, stereo out runs the bank once). Blocks longer than
    the arena's ``max_frames`` are processed in chunks, and a block is split wherever a
    queued table falls due (``_next_due``), where that table is adopted.
    """
    frames = x.shape[0]
    requested = load_acquire(hdr, ar.H_RESET_REQUESTED)
    if requested != hdr[ar.H_RESET_DONE]:
        st = _state(hdr, f64)
        for c in range(st.shape[0]):
            for node in range(st.shape[1]):
                st[c, node, 0] = 0.0
                st[c, node, 1] = 0.0
        hdr[ar.H_RESET_DONE] = requested
    n_ch, max_frames = hdr[ar.H_N_CHANNELS], hdr[ar.H_MAX_FRAMES]
    work_all = region(f64, hdr[ar.H_OFF_WORK], (max_frames, n_ch))
    flags = region(hdr, hdr[ar.H_OFF_FLAGS], (n_ch,))
    n_out = y.shape[1]
    f0 = 0
    while f0 < frames:
        # Sub-block adoption: the segment ends where the next queued table falls due, so
        # a 2048-frame block follows the same coefficient trajectory as 32-frame blocks.
        _adopt_newest(hdr, f64, frames - f0)
        m = min(max_frames, frames - f0)
        due = _next_due(hdr)
        if 0 < due < m:
            m = due
        work = work_all[:m]
        _load_input(hdr, x, f0, m, work, flags)
        _cascade(hdr, f64, work, m)
        _guard_output(hdr, x, f0, m, work, flags)
        for o in range(n_out):
            c = o % n_ch
            for n in range(m):
                y[f0 + n, o] = work[n, c]
        _settle_state(hdr, f64, flags)
        f0 += m
        # Release: the control thread and the page read the clock while this block runs.
        store_release(hdr, ar.H_FRAMES, hdr[ar.H_FRAMES] + m)
    hdr[ar.H_BLOCKS] += 1


def _request_reset(hdr):
    """Ask the audio side to zero the filter state before its next block (any thread, atomic)."""
    fetch_add_release(hdr, ar.H_RESET_REQUESTED, 1)


_WORDS = types.Array(types.int64, 1, "C")
_F64 = types.Array(types.float64, 1, "C")
_AUDIO = types.Array(types.float32, 2, "C")
_AUDIO_RO = types.Array(types.float32, 2, "C", readonly=True)
_TABLE = types.Array(types.float64, 2, "C")

#: The public entry, compiled ahead for exactly the types the callers pass: writable
#: or read-only float32 input, writable float32 output. Any other type is a TypeError,
#: never a compile on the audio path.
process = njit(
    [
        types.void(_WORDS, _F64, _AUDIO, _AUDIO),
        types.void(_WORDS, _F64, _AUDIO_RO, _AUDIO),
    ],
    **_JIT,
)(_process)

#: Producer side of the hand-off (see ``_publish``).
publish = njit([types.void(_WORDS, _F64, _TABLE, types.int64, types.int64)], **_JIT)(_publish)
#: Reset request (any thread).
request_reset = njit([types.void(_WORDS)], **_JIT)(_request_reset)


def _read_acquire(hdr, slot):
    return load_acquire(hdr, slot)


#: A header counter read with acquire ordering, for a thread that then reads what the
#: count covers (the recorder: the tap's frames, the adoption log's entries).
read_acquire = njit([types.int64(_WORDS, types.int64)], **_JIT)(_read_acquire)


@njit(**_JIT)
def stamp_clock(hdr, ns):
    """Audio thread: the wall clock ``ns`` at the start of a device period and its first frame (a sequence lock).

    A block that starts sooner after the one before than half that one's audio lasts
    (``H_FRAME_PS``) runs back to back with it in the same period and keeps its stamp:
    a wall-clock moment then maps onto the period's first frame, not onto whichever of
    its blocks a reader happened to see last.
    """
    prev_ns, prev_frame, frame = hdr[ar.H_PREV_START_NS], hdr[ar.H_PREV_START_FRAME], hdr[ar.H_FRAMES]
    hdr[ar.H_PREV_START_NS] = ns
    hdr[ar.H_PREV_START_FRAME] = frame
    if prev_ns != 0 and (ns - prev_ns) * 2000 < (frame - prev_frame) * hdr[ar.H_FRAME_PS]:
        return
    seq = hdr[ar.H_STAMP_SEQ]
    hdr[ar.H_STAMP_SEQ] = seq + 1  # odd: a reader retries
    fence_release()  # the odd count before the new values
    hdr[ar.H_STAMP_NS] = ns
    hdr[ar.H_STAMP_FRAME] = hdr[ar.H_FRAMES]
    store_release(hdr, ar.H_STAMP_SEQ, seq + 2)  # the values before the even count


def _read_stamp(hdr, out):
    for _ in range(64):
        seq = load_acquire(hdr, ar.H_STAMP_SEQ)
        if seq & 1:
            continue
        ns, frame = hdr[ar.H_STAMP_NS], hdr[ar.H_STAMP_FRAME]
        fence_acquire()  # the two reads before the count is read again
        if load_acquire(hdr, ar.H_STAMP_SEQ) == seq:
            out[0], out[1] = ns, frame
            return ns != 0
    return False


#: Any thread: ``out[:] = (wall ns, frame)`` of the last device period's start; False before the first
#: callback (or, in theory, if 64 tries all met a write).
read_stamp = njit([types.boolean(_WORDS, _WORDS)], **_JIT)(_read_stamp)
