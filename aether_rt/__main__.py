"""``python -m aether_rt``: the same command line as ``aether-rt``."""

import sys

from aether_rt.cli import main

sys.exit(main())
