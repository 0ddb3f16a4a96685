"""An in-memory backend: the same contract as SQLite, nothing on disk.

For tests of the layers above storage, and the proof that the contract is a contract: the one
suite in ``tests/test_storage.py`` runs over both backends. Content is held as plain values
(there is no "at rest" here); the secret code is still only kept as its slow hash.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.base import Answer, ChatKey, ConsentChange, NewReport, Outgoing, Purged, Store, StoredReport, Unsent
from storage.crypto import CodeHasher, code_tag
from storage.errors import Conflict, StorageError

HOUR = 3600
DAY = 86400
MESSAGE_LIFETIME = 48 * HOUR
UPDATE_MEMORY = 25 * HOUR


def _day(moment: float) -> int:
    return int(moment) - int(moment) % DAY


@dataclass
class _Report:
    body: dict[str, Any]
    code_hash: str
    tag: bytes
    keep: bool
    send_to: str | None
    allow_reply: bool
    status: str
    created_on: str
    expires: int
    version: int


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
    drafts: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)
    answers: dict[int, _Answer] = field(default_factory=dict)  # in the order they were kept
    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    reports: dict[str, _Report] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    audit: list[tuple[int, str, str | None]] = field(default_factory=list)
    deliveries: dict[int, _Delivery] = field(default_factory=dict)
    relays: dict[str, _Relay] = field(default_factory=dict)
    messages: dict[bytes, dict[int, int]] = field(default_factory=dict)
    staff: dict[tuple[str, int], tuple[int, bool, int]] = field(default_factory=dict)


class MemoryStore(Store):
    def __init__(
        self,
        *,
        draft_hours: int = 24,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        hasher: CodeHasher | None = None,
    ) -> None:
        self.draft_seconds = draft_hours * HOUR
        self.retention_seconds = retention_days * DAY
        self.clock = clock
        self.hasher = hasher or CodeHasher()
        self._tag_secret = secrets.token_bytes(32)
        self._s = _State()
        self._ids = itertools.count(1)
        self._not_before: dict[int, float] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------ drafts and turns
    async def load_draft(self, key: ChatKey) -> bytes | None:
        found = self._s.drafts.get(key.digest)
        return found[0] if found is not None and found[1] > self._now() else None

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
        if update is not None and update in self._s.seen:
            return False
        self._refuse(report, answer, erase, consent)  # as SQLite's transaction would: nothing written
        if update is not None:
            self._s.seen[update] = now
        if erase is not None:
            self._erase(erase, now)
        if consent is not None and key is not None:
            self._change(consent, key, now)
        if report is not None:
            code_hash = self.hasher.hash(report.code)
            self._insert_report(report, code_hash, destinations, now)
            if report.allow_reply and relay_chat is not None and destinations:
                self._s.relays[report.reference] = _Relay(relay_chat, key.digest if key else None)
        for reference, destination, kind, data in outgoing:
            self._enqueue(reference, destination, kind, data, now)
        if key is not None:
            self._chat_rows(key, answer, draft, forget, now)
        return True

    def _refuse(
        self, report: NewReport | None, answer: Answer | None, erase: str | None, consent: ConsentChange | None
    ) -> None:
        """Raise, before anything is written, where SQLite would roll the whole turn back."""
        if report is not None and report.reference in self._s.reports:
            raise StorageError(f"UNIQUE constraint failed: report {report.reference} exists")
        if answer is not None and answer.id in self._s.answers:
            raise StorageError("UNIQUE constraint failed: answers.id")
        if erase is not None and erase not in self._s.reports:
            raise Conflict("the report to erase is gone")
        if consent is not None:
            found = self._s.reports.get(consent.reference)
            if found is None:
                raise Conflict("the report is gone")
            if consent.send_to is not None and (not consent.destinations or found.send_to or not found.body["summary"]):
                raise Conflict("the report cannot be sent")

    def _chat_rows(self, key: ChatKey, answer: Answer | None, draft: bytes | None, forget: bool, now: int) -> None:
        if answer is not None:
            self._s.answers[answer.id] = _Answer(key.digest, answer.body, now + self.draft_seconds)
        if draft is not None:
            self._s.drafts[key.digest] = (draft, now + self.draft_seconds)
        elif forget:
            self._s.drafts.pop(key.digest, None)

    def _insert_report(self, report: NewReport, code_hash: str, destinations: tuple[str, ...], now: int) -> None:
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        body = {
            "summary": dict(report.summary),
            "categories": list(report.categories),
            "consented_at": now - now % DAY,  # the day only
        }
        self._s.reports[report.reference] = _Report(
            body=body,
            code_hash=code_hash,
            tag=code_tag(self._tag_secret, report.code),
            keep=report.keep,
            send_to=report.send_to,
            allow_reply=report.allow_reply,
            status="queued" if destinations else "kept",
            created_on=day.date().isoformat(),
            expires=int(math.ceil((now + self.retention_seconds) / DAY) * DAY),
            version=report.questionnaire_version,
        )
        for destination in destinations:
            self._enqueue(report.reference, destination, "summary", {}, now)
        if report.keep:
            for category in report.categories or ("unspecified",):
                counter = (category, day.strftime("%Y-%m"))
                self._s.counters[counter] = self._s.counters.get(counter, 0) + 1
        self._audit("report_stored", report.reference, now)

    async def seen(self, channel: str, update_id: int) -> bool:
        return (channel, update_id) in self._s.seen

    async def recent_updates(self) -> list[tuple[str, int]]:
        return list(self._s.seen)

    # ------------------------------------------------------------------ answers not yet out
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
    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        today = _day(self._now())
        for key, ids in batch.items():
            held = self._s.messages.setdefault(key.digest, {})
            for message in ids:
                held.setdefault(int(message), today)

    async def take_messages(self, key: ChatKey) -> list[int]:
        held = self._s.messages.pop(key.digest, {})
        young = self._now() - MESSAGE_LIFETIME
        return sorted(m for m, day in held.items() if day + DAY > young)

    async def forget_messages(self, key: ChatKey) -> None:
        self._s.messages.pop(key.digest, None)

    # ------------------------------------------------------------------ reports
    def _stored(self, reference: str, found: _Report) -> StoredReport:
        summary = {k: tuple(v) if isinstance(v, list | tuple) else str(v) for k, v in found.body["summary"].items()}
        return StoredReport(
            reference=reference,
            summary=summary,
            consented_at=int(found.body["consented_at"]),
            keep=found.keep,
            send_to=found.send_to,
            allow_reply=found.allow_reply,
            status=found.status,
            expires_at=found.expires,
            questionnaire_version=found.version,
        )

    async def get_report(self, reference: str) -> StoredReport | None:
        found = self._s.reports.get(reference)
        return self._stored(reference, found) if found is not None else None

    def _match(self, code: str) -> str | None:
        tag = code_tag(self._tag_secret, code)
        for reference, found in self._s.reports.items():
            if found.tag == tag and self.hasher.verify(found.code_hash, code):
                return reference
        return None

    async def find_by_code(self, code: str) -> StoredReport | None:
        reference = self._match(code)
        return await self.get_report(reference) if reference else None

    def _erase(self, reference: str, now: int) -> None:
        found = self._s.reports.pop(reference)
        if found.keep:
            for category in found.body.get("categories") or ["unspecified"]:
                counter = (category, found.created_on[:7])
                self._s.counters[counter] = max(self._s.counters.get(counter, 0) - 1, 0)
        reached = {
            d.destination
            for d in self._s.deliveries.values()
            if d.reference == reference and d.kind == "summary" and (d.status in ("sent", "sending") or d.maybe_sent)
        }
        for delivery_id, item in list(self._s.deliveries.items()):
            if item.reference != reference:
                continue
            if item.status in ("pending", "failed", "held"):
                del self._s.deliveries[delivery_id]
                self._not_before.pop(delivery_id, None)
            elif item.status == "sent":
                item.data = {}
        for destination in sorted(reached):
            self._enqueue(reference, destination, "withdrawn", {}, now)
        self._s.relays.pop(reference, None)
        self._s.audit = [a for a in self._s.audit if a[2] != reference]
        self._audit("report_withdrawn", None, now)

    def _change(self, change: ConsentChange, key: ChatKey, now: int) -> None:
        reference, send_to, allow_reply = change.reference, change.send_to, change.allow_reply
        found = self._s.reports[reference]
        found.body.setdefault("consents", []).append({"at": now, "send_to": send_to, "allow_reply": allow_reply})
        if send_to is not None:
            found.send_to, found.status = send_to, "queued"
            for destination in change.destinations:
                self._enqueue(reference, destination, "summary", {}, now)
        if allow_reply is True:
            self._s.relays[reference] = _Relay(change.chat, key.digest)
        elif allow_reply is False:
            self._s.relays.pop(reference, None)
        if allow_reply is not None:
            found.allow_reply = allow_reply
        self._audit("consent_changed", reference, now)

    async def set_status(self, reference: str, status: str) -> bool:
        found = self._s.reports.get(reference)
        if found is None:
            return False
        found.status = status
        self._audit(f"report_{status}", reference, self._now())
        return True

    async def ping(self) -> None:
        """Memory always answers."""

    async def counts(self) -> dict[tuple[str, str], int]:
        return {k: v for k, v in self._s.counters.items() if v > 0}

    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        return [(kind, reference) for _, kind, reference in self._s.audit]

    def _audit(self, kind: str, reference: str | None, at: int) -> None:
        self._s.audit.append((_day(at), kind, reference))

    async def purge_expired(self) -> Purged:
        now = self._now()
        drafts = [k for k, (_, expires) in self._s.drafts.items() if expires <= now]
        for digest in drafts:
            del self._s.drafts[digest]
        answers = [i for i, found in self._s.answers.items() if found.expires <= now]
        for answer_id in answers:
            del self._s.answers[answer_id]
        reports = [r for r, found in self._s.reports.items() if found.expires <= now]
        for reference in reports:
            del self._s.reports[reference]
        self._s.relays = {r: v for r, v in self._s.relays.items() if r in self._s.reports}
        self._s.audit = [a for a in self._s.audit if a[2] is None or a[2] in self._s.reports]
        for delivery_id, item in list(self._s.deliveries.items()):
            if item.created <= now - self.retention_seconds:
                del self._s.deliveries[delivery_id]
                self._not_before.pop(delivery_id, None)
        self._s.staff = {k: v for k, v in self._s.staff.items() if v[2] > now - self.retention_seconds}
        for held in self._s.messages.values():
            for message in [m for m, day in held.items() if day + DAY <= now - MESSAGE_LIFETIME]:
                del held[message]
        self._s.seen = {u: at for u, at in self._s.seen.items() if at > now - UPDATE_MEMORY}
        if reports:
            self._audit(f"reports_expired:{len(reports)}", None, now)
        return Purged(drafts=len(drafts), reports=len(reports), answers=len(answers))

    async def reencrypt(self) -> dict[str, int]:
        """Nothing here is encrypted at rest: nothing to re-encrypt."""
        return {"drafts": 0, "reports": 0, "deliveries": 0, "relays": 0, "answers": 0}

    # ------------------------------------------------------------------ the outbox
    def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int:
        delivery_id = next(self._ids)
        self._s.deliveries[delivery_id] = _Delivery(
            reference, destination, kind, dict(data), _day(now), "held" if held else "pending"
        )
        return delivery_id

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
        if update is not None:
            if update in self._s.seen:
                return None
            self._s.seen[update] = now
        return self._enqueue(reference, destination, kind, data, now, held)

    async def claim_due(self, limit: int = 50) -> list[Outgoing]:
        now = self.clock()
        due = [
            i
            for i, d in sorted(self._s.deliveries.items())
            if d.status == "pending" and self._not_before.get(i, 0) <= now
        ][:limit]
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

    async def delivered(self, delivery_id: int) -> None:
        item = self._s.deliveries.get(delivery_id)
        if item is None:
            return
        item.status, item.data = "sent", {}
        if item.kind != "summary":
            return
        others = [d for d in self._s.deliveries.values() if d.reference == item.reference and d.kind == "summary"]
        found = self._s.reports.get(item.reference)
        if found is None or any(d.status != "sent" for d in others):
            return
        if found.status == "queued":
            found.status = "sent"
        if not found.keep:  # sent but not kept: the content goes once every copy is out
            found.body = {"summary": {}, "categories": [], "consented_at": found.body.get("consented_at", 0)}

    async def postpone(self, delivery_id: int, seconds: float, give_up: bool = False) -> None:
        item = self._s.deliveries.get(delivery_id)
        if item is None:
            return
        item.status = "failed" if give_up else "pending"
        if give_up:
            self._not_before.pop(delivery_id, None)
        else:
            self._not_before[delivery_id] = self.clock() + seconds

    async def recover_in_flight(self) -> int:
        recovered = [d for d in self._s.deliveries.values() if d.status == "sending"]
        for item in recovered:
            item.status, item.maybe_sent = "pending", True
        return len(recovered)

    async def next_due_in(self) -> float | None:
        pending = [i for i, d in self._s.deliveries.items() if d.status == "pending"]
        if not pending:
            return None
        now = self.clock()
        return max(0.0, min(self._not_before.get(i, now) for i in pending) - now)

    async def delivery_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._s.deliveries.values():
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    # ------------------------------------------------------------------ relays
    async def relay_chat(self, reference: str) -> str | None:
        found = self._s.relays.get(reference)
        return found.chat if found is not None else None

    async def close_relay(self, reference: str) -> bool:
        return self._s.relays.pop(reference, None) is not None

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
        self._s.relays[reference] = _Relay(chat, key.digest)
        released = 0
        for item in self._s.deliveries.values():
            if item.reference == reference and item.status == "held":
                item.status, item.data = "pending", {**item.data, "chat": chat}
                released += 1
        return released

    # ------------------------------------------------------------------ staff-chat messages
    async def remember_staff_messages(
        self, references: Sequence[str], chat_id: int, message_ids: Sequence[int]
    ) -> None:
        shared = len(set(references)) > 1
        for reference in dict.fromkeys(references):
            for message in message_ids:
                self._s.staff.setdefault((reference, message), (chat_id, shared, _day(self._now())))

    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        found = [(chat, m, shared) for (r, m), (chat, shared, _) in self._s.staff.items() if r == reference]
        self._s.staff = {k: v for k, v in self._s.staff.items() if k[0] != reference}
        return found
