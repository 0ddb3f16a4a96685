"""The small interfaces stores implement; one contract test suite covers every backend.

Stores take and give plain values; encryption at rest happens inside the store, so no caller
can forget it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from flows.effects import StoreReport
from storage.accounts import StaffAccounts
from storage.errors import Conflict

SummaryData = Mapping[str, tuple[str, ...] | str]


@dataclass(frozen=True, slots=True)
class ChatKey:
    """A chat, as storage knows it: a keyed hash, never the id itself."""

    digest: bytes


# A report to keep or send is exactly what the engine asked for: one value type, not two.
NewReport = StoreReport


@dataclass(frozen=True, slots=True)
class StoredReport:
    reference: str
    summary: SummaryData
    consented_at: int
    keep: bool
    send_to: str | None
    allow_reply: bool
    status: str
    expires_at: int
    questionnaire_version: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery waiting in the outbox: ``data`` is decrypted structured content."""

    id: int
    reference: str
    destination: str
    kind: str
    data: Mapping[str, Any]
    attempts: int
    maybe_sent: bool


@dataclass(frozen=True, slots=True)
class Purged:
    drafts: int
    reports: int
    answers: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What a person is told after a turn that wrote something (above all a new report's code),
    kept in the turn's own transaction until it has gone out. ``id`` is the caller's handle,
    chosen at random; ``body`` is opaque here, and sealed at rest like every other content."""

    id: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Unsent:
    """An answer that has not wholly gone out: ``sent`` of its parts are out already."""

    id: int
    chat: ChatKey
    body: bytes
    sent: int


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A later choice about a kept report, made in a turn: send it to ``destinations`` (for the
    recipient ``send_to``) and/or allow (True) or stop (False) replies to ``chat``."""

    reference: str
    send_to: str | None
    allow_reply: bool | None
    destinations: tuple[str, ...]
    chat: str


@dataclass(frozen=True, slots=True)
class Naming:
    """Who hurt someone, named on their report ``reference``: compared only as a keyed digest of
    (``kind``, ``canonical``); ``shown`` goes, sealed, to the matching contact's ``destinations``
    once someone else names the same person."""

    reference: str
    kind: str
    canonical: str
    shown: str
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnWrites:
    """What one turn writes, together (see ``Turns.commit_turn``)."""

    key: ChatKey | None
    draft: bytes | None
    forget: bool
    report: NewReport | None
    destinations: tuple[str, ...]
    relay_chat: str | None
    outgoing: tuple[tuple[str, str, str, Mapping[str, Any]], ...]
    update: tuple[str, int] | None
    erase: str | None
    consent: ConsentChange | None
    answer: Answer | None
    naming: Naming | None = None
    unname: str | None = None
    counted: tuple[tuple[str, str], ...] = ()  # what the figures count a kept report under, besides its answers

    @property
    def durable(self) -> bool:
        """Full sync for what a person consented to: keeping, erasing, a later choice, naming."""
        chosen = (self.report, self.erase, self.consent, self.naming, self.unname)
        return any(value is not None for value in chosen)


class Turns(Protocol):
    """A conversation's draft, one turn's writes atomically, what the turn said until it has gone
    out, and the updates already handled."""

    @abc.abstractmethod
    async def load_draft(self, key: ChatKey) -> bytes | None:
        """The draft for ``key``, or None if there is none or it has expired."""

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
        naming: Naming | None = None,
        unname: str | None = None,
        counted: tuple[tuple[str, str], ...] = (),
    ) -> bool:
        """Apply a turn in one transaction: mark ``update`` (channel, id) handled, ``erase`` the
        report with that reference (queueing a withdrawal notice for each recipient it reached),
        apply a ``consent`` change, store ``report`` with a summary delivery per destination (and
        its relay link to ``relay_chat`` if replies are allowed), add the ``naming`` of who did it
        (and, when someone else named the same person, queue the match notice and tell each
        person who allowed replies), remove every naming of the report ``unname``, queue
        ``outgoing`` (reference, destination, kind, data), keep ``answer`` for the chat ``key``
        until it has gone out, then save ``draft`` or ``forget`` the draft.

        Returns False, writing nothing, when ``update`` was already handled. Raises Conflict,
        writing nothing, when the report to erase, change or name is gone or the consent change
        cannot be made (the report is already sent, or has nothing left to send).
        """
        if key is None and (answer is not None or consent is not None or naming is not None):
            raise ValueError("an answer, a consent change or a naming belongs to a chat: give its key")
        writes = TurnWrites(
            key, draft, forget, report, destinations, relay_chat, tuple(outgoing), update, erase, consent, answer,
            naming, unname, counted,
        )  # fmt: skip
        return await self.apply_turn(writes)

    @abc.abstractmethod
    async def apply_turn(self, writes: TurnWrites) -> bool:
        """``commit_turn``'s writes, checked, in one transaction."""

    @abc.abstractmethod
    async def seen(self, channel: str, update_id: int) -> bool:
        """Whether this update was already handled."""

    @abc.abstractmethod
    async def recent_updates(self) -> list[tuple[str, int]]:
        """Every update marked handled and not yet purged, as (channel, id)."""


class Answers(Protocol):
    """What people were told after a turn that wrote something, until it has gone out."""

    @abc.abstractmethod
    async def unsent_answers(self, key: ChatKey | None = None) -> list[Unsent]:
        """The answers of the chat ``key`` (of every chat if None) not wholly out, oldest first;
        none older than the draft lifetime."""

    @abc.abstractmethod
    async def answer_sent(self, answer_id: int, parts: int) -> None:
        """``parts`` of the answer are out now (it has more)."""

    @abc.abstractmethod
    async def answered(self, answer_id: int, scrub: bool = False) -> None:
        """The answer has wholly gone out: forget it. ``scrub``: it held a code, or named a chat
        that keeps nothing else, and must not outlive it anywhere in the files (the log is
        emptied at once)."""

    @abc.abstractmethod
    async def drop_answers(self, key: ChatKey) -> int:
        """A quick exit: what the chat was still to be told is not told; how many were dropped."""


class Outbox(Protocol):
    """Deliveries to staff and to people, durable until sent."""

    @abc.abstractmethod
    async def enqueue(
        self,
        reference: str,
        destination: str,
        kind: str,
        data: Mapping[str, Any],
        held: bool = False,
        update: tuple[str, int] | None = None,
    ) -> int | None:
        """Queue a delivery; ``held``: kept back until the person comes back (see hold_relays).
        ``update``: the update that asked for it (a staff command), marked handled in the same
        write; if it was handled before, nothing is queued and None is returned."""

    @abc.abstractmethod
    async def claim_due(self, limit: int = 50, destinations: Sequence[str] | None = None) -> list[Outgoing]:
        """Deliveries due now (only to ``destinations``, if given), marked as being sent (a crash
        leaves them marked)."""

    @abc.abstractmethod
    async def delivered(self, delivery_id: int) -> None:
        """Sent: forget its content; a summary not kept is cleared once every copy is out."""

    @abc.abstractmethod
    async def postpone(self, delivery_id: int, seconds: float, give_up: bool = False) -> None: ...

    @abc.abstractmethod
    async def release(self, delivery_id: int, seconds: float) -> None:
        """Back in the queue untried, due in ``seconds``: its claim does not count as a try (what
        sends it was not up yet). One already back in the queue is only rescheduled."""

    @abc.abstractmethod
    async def recover_in_flight(self) -> int:
        """After a crash: deliveries caught mid-send go back in the queue, flagged as maybe sent."""

    @abc.abstractmethod
    async def next_due_in(self) -> float | None:
        """Seconds until the next pending delivery is due (0 if now), None if there is none."""

    @abc.abstractmethod
    async def delivery_counts(self) -> dict[str, int]:
        """Deliveries by status."""


class Reports(Protocol):
    """Consented reports: read, found by code, and marked by staff (a turn erases them and
    records later choices about them: see Turns.commit_turn)."""

    @abc.abstractmethod
    async def get_report(self, reference: str) -> StoredReport | None: ...

    @abc.abstractmethod
    async def find_by_code(self, code: str) -> StoredReport | None: ...

    @abc.abstractmethod
    async def set_status(self, reference: str, status: str) -> bool: ...
    async def cases(self, recipients: Sequence[str]) -> list[StoredReport]: ...
    async def withdrawn_for(self, recipients: Sequence[str]) -> list[str]: ...
    async def thread(self, reference: str) -> list[tuple[str, str, int]]: ...
    async def failed_for(self, recipients: Sequence[str]) -> list[tuple[str, str, int]]: ...

    @abc.abstractmethod
    async def named(self, reference: str) -> int:
        """How many ways of naming who did it the report holds."""


class Relays(Protocol):
    """The link that lets staff answer a person who allowed replies."""

    @abc.abstractmethod
    async def relay_chat(self, reference: str) -> str | None: ...

    @abc.abstractmethod
    async def close_relay(self, reference: str) -> bool: ...

    @abc.abstractmethod
    async def hold_relays(self, key: ChatKey) -> list[str]:
        """After a quick exit: hold everything staff send to this chat; the references held."""

    @abc.abstractmethod
    async def relay_held(self, reference: str) -> bool: ...

    @abc.abstractmethod
    async def release_held(self, reference: str, key: ChatKey, chat: str) -> int:
        """The person came back with their code, in ``chat``: send what was held; how many."""


class MessageIds(Protocol):
    """The bot's message ids in a person's chat, for the quick exit."""

    @abc.abstractmethod
    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        """Message ids of many conversations, in one write."""

    @abc.abstractmethod
    async def take_messages(self, key: ChatKey) -> list[int]:
        """The conversation's message ids still young enough to delete, forgetting them all."""

    @abc.abstractmethod
    async def forget_messages(self, key: ChatKey) -> None:
        """Drop the conversation's message ids from storage (the channel keeps them in memory)."""


class StaffMessages(Protocol):
    """The bot's messages in staff chats, so a withdrawn report can be deleted there."""

    @abc.abstractmethod
    async def remember_staff_messages(
        self, references: Sequence[str], chat_id: int, message_ids: Sequence[int]
    ) -> None: ...

    @abc.abstractmethod
    async def take_staff_messages(self, reference: str) -> list[tuple[int, int, bool]]:
        """The bot's staff-chat messages holding ``reference``: (chat, message, shared), forgotten."""


class Upkeep(Protocol):
    """Retention, key rotation, and whether storage answers at all."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if storage cannot be read now."""

    @abc.abstractmethod
    async def purge_expired(self) -> Purged:
        """Delete drafts and reports past their expiry; counters stay."""

    @abc.abstractmethod
    async def reencrypt(self) -> dict[str, int]:
        """Re-encrypt everything stored under the newest key; counts by kind of data."""


class Figures(Protocol):
    """What stays after retention: counts without references, and the audit trail's kinds."""

    @abc.abstractmethod
    async def counts(self) -> dict[tuple[str, str], int]:
        """Reports kept, by (category, month)."""

    @abc.abstractmethod
    async def tallies(self, months: Sequence[str] = ()) -> dict[tuple[str, str, str], int]:
        """Every figure above zero (in ``months``, if given), as (dimension, value, month) -> count."""

    @abc.abstractmethod
    async def tally(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Add counts gathered in memory (they carry no reference and no chat)."""

    @abc.abstractmethod
    async def audit_kinds(self) -> list[tuple[str, str | None]]:
        """The audit trail as (kind, reference), oldest first."""


BEAT = 5.0  # seconds between an instance's heartbeats


class Instances(Protocol):
    """Several processes sharing one database (PostgreSQL): each says it is alive, a turn holds its
    chat against the others, and what a silent one had claimed (a delivery it was sending, an
    answer it was to tell) is taken over by the rest. A store for one process is its only
    instance, and these do nothing."""

    shared: bool = False

    def live(self) -> int:
        """How many instances are alive, this one included, as this one last heard (it says it is
        alive every BEAT seconds, from the moment the store opens)."""
        return 1

    async def stopped_answers(self) -> list[Unsent]:
        """What instances that stopped or died were still to tell, oldest first."""
        return []

    async def take_answer(self, answer_id: int) -> bool:
        """This instance tells it now: False if another live instance has it."""
        return True

    async def told_elsewhere(self, key: ChatKey) -> bool:
        """Whether another live instance is still telling this chat something."""
        return False

    def chat_turn(self, key: ChatKey) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while a turn of this chat reads and writes: one instance at a time, in turn."""
        return contextlib.nullcontext()


class Store(
    Turns,
    Answers,
    Outbox,
    Reports,
    Relays,
    MessageIds,
    StaffMessages,
    Upkeep,
    Figures,
    StaffAccounts,
    Instances,
    abc.ABC,
):
    """Everything a running bot keeps; each part of the bot is handed only the protocols it uses."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # Conveniences over the protocols, for scripts and tests.
    async def save_draft(self, key: ChatKey, payload: bytes) -> None:
        await self.commit_turn(key, draft=payload)

    async def forget_draft(self, key: ChatKey) -> None:
        await self.commit_turn(key, forget=True)

    async def add_report(self, report: NewReport, destinations: tuple[str, ...] = ()) -> None:
        """Store a consented report and, in the same transaction, its outbox entries."""
        await self.commit_turn(None, report=report, destinations=destinations)

    async def remember_messages(self, key: ChatKey, message_ids: Sequence[int]) -> None:
        await self.remember_batch({key: message_ids})

    async def erase_report(self, code: str) -> str | None:
        """Erase the report ``code`` unlocks; its reference, or None if no report matches."""
        found = await self.find_by_code(code)
        return await self.erase_by_reference(found.reference) if found is not None else None

    async def erase_by_reference(self, reference: str) -> str | None:
        """Erase a report by its reference; None if it is gone already."""
        try:
            await self.commit_turn(None, erase=reference)
        except Conflict:
            return None
        return reference

    async def change_consent(
        self,
        reference: str,
        *,
        send_to: str | None,
        allow_reply: bool | None,
        destinations: tuple[str, ...],
        key: ChatKey,
        chat: str,
    ) -> bool:
        """A later choice about a kept report (send it; allow or stop replies), recorded like
        the first. False if the report is gone or cannot be sent."""
        change = ConsentChange(reference, send_to, allow_reply, destinations, chat)
        try:
            await self.commit_turn(key, consent=change)
        except Conflict:
            return False
        return True
