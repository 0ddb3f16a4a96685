"""`reachable web` as `make bench` runs it: the real command, and when it stops, the longest
garbage-collection pause it had (each one holds up every page being answered)."""

from __future__ import annotations

import sys

from bench.common import Pauses
from bot.cli import main

if __name__ == "__main__":
    with Pauses() as pauses:
        code = main(["web"])
    print(f"pause_s={pauses.longest:.4f}", flush=True)
    sys.exit(code)
