"""Reading and writing audio files (soundfile), with errors a user can act on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aether_rt.errors import UserError

#: Output subtype per container: 24-bit where the format has it, Vorbis for OGG.
_SUBTYPES = {"WAV": "PCM_24", "FLAC": "PCM_24", "AIFF": "PCM_24", "OGG": "VORBIS"}


def check_output_path(path: Path) -> str:
    """Check, before any work, that ``path`` names a writable audio file; return its format.

    Raises:
        UserError: an unknown extension, a missing folder, or a folder not writable.

    """
    container = {"aif": "AIFF", "aiff": "AIFF"}.get(path.suffix.lstrip(".").lower(), path.suffix.lstrip(".").upper())
    if container not in _SUBTYPES:
        raise UserError(
            f"cannot tell the audio format of {str(path)!r} from its extension",
            f"use one of: {', '.join('.' + c.lower() for c in _SUBTYPES)}",
        )
    check_output_folder(path)
    return container


def check_output_folder(path: Path) -> None:
    """Check that ``path`` can be created: its folder exists and is writable, it is no folder.

    Raises:
        UserError: naming the path and the problem.

    """
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise UserError(f"cannot write {str(path)!r}: it is a folder", "give a file name")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {str(path)!r}: the folder is not writable")


def audio_rate(path: Path) -> int:
    """An audio file's sample rate in Hz, from its header (cheap: no samples are read).

    Raises:
        UserError: missing or unreadable file (as :func:`read_audio` says it).

    """
    import soundfile as sf

    if not path.is_file():
        raise UserError(f"input file {str(path)!r} does not exist", "give a WAV/FLAC/AIFF/OGG file, or demo")
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc}", "give a WAV, FLAC, AIFF or OGG file") from None


def read_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """Read an audio file as ``([frames, channels] float32, rate, subtype)``.

    Raises:
        UserError: missing, unreadable or empty file.

    """
    import soundfile as sf

    if not path.is_file():
        raise UserError(f"input file {str(path)!r} does not exist", "give a WAV/FLAC/AIFF/OGG file, or demo")
    try:
        info = sf.info(str(path))
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc}", "give a WAV, FLAC, AIFF or OGG file") from None
    if audio.shape[0] == 0:
        raise UserError(f"{str(path)!r} holds no audio")
    return audio, int(rate), str(info.subtype)


#: Subtypes kept as they are; anything coarser (8/16-bit) is written as 24-bit PCM, so
#: that the effect's gain changes are not re-quantised to the input's resolution.
_KEEP_SUBTYPES = {"PCM_24", "PCM_32", "FLOAT", "DOUBLE"}


def write_audio(path: Path, audio: np.ndarray, sample_rate_hz: float, subtype: str | None = None) -> None:
    """Write ``[frames]`` or ``[frames, channels]`` float audio to ``path``.

    The container follows the file extension (.wav, .flac, .aiff, .ogg); WAV, FLAC
    and AIFF keep a 24/32-bit or float ``subtype`` and are otherwise written as 24-bit
    PCM, OGG as Vorbis. WAV and AIFF files are byte-for-byte reproducible: the time
    stamp libsndfile puts in a float file's PEAK chunk is zeroed. (OGG is not: its
    stream serial number is random; the decoded audio is reproducible.)

    Raises:
        UserError: an unknown extension or a path that cannot be written.

    """
    import soundfile as sf

    container = check_output_path(path)
    chosen = _SUBTYPES[container]
    if subtype in _KEEP_SUBTYPES and container != "OGG" and sf.check_format(container, subtype):
        chosen = subtype
    try:
        sf.write(str(path), audio, int(round(sample_rate_hz)), subtype=chosen, format=container)
        if container in ("WAV", "AIFF"):
            _zero_peak_timestamp(path)
    except (sf.LibsndfileError, OSError, RuntimeError) as exc:
        raise UserError(f"could not write {str(path)!r}: {exc}", "check the folder exists and is writable") from None


def _zero_peak_timestamp(path: Path) -> None:
    """Zero the wall-clock time stamp in a RIFF/AIFF ``PEAK`` chunk, if there is one.

    The chunk is ``PEAK``, size, then version (4 bytes) and time stamp (4 bytes); chunks
    are little-endian in RIFF, big-endian in AIFF, and padded to even sizes.
    """
    with open(path, "r+b") as f:
        head = f.read(12)
        order = "little" if head[:4] == b"RIFF" else "big"
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            size = int.from_bytes(chunk[4:], order)
            if chunk[:4] == b"PEAK" and size >= 8:
                f.seek(pos + 12)
                f.write(b"\0\0\0\0")
                return
            pos += 8 + size + (size & 1)
