"""The support workers' side: what they receive, and the commands they may use in the staff chat.

Staff never learn who a person is: summaries carry only what the person chose and a reference;
relayed messages travel by reference through an encrypted link. Everything a person typed is
quoted and made inert before staff see it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flows import Engine
from flows.codes import canonical_reference
from flows.text import quote
from responses import Renderer
from storage import Figures, Outbox, Outgoing, Relays, Reports, StoredReport

STAFF_LOCALE = "en"
log = logging.getLogger("reachable.staff")
# The update a staff command came in (channel, update id): a repeat of it queues nothing twice.
Update = tuple[str, int] | None


class DeskStore(Reports, Relays, Outbox, Figures, Protocol):
    """What the staff desk reads and writes."""


@dataclass(frozen=True, slots=True)
class StaffText:
    subject: str
    body: str


class StaffDesk:
    def __init__(
        self,
        store: DeskStore,
        engine: Engine,
        renderer: Renderer,
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.store = store
        self.engine = engine
        self.renderer = renderer
        self.on_queued = on_queued

    async def _enqueue(
        self, reference: str, kind: str, data: dict[str, str], held: bool = False, update: Update = None
    ) -> None:
        queued = await self.store.enqueue(reference, "person", kind, data, held=held, update=update)
        if queued is None:
            log.info("staff command handled before: not queued again")
        elif self.on_queued is not None and not held:
            self.on_queued()

    def refusal(self, staff_listed: bool, user_id: int | None) -> str:
        """What someone in the staff chat who is not listed as staff is told, with their own
        user id (the group already knows who they are) so the operator can add them."""
        refused = self._text("staff.not_allowed" if staff_listed else "staff.commands_off")
        if user_id is None:  # writing as the group itself: there is no one to add
            return f"{refused}\n{self._text('staff.write_as_yourself')}"
        return f"{refused}\n{self._text('staff.your_id', user_id=user_id)}"

    def _text(self, message_id: str, **variables: str | int) -> str:
        text = self.renderer.responses.text(STAFF_LOCALE, message_id)
        return text.format_map({k: str(v) for k, v in variables.items()})

    # ------------------------------------------------------------------ what staff receive
    async def compose(self, item: Outgoing, shared: bool = False, by_email: bool = False) -> StaffText | None:
        """The text of a delivery to staff, or None when there is nothing left to send.
        ``shared``: for a withdrawal, a message that also held other summaries was left.
        ``by_email``: an email, which carries no commands (they work in the staff chat only)."""
        reference = item.reference
        if item.kind == "summary":
            report = await self.store.get_report(reference)
            if report is None or not report.summary:
                return None
            body = self._summary(report, by_email)
            subject = self._text("staff.summary.subject", reference=reference)
        elif item.kind == "withdrawn":
            body = self._text("staff.withdrawn", reference=reference)
            if shared:
                body += "\n" + self._text("staff.withdrawn.shared", reference=reference)
            subject = self._text("staff.withdrawn.subject", reference=reference)
        elif item.kind == "undeliverable":
            failed = str(item.data.get("destination", ""))
            name = "staff.unreachable" if failed == "person" else "staff.undeliverable"
            where = self.where(failed)
            body = self._text(name, reference=reference, where=where, attempts=str(item.data.get("attempts", "")))
            subject = self._text("staff.undeliverable.subject", reference=reference)
        elif item.kind == "answer":
            body = self._text("staff.answer", reference=reference, text=quote(str(item.data.get("text", ""))))
            subject = self._text("staff.answer.subject", reference=reference)
        elif item.kind in ("match", "match_choice"):
            subject, body = self._match(item, by_email)
        else:
            return None
        if item.maybe_sent:
            body = self._text("staff.possible_repeat", reference=reference) + "\n\n" + body
        return StaffText(subject, body)

    def _match(self, item: Outgoing, by_email: bool) -> tuple[str, str]:
        """To the matching contact: the reports that name the same person (references, harms,
        month, what was named, quoted), or one person's choice after it."""
        if item.kind == "match_choice":
            choice = "police" if item.data.get("choice") == "police" else "talk"
            name = f"staff.match_choice.{choice}" + (".email" if by_email else "")
            return (
                self._text("staff.match_choice.subject", reference=item.reference),
                self._text(name, reference=item.reference),
            )
        references = ", ".join(str(r) for r in item.data.get("references", []))
        lines = []
        for found in item.data.get("reports", []):
            harms = ", ".join(self._harm(str(h)) for h in found.get("harms", []))
            lines.append(
                self._text("staff.match.report", reference=found["reference"], harms=harms, month=found["month"])
            )
        named = "\n".join(quote(str(n)) for n in item.data.get("named", []))
        body = self._text("staff.match", references=references, reports="\n".join(lines), named=named)
        return self._text("staff.match.subject", references=references), body

    def where(self, destination: str) -> str:
        """A destination as staff read it: "the support team (email)", or the person."""
        if destination == "person":
            return self._text("staff.where.person")
        recipient, _, way = destination.partition(":")
        return f"{self._recipient(recipient)} ({self._text('staff.where.' + way) if way else destination})"

    def harm(self, category: str) -> str:
        """A kind of harm, as staff read it."""
        return self._harm(category)

    def summary_text(self, report: StoredReport) -> str:
        """A report's summary as the inbox shows it: no chat commands, no email's advice."""
        return self._summary(report, message_id="staff.summary.inbox")

    def _harm(self, category: str) -> str:
        label_id = f"report.what.{category}"
        responses = self.renderer.responses
        return responses.text(STAFF_LOCALE, label_id if responses.has(label_id) else "staff.category.unspecified")

    def _recipient(self, key: str) -> str:
        """Whom a person chose, as staff read it."""
        responses = self.renderer.responses
        for message_id in (f"staff.send_to.{key}", f"recipient.{key}.label"):
            if responses.has(message_id):
                return self._text(message_id)
        return key

    def _summary(self, report: StoredReport, by_email: bool = False, message_id: str = "") -> str:
        yes, no = self._text("staff.yes"), self._text("staff.no")
        send_to = self._recipient(report.send_to) if report.send_to else no
        summary = self.engine.summary(dict(report.summary))
        return self._text(
            message_id or ("staff.summary.email" if by_email else "staff.summary"),
            reference=report.reference,
            send_to=send_to,
            keep=yes if report.keep else no,
            allow_reply=yes if report.allow_reply else no,
            version=report.questionnaire_version,
            summary=self.renderer.summary_text(summary, STAFF_LOCALE, for_staff=True),
        )

    # ------------------------------------------------------------------ staff commands
    async def command(self, name: str, argument: str, scope: frozenset[str], update: Update = None) -> str | None:
        """Answer a command typed in the staff chat; None for commands that are not ours.
        ``scope``: the recipients whose reports the chat it came from receives; a command acts on
        no other report (the person chose who would read it and answer). ``update``: where it
        came from, so that the same update handled again (after a crash) sends the person nothing
        twice; the answer to staff is given again."""
        if name == "stats":
            return await self._stats()
        if name not in ("ack", "reply", "close"):
            return None
        head, _, rest = argument.strip().partition(" ")
        reference = canonical_reference(head)
        if reference is None or (name == "reply" and not rest.strip()):
            return self._text("staff.usage")
        report = await self.store.get_report(reference)
        refused = self._refused(reference, report, scope)
        if refused is not None or report is None:
            return refused
        chat = await self.store.relay_chat(reference)
        # After a quick exit nothing reaches the person's chat until they come back with their code.
        held = chat is not None and await self.store.relay_held(reference)
        if name == "reply":
            return await self._reply(reference, chat if report.allow_reply else None, held, rest.strip(), update)
        return await (self._ack if name == "ack" else self._close)(reference, chat, held, update)

    def _refused(self, reference: str, report: StoredReport | None, scope: frozenset[str]) -> str | None:
        """Why a command may not act on this report, if it may not."""
        if report is None:
            return self._text("staff.no_report", reference=reference)
        if report.send_to not in scope:
            log.info("staff command on a report not sent to that chat: refused")
            return self._text("staff.not_sent_here", reference=reference)
        return None

    async def _reply(self, reference: str, chat: str | None, held: bool, text: str, update: Update) -> str:
        if chat is None:
            return self._text("staff.no_replies", reference=reference)
        await self._enqueue(reference, "relay", {"chat": chat, "text": text}, held=held, update=update)
        report = await self.store.get_report(reference)
        if report is not None and report.status != "closed":
            await self.store.set_status(reference, "replied")
        return self._text("staff.held" if held else "staff.done.reply", reference=reference)

    async def _ack(self, reference: str, chat: str | None, held: bool, update: Update) -> str:
        await self.store.set_status(reference, "acknowledged")
        if chat is None:
            return self._text("staff.done.ack", reference=reference)
        await self._enqueue(reference, "ack", {"chat": chat}, held=held, update=update)
        return self._text("staff.held" if held else "staff.done.ack_told", reference=reference)

    async def _close(self, reference: str, chat: str | None, held: bool, update: Update) -> str:
        if chat is not None:
            if not held:
                await self._enqueue(reference, "closed", {"chat": chat}, update=update)
            await self.store.close_relay(reference)
        await self.store.set_status(reference, "closed")
        return self._text("staff.done.close", reference=reference)

    async def _stats(self) -> str:
        """The quarter so far, as `reachable figures` publishes it (the same suppression), one
        line a dimension: each value's quarter total."""
        from bot.core import quarterly

        quarter = quarterly.quarter_of(self.clock())
        made = quarterly.tables(await self.store.tallies(quarterly.months_of(quarter)), quarter)
        labels = quarterly.Labels(self.renderer.responses)
        lines = []
        for dimension, table in made.items():
            public = table.public()
            values = [f"{labels.value(dimension, v)} {f}" for v, f in zip(table.rows, public.row_totals, strict=True)]
            lines.append(f"{labels.t(f'figures.dimension.{dimension}')}: {' · '.join(values)}")
        deliveries = await self.store.delivery_counts()
        pending = deliveries.get("pending", 0) + deliveries.get("sending", 0)
        shown = "\n".join(lines) or self._text("staff.stats.empty")
        return self._text(
            "staff.stats", quarter=quarter, table=shown, pending=pending, failed=deliveries.get("failed", 0)
        )
