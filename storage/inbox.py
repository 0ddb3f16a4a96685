"""Updates read from Telegram but not yet handled.

Telegram keeps an update until the bot confirms it, and hands out at most 100 from the oldest
unconfirmed one. A bot that confirms only what it has handled therefore cannot even read the
101st message while 100 people wait for Telegram's sending limit, and someone's "he's not
breathing" waits behind them all. The inbox lets the bot confirm at once: every update is
written here first (encrypted), handled, and then deleted. A crash leaves the unhandled ones
here, and they are handled at the next start.

It is a file of its own with a rollback journal and secure delete: a deleted update leaves no
copy behind in a write-ahead log, so a quick exit is not undone by the inbox (the journal holds
the deleted, encrypted rows only while the delete is written, and is then emptied: truncated to
nothing, which costs less than creating and removing a file at every write). Names and
usernames are never written (the bot does not use them)."""

from __future__ import annotations

import abc
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from storage.crypto import Keyring
from storage.errors import KeyringError, StorageError
from storage.sqlite_file import Connection, one_transaction

log = logging.getLogger("reachable.inbox")
INBOX_FILE = "inbox.sqlite3"
# What the bot never uses of a person: not written, even encrypted.
UNUSED = ("last_name", "username")


class Inbox(Protocol):
    shared: bool = False  # in a database several instances share: see PostgresInbox

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Keep these updates (raw, as Telegram sent them) until handled, in one write."""

    @abc.abstractmethod
    async def unhandled(self) -> list[tuple[int, dict[str, Any]]]:
        """What a stop or crash left, oldest first."""

    @abc.abstractmethod
    async def handled(self, update_ids: Sequence[int]) -> None:
        """These are handled: delete them."""


def minimal(value: Any) -> Any:
    """The update without anyone's name or username; a first name becomes "-" (libraries
    require one)."""
    if isinstance(value, dict):
        found = {k: minimal(v) for k, v in value.items() if k not in UNUSED}
        if "first_name" in found:
            found["first_name"] = "-"
        return found
    if isinstance(value, list):
        return [minimal(v) for v in value]
    return value


async def opened(inbox: Inbox, keyring: Keyring, rows: Sequence[Any]) -> list[tuple[int, dict[str, Any]]]:
    """Kept updates (update id, sealed body) opened, oldest first; those the key cannot open
    are dropped from ``inbox``, with a warning."""
    found, unreadable = [], []
    for update_id, body in sorted(rows, key=lambda row: int(row[0])):
        try:
            found.append((int(update_id), json.loads(keyring.decrypt(bytes(body)))))
        except (KeyringError, ValueError):
            unreadable.append(int(update_id))
    if unreadable:
        log.warning("%d update(s) left from before could not be read with the key: dropped", len(unreadable))
        await inbox.handled(unreadable)
    return found


class SQLiteInbox(Connection, Inbox):
    what = "the inbox"

    def __init__(self, path: Path, keyring: Keyring) -> None:
        super().__init__()
        self.path = path
        self.keyring = keyring

    async def open(self) -> None:
        # FULL: Telegram is told at once that these arrived, so they must survive a power cut too.
        pragmas = ("PRAGMA journal_mode=TRUNCATE", "PRAGMA synchronous=FULL", "PRAGMA secure_delete=ON")
        await self._connect(self.path, pragmas)
        await self.db.execute("CREATE TABLE IF NOT EXISTS inbox (update_id INTEGER PRIMARY KEY, body BLOB NOT NULL)")

    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        rows = [(i, self.keyring.encrypt(json.dumps(minimal(u), ensure_ascii=False).encode())) for i, u in updates]
        if not rows:
            return
        await self._in_one_write("INSERT OR IGNORE INTO inbox (update_id, body) VALUES (?, ?)", rows)

    async def unhandled(self) -> list[tuple[int, dict[str, Any]]]:
        try:
            rows = await self._rows("SELECT update_id, body FROM inbox ORDER BY update_id")
        except sqlite3.Error as error:
            raise StorageError(f"the inbox cannot be read ({type(error).__name__}): restore or remove it") from error
        return await opened(self, self.keyring, rows)

    async def handled(self, update_ids: Sequence[int]) -> None:
        if not update_ids:
            return
        await self._in_one_write("DELETE FROM inbox WHERE update_id = ?", [(i,) for i in update_ids])

    async def _in_one_write(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """``statement`` for every row, in one transaction and one call on SQLite's thread (a
        cancelled caller cannot leave it half begun)."""
        try:
            await self._at_once(write_all, statement, rows)
        except sqlite3.Error as error:  # a full disk, say: the caller decides what it means
            raise StorageError(f"inbox: {type(error).__name__}") from error


class MemoryInbox(Inbox):
    """For a bot with in-memory storage: nothing survives a stop, as with everything else."""

    def __init__(self) -> None:
        self.held: dict[int, dict[str, Any]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        for update_id, update in updates:
            self.held.setdefault(update_id, minimal(update))

    async def unhandled(self) -> list[tuple[int, dict[str, Any]]]:
        return sorted(self.held.items())

    async def handled(self, update_ids: Sequence[int]) -> None:
        for update_id in update_ids:
            self.held.pop(update_id, None)


def write_all(raw: sqlite3.Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """On SQLite's thread: every row in one transaction, or none."""
    with one_transaction(raw):
        raw.executemany(statement, rows)
