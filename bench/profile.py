"""`make profile`: what a sampling profiler is pointed at, for the flame graphs in docs/.

python -m bench.profile                  the report flow at capacity on aiogram, alone in this process
python -m bench.profile peer             the aiogram FSM peer doing the same (bench/peers.py)
python -m bench.profile web SVG          `reachable web` at capacity, py-spy sampling its process
python -m bench.profile rasa SVG         `reachable rasa-actions` at capacity, likewise

The first two run under ``py-spy record -- …``; the last two start py-spy on the server's
process themselves (the people's side is left out of the graph).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.bots import BOTS, reachable_aiogram
from bench.common import Server
from bench.run import in_this_process

SECONDS = 20


async def sampled(kind: str, svg: str) -> None:
    """``kind`` "web" or "rasa": its server at capacity for SECONDS while py-spy samples it."""
    from bench import rasa_actions, web_surge

    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    load: Callable[[Server], Awaitable[object]]
    rounds = itertools.count()
    if kind == "web":
        served, warm = web_surge.served("reachable"), web_surge.warm

        def load(server: Server) -> Awaitable[object]:  # new people each round, from new addresses
            return web_surge.capacity(server, first=next(rounds) * web_surge.CAPACITY_PEOPLE)
    else:
        served, warm = rasa_actions.served("reachable"), rasa_actions.warm
        load = rasa_actions.capacity
    async with served as server:
        await warm(server)
        command = [spy, "record", "-r", "200", "-d", str(SECONDS), "-o", svg, "--pid", str(server.pid)]
        recording = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL)
        while recording.returncode is None:
            await load(server)
        await recording.wait()
    print(f"{kind}: flame graph in {svg}")


async def main(args: list[str]) -> None:
    if args and args[0] in ("web", "rasa"):
        await sampled(args[0], args[1])
        return
    maker = BOTS["peer aiogram FSM"] if args[:1] == ["peer"] else reachable_aiogram
    throughput = await in_this_process(maker)
    print(f"report flow on aiogram{' (peer)' if args else ''}: {throughput:.0f} messages/s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
