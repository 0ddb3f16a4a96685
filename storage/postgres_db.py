"""The PostgreSQL database itself, through asyncpg: a pool of connections shared by one process's
turns, migrations run once whichever instance starts first, transactions bound to the task that
opened them, the key checked against what is stored, the store's own sealed secrets, and the
retention sweeps, table by table.

What the server receives is what SQLite's file holds: tokens sealed by the bot (the key never
leaves the bot's machines), keyed hashes, days. Unlike SQLite's write-ahead log, which the store
empties when content is forgotten, PostgreSQL's WAL and dead row versions are the server's to
recycle (autovacuum, checkpoints): an erased token stays in them, still sealed, until then, and
in any base backup or WAL archive the operator keeps (SECURITY.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg

from storage.base import BEAT, ChatKey
from storage.crypto import Keyring, opens_every
from storage.errors import MigrationError, StorageError
from storage.rows import DAY, Tx, day_of
from storage.sqlite_file import SEALED, unseal_expiring

log = logging.getLogger("reachable.storage")
# Held by whoever migrates, for the length of one migration's transaction: a second instance
# starting at the same moment waits, then finds the schema current.
MIGRATION_LOCK = 0x52454143  # "REAC"
# Each turn holds one connection while it reads and writes its chat.
POOL_SIZE = (2, 20)
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection[asyncpg.Record]
# Every sealed column, as in SQLite's file, and the polling inbox, which here shares the database.
PG_SEALED = (*SEALED, ("inbox", "update_id", "body"))
# An instance that has not said it is alive for this long (three heartbeats) is taken for dead:
# what it claimed is taken over. Times are the database's, so instances' clocks need not agree.
STALE = 3 * BEAT
NOW = "extract(epoch FROM clock_timestamp())"
LIVE = f"SELECT name FROM instances WHERE seen > {NOW} - {STALE}"  # noqa: S608 - fixed text
APPLICATION = "reachable:"  # an instance's connections are named APPLICATION + its name
# The sessions of instances taken for dead are ended, and the locks they held with them (a machine
# lost mid-turn would otherwise hold its chats' locks until TCP noticed, hours later).
SILENT_SESSIONS_END = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()"  # noqa: S608
    f" AND application_name LIKE $1 || '%' AND substr(application_name, length($1) + 1) NOT IN ({LIVE})"
    " AND pid <> pg_backend_pid()"
)
LOCK_TIMEOUT = "60s"  # a lock waited for longer than this fails the turn ("try again"), never hangs it
CONNECT_TIMEOUT = 10.0


def migrations() -> list[tuple[int, str]]:
    """Every PostgreSQL migration script, in order, as (version, SQL)."""
    folder = resources.files("storage") / "migrations" / "postgresql"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def affected(status: str) -> int:
    """Rows a statement touched, from asyncpg's status line ("DELETE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def schema_version(connection: Connection) -> int:
    exists = await connection.fetchval("SELECT to_regclass('reachable_schema') IS NOT NULL")
    if not exists:
        return 0
    return int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM reachable_schema"))


class PostgresDatabase:
    """A pool, and the connection of the transaction the current task is in, if any."""

    url: str
    keyring: Keyring
    clock: Callable[[], float]
    what = "the store"

    shared = True

    def __init__(self) -> None:
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._current: ContextVar[Connection | None] = ContextVar("transaction", default=None)
        self._pinned: ContextVar[Connection | None] = ContextVar("chat turn", default=None)
        self.instance = ""  # a random name at each start (see open); it names nobody
        self._beat: asyncpg.Connection[asyncpg.Record] | None = None  # the heartbeat's own connection
        self._beating: asyncio.Task[None] | None = None
        self._live = 1

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise StorageError(f"{self.what} is not open")
        return self._pool

    def _settings(self) -> dict[str, str]:
        """Every connection of this instance: named after it (so the others can end its sessions
        once it is taken for dead, and with them every lock it held), a lock waited for at most
        a minute, and a dead peer noticed by TCP within a minute, not two hours."""
        return {
            "application_name": f"{APPLICATION}{self.instance}",
            "lock_timeout": LOCK_TIMEOUT,
            "tcp_keepalives_idle": "20",
            "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "4",
        }

    async def open(self) -> None:
        """Connect (the heartbeat first, on a connection of its own, so a busy pool never
        silences it), migrate, say this instance is alive, then open the pool and check the key."""
        self.instance = secrets.token_hex(8)
        try:
            self._beat = await asyncpg.connect(self.url, server_settings=self._settings(), timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise StorageError(f"the database cannot be reached ({type(error).__name__})") from error
        try:
            await self._migrate(self._beat)
            self._live = await self._say_alive(self._beat)
            self._pool = await asyncpg.create_pool(
                self.url, min_size=POOL_SIZE[0], max_size=POOL_SIZE[1], server_settings=self._settings()
            )
            await self._check_key()
        except BaseException:
            await self.close()
            raise
        self._beating = asyncio.create_task(self._beat_forever(), name="reachable-store-heartbeat")

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        if self._beat is not None:
            beat, self._beat = self._beat, None
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                # A clean stop: what this instance claimed is taken over at once, not after STALE.
                await beat.execute("DELETE FROM instances WHERE name = $1", self.instance)
            await beat.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # ------------------------------------------------------------------ several instances
    def live(self) -> int:
        """How many instances are alive, this one included, as last heard (this one says so every
        BEAT seconds on its own connection, from the moment the store opens)."""
        return self._live

    async def _say_alive(self, connection: Connection) -> int:
        await connection.execute(
            f"INSERT INTO instances (name, seen) VALUES ($1, {NOW}) ON CONFLICT (name) DO UPDATE SET seen = {NOW}",  # noqa: S608
            self.instance,
        )
        await connection.execute(f"DELETE FROM instances WHERE seen < {NOW} - 86400")  # noqa: S608 - fixed text
        return max(1, int(await connection.fetchval(f"SELECT count(*) FROM ({LIVE}) AS live")))  # noqa: S608

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            try:
                if self._beat is None or self._beat.is_closed():
                    self._beat = await asyncpg.connect(
                        self.url, server_settings=self._settings(), timeout=CONNECT_TIMEOUT
                    )
                self._live = await self._say_alive(self._beat)
                ended = await self._beat.fetchval(SILENT_SESSIONS_END, APPLICATION)
            except Exception as error:  # whatever it was, the next beat tries again: a silent
                # instance is taken for dead, and what it is sending is sent again by the others
                log.error("heartbeat not written: %s", type(error).__name__)
                continue
            if ended:
                log.warning("%d database session(s) of an instance taken for dead ended (their locks with them)", ended)

    @contextlib.asynccontextmanager
    async def chat_turn(self, key: ChatKey) -> AsyncIterator[None]:
        """The chat is held, against every instance, until the turn has written: a connection of
        the pool is the turn's for that long (a session advisory lock on the chat key's first 8
        bytes, unlocked at the end; asyncpg also unlocks every advisory lock when a connection
        goes back to the pool, and a dead instance's sessions are ended by the others)."""
        if self._pinned.get() is not None or self._current.get() is not None:
            yield
            return
        high, low = struct.unpack(">ii", key.digest[:8])
        async with self.pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1, $2)", high, low)
            token = self._pinned.set(connection)
            try:
                yield
            finally:
                self._pinned.reset(token)
                await connection.execute("SELECT pg_advisory_unlock($1, $2)", high, low)

    # ------------------------------------------------------------------ statements
    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """The current transaction's connection, or one from the pool for a single statement."""
        current = self._current.get() or self._pinned.get()
        if current is not None:
            yield current
            return
        async with self.pool.acquire() as connection:
            yield connection

    async def _execute(self, query: str, *arguments: Any) -> int:
        async with self._connection() as connection:
            return affected(await connection.execute(query, *arguments))

    async def _executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            async with self._connection() as connection:
                await connection.executemany(query, rows)

    async def _fetch(self, query: str, *arguments: Any) -> list[asyncpg.Record]:
        async with self._connection() as connection:
            return list(await connection.fetch(query, *arguments))

    async def _fetchrow(self, query: str, *arguments: Any) -> asyncpg.Record | None:
        async with self._connection() as connection:
            return await connection.fetchrow(query, *arguments)

    @property
    def _locking(self) -> str:
        """Inside a transaction, what is read to be changed is locked until it ends (a second turn
        on the same report, from this process or another, waits and then sees the change)."""
        return " FOR UPDATE" if self._current.get() is not None else ""

    @contextlib.asynccontextmanager
    async def _transaction(self, durable: bool) -> AsyncIterator[Tx]:
        """One transaction on one connection, bound to this task; ``durable``: the commit waits
        for the server's disk (otherwise a crash of the server, not of the bot, may lose the last
        few hundred milliseconds, as SQLite's NORMAL does on power loss)."""
        if self._current.get() is not None:
            raise StorageError("a transaction is already open in this task")
        async with self._connection() as connection, connection.transaction():
            if not durable:
                await connection.execute("SET LOCAL synchronous_commit = off")
            token = self._current.set(connection)
            try:
                yield Tx()
            finally:
                self._current.reset(token)

    # ------------------------------------------------------------------ opening
    async def _migrate(self, connection: Connection) -> None:
        known = migrations()
        latest = known[-1][0]
        for version, script in known:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await connection.execute("CREATE TABLE IF NOT EXISTS reachable_schema (version integer NOT NULL)")
                current = await schema_version(connection)
                if current > latest:
                    raise MigrationError(
                        f"the database is at version {current}, newer than this program knows ({latest}); "
                        "upgrade Reachable before running it on this data"
                    )
                if version <= current:
                    continue
                try:
                    await connection.execute(script)
                except asyncpg.PostgresError as error:
                    raise MigrationError(f"migration {version} failed: {type(error).__name__}") from error
                await connection.execute("INSERT INTO reachable_schema (version) VALUES ($1)", version)
            log.info("storage migrated to version %d", version)

    async def _check_key(self) -> None:
        """Refuse to start with keys that open nothing here: one stored token of each kind is
        opened, or the store says why not."""
        tokens = []
        for table, _, column in PG_SEALED:
            query = f"SELECT {column} FROM {table} WHERE octet_length({column}) > 0 LIMIT 1"  # noqa: S608 - fixed names
            row = await self._fetchrow(query)
            if row is not None:
                tokens.append(bytes(row[0]))
        opens_every(self.keyring, tokens)

    async def _secret(self, name: str) -> bytes:
        """A random secret of this store, made on first use and kept sealed; two instances making
        it at once agree on the first one written."""
        made = self.keyring.encrypt(secrets.token_bytes(32))
        await self._execute(
            "INSERT INTO secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, made
        )
        row = await self._fetchrow("SELECT sealed FROM secrets WHERE name = $1", name)
        if row is None:
            raise StorageError("a secret of the store could not be kept")
        return self.keyring.decrypt(bytes(row[0]))

    async def reencrypt(self) -> dict[str, int]:
        """Every sealed column under the newest key, instances running or not: each row is locked
        while it is rewritten (a turn writing it meanwhile waits, then writes under the new key,
        which every instance must already hold), so nothing written meanwhile is undone. Then the
        tables are vacuumed so old versions' space is reused (PostgreSQL's WAL, archives and base
        backups keep old ciphertexts until they are recycled: see SECURITY.md)."""
        counts: dict[str, int] = {}
        async with self._transaction(durable=True):
            for table, key, column in PG_SEALED:
                query = f"SELECT {key}, {column} FROM {table} WHERE octet_length({column}) > 0 FOR UPDATE"  # noqa: S608
                rows = await self._fetch(query)
                await self._executemany(
                    f"UPDATE {table} SET {column} = $1 WHERE {key} = $2",  # noqa: S608 - names are fixed above
                    [(self.keyring.rotate(bytes(sealed)), row_key) for row_key, sealed in rows],
                )
                counts[table] = len(rows)
            await self._execute(
                "INSERT INTO audit (at, kind, reference) VALUES ($1, 'keys_rotated', NULL)", day_of(self.clock())
            )
        async with self.pool.acquire() as connection:
            for table in dict.fromkeys(table for table, _, _ in PG_SEALED):
                await connection.execute(f"VACUUM {table}")
        return counts

    async def tokens_not_under_newest(self) -> int:
        stale = 0
        for table, _, column in PG_SEALED:
            query = f"SELECT {column} FROM {table} WHERE octet_length({column}) > 0"  # noqa: S608 - fixed names
            stale += sum(1 for (sealed,) in await self._fetch(query) if not self.keyring.is_current(bytes(sealed)))
        return stale

    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    # ------------------------------------------------------------------ retention sweeps, table by table
    async def _purge_drafts(self, now: int) -> int:
        gone = await self._execute("DELETE FROM drafts WHERE expires_at <= $1", now)
        return gone + await self._purge_of_today("drafts", "chat_key", now)

    async def _purge_answers(self, now: int) -> int:
        gone = await self._execute("DELETE FROM answers WHERE expires_at <= $1", now)
        return gone + await self._purge_of_today("answers", "id", now)

    async def _purge_of_today(self, table: str, key: str, now: int) -> int:
        """Drafts (or answers) whose day has not ended but whose exact expiry, inside the
        ciphertext, passed."""
        query = f"SELECT {key}, payload FROM {table} WHERE expires_at <= $1"  # noqa: S608 - fixed names
        gone = 0
        for row_key, sealed in await self._fetch(query, now + DAY):
            try:
                expires, _ = unseal_expiring(self.keyring.decrypt(bytes(sealed)))
            except StorageError:
                continue
            if expires <= now:  # unless it was written again meanwhile
                query = f"DELETE FROM {table} WHERE {key} = $1 AND payload = $2"  # noqa: S608 - fixed names
                gone += await self._execute(query, row_key, sealed)
        return gone

    async def _purge_reports(self, now: int) -> int:
        gone = await self._execute("DELETE FROM reports WHERE expires_at <= $1", now)
        await self._execute("DELETE FROM relays WHERE reference NOT IN (SELECT reference FROM reports)")
        await self._execute(
            "DELETE FROM audit WHERE reference IS NOT NULL AND reference NOT IN (SELECT reference FROM reports)"
        )
        await self._execute("DELETE FROM identifiers WHERE reference NOT IN (SELECT reference FROM reports)")
        return gone

    async def _purge_deliveries(self, before: int) -> list[int]:
        return [
            int(r[0]) for r in await self._fetch("DELETE FROM deliveries WHERE created_at <= $1 RETURNING id", before)
        ]

    async def _purge_rest(self, *, staff_before: int, messages_before: int, updates_before: int) -> None:
        await self._execute("DELETE FROM staff_messages WHERE day <= $1", staff_before)
        await self._execute("DELETE FROM chat_messages WHERE at <= $1", messages_before)
        await self._execute("DELETE FROM seen_updates WHERE at <= $1", updates_before)

    async def clock_skew(self) -> float:
        """Seconds the database's clock is ahead of this machine's (negative: behind)."""
        row = await self._fetchrow("SELECT extract(epoch FROM clock_timestamp())::float8")
        return float(row[0]) - self.clock() if row is not None else 0.0
