"""The one exception type for mistakes a user can fix.

A :class:`UserError` names what was wrong and how to fix it. The CLI prints it as
``aether-rt: error: ...`` and exits with status 2, without a traceback; library
callers can catch it like any exception.
"""

from __future__ import annotations


class UserError(Exception):
    """A user's mistake (bad file, device, preset, argument): message plus a way out.

    Args:
        message: what was wrong, naming the offending input.
        hint: what to do about it (optional).

    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
