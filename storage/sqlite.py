"""SQLite through aiosqlite: WAL mode, secure delete, versioned migrations; full sync for every
transaction that keeps or erases a consented report.

Privacy at rest, as built: the folder is 0700 and the files 0600; report content, drafts,
answers not yet out, deliveries and relay links are encrypted (``storage/crypto.py``); no exact
time sits beside a reference or a chat key (days only: the exact expiry of a draft or an answer
is inside its ciphertext, and retries are scheduled in memory); the write-ahead log is emptied
(checkpoint, TRUNCATE) whenever content is forgotten (an answer holding a code included) and at
every purge, so earlier versions of a draft do not linger in it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import secrets
import stat
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.base import (
    Answer,
    ChatKey,
    ConsentChange,
    NewReport,
    Outgoing,
    Purged,
    Store,
    StoredReport,
    SummaryData,
    Unsent,
)
from storage.crypto import LEGACY, CodeHasher, Keyring, code_tag, legacy_code_tag, private_file, secure_folder
from storage.errors import Conflict, KeyringError, MigrationError, StorageError
from storage.hashing import CHECK, KEEP, HashingPool

log = logging.getLogger("reachable.storage")
T = TypeVar("T")
HOUR = 3600
DAY = 86400
# Telegram lets bots delete messages in private chats for 48 hours.
MESSAGE_LIFETIME = 48 * HOUR
# Telegram keeps undelivered updates for 24 hours; remembering handled ids longer is pointless.
UPDATE_MEMORY = 25 * HOUR
WORDS_KINDS = frozenset({"relay", "answer"})  # deliveries carrying someone's own words
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
)
WAL_LIMIT = 1 << 20  # bytes the write-ahead log may keep after a checkpoint


def day_of(moment: float) -> int:
    """The start of ``moment``'s day (UTC), in seconds: the only kind of time stored in clear."""
    return int(moment) - int(moment) % DAY


def end_of_hour(moment: float) -> int:
    return int(math.ceil(moment / HOUR) * HOUR)


def end_of_day(moment: float) -> int:
    return int(math.ceil(moment / DAY) * DAY)


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
        self._not_before: dict[int, float] = {}  # delivery retries, in memory only
        self._emptied = False
        # Argon2 gets threads of its own, one fewer than the machine has cores and at a lower
        # priority: a burst of reports must not take the CPU from everyone else's replies, nor
        # fill asyncio's default pool, which other work (aiohttp's address lookups) waits on.
        # Keeping a report goes ahead of checking codes (storage/hashing.py).
        self._hashing = HashingPool()
        self._tag_secret: bytes | None = None  # read (or made) when first needed

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("the store is not open")
        return self._db

    async def open(self) -> None:
        secure_folder(self.path.parent)
        # SQLite creates the -wal and -shm files with the database file's permissions.
        private_file(self.path)
        for file in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            if file.exists() and stat.S_IMODE(file.stat().st_mode) != 0o600:
                file.chmod(0o600)
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
                f"PRAGMA journal_size_limit={WAL_LIMIT}",
            ):
                await self.db.execute(pragma)
            await self._migrate()
            await self._check_key()
            await self._upgrade_tokens()
            await self._consent_days_only()
        except BaseException:
            # A refused or failed open must not leave the connection's thread running.
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._hashing.close()

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

    async def _consent_days_only(self) -> None:
        """Reports kept before consent times were stored as days carry the exact second inside
        their ciphertext: it becomes the day, and the old ciphertext leaves the file."""
        async with self.db.execute("SELECT reference, summary FROM reports") as cursor:
            rows = list(await cursor.fetchall())
        changed = []
        for reference, sealed in rows:
            body = json.loads(self.keyring.decrypt(bytes(sealed)))
            at = int(body.get("consented_at", 0))
            if at % DAY:
                body["consented_at"] = day_of(at)
                changed.append((self.keyring.encrypt(json.dumps(body, ensure_ascii=False).encode()), reference))
        if not changed:
            return
        async with self._write:
            await self.db.executemany("UPDATE reports SET summary = ? WHERE reference = ?", changed)
            await self._checkpoint()
        log.info("consent times of %d report(s) kept as days only", len(changed))

    async def _check_key(self) -> None:
        """Refuse to start with keys that open nothing here (a database restored with the wrong
        key): one stored token of each kind is opened, or the store says why not."""
        for table, _, column in SEALED:
            query = f"SELECT {column} FROM {table} WHERE length({column}) > 0 LIMIT 1"  # noqa: S608 - fixed names
            async with self.db.execute(query) as cursor:
                row = await cursor.fetchone()
            if row is None:
                continue
            try:
                self.keyring.decrypt(bytes(row[0]))
            except KeyringError as error:
                raise KeyringError(
                    "the encryption key does not open this database: was it restored without its key? Put the "
                    "right key back (REACHABLE_ENCRYPTION_KEY or the key file)"
                ) from error

    async def _code_tag(self, code: str) -> bytes:
        if self._tag_secret is None:
            self._tag_secret = await self._secret("code tag")
        return code_tag(self._tag_secret, code)

    async def _secret(self, name: str) -> bytes:
        """A random secret of this store, made on first use and kept sealed."""
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                async with self.db.execute("SELECT sealed FROM secrets WHERE name = ?", (name,)) as cursor:
                    row = await cursor.fetchone()
                if row is None:
                    secret = secrets.token_bytes(32)
                    await self.db.execute(
                        "INSERT INTO secrets (name, sealed) VALUES (?, ?)", (name, self.keyring.encrypt(secret))
                    )
                else:
                    secret = self.keyring.decrypt(bytes(row[0]))
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
        return secret

    async def _upgrade_tokens(self) -> None:
        """Tokens written before this version (Fernet, which carries its creation time in clear)
        are re-encrypted in the current format, drafts with their exact expiry inside, relays with
        their chat's keyed hash; then old ciphertext leaves the file."""
        upgraded = 0
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                for table, key, column in SEALED:
                    query = f"SELECT {key}, {column} FROM {table} WHERE substr({column}, 1, 6) = ?"  # noqa: S608
                    async with self.db.execute(query, (LEGACY,)) as cursor:
                        rows = list(await cursor.fetchall())
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
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            if upgraded:
                await self._checkpoint()
                await (await self.db.execute("VACUUM")).close()
                log.info("re-encrypted %d stored item(s) in the current format", upgraded)

    # ------------------------------------------------------------------ drafts
    async def load_draft(self, key: ChatKey) -> bytes | None:
        async with self.db.execute(
            "SELECT payload FROM drafts WHERE chat_key = ? AND expires_at > ?",
            (key.digest, self._now()),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        expires, payload = _unseal_draft(self.keyring.decrypt(bytes(row[0])))
        return payload if expires > self._now() else None

    def _seal_draft(self, payload: bytes, now: int) -> bytes:
        """Sealed with its exact expiry inside (a draft, or an answer not yet out)."""
        return self.keyring.encrypt(_DRAFT.pack(DRAFT_MARK, now + self.draft_seconds) + payload)

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
        erase: str | None = None,
        consent: ConsentChange | None = None,
        answer: Answer | None = None,
    ) -> bool:
        if key is None and (answer is not None or consent is not None):
            raise ValueError("an answer or a consent change belongs to a chat: give its key")
        now = self._now()
        sealed_draft = self._seal_draft(draft, now) if draft is not None else None
        told = (answer.id, self._seal_draft(answer.body, now)) if answer is not None else None
        prepared = await self._prepare_report(report, now) if report is not None else None
        # Full sync for what a person consented to: keeping, erasing, or a later choice.
        async with self._write, self._durably(report is not None or erase is not None or consent is not None):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                if update is not None and not await self._mark_handled(update, now):
                    await self.db.execute("ROLLBACK")
                    return False
                if erase is not None:
                    await self._erase_rows(erase, now)
                if consent is not None and key is not None:
                    await self._change_rows(consent, key, now)
                if report is not None and prepared is not None:
                    await self._insert_report(report, prepared, destinations, now)
                    if report.allow_reply and relay_chat is not None and destinations:
                        await self._link_relay(report.reference, relay_chat, key)
                for reference, destination, kind, data in outgoing:
                    await self._enqueue(reference, destination, kind, data, now)
                forgot = await self._chat_rows(key, told, sealed_draft, forget, now) if key is not None else False
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            if forgot or erase is not None:
                # Earlier versions of the draft, or the erased report, leave the write-ahead log.
                await self._checkpoint()
        return True

    async def _link_relay(self, reference: str, chat: str, key: ChatKey | None) -> None:
        await self.db.execute(
            "INSERT INTO relays (reference, chat, chat_key) VALUES (?, ?, ?)",
            (reference, self.keyring.encrypt(chat.encode()), key.digest if key is not None else None),
        )

    async def _chat_rows(
        self, key: ChatKey, told: tuple[int, bytes] | None, sealed_draft: bytes | None, forget: bool, now: int
    ) -> bool:
        """The chat's answer to keep until it is out, and its draft saved or forgotten, in the open
        transaction; whether a draft was forgotten."""
        expires = end_of_day(now + self.draft_seconds)
        if told is not None:
            await self.db.execute(
                "INSERT INTO answers (id, chat_key, payload, expires_at) VALUES (?, ?, ?, ?)",
                (told[0], key.digest, told[1], expires),
            )
        if sealed_draft is not None:
            await self.db.execute(
                "INSERT INTO drafts (chat_key, payload, expires_at) VALUES (?, ?, ?) ON CONFLICT (chat_key)"
                " DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at",
                (key.digest, sealed_draft, expires),
            )
        elif forget:
            deleted = await self.db.execute("DELETE FROM drafts WHERE chat_key = ?", (key.digest,))
            return deleted.rowcount > 0
        return False

    async def seen(self, channel: str, update_id: int) -> bool:
        async with self.db.execute(
            "SELECT 1 FROM seen_updates WHERE channel = ? AND update_id = ?", (channel, update_id)
        ) as cursor:
            return await cursor.fetchone() is not None

    async def recent_updates(self) -> list[tuple[str, int]]:
        async with self.db.execute("SELECT channel, update_id FROM seen_updates") as cursor:
            return [(str(c), int(u)) for c, u in await cursor.fetchall()]

    # ------------------------------------------------------------------ answers not yet out
    async def unsent_answers(self, key: ChatKey | None = None) -> list[Unsent]:
        query = "SELECT id, chat_key, payload, sent FROM answers WHERE expires_at > ?"
        arguments: tuple[Any, ...] = (self._now(),)
        if key is not None:
            query, arguments = query + " AND chat_key = ?", (*arguments, key.digest)
        async with self.db.execute(query + " ORDER BY rowid", arguments) as cursor:
            rows = list(await cursor.fetchall())
        found = []
        for answer_id, chat_key, sealed, sent in rows:
            expires, body = _unseal_draft(self.keyring.decrypt(bytes(sealed)))
            if expires > self._now():
                found.append(Unsent(int(answer_id), ChatKey(bytes(chat_key)), body, int(sent)))
        return found

    async def answer_sent(self, answer_id: int, parts: int) -> None:
        async with self._write:
            await self.db.execute("UPDATE answers SET sent = ? WHERE id = ?", (parts, answer_id))

    async def answered(self, answer_id: int, scrub: bool = False) -> None:
        async with self._write:
            deleted = await self.db.execute("DELETE FROM answers WHERE id = ?", (answer_id,))
            if scrub and deleted.rowcount:
                await self._checkpoint()  # it leaves the write-ahead log and the file

    async def drop_answers(self, key: ChatKey) -> int:
        async with self._write:
            deleted = await self.db.execute("DELETE FROM answers WHERE chat_key = ?", (key.digest,))
            if deleted.rowcount:
                await self._checkpoint()
        return int(deleted.rowcount)

    # ------------------------------------------------------------------ message ids
    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        today = day_of(self._now())
        rows = [(key.digest, int(m), today) for key, ids in batch.items() for m in ids]
        if not rows:
            return
        async with self._write:
            written = await self.db.executemany(
                "INSERT OR IGNORE INTO chat_messages (chat_key, message_id, at) VALUES (?, ?, ?)", rows
            )
            await written.close()

    async def take_messages(self, key: ChatKey) -> list[int]:
        async with self._write:
            async with self.db.execute(
                "DELETE FROM chat_messages WHERE chat_key = ? RETURNING message_id, at", (key.digest,)
            ) as cursor:
                rows = await cursor.fetchall()
            if rows:
                await self._checkpoint()
        # Days only are stored: a message from the oldest day kept may be past Telegram's 48 hours,
        # and then deleting it fails harmlessly.
        young = self._now() - MESSAGE_LIFETIME
        return sorted(int(m) for m, at in rows if int(at) + DAY > young)

    async def forget_messages(self, key: ChatKey) -> None:
        """Drop a conversation's message ids from storage (they stay in the channel's memory)."""
        async with self._write:
            deleted = await self.db.execute("DELETE FROM chat_messages WHERE chat_key = ?", (key.digest,))
            if deleted.rowcount:
                await self._checkpoint()  # no page naming the chat stays in the file or the log

    # ------------------------------------------------------------------ reports
    async def _prepare_report(self, report: NewReport, now: int) -> tuple[bytes, bytes, str]:
        body = {
            "summary": {k: list(v) if isinstance(v, tuple) else v for k, v in report.summary.items()},
            "categories": list(report.categories),
            "consented_at": day_of(now),  # the day only, even inside the ciphertext
        }
        sealed = self.keyring.encrypt(json.dumps(body, ensure_ascii=False).encode())
        code_hash = await self._hashing.run(KEEP, self.hasher.hash, report.code)
        return sealed, await self._code_tag(report.code), code_hash

    async def _insert_report(
        self, report: NewReport, prepared: tuple[bytes, bytes, str], destinations: tuple[str, ...], now: int
    ) -> None:
        sealed, tag, code_hash = prepared
        # Rounded up to the day so the expiry does not give away the time of consent.
        expires = end_of_day(now + self.retention_seconds)
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        await self.db.execute(
            "INSERT INTO reports (reference, summary, code_tag, code_hash, keep, send_to, allow_reply,"
            " status, created_on, expires_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.reference,
                sealed,
                tag,
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

    async def _match_code(self, code: str) -> str | None:
        """The reference of the report ``code`` unlocks."""
        # Reports kept before tags were keyed carry the old tag until retention deletes them.
        async with self.db.execute(
            "SELECT reference, code_hash FROM reports WHERE code_tag IN (?, ?)",
            (await self._code_tag(code), legacy_code_tag(code)),
        ) as cursor:
            candidates = list(await cursor.fetchall())
        for reference, hashed in candidates:
            if await self._hashing.run(CHECK, self.hasher.verify, str(hashed), code):
                return str(reference)
        return None

    async def find_by_code(self, code: str) -> StoredReport | None:
        found = await self._match_code(code)
        return await self.get_report(found) if found else None

    async def _erase_rows(self, reference: str, now: int) -> None:
        """Erase a report, in the open transaction; Conflict if it is gone."""
        async with self.db.execute(
            "SELECT summary, keep, created_on FROM reports WHERE reference = ?", (reference,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise Conflict("the report to erase is gone")
        categories = json.loads(self.keyring.decrypt(bytes(row[0]))).get("categories", [])
        await self.db.execute("DELETE FROM reports WHERE reference = ?", (reference,))
        if row[1]:
            # Withdrawing takes back consent for the statistics too.
            for category in categories or ["unspecified"]:
                await self.db.execute(
                    "UPDATE counters SET count = MAX(count - 1, 0) WHERE category = ? AND month = ?",
                    (category, str(row[2])[:7]),
                )
        # Copies already sent: ask each recipient to delete theirs. Unsent ones: never send.
        async with self.db.execute(
            "SELECT DISTINCT destination FROM deliveries WHERE reference = ? AND kind = 'summary'"
            " AND (status = 'sent' OR maybe_sent = 1 OR status = 'sending')",
            (reference,),
        ) as cursor:
            reached = [str(row[0]) for row in await cursor.fetchall()]
        async with self.db.execute(
            "DELETE FROM deliveries WHERE reference = ? AND status IN ('pending', 'failed', 'held') RETURNING id",
            (reference,),
        ) as cursor:
            self._unschedule(int(row[0]) for row in await cursor.fetchall())
        await self.db.execute(
            "UPDATE deliveries SET payload = ? WHERE reference = ? AND status = 'sent'", (b"", reference)
        )
        for destination in reached:
            await self._enqueue(reference, destination, "withdrawn", {}, now)
        await self.db.execute("DELETE FROM relays WHERE reference = ?", (reference,))
        # Nothing dated stays beside the reference: its audit rows go with it.
        await self.db.execute("DELETE FROM audit WHERE reference = ?", (reference,))
        await self._audit("report_withdrawn", None, now)

    async def _change_rows(self, change: ConsentChange, key: ChatKey, now: int) -> None:
        """A later choice about a kept report, in the open transaction, recorded like the first
        consent (with its time, inside the encrypted body): send it now, and/or allow or stop
        replies. Conflict if the report is gone, or sending was asked and it cannot be sent
        (nothing here sends to that recipient, it went already, or its content is gone)."""
        reference, send_to, allow_reply = change.reference, change.send_to, change.allow_reply
        if send_to is not None and not change.destinations:
            raise Conflict("nothing here sends to that recipient")
        async with self.db.execute("SELECT summary, send_to FROM reports WHERE reference = ?", (reference,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise Conflict("the report is gone")
        body = json.loads(self.keyring.decrypt(bytes(row[0])))
        if send_to is not None and (row[1] is not None or not body.get("summary")):
            raise Conflict("the report cannot be sent")
        chosen = {"at": now, "send_to": send_to, "allow_reply": allow_reply}
        body["consents"] = [*body.get("consents", []), chosen]
        sealed = self.keyring.encrypt(json.dumps(body, ensure_ascii=False).encode())
        await self.db.execute("UPDATE reports SET summary = ? WHERE reference = ?", (sealed, reference))
        if send_to is not None:
            await self.db.execute(
                "UPDATE reports SET send_to = ?, status = 'queued' WHERE reference = ?", (send_to, reference)
            )
            for destination in change.destinations:
                await self._enqueue(reference, destination, "summary", {}, now)
        if allow_reply is True:
            await self.db.execute(
                "INSERT INTO relays (reference, chat, chat_key) VALUES (?, ?, ?) ON CONFLICT (reference)"
                " DO UPDATE SET chat = excluded.chat, chat_key = excluded.chat_key, held = 0",
                (reference, self.keyring.encrypt(change.chat.encode()), key.digest),
            )
        elif allow_reply is False:
            await self.db.execute("DELETE FROM relays WHERE reference = ?", (reference,))
        if allow_reply is not None:
            await self.db.execute(
                "UPDATE reports SET allow_reply = ? WHERE reference = ?", (int(allow_reply), reference)
            )
        await self._audit("consent_changed", reference, now)

    # ------------------------------------------------------------------ the outbox
    async def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int:
        sealed = self.keyring.encrypt(json.dumps(dict(data), ensure_ascii=False).encode())
        cursor = await self.db.execute(
            "INSERT INTO deliveries (reference, destination, kind, payload, status, next_attempt, created_at)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            (reference, destination, kind, sealed, "held" if held else "pending", day_of(now)),
        )
        return int(cursor.lastrowid or 0)

    async def enqueue(
        self,
        reference: str,
        destination: str,
        kind: str,
        data: Mapping[str, Any],
        held: bool = False,
        update: tuple[str, int] | None = None,
    ) -> int | None:
        now = self._now()
        if update is None:
            async with self._write:
                return await self._enqueue(reference, destination, kind, data, now, held)
        # Staff are told their message is on its way as soon as this returns: it must outlive a
        # power cut, as the inbox's copy of their command is deleted next.
        async with self._write, self._durably(True):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                if not await self._mark_handled(update, now):
                    await self.db.execute("ROLLBACK")
                    return None
                queued = await self._enqueue(reference, destination, kind, data, now, held)
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            return queued

    async def _mark_handled(self, update: tuple[str, int], now: int) -> bool:
        """Mark an update handled, in the open transaction; False if it was handled before."""
        marked = await self.db.execute(
            "INSERT OR IGNORE INTO seen_updates (channel, update_id, at) VALUES (?, ?, ?)",
            (update[0], update[1], end_of_hour(now)),  # coarse: enough to forget it after a day
        )
        return marked.rowcount > 0

    def _unschedule(self, ids: Iterable[int]) -> None:
        """Deleted deliveries leave the schedule (SQLite may give their ids to new rows)."""
        for delivery_id in ids:
            self._not_before.pop(delivery_id, None)

    def _due(self, delivery_id: int) -> bool:
        not_before = self._not_before.get(delivery_id)
        return not_before is None or not_before <= self.clock()

    async def claim_due(self, limit: int = 50) -> list[Outgoing]:
        async with self._write:
            async with self.db.execute("SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id") as cursor:
                due = [int(row[0]) for row in await cursor.fetchall() if self._due(int(row[0]))][:limit]
            if not due:
                return []
            marks = ",".join("?" * len(due))
            async with self.db.execute(
                f"UPDATE deliveries SET status = 'sending', attempts = attempts + 1 WHERE id IN ({marks})"  # noqa: S608
                " RETURNING id, reference, destination, kind, payload, attempts, maybe_sent",
                due,
            ) as cursor:
                rows = await cursor.fetchall()
        for row in rows:
            self._not_before.pop(int(row[0]), None)
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
            if self._emptied or (row is not None and row[1] in WORDS_KINDS):
                # A summary sent and not kept, a staff message or a person's answer once it has
                # gone: its words must not linger in the write-ahead log either.
                self._emptied = False
                await self._checkpoint()

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
            self._emptied = True

    async def postpone(self, delivery_id: int, seconds: float, give_up: bool = False) -> None:
        """Try again in ``seconds`` (kept in memory: a restart tries at once), or give up."""
        async with self._write:
            await self.db.execute(
                "UPDATE deliveries SET status = ? WHERE id = ?", ("failed" if give_up else "pending", delivery_id)
            )
        if give_up:
            self._not_before.pop(delivery_id, None)
        else:
            self._not_before[delivery_id] = self.clock() + seconds

    async def recover_in_flight(self) -> int:
        async with self._write:
            cursor = await self.db.execute(
                "UPDATE deliveries SET status = 'pending', maybe_sent = 1 WHERE status = 'sending'"
            )
        return int(cursor.rowcount)

    async def next_due_in(self) -> float | None:
        async with self.db.execute("SELECT id FROM deliveries WHERE status = 'pending'") as cursor:
            pending = [int(row[0]) for row in await cursor.fetchall()]
        if not pending:
            return None
        now = self.clock()
        return max(0.0, min(self._not_before.get(i, now) for i in pending) - now)

    async def delivery_counts(self) -> dict[str, int]:
        async with self.db.execute("SELECT status, count(*) FROM deliveries GROUP BY status") as cursor:
            return {str(status): int(n) for status, n in await cursor.fetchall()}

    # ------------------------------------------------------------------ keys
    async def reencrypt(self) -> dict[str, int]:
        sealed_columns = SEALED
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

    async def tokens_not_under_newest(self) -> int:
        """How many stored tokens the newest key alone cannot open (rotate before pruning)."""
        stale = 0
        for table, _, column in SEALED:
            query = f"SELECT {column} FROM {table} WHERE length({column}) > 0"  # noqa: S608 - fixed names
            async with self.db.execute(query) as cursor:
                stale += sum(1 for (sealed,) in await cursor.fetchall() if not self.keyring.is_current(bytes(sealed)))
        return stale

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
                drafts = (await self.db.execute("DELETE FROM drafts WHERE expires_at <= ?", (now,))).rowcount
                drafts += await self._purge_of_today("drafts", "chat_key", now)
                answers = (await self.db.execute("DELETE FROM answers WHERE expires_at <= ?", (now,))).rowcount
                answers += await self._purge_of_today("answers", "id", now)
                reports = await self.db.execute("DELETE FROM reports WHERE expires_at <= ?", (now,))
                await self.db.execute("DELETE FROM relays WHERE reference NOT IN (SELECT reference FROM reports)")
                await self.db.execute(
                    "DELETE FROM audit WHERE reference IS NOT NULL AND reference NOT IN (SELECT reference FROM reports)"
                )
                # Everything queued goes at retention, sent or not.
                async with self.db.execute(
                    "DELETE FROM deliveries WHERE created_at <= ? RETURNING id", (now - self.retention_seconds,)
                ) as cursor:
                    self._unschedule(int(row[0]) for row in await cursor.fetchall())
                await self.db.execute("DELETE FROM staff_messages WHERE day <= ?", (now - self.retention_seconds,))
                await self.db.execute("DELETE FROM chat_messages WHERE at + ? <= ?", (DAY, now - MESSAGE_LIFETIME))
                await self.db.execute("DELETE FROM seen_updates WHERE at <= ?", (now - UPDATE_MEMORY,))
                purged = Purged(drafts=drafts, reports=reports.rowcount, answers=answers)
                if purged.reports:
                    await self._audit(f"reports_expired:{purged.reports}", None, now)
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self._checkpoint()  # and at every purge: nothing forgotten lingers in the log
        return purged

    async def _purge_of_today(self, table: str, key: str, now: int) -> int:
        """Drafts (or answers) whose day has not ended but whose exact expiry, inside the
        ciphertext, passed."""
        query = f"SELECT {key}, payload FROM {table} WHERE expires_at <= ?"  # noqa: S608 - fixed names
        async with self.db.execute(query, (now + DAY,)) as cursor:
            rows = list(await cursor.fetchall())
        gone = 0
        for row_key, sealed in rows:
            try:
                expires, _ = _unseal_draft(self.keyring.decrypt(bytes(sealed)))
            except StorageError:
                continue
            if expires <= now:
                await self.db.execute(f"DELETE FROM {table} WHERE {key} = ?", (row_key,))  # noqa: S608
                gone += 1
        return gone

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

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
        await self.db.execute("INSERT INTO audit (at, kind, reference) VALUES (?, ?, ?)", (day_of(at), kind, reference))

    # ------------------------------------------------------------------ a quick exit holds relays
    async def hold_relays(self, key: ChatKey) -> list[str]:
        """After a quick exit: nothing from staff reaches this chat until the person comes back
        with their code. The references whose relays are now held."""
        async with self._write:
            async with self.db.execute(
                "UPDATE relays SET held = 1 WHERE chat_key = ? RETURNING reference", (key.digest,)
            ) as cursor:
                references = [str(row[0]) for row in await cursor.fetchall()]
            for reference in references:
                await self.db.execute(
                    "UPDATE deliveries SET status = 'held' WHERE reference = ? AND destination = 'person'"
                    " AND status = 'pending'",
                    (reference,),
                )
        return references

    async def relay_held(self, reference: str) -> bool:
        async with self.db.execute("SELECT held FROM relays WHERE reference = ?", (reference,)) as cursor:
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def release_held(self, reference: str, key: ChatKey, chat: str) -> int:
        """The person came back with their code (in ``chat``): what staff sent meanwhile goes to
        them now, and replies flow again. The number of messages released."""
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(
                    "UPDATE relays SET held = 0, chat = ?, chat_key = ? WHERE reference = ?",
                    (self.keyring.encrypt(chat.encode()), key.digest, reference),
                )
                async with self.db.execute(
                    "SELECT id, payload FROM deliveries WHERE reference = ? AND status = 'held' ORDER BY id",
                    (reference,),
                ) as cursor:
                    rows = list(await cursor.fetchall())
                for delivery_id, sealed in rows:
                    data = json.loads(self.keyring.decrypt(bytes(sealed)))
                    data["chat"] = chat
                    await self.db.execute(
                        "UPDATE deliveries SET status = 'pending', payload = ? WHERE id = ?",
                        (self.keyring.encrypt(json.dumps(data, ensure_ascii=False).encode()), delivery_id),
                    )
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
        return len(rows)

    # ------------------------------------------------------------------ the bot's staff-chat messages
    async def remember_staff_messages(
        self, references: Sequence[str], chat_id: int, message_ids: Sequence[int]
    ) -> None:
        shared = int(len(set(references)) > 1)
        day = day_of(self._now())
        rows = [(r, chat_id, m, shared, day) for r in dict.fromkeys(references) for m in message_ids]
        async with self._write:
            written = await self.db.executemany(
                "INSERT OR IGNORE INTO staff_messages (reference, chat_id, message_id, shared, day)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            await written.close()

    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        """The bot's staff-chat messages holding ``reference`` as (chat, message, shared), forgotten."""
        async with (
            self._write,
            self.db.execute(
                "DELETE FROM staff_messages WHERE reference = ? RETURNING chat_id, message_id, shared", (reference,)
            ) as cursor,
        ):
            return [(int(c), int(m), bool(s)) for c, m, s in await cursor.fetchall()]


def _unseal_draft(plain: bytes) -> tuple[int, bytes]:
    if not plain.startswith(DRAFT_MARK) or len(plain) < _DRAFT.size:
        raise StorageError("a draft is not in the expected format")
    _, expires = _DRAFT.unpack_from(plain)
    return int(expires), plain[_DRAFT.size :]


def _summary(raw: dict[str, object]) -> SummaryData:
    return {k: tuple(map(str, v)) if isinstance(v, list) else str(v) for k, v in raw.items()}
