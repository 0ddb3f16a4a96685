"""One of the benchmark's bots in a process of its own, as a bot runs in production: Telegram's
side (here the fake Bot API and the people writing) does not share its event loop or its core.

python -m bench.serve "Reachable on aiogram" http://127.0.0.1:PORT

Polls until SIGTERM; then prints, for the benchmark, the longest garbage-collection pause and
the CPU seconds the process used while polling.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from bench.bots import BOTS, DUTIES
from bench.common import Pauses
from bot.core.app import settle_heap


async def main(name: str, url: str) -> None:
    polling, close = await (BOTS | DUTIES)[name](url)
    settle_heap()  # as `reachable run` does once started
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, polling.stop)
    started = time.process_time()
    try:
        with Pauses() as pauses:
            await polling.run()
    finally:
        await close()
    print(f"pause_s={pauses.longest:.4f} cpu_s={time.process_time() - started:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
