"""SQLite through aiosqlite: WAL mode, secure delete, versioned migrations; full sync for every
transaction that keeps or erases a consented report."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.base import ChatKey, NewReport, Outgoing, Purged, Store, StoredReport, SummaryData
from storage.crypto import CodeHasher, Keyring, code_tag
from storage.errors import MigrationError, StorageError

log = logging.getLogger("reachable.storage")
T = TypeVar("T")
DB_FILE = "reachable.sqlite3"
HOUR = 3600
DAY = 86400
# Telegram lets bots delete messages in private chats for 48 hours.
MESSAGE_LIFETIME = 48 * HOUR
# Telegram keeps undelivered updates for 24 hours; remembering handled ids longer is pointless.
UPDATE_MEMORY = 25 * HOUR


def migrations() -> list[tuple[int, str]]:
    """Every migration script, in order, as (version, SQL)."""
    folder = resources.files("storage") / "migrations"
    found = sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return found


class SQLiteStore(Store):
    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        *,
        draft_hours: int = 24,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        hasher: CodeHasher | None = None,
    ) -> None:
        self.path = path
        self.keyring = keyring
        self.draft_seconds = draft_hours * HOUR
        self.retention_seconds = retention_days * DAY
        self.clock = clock
        self.hasher = hasher or CodeHasher()
        self._db: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()
        # Argon2 gets threads of its own: a burst of reports must not fill asyncio's default
        # pool, which other work (aiohttp's address lookups) waits on.
        self._hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reachable-argon2")

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("the store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            for pragma in (
                "PRAGMA journal_mode=WAL",
                # Safe against a process crash in WAL mode; a turn that stores or erases a report
                # switches to FULL so that it survives power loss as well (see _durably).
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",
                "PRAGMA busy_timeout=5000",
            ):
                await self.db.execute(pragma)
            await self._migrate()
        except BaseException:
            # A refused or failed open must not leave the connection's thread running.
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._hashing.shutdown(wait=False)

    async def _hash(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._hashing, work, *args)

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
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

    def _now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------ drafts
    async def load_draft(self, key: ChatKey) -> bytes | None:
        async with self.db.execute(
            "SELECT payload FROM drafts WHERE chat_key = ? AND expires_at > ?",
            (key.digest, self._now()),
        ) as cursor:
            row = await cursor.fetchone()
        return self.keyring.decrypt(bytes(row[0])) if row else None

    # ------------------------------------------------------------------ turns
    async def commit_turn(
        self,
        key: ChatKey | None,
        *,
        draft: bytes | None = None,
        forget: bool = False,
        report: NewReport | None = None,
        destinations: tuple[str, ...] = (),
        relay_chat: str | None = None,
        outgoing: Sequence[tuple[str, str, str, Mapping[str, Any]]] = (),
        update: tuple[str, int] | None = None,
    ) -> bool:
        now = self._now()
        sealed_draft = self.keyring.encrypt(draft) if draft is not None else None
        prepared = await self._prepare_report(report, now) if report is not None else None
        async with self._write, self._durably(report is not None):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                if update is not None:
                    marked = await self.db.execute(
                        "INSERT OR IGNORE INTO seen_updates (channel, update_id, at) VALUES (?, ?, ?)",
                        (update[0], update[1], now),
                    )
                    if marked.rowcount == 0:
                        await self.db.execute("ROLLBACK")
                        return False
                if report is not None and prepared is not None:
                    await self._insert_report(report, prepared, destinations, now)
                    if report.allow_reply and relay_chat is not None and destinations:
                        await self.db.execute(
                            "INSERT INTO relays (reference, chat) VALUES (?, ?)",
                            (report.reference, self.keyring.encrypt(relay_chat.encode())),
                        )
                for reference, destination, kind, data in outgoing:
                    await self._enqueue(reference, destination, kind, data, now)
                if key is not None and sealed_draft is not None:
                    await self.db.execute(
                        "INSERT INTO drafts (chat_key, payload, expires_at) VALUES (?, ?, ?) ON CONFLICT (chat_key)"
                        " DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at",
                        (key.digest, sealed_draft, now + self.draft_seconds),
                    )
                elif key is not None and forget:
                    await self.db.execute("DELETE FROM drafts WHERE chat_key = ?", (key.digest,))
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
        return True

    async def seen(self, channel: str, update_id: int) -> bool:
        async with self.db.execute(
            "SELECT 1 FROM seen_updates WHERE channel = ? AND update_id = ?", (channel, update_id)
        ) as cursor:
            return await cursor.fetchone() is not None

    async def recent_updates(self) -> list[tuple[str, int]]:
        async with self.db.execute("SELECT channel, update_id FROM seen_updates") as cursor:
            return [(str(c), int(u)) for c, u in await cursor.fetchall()]

    # ------------------------------------------------------------------ message ids
    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        now = self._now()
        rows = [(key.digest, int(m), now) for key, ids in batch.items() for m in ids]
        if not rows:
            return
        async with self._write:
            written = await self.db.executemany(
                "INSERT OR IGNORE INTO chat_messages (chat_key, message_id, at) VALUES (?, ?, ?)", rows
            )
            await written.close()

    async def take_messages(self, key: ChatKey) -> list[int]:
        async with (
            self._write,
            self.db.execute(
                "DELETE FROM chat_messages WHERE chat_key = ? RETURNING message_id, at", (key.digest,)
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        young = self._now() - MESSAGE_LIFETIME
        return sorted(int(m) for m, at in rows if int(at) > young)

    # ------------------------------------------------------------------ reports
    async def _prepare_report(self, report: NewReport, now: int) -> tuple[bytes, str]:
        body = {
            "summary": {k: list(v) if isinstance(v, tuple) else v for k, v in report.summary.items()},
            "categories": list(report.categories),
            "consented_at": now,
        }
        sealed = self.keyring.encrypt(json.dumps(body, ensure_ascii=False).encode())
        code_hash = await self._hash(self.hasher.hash, report.code)
        return sealed, code_hash

    async def _insert_report(
        self, report: NewReport, prepared: tuple[bytes, str], destinations: tuple[str, ...], now: int
    ) -> None:
        sealed, code_hash = prepared
        # Rounded up to the hour so the expiry does not give away the exact time of consent.
        expires = math.ceil((now + self.retention_seconds) / HOUR) * HOUR
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        await self.db.execute(
            "INSERT INTO reports (reference, summary, code_tag, code_hash, keep, send_to, allow_reply,"
            " status, created_on, expires_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.reference,
                sealed,
                code_tag(report.code),
                code_hash,
                int(report.keep),
                report.send_to,
                int(report.allow_reply),
                "queued" if destinations else "kept",
                day.date().isoformat(),
                expires,
                report.questionnaire_version,
            ),
        )
        for destination in destinations:
            await self._enqueue(report.reference, destination, "summary", {}, now)
        if report.keep:
            for category in report.categories or ("unspecified",):
                await self.db.execute(
                    "INSERT INTO counters (category, month, count) VALUES (?, ?, 1) "
                    "ON CONFLICT (category, month) DO UPDATE SET count = count + 1",
                    (category, day.strftime("%Y-%m")),
                )
        await self._audit("report_stored", report.reference, now)

    async def get_report(self, reference: str) -> StoredReport | None:
        async with self.db.execute(
            "SELECT summary, keep, send_to, allow_reply, status, expires_at, version FROM reports WHERE reference = ?",
            (reference,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        body = json.loads(self.keyring.decrypt(bytes(row[0])))
        return StoredReport(
            reference=reference,
            summary=_summary(body["summary"]),
            consented_at=int(body["consented_at"]),
            keep=bool(row[1]),
            send_to=row[2],
            allow_reply=bool(row[3]),
            status=str(row[4]),
            expires_at=int(row[5]),
            questionnaire_version=int(row[6]),
        )

    async def _match_code(self, code: str) -> tuple[str, bytes, int, str] | None:
        """The report ``code`` unlocks: (reference, sealed summary, keep, created_on)."""
        async with self.db.execute(
            "SELECT reference, code_hash, summary, keep, created_on FROM reports WHERE code_tag = ?",
            (code_tag(code),),
        ) as cursor:
            candidates = list(await cursor.fetchall())
        for reference, hashed, sealed, keep, created_on in candidates:
            if await self._hash(self.hasher.verify, str(hashed), code):
                return str(reference), bytes(sealed), int(keep), str(created_on)
        return None

    async def find_by_code(self, code: str) -> StoredReport | None:
        found = await self._match_code(code)
        return await self.get_report(found[0]) if found else None

    async def erase_report(self, code: str) -> str | None:
        found = await self._match_code(code)
        if found is None:
            return None
        reference, sealed, keep, created_on = found
        categories = json.loads(self.keyring.decrypt(sealed)).get("categories", [])
        now = self._now()
        async with self._write, self._durably(True):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute("DELETE FROM reports WHERE reference = ?", (reference,))
                if keep:
                    # Withdrawing takes back consent for the statistics too.
                    for category in categories or ["unspecified"]:
                        await self.db.execute(
                            "UPDATE counters SET count = MAX(count - 1, 0) WHERE category = ? AND month = ?",
                            (category, created_on[:7]),
                        )
                # Copies already sent: ask each recipient to delete theirs. Unsent ones: never send.
                async with self.db.execute(
                    "SELECT DISTINCT destination FROM deliveries WHERE reference = ? AND kind = 'summary'"
                    " AND (status = 'sent' OR maybe_sent = 1 OR status = 'sending')",
                    (reference,),
                ) as cursor:
                    reached = [str(row[0]) for row in await cursor.fetchall()]
                await self.db.execute(
                    "DELETE FROM deliveries WHERE reference = ? AND status IN ('pending', 'failed')", (reference,)
                )
                await self.db.execute(
                    "UPDATE deliveries SET payload = ? WHERE reference = ? AND status = 'sent'", (b"", reference)
                )
                for destination in reached:
                    await self._enqueue(reference, destination, "withdrawn", {}, now)
                await self.db.execute("DELETE FROM relays WHERE reference = ?", (reference,))
                await self._audit("report_withdrawn", reference, now)
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self._checkpoint()
        return reference

    # ------------------------------------------------------------------ the outbox
    async def _enqueue(self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int) -> int:
        sealed = self.keyring.encrypt(json.dumps(dict(data), ensure_ascii=False).encode())
        cursor = await self.db.execute(
            "INSERT INTO deliveries (reference, destination, kind, payload, next_attempt, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (reference, destination, kind, sealed, now, now),
        )
        return int(cursor.lastrowid or 0)

    async def enqueue(self, reference: str, destination: str, kind: str, data: Mapping[str, Any]) -> int:
        async with self._write:
            return await self._enqueue(reference, destination, kind, data, self._now())

    async def claim_due(self, limit: int = 50) -> list[Outgoing]:
        async with (
            self._write,
            self.db.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?)"
                " RETURNING id, reference, destination, kind, payload, attempts, maybe_sent",
                (self.clock(), limit),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return sorted(
            (
                Outgoing(
                    id=int(row[0]),
                    reference=str(row[1]),
                    destination=str(row[2]),
                    kind=str(row[3]),
                    data=json.loads(self.keyring.decrypt(bytes(row[4]))),
                    attempts=int(row[5]),
                    maybe_sent=bool(row[6]),
                )
                for row in rows
            ),
            key=lambda o: o.id,
        )

    async def delivered(self, delivery_id: int) -> None:
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                async with self.db.execute(
                    "UPDATE deliveries SET status = 'sent', payload = ? WHERE id = ? RETURNING reference, kind",
                    (b"", delivery_id),
                ) as cursor:
                    row = await cursor.fetchone()
                if row is not None and row[1] == "summary":
                    await self._after_summary_sent(str(row[0]))
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    async def _after_summary_sent(self, reference: str) -> None:
        async with self.db.execute(
            "SELECT count(*) FROM deliveries WHERE reference = ? AND kind = 'summary' AND status != 'sent'",
            (reference,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and int(row[0]) > 0:
            return
        await self.db.execute(
            "UPDATE reports SET status = 'sent' WHERE reference = ? AND status = 'queued'", (reference,)
        )
        async with self.db.execute("SELECT keep, summary FROM reports WHERE reference = ?", (reference,)) as cursor:
            found = await cursor.fetchone()
        if found is not None and not found[0]:
            # Sent but not kept: the content goes once every copy is out; reference and consent stay.
            body = json.loads(self.keyring.decrypt(bytes(found[1])))
            emptied = {"summary": {}, "categories": [], "consented_at": body.get("consented_at", 0)}
            sealed = self.keyring.encrypt(json.dumps(emptied).encode())
            await self.db.execute("UPDATE reports SET summary = ? WHERE reference = ?", (sealed, reference))

    async def postpone(self, delivery_id: int, seconds: float, give_up: bool = False) -> None:
        async with self._write:
            await self.db.execute(
                "UPDATE deliveries SET status = ?, next_attempt = ? WHERE id = ?",
                ("failed" if give_up else "pending", self.clock() + seconds, delivery_id),
            )

    async def recover_in_flight(self) -> int:
        async with self._write:
            cursor = await self.db.execute(
                "UPDATE deliveries SET status = 'pending', maybe_sent = 1 WHERE status = 'sending'"
            )
        return int(cursor.rowcount)

    async def next_due_in(self) -> float | None:
        async with self.db.execute("SELECT min(next_attempt) FROM deliveries WHERE status = 'pending'") as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - self.clock())

    async def delivery_counts(self) -> dict[str, int]:
        async with self.db.execute("SELECT status, count(*) FROM deliveries GROUP BY status") as cursor:
            return {str(status): int(n) for status, n in await cursor.fetchall()}

    # ------------------------------------------------------------------ keys
    async def reencrypt(self) -> dict[str, int]:
        sealed_columns = (
            ("drafts", "chat_key", "payload"),
            ("reports", "reference", "summary"),
            ("deliveries", "id", "payload"),
            ("relays", "reference", "chat"),
        )
        counts: dict[str, int] = {}
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                for table, key, column in sealed_columns:
                    query = f"SELECT {key}, {column} FROM {table} WHERE length({column}) > 0"  # noqa: S608
                    async with self.db.execute(query) as cursor:
                        rows = list(await cursor.fetchall())
                    updated = await self.db.executemany(
                        f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608 - names are fixed above
                        [(self.keyring.rotate(bytes(sealed)), row_key) for row_key, sealed in rows],
                    )
                    await updated.close()
                    counts[table] = len(rows)
                await self._audit("keys_rotated", None, self._now())
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self._checkpoint()
            await (await self.db.execute("VACUUM")).close()  # old ciphertexts leave the free pages too
        return counts

    # ------------------------------------------------------------------ staff and relays
    async def set_status(self, reference: str, status: str) -> bool:
        async with self._write:
            cursor = await self.db.execute("UPDATE reports SET status = ? WHERE reference = ?", (status, reference))
            if cursor.rowcount:
                await self._audit(f"report_{status}", reference, self._now())
        return bool(cursor.rowcount)

    async def relay_chat(self, reference: str) -> str | None:
        async with self.db.execute("SELECT chat FROM relays WHERE reference = ?", (reference,)) as cursor:
            row = await cursor.fetchone()
        return self.keyring.decrypt(bytes(row[0])).decode() if row else None

    async def close_relay(self, reference: str) -> bool:
        async with self._write:
            cursor = await self.db.execute("DELETE FROM relays WHERE reference = ?", (reference,))
        return bool(cursor.rowcount)

    async def purge_expired(self) -> Purged:
        now = self._now()
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                drafts = await self.db.execute("DELETE FROM drafts WHERE expires_at <= ?", (now,))
                reports = await self.db.execute("DELETE FROM reports WHERE expires_at <= ?", (now,))
                await self.db.execute("DELETE FROM relays WHERE reference NOT IN (SELECT reference FROM reports)")
                await self.db.execute(
                    "DELETE FROM deliveries WHERE created_at <= ? AND status IN ('sent', 'failed')",
                    (now - self.retention_seconds,),
                )
                await self.db.execute("DELETE FROM chat_messages WHERE at <= ?", (now - MESSAGE_LIFETIME,))
                await self.db.execute("DELETE FROM seen_updates WHERE at <= ?", (now - UPDATE_MEMORY,))
                purged = Purged(drafts=drafts.rowcount, reports=reports.rowcount)
                if purged.reports:
                    await self._audit(f"reports_expired:{purged.reports}", None, now)
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            if purged.drafts or purged.reports:
                await self._checkpoint()
        return purged

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.db.execute("SELECT category, month, count FROM counters WHERE count > 0") as cursor:
            return {(str(c), str(m)): int(n) for c, m, n in await cursor.fetchall()}

    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        async with self.db.execute("SELECT kind, reference FROM audit ORDER BY id") as cursor:
            return [(str(k), r) for k, r in await cursor.fetchall()]

    @contextlib.asynccontextmanager
    async def _durably(self, needed: bool) -> AsyncIterator[None]:
        """Full sync for the transactions that keep or erase what a person consented to."""
        if not needed:
            yield
            return
        await (await self.db.execute("PRAGMA synchronous=FULL")).close()
        try:
            yield
        finally:
            await (await self.db.execute("PRAGMA synchronous=NORMAL")).close()

    async def _checkpoint(self) -> None:
        """Fold the write-ahead log into the database and empty it: erased data leaves the -wal."""
        async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
            await cursor.fetchall()

    async def _audit(self, kind: str, reference: str | None, at: int) -> None:
        await self.db.execute("INSERT INTO audit (at, kind, reference) VALUES (?, ?, ?)", (at, kind, reference))


def _summary(raw: dict[str, object]) -> SummaryData:
    return {k: tuple(map(str, v)) if isinstance(v, list) else str(v) for k, v in raw.items()}
