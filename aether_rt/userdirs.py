"""Where a user's own files live: the XDG base directory for configuration.

Presets saved with ``presets --save`` and MIDI maps learned with ``run --midi`` go under
``$XDG_CONFIG_HOME/aether-rt`` (``~/.config/aether-rt`` when it is unset or empty, as the
XDG spec says). Read at each call, so a changed environment is followed.
"""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The user config folder: ``$XDG_CONFIG_HOME/aether-rt``, else ``~/.config/aether-rt``."""
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "aether-rt"


def user_presets_dir() -> Path:
    """The user's own presets: ``config_dir() / "presets"``."""
    return config_dir() / "presets"
