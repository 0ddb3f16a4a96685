"""`reachable web` as `make bench` runs it: the real command, and when it stops, the longest
garbage-collection pause it had while serving (each one holds up every page being answered).
The full collection it makes once started (``settle_heap``), before any page, is not counted."""

from __future__ import annotations

import sys

import bot.launch
from bench.common import Pauses
from bot.cli import main
from bot.core.app import settle_heap

if __name__ == "__main__":
    with Pauses() as pauses:

        def settled() -> None:
            settle_heap()
            pauses.longest = 0.0

        setattr(bot.launch, "settle_heap", settled)  # noqa: B010 - the name bot.launch calls
        code = main(["web"])
    print(f"pause_s={pauses.longest:.4f}", flush=True)
    sys.exit(code)
