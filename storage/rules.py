"""The rules every backend keeps, written once above any SQL.

What a turn writes and in which order; what keeping a report writes (its expiry rounded to the
day, its status, the counters, one delivery per recipient, the audit line); what erasing it takes
back (the counters, unsent copies, the relay, every dated line beside its reference) and who is
asked to delete a copy; what a later consent may change; what a code unlocks; what a delivery
sent changes; what retention removes, and when.

A backend implements the row operations of ``storage/rows.py`` (``_insert_report``, ``_enqueue``,
...) in its own engine, each inside the transaction ``_transaction`` opens (or, for a turn,
``_in_transaction``: SQLite runs a turn's whole body on its own thread), and nothing else of
these rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from storage.accounts import SESSION_ABSOLUTE, AccountRules
from storage.base import ChatKey, ConsentChange, Naming, NewReport, Purged, Store, StoredReport, TurnWrites
from storage.crypto import CodeHasher
from storage.errors import Conflict, StorageError
from storage.matching import MatchingKey
from storage.rows import DAY, HOUR, MESSAGE_LIFETIME, UPDATE_MEMORY, CodeSeal, ReportRow, Rows, Tx, day_of, end_of_day

# What a kept report is counted under besides its harms and answers: (dimension, value) pairs the
# channel knows (which channel, which language).
Counted = tuple[tuple[str, str], ...]
WORDS_KINDS = frozenset({"relay", "answer"})  # deliveries carrying someone's own words
UNSENT = ("pending", "failed", "held")  # deliveries a withdrawal stops before they go


class RuleStore(AccountRules, Store, Rows):
    """A store that keeps the rules above; backends supply the row operations."""

    def __init__(
        self,
        *,
        draft_hours: int,
        retention_days: int,
        clock: Callable[[], float],
        hasher: CodeHasher | None,
        matching: MatchingKey | None = None,
    ) -> None:
        self.matching = matching
        self.draft_seconds = draft_hours * HOUR
        self.retention_seconds = retention_days * DAY
        self.clock = clock
        self.hasher = hasher or CodeHasher()
        self._not_before: dict[int, float] = {}  # delivery retries, in memory only

    def _now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------ one turn
    async def apply_turn(self, writes: TurnWrites) -> bool:
        now = self._now()
        report = writes.report
        seal = await self._seal_code(report.code) if report is not None else None

        async def turn(tx: Tx) -> bool:
            return await self._write_turn(tx, writes, seal, now)

        return await self._in_transaction(writes.durable, turn)

    async def _write_turn(self, tx: Tx, writes: TurnWrites, seal: CodeSeal | None, now: int) -> bool:
        """A turn's rows, inside its transaction; False if its update was handled before. Only
        the row operations are awaited here: SQLite runs all of it at once on its own thread,
        where anything else awaited is refused."""
        report = writes.report
        if writes.update is not None and not await self._mark_handled(writes.update, now):
            return False
        if writes.erase is not None:
            await self._erase(writes.erase, now)
            tx.scrub = True  # the erased report leaves the write-ahead log
        if writes.consent is not None and writes.key is not None:
            await self._change(writes.consent, writes.key, now)
        if report is not None and seal is not None:
            await self._keep(report, seal, writes.destinations, now, writes.counted)
            if report.allow_reply and writes.relay_chat is not None and writes.destinations:
                key = writes.key.digest if writes.key is not None else None
                await self._link_relay(report.reference, writes.relay_chat, key)
        if writes.naming is not None and writes.key is not None:
            await self._name(writes.naming, writes.key, now)
        if writes.unname is not None:
            await self._unname(writes.unname, now)
        await self._queue_outgoing(writes.outgoing, now)
        if writes.key is not None and await self._chat_rows(writes.key, writes, now):
            tx.scrub = True  # earlier versions of the draft leave the write-ahead log
        return True

    async def _queue_outgoing(self, outgoing: Sequence[tuple[str, str, str, Mapping[str, Any]]], now: int) -> None:
        """What a turn sends staff; the person's answer once into the case's conversation for
        the inbox, however many destinations it goes to."""
        threaded = set()
        for reference, destination, kind, data in outgoing:
            await self._enqueue(reference, destination, kind, data, now)
            if kind == "answer" and "text" in data and reference not in threaded:
                threaded.add(reference)
                await self._add_to_thread(reference, {"from": "person", "text": data["text"]}, now)

    async def _chat_rows(self, key: ChatKey, writes: TurnWrites, now: int) -> bool:
        """The chat's answer kept until it is out, and its draft saved or forgotten; whether a
        draft was forgotten."""
        expires = now + self.draft_seconds
        if writes.answer is not None:
            await self._keep_answer(key, writes.answer.id, writes.answer.body, expires)
        if writes.draft is not None:
            await self._save_draft(key, writes.draft, expires)
            return False
        return writes.forget and await self._forget_draft(key)

    async def _keep(
        self, report: NewReport, seal: CodeSeal, destinations: tuple[str, ...], now: int, counted: Counted = ()
    ) -> None:
        """Keeping a report: its content with the day of consent only, an expiry rounded up to the
        day (it must not give away the time), queued when it goes somewhere, one summary
        delivery per destination, the counters when kept, and the audit line."""
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        body = {
            "summary": {k: list(v) if isinstance(v, tuple) else v for k, v in report.summary.items()},
            "categories": list(report.categories),
            "consented_at": day_of(now),  # the day only, even inside the ciphertext
            # What the figures counted it under, so a withdrawal takes back exactly that.
            "counted": [list(pair) for pair in counted_under(report, counted)],
        }
        row = ReportRow(
            reference=report.reference,
            body=body,
            keep=report.keep,
            send_to=report.send_to,
            allow_reply=report.allow_reply,
            status="queued" if destinations else "kept",
            created_on=day.date().isoformat(),
            expires_at=end_of_day(now + self.retention_seconds),
            version=report.questionnaire_version,
        )
        await self._insert_report(row, seal)
        for destination in destinations:
            await self._enqueue(report.reference, destination, "summary", {}, now)
        if report.keep:  # consent for the figures too: counted only when kept
            for dimension, value in counted_under(report, counted):
                await self._tally(dimension, value, day.strftime("%Y-%m"), +1)
        await self._audit("report_stored", report.reference, now)

    async def _erase(self, reference: str, now: int) -> None:
        """Withdrawing a report: consent for the statistics goes too; copies already sent (or
        perhaps sent) are asked to be deleted, unsent ones never go; the relay and every dated
        line beside the reference go. Conflict if it is gone."""
        found = await self._load_report(reference)
        if found is None:
            raise Conflict("the report to erase is gone")
        await self._delete_report(reference)
        if found.keep:  # withdrawing takes back consent for the figures too, while they can change
            if same_quarter(found.created_on[:7], now):
                pairs = found.body.get("counted") or [("harm", c) for c in found.categories]
                for dimension, value in pairs:
                    await self._tally(str(dimension), str(value), found.created_on[:7], -1)
            await self._untally_matched(found, now)
            await self._tally("withdrawn", "reports", month_of(now), +1)
        reached = sorted(
            {
                d
                for d, status, maybe_sent in await self._summary_deliveries(reference)
                if status in ("sent", "sending") or maybe_sent
            }
        )
        self._unschedule(await self._delete_deliveries(reference, UNSENT))
        await self._blank_sent(reference)
        for destination in reached:
            await self._enqueue(reference, destination, "withdrawn", {}, now)
        await self._unlink_relay(reference)
        await self._forget_thread(reference)
        if await self._forget_identifiers(reference):
            # It was in a match: the matching contact is asked to delete what they were sent.
            for destination in await self._destinations_of("match"):
                await self._enqueue(reference, destination, "withdrawn", {}, now)
        await self._forget_audit(reference)
        await self._audit("report_withdrawn", None, now)

    async def _change(self, change: ConsentChange, key: ChatKey, now: int) -> None:
        """A later choice about a kept report, recorded like the first consent (with its time,
        inside the content): send it now, and/or allow or stop replies. Conflict if the report is
        gone, or sending was asked and it cannot be sent (nothing here sends to that recipient,
        it went already, or its content is gone)."""
        reference, send_to, allow_reply = change.reference, change.send_to, change.allow_reply
        if send_to is not None and not change.destinations:
            raise Conflict("nothing here sends to that recipient")
        found = await self._load_report(reference)
        if found is None:
            raise Conflict("the report is gone")
        if send_to is not None and (found.send_to is not None or not found.body.get("summary")):
            raise Conflict("the report cannot be sent")
        chosen = {"at": now, "send_to": send_to, "allow_reply": allow_reply}
        changed = replace(found, body={**found.body, "consents": [*found.body.get("consents", []), chosen]})
        if send_to is not None:
            changed = replace(changed, send_to=send_to, status="queued")
            counted = [tuple(pair) for pair in found.body.get("counted", [])]
            if found.keep and ("recipient", "none") in counted and same_quarter(found.created_on[:7], now):
                # The figures count who a report went to, also when it went later in the quarter.
                await self._tally("recipient", "none", found.created_on[:7], -1)
                await self._tally("recipient", send_to, found.created_on[:7], +1)
                moved = [("recipient", send_to) if pair == ("recipient", "none") else pair for pair in counted]
                changed = replace(changed, body={**changed.body, "counted": [list(pair) for pair in moved]})
            for destination in change.destinations:
                await self._enqueue(reference, destination, "summary", {}, now)
        if allow_reply is True:
            await self._link_relay(reference, change.chat, key.digest)
        elif allow_reply is False:
            await self._unlink_relay(reference)
        if allow_reply is not None:
            changed = replace(changed, allow_reply=allow_reply)
        await self._update_report(changed)
        await self._audit("consent_changed", reference, now)

    # ------------------------------------------------------------------ naming who did it
    async def _name(self, naming: Naming, key: ChatKey, now: int) -> None:
        """Keep the naming as a keyed digest (what was typed sealed beside it). When two or more
        different people have named the same person, the matching contact gets one notice about
        the namings not yet told, and each of those people who allowed replies is told through
        the relay. One person naming someone twice is not a match. Conflict if the report is gone."""
        if self.matching is None:
            raise StorageError("matching is not set up: no matching key")
        if await self._load_report(naming.reference) is None:
            raise Conflict("the report is gone")
        digest = self.matching.digest(naming.kind, naming.canonical)
        person = key.digest.hex()  # sealed: which chat named it, to tell one person from two
        body = {"kind": naming.kind, "canonical": naming.canonical, "shown": naming.shown, "person": person}
        await self._insert_identifier(naming.reference, digest, body)
        await self._audit("report_named", naming.reference, now)
        rows = await self._identifiers(digest)
        fresh = [row for row in rows if not row.told]
        told_people = {row.body["person"] for row in rows if row.told}
        new_people = {row.body["person"] for row in fresh} - told_people
        if len({row.body["person"] for row in rows}) < 2:
            return
        await self._mark_told([row.id for row in fresh])
        if not new_people:
            return  # someone already told named them again: nothing new for anyone
        fresh = [row for row in fresh if row.body["person"] in new_people]
        await self._count_matched(sorted({row.reference for row in fresh}), now)
        references = sorted({row.reference for row in rows})
        reports = []
        for reference in references:
            found = await self._load_report(reference)
            if found is not None:
                reports.append({"reference": reference, "harms": list(found.categories), "month": found.created_on[:7]})
        named = sorted({f"{row.body['kind']}: {row.body['shown']}" for row in rows})
        notice = {"references": references, "reports": reports, "named": named}
        for destination in naming.destinations:
            await self._enqueue(naming.reference, destination, "match", notice, now)
        for reference in sorted({row.reference for row in fresh}):
            chat = await self.relay_chat(reference)
            if chat is not None:
                held = await self.relay_held(reference)
                await self._enqueue(reference, "person", "matched", {"chat": chat}, now, held)

    async def _unname(self, reference: str, now: int) -> None:
        found = await self._load_report(reference)
        if found is None:
            raise Conflict("the report is gone")
        await self._forget_identifiers(reference)
        if await self._untally_matched(found, now):
            body = {k: v for k, v in found.body.items() if k != "matched_in"}
            await self._update_report(replace(found, body=body))
        await self._audit("report_unnamed", reference, now)

    async def _count_matched(self, references: Sequence[str], now: int) -> None:
        """Reports found to name the same person as another's: counted once each, and only a
        report kept (consent for the figures)."""
        for reference in references:
            found = await self._load_report(reference)
            if found is not None and found.keep and "matched_in" not in found.body:
                await self._update_report(replace(found, body={**found.body, "matched_in": month_of(now)}))
                await self._tally("matched", "reports", month_of(now), +1)

    async def _untally_matched(self, found: ReportRow, now: int) -> bool:
        """A report's name taken back, or the report withdrawn: out of the matched figure while
        its quarter can change."""
        month = found.body.get("matched_in")
        if not isinstance(month, str) or not same_quarter(month, now):
            return False
        await self._tally("matched", "reports", month, -1)
        return True

    async def named(self, reference: str) -> int:
        return await self._count_identifiers(reference)

    async def namings(self) -> list[tuple[str, str, str]]:
        """Every naming as (reference, kind, canonical form): for an export of digests under a
        network key, never written anywhere as it is."""
        return [(row.reference, row.body["kind"], row.body["canonical"]) for row in await self._all_identifiers()]

    async def rekey(self, key: MatchingKey) -> int:
        """Every digest again under ``key`` (a new matching key); how many."""
        async with self._transaction(durable=True):
            rows = await self._all_identifiers()
            for row in rows:
                await self._set_digest(row.id, key.digest(row.body["kind"], row.body["canonical"]))
        self.matching = key
        return len(rows)

    # ------------------------------------------------------------------ the figures
    async def counts(self) -> dict[tuple[str, str], int]:
        return {
            (value, month): n
            for (dimension, value, month), n in (await self._tallies(())).items()
            if dimension == "harm"
        }

    async def tallies(self, months: Sequence[str] = ()) -> dict[tuple[str, str, str], int]:
        return await self._tallies(months)

    async def tally(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Counts gathered in memory (screens shown, advice asked), written together: they carry
        no reference and no chat."""
        if counts:
            async with self._transaction(durable=False):
                for (dimension, value, month), n in counts.items():
                    await self._tally(dimension, value, month, n)

    # ------------------------------------------------------------------ reports and codes
    async def get_report(self, reference: str) -> StoredReport | None:
        found = await self._load_report(reference)
        return found.stored() if found is not None else None

    async def find_by_code(self, code: str) -> StoredReport | None:
        """The report ``code`` unlocks: the candidates its tag finds, each checked by its hash."""
        for reference, hashed in await self._code_candidates(code):
            if await self._verify_code(hashed, code):
                return await self.get_report(reference)
        return None

    async def cases(self, recipients: Sequence[str]) -> list[StoredReport]:
        """The reports sent to these recipients, newest first: what their inbox shows."""
        found = [await self.get_report(r) for r in await self._references_sent_to(recipients)]
        return [report for report in found if report is not None]

    async def withdrawn_for(self, recipients: Sequence[str]) -> list[str]:
        """References withdrawn after a copy reached these recipients (their notices, kept for
        the retention period like every delivery): what their inbox shows as withdrawn."""
        lines = await self._delivery_lines(kind="withdrawn")
        return sorted({r for r, destination, _ in lines if destination.partition(":")[0] in recipients})

    async def failed_for(self, recipients: Sequence[str]) -> list[tuple[str, str, int]]:
        """Deliveries given up on, to these recipients or to the people who sent them reports:
        (reference, destination, attempts)."""
        found = []
        for reference, destination, attempts in await self._delivery_lines(status="failed"):
            if destination == "person":
                report = await self._load_report(reference)
                if report is None or report.send_to not in recipients:
                    continue
            elif destination.partition(":")[0] not in recipients:
                continue
            found.append((reference, destination, attempts))
        return found

    async def set_status(self, reference: str, status: str) -> bool:
        async with self._transaction(durable=False):
            found = await self._load_report(reference)
            if found is None:
                return False
            await self._update_report(replace(found, status=status))
            await self._audit(f"report_{status}", reference, self._now())
        return True

    # ------------------------------------------------------------------ the outbox
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
        # Staff are told their message is on its way as soon as this returns: it must outlive a
        # power cut, as the inbox's copy of their command is deleted next.
        async with self._transaction(durable=update is not None):
            if update is not None and not await self._mark_handled(update, now):
                return None
            if kind == "relay" and "text" in data:  # the team's message, for its inbox
                await self._add_to_thread(reference, {"from": "team", "text": data["text"]}, now)
            return await self._enqueue(reference, destination, kind, data, now, held)

    async def delivered(self, delivery_id: int) -> None:
        """Sent: its content goes. A summary: once every copy is out the report is sent, and one
        not kept loses its content (reference and consent stay)."""
        async with self._transaction(durable=False) as tx:
            sent = await self._mark_sent(delivery_id)
            if sent is None:
                return
            reference, kind = sent
            # A staff message or a person's answer must not linger in the write-ahead log either.
            tx.scrub = kind in WORDS_KINDS
            if kind != "summary" or any(s != "sent" for _, s, _ in await self._summary_deliveries(reference)):
                return
            found = await self._load_report(reference)
            if found is None:
                return
            changed = replace(found, status="sent") if found.status == "queued" else found
            if not found.keep:
                emptied = {"summary": {}, "categories": [], "consented_at": found.body.get("consented_at", 0)}
                changed = replace(changed, body=emptied)
                tx.scrub = True
            if changed != found:
                await self._update_report(changed)

    async def postpone(self, delivery_id: int, seconds: float, give_up: bool = False) -> None:
        """Try again in ``seconds`` (kept in memory: a restart tries at once), or give up."""
        async with self._transaction(durable=False):
            await self._set_delivery_status(delivery_id, "failed" if give_up else "pending")
        if give_up:
            self._not_before.pop(delivery_id, None)
        else:
            self._not_before[delivery_id] = self.clock() + seconds

    async def release(self, delivery_id: int, seconds: float) -> None:
        async with self._transaction(durable=False):
            await self._untry_delivery(delivery_id)
        self._not_before[delivery_id] = self.clock() + seconds

    async def next_due_in(self) -> float | None:
        pending = await self._pending_ids()
        if not pending:
            return None
        now = self.clock()
        return max(0.0, min(self._not_before.get(i, now) for i in pending) - now)

    def _due(self, delivery_id: int) -> bool:
        not_before = self._not_before.get(delivery_id)
        return not_before is None or not_before <= self.clock()

    def _unschedule(self, ids: Sequence[int]) -> None:
        """Deleted deliveries leave the schedule (a backend may give their ids to new rows)."""
        for delivery_id in ids:
            self._not_before.pop(delivery_id, None)

    # ------------------------------------------------------------------ relays
    async def close_relay(self, reference: str) -> bool:
        """Closing a case: the link to the person and the conversation kept for the inbox go."""
        async with self._transaction(durable=False) as tx:
            await self._forget_thread(reference)
            tx.scrub = True
            return await self._unlink_relay(reference)

    async def thread(self, reference: str) -> list[tuple[str, str, int]]:
        """A case's conversation while it is open: (who: "team" or "person", text, day)."""
        return [(str(body["from"]), str(body["text"]), day) for body, day in await self._thread_of(reference)]

    # ------------------------------------------------------------------ retention
    async def purge_expired(self) -> Purged:
        """Drafts and answers past their exact expiry, reports past theirs (with their relays and
        dated lines), every delivery and staff-chat message at retention, message ids past
        Telegram's 48 hours, handled updates past Telegram's day; counters stay."""
        now = self._now()
        retained = now - self.retention_seconds
        async with self._transaction(durable=False) as tx:
            drafts, answers = await self._purge_drafts(now), await self._purge_answers(now)
            reports = await self._purge_reports(now)
            await self._forget_thread()  # the conversations of reports gone
            self._unschedule(await self._purge_deliveries(retained))
            await self._purge_rest(
                staff_before=retained, messages_before=now - MESSAGE_LIFETIME - DAY, updates_before=now - UPDATE_MEMORY
            )
            await self._purge_staff(audit_before=retained, sessions_before=now - SESSION_ABSOLUTE)
            if reports:
                await self._audit(f"reports_expired:{reports}", None, now)
            tx.scrub = True  # at every purge: nothing forgotten lingers
        return Purged(drafts=drafts, reports=reports, answers=answers)

    # ------------------------------------------------------------------ message ids
    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        rows = [(key, int(m)) for key, ids in batch.items() for m in ids]
        if rows:
            await self._remember_messages(rows, day_of(self._now()))

    async def take_messages(self, key: ChatKey) -> list[int]:
        # Days only are stored: a message from the oldest day kept may be past Telegram's 48 hours,
        # and then deleting it fails harmlessly.
        young = self._now() - MESSAGE_LIFETIME
        return sorted(m for m, day in await self._take_messages(key) if day + DAY > young)

    async def remember_staff_messages(
        self, references: Sequence[str], chat_id: int, message_ids: Sequence[int]
    ) -> None:
        shared = len(set(references)) > 1
        rows = [(r, chat_id, int(m), shared) for r in dict.fromkeys(references) for m in message_ids]
        await self._remember_staff(rows, day_of(self._now()))


def same_quarter(month: str, now: float) -> bool:
    """Whether a month ("2026-11") is in the quarter ``now`` is in: figures of a quarter that is
    over no longer change, so a later change cannot be read from two versions of them."""
    year, number = (int(part) for part in month.split("-"))
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    return (year, (number - 1) // 3) == (today.year, (today.month - 1) // 3)


def month_of(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m")


def counted_under(report: NewReport, counted: Counted = ()) -> list[tuple[str, str]]:
    """The figures' dimensions of a kept report: each harm, where (London, elsewhere, not said),
    each service already told, who it was sent to, and what the channel adds."""
    summary = report.summary
    where = summary.get("where")
    elsewhere = summary.get("elsewhere")
    told = elsewhere if isinstance(elsewhere, tuple) and elsewhere else ("not_said",)
    return [
        *(("harm", category) for category in report.categories or ("unspecified",)),
        ("where", where[0] if isinstance(where, tuple) and where else "not_said"),
        *(("told", service) for service in told),
        ("recipient", report.send_to or "none"),
        *counted,
    ]
