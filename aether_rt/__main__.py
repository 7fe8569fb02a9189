"""``python -m aether_rt``: the same command line as ``aether-rt``."""

from aether_rt.cli import entry

entry()
