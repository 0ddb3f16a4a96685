"""The Rasa action server, for `make bench`: `reachable rasa-actions` in a process of its own
against rasa-sdk's own server running a minimal action (bench/rasa_minimal.py), both called over
real HTTP with the JSON a Rasa server sends (each call carrying the conversation's events so far,
fakes/rasa.py), as people write through the report. As for the web chat, the fair capacity
ratio is of calls for each second of the server's CPU (rasa-sdk's server counted with its worker
process): the people's side shares this machine's two cores."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from bench.common import FLOW, Latencies, Server, cpu_seconds, started
from fakes.harness import MODEL_CACHE, free_port
from fakes.rasa import TOKEN, FakeRasa
from storage import Keyring

SENDERS = 50  # people writing at once
RATE = 100.0  # action calls a second, for latency
LEAST = 5.0  # seconds of calls a capacity is measured over, at least


@contextlib.asynccontextmanager
async def served(kind: str) -> AsyncIterator[Server]:
    """``kind`` "reachable" or "minimal" (rasa-sdk's server with bench/rasa_minimal.py)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHABLE_")}
    if kind == "reachable":
        environ |= {
            "REACHABLE_DATA_DIR": tempfile.mkdtemp(prefix="reachable-rasa-"),
            "REACHABLE_CACHE_DIR": str(MODEL_CACHE),
            "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
            "REACHABLE_RASA_ACTIONS_LISTEN": f"127.0.0.1:{port}",
            "REACHABLE_RASA_TOKEN": TOKEN,
        }
        command = [sys.executable, "-m", "bot", "rasa-actions"]
    else:
        environ |= {"SANIC_HOST": "127.0.0.1"}
        command = [sys.executable, "-m", "rasa_sdk", "--actions", "bench.rasa_minimal", "-p", str(port), "--quiet"]
    async with started(f"{kind} action server", command, environ, f"http://127.0.0.1:{port}/health") as server:
        yield server


@dataclass
class Calls:
    per_second: float = 0.0
    latencies: Latencies = field(default_factory=Latencies)  # every call but each report's last ("keep")
    keep: Latencies = field(default_factory=Latencies)
    statuses: Counter[int] = field(default_factory=Counter)
    answered: int = 0  # calls whose answer had something for the person
    cpu_ms: float = 0.0  # the server's CPU milliseconds a call


async def calls(server: Server, senders: int, rate: float | None) -> Calls:
    """``senders`` people each write the report, one message after the last was answered;
    ``rate`` caps calls a second overall."""
    rasa = FakeRasa(server.base)  # only to build each call as Rasa does; its own API is not served
    result, gap, next_slot = Calls(), 1 / rate if rate else 0.0, [time.perf_counter()]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:

        async def person(sender: str) -> None:
            for step, text in enumerate(FLOW):
                if gap:
                    slot = max(next_slot[0], time.perf_counter())
                    next_slot[0] = slot + gap
                    await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                latest = {"intent": {"name": None, "confidence": 0.0}, "entities": [], "text": text}
                body = json.dumps(rasa.action_call(sender, latest | {"message_id": uuid.uuid4().hex})).encode()
                started = time.perf_counter()
                async with client.post(
                    f"{server.base}/webhook",
                    params={"token": TOKEN},
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as answer:
                    answered = await answer.json(content_type=None)
                took = time.perf_counter() - started
                (result.keep if step == len(FLOW) - 1 else result.latencies).values.append(took)
                result.statuses[answer.status] += 1
                result.answered += bool(answered.get("responses")) if isinstance(answered, dict) else 0

        started, cpu = time.perf_counter(), cpu_seconds(server.pid)
        await asyncio.gather(*(person(uuid.uuid4().hex) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    result.per_second = senders * len(FLOW) / elapsed
    result.cpu_ms = (cpu_seconds(server.pid) - cpu) * 1000 / (senders * len(FLOW))
    return result


async def warm(server: Server) -> None:
    """One person through the whole report first: the model loaded, every path warm."""
    await calls(server, 1, None)


async def capacity(server: Server) -> Calls:
    """Rounds of SENDERS people writing the report at once, for LEAST seconds or more."""
    total, elapsed, count = Calls(), 0.0, 0
    while elapsed < LEAST:
        started = time.perf_counter()
        round_ = await calls(server, SENDERS, None)
        elapsed += time.perf_counter() - started
        count += len(round_.latencies.values) + len(round_.keep.values)
        total.cpu_ms += round_.cpu_ms * (len(round_.latencies.values) + len(round_.keep.values))
        total.statuses += round_.statuses
        total.answered += round_.answered
        total.latencies.values += round_.latencies.values
    total.per_second, total.cpu_ms = count / elapsed, total.cpu_ms / count
    return total


async def compare(hash_ms: float) -> tuple[str, dict[str, float]]:
    """The lines `make bench` prints, and the figures its machine-readable line carries."""
    runs: dict[str, tuple[Calls, Calls]] = {}
    for kind in ("reachable", "minimal"):
        async with served(kind) as server:
            await warm(server)
            runs[kind] = await capacity(server), await calls(server, SENDERS, RATE)
    (mine, mine_paced), (minimal, minimal_paced) = runs["reachable"], runs["minimal"]
    lines = [
        "Rasa action server over real HTTP, Rasa's JSON with the conversation's events, against rasa-sdk's own server "
        "running a minimal action:",
        f"  capacity, {SENDERS} people writing at once, the people's side on the same cores: Reachable "
        f"{mine.per_second:.0f} calls/s, minimal {minimal.per_second:.0f}/s",
        f"  the server's CPU a call: Reachable {mine.cpu_ms:.2f} ms ({hash_ms / len(FLOW):.2f} ms of it the Argon2id "
        f"hash of each report's code, spread over its {len(FLOW)} calls), minimal {minimal.cpu_ms:.2f} ms: calls for "
        f"each CPU second {1000 / mine.cpu_ms:.0f} against {1000 / minimal.cpu_ms:.0f} "
        f"(ratio {minimal.cpu_ms / mine.cpu_ms:.2f}, target >= 0.7)",
        f"  at {RATE:.0f} calls a second, every call but the report's last: Reachable {mine_paced.latencies.line()}; "
        f"minimal {minimal_paced.latencies.line()}",
        f"  the report's last call ('keep', its code hashed): Reachable {mine_paced.keep.line()}; minimal "
        f"{minimal_paced.keep.line()}",
        f"  statuses: Reachable {dict(mine.statuses + mine_paced.statuses)}, minimal "
        f"{dict(minimal.statuses + minimal_paced.statuses)}; answered with something to show: Reachable "
        f"{mine.answered + mine_paced.answered} of {sum((mine.statuses + mine_paced.statuses).values())}, minimal "
        f"{minimal.answered + minimal_paced.answered} of {sum((minimal.statuses + minimal_paced.statuses).values())}",
    ]
    figures = {
        "rasa_ratio": minimal.cpu_ms / mine.cpu_ms,
        "rasa_p99_ms": mine_paced.latencies.p99_ms(),
        "rasa_keep_p99_ms": mine_paced.keep.p99_ms(),
        "rasa_minimal_p99_ms": minimal_paced.latencies.p99_ms(),
    }
    return "\n".join(lines), figures


async def main() -> None:
    from bench.run import hash_cpu_ms

    text, _ = await compare(hash_cpu_ms())
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
