"""`make profile`: the report flow at capacity on aiogram, alone, for a sampling profiler.

py-spy record -o docs/flamegraph-report-flow.svg -- python -m bench.profile
"""

from __future__ import annotations

import asyncio

from bench.bots import reachable_aiogram
from bench.run import with_bot


async def main() -> None:
    throughput, _, _ = await with_bot(reachable_aiogram, None)
    print(f"report flow on aiogram: {throughput:.0f} messages/s")


if __name__ == "__main__":
    asyncio.run(main())
