"""The audio arena: one preallocated buffer holding everything the audio thread touches.

The real-time callback (a Numba ``@cfunc``, see :mod:`aether_rt.audio.callback`) gets a
single ``void *userdata``. That pointer is the start of this arena: an int64 header
followed by float64 and float32 regions whose offsets the header records. The
offline renderer and :class:`aether_rt.dsp.bank.BiquadBank` use the very same arena
and kernels, so a render is what the live engine would play.

Header slots are module constants (Numba freezes them as compile-time values). Offsets
are in 8-byte words from the start of the buffer; float32 regions start on a word
boundary, so their float32 index is twice the word offset.

Who writes what (single writer per slot, so no locks):

* builder (here, before any stream opens): geometry and offsets;
* control thread: the coefficient ring and ``PUBLISHED`` (release store);
* audio thread: ``CONSUMED``, the filter state, the ramp, the counters, the tap;
* anyone: reads of counters for meters and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aether_rt.dsp.biquad import N_COEFFS, identity_coeffs
from aether_rt.dsp.svf import N_SVF, svf_table

MAGIC = 0x41455448_45520008  # "AETHER" + layout version 8

# --- header slots (int64 indices) -------------------------------------------------
H_MAGIC = 0
H_TOTAL_WORDS = 1
H_N_SECTIONS = 2
H_N_CHANNELS = 3
H_RING_SIZE = 4
H_MAX_FRAMES = 5
H_SMOOTH_FRAMES = 6  # default ramp length for new tables; 0 = across the block
H_IN_CHANNELS = 7  # device/source channels the callback reads
H_OUT_CHANNELS = 8  # device channels the callback writes
# region offsets, in 8-byte words
H_OFF_RING = 10  # f64 [ring, sections, 5]   tables written by the control thread
H_OFF_RING_RAMP = 11  # i64 [ring]            ramp frames requested per table (-1: default)
H_OFF_STAGE = 12  # f64 [sections, 5]         a table being copied out of the ring
# The running tables are in the bank's state-space SVF form (aether_rt.dsp.svf, 9 wide).
H_OFF_CUR = 13  # f64 [sections, 9]           coefficients at the last processed frame
H_OFF_STEP = 14  # f64 [sections, 9]          per-frame increment while ramping
H_OFF_TARGET = 15  # f64 [sections, 9]        the table being ramped towards
H_OFF_STATE = 17  # f64 [channels, sections, 2]  the two integrator states of each section
H_OFF_WORK = 18  # f64 [max_frames, channels] the block in flight
H_OFF_FLAGS = 19  # i64 [channels]             per-block channel flags
H_OFF_TAP = 20  # f32 [tap_frames, in + out]   recording tap
# hand-off and ramp
H_PUBLISHED = 24  # tables published so far (control thread, release)
H_CONSUMED = 25  # sequence number of the table in use (audio thread)
H_RAMP_LEFT = 26  # frames left in the current ramp
H_RESET_REQUESTED = 27  # resets asked for (any thread, release); the audio thread obeys
H_RESET_DONE = 28  # resets carried out (audio thread)
# bank counters (audio thread)
H_BLOCKS = 30
H_FRAMES = 31
H_TABLES_APPLIED = 32
H_NAN_EVENTS = 33  # channel-blocks whose input held NaN/Inf
H_BLOWUPS = 34  # channel-blocks whose state exceeded STATE_LIMIT or went non-finite
H_BAD_TABLES = 35  # published tables rejected as non-finite or unstable
H_TORN_READS = 36  # tables overwritten while being copied (producer lapped the ring)
# callback counters (audio thread)
H_CALLBACKS = 40
H_STATUS_INPUT_UNDERFLOW = 41
H_STATUS_INPUT_OVERFLOW = 42
H_STATUS_OUTPUT_UNDERFLOW = 43
H_STATUS_OUTPUT_OVERFLOW = 44
H_STATUS_PRIMING = 45
H_TAP_FRAMES = 46  # tap capacity in frames (0: no tap)
H_TAP_WRITTEN = 47  # frames written to the tap so far (monotonic)
# the engine's stages (aether_rt/dsp/_stages.py) and hand-off bookkeeping
H_OFF_RING_TAG = 48  # i64 [ring]          sample-clock tag of each table (control tick)
H_LAST_TAG = 49  # tag of the table in use (audio)
H_ADOPT_CAPACITY = 50  # entries in the adoption log
H_ADOPT_WRITTEN = 51  # adoptions logged so far (monotonic)
H_OFF_ADOPT = 52  # i64 [capacity, 3]          (sequence, tag, frame at which it was adopted)
ADOPT_FIELDS = 3
H_OFF_RAW = 53  # f32 [max_frames, in]          the block's input (device or source)
H_OFF_GAINED = 54  # f32 [max_frames, in]       the input after the input gain
H_OFF_PARAMS = 55  # f64 [N_PARAMS]            parameter targets (control thread)
H_OFF_POST = 56  # f64 [post size]              smoothed parameters, DC and limiter state, meters (audio)
H_OFF_HIST = 57  # i64 [HIST_BINS]              callback durations, log2 ns, 8 bins per octave
H_CALLBACK_NS_MAX = 58  # longest callback, ns
H_LIMITED_SAMPLES = 59  # output samples the ceiling limiter had to turn down
H_NONFINITE_OUT = 60  # output samples that were not finite (replaced by silence)
H_SRC_FRAMES = 61  # frames in the source buffer (0: play the device input)
H_SRC_POS = 62  # next source frame to play (audio)
H_SRC_LOOP = 63  # 1: loop the source
H_OFF_SRC = 64  # f32 [source frames, in]      a file or the demo phrase, played live
# the input's envelope follower (aether_rt/dsp/_stages.py follow_envelope)
H_ENV_FRAMES = 65  # frames between two envelope snapshots (the control tick; 0: no follower)
H_ENV_WRITTEN = 66  # snapshots written so far (audio, release): snapshot k is at frame k * H_ENV_FRAMES
H_OFF_ENV = 67  # f64 [ENV_CAPACITY]           the follower's value at each snapshot, a ring
ENV_CAPACITY = 4096  # snapshots kept (8 s at 500 Hz)
# The audio clock against the wall clock (audio, a sequence lock; ``_kernels.read_stamp``):
# MIDI time stamps are wall-clock times, the motion runs on frames, and the two drift apart
# (a virtual device's clock stalls; a sound card's crystal is not the system's).
H_STAMP_SEQ = 68  # odd while the two below are being written
H_STAMP_NS = 69  # monotonic ns at the start of the last device period's first callback (0: none yet)
H_STAMP_FRAME = 70  # H_FRAMES at that moment: the block's first frame
# A callback that starts sooner after the one before than half that one's audio lasts is
# the same device period's (PortAudio runs blocks shorter than the period back to back at
# its start): it keeps the period's stamp, so a moment maps onto the period's first frame.
H_FRAME_PS = 71  # picoseconds per frame (the engine sets it; 0: every callback stamps)
H_PREV_START_NS = 72  # audio only: the previous callback's start, monotonic ns
H_PREV_START_FRAME = 73  # audio only: H_FRAMES at that moment
HEADER_WORDS = 128

# Parameter slots (f64, written by the control thread, read by the audio stages).
P_IN_GAIN = 0  # linear
P_OUT_GAIN = 1  # linear
P_MIX = 2  # 0 dry .. 1 wet
P_BYPASS = 3  # 0 or 1 (crossfaded)
P_SMOOTH = 4  # one-pole coefficient per frame for the above
P_CEILING = 5  # output ceiling, linear
P_DC_POLE = 6  # DC blocker pole
P_LIMIT_RELEASE = 7  # limiter gain recovery per frame
P_METER_DECAY = 8  # peak-meter decay per frame
P_ENV_ATTACK = 9  # envelope follower: one-pole coefficient per frame while the level rises
P_ENV_RELEASE = 10  # ... and while it falls
N_PARAMS = 16
# Post-stage state slots (f64, audio): the smoothed parameters, then per output
# channel (DC x1, DC y1, limiter gain, output peak) and per input channel (input peak).
S_IN_GAIN, S_OUT_GAIN, S_MIX = 0, 1, 2
S_ENV = 3  # the envelope follower's value (linear peak level of the input)
POST_FIXED = 4
POST_PER_OUT = 4
HIST_BINS = 256

#: A section state beyond this magnitude (+120 dB over full scale) counts as blown up.
STATE_LIMIT = 1e6
#: State values below this magnitude are flushed to zero at each block end, so that
#: decaying silence never reaches subnormal numbers (which cost ~100x per operation).
DENORMAL_FLOOR = 1e-30
#: A glide (gain, mix) this close to its target lands on it (-240 dB: inaudible).
GLIDE_SNAP = 1e-12
#: Channel flags (``H_OFF_FLAGS``).
FLAG_BAD_INPUT = 1
FLAG_BLOWN = 2


@dataclass(frozen=True)
class ArenaLayout:
    """Geometry of an arena.

    Attributes:
        n_sections: biquad sections in cascade.
        n_channels: channels the bank filters (device inputs map onto them modulo).
        max_frames: frames processed per inner chunk; longer blocks are chunked.
        ring_size: slots in the coefficient ring (>= 2).
        smoothing_frames: default ramp length of a new table; 0 ramps across the
            block in which it arrives.
        in_channels: channels read per frame from the input (device or array).
        out_channels: channels written per frame to the output.
        tap_frames: capacity of the recording tap in frames (0: none).
        source_frames: frames of a source played instead of the device input (0: none).
        adopt_capacity: entries of the adoption log ring: (sequence, tag, frame) per adopted table.
        envelope_frames: frames between two snapshots of the input's envelope follower
            (the control tick; 0: no follower).

    """

    n_sections: int = 32
    n_channels: int = 2
    max_frames: int = 4096
    ring_size: int = 8
    smoothing_frames: int = 0
    in_channels: int = 0
    out_channels: int = 0
    tap_frames: int = 0
    source_frames: int = 0
    adopt_capacity: int = 1024
    envelope_frames: int = 0

    def __post_init__(self) -> None:
        _check_int("n_sections", self.n_sections, 1, 4096)
        _check_int("n_channels", self.n_channels, 1, 256)
        _check_int("max_frames", self.max_frames, 1, 1 << 20)
        _check_int("ring_size", self.ring_size, 2, 1024)
        _check_int("smoothing_frames", self.smoothing_frames, 0, 1 << 30)
        _check_int("in_channels", self.in_channels, 0, 256)
        _check_int("out_channels", self.out_channels, 0, 256)
        _check_int("tap_frames", self.tap_frames, 0, 1 << 31)
        _check_int("source_frames", self.source_frames, 0, 1 << 32)
        _check_int("adopt_capacity", self.adopt_capacity, 1, 1 << 24)
        _check_int("envelope_frames", self.envelope_frames, 0, 1 << 20)

    @property
    def ins(self) -> int:
        """Input channels (defaults to the bank's channel count)."""
        return self.in_channels or self.n_channels

    @property
    def outs(self) -> int:
        """Output channels (defaults to the bank's channel count)."""
        return self.out_channels or self.n_channels

    def offsets(self) -> dict[int, int]:
        """Map each region's header slot to its word offset; also the total size."""
        n, c = self.n_sections, self.n_channels
        table = n * N_COEFFS
        sizes = [
            (H_OFF_RING, self.ring_size * table),
            (H_OFF_RING_RAMP, self.ring_size),
            (H_OFF_STAGE, table),
            (H_OFF_CUR, n * N_SVF),
            (H_OFF_STEP, n * N_SVF),
            (H_OFF_TARGET, n * N_SVF),
            (H_OFF_STATE, c * n * 2),
            (H_OFF_WORK, self.max_frames * c),
            (H_OFF_FLAGS, c),
            (H_OFF_TAP, (self.tap_frames * (self.ins + self.outs) + 1) // 2),
            (H_OFF_RING_TAG, self.ring_size),
            (H_OFF_ADOPT, ADOPT_FIELDS * self.adopt_capacity),
            (H_OFF_RAW, (self.max_frames * self.ins + 1) // 2),
            (H_OFF_GAINED, (self.max_frames * self.ins + 1) // 2),
            (H_OFF_PARAMS, N_PARAMS),
            (H_OFF_POST, POST_FIXED + POST_PER_OUT * self.outs + self.ins),
            (H_OFF_HIST, HIST_BINS),
            (H_OFF_SRC, (self.source_frames * self.ins + 1) // 2),
            (H_OFF_ENV, ENV_CAPACITY),
        ]
        offsets, word = {}, HEADER_WORDS
        for slot, size in sizes:
            word = (word + 7) // 8 * 8  # 64-byte alignment for every region
            offsets[slot] = word
            word += size
        offsets[H_TOTAL_WORDS] = word
        return offsets


class Arena:
    """A zeroed, 64-byte aligned arena for a layout, with NumPy views of its regions.

    The views (``ring``, ``cur``, ``state``, ...) alias the buffer, so writing them is
    writing what the audio thread reads. Only the builder and the documented single
    writer of each region may write.
    """

    def __init__(self, layout: ArenaLayout) -> None:
        self.layout = layout
        offsets = layout.offsets()
        total = offsets[H_TOTAL_WORDS]
        raw = np.zeros(total + 8, dtype=np.int64)
        start = (-raw.ctypes.data % 64) // 8
        self.words: np.ndarray = raw[start : start + total]  # int64 view of everything
        self.f64: np.ndarray = self.words.view(np.float64)
        self.f32: np.ndarray = self.words.view(np.float32)
        h = self.words
        h[H_MAGIC] = MAGIC
        for slot, value in offsets.items():
            h[slot] = value
        h[H_N_SECTIONS] = layout.n_sections
        h[H_N_CHANNELS] = layout.n_channels
        h[H_RING_SIZE] = layout.ring_size
        h[H_MAX_FRAMES] = layout.max_frames
        h[H_SMOOTH_FRAMES] = layout.smoothing_frames
        h[H_IN_CHANNELS] = layout.ins
        h[H_OUT_CHANNELS] = layout.outs
        h[H_TAP_FRAMES] = layout.tap_frames
        h[H_SRC_FRAMES] = layout.source_frames
        h[H_ADOPT_CAPACITY] = layout.adopt_capacity
        h[H_ENV_FRAMES] = layout.envelope_frames
        h[H_LAST_TAG] = -1
        n, c = layout.n_sections, layout.n_channels
        self.ring = self._f64(H_OFF_RING, (layout.ring_size, n, N_COEFFS))
        self.ring_ramp = self.words[h[H_OFF_RING_RAMP] : h[H_OFF_RING_RAMP] + layout.ring_size]
        self.cur = self._f64(H_OFF_CUR, (n, N_SVF))
        self.step = self._f64(H_OFF_STEP, (n, N_SVF))
        self.target = self._f64(H_OFF_TARGET, (n, N_SVF))
        self.state = self._f64(H_OFF_STATE, (c, n, 2))
        width = layout.ins + layout.outs
        tap = 2 * int(h[H_OFF_TAP])
        self.tap = self.f32[tap : tap + layout.tap_frames * width].reshape(-1, width)
        self.cur[:] = svf_table(identity_coeffs(n))
        self.target[:] = self.cur
        self.ring_tag = self.words[h[H_OFF_RING_TAG] : h[H_OFF_RING_TAG] + layout.ring_size]
        adopt = slice(h[H_OFF_ADOPT], h[H_OFF_ADOPT] + ADOPT_FIELDS * layout.adopt_capacity)
        self.adopt_log = self.words[adopt].reshape(-1, ADOPT_FIELDS)
        self.params = self.f64[h[H_OFF_PARAMS] : h[H_OFF_PARAMS] + N_PARAMS]
        post = int(h[H_OFF_POST])
        self.post = self.f64[post : post + POST_FIXED + POST_PER_OUT * layout.outs + layout.ins]
        self.hist = self.words[h[H_OFF_HIST] : h[H_OFF_HIST] + HIST_BINS]
        self.envelope = self.f64[h[H_OFF_ENV] : h[H_OFF_ENV] + ENV_CAPACITY]
        src = 2 * int(h[H_OFF_SRC])
        self.source = self.f32[src : src + layout.source_frames * layout.ins].reshape(-1, layout.ins)
        # Neutral stage settings until an engine sets its own: unity gains, fully wet, a
        # ceiling at 0 dBFS that never needs to limit, no DC blocking, immediate changes.
        for slot, value in (
            (P_IN_GAIN, 1.0),
            (P_OUT_GAIN, 1.0),
            (P_MIX, 1.0),
            (P_SMOOTH, 1.0),
            (P_CEILING, 1e30),
            (P_DC_POLE, 1.0),
            (P_LIMIT_RELEASE, 1.0),
            (P_METER_DECAY, 1.0),
            (P_ENV_ATTACK, 1.0),
            (P_ENV_RELEASE, 1.0),
        ):
            self.params[slot] = value  # fmt: skip
        self.post[[S_IN_GAIN, S_OUT_GAIN, S_MIX]] = 1.0
        self.post[POST_FIXED + 2 : POST_FIXED + POST_PER_OUT * layout.outs : POST_PER_OUT] = 1.0  # limiter gains

    def settle_params(self) -> None:
        """Jump the audio side's smoothed gains and mix to their targets.

        For the start only (before any audio): the first state is applied at once
        instead of gliding from unity. Never while a stream runs (these slots are the
        audio thread's).
        """
        p = self.params
        self.post[S_IN_GAIN] = p[P_IN_GAIN]
        self.post[S_OUT_GAIN] = p[P_OUT_GAIN]
        self.post[S_MIX] = p[P_MIX] * (1.0 - p[P_BYPASS])

    @property
    def address(self) -> int:
        """Address of the arena's first byte (the callback's ``userdata``)."""
        return int(self.words.ctypes.data)

    def counter(self, slot: int) -> int:
        """Read one header counter."""
        return int(self.words[slot])

    def _f64(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        start = int(self.words[slot])
        return self.f64[start : start + int(np.prod(shape))].reshape(shape)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def tap_frames(arena: Arena) -> np.ndarray:
    """The tap's frames in recording order, ``[frames, in + out]`` float32 (a copy).

    Holds the last ``min(written, capacity)`` frames; columns are the input channels
    followed by the output channels. Read it while the writer is stopped, or accept
    that the oldest rows may be overwritten while copying.
    """
    capacity = arena.layout.tap_frames
    written = int(arena.words[H_TAP_WRITTEN])
    if capacity == 0 or written == 0:
        return np.zeros((0, arena.layout.ins + arena.layout.outs), np.float32)
    if written <= capacity:
        return arena.tap[:written].copy()
    start = written % capacity
    return np.concatenate([arena.tap[start:], arena.tap[:start]])
