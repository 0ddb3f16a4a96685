"""`make profile`: the report flow at capacity on aiogram, alone, for a sampling profiler.

py-spy record -o docs/flamegraph-report-flow.svg -- python -m bench.profile
"""

from __future__ import annotations

import asyncio

from bench.bots import reachable_aiogram
from bench.run import in_this_process


async def main() -> None:
    throughput = await in_this_process(reachable_aiogram)
    print(f"report flow on aiogram: {throughput:.0f} messages/s")


if __name__ == "__main__":
    asyncio.run(main())
