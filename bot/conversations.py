"""One turn of a conversation, for every channel: load the draft, ask the engine, carry out
its effects, keep the draft (or drop it), render the replies.

Effects run before replies are sent: a person is never shown a reference for a report that
was not stored. If storage fails, nothing moves on: the person is asked to try again and the
conversation stays where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Generic, Protocol, TypeVar

from bot.transport import ChatRef
from flows import Engine, Event, Outcome, State
from flows.definitions import URGENT_MESSAGES
from flows.effects import ChangeConsent, CheckReport, EraseReport, ForgetDraft, RelayToStaff, StoreReport, WipeChat
from flows.events import Command, Relayed, Unlocked
from flows.replies import Reply
from responses import Rendered, Renderer
from storage import ChatKey, Keyring, NewReport, Relays, Reports, StorageError, Turns

T = TypeVar("T")
log = logging.getLogger("reachable.conversations")
EXIT = Command(name="exit")


class ConversationStore(Turns, Reports, Relays, Protocol):
    """What a conversation reads and writes."""


# Channels that cannot reach a person later (a web page has no push): staff messages to them
# wait, held, until the person comes back and enters their code.
PULL_ONLY = frozenset({"web"})
SLOW_COMMIT = 1.0  # seconds before someone keeping a report is told their code is being made
Notice = Callable[[Rendered], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel must do after one event: optionally wipe the chat, then send ``messages``.

    ``remember``: this chat now has something stored (a report draft, or a report just kept or
    sent), so its message ids may be written down for the quick exit; before that they stay in
    memory. ``forget_ids``: the draft went and nothing was kept, so the ids written down go too.
    """

    messages: tuple[Rendered, ...]
    wipe: bool = False
    duplicate: bool = False
    limited: bool = False
    remember: bool = False
    forget_ids: bool = False
    urgent: bool = False  # emergency or suicide help: sent before others' replies when sends wait
    # A duplicate whose turn an earlier run kept: its replies may never have left.
    kept_before: bool = False


@dataclass(slots=True)
class _Done:
    """What carrying out a turn's effects decided: what to say, and what to write."""

    outcome: Outcome
    replies: tuple[Reply, ...]
    report: NewReport | None = None
    outgoing: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    forget: bool = False
    wipe: bool = False


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
        self._before_start: set[tuple[str, int]] = set()  # of those, the ones handled by an earlier run
        self._asked_again: Lately[bytes] = Lately(100_000)  # chats asked their question again (replay)
        self.flood = FloodGuard()

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
    ) -> Delivery:
        """One event from one chat. ``update_id`` makes redelivered updates harmless: a turn whose
        update was already handled does nothing and returns ``Delivery(duplicate=True)``.
        ``on_slow``: how to tell the person, meanwhile, that their code is being made when
        keeping a report takes longer than a second."""
        key = self.key(channel, chat_id)
        update = (channel, update_id) if update_id is not None else None
        if update is not None:
            if update in self._recent:
                log.info("duplicate update ignored")
                return Delivery((), duplicate=True, kept_before=update in self._before_start)
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
        async with self._lock(key):
            return await self._handle(key, ChatRef(channel, str(chat_id)), event, update, locale_hint, on_slow)

    async def replay(self, channel: str, chat_id: str | int, event: Event) -> Delivery:
        """An event whose turn an earlier run kept, though its replies may never have left (a stop
        or crash in between). Nothing is kept twice. A quick exit is carried out again (a second
        time changes nothing); urgent help it asks for is given again; otherwise the question the
        conversation is waiting on is asked again, once in this run however many such events a
        crash left."""
        key = self.key(channel, chat_id)
        async with self._lock(key):
            state, stored = await self._load(key)
        outcome = self.engine.handle(state, event)  # only read: none of its effects is carried out
        if any(isinstance(effect, WipeChat) for effect in outcome.effects):
            return await self.handle(channel, chat_id, event)
        if any(reply.message in URGENT_MESSAGES for reply in outcome.replies):
            replies, urgent = outcome.replies, True
        elif key.digest in self._asked_again:
            return Delivery(())
        else:
            self._asked_again.add(key.digest)
            replies, urgent = self.engine.reprompt(state), False
        messages = tuple(self.renderer.render(r, state.locale, channel) for r in replies)
        return Delivery(messages, remember=stored, urgent=urgent)

    async def _handle(
        self,
        key: ChatKey,
        ref: ChatRef,
        event: Event,
        update: tuple[str, int] | None,
        locale_hint: str | None,
        on_slow: Notice | None = None,
    ) -> Delivery:
        chat, channel = str(ref), ref.channel
        started = time.perf_counter()
        state, stored = await self._load(key)
        if state == State() and locale_hint:
            hint = locale_hint.split("-")[0].casefold()
            if hint in self.engine.lexicon.locales:
                state = state.evolve(locale=hint)
        outcome = self.engine.handle(state, event)
        try:
            done = await self._carry_out(outcome, key, chat)
            outcome, replies = done.outcome, done.replies
            report, outgoing, forget, wipe = done.report, done.outgoing, done.forget, done.wipe
            keep = self.engine.worth_keeping(outcome.state)
            draft = outcome.state.to_json() if keep else None
            forget = (forget or stored) and not keep
            if report is not None or draft is not None or forget or outgoing:
                sending = report is not None and report.send_to is not None
                commit = self.store.commit_turn(
                    key,
                    draft=draft,
                    forget=forget,
                    report=report,
                    destinations=self.recipients.get(report.send_to or "", ()) if report is not None else (),
                    relay_chat=chat if sending else None,
                    outgoing=outgoing,
                    update=update,
                )
                slow = on_slow if report is not None else None
                applied = await self._meanwhile(commit, slow, outcome.state.locale, channel)
                if not applied:  # marked in storage, unknown to this run: an earlier run kept it
                    log.info("duplicate update ignored")
                    return Delivery((), duplicate=True, kept_before=True)
                if sending and channel in PULL_ONLY:
                    await self.store.hold_relays(key)  # nothing can reach them until they come back
                if (sending or outgoing) and self.on_queued is not None:
                    self.on_queued()
            self._positions.put(key, outcome.state, stored=keep)
            remember = keep or report is not None
            forget_ids = forget and report is None and not wipe
        except Exception as error:  # storage of any kind failing must not lose the conversation
            log.error("turn failed: %s at step %s", type(error).__name__, state.step or "-")
            replies = (Reply("error.try_again"), *self.engine.reprompt(state))
            return Delivery(tuple(self.renderer.render(r, state.locale, channel) for r in replies))
        log.info(
            "turn event=%s step=%s->%s understood=%s effects=%s ms=%.1f",
            type(event).__name__,
            state.step or "-",
            outcome.state.step or "-",
            outcome.understood or "-",  # an intent and a confidence band, never the words
            ",".join(type(e).__name__ for e in outcome.effects) or "-",
            (time.perf_counter() - started) * 1000,
        )
        locale = outcome.state.locale
        messages = tuple(self.renderer.render(r, locale, channel) for r in replies)
        urgent = any(r.message in URGENT_MESSAGES for r in replies)
        return Delivery(messages, wipe=wipe, remember=remember, forget_ids=forget_ids, urgent=urgent)

    async def _meanwhile(self, commit: Awaitable[bool], on_slow: Notice | None, locale: str, channel: str) -> bool:
        """Commit; if that takes over a second (the slow hash of a new code, behind others'),
        tell the person their code is being made, then wait for it."""
        task = asyncio.ensure_future(commit)
        if on_slow is not None:
            done, _ = await asyncio.wait({task}, timeout=SLOW_COMMIT)
            if not done:
                await on_slow(self.renderer.render(Reply("report.making_code"), locale, channel))
        return await task

    async def _carry_out(self, outcome: Outcome, key: ChatKey, chat: str) -> _Done:
        """Carry out the engine's effects before anything is said: what to say depends on them."""
        done = _Done(outcome, outcome.replies)
        for effect in outcome.effects:
            match effect:
                case StoreReport():
                    done.report = effect
                case ForgetDraft():
                    done.forget = True
                case EraseReport():
                    await self._erase(done, effect)
                case CheckReport():
                    await self._check(done, effect, key, chat)
                case ChangeConsent():
                    await self._change(done, effect, key, chat)
                case RelayToStaff():
                    await self._relay(done, effect, chat)
                case WipeChat():
                    done.wipe = True
                    # Nothing from staff reaches this chat until the person comes back with their code.
                    held = await self.store.hold_relays(key)
                    if held:
                        log.info("quick exit: %d relay(s) held", len(held))
        return done

    async def _erase(self, done: _Done, effect: EraseReport) -> None:
        if effect.reference:
            erased = await self.store.erase_by_reference(effect.reference)
        else:
            erased = await self.store.erase_report(effect.code)
        done.replies = effect.erased if erased else effect.not_found
        self._wake(bool(erased))

    async def _change(self, done: _Done, effect: ChangeConsent, key: ChatKey, chat: str) -> None:
        changed = await self.store.change_consent(
            effect.reference,
            send_to=effect.send_to,
            allow_reply=effect.allow_reply,
            destinations=self.recipients.get(effect.send_to or "", ()),
            key=key,
            chat=chat,
        )
        done.replies = effect.done if changed else effect.gone
        self._wake(changed)

    async def _relay(self, done: _Done, effect: RelayToStaff, chat: str) -> None:
        """The person's answer goes to whoever they sent the report to, if the relay is open."""
        found = await self.store.get_report(effect.reference)
        if found is None or await self.store.relay_chat(effect.reference) != chat:
            done.replies = effect.closed
            return
        answer = {"text": effect.text}
        destinations = self.recipients.get(found.send_to or "", ())
        done.outgoing.extend((effect.reference, d, "answer", answer) for d in destinations)
        done.replies = effect.sent

    async def _check(self, done: _Done, effect: CheckReport, key: ChatKey, chat: str) -> None:
        """Back with their code: how the report stands and what can change now; and whatever
        staff sent after a quick exit is released to this chat."""
        found = await self.store.find_by_code(effect.code)
        if found is None:
            done.replies = effect.not_found
            return
        released = 0
        if await self.store.relay_held(found.reference):
            released = await self.store.release_held(found.reference, key, chat)
            self._wake(True)
        what = found.summary.get("what", ())
        unlocked = Unlocked(
            reference=found.reference,
            status=found.status,
            what=what if isinstance(what, tuple) else (),
            send_to=found.send_to,
            allow_reply=found.allow_reply and await self.store.relay_chat(found.reference) is not None,
            released=released,
        )
        follow = self.engine.handle(done.outcome.state, unlocked)
        done.outcome = replace(follow, effects=done.outcome.effects, understood=done.outcome.understood)
        done.replies = follow.replies

    def _wake(self, queued: bool) -> None:
        if queued and self.on_queued is not None:
            self.on_queued()

    async def _load(self, key: ChatKey) -> tuple[State, bool]:
        """The conversation's state, and whether it is in storage. Every turn writes the state
        through to the encrypted store; it is read back from there only after a restart."""
        held = self._positions.held(key)
        if held is not None:
            return held
        try:
            raw = await self.store.load_draft(key)
        except StorageError as error:
            log.warning("draft unreadable (%s): starting afresh", type(error).__name__)
            return State(), True
        if raw:
            return State.from_json(raw), True
        return State(), False

    async def warm(self) -> None:
        """After a start: remember which updates were handled lately, so redeliveries are caught
        in memory rather than by a read per update."""
        for update in await self.store.recent_updates():
            self._recent.add(update)
            self._before_start.add(update)


class Positions:
    """Where each conversation stands, in memory. Those without any content (a menu, an advice
    page) live only here: nothing reaches the disk for someone who never starts a report, and
    after a restart they start again at the welcome. Drafts are also written to the encrypted
    store every turn; holding them here saves reading them back. Bounded in size and age (the
    age of a draft on disk)."""

    def __init__(
        self,
        limit: int = 100_000,
        ttl: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.ttl = ttl
        self.clock = clock
        self._held: OrderedDict[bytes, tuple[float, State, bool]] = OrderedDict()

    def held(self, key: ChatKey) -> tuple[State, bool] | None:
        """The state, and whether it is also in storage; None if not held (or too old)."""
        found = self._held.get(key.digest)
        if found is None or self.clock() - found[0] > self.ttl:
            self._held.pop(key.digest, None)
            return None
        return found[1], found[2]

    def get(self, key: ChatKey) -> State | None:
        found = self.held(key)
        return found[0] if found else None

    def put(self, key: ChatKey, state: State, stored: bool = False) -> None:
        self._held[key.digest] = (self.clock(), state, stored)
        self._held.move_to_end(key.digest)
        while len(self._held) > self.limit:
            self._held.popitem(last=False)

    def __len__(self) -> int:
        return len(self._held)


class Lately(Generic[T]):
    """The last ``limit`` things added, in memory (update ids handled lately catch redelivery
    within a run without a read)."""

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[T, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def add(self, item: T) -> None:
        self._ids[item] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


class Flood(Enum):
    ALLOW = 1
    WARN = 2  # over the limit: say so, once
    DROP = 3  # still over the limit: ignore quietly


class FloodGuard:
    """A token bucket per chat: a burst of ``burst`` messages, then ``rate`` a second. A chat over
    it is told once, kindly, and its messages are ignored until it slows down. The check is
    synchronous and cheap, so a flood costs the bot almost nothing."""

    def __init__(
        self,
        burst: int = 20,
        rate: float = 1.0,
        limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.limit = limit
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float, bool]] = OrderedDict()

    def check(self, chat: bytes) -> Flood:
        now = self.clock()
        tokens, stamp, warned = self._buckets.get(chat, (self.burst, now, False))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1:
            # Told once per flood: the warning is forgotten only once the chat has calmed down
            # enough to fill its bucket again, not at each token that trickles back.
            verdict, warned = Flood.ALLOW, warned and tokens < self.burst
            tokens -= 1
        else:
            verdict, warned = (Flood.DROP if warned else Flood.WARN), True
        self._buckets[chat] = (tokens, now, warned)
        self._buckets.move_to_end(chat)
        if len(self._buckets) > self.limit:
            self._buckets.popitem(last=False)
        return verdict
