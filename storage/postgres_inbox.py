"""The inbox (``storage/inbox.py``) in the shared PostgreSQL database: an update one instance read
and did not handle is not lost with that instance's machine. Sealed like everything else, without
anyone's name."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.errors import KeyringError, StorageError
from storage.inbox import Inbox, minimal
from storage.postgres_db import PostgresDatabase

log = logging.getLogger("reachable.inbox")


class PostgresInbox(Inbox):
    """Uses the store's pool: opened and closed with the store."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    async def open(self) -> None:
        self.database.pool  # noqa: B018 - raises if the store is not open

    async def close(self) -> None:
        return None

    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        keyring = self.database.keyring
        rows = [(i, keyring.encrypt(json.dumps(minimal(u), ensure_ascii=False).encode())) for i, u in updates]
        try:
            async with self.database.pool.acquire() as connection, connection.transaction():
                await connection.executemany(
                    "INSERT INTO inbox (update_id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING", rows
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise StorageError(f"inbox: {type(error).__name__}") from error

    async def unhandled(self) -> list[tuple[int, dict[str, Any]]]:
        found, unreadable = [], []
        for update_id, body in await self.database._fetch("SELECT update_id, body FROM inbox ORDER BY update_id"):
            try:
                found.append((int(update_id), json.loads(self.database.keyring.decrypt(bytes(body)))))
            except (KeyringError, ValueError):
                unreadable.append(int(update_id))
        if unreadable:
            log.warning("%d update(s) left from before could not be read with the key: dropped", len(unreadable))
            await self.handled(unreadable)
        return found

    async def handled(self, update_ids: Sequence[int]) -> None:
        if update_ids:
            try:
                await self.database._execute("DELETE FROM inbox WHERE update_id = ANY($1::bigint[])", list(update_ids))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                raise StorageError(f"inbox: {type(error).__name__}") from error
