"""Child processes that a test stops with Ctrl-C (SIGINT)."""

from __future__ import annotations

import signal


def let_children_hear_ctrl_c() -> None:
    """Make SIGINT reach the runs a test starts, even when the suite itself ignores it.

    A shell starts background jobs with SIGINT ignored (POSIX, without job control), and
    Python then leaves it ignored; a child inherits an ignored signal across exec, so a
    suite launched as `... &` would send its runs a Ctrl-C they never see. A *handled*
    signal is reset to its default by exec: handling it here (as Python does when it
    starts normally) is enough, without a ``preexec_fn`` (which forks a multithreaded
    process, and JAX warns about that).
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
