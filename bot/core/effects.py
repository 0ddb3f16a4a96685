"""Carrying out what the engine asked for in a turn, before anything is said (what to say depends
on it): reads and what cannot wait happen here; the turn's writes are gathered in a ``Done`` and
committed together by the conversation service."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.core.guards import CodeGuard
from bot.core.transport import ChatRef
from flows import Engine, Outcome
from flows.definitions import URGENT_MESSAGES
from flows.effects import (
    ChangeConsent,
    CheckReport,
    Effect,
    EraseReport,
    ForgetDraft,
    ForgetNames,
    MatchChoice,
    NameOffender,
    RelayToStaff,
    StoreReport,
    WipeChat,
)
from flows.events import Unlocked
from flows.replies import Reply
from storage import Answers, ChatKey, ConsentChange, NewReport, Relays, Reports, StoredReport
from storage.base import Naming

log = logging.getLogger("reachable.conversations")
# Whether a channel can reach a chat later, unasked (a web page cannot, nor some Rasa channels):
# staff messages to chats it cannot reach wait, held, until the person comes back with their code.
Reaches = Callable[[str], bool]


class EffectStore(Answers, Reports, Relays, Protocol):
    """What carrying out effects reads, and the quick exit's writes that cannot wait."""


@dataclass(slots=True)
class Done:
    """What carrying out a turn's effects decided: what to say, and what to write. ``fallback``:
    what to say instead if the report to erase or change is found gone when it is written."""

    outcome: Outcome
    replies: tuple[Reply, ...]
    report: NewReport | None = None
    outgoing: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    forget: bool = False
    wipe: bool = False
    erase: str | None = None
    consent: ConsentChange | None = None
    naming: Naming | None = None
    unname: str | None = None
    fallback: tuple[Reply, ...] = ()


def step_kind(done: Done, draft: bytes | None) -> str:
    """The kind of durable step a turn takes, for the crash points (``bot/core/crashpoints.py``)."""
    kinds = (
        ("report", done.report is not None),
        ("erase", done.erase is not None),
        ("consent", done.consent is not None or done.naming is not None or done.unname is not None),
        ("answer", bool(done.outgoing)),
        ("exit", done.wipe),
        # emergency or suicide help, said in a turn that wrote something
        ("urgent", any(reply.message in URGENT_MESSAGES for reply in done.replies)),
        ("draft", draft is not None),
    )
    return next((kind for kind, taken in kinds if taken), "forget")


class Effects:
    def __init__(
        self,
        engine: Engine,
        store: EffectStore,
        recipients: Mapping[str, tuple[str, ...]],
        codes: CodeGuard,
        reaches: Mapping[str, Reaches],
        wake: Callable[[bool], None],
        matching: tuple[str, ...] = (),
    ) -> None:
        self.matching = matching  # the matching contact's destinations
        self.engine = engine
        self.store = store
        self.recipients = recipients  # who a person may choose -> their destinations
        self.codes = codes
        self.reaches = reaches  # by channel; a channel not named here reaches all
        self._wake = wake

    async def carry_out(self, outcome: Outcome, key: ChatKey, chat: str) -> Done:
        """Carry out the engine's effects before anything is said: what to say depends on them.
        Reads and what cannot wait happen here; the turn's writes are committed together after."""
        done = Done(outcome, outcome.replies)
        for effect in outcome.effects:
            match effect:
                case StoreReport():
                    done.report = effect
                case ForgetDraft():
                    done.forget = True
                case WipeChat():
                    done.wipe = True
                    await self._leave(key)
                case ForgetNames():
                    done.unname, done.replies, done.fallback = effect.reference, effect.done, effect.gone
                case _:
                    await self._about_a_report(done, effect, key, chat)
        return done

    async def _about_a_report(self, done: Done, effect: Effect, key: ChatKey, chat: str) -> None:
        """Effects that read a kept report (or its relay) before the turn can say anything."""
        match effect:
            case EraseReport():
                await self._erase(done, effect, key)
            case CheckReport():
                await self._check(done, effect, key, chat)
            case ChangeConsent():
                self._change(done, effect, chat)
            case RelayToStaff():
                await self._relay(done, effect, chat)
            case NameOffender():
                self._name(done, effect)
            case MatchChoice():
                await self._match_choice(done, effect, chat)

    async def _leave(self, key: ChatKey) -> None:
        """A quick exit: nothing from staff reaches this chat until the person comes back with
        their code, and nothing it was still to be told is told."""
        held = await self.store.hold_relays(key)
        if held:
            log.info("quick exit: %d relay(s) held", len(held))
        if await self.store.drop_answers(key):
            log.info("quick exit: answers not yet out dropped")

    async def _find(self, done: Done, code: str, key: ChatKey, not_found: tuple[Reply, ...]) -> StoredReport | None:
        """The report a typed code unlocks, unless too many wrong codes were tried lately (from
        this chat, or from everyone: each can cost a slow verification); then they are told to
        wait, and nothing is verified."""
        if not self.codes.may_try(key.digest):
            log.info("code not checked: too many wrong codes lately")
            done.replies = (Reply("code.wait"), *not_found[1:])
            return None
        found = await self.store.find_by_code(code)
        if found is None:
            self.codes.missed(key.digest)
            done.replies = not_found
        return found

    async def _erase(self, done: Done, effect: EraseReport, key: ChatKey) -> None:
        reference = effect.reference
        if not reference:
            found = await self._find(done, effect.code, key, effect.not_found)
            if found is None:
                return
            reference = found.reference
        if reference:
            done.erase, done.replies, done.fallback = reference, effect.erased, effect.not_found
        else:
            done.replies = effect.not_found

    def _change(self, done: Done, effect: ChangeConsent, chat: str) -> None:
        destinations = self.recipients.get(effect.send_to or "", ())
        done.consent = ConsentChange(effect.reference, effect.send_to, effect.allow_reply, destinations, chat)
        done.replies, done.fallback = effect.done, effect.gone

    async def _relay(self, done: Done, effect: RelayToStaff, chat: str) -> None:
        """The person's answer goes to whoever they sent the report to, if the relay is open."""
        found = await self.store.get_report(effect.reference)
        if found is None or await self.store.relay_chat(effect.reference) != chat:
            done.replies = effect.closed
            return
        answer = {"text": effect.text}
        destinations = self.recipients.get(found.send_to or "", ())
        done.outgoing.extend((effect.reference, d, "answer", answer) for d in destinations)
        done.replies = effect.sent

    def _name(self, done: Done, effect: NameOffender) -> None:
        if not self.matching or not effect.reference:
            done.replies = effect.gone
            return
        naming = Naming(effect.reference, effect.kind, effect.canonical, effect.shown, self.matching)
        done.naming, done.replies, done.fallback = naming, effect.added, effect.gone

    async def _match_choice(self, done: Done, effect: MatchChoice, chat: str) -> None:
        """The person's choice after a match goes to the matching contact, if the relay is open."""
        if not self.matching or await self.store.relay_chat(effect.reference) != chat:
            done.replies = effect.closed
            return
        choice = {"choice": effect.choice}
        done.outgoing.extend((effect.reference, d, "match_choice", choice) for d in self.matching)
        done.replies = effect.sent

    async def _check(self, done: Done, effect: CheckReport, key: ChatKey, chat: str) -> None:
        """Back with their code: how the report stands and what can change now; and whatever
        staff sent after a quick exit is released to this chat."""
        found = await self._find(done, effect.code, key, effect.not_found)
        if found is None:
            return
        released = 0
        if await self.store.relay_held(found.reference):
            released = await self.store.release_held(found.reference, key, chat)
            # A chat that can be reached later gets them from the delivery worker now; one that
            # cannot (a page, a Rasa channel without push) fetches them with this answer.
            ref = ChatRef.parse(chat)
            self._wake(ref is not None and self.reaches_later(ref))
        what = found.summary.get("what", ())
        unlocked = Unlocked(
            reference=found.reference,
            status=found.status,
            what=what if isinstance(what, tuple) else (),
            send_to=found.send_to,
            allow_reply=found.allow_reply and await self.store.relay_chat(found.reference) is not None,
            released=released,
            named=await self.store.named(found.reference),
        )
        follow = self.engine.handle(done.outcome.state, unlocked)
        done.outcome = replace(follow, effects=done.outcome.effects, understood=done.outcome.understood)
        done.replies = follow.replies

    def reaches_later(self, ref: ChatRef) -> bool:
        """Whether this chat's channel can reach it later, unasked."""
        reaches = self.reaches.get(ref.channel)
        return reaches is None or reaches(ref.chat_id)
