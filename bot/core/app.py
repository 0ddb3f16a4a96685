"""``create_app(settings)`` builds everything; ``__main__`` only reads settings and calls it."""

from __future__ import annotations

import asyncio
import gc
import logging
from types import TracebackType

from bot.core import tasks
from bot.core.channel import Ports
from bot.core.conversations import Conversations
from bot.core.delivery import DeliveryWorker, EmailForwarder
from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.core.staff import StaffDesk
from bot.core.stores import keyring_of, open_inbox, open_store
from flows import Engine, EngineConfig
from flows.classifier import TrainedInBackground
from flows.codes import Tokens
from flows.definitions import build_flows
from flows.engine import Offer
from responses import Renderer, Responses
from storage import Store
from storage.base import BEAT
from storage.inbox import Inbox, MemoryInbox
from storage.lock import DataLock, NoLock
from storage.matching import MatchingKey

log = logging.getLogger("reachable")
PURGE_EVERY = 15 * 60
COUNT_EVERY = 60  # seconds between writes of what was looked at (no chat in it)


def offers(settings: Settings) -> tuple[Offer, ...]:
    """Who the engine may offer to send a summary to: only recipients with a destination."""
    return tuple(Offer(key, r.only_for, r.via_support) for key, r in settings.recipients.items())


class App:
    """Everything one running bot needs; ``async with app`` opens storage and starts the purge."""

    def __init__(self, settings: Settings, tokens: Tokens | None = None, store: Store | None = None) -> None:
        emails = any(d.endswith(":email") for d in (*settings.destinations, *settings.matching_destinations))
        if emails and not settings.smtp_starttls and not settings.smtp_insecure_plaintext:
            raise ConfigError(
                "REACHABLE_SMTP_STARTTLS=false would send summaries and the mail password unencrypted. "
                "Use a mail server with STARTTLS, or set REACHABLE_SMTP_INSECURE_PLAINTEXT=true if you accept that"
            )
        self.settings = settings
        self.responses = Responses.load(settings.responses_dir)
        flows = build_flows(self.responses.question_order, self.responses.questions_off)
        self.understander = TrainedInBackground(
            self.responses.examples(), dict(self.responses.language_samples()), cache=settings.model_cache
        )
        matching = settings.matching_destinations
        self.engine = Engine(
            self.responses,
            EngineConfig(recipients=offers(settings), matching=bool(matching)),
            tokens=tokens,
            flows=flows,
            understander=self.understander,
        )
        self.renderer = Renderer(self.responses, settings.retention_days, settings.draft_hours)
        self.keyring = keyring_of(settings)
        # Only a service with a matching contact makes (and needs) the matching key.
        matching_key = (
            MatchingKey.load(settings.matching_key_path, create=not settings.shared_database) if matching else None
        )
        opened = open_store(settings, self.keyring, matching_key) if store is None else None
        self.store: Store = store or opened  # type: ignore[assignment]
        # The inbox lives with the store's data, or in memory with a store handed in.
        self.inbox: Inbox = open_inbox(settings, opened) if opened is not None else MemoryInbox()
        self.delivery = DeliveryWorker(self.store)
        self.desk = StaffDesk(self.store, self.engine, self.renderer, on_queued=self.delivery.wake)
        contacts = {**settings.recipients, **({"matching": settings.matching} if settings.matching else {})}
        for key, recipient in contacts.items():
            if recipient.email:
                self.delivery.add(EmailForwarder(settings, self.desk, f"{key}:email", recipient.email))
        self.conversations = Conversations(
            self.engine,
            self.renderer,
            self.store,
            self.keyring,
            recipients={key: r.destinations(key) for key, r in settings.recipients.items()},
            on_queued=self.delivery.wake,
            draft_hours=settings.draft_hours,
            matching=matching,
        )
        self._purger: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        # One process per SQLite file; instances sharing a PostgreSQL database need no such lock.
        self.lock = NoLock() if settings.shared_database else DataLock(settings.data_dir, "start another")

    def ports(self) -> Ports:
        """What a channel needs of the running bot, and nothing more."""
        return Ports(
            conversations=self.conversations,
            desk=self.desk,
            store=self.store,
            delivery=self.delivery,
            group_notice=lambda: self.responses.text("en", "group.private_only"),
            staff_chats={d: str(chat) for d, chat in self.settings.staff_chats.items()},
            staff_users=self.settings.staff_users,
            # As the store last heard: a second heartbeat of the app's own would lag it by one more.
            instances=self.store.live,
        )

    async def __aenter__(self) -> App:
        self.lock.acquire()
        try:
            await self.store.open()
            await self.inbox.open()
        except BaseException:
            await self.store.close()
            self.lock.release()
            raise
        try:
            # Ready before the first message: training ran while the rest started up.
            classifier = await asyncio.to_thread(self.understander.ready)
            log.info(
                "understanding step ready (%s model): %d examples, trained in %.2f s",
                self.understander.source,
                classifier.examples,
                classifier.training_seconds,
            )
            await self.purge()
            await self.conversations.warm()
            await self.delivery.start()
        except BaseException:
            await self.inbox.close()
            await self.store.close()
            self.lock.release()
            raise
        self._purger = asyncio.create_task(self._purge_forever())
        if self.store.shared:
            self._beating = asyncio.create_task(self._beat_forever(), name="reachable-heartbeat")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await tasks.stop(self._beating)
            await tasks.stop(self._purger)
            await self.delivery.stop()
            await self.count_browsing()
        finally:
            try:
                await self.inbox.close()
            finally:
                try:
                    await self.store.close()
                finally:
                    self.lock.release()

    async def count_browsing(self) -> None:
        """Write the screens shown and advice opened since the last time (no chat in them)."""
        counts = self.conversations.browsing.take()
        try:
            await self.store.tally(counts)
        except Exception as error:
            self.conversations.browsing.give_back(counts)
            log.error("figures not written: %s", type(error).__name__)

    async def purge(self) -> None:
        purged = await self.store.purge_expired()
        if purged.drafts or purged.reports:
            log.info("purged %d expired draft(s) and %d expired report(s)", purged.drafts, purged.reports)

    async def _beat_forever(self) -> None:
        """Instances sharing a database: take over what a stopped or dead one was sending (the
        store says this one is alive, and learns how many are, on a heartbeat of its own)."""
        while True:
            await asyncio.sleep(BEAT)
            try:
                recovered = await self.store.recover_in_flight()
            except Exception as error:
                log.error("taking over a stopped instance's deliveries failed: %s", type(error).__name__)
                continue
            if recovered:
                log.warning("%d delivery(ies) of a stopped instance taken over, marked maybe sent", recovered)
                self.delivery.wake()

    async def _purge_forever(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(COUNT_EVERY)
            await self.count_browsing()
            rounds += 1
            if rounds % (PURGE_EVERY // COUNT_EVERY):
                continue
            try:
                await self.purge()
            except Exception as error:
                log.error("purge failed: %s", type(error).__name__)


def settle_heap() -> None:
    """Once a serving process has started: what it built to get there (libraries, the model,
    the responses) stays for its life, so the garbage collector stops walking it. Otherwise
    its rare full collection walks the whole heap and holds everyone's replies for a fifth of
    a second here (`make bench` prints the longest pause); newer objects are collected as
    before."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, tokens: Tokens | None = None, store: Store | None = None) -> App:
    """Everything, built from ``settings``; tests may hand in predictable ``tokens`` or a ``store``."""
    return App(settings, tokens, store)
