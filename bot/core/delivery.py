"""Delivering what waits in the outbox: summaries, withdrawal notices and relayed messages.

The guarantee
-------------
*At least once, and never silently twice.* A summary and its deliveries are written in the
same transaction as the person's consent, so nothing consented can be lost: a crash before
sending leaves the delivery queued, and the worker sends it after the restart. Each delivery is
marked "sending" before it goes out and "sent" after the channel accepted it. Retries use
exponential backoff with jitter, and honour Telegram's ``retry_after``.

The one window no software can close is a crash (or a dropped connection) after Telegram or the
mail server accepted a message but before its answer reached us: we cannot know whether it
arrived. Such a delivery is sent again, marked "Possible repeat" with the same reference, so staff
never count one report twice; emails keep the same Message-ID, which mail systems use to merge
copies. Every other failure (429, 5xx, refused connections, 4xx from SMTP) is delivered exactly
once after recovery, which the tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import ssl
import time
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from bot.core import crashpoints, tasks
from bot.core.settings import Settings
from bot.core.staff import StaffDesk
from bot.core.transport import ChatRef
from storage import Instances, Outbox, Outgoing

log = logging.getLogger("reachable.delivery")
MAX_ATTEMPTS = 30  # about two days of capped backoff
MAX_BACKOFF = 600.0
FAILED_ROUND_WAIT = 5.0  # seconds before another round when storage failed
# How long, from a start, what goes through a channel of this process not yet up (the Telegram bot
# checks its staff chats first) waits for it without counting a try; past it, such a delivery
# is tried, and waits with backoff, like any other that nothing here sends.
CHANNELS_UP_WAIT = 60.0
# While a channel is starting, a round at least this often (what nothing can send yet, due now,
# would otherwise bring the next round at once) and at most this long after the last.
STARTING_ROUND_WAIT = 1.0


class RetryLater(Exception):
    """The destination asked us to wait (``after`` seconds), or failed in a way worth retrying."""

    def __init__(self, after: float | None = None, reason: str = "") -> None:
        super().__init__(reason)
        self.after = after
        self.reason = reason


class GiveUp(Exception):
    """The delivery can never succeed (the person blocked the bot, say)."""


class PartlySent(Exception):
    """Some deliveries of a combined send went out before ``error``; the rest did not."""

    def __init__(self, sent: list[Outgoing], error: RetryLater) -> None:
        super().__init__(error.reason)
        self.sent = sent
        self.error = error


class Forwarder(Protocol):
    destination: str

    async def send(self, item: Outgoing) -> None:
        """Deliver ``item`` or raise RetryLater / GiveUp."""


class Combining(Forwarder, Protocol):
    async def send_combined(self, items: list[Outgoing]) -> None:
        """Deliver several at once (fewer messages when a backlog builds), or raise PartlySent."""


# What goes first when sends must wait for the platform's rate: help in an emergency, then
# replies in a conversation, then staff summaries and notices.
URGENT, REPLY, STAFF = 0, 1, 2


class TokenBucket:
    """At most ``rate`` a second on average, ``burst`` at once; ``take`` says whether one may go now."""

    def __init__(self, rate: float, burst: float) -> None:
        self.refill = rate
        self.capacity = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def _fill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now

    def take(self) -> bool:
        self._fill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def spend(self) -> None:
        """One went now, whether or not there was a token: the next waits the longer."""
        self._fill()
        self.tokens -= 1

    def delay(self) -> float:
        """Seconds until one may go (0 if now)."""
        self._fill()
        return max(0.0, (1 - self.tokens) / self.refill)


class Pacer(TokenBucket):
    """A token bucket: at most ``rate`` sends per ``per`` seconds, ``burst`` at once. A token is
    taken when a send leaves, not when it is allowed: sends allowed in turn but held up (by a
    busy event loop, or by another pacer) never reach the platform bunched. Those waiting are
    served by priority (lowest number first), then in the order they came.

    ``wait`` is for a send that leaves at once. A send that must pass a second pacer too (a
    group's limit a minute, then the limit a second) ``reserve``s a place here first, and then
    says ``leaving`` when it goes, or ``release`` if it does not."""

    def __init__(self, rate: float, per: float, burst: float | None = None) -> None:
        super().__init__(rate / per, float(burst if burst is not None else rate))
        self._granted = 0  # allowed to go, not yet gone
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._released = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    def _free(self) -> float:
        self._fill()
        return self.tokens - self._granted

    async def wait(self, priority: int = REPLY) -> None:
        await self.reserve(priority)
        self.leaving()

    async def reserve(self, priority: int = REPLY) -> None:
        if not self._waiting and self._free() >= 1:
            self._granted += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve())
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # allowed just as it was cancelled: give it back
                self.release()
            raise

    def leaving(self) -> None:
        """A reserved send goes now: it takes its token."""
        self._granted -= 1
        self.spend()

    def release(self) -> None:
        """A reserved send does not go after all."""
        self._granted -= 1
        self._released.set()

    async def _serve(self) -> None:
        while self._waiting:
            free = self._free()
            if free < 1:
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), (1 - free) / self.refill)
                continue
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # its sender may have given up waiting: the place goes to the next
                self._granted += 1
                turn.set_result(None)


class EmailForwarder:
    """Email to one recipient's addresses, over SMTP with STARTTLS (aiosmtplib)."""

    def __init__(self, settings: Settings, desk: StaffDesk, destination: str, to: tuple[str, ...]) -> None:
        self.settings = settings
        self.desk = desk
        self.destination = destination
        self.to = to
        self.tls = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)

    async def send(self, item: Outgoing) -> None:
        text = await self.desk.compose(item, by_email=True)
        if text is None:
            return
        settings = self.settings
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(self.to)
        message["Subject"] = text.subject
        # The same delivery always carries the same Message-ID, so a repeat merges with the first.
        message["Message-ID"] = f"<{item.kind}.{item.reference}.{item.id}@reachable.invalid>"
        message.set_content(text.body)
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                start_tls=settings.smtp_starttls,
                tls_context=self.tls if settings.smtp_starttls else None,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                timeout=30,
            )
        except aiosmtplib.SMTPResponseException as error:
            raise RetryLater(reason=f"SMTP {error.code}") from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise RetryLater(reason=type(error).__name__) from error


class WorkerStore(Outbox, Instances, Protocol):
    """What the delivery worker reads and writes."""


class DeliveryWorker:
    """Sends due deliveries, one destination's pause never holding up another."""

    def __init__(
        self, store: WorkerStore, forwarders: dict[str, Forwarder] | None = None, backoff: float = 1.0
    ) -> None:
        self.store = store
        self.backoff = backoff
        self.forwarders: dict[str, Forwarder] = dict(forwarders or {})
        self._wake = asyncio.Event()
        self._paused: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.progress = time.monotonic()  # when the outbox last had nothing overdue
        self._awaited: set[str] = set()  # channels of this process not up yet
        self._starting_until = 0.0  # when a channel not up by then counts as down
        # Deliveries put back while starting, by the channel they wait for (None: every channel).
        self._held: dict[int, str | None] = {}

    def stuck_for(self) -> float:
        """Seconds since the worker last made a round with nothing due left behind."""
        return time.monotonic() - self.progress

    def expect(self, channels: Iterable[str]) -> None:
        """Channels this process will serve once they are up (the Telegram bot, once it has
        checked its staff chats). Until each has attached, or CHANNELS_UP_WAIT from the start has
        passed, what goes through it (a summary for a staff chat, a reply to someone on it) waits
        without counting a try, rather than counting as undeliverable and waiting its backoff
        (minutes, after an outage); everything else (email, the other channels) goes at once."""
        self._awaited.update(channels)

    def attached(self, channel: str) -> None:
        """The channel ``channel`` sends from now: its staff chats and people were added."""
        self._awaited.discard(channel)
        self.wake()

    def add(self, forwarder: Forwarder) -> None:
        self.forwarders[forwarder.destination] = forwarder

    def wake(self) -> None:
        """Something was queued: look now rather than at the next timer."""
        self._wake.set()

    async def start(self) -> None:
        recovered = await self.store.recover_in_flight()
        if recovered:
            log.warning("%d delivery(ies) were interrupted mid-send; sending again, marked", recovered)
        self._starting_until = time.monotonic() + CHANNELS_UP_WAIT
        self._task = asyncio.create_task(self._run(), name="reachable-delivery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    def _starting(self) -> float:
        """Seconds left for a channel this process serves to come up; 0 once all are up or it
        is too late: the channels still down are then no longer awaited (and a warning logged),
        and what goes through them is tried, and waits, like any other delivery."""
        if not self._awaited:
            return 0.0
        left = self._starting_until - time.monotonic()
        if left <= 0:
            log.warning("not up %.0f s after the start: %s", CHANNELS_UP_WAIT, ", ".join(sorted(self._awaited)))
            self._awaited.clear()
            return 0.0
        return left

    async def _run(self) -> None:
        while True:
            tasks.stop_if_asked()
            self._wake.clear()  # before the round: a wake during it starts another at once
            failed = False
            try:
                sent = await self.run_once()
                due = None if sent else await self.store.next_due_in()
            except Exception as error:  # storage failing stops no round for good: try again soon
                log.error("delivery round failed: %s", type(error).__name__)
                sent, due, failed = 0, FAILED_ROUND_WAIT, True
            if sent:
                self.progress = time.monotonic()
                continue
            if not failed and (due is None or due > 0):
                self.progress = time.monotonic()  # nothing is waiting that could go now
            timeout = 30.0 if due is None else min(max(due, 0.05), 30.0)
            starting = self._starting()
            if starting:  # what is due now may be waiting for a channel: not at once, nor long
                timeout = min(timeout if due else STARTING_ROUND_WAIT, STARTING_ROUND_WAIT, starting)
            tasks.stop_if_asked()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and stop() would then wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Send what is due now; the number of deliveries handled."""
        starting = self._starting()
        for delivery_id, channel in list(self._held.items()):
            if not self._awaited or (channel is not None and channel not in self._awaited):  # due at once
                await self.store.release(delivery_id, 0)
                del self._held[delivery_id]
        # With instances sharing a database, only what this one can send: another sends the rest.
        # While a channel is starting, not to destinations nothing sends yet: its staff chats.
        mine = tuple(self.forwarders) if self.store.shared or starting else None
        items = await self.store.claim_due(limit=50, destinations=mine)
        if starting:
            items = [i for i in items if not await self._hold(i, starting)]
        summaries = [i for i in items if i.kind == "summary"]
        forwarders = {i.destination for i in summaries}
        for destination in forwarders:
            forwarder = self.forwarders.get(destination)
            batch = [i for i in summaries if i.destination == destination]
            if len(batch) > 1 and hasattr(forwarder, "send_combined") and self._open(destination):
                await self._deliver_combined(forwarder, batch)  # type: ignore[arg-type]
                items = [i for i in items if i not in batch]
        for item in items:
            tasks.stop_if_asked()
            await self._deliver(item)
        return len(items) + sum(1 for i in summaries if i not in items)

    async def _hold(self, item: Outgoing, starting: float) -> bool:
        """Put ``item`` back untried if it goes to someone on a channel not up yet."""
        if item.destination != "person":
            return False
        chat = ChatRef.parse(str(item.data.get("chat", "")))
        if chat is None or chat.channel not in self._awaited:
            return False
        await self.store.release(item.id, starting)
        self._held[item.id] = chat.channel
        return True

    def _open(self, destination: str) -> bool:
        return self._paused.get(destination, 0.0) <= time.monotonic()

    async def _deliver_combined(self, forwarder: Combining, batch: list[Outgoing]) -> None:
        crashpoints.reached("delivery_claimed:summary")
        try:
            await forwarder.send_combined(batch)
        except PartlySent as partly:
            for item in partly.sent:
                await self.store.delivered(item.id)
            for item in batch:
                if item not in partly.sent:
                    await self._retry(item, partly.error)
        else:
            crashpoints.reached("delivery_out:summary")
            for item in batch:
                await self.store.delivered(item.id)
            log.info("delivered %d summaries to %s in fewer messages", len(batch), forwarder.destination)

    async def _deliver(self, item: Outgoing) -> None:
        forwarder = self.forwarders.get(item.destination)
        paused = self._paused.get(item.destination, 0.0) - time.monotonic()
        if paused > 0:
            await self.store.postpone(item.id, paused)  # the destination asked us to wait
            return
        if forwarder is None:
            # Nothing here sends there (the setting was removed, or no bot runs): retried with
            # backoff, and given up after the same bounded number of tries as any failure.
            await self._retry(item, RetryLater(reason=f"nothing sends to {item.destination} here"))
            return
        crashpoints.reached(f"delivery_claimed:{item.kind}")
        try:
            await forwarder.send(item)
        except RetryLater as later:
            await self._retry(item, later)
        except GiveUp as error:
            log.warning("delivery %s to %s cannot succeed: %s", item.kind, item.destination, error)
            await self._give_up(item)
        else:
            crashpoints.reached(f"delivery_out:{item.kind}")
            await self.store.delivered(item.id)
            log.info("delivered %s to %s", item.kind, item.destination)

    async def _give_up(self, item: Outgoing) -> None:
        """Stop trying, and tell staff through every other way they are reached. While a channel
        is starting, not yet: its staff chats are among those ways, and are not known before it
        is up; tried once more then (its tries already counted), and given up after that."""
        starting = self._starting()
        if starting:
            await self.store.postpone(item.id, starting)
            self._held[item.id] = None
            return
        await self.store.postpone(item.id, 0, give_up=True)
        if item.kind == "undeliverable":
            return
        others = [d for d in self.forwarders if d not in (item.destination, "person")]
        for destination in others:
            data = {"destination": item.destination, "kind": item.kind, "attempts": item.attempts}
            await self.store.enqueue(item.reference, destination, "undeliverable", data)
        if not others:
            log.error("a %s for %s was given up and no other way reaches staff", item.kind, item.destination)
        self.wake()

    async def _retry(self, item: Outgoing, later: RetryLater) -> None:
        wait = later.after if later.after is not None else self.backoff * self._backoff(item.attempts)
        if later.after is not None:
            self._paused[item.destination] = time.monotonic() + later.after
        give_up = item.attempts >= MAX_ATTEMPTS
        log.warning(
            "delivery %s to %s: %s; %s",
            item.kind,
            item.destination,
            later.reason or "retry",
            "giving up" if give_up else f"retrying in {wait:.0f}s",
        )
        if give_up:
            await self._give_up(item)
        else:
            await self.store.postpone(item.id, wait)

    @staticmethod
    def _backoff(attempts: int) -> float:
        return min(MAX_BACKOFF, 2.0 ** min(attempts, 12)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
