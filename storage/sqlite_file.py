"""The SQLite file itself: opened private (folder 0700, files 0600) in WAL mode with secure
delete, migrated, checked against the key, older formats upgraded; transactions, full sync for
what a person consented to, and emptying the write-ahead log when content is forgotten; the
store's own random secrets, sealed; and the retention sweeps, table by table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import stat
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from storage.crypto import LEGACY, Keyring, opens_every, private_file, secure_folder
from storage.errors import MigrationError, StorageError
from storage.rows import DAY, Tx, day_of

log = logging.getLogger("reachable.storage")
T = TypeVar("T")
# The store whose transaction is running on this thread (SQLite's own), and its calls made at once.
_ON_THREAD = threading.local()
# A draft's (or an answer's) payload: its exact expiry, then the content. Encrypted together.
_DRAFT = struct.Struct(">2sQ")
DRAFT_MARK = b"D1"
# Tables and columns that hold encrypted tokens, and the key each row is found by.
SEALED = (
    ("drafts", "chat_key", "payload"),
    ("reports", "reference", "summary"),
    ("deliveries", "id", "payload"),
    ("relays", "reference", "chat"),
    ("answers", "id", "payload"),
    ("secrets", "name", "sealed"),
    ("identifiers", "id", "sealed"),
    ("staff_accounts", "name", "totp"),
    ("thread", "id", "sealed"),
)
WAL_LIMIT = 1 << 20  # bytes the write-ahead log may keep after a checkpoint
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # Safe against a process crash in WAL mode; a turn that stores or erases a report switches
    # to FULL so that it survives power loss as well (see SQLiteFile._transaction).
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
    "PRAGMA busy_timeout=5000",
    f"PRAGMA journal_size_limit={WAL_LIMIT}",
)


def migrations() -> list[tuple[int, str]]:
    """Every migration script, in order, as (version, SQL)."""
    folder = resources.files("storage") / "migrations"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def seal_expiring(keyring: Keyring, payload: bytes, expires: int) -> bytes:
    """A draft or an answer, sealed with its exact expiry inside."""
    return keyring.encrypt(_DRAFT.pack(DRAFT_MARK, expires) + payload)


def unseal_expiring(plain: bytes) -> tuple[int, bytes]:
    if not plain.startswith(DRAFT_MARK) or len(plain) < _DRAFT.size:
        raise StorageError("a draft is not in the expected format")
    _, expires = _DRAFT.unpack_from(plain)
    return int(expires), plain[_DRAFT.size :]


class AtOnce:
    """The connection's calls as a transaction makes them on SQLite's own thread (``_whole``):
    each runs as it is called, nothing waits for the event loop. Only what the row operations
    use: statements, many rows at once, and rows fetched in the same call."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, parameters)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.raw.execute(sql, parameters).fetchall()


# Folds the write-ahead log into the database and empties it: erased data leaves the -wal.
CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"


@contextlib.contextmanager
def one_transaction(raw: sqlite3.Connection) -> Iterator[None]:
    """On SQLite's thread: what is written inside, committed together or rolled back."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        yield
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise


def run_at_once(work: Coroutine[Any, Any, T]) -> T:
    """A coroutine that awaits nothing but ``AtOnce``'s calls, run to its end here and now; one
    that suspends (waiting for anything that is not ready) is closed and refused."""
    try:
        work.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    work.close()
    raise StorageError("a transaction on SQLite's thread waited for something other than SQLite")


class Connection:
    """One SQLite connection of ours: opened private (folder 0700, file 0600), one writer at a time."""

    what = "the store"

    def __init__(self) -> None:
        self._db: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        here = getattr(_ON_THREAD, "here", None)
        if here is not None and here[0] is self:
            # Inside ``_whole`` on SQLite's thread: the same calls, made at once.
            return cast(aiosqlite.Connection, here[1])
        if self._db is None:
            raise StorageError(f"{self.what} is not open")
        return self._db

    async def _connect(self, path: Path, pragmas: Sequence[str]) -> None:
        secure_folder(path.parent)
        # SQLite creates its journal, -wal and -shm files with the database file's permissions.
        private_file(path)
        self._db = await aiosqlite.connect(path, isolation_level=None)
        for pragma in pragmas:
            await (await self.db.execute(pragma)).close()

    async def _at_once(self, work: Callable[..., T], *args: Any) -> T:
        """``work(the sqlite3 connection, *args)`` in one call on SQLite's thread. Calls there run
        one at a time in the order they were made, so a write made whole in one needs no lock of
        ours: it only waits while the write lock is held (a transaction of several calls holds
        it from BEGIN to COMMIT, and other writes of several steps too), behind those already
        waiting for it, and is queued before the next holder begins. Under load the write lock,
        held across returns to a busy event loop, was where turns queued: each return waits for
        everything else ready on the loop. Never called while holding the write lock.

        aiosqlite (0.21-0.22) has no public call that runs a function on its thread;
        ``_execute`` and ``_conn`` are what its own methods use."""
        if self._write.locked():
            async with self._write:
                pass  # that transaction is done; ours is queued before anything else can begin
        db = self.db
        on_thread = cast(Callable[..., Awaitable[T]], db._execute)
        return await on_thread(work, db._conn, *args)

    async def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """What ``sql`` returns, run to its end in one call on the connection's thread. No
        statement is left open between calls: a checkpoint that empties the write-ahead log
        (after an erasure) finds the table locked while a read on the same connection is half
        done, which a read made without the write lock could otherwise be."""
        return list(await self.db.execute_fetchall(sql, parameters))

    async def _row(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The one row ``sql`` returns (a key's row, a count), or None."""
        rows = await self._rows(sql, parameters)
        return rows[0] if rows else None

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


class SQLiteFile(Connection):
    """One database file and its connection."""

    path: Path
    keyring: Keyring
    draft_seconds: int
    clock: Callable[[], float]

    async def open(self) -> None:
        for file in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            if file.exists() and stat.S_IMODE(file.stat().st_mode) != 0o600:
                file.chmod(0o600)
        try:
            await self._connect(self.path, PRAGMAS)
            await self._migrate()
            await self._check_key()
            await self._upgrade_tokens()
            await self._consent_days_only()
        except BaseException:
            # A refused or failed open must not leave the connection's thread running.
            await self.close()
            raise

    @contextlib.asynccontextmanager
    async def _transaction(self, durable: bool) -> AsyncIterator[Tx]:
        """One write transaction; ``durable``: full sync, for what a person consented to (keeping,
        erasing, a later choice, a staff message acknowledged). Emptying the write-ahead log
        after, when the transaction says so."""
        async with self._write:
            try:
                if durable:
                    await self._rows("PRAGMA synchronous=FULL")
                try:
                    await self.db.execute("BEGIN IMMEDIATE")
                except BaseException:
                    # Cancelled while waiting: BEGIN still runs on SQLite's thread, so it is
                    # rolled back there before the write lock is let go.
                    await self._roll_back()
                    raise
                tx = Tx()
                try:
                    yield tx
                    await self.db.execute("COMMIT")
                except BaseException:
                    await self._roll_back()
                    raise
                if tx.scrub:
                    await self._checkpoint()
            finally:
                if durable:
                    await self._rows("PRAGMA synchronous=NORMAL")

    async def _roll_back(self) -> None:
        """Roll back the open transaction, if one is (none is when BEGIN itself failed)."""
        with contextlib.suppress(sqlite3.OperationalError):
            await self.db.execute("ROLLBACK")

    async def _in_transaction(self, durable: bool, body: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        """The whole transaction in one call on SQLite's thread (``_at_once``). Once asked for,
        it is written even if the caller is cancelled meanwhile: a turn's reply is kept with it,
        and goes out from there."""
        return await self._at_once(self._whole, durable, body)

    def _whole(self, raw: sqlite3.Connection, durable: bool, body: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        """On SQLite's thread: ``_transaction``'s steps around ``body``, each at once."""
        _ON_THREAD.here = (self, AtOnce(raw))
        try:
            if durable:
                raw.execute("PRAGMA synchronous=FULL")
            try:
                tx = Tx()
                with one_transaction(raw):
                    result = run_at_once(body(tx))
                if tx.scrub:
                    raw.execute(CHECKPOINT).fetchall()
                return result
            finally:
                if durable:
                    raw.execute("PRAGMA synchronous=NORMAL")
        finally:
            _ON_THREAD.here = None

    async def _checkpoint(self) -> None:
        """Fold the write-ahead log into the database and empty it: erased data leaves the -wal."""
        await self._rows(CHECKPOINT)

    async def _migrate(self) -> None:
        row = await self._row("PRAGMA user_version")
        current = int(row[0]) if row else 0
        known = migrations()
        latest = known[-1][0] if known else 0
        if current > latest:
            raise MigrationError(
                f"the database is at version {current}, newer than this program knows ({latest}); "
                "upgrade Reachable before running it on this data"
            )
        for version, script in known:
            if version <= current:
                continue
            try:
                await self.db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};\nCOMMIT;")
            except aiosqlite.Error as error:
                await self.db.execute("ROLLBACK")
                raise MigrationError(f"migration {version} failed: {type(error).__name__}") from error
            log.info("storage migrated to version %d", version)

    async def _check_key(self) -> None:
        """Refuse to start with keys that open nothing here (a database restored with the wrong
        key): one stored token of each kind is opened, or the store says why not."""
        tokens = []
        for table, _, column in SEALED:
            query = f"SELECT {column} FROM {table} WHERE length({column}) > 0 LIMIT 1"  # noqa: S608 - fixed names
            row = await self._row(query)
            if row is not None:
                tokens.append(bytes(row[0]))
        opens_every(self.keyring, tokens)

    async def _consent_days_only(self) -> None:
        """Reports kept before consent times were stored as days carry the exact second inside
        their ciphertext: it becomes the day, and the old ciphertext leaves the file."""
        rows = await self._rows("SELECT reference, summary FROM reports")
        changed = []
        for reference, sealed in rows:
            body = json.loads(self.keyring.decrypt(bytes(sealed)))
            at = int(body.get("consented_at", 0))
            if at % DAY:
                body["consented_at"] = day_of(at)
                changed.append((self.keyring.encrypt(json.dumps(body, ensure_ascii=False).encode()), reference))
        if not changed:
            return
        async with self._transaction(durable=False) as tx:
            await self.db.executemany("UPDATE reports SET summary = ? WHERE reference = ?", changed)
            tx.scrub = True
        log.info("consent times of %d report(s) kept as days only", len(changed))

    async def _secret(self, name: str) -> bytes:
        """A random secret of this store, made on first use and kept sealed."""
        async with self._transaction(durable=False):
            row = await self._row("SELECT sealed FROM secrets WHERE name = ?", (name,))
            if row is not None:
                return self.keyring.decrypt(bytes(row[0]))
            secret = secrets.token_bytes(32)
            await self.db.execute(
                "INSERT INTO secrets (name, sealed) VALUES (?, ?)", (name, self.keyring.encrypt(secret))
            )
            return secret

    async def _upgrade_tokens(self) -> None:
        """Tokens written before this version (Fernet, which carries its creation time in clear)
        are re-encrypted in the current format, drafts with their exact expiry inside, relays with
        their chat's keyed hash; then old ciphertext leaves the file."""
        upgraded = 0
        async with self._transaction(durable=False):
            for table, key, column in SEALED:
                query = f"SELECT {key}, {column} FROM {table} WHERE substr({column}, 1, 6) = ?"  # noqa: S608
                rows = await self._rows(query, (LEGACY,))
                for row_key, sealed in rows:
                    token = bytes(sealed)
                    plain = self.keyring.decrypt(token)
                    if table == "drafts":
                        made = self.keyring.fernet_time(token)
                        plain = _DRAFT.pack(DRAFT_MARK, int(made + self.draft_seconds)) + plain
                    await self.db.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608 - fixed names
                        (self.keyring.encrypt(plain), row_key),
                    )
                    if table == "relays":
                        channel, _, chat_id = plain.decode().partition(":")
                        await self.db.execute(
                            "UPDATE relays SET chat_key = ? WHERE reference = ?",
                            (self.keyring.chat_key(channel, chat_id), row_key),
                        )
                    upgraded += 1
        if upgraded:
            await self._checkpoint()
            await (await self.db.execute("VACUUM")).close()
            log.info("re-encrypted %d stored item(s) in the current format", upgraded)

    async def reencrypt(self) -> dict[str, int]:
        """Every sealed column under the newest key; then old ciphertexts leave the free pages."""
        counts: dict[str, int] = {}
        async with self._transaction(durable=False) as tx:
            for table, key, column in SEALED:
                query = f"SELECT {key}, {column} FROM {table} WHERE length({column}) > 0"  # noqa: S608
                rows = await self._rows(query)
                updated = await self.db.executemany(
                    f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608 - names are fixed above
                    [(self.keyring.rotate(bytes(sealed)), row_key) for row_key, sealed in rows],
                )
                await updated.close()
                counts[table] = len(rows)
            await self.db.execute(
                "INSERT INTO audit (at, kind, reference) VALUES (?, 'keys_rotated', NULL)", (day_of(self.clock()),)
            )
            tx.scrub = True
        await (await self.db.execute("VACUUM")).close()
        return counts

    async def tokens_not_under_newest(self) -> int:
        """How many stored tokens the newest key alone cannot open (rotate before pruning)."""
        stale = 0
        for table, _, column in SEALED:
            query = f"SELECT {column} FROM {table} WHERE length({column}) > 0"  # noqa: S608 - fixed names
            stale += sum(1 for (sealed,) in await self._rows(query) if not self.keyring.is_current(bytes(sealed)))
        return stale

    # ------------------------------------------------------------------ retention sweeps, table by table
    async def _purge_drafts(self, now: int) -> int:
        gone = (await self.db.execute("DELETE FROM drafts WHERE expires_at <= ?", (now,))).rowcount
        return gone + await self._purge_of_today("drafts", "chat_key", now)

    async def _purge_answers(self, now: int) -> int:
        gone = (await self.db.execute("DELETE FROM answers WHERE expires_at <= ?", (now,))).rowcount
        return gone + await self._purge_of_today("answers", "id", now)

    async def _purge_of_today(self, table: str, key: str, now: int) -> int:
        """Drafts (or answers) whose day has not ended but whose exact expiry, inside the
        ciphertext, passed."""
        query = f"SELECT {key}, payload FROM {table} WHERE expires_at <= ?"  # noqa: S608 - fixed names
        rows = await self._rows(query, (now + DAY,))
        gone = 0
        for row_key, sealed in rows:
            try:
                expires, _ = unseal_expiring(self.keyring.decrypt(bytes(sealed)))
            except StorageError:
                continue
            if expires <= now:
                await self.db.execute(f"DELETE FROM {table} WHERE {key} = ?", (row_key,))  # noqa: S608
                gone += 1
        return gone

    async def _purge_reports(self, now: int) -> int:
        reports = await self.db.execute("DELETE FROM reports WHERE expires_at <= ?", (now,))
        await self.db.execute("DELETE FROM relays WHERE reference NOT IN (SELECT reference FROM reports)")
        await self.db.execute(
            "DELETE FROM audit WHERE reference IS NOT NULL AND reference NOT IN (SELECT reference FROM reports)"
        )
        await self.db.execute("DELETE FROM identifiers WHERE reference NOT IN (SELECT reference FROM reports)")
        return int(reports.rowcount)

    async def _purge_deliveries(self, before: int) -> list[int]:
        rows = await self._rows("DELETE FROM deliveries WHERE created_at <= ? RETURNING id", (before,))
        return [int(row[0]) for row in rows]

    async def _purge_rest(self, *, staff_before: int, messages_before: int, updates_before: int) -> None:
        await self.db.execute("DELETE FROM staff_messages WHERE day <= ?", (staff_before,))
        await self.db.execute("DELETE FROM chat_messages WHERE at <= ?", (messages_before,))
        await self.db.execute("DELETE FROM seen_updates WHERE at <= ?", (updates_before,))
