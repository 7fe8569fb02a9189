"""The biquad bank: a checked public wrapper over the private Numba kernels.

:class:`BiquadBank` runs N biquad sections in cascade over C channels of float32
audio, with float64 state and coefficients, smoothing every coefficient per frame
from the table in use to a newly published one. It owns an :class:`~aether_rt.dsp.arena.Arena`;
the live stream hands the same arena to the GIL-free callback, and the offline
renderer calls :meth:`BiquadBank.process`, so both run the same kernel on the same state.

Example::

    bank = BiquadBank(n_sections=32, n_channels=2, smoothing_frames=480)
    bank.publish(peaking_coeffs(freq_hz, q, gain_db, 48000.0))
    out = bank.process(block)          # block: float32 [frames, 2]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from aether_rt.dsp import arena as ar
from aether_rt.dsp.biquad import N_COEFFS, is_stable
from aether_rt.dsp.svf import svf_table, svf_to_df


class BankStats(NamedTuple):
    """Counters kept by the audio side of a bank (monotonic since creation).

    Attributes:
        blocks: ``process`` calls (or callbacks) run.
        frames: frames filtered.
        tables_applied: published tables adopted.
        nan_events: channel-blocks whose input held NaN or Inf (silenced, state reset).
        blowup_resets: channel-blocks whose state blew up (silenced, state reset).
        bad_tables: published tables rejected by the audio side as unstable.
        torn_reads: table copies abandoned because the producer lapped the ring.

    """

    blocks: int
    frames: int
    tables_applied: int
    nan_events: int
    blowup_resets: int
    bad_tables: int
    torn_reads: int


class BiquadBank:
    """N biquad sections in cascade over C channels, with per-frame coefficient smoothing.

    Args:
        n_sections: sections in the cascade.
        n_channels: channels filtered. Input channel ``c % in`` feeds bank channel c,
            and output channel o plays bank channel ``o % n_channels``: mono in, stereo
            out needs only ``n_channels=1``.
        max_frames: frames per inner chunk (longer blocks are chunked, not refused).
        smoothing_frames: ramp length of a newly published table; 0 ramps across
            the block in which it arrives.
        ring_size: slots in the lock-free table ring.
        out_channels: channels :meth:`process` writes by default (default
            ``n_channels``).
        in_channels: channels the live callback reads from the device (default
            ``n_channels``).
        tap_frames: capacity of the live recording tap, in frames (0: none).
        source_frames: room for a source the live callback plays instead of the
            device input (0: none).
        envelope_frames: frames between two snapshots of the input's envelope follower
            (the control tick), which the control thread reads (0: no follower).
        coeffs: initial table ``[n_sections, 5]`` (default: pass-through).

    Threading: one thread may :meth:`publish` (the control thread) while another
    runs :meth:`process` or the audio callback; :meth:`reset` and the read-only
    accessors are safe from any thread.

    """

    def __init__(
        self,
        n_sections: int = 32,
        n_channels: int = 2,
        *,
        max_frames: int = 4096,
        smoothing_frames: int = 0,
        ring_size: int = 8,
        out_channels: int | None = None,
        in_channels: int | None = None,
        tap_frames: int = 0,
        source_frames: int = 0,
        envelope_frames: int = 0,
        coeffs: Any = None,
    ) -> None:
        from aether_rt.dsp import _kernels  # compiles or loads the kernels once

        self._k = _kernels
        layout = ar.ArenaLayout(
            n_sections=n_sections,
            n_channels=n_channels,
            max_frames=max_frames,
            ring_size=ring_size,
            smoothing_frames=smoothing_frames,
            in_channels=in_channels or 0,
            out_channels=out_channels or 0,
            tap_frames=tap_frames,
            source_frames=source_frames,
            envelope_frames=envelope_frames,
        )
        self._arena = ar.Arena(layout)
        self._words, self._f64 = self._arena.words, self._arena.f64
        self._outs = layout.outs
        if coeffs is not None:
            # The starting point is state, not a message: nothing runs yet, write it.
            self._arena.cur[:] = svf_table(self._checked_table(coeffs))
            self._arena.target[:] = self._arena.cur

    @property
    def arena(self) -> ar.Arena:
        """The arena the audio side reads (hand it to the live callback)."""
        return self._arena

    @property
    def n_sections(self) -> int:
        """Sections in the cascade."""
        return self._arena.layout.n_sections

    @property
    def n_channels(self) -> int:
        """Channels filtered."""
        return self._arena.layout.n_channels

    def publish(self, coeffs: Any, *, ramp_frames: int | None = None, tag: int = -1) -> None:
        """Hand a new table to the audio side, lock-free; adopted at its tag's frame (or at once), then ramped.

        Args:
            coeffs: ``[n_sections, 5]`` coefficients (b0, b1, b2, a1, a2), finite and
                stable (poles strictly inside the unit circle).
            ramp_frames: frames to ramp over; ``None`` uses the bank's
                ``smoothing_frames``, 0 jumps at the next block.
            tag: the sample-clock frame the table was computed for (logged with the
                frame the audio side adopts it at; -1 when it does not matter).

        Raises:
            ValueError: wrong shape, non-finite or unstable coefficients, or a bad
                ramp length.

        """
        table = self._checked_table(coeffs)
        if ramp_frames is None:
            ramp = -1
        elif isinstance(ramp_frames, (int, np.integer)) and 0 <= ramp_frames < 1 << 40:
            ramp = int(ramp_frames)
        else:
            raise ValueError(f"ramp_frames must be None or an integer >= 0, got {ramp_frames!r}")
        self._k.publish(self._words, self._f64, table, ramp, int(tag))

    def _checked_table(self, coeffs: Any) -> np.ndarray:
        """Validate a ``[n_sections, 5]`` table (shape, finite, stable) as float64."""
        try:
            table = np.ascontiguousarray(coeffs, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"coeffs must be a numeric [n_sections, 5] array, got {type(coeffs).__name__}") from None
        shape = (self.n_sections, N_COEFFS)
        if table.shape != shape:
            raise ValueError(f"coeffs must have shape {shape}, got {table.shape}")
        if not np.all(np.isfinite(table)):
            raise ValueError("coeffs must be finite; got NaN or Inf")
        unstable = ~is_stable(table)
        if unstable.any():
            k = int(np.argmax(unstable))
            raise ValueError(
                f"coeffs section {k} is unstable: (a1, a2) = ({table[k, 3]!r}, {table[k, 4]!r}) "
                "lies outside |a2| < 1, |a1| < 1 + a2; design sections with peaking_coeffs()"
            )
        return table

    def publish_trusted(self, table: np.ndarray, ramp_frames: int, tag: int) -> None:
        """:meth:`publish` without the Python-side checks, for the control thread's own tables.

        ``table`` must be a C-contiguous float64 ``[n_sections, 5]`` array. The checks it
        skips cost ~9 us per control step; the audio side still refuses a non-finite or
        unstable table (counted in ``bad_tables``).
        """
        self._k.publish(self._words, self._f64, table, ramp_frames, tag)

    def process(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Filter a block, carrying state from the previous call.

        Args:
            x: float32 audio, ``[frames, channels]`` C-contiguous, or ``[frames]`` for
                one channel.
            out: optional float32 destination ``[frames, out_channels]`` (or
                ``[frames]`` when one output channel), C-contiguous.

        Returns:
            ``out`` (allocated if not given), with ``x``'s number of dimensions when
            there is one output channel.

        Raises:
            ValueError: a wrong dtype, shape or memory layout.

        """
        if out is not None:
            # Fast path: the kernel's dispatcher checks dtype, layout and writability
            # itself (a TypeError, never a compile); we check what it cannot.
            try:
                frames, n_in, n_out = x.shape[0], x.shape[1], out.shape[1]
                if frames == out.shape[0] and n_in and n_out and (n_in == n_out or not np.may_share_memory(x, out)):
                    self._k.process(self._words, self._f64, x, out)
                    return out
            except (AttributeError, IndexError, TypeError):
                pass  # not the common case: validate fully below
        x2 = _as_frames(x, "x")
        frames = x2.shape[0]
        if out is None:
            out = np.empty((frames, self._outs) if x.ndim == 2 or self._outs > 1 else frames, np.float32)
        y2 = _as_frames(out, "out")
        if y2.shape[0] != frames:
            raise ValueError(f"out has {y2.shape[0]} frames but x has {frames}; they must match")
        if not y2.flags.writeable:
            raise ValueError("out must be writable")
        if x2.shape[1] != y2.shape[1] and np.may_share_memory(x2, y2):
            raise ValueError("out may alias x only when both have the same channel count")
        if frames:
            self._k.process(self._words, self._f64, x2, y2)
        return out

    def reset(self) -> None:
        """Zero the filter state before the next block (safe while audio runs)."""
        self._k.request_reset(self._words)

    def coeffs_in_use(self) -> np.ndarray:
        """Direct-form equivalent of the sections at the last processed frame, ``[n_sections, 5]``."""
        return svf_to_df(self._arena.cur)

    def svf_in_use(self) -> np.ndarray:
        """A copy of the state-space SVF coefficients at the last processed frame, ``[n_sections, 9]``."""
        return self._arena.cur.copy()

    def stats(self) -> BankStats:
        """Read the audio side's counters."""
        w = self._words
        return BankStats(
            blocks=int(w[ar.H_BLOCKS]),
            frames=int(w[ar.H_FRAMES]),
            tables_applied=int(w[ar.H_TABLES_APPLIED]),
            nan_events=int(w[ar.H_NAN_EVENTS]),
            blowup_resets=int(w[ar.H_BLOWUPS]),
            bad_tables=int(w[ar.H_BAD_TABLES]),
            torn_reads=int(w[ar.H_TORN_READS]),
        )


def warmup() -> None:
    """Compile (or load from Numba's cache) every real-time kernel and the callback.

    Call before opening a stream, so that nothing compiles on the audio path. The
    kernels are compiled for explicit signatures, so a later call with other types is
    a ``TypeError``, never a compile.
    """
    from aether_rt.audio import callback  # noqa: F401  (builds the @cfunc)

    bank = BiquadBank(n_sections=2, n_channels=1, max_frames=8)
    bank.process(np.zeros((4, 1), np.float32))


def _as_frames(a: Any, name: str) -> np.ndarray:
    """Validate a float32 audio array and view it as ``[frames, channels]``."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a NumPy float32 array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {a.dtype} (convert with .astype(np.float32))")
    if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] == 0):
        raise ValueError(f"{name} must be [frames] or [frames, channels], got shape {a.shape}")
    if not a.flags.c_contiguous:  # checked first: reshaping a strided array would copy it
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray({name}))")
    return a.reshape(-1, 1) if a.ndim == 1 else a
