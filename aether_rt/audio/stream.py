"""A duplex PortAudio stream that runs a :class:`~aether_rt.dsp.bank.BiquadBank` live.

Two callback modes share one block function (:func:`aether_rt.audio.callback.callback_body`):

* ``"cfunc"`` (default): PortAudio calls the Numba ``@cfunc`` directly, with the
  bank's arena as ``userdata`` (sounddevice's ``_StreamBase`` accepts a C function
  pointer, the route python-rtmixer takes). No Python runs on the audio thread, so a
  busy interpreter cannot make it miss a deadline.
* ``"python"``: an ordinary sounddevice callback that takes the GIL every block; a
  fallback for debugging and the baseline for benchmarks.

Everything is compiled before the stream opens (:func:`aether_rt.dsp.bank.warmup`).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np

from aether_rt.audio import devices
from aether_rt.dsp import arena as ar
from aether_rt.dsp.bank import BiquadBank, warmup
from aether_rt.errors import UserError

CallbackMode = Literal["cfunc", "python"]
CALLBACK_MODES: tuple[CallbackMode, ...] = ("cfunc", "python")
SAMPLERATE_RANGE_HZ = (32_000, 192_000)


class StreamStats(NamedTuple):
    """Counters of the stream's callback (monotonic since the bank was created).

    Attributes:
        callbacks: callbacks run.
        frames: frames filtered.
        input_underflows, input_overflows, output_underflows, output_overflows,
        priming: PortAudio status flags seen, by kind.

    """

    callbacks: int
    frames: int
    input_underflows: int
    input_overflows: int
    output_underflows: int
    output_overflows: int
    priming: int

    @property
    def status_flags(self) -> int:
        """All under- and overflow flags (xruns) together."""
        return self.input_underflows + self.input_overflows + self.output_underflows + self.output_overflows


_ABANDONED = False


def abandoned() -> bool:
    """Whether a stream could not be closed (its device died).

    PortAudio's exit handler would then hang too: the process should leave with
    ``os._exit`` after reporting.
    """
    return _ABANDONED


class BankStream:
    """A duplex stream filtering the input device into the output device through a bank.

    The bank's layout fixes the stream's channels: ``in_channels`` are read from the
    input device, ``out_channels`` written to the output device.

    Args:
        bank: the bank to run; its arena becomes the callback's state.
        sample_rate_hz: sample rate in Hz (32 000 to 192 000).
        blocksize: frames per callback (0 lets the host choose).
        input_device: input device index or name (None: default).
        output_device: output device index or name (None: default).
        callback: ``"cfunc"`` (GIL-free) or ``"python"``.
        latency: PortAudio latency hint, ``"low"``, ``"high"`` or seconds.
        output_only: open an output stream (the bank plays its source buffer).

    Raises:
        UserError: a bad device, channel count, sample rate or block size, or a
            PortAudio failure to open the stream.

    """

    def __init__(
        self,
        bank: BiquadBank,
        *,
        sample_rate_hz: float = 48_000,
        blocksize: int = 64,
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        callback: CallbackMode = "cfunc",
        latency: str | float = "low",
        output_only: bool = False,
    ) -> None:
        sd = devices.portaudio()
        if callback not in CALLBACK_MODES:
            raise UserError(f"callback must be one of {', '.join(CALLBACK_MODES)}, got {callback!r}")
        lo, hi = SAMPLERATE_RANGE_HZ
        if not lo <= sample_rate_hz <= hi:
            raise UserError(f"sample rate {sample_rate_hz} Hz is outside the supported {lo}..{hi} Hz")
        if not isinstance(blocksize, int) or not 0 <= blocksize <= 8192:
            raise UserError(f"block size must be an integer from 0 to 8192 frames, got {blocksize!r}")
        layout = bank.arena.layout
        if output_only:
            device: Any = devices.resolve(output_device, "output", layout.outs)
            channels: Any = layout.outs
        else:
            channels = (layout.ins, layout.outs)
            device = (
                devices.resolve(input_device, "input", channels[0]),
                devices.resolve(output_device, "output", channels[1]),
            )
        warmup()  # compile-ahead: nothing may compile once audio runs
        self.bank = bank
        self.callback_mode = callback
        common = {
            "samplerate": sample_rate_hz,
            "blocksize": blocksize,
            "device": device,
            "channels": channels,
            "dtype": "float32",
            "latency": latency,
        }
        try:
            if callback == "cfunc":
                from aether_rt.audio.callback import pa_callback

                # The stream keeps `bank` (and so the arena) alive through self.bank.
                self._stream = sd._StreamBase(
                    kind="output" if output_only else "duplex",
                    callback=pa_callback.address,
                    userdata=sd._ffi.cast("void *", bank.arena.address),
                    **common,
                )
            else:
                from aether_rt.audio.callback import make_python_callback

                stream_class = sd.OutputStream if output_only else sd.Stream
                self._stream = stream_class(callback=make_python_callback(bank.arena, output_only), **common)
        except sd.PortAudioError as exc:
            raise UserError(
                f"could not open a {sample_rate_hz:g} Hz duplex stream on devices {device}: {exc}",
                "check the device supports this sample rate and channel count (`aether-rt devices`)",
            ) from None

    @property
    def sample_rate_hz(self) -> float:
        """The sample rate PortAudio reports for the open stream, in Hz."""
        return float(self._stream.samplerate)

    @property
    def latency_s(self) -> tuple[float, float]:
        """Input and output latency PortAudio reports, in seconds (input 0 when output-only)."""
        latency = self._stream.latency
        return (0.0, float(latency)) if np.isscalar(latency) else (float(latency[0]), float(latency[1]))

    @property
    def active(self) -> bool:
        """Whether the stream is running."""
        return bool(self._stream.active)

    def start(self) -> None:
        """Start audio."""
        self._stream.start()

    def stop(self) -> None:
        """Stop audio (waits for the last callback to return)."""
        self._stream.stop()

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop and release the stream; returns False if it had to be abandoned.

        A server that died under the stream (JACK killed, a USB card unplugged) can make
        PortAudio's close wait forever for a callback that never comes; after
        ``timeout_s`` the stream is abandoned (see :func:`abandoned`) instead.
        """
        closer = threading.Thread(target=self._stream.close, name="aether-close", daemon=True)
        closer.start()
        closer.join(timeout_s)
        if closer.is_alive():
            global _ABANDONED
            _ABANDONED = True
            return False
        return True

    def stats(self) -> StreamStats:
        """Read the callback's counters."""
        w = self.bank.arena.words
        return StreamStats(
            callbacks=int(w[ar.H_CALLBACKS]),
            frames=int(w[ar.H_FRAMES]),
            input_underflows=int(w[ar.H_STATUS_INPUT_UNDERFLOW]),
            input_overflows=int(w[ar.H_STATUS_INPUT_OVERFLOW]),
            output_underflows=int(w[ar.H_STATUS_OUTPUT_UNDERFLOW]),
            output_overflows=int(w[ar.H_STATUS_OUTPUT_OVERFLOW]),
            priming=int(w[ar.H_STATUS_PRIMING]),
        )

    def __enter__(self) -> BankStream:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
