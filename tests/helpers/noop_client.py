"""A no-op JACK client: the reference for how many status flags the server alone causes.

Runs a pass-through stream (one identity section, the same GIL-free callback) for the
given seconds and prints its figures as JSON. The live tests run it just before the
engine, alone: JACK reports every xrun to every client, so it must not run beside it.

    python -m helpers.noop_client SECONDS BLOCKSIZE
"""

from __future__ import annotations

import json
import sys
import time

from aether_rt.audio.stream import BankStream
from aether_rt.dsp.bank import BiquadBank


def main() -> None:
    seconds, blocksize = float(sys.argv[1]), int(sys.argv[2])
    bank = BiquadBank(1, 2)
    with BankStream(bank, sample_rate_hz=48_000, blocksize=blocksize) as stream:
        time.sleep(seconds)
        stats = stream.stats()
    print(json.dumps({"callbacks": stats.callbacks, "status_flags": stats.status_flags}), flush=True)


if __name__ == "__main__":
    main()
