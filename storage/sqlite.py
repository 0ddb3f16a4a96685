"""SQLite through aiosqlite: the row operations of ``storage/rules.py`` in SQL; the file, its
migrations and transactions in ``storage/sqlite_file.py``.

Privacy at rest, as built: the folder is 0700 and the files 0600; report content, drafts,
answers not yet out, deliveries and relay links are encrypted (``storage/crypto.py``); no exact
time sits beside a reference or a chat key (days only: the exact expiry of a draft or an answer
is inside its ciphertext, and retries are scheduled in memory); the write-ahead log is emptied
(checkpoint, TRUNCATE) whenever content is forgotten (an answer holding a code included) and at
every purge, so earlier versions of a draft do not linger in it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from storage.base import ChatKey, Outgoing, Unsent
from storage.crypto import CodeHasher, Keyring, legacy_code_tag
from storage.matching import MatchingKey
from storage.rows import MESSAGE_LIFETIME, CodeSeal, NamedRow, ReportRow, day_of, end_of_day, end_of_hour
from storage.rules import RuleStore
from storage.sealing import Sealing
from storage.sqlite_accounts import SQLiteAccounts
from storage.sqlite_file import CHECKPOINT, SEALED, SQLiteFile, migrations, seal_expiring, unseal_expiring

__all__ = ["MESSAGE_LIFETIME", "SEALED", "SQLiteStore", "migrations"]


class SQLiteStore(SQLiteFile, SQLiteAccounts, Sealing, RuleStore):
    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        *,
        draft_hours: int = 24,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        hasher: CodeHasher | None = None,
        matching: MatchingKey | None = None,
    ) -> None:
        SQLiteFile.__init__(self)
        RuleStore.__init__(
            self, draft_hours=draft_hours, retention_days=retention_days, clock=clock, hasher=hasher, matching=matching
        )
        Sealing.__init__(self)
        self.path = path
        self.keyring = keyring

    async def close(self) -> None:
        await SQLiteFile.close(self)
        self._stop_hashing()

    # ------------------------------------------------------------------ drafts, answers, updates
    async def load_draft(self, key: ChatKey) -> bytes | None:
        row = await self._row(
            "SELECT payload FROM drafts WHERE chat_key = ? AND expires_at > ?", (key.digest, self._now())
        )
        if row is None:
            return None
        expires, payload = unseal_expiring(self.keyring.decrypt(bytes(row[0])))
        return payload if expires > self._now() else None

    async def _save_draft(self, key: ChatKey, payload: bytes, expires: int) -> None:
        await self.db.execute(
            "INSERT INTO drafts (chat_key, payload, expires_at) VALUES (?, ?, ?) ON CONFLICT (chat_key)"
            " DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at",
            (key.digest, seal_expiring(self.keyring, payload, expires), end_of_day(expires)),
        )

    async def _forget_draft(self, key: ChatKey) -> bool:
        deleted = await self.db.execute("DELETE FROM drafts WHERE chat_key = ?", (key.digest,))
        return deleted.rowcount > 0

    async def _keep_answer(self, key: ChatKey, answer_id: int, body: bytes, expires: int) -> None:
        await self.db.execute(
            "INSERT INTO answers (id, chat_key, payload, expires_at) VALUES (?, ?, ?, ?)",
            (answer_id, key.digest, seal_expiring(self.keyring, body, expires), end_of_day(expires)),
        )

    async def _mark_handled(self, update: tuple[str, int], now: int) -> bool:
        marked = await self.db.execute(
            "INSERT OR IGNORE INTO seen_updates (channel, update_id, at) VALUES (?, ?, ?)",
            (update[0], update[1], end_of_hour(now)),  # coarse: enough to forget it after a day
        )
        return marked.rowcount > 0

    async def seen(self, channel: str, update_id: int) -> bool:
        return (
            await self._row("SELECT 1 FROM seen_updates WHERE channel = ? AND update_id = ?", (channel, update_id))
            is not None
        )

    async def recent_updates(self) -> list[tuple[str, int]]:
        return [(str(c), int(u)) for c, u in await self._rows("SELECT channel, update_id FROM seen_updates")]

    async def unsent_answers(self, key: ChatKey | None = None) -> list[Unsent]:
        query = "SELECT id, chat_key, payload, sent FROM answers WHERE expires_at > ?"
        arguments: tuple[Any, ...] = (self._now(),)
        if key is not None:
            query, arguments = query + " AND chat_key = ?", (*arguments, key.digest)
        rows = await self._rows(query + " ORDER BY rowid", arguments)
        found = []
        for answer_id, chat_key, sealed, sent in rows:
            expires, body = unseal_expiring(self.keyring.decrypt(bytes(sealed)))
            if expires > self._now():
                found.append(Unsent(int(answer_id), ChatKey(bytes(chat_key)), body, int(sent)))
        return found

    # Each of these is one call on SQLite's thread (``_at_once``), never the write lock held
    # across a return to the event loop: they come with every message sent, and under load turns
    # queued behind that lock for hundreds of milliseconds while SQLite's thread stood idle.
    async def answer_sent(self, answer_id: int, parts: int) -> None:
        await self._at_once(self._note_parts_sent, answer_id, parts)

    @staticmethod
    def _note_parts_sent(raw: sqlite3.Connection, answer_id: int, parts: int) -> None:
        raw.execute("UPDATE answers SET sent = ? WHERE id = ?", (parts, answer_id))

    async def answered(self, answer_id: int, scrub: bool = False) -> None:
        await self._at_once(self._forget_answer, answer_id, scrub)

    @staticmethod
    def _forget_answer(raw: sqlite3.Connection, answer_id: int, scrub: bool) -> None:
        deleted = raw.execute("DELETE FROM answers WHERE id = ?", (answer_id,))
        if scrub and deleted.rowcount:
            raw.execute(CHECKPOINT).fetchall()  # it leaves the log and the file

    async def drop_answers(self, key: ChatKey) -> int:
        return await self._at_once(self._drop_answers, key.digest)

    @staticmethod
    def _drop_answers(raw: sqlite3.Connection, digest: bytes) -> int:
        deleted = raw.execute("DELETE FROM answers WHERE chat_key = ?", (digest,)).rowcount
        if deleted:
            raw.execute(CHECKPOINT).fetchall()
        return int(deleted)

    # ------------------------------------------------------------------ message ids
    async def _remember_messages(self, rows: Sequence[tuple[ChatKey, int]], day: int) -> None:
        await self._at_once(self._insert_messages, [(key.digest, message, day) for key, message in rows])

    @staticmethod
    def _insert_messages(raw: sqlite3.Connection, rows: list[tuple[bytes, int, int]]) -> None:
        raw.executemany("INSERT OR IGNORE INTO chat_messages (chat_key, message_id, at) VALUES (?, ?, ?)", rows)

    async def _take_messages(self, key: ChatKey) -> list[tuple[int, int]]:
        return await self._at_once(self._delete_messages, key.digest)

    @staticmethod
    def _delete_messages(raw: sqlite3.Connection, digest: bytes) -> list[tuple[int, int]]:
        query = "DELETE FROM chat_messages WHERE chat_key = ? RETURNING message_id, at"
        rows = [(int(m), int(at)) for m, at in raw.execute(query, (digest,)).fetchall()]
        if rows:
            raw.execute(CHECKPOINT).fetchall()
        return rows

    async def forget_messages(self, key: ChatKey) -> None:
        """Drop a conversation's message ids from storage (they stay in the channel's memory);
        no page naming the chat stays in the file or the log."""
        await self._at_once(self._delete_messages, key.digest)

    # ------------------------------------------------------------------ reports and codes
    async def _code_candidates(self, code: str) -> list[tuple[str, str]]:
        # Reports kept before tags were keyed carry the old tag until retention deletes them.
        query = "SELECT reference, code_hash FROM reports WHERE code_tag IN (?, ?)"
        rows = await self._rows(query, (await self._code_tag(code), legacy_code_tag(code)))
        return [(str(reference), str(hashed)) for reference, hashed in rows]

    async def _insert_report(self, row: ReportRow, seal: CodeSeal) -> None:
        await self.db.execute(
            "INSERT INTO reports (reference, summary, code_tag, code_hash, keep, send_to, allow_reply,"
            " status, created_on, expires_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.reference,
                self._seal(row.body),
                seal.tag,
                seal.hashed,
                int(row.keep),
                row.send_to,
                int(row.allow_reply),
                row.status,
                row.created_on,
                row.expires_at,
                row.version,
            ),
        )

    async def _load_report(self, reference: str) -> ReportRow | None:
        row = await self._row(
            "SELECT summary, keep, send_to, allow_reply, status, created_on, expires_at, version"
            " FROM reports WHERE reference = ?",
            (reference,),
        )
        if row is None:
            return None
        sealed, keep, send_to, allow_reply, status, created_on, expires_at, version = row
        return ReportRow(
            reference, self._open(sealed), bool(keep), send_to, bool(allow_reply), str(status), str(created_on),
            int(expires_at), int(version),
        )  # fmt: skip

    async def _update_report(self, row: ReportRow) -> None:
        await self.db.execute(
            "UPDATE reports SET summary = ?, send_to = ?, allow_reply = ?, status = ? WHERE reference = ?",
            (self._seal(row.body), row.send_to, int(row.allow_reply), row.status, row.reference),
        )

    async def _delivery_lines(
        self, *, kind: str | None = None, status: str | None = None
    ) -> list[tuple[str, str, int]]:
        query = "SELECT reference, destination, attempts FROM deliveries WHERE (? IS NULL OR kind = ?)"
        query += " AND (? IS NULL OR status = ?) ORDER BY id DESC"
        return [(str(r), str(d), int(a)) for r, d, a in await self._rows(query, (kind, kind, status, status))]

    async def _add_to_thread(self, reference: str, body: Mapping[str, Any], day: int) -> None:
        query = "INSERT INTO thread (reference, sealed, day) VALUES (?, ?, ?)"
        await self.db.execute(query, (reference, self._seal(body), day_of(day)))

    async def _thread_of(self, reference: str) -> list[tuple[Mapping[str, Any], int]]:
        query = "SELECT sealed, day FROM thread WHERE reference = ? ORDER BY id"
        return [(self._open(sealed), int(day)) for sealed, day in await self._rows(query, (reference,))]

    async def _forget_thread(self, reference: str | None = None) -> None:
        if reference is not None:
            await self.db.execute("DELETE FROM thread WHERE reference = ?", (reference,))
        else:
            await self.db.execute("DELETE FROM thread WHERE reference NOT IN (SELECT reference FROM reports)")

    async def _references_sent_to(self, recipients: Sequence[str]) -> list[str]:
        if not recipients:
            return []
        query = (
            f"SELECT reference FROM reports WHERE send_to IN ({','.join('?' * len(recipients))}) ORDER BY rowid DESC"  # noqa: S608
        )
        return [str(r) for (r,) in await self._rows(query, tuple(recipients))]

    async def _delete_report(self, reference: str) -> None:
        await self.db.execute("DELETE FROM reports WHERE reference = ?", (reference,))

    async def _tally(self, dimension: str, value: str, month: str, change: int) -> None:
        await self.db.execute(
            "INSERT INTO tallies (dimension, value, month, count) VALUES (?, ?, ?, MAX(?, 0)) "
            "ON CONFLICT (dimension, value, month) DO UPDATE SET count = MAX(count + ?, 0)",
            (dimension, value, month, change, change),
        )

    async def _tallies(self, months: Sequence[str]) -> dict[tuple[str, str, str], int]:
        query = "SELECT dimension, value, month, count FROM tallies WHERE count > 0"
        arguments: tuple[str, ...] = ()
        if months:
            query += f" AND month IN ({','.join('?' * len(months))})"
            arguments = tuple(months)
        return {(str(d), str(v), str(m)): int(n) for d, v, m, n in await self._rows(query, arguments)}

    async def _audit(self, kind: str, reference: str | None, at: int) -> None:
        await self.db.execute("INSERT INTO audit (at, kind, reference) VALUES (?, ?, ?)", (day_of(at), kind, reference))

    async def _forget_audit(self, reference: str) -> None:
        await self.db.execute("DELETE FROM audit WHERE reference = ?", (reference,))

    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        return [(str(k), r) for k, r in await self._rows("SELECT kind, reference FROM audit ORDER BY id")]

    async def ping(self) -> None:
        await self._row("SELECT 1")

    # ------------------------------------------------------------------ the outbox
    async def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int:
        cursor = await self.db.execute(
            "INSERT INTO deliveries (reference, destination, kind, payload, status, next_attempt, created_at)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            (reference, destination, kind, self._seal(data), "held" if held else "pending", day_of(now)),
        )
        return int(cursor.lastrowid or 0)

    async def _summary_deliveries(self, reference: str) -> list[tuple[str, str, bool]]:
        query = "SELECT destination, status, maybe_sent FROM deliveries WHERE reference = ? AND kind = 'summary'"
        return [(str(d), str(s), bool(m)) for d, s, m in await self._rows(query, (reference,))]

    async def _delete_deliveries(self, reference: str, statuses: Sequence[str]) -> list[int]:
        marks = ",".join("?" * len(statuses))
        query = f"DELETE FROM deliveries WHERE reference = ? AND status IN ({marks}) RETURNING id"  # noqa: S608
        return [int(row[0]) for row in await self._rows(query, (reference, *statuses))]

    async def _blank_sent(self, reference: str) -> None:
        await self.db.execute(
            "UPDATE deliveries SET payload = ? WHERE reference = ? AND status = 'sent'", (b"", reference)
        )

    async def _mark_sent(self, delivery_id: int) -> tuple[str, str] | None:
        row = await self._row(
            "UPDATE deliveries SET status = 'sent', payload = ? WHERE id = ? RETURNING reference, kind",
            (b"", delivery_id),
        )
        return (str(row[0]), str(row[1])) if row is not None else None

    async def _set_delivery_status(self, delivery_id: int, status: str) -> None:
        await self.db.execute("UPDATE deliveries SET status = ? WHERE id = ?", (status, delivery_id))

    async def _untry_delivery(self, delivery_id: int) -> None:
        await self.db.execute(
            "UPDATE deliveries SET status = 'pending', attempts = attempts - 1 WHERE id = ? AND status = 'sending'",
            (delivery_id,),
        )

    async def _pending_ids(self) -> list[int]:
        return [int(row[0]) for row in await self._rows("SELECT id FROM deliveries WHERE status = 'pending'")]

    async def claim_due(self, limit: int = 50, destinations: Sequence[str] | None = None) -> list[Outgoing]:
        wanted = set(destinations) if destinations is not None else None
        async with self._write:
            query = "SELECT id, destination FROM deliveries WHERE status = 'pending' ORDER BY id"
            pending = [(int(i), str(d)) for i, d in await self._rows(query)]
            due = [i for i, d in pending if self._due(i) and (wanted is None or d in wanted)][:limit]
            if not due:
                return []
            marks = ",".join("?" * len(due))
            rows = await self._rows(
                f"UPDATE deliveries SET status = 'sending', attempts = attempts + 1 WHERE id IN ({marks})"  # noqa: S608
                " RETURNING id, reference, destination, kind, payload, attempts, maybe_sent",
                due,
            )
        self._unschedule([int(row[0]) for row in rows])
        claimed = (
            Outgoing(int(i), str(r), str(d), str(k), self._open(p), int(a), bool(m)) for i, r, d, k, p, a, m in rows
        )
        return sorted(claimed, key=lambda o: o.id)

    async def recover_in_flight(self) -> int:
        async with self._write:
            cursor = await self.db.execute(
                "UPDATE deliveries SET status = 'pending', maybe_sent = 1 WHERE status = 'sending'"
            )
        return int(cursor.rowcount)

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._rows("SELECT status, count(*) FROM deliveries GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    # ------------------------------------------------------------------ relays
    async def _link_relay(self, reference: str, chat: str, key: bytes | None) -> None:
        await self.db.execute(
            "INSERT INTO relays (reference, chat, chat_key) VALUES (?, ?, ?) ON CONFLICT (reference)"
            " DO UPDATE SET chat = excluded.chat, chat_key = excluded.chat_key, held = 0",
            (reference, self.keyring.encrypt(chat.encode()), key),
        )

    async def _unlink_relay(self, reference: str) -> bool:
        cursor = await self.db.execute("DELETE FROM relays WHERE reference = ?", (reference,))
        return bool(cursor.rowcount)

    async def relay_chat(self, reference: str) -> str | None:
        row = await self._row("SELECT chat FROM relays WHERE reference = ?", (reference,))
        return self.keyring.decrypt(bytes(row[0])).decode() if row else None

    async def hold_relays(self, key: ChatKey) -> list[str]:
        """After a quick exit: nothing from staff reaches this chat until the person comes back
        with their code. The references whose relays are now held."""
        async with self._transaction(durable=False):
            query = "UPDATE relays SET held = 1 WHERE chat_key = ? RETURNING reference"
            references = [str(row[0]) for row in await self._rows(query, (key.digest,))]
            for reference in references:
                await self.db.execute(
                    "UPDATE deliveries SET status = 'held' WHERE reference = ? AND destination = 'person'"
                    " AND status = 'pending'",
                    (reference,),
                )
        return references

    async def relay_held(self, reference: str) -> bool:
        row = await self._row("SELECT held FROM relays WHERE reference = ?", (reference,))
        return bool(row and row[0])

    async def release_held(self, reference: str, key: ChatKey, chat: str) -> int:
        """The person came back with their code (in ``chat``): what staff sent meanwhile goes to
        them now, and replies flow again. The number of messages released."""
        async with self._transaction(durable=False):
            await self.db.execute(
                "UPDATE relays SET held = 0, chat = ?, chat_key = ? WHERE reference = ?",
                (self.keyring.encrypt(chat.encode()), key.digest, reference),
            )
            rows = await self._rows(
                "SELECT id, payload FROM deliveries WHERE reference = ? AND status = 'held' ORDER BY id", (reference,)
            )
            for delivery_id, sealed in rows:
                data = {**self._open(sealed), "chat": chat}
                await self.db.execute(
                    "UPDATE deliveries SET status = 'pending', payload = ? WHERE id = ?",
                    (self._seal(data), delivery_id),
                )
        return len(rows)

    # ------------------------------------------------------------------ the bot's staff-chat messages
    async def _remember_staff(self, rows: Sequence[tuple[str, int, int, bool]], day: int) -> None:
        async with self._write:
            written = await self.db.executemany(
                "INSERT OR IGNORE INTO staff_messages (reference, chat_id, message_id, shared, day)"
                " VALUES (?, ?, ?, ?, ?)",
                [(r, chat_id, m, int(shared), day) for r, chat_id, m, shared in rows],
            )
            await written.close()

    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        """The bot's staff-chat messages holding ``reference`` as (chat, message, shared), forgotten."""
        async with self._write:
            query = "DELETE FROM staff_messages WHERE reference = ? RETURNING chat_id, message_id, shared"
            return [(int(c), int(m), bool(s)) for c, m, s in await self._rows(query, (reference,))]

    # ------------------------------------------------------------------ naming who did it
    async def _insert_identifier(self, reference: str, digest: bytes, body: Mapping[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO identifiers (reference, digest, sealed) VALUES (?, ?, ?)",
            (reference, digest, self._seal(body)),
        )

    async def _identifiers(self, digest: bytes) -> list[NamedRow]:
        return [
            NamedRow(int(i), str(r), self._open(s), bool(t))
            for i, r, s, t in await self._rows(
                "SELECT id, reference, sealed, told FROM identifiers WHERE digest = ? ORDER BY id", (digest,)
            )
        ]

    async def _mark_told(self, ids: Sequence[int]) -> None:
        await self.db.executemany("UPDATE identifiers SET told = 1 WHERE id = ?", [(i,) for i in ids])

    async def _forget_identifiers(self, reference: str) -> bool:
        return any(
            bool(row[0])
            for row in await self._rows("DELETE FROM identifiers WHERE reference = ? RETURNING told", (reference,))
        )

    async def _count_identifiers(self, reference: str) -> int:
        row = await self._row("SELECT count(*) FROM identifiers WHERE reference = ?", (reference,))
        return int(row[0]) if row else 0

    async def _all_identifiers(self) -> list[NamedRow]:
        return [
            NamedRow(int(i), str(r), self._open(s), bool(t))
            for i, r, s, t in await self._rows("SELECT id, reference, sealed, told FROM identifiers ORDER BY id")
        ]

    async def _set_digest(self, row_id: int, digest: bytes) -> None:
        await self.db.execute("UPDATE identifiers SET digest = ? WHERE id = ?", (digest, row_id))

    async def _destinations_of(self, kind: str) -> list[str]:
        return sorted(
            str(row[0])
            for row in await self._rows("SELECT DISTINCT destination FROM deliveries WHERE kind = ?", (kind,))
        )
