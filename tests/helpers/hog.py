"""A CPU hog: a Python thread that keeps the GIL as much as Python code can.

It alternates a bytecode loop (which CPython makes yield the GIL at every switch
interval) with one long builtin call (``sum`` over a ``range``: ~3 ms in C without a
chance to yield), like a busy host application. The GIL-free callback must not notice
it; the Python callback does.
"""

from __future__ import annotations

import threading


def hog(stop: threading.Event) -> None:
    """Spin until ``stop`` is set."""
    while not stop.is_set():
        sum(i * i for i in range(2000))
        sum(range(300_000))
