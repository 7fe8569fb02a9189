"""The web page's IR library (``run --web --ir-library FOLDER``): encoded beside the running effect.

The folder is read before the audio starts (a folder with no usable IR is an error
then, exit status 2, not a surprise mid-set). Encoding and refining the IRs into the
learned region (:mod:`aether_rt.models.fit`) takes seconds of JAX work, so it runs on a
thread of its own while the page is already up: the page shows "encoding" until the
points arrive. Nothing here touches the audio side, and the control thread never waits
on it (JAX releases the GIL while it computes; the work goes in chunks of
:data:`~aether_rt.models.fit.CHUNK_IRS` IRs).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from aether_rt.models.fit import DEFAULT_REFINE_STEPS, Library, encode_features
from aether_rt.web import protocol

log = logging.getLogger("aether_rt.web")


class _StoppedError(Exception):
    """The run ended before the library was encoded."""


def start_library(
    server: Any,
    model: Any,
    library: Library,
    *,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """Encode ``library`` on a thread (``aether-library``), then show it on ``server``'s pages.

    Args:
        server: the :class:`~aether_rt.web.server.WebServer` (its :meth:`set_library`).
        model: the running model.
        library: the folder, read (:func:`~aether_rt.models.fit.read_library`).
        refine_steps: Adam steps of the refinement into the learned region.
        stop: when set, the thread gives up after the chunk of IRs it is encoding.

    Returns:
        The thread. A run joins it (after setting ``stop``) before it returns: the
        interpreter must not shut down under XLA code still running on it.

    """
    folder = library.folder.name or str(library.folder)
    server.set_library(protocol.library("encoding", folder, [], library.skipped))

    def run() -> None:
        def check(done: int, total: int) -> None:
            if stop is not None and stop.is_set():
                raise _StoppedError

        try:
            encodings = encode_features(model, library.features, library.names, refine_steps=refine_steps,
                                        progress=check)  # fmt: skip
        except _StoppedError:
            return
        except Exception as exc:  # the run goes on without its library; say why, once
            log.exception("web: could not encode the IR library %s", library.folder)
            server.set_library(protocol.library("failed", folder, [], library.skipped, str(exc)))
            return
        server.set_library(protocol.library("ready", folder, encodings, library.skipped))
        outside = sum(not e.encoder_in_region for e in encodings)
        log.info("web: IR library %s: %d IRs on the page (%d refined from outside the learned region), %d skipped",
                 library.folder, len(encodings), outside, len(library.skipped))  # fmt: skip

    thread = threading.Thread(target=run, name="aether-library")
    thread.start()
    return thread
