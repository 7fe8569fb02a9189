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


def write_audio(path: Path, audio: np.ndarray, sample_rate_hz: float) -> None:
    """Write ``[frames]`` or ``[frames, channels]`` float audio to ``path``.

    The container follows the file extension (.wav, .flac, .aiff, .ogg); WAV, FLAC
    and AIFF are written as 24-bit PCM, OGG as Vorbis.

    Raises:
        UserError: an unknown extension or a path that cannot be written.

    """
    import soundfile as sf

    container = check_output_path(path)
    try:
        sf.write(str(path), audio, int(round(sample_rate_hz)), subtype=_SUBTYPES[container], format=container)
    except (sf.LibsndfileError, OSError, RuntimeError) as exc:
        raise UserError(f"could not write {str(path)!r}: {exc}", "check the folder exists and is writable") from None
