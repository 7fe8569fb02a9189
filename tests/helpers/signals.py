"""Child processes that a test stops with Ctrl-C (SIGINT)."""

from __future__ import annotations

import signal


def ctrl_c_default() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT: the default disposition.

    A shell starts background jobs with SIGINT ignored (POSIX, without job control), and a
    child inherits that: a test suite launched as `... &` would otherwise send its runs a
    Ctrl-C they never see.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
