"""The storage contract: every backend must pass these. Real SQLite files in a temp folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiosqlite
import pytest

from fakes.postgres import PostgresServer
from storage import (
    Answer,
    ChatKey,
    CodeHasher,
    Conflict,
    ConsentChange,
    Keyring,
    KeyringError,
    MigrationError,
    NewReport,
    SQLiteStore,
    Store,
    Unsent,
)
from storage.accounts import StaffAccount, StaffSession
from storage.crypto import KEY_FILE, load_keyring
from storage.errors import StorageError
from storage.memory import MemoryStore
from storage.postgres import PostgresStore
from storage.sqlite import migrations
from storage.sqlite_file import run_at_once
from tests.conftest import Clock

SENTENCE = "the unmistakable sentence 5521 about the flat in Vauxhall"
CODE = "7K2P-QX9D-M4TA-8BWE"
DAY = 86400

Backend = Callable[[Path, Keyring, Clock, CodeHasher], Store]
BACKENDS: dict[str, Backend] = {
    "sqlite": lambda folder, keyring, clock, hasher: SQLiteStore(
        folder / "db.sqlite3", keyring, clock=clock, hasher=hasher, retention_days=90, draft_hours=24
    ),
    "memory": lambda folder, keyring, clock, hasher: MemoryStore(
        clock=clock, hasher=hasher, retention_days=90, draft_hours=24
    ),
}


def postgres_store(url: str, keyring: Keyring, clock: Clock | None = None, hasher: CodeHasher | None = None) -> Store:
    return PostgresStore(url, keyring, clock=clock or Clock(), hasher=hasher, retention_days=90, draft_hours=24)


@pytest.fixture(params=["memory", "postgresql", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, keyring: Keyring, clock: Clock, hasher: CodeHasher
) -> AsyncIterator[Store]:
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        opened = postgres_store(server.new_database(), keyring, clock, hasher)
    else:
        opened = BACKENDS[request.param](tmp_path, keyring, clock, hasher)
    async with opened as store:
        yield store


def report(reference: str = "TEST-0001", code: str = CODE, keep: bool = True, **changes: object) -> NewReport:
    fields: dict[str, object] = {
        "reference": reference,
        "code": code,
        "summary": {"what": ("assault", "drugged"), "account": SENTENCE},
        "categories": ("assault", "drugged"),
        "keep": keep,
        "send_to": None,
        "allow_reply": False,
        "questionnaire_version": 1,
    }
    fields.update(changes)
    return NewReport(**fields)  # type: ignore[arg-type]


KEY = ChatKey(b"k" * 32)


async def test_a_draft_comes_back_as_it_was_saved(backend: Store) -> None:
    await backend.save_draft(KEY, b'{"step":"report.when"}')
    assert await backend.load_draft(KEY) == b'{"step":"report.when"}'
    assert await backend.load_draft(ChatKey(b"x" * 32)) is None


async def test_a_draft_expires_after_its_lifetime(backend: Store, clock: Clock) -> None:
    await backend.save_draft(KEY, b"answers")
    clock.now += 23 * 3600
    assert await backend.load_draft(KEY) == b"answers"
    clock.now += 2 * 3600
    assert await backend.load_draft(KEY) is None
    assert (await backend.purge_expired()).drafts == 1


async def test_forgetting_a_draft_removes_it(backend: Store) -> None:
    await backend.save_draft(KEY, b"answers")
    await backend.forget_draft(KEY)
    assert await backend.load_draft(KEY) is None


async def test_a_report_is_kept_with_its_consent_and_can_be_read_back(backend: Store, clock: Clock) -> None:
    await backend.add_report(report(send_to="soit", allow_reply=True))
    stored = await backend.get_report("TEST-0001")
    assert stored is not None
    assert stored.summary["account"] == SENTENCE
    assert (stored.keep, stored.send_to, stored.allow_reply) == (True, "soit", True)
    assert stored.consented_at == int(clock.now) - int(clock.now) % DAY  # the day of consent only
    assert stored.expires_at >= clock.now + 90 * DAY


async def test_only_the_right_code_erases_a_report(backend: Store) -> None:
    await backend.add_report(report())
    assert await backend.erase_report("7K2P-QX9D-M4TA-8BWF") is None
    assert await backend.get_report("TEST-0001") is not None
    assert await backend.erase_report(CODE) == "TEST-0001"
    assert await backend.get_report("TEST-0001") is None
    assert await backend.erase_report(CODE) is None


async def test_codes_that_share_a_tag_still_erase_only_their_own_report(
    backend: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import crypto

    monkeypatch.setattr(crypto, "TAG_BYTES", 1)  # so that two codes sharing a tag are quick to find
    first = CODE
    await backend.add_report(report("TEST-0001", first))
    secret = backend._tag_secret  # type: ignore[attr-defined]  # the store's own, sealed
    other = next(
        c
        for n in range(100_000)
        if crypto.code_tag(secret, c := f"7K2P-QX9D-{n // 10000:04d}-{n % 10000:04d}") == crypto.code_tag(secret, first)
    )
    await backend.add_report(report("TEST-0002", other))
    assert await backend.erase_report(other) == "TEST-0002"
    assert await backend.get_report("TEST-0001") is not None


async def test_a_codes_tag_cannot_be_computed_without_the_stores_secret(tmp_path: Path, keyring: Keyring) -> None:
    """Someone who keeps one report cannot work out offline which wrong codes share its tag."""
    from storage import crypto

    tags = []
    for name in ("a", "b"):
        async with SQLiteStore(tmp_path / name / "r.sqlite3", keyring) as store:
            await store.add_report(report())
            assert store._tag_secret is not None
            tags.append(crypto.code_tag(store._tag_secret, CODE))
        async with SQLiteStore(tmp_path / name / "r.sqlite3", keyring) as store:  # the same after a restart
            assert await store.erase_report(CODE) == "TEST-0001"
            assert store._tag_secret is not None and crypto.code_tag(store._tag_secret, CODE) == tags[-1]
    assert tags[0] != tags[1] and crypto.legacy_code_tag(CODE) not in tags


async def test_counters_count_kept_reports_and_outlive_purged_ones(backend: Store, clock: Clock) -> None:
    await backend.add_report(report("TEST-0001"))
    await backend.add_report(report("TEST-0002", code="7K2P-QX9D-M4TA-0000", keep=False))
    counts = await backend.counts()
    month = counts and next(iter(counts))[1]
    assert counts == {("assault", month): 1, ("drugged", month): 1}
    clock.now += 91 * DAY
    purged = await backend.purge_expired()
    assert purged.reports == 2
    assert await backend.get_report("TEST-0001") is None
    assert await backend.counts() == counts


async def test_withdrawing_takes_the_report_out_of_the_counts(backend: Store) -> None:
    await backend.add_report(report())
    await backend.erase_report(CODE)
    assert await backend.counts() == {}


async def test_the_audit_trail_holds_events_but_no_content(backend: Store) -> None:
    await backend.add_report(report())
    assert await backend.audit_kinds() == [("report_stored", "TEST-0001")]


async def test_a_withdrawn_report_leaves_no_audit_row_with_its_reference(backend: Store) -> None:
    await backend.add_report(report())
    await backend.erase_report(CODE)
    assert await backend.audit_kinds() == [("report_withdrawn", None)]


async def test_nothing_readable_reaches_the_database_files(tmp_path: Path, keyring: Keyring, clock: Clock) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=clock) as store:
        await store.save_draft(KEY, SENTENCE.encode())
        await store.add_report(report())
        blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert SENTENCE.encode() not in blob
        assert CODE.encode() not in blob
        assert b"assault" in blob  # the counters' category is deliberately plain
    async with aiosqlite.connect(tmp_path / "db.sqlite3") as db:
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)
        async with db.execute("SELECT code_hash FROM reports") as cursor:
            row = await cursor.fetchone()
            assert row is not None and str(row[0]).startswith("$argon2id$")


async def test_sent_reports_queue_their_forwards_in_the_same_transaction(
    tmp_path: Path, keyring: Keyring, clock: Clock
) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=clock) as store:
        await store.add_report(report(send_to="support"), destinations=("telegram", "email"))
        with pytest.raises(aiosqlite.IntegrityError):
            await store.add_report(report(send_to="support"), destinations=("telegram",))
    async with aiosqlite.connect(tmp_path / "db.sqlite3") as db:
        async with db.execute("SELECT destination FROM deliveries ORDER BY destination") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == ["email", "telegram"]
        async with db.execute("SELECT count(*) FROM reports") as cursor:
            assert (await cursor.fetchone()) == (1,)


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path, keyring: Keyring) -> None:
    async with aiosqlite.connect(tmp_path / "db.sqlite3") as db:
        await db.execute("PRAGMA user_version = 99")
    with pytest.raises(MigrationError, match="newer than this program knows"):
        async with SQLiteStore(tmp_path / "db.sqlite3", keyring):
            pass


async def test_migrations_run_once_and_record_their_version(tmp_path: Path, keyring: Keyring) -> None:
    for _ in range(2):
        async with SQLiteStore(tmp_path / "db.sqlite3", keyring):
            pass
    async with aiosqlite.connect(tmp_path / "db.sqlite3") as db, db.execute("PRAGMA user_version") as cursor:
        assert (await cursor.fetchone()) == (migrations()[-1][0],)


def test_the_key_file_is_created_once_private_and_outside_the_database(tmp_path: Path) -> None:
    first = load_keyring(None, tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_keyring(None, tmp_path)
    assert again.decrypt(first.encrypt(b"x")) == b"x"


def test_a_key_from_the_environment_wins_and_older_keys_still_open_data(tmp_path: Path) -> None:
    old, new = Keyring.new_key().decode(), Keyring.new_key().decode()
    sealed = load_keyring(old, tmp_path).encrypt(b"secret")
    rotated = load_keyring(f"{new},{old}", tmp_path)
    assert rotated.decrypt(sealed) == b"secret"
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(KeyringError):
        load_keyring(new, tmp_path).decrypt(sealed)


def test_a_malformed_key_is_explained() -> None:
    with pytest.raises(KeyringError, match="not valid"):
        Keyring([b"too-short"])


def test_chat_keys_do_not_reveal_the_chat_and_differ_by_channel(keyring: Keyring) -> None:
    telegram = keyring.chat_key("telegram", 123456789)
    assert b"123456789" not in telegram and len(telegram) == 32
    assert telegram != keyring.chat_key("console", 123456789)
    assert telegram == keyring.chat_key("telegram", "123456789")


async def test_a_turn_is_applied_once_even_when_its_update_comes_again(backend: Store) -> None:
    first = await backend.commit_turn(KEY, report=report(), forget=True, update=("telegram", 41))
    again = await backend.commit_turn(KEY, report=report(), forget=True, update=("telegram", 41))
    assert (first, again) == (True, False)
    assert await backend.seen("telegram", 41)
    assert not await backend.seen("console", 41)
    assert [k for k, _ in await backend.audit_kinds()] == ["report_stored"]


async def test_a_failed_turn_writes_nothing_at_all(backend: Store) -> None:
    await backend.add_report(report())
    with pytest.raises(Exception, match=r"(?i)unique"):
        await backend.commit_turn(
            KEY, draft=b"new", report=report(), update=("telegram", 7), answer=Answer(1, b"Secret code")
        )
    assert await backend.load_draft(KEY) is None
    assert not await backend.seen("telegram", 7)
    assert await backend.unsent_answers() == []


async def test_what_a_turn_said_is_kept_with_it_until_it_has_gone_out(backend: Store) -> None:
    told = Answer(5_551, b"kept: TEST-0001, Secret code ...")
    assert await backend.commit_turn(KEY, report=report(), forget=True, update=("telegram", 8), answer=told)
    assert await backend.unsent_answers(KEY) == [Unsent(5_551, KEY, told.body, 0)]
    assert await backend.unsent_answers(ChatKey(b"x" * 32)) == []
    await backend.answer_sent(5_551, 1)  # its first part is out
    assert [a.sent for a in await backend.unsent_answers()] == [1]
    await backend.answered(5_551, scrub=True)
    assert await backend.unsent_answers() == []
    # The turn cannot be taken again, so neither can its answer be kept twice.
    assert not await backend.commit_turn(KEY, report=report(), update=("telegram", 8), answer=Answer(9, b"again"))
    assert await backend.unsent_answers() == []


async def test_erasures_beside_reads_fail_neither_and_leave_nothing(backend: Store) -> None:
    """Reads made without the write lock (the delivery worker's, the resender's) run beside
    erasures that empty SQLite's write-ahead log on the same connection."""
    for handle in range(1, 41):
        await backend.commit_turn(KEY, draft=b"d", answer=Answer(handle, b"told"))
    for handle in range(1, 41, 2):
        await asyncio.gather(
            backend.answered(handle, scrub=True),
            backend.unsent_answers(),
            backend.next_due_in(),
            backend.answered(handle + 1, scrub=True),
            backend.unsent_answers(KEY),
        )
    assert await backend.unsent_answers() == []


async def test_turns_beside_writes_of_several_steps_all_land_and_none_fails(backend: Store) -> None:
    """A turn is written whole (SQLite: in one call on its thread, without the write lock);
    writes of several steps (holding a person's replies after a quick exit, releasing them)
    hold the lock from their first step to their last, and a turn must land before or after
    them, never inside."""
    others = [ChatKey(bytes([n]) * 32) for n in range(1, 9)]
    for number, key in enumerate(others):
        reference = f"TEST-{number:04}"
        kept = report(reference, code=f"7K2P-QX9D-M4TA-{number:04}", send_to="support", allow_reply=True)
        await backend.commit_turn(key, report=kept, destinations=("staff_chat",), relay_chat=f"telegram:{number}")
    for round_ in range(10):
        handles = range(round_ * 20 + 1, round_ * 20 + 21)
        await asyncio.gather(
            *(backend.hold_relays(key) for key in others),
            *(backend.commit_turn(KEY, draft=b"d", answer=Answer(handle, b"told")) for handle in handles[:10]),
            *(backend.release_held(f"TEST-{n:04}", key, f"telegram:{n}") for n, key in enumerate(others)),
            *(backend.commit_turn(KEY, draft=b"d", answer=Answer(handle, b"told")) for handle in handles[10:]),
        )
    assert sorted(a.id for a in await backend.unsent_answers(KEY)) == list(range(1, 201))


async def test_a_write_cancelled_as_it_begins_leaves_nothing_open(backend: Store) -> None:
    """A stop cancels what is under way (the delivery worker's claim, a quick exit's holding of
    replies); the next turn is still written, and what the cancelled write began is not."""
    kept = report(send_to="support", allow_reply=True)
    await backend.commit_turn(KEY, report=kept, destinations=("staff_chat",), relay_chat="telegram:1")
    holding = asyncio.create_task(backend.hold_relays(KEY))
    await asyncio.sleep(0)  # under way: its transaction is beginning
    holding.cancel()
    assert await backend.commit_turn(KEY, draft=b"d", answer=Answer(7, b"told"))
    assert [a.id for a in await backend.unsent_answers(KEY)] == [7]
    with contextlib.suppress(asyncio.CancelledError):
        await holding
    assert await backend.relay_held(kept.reference) == (not holding.cancelled()), "held whole or not at all"


async def test_a_turn_written_on_sqlites_thread_may_wait_for_nothing_else() -> None:
    """SQLite runs a turn's rules to their end on its own thread; one that waited for anything
    else there would block that thread: it is refused, and its transaction rolled back."""

    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(StorageError, match="waited for something other than SQLite"):
        run_at_once(waits())


async def test_answers_come_back_in_the_order_they_were_kept(backend: Store) -> None:
    for handle in (900, 3, 47):  # handles are random: the order is the order of keeping
        await backend.commit_turn(KEY, draft=b"d", answer=Answer(handle, str(handle).encode()))
    await backend.commit_turn(ChatKey(b"o" * 32), draft=b"d", answer=Answer(12, b"another chat"))
    assert [a.id for a in await backend.unsent_answers(KEY)] == [900, 3, 47]
    assert [a.id for a in await backend.unsent_answers()] == [900, 3, 47, 12]


async def test_an_answer_never_sent_lives_no_longer_than_a_draft(backend: Store, clock: Clock) -> None:
    await backend.commit_turn(KEY, draft=b"d", answer=Answer(1, b"never fetched"))
    clock.now += 23 * 3600
    assert len(await backend.unsent_answers()) == 1
    clock.now += 2 * 3600
    assert await backend.unsent_answers() == []
    assert (await backend.purge_expired()).answers == 1


async def test_a_quick_exit_drops_what_the_chat_was_still_to_be_told(backend: Store) -> None:
    await backend.commit_turn(KEY, draft=b"d", answer=Answer(1, b"one"))
    await backend.commit_turn(KEY, draft=b"d", answer=Answer(2, b"two"))
    await backend.commit_turn(ChatKey(b"o" * 32), draft=b"d", answer=Answer(3, b"someone else's"))
    assert await backend.drop_answers(KEY) == 2
    assert [a.id for a in await backend.unsent_answers()] == [3]


async def test_a_turn_erasing_a_report_that_is_gone_writes_nothing(backend: Store) -> None:
    await backend.add_report(report())
    assert await backend.commit_turn(KEY, erase="TEST-0001", update=("telegram", 1), answer=Answer(1, b"erased"))
    with pytest.raises(Conflict):
        await backend.commit_turn(KEY, erase="TEST-0001", update=("telegram", 2), answer=Answer(2, b"erased"))
    assert not await backend.seen("telegram", 2)
    assert [a.id for a in await backend.unsent_answers()] == [1]
    assert await backend.get_report("TEST-0001") is None


async def test_a_turn_sending_a_report_that_cannot_be_sent_writes_nothing(backend: Store) -> None:
    await backend.add_report(report(send_to="support"), destinations=("staff_chat",))
    change = ConsentChange("TEST-0001", "soit", None, ("soit:chat",), "telegram:42")
    with pytest.raises(Conflict):  # it went to the support team already
        await backend.commit_turn(KEY, consent=change, update=("telegram", 3), answer=Answer(3, b"sent"))
    assert not await backend.seen("telegram", 3)
    assert await backend.unsent_answers() == []
    assert await backend.change_consent(
        "TEST-0001", send_to=None, allow_reply=True, destinations=(), key=KEY, chat="telegram:42"
    )
    assert await backend.relay_chat("TEST-0001") == "telegram:42"


async def test_message_ids_are_handed_back_once_and_only_while_deletable(backend: Store, clock: Clock) -> None:
    await backend.remember_messages(KEY, [3, 1, 2])
    clock.now += 47 * 3600
    await backend.remember_messages(KEY, [9])
    assert await backend.take_messages(KEY) == [1, 2, 3, 9]
    assert await backend.take_messages(KEY) == []
    await backend.remember_messages(KEY, [10])
    # Only the day is stored: past 48 hours an id may still come back (deleting it then fails
    # harmlessly), but never once its day is more than 48 hours gone.
    clock.now += 73 * 3600
    assert await backend.take_messages(KEY) == []


async def test_queued_deliveries_are_claimed_once_and_recovered_after_a_crash(backend: Store) -> None:
    await backend.add_report(report(send_to="support"), destinations=("staff_chat", "email"))
    claimed = await backend.claim_due()
    assert [(o.destination, o.kind, o.attempts) for o in claimed] == [
        ("staff_chat", "summary", 1),
        ("email", "summary", 1),
    ]
    assert await backend.claim_due() == []
    await backend.close()  # it stops mid-send, and starts again
    await backend.open()
    assert await backend.recover_in_flight() == 2
    again = await backend.claim_due()
    assert [o.maybe_sent for o in again] == [True, True]


async def test_a_postponed_delivery_waits_its_turn(backend: Store, clock: Clock) -> None:
    await backend.enqueue("TEST-0001", "staff_chat", "answer", {"text": "hi"})
    [item] = await backend.claim_due()
    assert item.data == {"text": "hi"}
    await backend.postpone(item.id, 30)
    assert await backend.claim_due() == []
    assert await backend.next_due_in() == pytest.approx(30, abs=1)
    clock.now += 31
    assert [o.id for o in await backend.claim_due()] == [item.id]


async def test_a_delivery_put_back_untried_keeps_its_count_of_tries(backend: Store, clock: Clock) -> None:
    """What waited for a channel still starting is not a failed try: its backoff stays short."""
    await backend.enqueue("TEST-0001", "person", "answer", {"chat": "telegram:42", "text": "hi"})
    [item] = await backend.claim_due()
    assert item.attempts == 1
    await backend.release(item.id, 30)
    assert await backend.claim_due() == []
    await backend.release(item.id, 0)  # already back in the queue: only due sooner
    [again] = await backend.claim_due()
    assert (again.id, again.attempts, again.maybe_sent) == (item.id, 1, False)


async def test_withdrawing_a_sent_report_queues_a_notice_for_each_recipient(backend: Store) -> None:
    await backend.add_report(report(send_to="support"), destinations=("staff_chat", "email"))
    first, second = await backend.claim_due()
    await backend.delivered(first.id)
    await backend.postpone(second.id, 600)  # email not yet delivered
    assert await backend.erase_report(CODE) == "TEST-0001"
    notices = await backend.claim_due()
    assert [(o.destination, o.kind) for o in notices] == [("staff_chat", "withdrawn")]
    assert await backend.delivery_counts() == {"sent": 1, "sending": 1}


async def test_a_sent_report_that_was_not_kept_loses_its_content_once_every_copy_is_out(backend: Store) -> None:
    await backend.add_report(report(keep=False, send_to="soit"), destinations=("staff_chat", "email"))
    first, second = await backend.claim_due()
    await backend.delivered(first.id)
    kept = await backend.get_report("TEST-0001")
    assert kept is not None and kept.summary["account"] == SENTENCE
    await backend.delivered(second.id)
    emptied = await backend.get_report("TEST-0001")
    assert emptied is not None and emptied.summary == {} and emptied.status == "sent"


async def test_relay_links_are_encrypted_and_closed(backend: Store) -> None:
    await backend.commit_turn(
        None, report=report(send_to="support", allow_reply=True), destinations=("staff_chat",), relay_chat="telegram:42"
    )
    assert await backend.relay_chat("TEST-0001") == "telegram:42"
    assert await backend.close_relay("TEST-0001")
    assert await backend.relay_chat("TEST-0001") is None
    assert not await backend.close_relay("TEST-0001")


async def test_a_report_can_be_found_by_its_code(backend: Store) -> None:
    await backend.add_report(report())
    found = await backend.find_by_code(CODE)
    assert found is not None and found.reference == "TEST-0001"
    assert await backend.find_by_code("7K2P-QX9D-M4TA-0000") is None
    assert await backend.set_status("TEST-0001", "acknowledged")
    assert (await backend.get_report("TEST-0001")).status == "acknowledged"  # type: ignore[union-attr]


# ---------------------------------------------------------------- staff accounts
async def test_staff_accounts_sessions_and_their_audit_keep_their_rules(backend: Store, clock: Clock) -> None:
    sam = StaffAccount("sam", "support", "$argon2id$hash", "JBSWY3DPEHPK3PXP")
    assert await backend.add_account(sam)
    assert not await backend.add_account(replace(sam, role="admin")), "a name is taken once"
    assert await backend.account("sam") == sam
    assert await backend.use_totp_step("sam", 1000)
    assert not await backend.use_totp_step("sam", 1000), "a code works once"
    assert not await backend.use_totp_step("sam", 999), "an older code never"
    assert not await backend.use_totp_step("nobody", 1001)
    await backend.start_session(StaffSession(b"t" * 32, "sam", int(clock.now), int(clock.now), "csrf"))
    await backend.start_session(StaffSession(b"u" * 32, "sam", int(clock.now), int(clock.now), "csrf2"))
    await backend.touch_session(b"t" * 32, int(clock.now) + 5)
    found = await backend.session(b"t" * 32)
    assert found is not None and found.seen == int(clock.now) + 5
    await backend.end_session(b"t" * 32)
    assert await backend.session(b"t" * 32) is None and await backend.session(b"u" * 32) is not None
    await backend.staff_audit("sam", "opened", "TEST-0001")
    clock.now += 13 * 3600
    await backend.purge_expired()
    assert await backend.session(b"u" * 32) is None, "no session outlives its absolute end"
    assert [(a.name, a.action, a.reference) for a in await backend.staff_audit_lines()] == [
        ("sam", "opened", "TEST-0001")
    ]
    clock.now += 91 * 86400
    await backend.purge_expired()
    assert await backend.staff_audit_lines() == [], "the audit goes at the end of the retention period"


async def test_a_cases_conversation_is_kept_while_it_is_open_and_goes_when_it_closes(
    backend: Store, clock: Clock
) -> None:
    chat = ChatKey(b"k" * 32)
    await backend.commit_turn(chat, report=report("THRD-0001"), destinations=("support:chat", "support:email"))
    await backend.enqueue("THRD-0001", "person", "relay", {"chat": "telegram:1", "text": "Are you safe?"})
    answer = {"text": "Yes, at a friend's."}
    outgoing = [("THRD-0001", d, "answer", answer) for d in ("support:chat", "support:email")]
    await backend.commit_turn(chat, outgoing=outgoing)
    said = [(who, text) for who, text, _ in await backend.thread("THRD-0001")]
    assert said == [("team", "Are you safe?"), ("person", "Yes, at a friend's.")], "once, whatever the destinations"
    await backend.close_relay("THRD-0001")
    assert await backend.thread("THRD-0001") == []
    await backend.commit_turn(
        chat, report=report("THRD-0002", code="THRD-0002-AAAA-BBBB"), destinations=("support:chat",)
    )
    await backend.enqueue("THRD-0002", "person", "relay", {"chat": "telegram:1", "text": "Hello"})
    assert await backend.erase_by_reference("THRD-0002") == "THRD-0002"
    assert await backend.thread("THRD-0002") == [], "withdrawing takes the conversation too"
    await backend.commit_turn(
        chat, report=report("THRD-0003", code="THRD-0003-AAAA-BBBB"), destinations=("support:chat",)
    )
    await backend.enqueue("THRD-0003", "person", "relay", {"chat": "telegram:1", "text": "Hello"})
    clock.now += 91 * DAY
    await backend.purge_expired()
    assert await backend.thread("THRD-0003") == [], "and the report's expiry"
