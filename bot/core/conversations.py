"""One turn of a conversation, for every channel: load the draft, ask the engine, carry out
its effects, keep the draft (or drop it), render the replies.

A turn's writes are one transaction, and what the person is told after them is kept in that
same transaction until the channel says it has gone out (``bot/core/answers.py``): a person is never
shown a reference for a report that was not stored, and never loses the code of one that was.
If storage fails, nothing moves on: the person is asked to try again and the conversation stays
where it was.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Protocol

from bot.core import crashpoints
from bot.core.answers import Delivery, Told, opened, seal
from bot.core.effects import Done, Effects, Reaches, step_kind
from bot.core.guards import CodeGuard, Flood, FloodGuard
from bot.core.positions import Lately, Positions
from bot.core.tallies import Browsing
from bot.core.transport import ChatRef
from flows import Engine, Event, State
from flows.definitions import URGENT_MESSAGES
from flows.events import Command, Relayed, Resume
from flows.replies import Reply
from responses import Rendered, Renderer
from storage import (
    Answer,
    Answers,
    ChatKey,
    Conflict,
    Instances,
    Keyring,
    NewReport,
    Relays,
    Reports,
    StorageError,
    Turns,
    Unsent,
)
from storage.base import BEAT

log = logging.getLogger("reachable.conversations")
EXIT = Command(name="exit")


class ConversationStore(Turns, Answers, Reports, Relays, Instances, Protocol):
    """What a conversation reads and writes."""


SLOW_COMMIT = 1.0  # seconds before someone keeping a report is told their code is being made
OTHERS_WAIT = 4 * BEAT  # at most, for an instance taken for dead after three heartbeats
Notice = Callable[[Rendered], Awaitable[object]]


class Conversations:
    def __init__(
        self,
        engine: Engine,
        renderer: Renderer,
        store: ConversationStore,
        keyring: Keyring,
        recipients: Mapping[str, tuple[str, ...]] | None = None,
        on_queued: Callable[[], None] | None = None,
        draft_hours: int = 24,
        matching: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.renderer = renderer
        self.store = store
        self.keyring = keyring
        self.recipients = dict(recipients or {})  # who a person may choose -> their destinations
        self.on_queued = on_queued
        self._locks: weakref.WeakValueDictionary[bytes, asyncio.Lock] = weakref.WeakValueDictionary()
        self._positions = Positions(ttl=draft_hours * 3600)
        self._recent: Lately[tuple[str, int]] = Lately()
        # Answers kept in storage and not yet out: the chats that have some, those a channel is
        # sending now (handed out once; given back if sending fails), and those gone since (a
        # read from before they went must not hand them out again).
        self._unsent: set[bytes] = set()
        self._claimed: set[int] = set()
        self._gone: Lately[int] = Lately(100_000)
        self.flood = FloodGuard()
        self.codes = CodeGuard()
        self.reaches: dict[str, Reaches] = {}  # by channel; a channel not named here reaches all
        self.browsing = Browsing()  # screens shown and advice opened, for the figures
        self.effects = Effects(engine, store, self.recipients, self.codes, self.reaches, self._wake, matching)

    def _counted(self, report: NewReport | None, channel: str, locale: str) -> tuple[tuple[str, str], ...]:
        """What a kept report is counted under besides its own answers: the channel and language
        it came in, and for London the area (a group of boroughs: a borough with one report in
        it could point to a person)."""
        if report is None:
            return ()
        counted = (("channel", channel), ("language", locale))
        if report.summary.get("where") != ("london",):
            return counted
        borough = report.summary.get("borough")
        area = self.renderer.responses.area_of(borough) if isinstance(borough, str) else None
        return (*counted, ("area", area or "not_said"))

    def key(self, channel: str, chat_id: str | int) -> ChatKey:
        return ChatKey(self.keyring.chat_key(channel, chat_id))

    def locale(self, channel: str, chat_id: str | int) -> str:
        """The language a conversation is in now (English until it changes)."""
        state = self._positions.get(self.key(channel, chat_id))
        return state.locale if state is not None else self.engine.lexicon.locales[0]

    def _lock(self, key: ChatKey) -> asyncio.Lock:
        lock = self._locks.get(key.digest)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key.digest] = lock
        return lock

    async def handle(
        self,
        channel: str,
        chat_id: str | int,
        event: Event,
        *,
        update_id: int | None = None,
        locale_hint: str | None = None,
        on_slow: Notice | None = None,
        before_wipe: Callable[[], Awaitable[None]] | None = None,
    ) -> Delivery:
        """One event from one chat. ``update_id`` makes redelivered updates harmless: a turn whose
        update was already handled is not taken again; it returns ``Delivery(duplicate=True)``
        with whatever that chat's earlier turns kept and never sent (after a crash), or nothing.
        ``on_slow``: how to tell the person, meanwhile, that their code is being made when
        keeping a report takes longer than a second. ``before_wipe``: what must be done before
        a turn that clears the chat is committed (it runs inside the chat's turn)."""
        key = self.key(channel, chat_id)
        update = (channel, update_id) if update_id is not None else None
        if update is not None:
            if update in self._recent:
                log.info("duplicate update: not taken again")
                async with self._lock(key):
                    return Delivery((), duplicate=True, earlier=await self._earlier(key))
            self._recent.add(update)
        # The quick exit always works; staff messages are not the person's flood.
        if not isinstance(event, Relayed) and event != EXIT:
            verdict = self.flood.check(key.digest)
            if verdict is not Flood.ALLOW:
                # Refused before waiting for the chat's lock: a flood holds up no one else.
                log.info("chat over its message rate: %s", verdict.name.lower())
                if verdict is Flood.WARN:
                    known = self._positions.get(key)
                    notice = self.renderer.render(Reply("flood.slow_down"), known.locale if known else "en", channel)
                    return Delivery((notice,), limited=True)
                return Delivery((), limited=True)
        # The chat is this process's, then (with instances sharing a database) every instance's,
        # until the turn has written: one turn of a chat at a time, in the order they came. Every
        # wait of a turn comes after it has taken its place, so none can overtake another.
        async with self._lock(key):
            if self.store.shared:
                # The chat came here from another instance: what that one was still telling it
                # goes first, once that one has told it or is taken for dead (seconds at most).
                # Waited for before the chat is held in the database, so the wait holds no
                # connection.
                await self._others_done(key)
            async with self.store.chat_turn(key):
                ref = ChatRef(channel, str(chat_id))
                return await self._handle(key, ref, event, update, locale_hint, on_slow, before_wipe)

    async def _handle(
        self,
        key: ChatKey,
        ref: ChatRef,
        event: Event,
        update: tuple[str, int] | None,
        locale_hint: str | None,
        on_slow: Notice | None = None,
        before_wipe: Callable[[], Awaitable[None]] | None = None,
    ) -> Delivery:
        chat, channel = str(ref), ref.channel
        started = time.perf_counter()
        if update is not None and self.store.shared and await self.store.seen(*update):
            # Taken by another instance (this one's memory of handled updates is its own): nothing
            # is done again, not even what a turn does before it writes.
            log.info("duplicate update: not taken again")
            return Delivery((), duplicate=True, earlier=await self._earlier(key))
        # What earlier turns never sent goes first; a staff message leaves it for the person's own
        # next turn, as the staff outbox answers for the staff message itself.
        earlier = () if isinstance(event, Relayed) else await self._earlier(key)
        if earlier and isinstance(event, Resume):
            return Delivery((), earlier=earlier)  # coming back: what they were never told
        state, stored = await self._load(key)
        if state == State() and locale_hint:
            hint = locale_hint.split("-")[0].casefold()
            if hint in self.engine.lexicon.locales:
                state = state.evolve(locale=hint)
        outcome = self.engine.handle(state, event)
        try:
            done = await self.effects.carry_out(outcome, key, chat)
            if done.wipe:  # they left: nothing they were still to be told is told
                self._unsent.discard(key.digest)
                self._claimed.difference_update(d.told.id for d in earlier if d.told is not None)
                earlier = ()
                if before_wipe is not None:
                    await before_wipe()
            keep = self.engine.worth_keeping(done.outcome.state)
            draft = done.outcome.state.to_json() if keep else None
            done.forget = (done.forget or stored) and not keep
            delivery = await self._commit(done, key, ref, event, update, draft, on_slow)
            if delivery is None:  # marked in storage, unknown to this run: an earlier run kept it
                log.info("duplicate update: not taken again")
                return Delivery((), duplicate=True, earlier=await self._earlier(key))
            self._positions.put(key, done.outcome.state, stored=keep)
            self.browsing.note(outcome.replies)  # counted once the turn is taken: never a duplicate update
        except Exception as error:  # storage of any kind failing must not lose the conversation
            log.error("turn failed: %s at step %s", type(error).__name__, state.step or "-")
            replies = (Reply("error.try_again"), *self.engine.reprompt(state))
            return Delivery(tuple(self.renderer.render(r, state.locale, channel) for r in replies), earlier=earlier)
        log.info(
            "turn event=%s step=%s->%s understood=%s effects=%s ms=%.1f",
            type(event).__name__,
            state.step or "-",
            done.outcome.state.step or "-",
            done.outcome.understood or "-",  # an intent and a confidence band, never the words
            ",".join(type(e).__name__ for e in done.outcome.effects) or "-",
            (time.perf_counter() - started) * 1000,
        )
        return replace(delivery, earlier=earlier)

    def _delivery(self, done: Done, keep: bool, channel: str) -> Delivery:
        locale = done.outcome.state.locale
        rendered = (self.renderer.render(r, locale, channel) for r in done.replies)
        # A message a charity left empty (for a language, or a channel) is not said at all.
        messages = tuple(m for m in rendered if m.text.strip() or m.options)
        return Delivery(
            messages,
            wipe=done.wipe,
            remember=keep or done.report is not None,
            forget_ids=done.forget and done.report is None and not done.wipe,
            urgent=any(r.message in URGENT_MESSAGES for r in done.replies),
        )

    async def _commit(
        self,
        done: Done,
        key: ChatKey,
        ref: ChatRef,
        event: Event,
        update: tuple[str, int] | None,
        draft: bytes | None,
        on_slow: Notice | None,
    ) -> Delivery | None:
        """Write the turn, and with it what the person is told, in one transaction; the delivery,
        or None if an earlier run took this update already."""
        keep = draft is not None
        delivery = self._delivery(done, keep, ref.channel)
        chosen = done.report or done.erase or done.consent or done.naming or done.unname
        writes = chosen or done.outgoing or draft is not None or done.forget
        if not writes:
            return delivery
        step = step_kind(done, draft)
        answer = None
        if not isinstance(event, Relayed):  # a staff message's own outbox row answers for it
            # Once out, an answer holding a new code, or naming a chat that keeps no draft, leaves
            # the files at once.
            told = Told(secrets.randbits(62), step, scrub=draft is None)
            delivery = replace(delivery, told=told)
            answer = Answer(told.id, seal(str(ref), delivery, step))
        report = done.report
        sending = report is not None and report.send_to is not None
        crashpoints.reached(f"before_commit:{step}")
        commit = self.store.commit_turn(
            key,
            draft=draft,
            forget=done.forget,
            report=report,
            destinations=self.recipients.get(report.send_to or "", ()) if report is not None else (),
            relay_chat=str(ref) if sending else None,
            outgoing=done.outgoing,
            update=update,
            erase=done.erase,
            consent=done.consent,
            answer=answer,
            naming=done.naming,
            unname=done.unname,
            counted=self._counted(report, ref.channel, done.outcome.state.locale),
        )
        told_id = delivery.told.id if delivery.told is not None else None
        if told_id is not None:  # this turn tells it: never handed out to a resend meanwhile
            self._claimed.add(told_id)
        try:
            applied = await self._meanwhile(commit, on_slow if report is not None else None, done, ref.channel)
        except Conflict:
            # The report to erase or change was found gone meanwhile: nothing was written, and
            # the turn says so instead (with nothing left to conflict, this goes through).
            self._claimed.discard(told_id or 0)
            done.replies, done.erase, done.consent, done.naming, done.unname = done.fallback, None, None, None, None
            return await self._commit(done, key, ref, event, update, draft, on_slow)
        except BaseException:
            self._claimed.discard(told_id or 0)
            raise
        if not applied:
            self._claimed.discard(told_id or 0)
            return None
        crashpoints.reached(f"after_commit:{step}")
        if sending and not self.effects.reaches_later(ref):
            await self.store.hold_relays(key)  # nothing can reach them until they come back
        if (sending or done.outgoing or done.erase or done.consent or done.naming) and self.on_queued is not None:
            self.on_queued()
        return delivery

    async def _meanwhile(self, commit: Awaitable[bool], on_slow: Notice | None, done: Done, channel: str) -> bool:
        """Commit; if that takes over a second (the slow hash of a new code, behind others'),
        tell the person their code is being made, then wait for it."""
        task = asyncio.ensure_future(commit)
        try:
            if on_slow is not None:
                finished, _ = await asyncio.wait({task}, timeout=SLOW_COMMIT)
                if not finished:
                    making = self.renderer.render(Reply("report.making_code"), done.outcome.state.locale, channel)
                    await on_slow(making)
        finally:
            if not task.done():  # stopped meanwhile: the write ends first (it holds the chat's connection)
                await asyncio.wait({task})
        return await task

    # ------------------------------------------------------------------ answers not yet out
    async def _others_done(self, key: ChatKey) -> None:
        deadline = time.monotonic() + OTHERS_WAIT
        while await self.store.told_elsewhere(key) and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.25)

    async def _earlier(self, key: ChatKey) -> tuple[Delivery, ...]:
        """What earlier turns of this chat kept and never wholly sent (a crash, or sending
        failed), handed out once, oldest first."""
        if key.digest not in self._unsent and not self.store.shared:
            return ()
        try:
            found = [a for a in await self.store.unsent_answers(key) if self._free(a.id)]
        except StorageError as error:
            log.error("answers not yet out unreadable: %s", type(error).__name__)
            return ()
        self._unsent.discard(key.digest)
        earlier = []
        for unsent in found:
            try:
                _, delivery = opened(unsent)
            except (ValueError, KeyError, TypeError):
                log.error("an answer kept in storage cannot be read: dropped")
                await self.store.answered(unsent.id)
                continue
            if not await self.store.take_answer(unsent.id):
                break  # another instance took it meanwhile: the rest after it are its too
            self._claimed.add(unsent.id)
            earlier.append(delivery)
        if earlier:
            log.info("%d answer(s) an earlier turn never sent: sending now", len(earlier))
        return tuple(earlier)

    async def unsent_on(self, channel: str) -> list[tuple[str, Delivery]]:
        """At a start, for a channel that can reach people unasked: every answer kept for one of
        its chats and never wholly sent, as (chat id, delivery), handed out once. With instances
        sharing a database, what instances that stopped were still to tell (this one's own wait
        for their chat's next turn, as after a failed send)."""
        kept = await (self.store.stopped_answers() if self.store.shared else self.store.unsent_answers())
        by_chat: dict[bytes, list[tuple[Unsent, str, Delivery]]] = {}
        for unsent in kept:
            try:
                chat, delivery = opened(unsent)
            except (ValueError, KeyError, TypeError):
                continue  # dropped at that chat's next turn
            ref = ChatRef.parse(chat)
            if ref is not None and ref.channel == channel:
                by_chat.setdefault(unsent.chat.digest, []).append((unsent, ref.chat_id, delivery))
        found = []
        for answers in by_chat.values():
            # Each chat's, in order, under the chat's lock: a turn of that chat handing them out
            # at the same moment takes all of them or none, never some out of order.
            async with self._lock(answers[0][0].chat):
                for unsent, chat_id, delivery in answers:
                    if not self._free(unsent.id) or not await self.store.take_answer(unsent.id):
                        break
                    self._claimed.add(unsent.id)
                    found.append((chat_id, delivery))
        return found

    def _free(self, answer_id: int) -> bool:
        """Neither being sent now nor gone already."""
        return answer_id not in self._claimed and answer_id not in self._gone

    async def answer_progress(self, told: Told, parts: int) -> None:
        """``parts`` of the answer are out (there are more): a crash now sends only the rest."""
        try:
            await self.store.answer_sent(told.id, parts)
        except StorageError as error:
            log.error("answer progress not written: %s", type(error).__name__)

    async def answer_out(self, told: Told) -> None:
        """The whole answer has gone out: forget it (a code leaves the files at once)."""
        try:
            await self.store.answered(told.id, scrub=told.scrub)
        except StorageError as error:  # it goes again at the next start: at least once
            log.error("answer not forgotten: %s", type(error).__name__)
        self._gone.add(told.id)
        self._claimed.discard(told.id)

    async def answer_waits(self, key: ChatKey, told: Told, parts: int) -> None:
        """Sending failed after ``parts`` parts: the rest goes before the chat's next answer."""
        if parts > told.skip:
            await self.answer_progress(told, parts)
        self.answer_later(key, told)

    def answer_later(self, key: ChatKey, told: Told) -> None:
        """The answer did not go out (as far as written down): it goes before the chat's next
        answer, or when the chat comes back."""
        self._claimed.discard(told.id)
        self._unsent.add(key.digest)

    async def answer_dropped(self, told: Told) -> None:
        """The person left (quick exit) before it went: it is never sent."""
        await self.answer_out(told)

    async def stored(self, channel: str, chat_id: str) -> bool:
        """Whether this chat has anything in storage: a draft, or an answer not yet out."""
        key = self.key(channel, chat_id)
        if key.digest in self._unsent:
            return True
        try:
            return await self.store.load_draft(key) is not None
        except StorageError:
            return False

    async def hold_again(self, channel: str, chat_id: str) -> None:
        """Staff messages released to a chat that cannot be reached later have been fetched:
        what staff send from now on is held again, until the next time the code is given."""
        await self.store.hold_relays(self.key(channel, chat_id))

    def _wake(self, queued: bool) -> None:
        if queued and self.on_queued is not None:
            self.on_queued()

    async def _load(self, key: ChatKey) -> tuple[State, bool]:
        """The conversation's state, and whether it is in storage. Every turn writes the state
        through to the encrypted store; it is read back from there only after a restart."""
        held = self._positions.held(key)
        if held is not None and not self.store.shared:
            return held
        # Shared: another instance may have taken the chat's last turn, so the draft is read
        # again; a state never stored (a menu, a language) is only ever this instance's.
        try:
            raw = await self.store.load_draft(key)
        except StorageError as error:
            log.warning("draft unreadable (%s): starting afresh", type(error).__name__)
            return State(), True
        if raw:
            return State.from_json(raw), True
        if held is not None and not held[1]:
            return held
        return State(), False

    async def warm(self) -> None:
        """After a start: remember which updates were handled lately, so redeliveries are caught
        in memory rather than by a read per update, and which chats have answers not yet out."""
        for update in await self.store.recent_updates():
            self._recent.add(update)
        for unsent in await self.store.unsent_answers():
            self._unsent.add(unsent.chat.digest)
