"""PostgreSQL as several instances share it: what the contract suite (tests/test_storage.py) cannot
show with one store. Each test opens two stores on one real database, as two processes would,
and races them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.core.app import create_app
from bot.core.settings import Settings
from fakes.harness import MODEL_CACHE
from fakes.postgres import PostgresServer
from storage import Answer, ChatKey, CodeHasher, Keyring, MigrationError, NewReport, Store
from storage.accounts import StaffAccount
from storage.base import BEAT
from storage.postgres import PostgresStore
from storage.postgres_db import migrations
from tests.conftest import Clock

SENTENCE = "the unmistakable sentence 8812 about the sauna in Vauxhall"
CODE = "7K2P-QX9D-M4TA-8BWE"


def report(reference: str = "TEST-0001", code: str = CODE, **changes: object) -> NewReport:
    fields: dict[str, object] = {
        "reference": reference,
        "code": code,
        "summary": {"what": ("assault",), "account": SENTENCE},
        "categories": ("assault",),
        "keep": True,
        "send_to": "support",
        "allow_reply": False,
        "questionnaire_version": 1,
    }
    fields.update(changes)
    return NewReport(**fields)  # type: ignore[arg-type]


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
async def two(url: str, keyring: Keyring, clock: Clock, hasher: CodeHasher) -> AsyncIterator[tuple[Store, Store]]:
    async with (
        PostgresStore(url, keyring, clock=clock, hasher=hasher) as one,
        PostgresStore(url, keyring, clock=clock, hasher=hasher) as other,
    ):
        yield one, other


async def test_the_server_never_holds_content_or_codes_in_its_files(
    postgres: PostgresServer, url: str, keyring: Keyring, clock: Clock
) -> None:
    async with PostgresStore(url, keyring, clock=clock) as store:
        await store.save_draft(ChatKey(b"k" * 32), SENTENCE.encode())
        await store.commit_turn(
            ChatKey(b"k" * 32), report=report(), destinations=("support:chat",), relay_chat="telegram:4242"
        )
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute("CHECKPOINT")  # everything written so far is in the data files and the WAL
    finally:
        await admin.close()
    files = b"".join(path.read_bytes() for path in postgres.data.rglob("*") if path.is_file())
    assert b"report_stored" in files, "the scan reads what the server wrote"
    for secret in (SENTENCE, CODE, "telegram:4242"):
        assert secret.encode() not in files


async def test_a_database_newer_than_the_code_is_refused(url: str, keyring: Keyring) -> None:
    async with PostgresStore(url, keyring):
        pass
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("INSERT INTO reachable_schema (version) VALUES (99)")
    finally:
        await connection.close()
    with pytest.raises(MigrationError, match="newer than this program knows"):
        async with PostgresStore(url, keyring):
            pass


async def test_instances_starting_together_migrate_once(url: str, keyring: Keyring) -> None:
    stores = [PostgresStore(url, keyring) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    await asyncio.gather(*(store.close() for store in stores))
    connection = await asyncpg.connect(url)
    try:
        versions = [row[0] for row in await connection.fetch("SELECT version FROM reachable_schema ORDER BY version")]
    finally:
        await connection.close()
    assert versions == [version for version, _ in migrations()]


async def test_a_second_instance_shares_the_sending_limits_within_one_heartbeat(url: str, tmp_path: Path) -> None:
    """Instances divide Telegram's limits by how many are alive: the one starting knows of the
    first at once, the first within one heartbeat, and its channels the moment its store does."""
    key = Keyring.new_key()
    environ = {
        "REACHABLE_DATA_DIR": str(tmp_path),
        "REACHABLE_CACHE_DIR": str(MODEL_CACHE),
        "REACHABLE_ENCRYPTION_KEY": key.decode(),
        "REACHABLE_DATABASE_URL": url,
    }
    async with create_app(Settings.from_environ(environ)) as first:
        sharing = first.ports().instances
        assert sharing() == 1
        async with PostgresStore(url, Keyring([key])) as second:
            assert second.live() == 2
            started = time.monotonic()
            while first.store.live() < 2:  # noqa: ASYNC110 - the store's own heartbeat
                await asyncio.sleep(0.05)
            assert sharing() == 2, "the channels share the limits as soon as the store knows"
            assert time.monotonic() - started < BEAT + 1


async def test_a_heartbeat_that_fails_unexpectedly_beats_again(url: str, keyring: Keyring) -> None:
    """An instance that stopped saying it is alive would be taken for dead while it still sends:
    one failed beat, whatever its error, is followed by the next."""
    async with PostgresStore(url, keyring) as store, PostgresStore(url, keyring) as other:
        real = store._say_alive
        failures: list[int] = []

        async def fails_once(connection: Any) -> int:
            if not failures:
                failures.append(1)
                raise RuntimeError("unexpected")
            return await real(connection)

        setattr(store, "_say_alive", fails_once)  # noqa: B010 - the beat looks it up each time
        connection = await asyncpg.connect(url)
        try:
            query = "SELECT seen FROM instances WHERE name = $1"
            before = await connection.fetchval(query, store.instance)
            await asyncio.sleep(2 * BEAT + 1)
            after = await connection.fetchval(query, store.instance)
        finally:
            await connection.close()
        assert failures == [1]
        assert after > before, "it beat again after the failure"
        assert other.live() == 2


async def test_an_update_reaching_two_instances_at_once_is_handled_once(two: tuple[Store, Store]) -> None:
    one, other = two
    key = ChatKey(b"k" * 32)
    for update in range(20):
        done = await asyncio.gather(
            one.commit_turn(key, draft=b"from one", update=("telegram", update)),
            other.commit_turn(key, draft=b"from other", update=("telegram", update)),
        )
        assert sorted(done) == [False, True]


async def test_a_delivery_is_claimed_by_one_instance_only(two: tuple[Store, Store]) -> None:
    one, other = two
    for number in range(30):
        await one.add_report(report(f"TEST-{number:04}", code=f"7K2P-QX9D-M4TA-{number:04}"), ("support:chat",))
    claimed = await asyncio.gather(*(store.claim_due(limit=7) for store in (one, other) for _ in range(3)))
    ids = [delivery.id for batch in claimed for delivery in batch]
    assert len(ids) == len(set(ids)), "no delivery claimed twice"
    rest = await one.claim_due(limit=100) + await other.claim_due(limit=100)
    assert len(ids) + len(rest) == 30


async def test_a_report_withdrawn_on_two_instances_at_once_is_withdrawn_and_uncounted_once(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    await one.add_report(report())
    done = await asyncio.gather(one.erase_by_reference("TEST-0001"), other.erase_by_reference("TEST-0001"))
    assert sorted(done, key=str) == [None, "TEST-0001"]
    assert await one.counts() == {}
    tallies = await other.tallies()
    assert sum(n for (dimension, _, _), n in tallies.items() if dimension == "withdrawn") == 1


async def test_a_totp_code_sent_to_two_instances_at_once_works_once(two: tuple[Store, Store]) -> None:
    one, other = two
    await one.add_account(StaffAccount("sam", "support", "$argon2id$x", "JBSWY3DPEHPK3PXP", 0, 0, 0))
    for step in range(100, 110):
        used = await asyncio.gather(one.use_totp_step("sam", step), other.use_totp_step("sam", step))
        assert sorted(used) == [False, True]


async def test_two_people_naming_one_person_on_two_instances_at_once_are_matched(
    url: str, keyring: Keyring, clock: Clock, hasher: CodeHasher
) -> None:
    from storage.base import Naming
    from storage.matching import MatchingKey

    key = MatchingKey.new()
    async with (
        PostgresStore(url, keyring, clock=clock, hasher=hasher, matching=key) as one,
        PostgresStore(url, keyring, clock=clock, hasher=hasher, matching=key) as other,
    ):
        for round_ in range(5):
            people = [ChatKey(bytes([round_, n]) * 16) for n in (1, 2)]
            refs = [f"R{round_}-{n}" for n in (1, 2)]
            for person, ref, n in zip(people, refs, (1, 2), strict=True):
                await one.commit_turn(person, report=report(ref, code=f"C0DE-{round_}{n}AA-AAAA-AAAA"))
            named = [Naming(ref, "phone", f"+4477009000{round_:02}", "07700 9000", ("matching:chat",)) for ref in refs]
            await asyncio.gather(
                one.commit_turn(people[0], naming=named[0]), other.commit_turn(people[1], naming=named[1])
            )
        matches = [d for d in await one.claim_due(limit=100) if d.kind == "match"]
        assert len(matches) == 5, "every pair named at the same moment is one match notice"


async def test_what_an_instance_was_sending_is_taken_over_only_once_it_has_stopped(two: tuple[Store, Store]) -> None:
    one, other = two
    await one.add_report(report(), ("support:chat", "support:email"))
    assert len(await one.claim_due()) == 2
    assert await other.recover_in_flight() == 0, "nothing is taken from an instance still running"
    await one.close()  # it stops (or goes silent for longer than STALE) mid-send
    assert await other.recover_in_flight() == 2
    assert [d.maybe_sent for d in await other.claim_due()] == [True, True]
    await one.open()


async def test_an_answer_is_told_by_the_instance_that_kept_it_unless_that_one_has_stopped(
    two: tuple[Store, Store],
) -> None:
    one, other = two
    key = ChatKey(b"k" * 32)
    await one.commit_turn(key, report=report(), answer=Answer(77, b"your code"))
    assert [a.id for a in await one.unsent_answers()] == [77]
    assert await other.unsent_answers() == [], "a live instance is telling it"
    assert not await other.take_answer(77)
    assert await other.told_elsewhere(key), "the chat waits for it"
    await one.close()
    assert [a.id for a in await other.unsent_answers(key)] == [77]
    assert [a.id for a in await other.stopped_answers()] == [77]
    assert await other.take_answer(77)
    await one.open()
    assert await one.unsent_answers() == [], "it is the other's to tell now"
    assert not await one.take_answer(77)


async def test_an_update_kept_by_an_instance_that_died_is_handled_by_another(url: str, keyring: Keyring) -> None:
    from storage.postgres_inbox import PostgresInbox

    async with PostgresStore(url, keyring) as one, PostgresStore(url, keyring) as other:
        await PostgresInbox(one).receive([(5, {"update_id": 5, "message": {"text": "help"}})])
        assert await PostgresInbox(other).unhandled() == []
        assert [i for i, _ in await PostgresInbox(one).unhandled()] == [5]
        await one.close()
        assert [i for i, _ in await PostgresInbox(other).unhandled()] == [5]
        await one.open()


async def test_a_chats_turns_on_two_instances_take_their_turn(two: tuple[Store, Store]) -> None:
    one, other = two
    key, order = ChatKey(b"c" * 32), []

    async def turn(store: Store, name: str) -> None:
        async with store.chat_turn(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.2)
            order.append(f"{name} out")

    await asyncio.gather(turn(one, "one"), turn(other, "other"), turn(one, "again"))
    assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, 6, 2)), order


async def test_an_instance_gone_silent_is_taken_for_dead_and_its_locks_end_with_its_sessions(
    two: tuple[Store, Store],
) -> None:
    """A machine lost mid-turn: its row goes stale (no heartbeat), and the others end its database
    sessions, so the chat it held is free again within seconds, not when TCP notices."""
    from storage.postgres import PostgresStore as Postgres

    one, other = two
    assert isinstance(one, Postgres) and isinstance(other, Postgres)
    await one.add_report(report(), ("support:chat",))
    assert len(await one.claim_due()) == 1
    key, held = ChatKey(b"h" * 32), asyncio.Event()

    async def hold_for_ever() -> None:
        async with one.chat_turn(key):
            held.set()
            await asyncio.sleep(3600)

    holding = asyncio.create_task(hold_for_ever())
    await held.wait()
    assert one._beating is not None
    one._beating.cancel()  # it stops saying it is alive, as a lost machine does
    connection = await asyncpg.connect(one.url)
    try:
        await connection.execute("UPDATE instances SET seen = seen - 60 WHERE name = $1", one.instance)
    finally:
        await connection.close()
    assert await other.recover_in_flight() == 1, "its claims are taken over"

    async def take_the_chat() -> None:
        async with other.chat_turn(key):
            pass

    await asyncio.wait_for(take_the_chat(), 20)  # within a heartbeat of the other's, not hours
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
