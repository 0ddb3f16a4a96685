"""An in-memory backend: the same contract as SQLite, nothing on disk.

For tests of the layers above storage, and the proof that the contract is a contract: the one
suite in ``tests/test_storage.py`` runs over every backend. The rules live in
``storage/rules.py``; here are only the row operations, over dictionaries. Content is held as
plain values (there is no "at rest" here); the secret code is still only kept as its slow hash.
A transaction works on a copy that replaces the state only when it ends without an error.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from storage.accounts import AuditLine, StaffAccount, StaffSession
from storage.base import ChatKey, Outgoing, Unsent
from storage.crypto import CodeHasher, code_tag
from storage.errors import StorageError
from storage.matching import MatchingKey
from storage.rows import DAY, CodeSeal, NamedRow, ReportRow, Tx
from storage.rules import RuleStore


@dataclass
class _Delivery:
    reference: str
    destination: str
    kind: str
    data: dict[str, Any]
    created: int
    status: str = "pending"
    attempts: int = 0
    maybe_sent: bool = False


@dataclass
class _Relay:
    chat: str
    key: bytes | None
    held: bool = False


@dataclass
class _Answer:
    key: bytes
    body: bytes
    expires: int
    sent: int = 0


@dataclass
class _State:
    drafts: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    answers: dict[int, _Answer] = field(default_factory=dict)  # in the order they were kept
    seen: dict[tuple[str, int], int] = field(default_factory=dict)
    reports: dict[str, tuple[ReportRow, CodeSeal]] = field(default_factory=dict)
    tallies: dict[tuple[str, str, str], int] = field(default_factory=dict)
    audit: list[tuple[int, str, str | None]] = field(default_factory=list)
    deliveries: dict[int, _Delivery] = field(default_factory=dict)
    relays: dict[str, _Relay] = field(default_factory=dict)
    messages: dict[bytes, dict[int, int]] = field(default_factory=dict)
    staff: dict[tuple[str, int], tuple[int, bool, int]] = field(default_factory=dict)
    named: dict[int, tuple[str, bytes, dict[str, Any], bool]] = field(default_factory=dict)
    accounts: dict[str, StaffAccount] = field(default_factory=dict)
    sessions: dict[bytes, StaffSession] = field(default_factory=dict)
    staff_audit: list[AuditLine] = field(default_factory=list)
    thread: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)


class MemoryStore(RuleStore):
    def __init__(
        self,
        *,
        draft_hours: int = 24,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        hasher: CodeHasher | None = None,
        matching: MatchingKey | None = None,
    ) -> None:
        super().__init__(
            draft_hours=draft_hours,
            retention_days=retention_days,
            clock=clock,
            hasher=hasher,
            matching=matching or MatchingKey.new(),
        )
        self._tag_secret = secrets.token_bytes(32)
        self._s = _State()
        self._ids = itertools.count(1)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def _transaction(self, durable: bool) -> AsyncIterator[Tx]:
        before = copy.deepcopy(self._s)
        try:
            yield Tx()
        except BaseException:
            self._s = before
            raise

    # ------------------------------------------------------------------ drafts, answers, updates
    async def load_draft(self, key: ChatKey) -> bytes | None:
        found = self._s.drafts.get(key.digest)
        return found[0] if found is not None and found[1] > self._now() else None

    async def _save_draft(self, key: ChatKey, payload: bytes, expires: int) -> None:
        self._s.drafts[key.digest] = (payload, expires)

    async def _forget_draft(self, key: ChatKey) -> bool:
        return self._s.drafts.pop(key.digest, None) is not None

    async def _keep_answer(self, key: ChatKey, answer_id: int, body: bytes, expires: int) -> None:
        if answer_id in self._s.answers:
            raise StorageError("UNIQUE constraint failed: answers.id")
        self._s.answers[answer_id] = _Answer(key.digest, body, expires)

    async def _mark_handled(self, update: tuple[str, int], now: int) -> bool:
        if update in self._s.seen:
            return False
        self._s.seen[update] = now
        return True

    async def seen(self, channel: str, update_id: int) -> bool:
        return (channel, update_id) in self._s.seen

    async def recent_updates(self) -> list[tuple[str, int]]:
        return list(self._s.seen)

    async def unsent_answers(self, key: ChatKey | None = None) -> list[Unsent]:
        now = self._now()
        return [
            Unsent(answer_id, ChatKey(found.key), found.body, found.sent)
            for answer_id, found in self._s.answers.items()
            if found.expires > now and (key is None or found.key == key.digest)
        ]

    async def answer_sent(self, answer_id: int, parts: int) -> None:
        found = self._s.answers.get(answer_id)
        if found is not None:
            found.sent = parts

    async def answered(self, answer_id: int, scrub: bool = False) -> None:
        self._s.answers.pop(answer_id, None)

    async def drop_answers(self, key: ChatKey) -> int:
        dropped = [i for i, found in self._s.answers.items() if found.key == key.digest]
        for answer_id in dropped:
            del self._s.answers[answer_id]
        return len(dropped)

    # ------------------------------------------------------------------ message ids
    async def _remember_messages(self, rows: Sequence[tuple[ChatKey, int]], day: int) -> None:
        for key, message in rows:
            self._s.messages.setdefault(key.digest, {}).setdefault(message, day)

    async def _take_messages(self, key: ChatKey) -> list[tuple[int, int]]:
        return list(self._s.messages.pop(key.digest, {}).items())

    async def forget_messages(self, key: ChatKey) -> None:
        self._s.messages.pop(key.digest, None)

    # ------------------------------------------------------------------ reports and codes
    async def _seal_code(self, code: str) -> CodeSeal:
        return CodeSeal(self.hasher.hash(code), code_tag(self._tag_secret, code))

    async def _code_candidates(self, code: str) -> list[tuple[str, str]]:
        tag = code_tag(self._tag_secret, code)
        return [(reference, seal.hashed) for reference, (_, seal) in self._s.reports.items() if seal.tag == tag]

    async def _verify_code(self, hashed: str, code: str) -> bool:
        return self.hasher.verify(hashed, code)

    async def _insert_report(self, row: ReportRow, seal: CodeSeal) -> None:
        if row.reference in self._s.reports:
            raise StorageError(f"UNIQUE constraint failed: report {row.reference} exists")
        self._s.reports[row.reference] = (replace(row, body=copy.deepcopy(dict(row.body))), seal)

    async def _load_report(self, reference: str) -> ReportRow | None:
        found = self._s.reports.get(reference)
        return replace(found[0], body=copy.deepcopy(dict(found[0].body))) if found is not None else None

    async def _update_report(self, row: ReportRow) -> None:
        _, seal = self._s.reports[row.reference]
        self._s.reports[row.reference] = (replace(row, body=copy.deepcopy(dict(row.body))), seal)

    async def _delete_report(self, reference: str) -> None:
        del self._s.reports[reference]

    async def _tally(self, dimension: str, value: str, month: str, change: int) -> None:
        key = (dimension, value, month)
        self._s.tallies[key] = max(self._s.tallies.get(key, 0) + change, 0)

    async def _tallies(self, months: Sequence[str]) -> dict[tuple[str, str, str], int]:
        return {k: v for k, v in self._s.tallies.items() if v > 0 and (not months or k[2] in months)}

    async def _audit(self, kind: str, reference: str | None, at: int) -> None:
        self._s.audit.append((at - at % DAY, kind, reference))

    async def _forget_audit(self, reference: str) -> None:
        self._s.audit = [a for a in self._s.audit if a[2] != reference]

    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        return [(kind, reference) for _, kind, reference in self._s.audit]

    async def ping(self) -> None:
        """Memory always answers."""

    async def reencrypt(self) -> dict[str, int]:
        """Nothing here is encrypted at rest: nothing to re-encrypt."""
        return {"drafts": 0, "reports": 0, "deliveries": 0, "relays": 0, "answers": 0}

    # ------------------------------------------------------------------ the outbox
    async def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int:
        delivery_id = next(self._ids)
        status = "held" if held else "pending"
        self._s.deliveries[delivery_id] = _Delivery(reference, destination, kind, dict(data), now - now % DAY, status)
        return delivery_id

    async def _summary_deliveries(self, reference: str) -> list[tuple[str, str, bool]]:
        return [
            (d.destination, d.status, d.maybe_sent)
            for d in self._s.deliveries.values()
            if d.reference == reference and d.kind == "summary"
        ]

    async def _delete_deliveries(self, reference: str, statuses: Sequence[str]) -> list[int]:
        gone = [i for i, d in self._s.deliveries.items() if d.reference == reference and d.status in statuses]
        for delivery_id in gone:
            del self._s.deliveries[delivery_id]
        return gone

    async def _blank_sent(self, reference: str) -> None:
        for item in self._s.deliveries.values():
            if item.reference == reference and item.status == "sent":
                item.data = {}

    async def _mark_sent(self, delivery_id: int) -> tuple[str, str] | None:
        item = self._s.deliveries.get(delivery_id)
        if item is None:
            return None
        item.status, item.data = "sent", {}
        return item.reference, item.kind

    async def _set_delivery_status(self, delivery_id: int, status: str) -> None:
        item = self._s.deliveries.get(delivery_id)
        if item is not None:
            item.status = status

    async def _untry_delivery(self, delivery_id: int) -> None:
        item = self._s.deliveries.get(delivery_id)
        if item is not None and item.status == "sending":
            item.status, item.attempts = "pending", item.attempts - 1

    async def _pending_ids(self) -> list[int]:
        return [i for i, d in self._s.deliveries.items() if d.status == "pending"]

    async def claim_due(self, limit: int = 50, destinations: Sequence[str] | None = None) -> list[Outgoing]:
        wanted = set(destinations) if destinations is not None else None
        due = [
            i for i, d in sorted(self._s.deliveries.items())
            if d.status == "pending" and self._due(i) and (wanted is None or d.destination in wanted)
        ][:limit]  # fmt: skip
        claimed = []
        for delivery_id in due:
            item = self._s.deliveries[delivery_id]
            item.status, item.attempts = "sending", item.attempts + 1
            self._not_before.pop(delivery_id, None)
            claimed.append(
                Outgoing(
                    delivery_id, item.reference, item.destination, item.kind, dict(item.data), item.attempts,
                    item.maybe_sent,
                )
            )  # fmt: skip
        return claimed

    async def recover_in_flight(self) -> int:
        recovered = [d for d in self._s.deliveries.values() if d.status == "sending"]
        for item in recovered:
            item.status, item.maybe_sent = "pending", True
        return len(recovered)

    async def delivery_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._s.deliveries.values():
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    # ------------------------------------------------------------------ relays
    async def _link_relay(self, reference: str, chat: str, key: bytes | None) -> None:
        self._s.relays[reference] = _Relay(chat, key)

    async def _unlink_relay(self, reference: str) -> bool:
        return self._s.relays.pop(reference, None) is not None

    async def relay_chat(self, reference: str) -> str | None:
        found = self._s.relays.get(reference)
        return found.chat if found is not None else None

    async def hold_relays(self, key: ChatKey) -> list[str]:
        held = [r for r, relay in self._s.relays.items() if relay.key == key.digest]
        for reference in held:
            self._s.relays[reference].held = True
            for item in self._s.deliveries.values():
                if item.reference == reference and item.destination == "person" and item.status == "pending":
                    item.status = "held"
        return held

    async def relay_held(self, reference: str) -> bool:
        found = self._s.relays.get(reference)
        return bool(found and found.held)

    async def release_held(self, reference: str, key: ChatKey, chat: str) -> int:
        if reference in self._s.relays:  # a relay closed meanwhile stays closed
            self._s.relays[reference] = _Relay(chat, key.digest)
        released = 0
        for item in self._s.deliveries.values():
            if item.reference == reference and item.status == "held":
                item.status, item.data = "pending", {**item.data, "chat": chat}
                released += 1
        return released

    # ------------------------------------------------------------------ staff-chat messages
    async def _remember_staff(self, rows: Sequence[tuple[str, int, int, bool]], day: int) -> None:
        for reference, chat_id, message, shared in rows:
            self._s.staff.setdefault((reference, message), (chat_id, shared, day))

    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        found = [(chat, m, shared) for (r, m), (chat, shared, _) in self._s.staff.items() if r == reference]
        self._s.staff = {k: v for k, v in self._s.staff.items() if k[0] != reference}
        return found

    # ------------------------------------------------------------------ naming who did it
    async def _insert_identifier(self, reference: str, digest: bytes, body: Mapping[str, Any]) -> None:
        self._s.named[next(self._ids)] = (reference, digest, dict(body), False)

    async def _identifiers(self, digest: bytes) -> list[NamedRow]:
        return [NamedRow(i, r, dict(b), t) for i, (r, d, b, t) in sorted(self._s.named.items()) if d == digest]

    async def _mark_told(self, ids: Sequence[int]) -> None:
        for row_id in ids:
            reference, digest, body, _ = self._s.named[row_id]
            self._s.named[row_id] = (reference, digest, body, True)

    async def _forget_identifiers(self, reference: str) -> bool:
        gone = [i for i, row in self._s.named.items() if row[0] == reference]
        told = any(self._s.named[i][3] for i in gone)
        for row_id in gone:
            del self._s.named[row_id]
        return told

    async def _count_identifiers(self, reference: str) -> int:
        return sum(1 for row in self._s.named.values() if row[0] == reference)

    async def _all_identifiers(self) -> list[NamedRow]:
        return [NamedRow(i, r, dict(b), t) for i, (r, _, b, t) in sorted(self._s.named.items())]

    async def _set_digest(self, row_id: int, digest: bytes) -> None:
        reference, _, body, told = self._s.named[row_id]
        self._s.named[row_id] = (reference, digest, body, told)

    async def _destinations_of(self, kind: str) -> list[str]:
        return sorted({d.destination for d in self._s.deliveries.values() if d.kind == kind})

    # ------------------------------------------------------------------ retention
    async def _purge_drafts(self, now: int) -> int:
        gone = [k for k, (_, expires) in self._s.drafts.items() if expires <= now]
        for digest in gone:
            del self._s.drafts[digest]
        return len(gone)

    async def _purge_answers(self, now: int) -> int:
        gone = [i for i, found in self._s.answers.items() if found.expires <= now]
        for answer_id in gone:
            del self._s.answers[answer_id]
        return len(gone)

    async def _purge_reports(self, now: int) -> int:
        gone = [r for r, (row, _) in self._s.reports.items() if row.expires_at <= now]
        for reference in gone:
            del self._s.reports[reference]
        self._s.relays = {r: v for r, v in self._s.relays.items() if r in self._s.reports}
        self._s.audit = [a for a in self._s.audit if a[2] is None or a[2] in self._s.reports]
        self._s.named = {i: row for i, row in self._s.named.items() if row[0] in self._s.reports}
        return len(gone)

    async def _purge_deliveries(self, before: int) -> list[int]:
        gone = [i for i, item in self._s.deliveries.items() if item.created <= before]
        for delivery_id in gone:
            del self._s.deliveries[delivery_id]
        return gone

    async def _delivery_lines(
        self, *, kind: str | None = None, status: str | None = None
    ) -> list[tuple[str, str, int]]:
        return [
            (d.reference, d.destination, d.attempts)
            for d in self._s.deliveries.values()
            if (kind is None or d.kind == kind) and (status is None or d.status == status)
        ]

    async def _add_to_thread(self, reference: str, body: Mapping[str, Any], day: int) -> None:
        self._s.thread.append((reference, dict(body), day))

    async def _thread_of(self, reference: str) -> list[tuple[Mapping[str, Any], int]]:
        return [(body, day) for r, body, day in self._s.thread if r == reference]

    async def _forget_thread(self, reference: str | None = None) -> None:
        keep = (lambda r: r != reference) if reference is not None else (lambda r: r in self._s.reports)
        self._s.thread = [line for line in self._s.thread if keep(line[0])]

    async def _references_sent_to(self, recipients: Sequence[str]) -> list[str]:
        found = [row for row, _ in self._s.reports.values() if row.send_to in recipients]
        return [row.reference for row in reversed(found)]

    # ------------------------------------------------------------------ staff accounts
    async def _insert_account(self, account: StaffAccount) -> bool:
        if account.name in self._s.accounts:
            return False
        self._s.accounts[account.name] = account
        return True

    async def _load_account(self, name: str) -> StaffAccount | None:
        return self._s.accounts.get(name)

    async def _update_account(self, account: StaffAccount) -> None:
        if account.name in self._s.accounts:
            self._s.accounts[account.name] = account

    async def _insert_session(self, session: StaffSession) -> None:
        self._s.sessions[session.token] = session

    async def _load_session(self, token: bytes) -> StaffSession | None:
        return self._s.sessions.get(token)

    async def _set_session_seen(self, token: bytes, seen: int) -> None:
        found = self._s.sessions.get(token)
        if found is not None:
            self._s.sessions[token] = replace(found, seen=seen)

    async def _delete_sessions(self, *, token: bytes | None = None, name: str | None = None) -> None:
        self._s.sessions = {t: s for t, s in self._s.sessions.items() if t != token and s.name != name}

    async def _insert_staff_audit(self, line: AuditLine) -> None:
        self._s.staff_audit.append(line)

    async def _staff_audit_lines(self) -> list[AuditLine]:
        return list(self._s.staff_audit)

    async def _purge_staff(self, *, audit_before: int, sessions_before: int) -> None:
        self._s.staff_audit = [line for line in self._s.staff_audit if line.at > audit_before]
        self._s.sessions = {t: s for t, s in self._s.sessions.items() if s.started > sessions_before}

    async def _purge_rest(self, *, staff_before: int, messages_before: int, updates_before: int) -> None:
        self._s.staff = {k: v for k, v in self._s.staff.items() if v[2] > staff_before}
        for held in self._s.messages.values():
            for message in [m for m, day in held.items() if day <= messages_before]:
                del held[message]
        self._s.seen = {u: at for u, at in self._s.seen.items() if at > updates_before}
