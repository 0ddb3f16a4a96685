"""PostgreSQL through asyncpg: the row operations of ``storage/rules.py`` in SQL, for a service
that runs several instances on one database (``REACHABLE_DATABASE_URL=postgresql://…``; the
driver is the optional extra ``postgres``). The database, its pool, migrations and transactions
are in ``storage/postgres_db.py``; the staff accounts' rows in ``storage/postgres_accounts.py``.

What several instances share safely, by the database's own locks: an update is marked handled
by one transaction only (the second waits on the first's row, then finds it); a report read to be
changed is locked until the turn ends; a delivery is claimed by one instance
(``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from storage.base import ChatKey, Outgoing, Unsent
from storage.crypto import CodeHasher, Keyring, legacy_code_tag
from storage.matching import MatchingKey
from storage.postgres_accounts import PostgresAccounts
from storage.postgres_db import LIVE, PostgresDatabase
from storage.rows import CodeSeal, NamedRow, ReportRow, day_of, end_of_day, end_of_hour
from storage.rules import RuleStore
from storage.sealing import Sealing
from storage.sqlite_file import seal_expiring, unseal_expiring

REPORT = "summary, keep, send_to, allow_reply, status, created_on, expires_at, version"
# Claimed by one instance: rows another instance is claiming at this moment are skipped, and so
# are those a live instance tried and put off (its retry time is in its memory only).
CLAIM = (
    "WITH due AS (SELECT id FROM deliveries WHERE id = ANY($1::bigint[]) AND status = 'pending'"  # noqa: S608
    f" AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_by NOT IN ({LIVE})) FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries SET status = 'sending', attempts = attempts + 1, claimed_by = $2 FROM due"
    " WHERE deliveries.id = due.id"
    " RETURNING deliveries.id, reference, destination, kind, payload, attempts, maybe_sent"
)


class PostgresStore(PostgresAccounts, Sealing, RuleStore):
    def __init__(
        self,
        url: str,
        keyring: Keyring,
        *,
        draft_hours: int = 24,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        hasher: CodeHasher | None = None,
        matching: MatchingKey | None = None,
    ) -> None:
        PostgresDatabase.__init__(self)
        RuleStore.__init__(
            self, draft_hours=draft_hours, retention_days=retention_days, clock=clock, hasher=hasher, matching=matching
        )
        Sealing.__init__(self)
        self.url = url
        self.keyring = keyring

    async def close(self) -> None:
        await PostgresDatabase.close(self)
        self._stop_hashing()

    # ------------------------------------------------------------------ drafts, answers, updates
    async def load_draft(self, key: ChatKey) -> bytes | None:
        row = await self._fetchrow(
            "SELECT payload FROM drafts WHERE chat_key = $1 AND expires_at > $2", key.digest, self._now()
        )
        if row is None:
            return None
        expires, payload = unseal_expiring(self.keyring.decrypt(bytes(row[0])))
        return payload if expires > self._now() else None

    async def _save_draft(self, key: ChatKey, payload: bytes, expires: int) -> None:
        await self._execute(
            "INSERT INTO drafts (chat_key, payload, expires_at) VALUES ($1, $2, $3) ON CONFLICT (chat_key)"
            " DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at",
            key.digest,
            seal_expiring(self.keyring, payload, expires),
            end_of_day(expires),
        )

    async def _forget_draft(self, key: ChatKey) -> bool:
        return await self._execute("DELETE FROM drafts WHERE chat_key = $1", key.digest) > 0

    async def _keep_answer(self, key: ChatKey, answer_id: int, body: bytes, expires: int) -> None:
        await self._execute(
            "INSERT INTO answers (id, chat_key, payload, expires_at, owner) VALUES ($1, $2, $3, $4, $5)",
            answer_id,
            key.digest,
            seal_expiring(self.keyring, body, expires),
            end_of_day(expires),
            self.instance,
        )

    async def _mark_handled(self, update: tuple[str, int], now: int) -> bool:
        # A second instance marking the same update waits for the first's transaction; if it
        # commits, nothing is inserted here and the turn writes nothing.
        query = "INSERT INTO seen_updates (channel, update_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        return await self._execute(query, update[0], update[1], end_of_hour(now)) > 0

    async def seen(self, channel: str, update_id: int) -> bool:
        query = "SELECT 1 FROM seen_updates WHERE channel = $1 AND update_id = $2"
        return await self._fetchrow(query, channel, update_id) is not None

    async def recent_updates(self) -> list[tuple[str, int]]:
        return [(str(c), int(u)) for c, u in await self._fetch("SELECT channel, update_id FROM seen_updates")]

    async def unsent_answers(self, key: ChatKey | None = None) -> list[Unsent]:
        """This instance's answers not wholly out, and those of instances that stopped or died;
        never what a live instance is telling (see take_answer)."""
        query = (
            "SELECT id, chat_key, payload, sent FROM answers WHERE expires_at > $2"  # noqa: S608 - fixed text
            f" AND (owner = $1 OR owner NOT IN ({LIVE})) AND ($3::bytea IS NULL OR chat_key = $3) ORDER BY seq"
        )
        return self._unsent(await self._fetch(query, self.instance, self._now(), key.digest if key else None))

    async def stopped_answers(self) -> list[Unsent]:
        query = (
            "SELECT id, chat_key, payload, sent FROM answers WHERE expires_at > $1"  # noqa: S608 - fixed text
            f" AND owner NOT IN ({LIVE}) ORDER BY seq"
        )
        return self._unsent(await self._fetch(query, self._now()))

    def _unsent(self, rows: list[Any]) -> list[Unsent]:
        found = []
        for answer_id, chat_key, sealed, sent in rows:
            expires, body = unseal_expiring(self.keyring.decrypt(bytes(sealed)))
            if expires > self._now():
                found.append(Unsent(int(answer_id), ChatKey(bytes(chat_key)), body, int(sent)))
        return found

    async def take_answer(self, answer_id: int) -> bool:
        query = f"UPDATE answers SET owner = $1 WHERE id = $2 AND (owner = $1 OR owner NOT IN ({LIVE}))"  # noqa: S608
        return await self._execute(query, self.instance, answer_id) == 1

    async def told_elsewhere(self, key: ChatKey) -> bool:
        query = f"SELECT 1 FROM answers WHERE chat_key = $1 AND owner <> $2 AND owner IN ({LIVE}) LIMIT 1"  # noqa: S608
        return await self._fetchrow(query, key.digest, self.instance) is not None

    async def answer_sent(self, answer_id: int, parts: int) -> None:
        await self._execute("UPDATE answers SET sent = $1 WHERE id = $2", parts, answer_id)

    async def answered(self, answer_id: int, scrub: bool = False) -> None:
        await self._execute("DELETE FROM answers WHERE id = $1", answer_id)

    async def drop_answers(self, key: ChatKey) -> int:
        return await self._execute("DELETE FROM answers WHERE chat_key = $1", key.digest)

    # ------------------------------------------------------------------ message ids
    async def _remember_messages(self, rows: Sequence[tuple[ChatKey, int]], day: int) -> None:
        await self._executemany(
            "INSERT INTO chat_messages (chat_key, message_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(key.digest, message, day) for key, message in rows],
        )

    async def _take_messages(self, key: ChatKey) -> list[tuple[int, int]]:
        query = "DELETE FROM chat_messages WHERE chat_key = $1 RETURNING message_id, at"
        return [(int(m), int(at)) for m, at in await self._fetch(query, key.digest)]

    async def forget_messages(self, key: ChatKey) -> None:
        await self._execute("DELETE FROM chat_messages WHERE chat_key = $1", key.digest)

    # ------------------------------------------------------------------ reports and codes
    async def _code_candidates(self, code: str) -> list[tuple[str, str]]:
        query = "SELECT reference, code_hash FROM reports WHERE code_tag = ANY($1::bytea[])"
        rows = await self._fetch(query, [await self._code_tag(code), legacy_code_tag(code)])
        return [(str(reference), str(hashed)) for reference, hashed in rows]

    async def _insert_report(self, row: ReportRow, seal: CodeSeal) -> None:
        await self._execute(
            f"INSERT INTO reports (reference, code_tag, code_hash, {REPORT})"  # noqa: S608 - fixed names
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            row.reference,
            seal.tag,
            seal.hashed,
            self._seal(row.body),
            row.keep,
            row.send_to,
            row.allow_reply,
            row.status,
            row.created_on,
            row.expires_at,
            row.version,
        )

    async def _load_report(self, reference: str) -> ReportRow | None:
        found = await self._fetchrow(f"SELECT {REPORT} FROM reports WHERE reference = $1{self._locking}", reference)  # noqa: S608
        if found is None:
            return None
        sealed, keep, send_to, allow_reply, status, created_on, expires_at, version = found
        return ReportRow(
            reference, self._open(sealed), bool(keep), send_to, bool(allow_reply), str(status), str(created_on),
            int(expires_at), int(version),
        )  # fmt: skip

    async def _update_report(self, row: ReportRow) -> None:
        await self._execute(
            "UPDATE reports SET summary = $1, send_to = $2, allow_reply = $3, status = $4 WHERE reference = $5",
            self._seal(row.body),
            row.send_to,
            row.allow_reply,
            row.status,
            row.reference,
        )

    async def _delivery_lines(
        self, *, kind: str | None = None, status: str | None = None
    ) -> list[tuple[str, str, int]]:
        query = "SELECT reference, destination, attempts FROM deliveries WHERE ($1::text IS NULL OR kind = $1)"
        query += " AND ($2::text IS NULL OR status = $2) ORDER BY id DESC"
        return [(str(r), str(d), int(a)) for r, d, a in await self._fetch(query, kind, status)]

    async def _add_to_thread(self, reference: str, body: Mapping[str, Any], day: int) -> None:
        query = "INSERT INTO thread (reference, sealed, day) VALUES ($1, $2, $3)"
        await self._execute(query, reference, self._seal(body), day_of(day))

    async def _thread_of(self, reference: str) -> list[tuple[Mapping[str, Any], int]]:
        rows = await self._fetch("SELECT sealed, day FROM thread WHERE reference = $1 ORDER BY id", reference)
        return [(self._open(sealed), int(day)) for sealed, day in rows]

    async def _forget_thread(self, reference: str | None = None) -> None:
        if reference is not None:
            await self._execute("DELETE FROM thread WHERE reference = $1", reference)
        else:
            await self._execute("DELETE FROM thread WHERE reference NOT IN (SELECT reference FROM reports)")

    async def _references_sent_to(self, recipients: Sequence[str]) -> list[str]:
        query = "SELECT reference FROM reports WHERE send_to = ANY($1::text[]) ORDER BY seq DESC"
        return [str(r) for (r,) in await self._fetch(query, list(recipients))]

    async def _delete_report(self, reference: str) -> None:
        await self._execute("DELETE FROM reports WHERE reference = $1", reference)

    async def _tally(self, dimension: str, value: str, month: str, change: int) -> None:
        await self._execute(
            "INSERT INTO tallies (dimension, value, month, count) VALUES ($1, $2, $3, GREATEST($4::bigint, 0))"
            " ON CONFLICT (dimension, value, month) DO UPDATE SET count = GREATEST(tallies.count + $4::bigint, 0)",
            dimension,
            value,
            month,
            change,
        )

    async def _tallies(self, months: Sequence[str]) -> dict[tuple[str, str, str], int]:
        query = "SELECT dimension, value, month, count FROM tallies WHERE count > 0"
        rows = await (
            self._fetch(query + " AND month = ANY($1::text[])", list(months)) if months else self._fetch(query)
        )
        return {(str(d), str(v), str(m)): int(n) for d, v, m, n in rows}

    async def _audit(self, kind: str, reference: str | None, at: int) -> None:
        await self._execute("INSERT INTO audit (at, kind, reference) VALUES ($1, $2, $3)", day_of(at), kind, reference)

    async def _forget_audit(self, reference: str) -> None:
        await self._execute("DELETE FROM audit WHERE reference = $1", reference)

    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        return [(str(k), r) for k, r in await self._fetch("SELECT kind, reference FROM audit ORDER BY id")]

    # ------------------------------------------------------------------ the outbox
    async def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int:
        row = await self._fetchrow(
            "INSERT INTO deliveries (reference, destination, kind, payload, status, next_attempt, created_at)"
            " VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
            reference,
            destination,
            kind,
            self._seal(data),
            "held" if held else "pending",
            day_of(now),
        )
        return int(row[0]) if row is not None else 0

    async def _summary_deliveries(self, reference: str) -> list[tuple[str, str, bool]]:
        query = "SELECT destination, status, maybe_sent FROM deliveries WHERE reference = $1 AND kind = 'summary'"
        return [(str(d), str(s), bool(m)) for d, s, m in await self._fetch(query, reference)]

    async def _delete_deliveries(self, reference: str, statuses: Sequence[str]) -> list[int]:
        query = "DELETE FROM deliveries WHERE reference = $1 AND status = ANY($2::text[]) RETURNING id"
        return [int(row[0]) for row in await self._fetch(query, reference, list(statuses))]

    async def _blank_sent(self, reference: str) -> None:
        await self._execute(
            "UPDATE deliveries SET payload = $1 WHERE reference = $2 AND status = 'sent'", b"", reference
        )

    async def _mark_sent(self, delivery_id: int) -> tuple[str, str] | None:
        query = "UPDATE deliveries SET status = 'sent', payload = $1 WHERE id = $2 RETURNING reference, kind"
        row = await self._fetchrow(query, b"", delivery_id)
        return (str(row[0]), str(row[1])) if row is not None else None

    async def _set_delivery_status(self, delivery_id: int, status: str) -> None:
        await self._execute("UPDATE deliveries SET status = $1 WHERE id = $2", status, delivery_id)

    async def _untry_delivery(self, delivery_id: int) -> None:
        await self._execute(
            "UPDATE deliveries SET status = 'pending', attempts = attempts - 1, claimed_by = NULL"
            " WHERE id = $1 AND status = 'sending'",
            delivery_id,
        )

    async def _pending_ids(self) -> list[int]:
        return [int(row[0]) for row in await self._fetch("SELECT id FROM deliveries WHERE status = 'pending'")]

    async def claim_due(self, limit: int = 50, destinations: Sequence[str] | None = None) -> list[Outgoing]:
        """Deliveries due now, each claimed by one instance: rows another instance is claiming
        are skipped, not waited for; only to ``destinations`` (what this instance can send to)."""
        query = "SELECT id FROM deliveries WHERE status = 'pending' AND ($1::text[] IS NULL OR destination = ANY($1))"
        rows = await self._fetch(query + " ORDER BY id", list(destinations) if destinations is not None else None)
        due = [int(row[0]) for row in rows if self._due(int(row[0]))][:limit]
        if not due:
            return []
        claimed_rows = await self._fetch(CLAIM, due, self.instance)
        self._unschedule([int(row[0]) for row in claimed_rows])
        claimed = (
            Outgoing(int(i), str(r), str(d), str(k), self._open(p), int(a), bool(m))
            for i, r, d, k, p, a, m in claimed_rows
        )
        return sorted(claimed, key=lambda o: o.id)

    async def recover_in_flight(self) -> int:
        """Deliveries caught mid-send by an instance that has stopped or died: back in the queue,
        flagged as maybe sent. What a live instance is sending is left to it."""
        query = (
            "UPDATE deliveries SET status = 'pending', maybe_sent = true, claimed_by = NULL"  # noqa: S608 - fixed text
            f" WHERE status = 'sending' AND (claimed_by IS NULL OR claimed_by NOT IN ({LIVE}))"
        )
        return await self._execute(query)

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    # ------------------------------------------------------------------ relays
    async def _link_relay(self, reference: str, chat: str, key: bytes | None) -> None:
        await self._execute(
            "INSERT INTO relays (reference, chat, chat_key) VALUES ($1, $2, $3) ON CONFLICT (reference)"
            " DO UPDATE SET chat = excluded.chat, chat_key = excluded.chat_key, held = false",
            reference,
            self.keyring.encrypt(chat.encode()),
            key,
        )

    async def _unlink_relay(self, reference: str) -> bool:
        return await self._execute("DELETE FROM relays WHERE reference = $1", reference) > 0

    async def relay_chat(self, reference: str) -> str | None:
        row = await self._fetchrow("SELECT chat FROM relays WHERE reference = $1", reference)
        return self.keyring.decrypt(bytes(row[0])).decode() if row else None

    async def hold_relays(self, key: ChatKey) -> list[str]:
        """After a quick exit: nothing from staff reaches this chat until the person comes back
        with their code. The references whose relays are now held."""
        async with self._transaction(durable=False):
            held = await self._fetch(
                "UPDATE relays SET held = true WHERE chat_key = $1 RETURNING reference", key.digest
            )
            references = [str(row[0]) for row in held]
            await self._execute(
                "UPDATE deliveries SET status = 'held' WHERE reference = ANY($1::text[]) AND destination = 'person'"
                " AND status = 'pending'",
                references,
            )
        return references

    async def relay_held(self, reference: str) -> bool:
        row = await self._fetchrow("SELECT held FROM relays WHERE reference = $1", reference)
        return bool(row and row[0])

    async def release_held(self, reference: str, key: ChatKey, chat: str) -> int:
        """The person came back with their code (in ``chat``): what staff sent meanwhile goes to
        them now, and replies flow again. The number of messages released."""
        async with self._transaction(durable=False):
            await self._execute(
                "UPDATE relays SET held = false, chat = $1, chat_key = $2 WHERE reference = $3",
                self.keyring.encrypt(chat.encode()),
                key.digest,
                reference,
            )
            rows = await self._fetch(
                "SELECT id, payload FROM deliveries WHERE reference = $1 AND status = 'held' ORDER BY id FOR UPDATE",
                reference,
            )
            await self._executemany(
                "UPDATE deliveries SET status = 'pending', payload = $1 WHERE id = $2",
                [(self._seal({**self._open(sealed), "chat": chat}), delivery_id) for delivery_id, sealed in rows],
            )
        return len(rows)

    # ------------------------------------------------------------------ the bot's staff-chat messages
    async def _remember_staff(self, rows: Sequence[tuple[str, int, int, bool]], day: int) -> None:
        await self._executemany(
            "INSERT INTO staff_messages (reference, chat_id, message_id, shared, day) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT DO NOTHING",
            [(r, chat_id, m, shared, day) for r, chat_id, m, shared in rows],
        )

    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        query = "DELETE FROM staff_messages WHERE reference = $1 RETURNING chat_id, message_id, shared"
        return [(int(c), int(m), bool(s)) for c, m, s in await self._fetch(query, reference)]

    # ------------------------------------------------------------------ naming who did it
    async def _insert_identifier(self, reference: str, digest: bytes, body: Mapping[str, Any]) -> None:
        query = "INSERT INTO identifiers (reference, digest, sealed) VALUES ($1, $2, $3)"
        await self._execute(query, reference, digest, self._seal(body))

    async def _identifiers(self, digest: bytes) -> list[NamedRow]:
        # Within a turn, the digest is locked until it ends: two people naming the same person at
        # once, on two instances, are matched in turn (rows not yet written cannot be locked).
        if self._locking:
            await self._execute("SELECT pg_advisory_xact_lock($1)", int.from_bytes(digest[:8], "big", signed=True))
        query = "SELECT id, reference, sealed, told FROM identifiers WHERE digest = $1 ORDER BY id"
        return [NamedRow(int(i), str(r), self._open(s), bool(t)) for i, r, s, t in await self._fetch(query, digest)]

    async def _mark_told(self, ids: Sequence[int]) -> None:
        await self._execute("UPDATE identifiers SET told = true WHERE id = ANY($1::bigint[])", list(ids))

    async def _forget_identifiers(self, reference: str) -> bool:
        rows = await self._fetch("DELETE FROM identifiers WHERE reference = $1 RETURNING told", reference)
        return any(bool(row[0]) for row in rows)

    async def _count_identifiers(self, reference: str) -> int:
        row = await self._fetchrow("SELECT count(*) FROM identifiers WHERE reference = $1", reference)
        return int(row[0]) if row else 0

    async def _all_identifiers(self) -> list[NamedRow]:
        rows = await self._fetch(f"SELECT id, reference, sealed, told FROM identifiers ORDER BY id{self._locking}")  # noqa: S608
        return [NamedRow(int(i), str(r), self._open(s), bool(t)) for i, r, s, t in rows]

    async def _set_digest(self, row_id: int, digest: bytes) -> None:
        await self._execute("UPDATE identifiers SET digest = $1 WHERE id = $2", digest, row_id)

    async def _destinations_of(self, kind: str) -> list[str]:
        rows = await self._fetch("SELECT DISTINCT destination FROM deliveries WHERE kind = $1", kind)
        return sorted(str(row[0]) for row in rows)
