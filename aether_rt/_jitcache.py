"""Keep Numba's on-disk cache honest across modules.

Numba validates a cached function only against its own source file. Our real-time
kernels read constants and call helpers from sibling modules (the arena layout, the
atomics), so an edit there would leave a stale cached kernel with old offsets. Before
any jitted module loads, :func:`check` fingerprints every module whose code ends up
in a kernel and clears the package's in-tree Numba cache when the fingerprint moved.
An installed (non-editable) package is rewritten whole on upgrade, so it only matters
for a source tree, but there it prevents memory-corrupting mismatches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# Every module whose code is compiled into a cached kernel, as paths in the package.
_JITTED_SOURCES = (
    "dsp/arena.py",
    "dsp/biquad.py",
    "dsp/svf.py",
    "dsp/_intrinsics.py",
    "dsp/_kernels.py",
    "dsp/_stages.py",
    "audio/callback.py",
)
_STAMP = _PACKAGE / "__pycache__" / "jit-sources.sha256"
_checked = False


def check() -> None:
    """Clear the in-tree Numba cache if any jitted source changed (once per process)."""
    global _checked
    if _checked:
        return
    _checked = True
    digest = hashlib.sha256()
    for rel in _JITTED_SOURCES:
        path = _PACKAGE / rel
        digest.update(rel.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    fingerprint = digest.hexdigest()
    try:
        if _STAMP.exists() and _STAMP.read_text().strip() == fingerprint:
            return
        for cached in _PACKAGE.rglob("__pycache__/*.nb[ic]"):
            cached.unlink(missing_ok=True)
        _STAMP.parent.mkdir(exist_ok=True)
        _STAMP.write_text(fingerprint + "\n")
    except OSError:
        # A read-only install: Numba caches elsewhere, and the files never change.
        pass
