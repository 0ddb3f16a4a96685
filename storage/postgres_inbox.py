"""The inbox (``storage/inbox.py``) in the shared PostgreSQL database: an update one instance read
and did not handle is not lost with that instance's machine. Sealed like everything else, without
anyone's name."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.errors import StorageError
from storage.inbox import Inbox, minimal, opened
from storage.postgres_db import LIVE, PostgresDatabase

log = logging.getLogger("reachable.inbox")


class PostgresInbox(Inbox):
    """Uses the store's pool: opened and closed with the store."""

    shared = True

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        # Writes in the order they were asked for, as SQLite's one connection keeps them: an
        # update handled at once is never deleted before its insert has been written.
        self._writing = asyncio.Lock()

    async def open(self) -> None:
        self.database.pool  # noqa: B018 - raises if the store is not open

    async def close(self) -> None:
        return None

    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        keyring = self.database.keyring
        rows = [(i, keyring.encrypt(json.dumps(minimal(u), ensure_ascii=False).encode())) for i, u in updates]
        try:
            async with self._writing, self.database.pool.acquire() as connection, connection.transaction():
                await connection.executemany(
                    "INSERT INTO inbox (update_id, body, owner) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    [(*row, self.database.instance) for row in rows],
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise StorageError(f"inbox: {type(error).__name__}") from error

    async def unhandled(self) -> list[tuple[int, dict[str, Any]]]:
        """What this instance kept and has not handled, and what instances that stopped or died
        kept (it becomes this one's): never what a live instance is handling."""
        query = f"UPDATE inbox SET owner = $1 WHERE owner = $1 OR owner NOT IN ({LIVE}) RETURNING update_id, body"  # noqa: S608
        return await opened(self, self.database.keyring, await self.database._fetch(query, self.database.instance))

    async def handled(self, update_ids: Sequence[int]) -> None:
        if update_ids:
            try:
                async with self._writing:
                    query = "DELETE FROM inbox WHERE update_id = ANY($1::bigint[])"
                    await self.database._execute(query, list(update_ids))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                raise StorageError(f"inbox: {type(error).__name__}") from error
