"""What a backend implements for the rules in ``storage/rules.py``: row operations in its own
engine, each inside the transaction ``_transaction`` opens; and the values they pass."""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.base import ChatKey, StoredReport

T = TypeVar("T")

HOUR = 3600
DAY = 86400
# Telegram lets bots delete messages in private chats for 48 hours.
MESSAGE_LIFETIME = 48 * HOUR
# Telegram keeps undelivered updates for 24 hours; remembering handled ids longer is pointless.
UPDATE_MEMORY = 25 * HOUR


def day_of(moment: float) -> int:
    """The start of ``moment``'s day (UTC), in seconds: the only kind of time stored in clear."""
    return int(moment) - int(moment) % DAY


def end_of_hour(moment: float) -> int:
    return int(math.ceil(moment / HOUR) * HOUR)


def end_of_day(moment: float) -> int:
    return int(math.ceil(moment / DAY) * DAY)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """A consented report as a backend keeps it; ``body`` is its content (sealed at rest by a
    backend that has a disk): summary, categories, the day of consent, later consents."""

    reference: str
    body: Mapping[str, Any]
    keep: bool
    send_to: str | None
    allow_reply: bool
    status: str
    created_on: str  # the day, as YYYY-MM-DD: what the counters were counted under
    expires_at: int
    version: int

    @property
    def categories(self) -> tuple[str, ...]:
        """What the counters count it under: its categories, or "unspecified"."""
        return tuple(self.body.get("categories") or ()) or ("unspecified",)

    def stored(self) -> StoredReport:
        summary = {
            k: tuple(map(str, v)) if isinstance(v, list | tuple) else str(v) for k, v in self.body["summary"].items()
        }
        return StoredReport(
            reference=self.reference,
            summary=summary,
            consented_at=int(self.body["consented_at"]),
            keep=self.keep,
            send_to=self.send_to,
            allow_reply=self.allow_reply,
            status=self.status,
            expires_at=self.expires_at,
            questionnaire_version=self.version,
        )


@dataclass(frozen=True, slots=True)
class CodeSeal:
    """How a report's code is kept: a slow hash, and a keyed tag to find the candidates by."""

    hashed: str
    tag: bytes


@dataclass(frozen=True, slots=True)
class NamedRow:
    """One way of naming who did it: ``body`` holds what was typed and who typed it (sealed)."""

    id: int
    reference: str
    body: Mapping[str, Any]
    told: bool


@dataclass(slots=True)
class Tx:
    """An open transaction; ``scrub``: what it removed must not linger in any file once done."""

    scrub: bool = False


class Rows(abc.ABC):
    @abc.abstractmethod
    def _transaction(self, durable: bool) -> contextlib.AbstractAsyncContextManager[Tx]:
        """Everything inside is written together or not at all; ``durable``: survives power loss."""

    async def _in_transaction(self, durable: bool, body: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        """``body`` inside one transaction, as ``_transaction``; a backend may run the whole of it
        in one call to its database's own thread (SQLite: the turn, its hot path)."""
        async with self._transaction(durable) as tx:
            return await body(tx)

    @abc.abstractmethod
    async def _mark_handled(self, update: tuple[str, int], now: int) -> bool:
        """Mark an update handled; False if it was handled before."""

    @abc.abstractmethod
    async def _seal_code(self, code: str) -> CodeSeal: ...

    @abc.abstractmethod
    async def _code_candidates(self, code: str) -> list[tuple[str, str]]:
        """(reference, hash) of the reports whose tag matches ``code``'s."""

    @abc.abstractmethod
    async def _verify_code(self, hashed: str, code: str) -> bool: ...

    @abc.abstractmethod
    async def _insert_report(self, row: ReportRow, seal: CodeSeal) -> None: ...

    @abc.abstractmethod
    async def _load_report(self, reference: str) -> ReportRow | None: ...

    @abc.abstractmethod
    async def _update_report(self, row: ReportRow) -> None:
        """Write ``row``'s content, recipient, reply choice and status."""

    @abc.abstractmethod
    async def _delete_report(self, reference: str) -> None: ...

    @abc.abstractmethod
    async def _tally(self, dimension: str, value: str, month: str, change: int) -> None:
        """Add ``change`` to a tally (never below zero)."""

    @abc.abstractmethod
    async def _tallies(self, months: Sequence[str]) -> dict[tuple[str, str, str], int]:
        """Every tally above zero in ``months``, as (dimension, value, month) -> count."""

    @abc.abstractmethod
    async def _audit(self, kind: str, reference: str | None, at: int) -> None: ...

    @abc.abstractmethod
    async def _forget_audit(self, reference: str) -> None: ...

    @abc.abstractmethod
    async def _enqueue(
        self, reference: str, destination: str, kind: str, data: Mapping[str, Any], now: int, held: bool = False
    ) -> int: ...

    @abc.abstractmethod
    async def _summary_deliveries(self, reference: str) -> list[tuple[str, str, bool]]:
        """The report's summary deliveries as (destination, status, maybe sent)."""

    @abc.abstractmethod
    async def _delete_deliveries(self, reference: str, statuses: Sequence[str]) -> list[int]: ...

    @abc.abstractmethod
    async def _blank_sent(self, reference: str) -> None:
        """Deliveries of ``reference`` already sent keep no content."""

    @abc.abstractmethod
    async def _mark_sent(self, delivery_id: int) -> tuple[str, str] | None:
        """Sent, its content gone; its (reference, kind), or None if it is gone."""

    @abc.abstractmethod
    async def _set_delivery_status(self, delivery_id: int, status: str) -> None: ...

    @abc.abstractmethod
    async def _untry_delivery(self, delivery_id: int) -> None:
        """One being sent back to pending, its claim taken off its tries; others unchanged."""

    @abc.abstractmethod
    async def _pending_ids(self) -> list[int]: ...

    @abc.abstractmethod
    async def _link_relay(self, reference: str, chat: str, key: bytes | None) -> None:
        """Staff may answer ``chat`` about ``reference`` (replacing any link, not held)."""

    @abc.abstractmethod
    async def _unlink_relay(self, reference: str) -> bool: ...

    @abc.abstractmethod
    async def _keep_answer(self, key: ChatKey, answer_id: int, body: bytes, expires: int) -> None: ...

    @abc.abstractmethod
    async def _save_draft(self, key: ChatKey, payload: bytes, expires: int) -> None: ...

    @abc.abstractmethod
    async def _forget_draft(self, key: ChatKey) -> bool: ...

    @abc.abstractmethod
    async def _purge_drafts(self, now: int) -> int: ...

    @abc.abstractmethod
    async def _purge_answers(self, now: int) -> int: ...

    @abc.abstractmethod
    async def _purge_reports(self, now: int) -> int:
        """Reports past their expiry, with their relays and dated lines; how many."""

    @abc.abstractmethod
    async def _purge_deliveries(self, before: int) -> list[int]:
        """Deliveries queued on or before ``before``, sent or not; their ids."""

    @abc.abstractmethod
    async def _purge_rest(self, *, staff_before: int, messages_before: int, updates_before: int) -> None:
        """Staff-chat messages, message ids (by their day) and handled updates, on or before."""

    @abc.abstractmethod
    async def _delivery_lines(
        self, *, kind: str | None = None, status: str | None = None
    ) -> list[tuple[str, str, int]]:
        """(reference, destination, attempts) of the deliveries of this kind and status."""

    @abc.abstractmethod
    async def _add_to_thread(self, reference: str, body: Mapping[str, Any], day: int) -> None: ...

    @abc.abstractmethod
    async def _thread_of(self, reference: str) -> list[tuple[Mapping[str, Any], int]]:
        """A case's messages in order, each (body, day)."""

    @abc.abstractmethod
    async def _forget_thread(self, reference: str | None = None) -> None:
        """A case's messages; with no reference, those whose report is gone."""

    @abc.abstractmethod
    async def _references_sent_to(self, recipients: Sequence[str]) -> list[str]:
        """The references of reports sent to these recipients, newest first."""

    @abc.abstractmethod
    async def _remember_messages(self, rows: Sequence[tuple[ChatKey, int]], day: int) -> None: ...

    @abc.abstractmethod
    async def _take_messages(self, key: ChatKey) -> list[tuple[int, int]]:
        """The chat's (message id, day), forgotten."""

    @abc.abstractmethod
    async def _remember_staff(self, rows: Sequence[tuple[str, int, int, bool]], day: int) -> None: ...

    @abc.abstractmethod
    async def _insert_identifier(self, reference: str, digest: bytes, body: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    async def _identifiers(self, digest: bytes) -> list[NamedRow]:
        """Every naming with this digest, oldest first."""

    @abc.abstractmethod
    async def _mark_told(self, ids: Sequence[int]) -> None: ...

    @abc.abstractmethod
    async def _forget_identifiers(self, reference: str) -> bool:
        """Remove the report's namings; whether one of them was in a match already told."""

    @abc.abstractmethod
    async def _count_identifiers(self, reference: str) -> int: ...

    @abc.abstractmethod
    async def _destinations_of(self, kind: str) -> list[str]:
        """Every destination a delivery of ``kind`` went or goes to."""

    @abc.abstractmethod
    async def _all_identifiers(self) -> list[NamedRow]: ...

    @abc.abstractmethod
    async def _set_digest(self, row_id: int, digest: bytes) -> None: ...
