"""`make bench`, PostgreSQL beside SQLite: the same bot and report flow with its data in a real
PostgreSQL cluster (started here, in a temporary folder), capacity and the latency of answers; and
the two async drivers, asyncpg and psycopg 3, doing one turn's writes through their own pools.

On PostgreSQL each turn also reads the draft back (another instance may have taken the chat's last
turn) and holds the chat with an advisory lock: that is what is measured, not a store tuned for
one process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator

from bench.common import Latencies
from fakes.postgres import PostgresServer, running_server

TURNS = 3000
AT_ONCE = 10
# One turn's writes, as the store makes them: the update marked handled, the draft saved.
MARK = "INSERT INTO seen_updates (channel, update_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
DRAFT = (
    "INSERT INTO drafts (chat_key, payload, expires_at) VALUES ($1, $2, $3) ON CONFLICT (chat_key)"
    " DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at"
)
SCHEMA = (
    "CREATE TABLE seen_updates (channel text, update_id bigint, at bigint, PRIMARY KEY (channel, update_id));"
    "CREATE TABLE drafts (chat_key bytea PRIMARY KEY, payload bytea NOT NULL, expires_at bigint NOT NULL);"
)


@contextlib.contextmanager
def database_for_the_bot(url: str) -> Iterator[None]:
    """The benchmark's bots (bench/bots.py) keep their data at ``url`` while inside."""
    os.environ["BENCH_DATABASE_URL"] = url
    try:
        yield
    finally:
        os.environ.pop("BENCH_DATABASE_URL", None)


async def _turns(turn: Callable[[int], Awaitable[None]]) -> tuple[float, Latencies]:
    latencies = Latencies()
    numbers = iter(range(TURNS))

    async def worker() -> None:
        for number in numbers:
            started = time.perf_counter()
            await turn(number)
            latencies.values.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
    return TURNS / (time.perf_counter() - started), latencies


async def prepare(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()


async def asyncpg_turns(url: str) -> tuple[float, Latencies]:
    import asyncpg

    await prepare(url)
    pool = await asyncpg.create_pool(url, min_size=AT_ONCE, max_size=AT_ONCE)
    payload = secrets.token_bytes(600)

    async def turn(number: int) -> None:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(MARK, "telegram", number, 0)
            await connection.execute(DRAFT, number.to_bytes(32, "big"), payload, 0)

    try:
        return await _turns(turn)
    finally:
        await pool.close()


async def psycopg_turns(url: str) -> tuple[float, Latencies]:
    from psycopg_pool import AsyncConnectionPool

    await prepare(url)
    pool = AsyncConnectionPool(url, min_size=AT_ONCE, max_size=AT_ONCE, open=False)
    await pool.open()
    payload = secrets.token_bytes(600)
    mark, draft = (query.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s") for query in (MARK, DRAFT))

    async def turn(number: int) -> None:
        async with pool.connection() as connection, connection.transaction():
            await connection.execute(mark, ("telegram", number, 0))
            await connection.execute(draft, (number.to_bytes(32, "big"), payload, 0))

    try:
        return await _turns(turn)
    finally:
        await pool.close()


async def drivers(server: PostgresServer) -> str:
    lines = [f"PostgreSQL drivers, one turn's writes in a transaction, {AT_ONCE} at once, {TURNS} turns:"]
    for name, run in (("asyncpg", asyncpg_turns), ("psycopg 3", psycopg_turns)):
        try:
            rate, latencies = await run(server.new_database())
        except ImportError:
            lines.append(f"  {name + ':':11} not installed")
            continue
        lines.append(f"  {name + ':':11} {rate:6.0f} turns/s; {latencies.line()}")
    return "\n".join(lines)


def available() -> bool:
    from fakes.postgres import server_binaries

    return server_binaries() is not None


__all__ = ["database_for_the_bot", "drivers", "running_server"]
