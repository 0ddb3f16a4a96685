"""Every privacy promise true: a quick exit that really closes, nothing on disk before a report
draft exists, no exact times beside a reference, nothing forgotten left in the write-ahead log,
staff who are really staff, keys handled safely."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.telegram.serving import webhook_path
from bot.core.app import App, create_app
from bot.core.errors import ConfigError
from bot.core.settings import Settings
from fakes.harness import Person, Running, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from flows.text import quote
from storage import ChatKey, Keyring, KeyringError, SQLiteStore, load_keyring
from storage.crypto import KEY_FILE, LEGACY, read_key_file, write_key_file
from storage.lock import FolderInUse
from tests.test_support import STAFF, send_report, staff_texts, summaries_of, until

CHAT = 7_100_200_300


def data_bytes(folder: Path) -> bytes:
    """Every file in the data folder (the database, its write-ahead log and index, the inbox), as
    someone taking the folder gets them."""
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def rows(folder: Path, table: str) -> int:
    with sqlite3.connect(folder / "reachable.sqlite3") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def names_the_chat(settings: Settings, key: Keyring, chat: int) -> list[str]:
    """Where the chat shows up in the data folder: its keyed hash or its id."""
    digest = key.chat_key("telegram", chat)
    raw = data_bytes(settings.data_dir)
    found = []
    if digest in raw:
        found.append("keyed hash of the chat")
    if str(chat).encode() in raw:
        found.append("chat id")
    return found


@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


@pytest.fixture
def staffed(fake: FakeTelegram, tmp_path: Path, key: str) -> Settings:
    fake.chat(STAFF, "supergroup")
    return settings_for(fake, tmp_path / "data", key, REACHABLE_STAFF_CHAT_ID=str(STAFF), REACHABLE_STAFF_USER_IDS="1")


@pytest.fixture
async def running(staffed: Settings) -> AsyncIterator[Running]:
    async with polling_bot(staffed) as bot:
        bot.app.delivery.backoff = 0.05
        yield bot


# ---------------------------------------------------------------- nothing before a draft exists
async def test_browsing_with_a_polish_client_leaves_no_row_naming_the_chat(
    fake: FakeTelegram, tmp_path: Path, key: str
) -> None:
    settings = settings_for(fake, tmp_path / "data", key)
    async with polling_bot(settings) as running:
        person = Person(fake, CHAT)
        await fake.user_sends(CHAT, "/start", language="pl")
        await fake.wait_for_bot(CHAT, 2)
        assert person.screen.startswith(running.app.responses.text("pl", "welcome.notice").split("\n")[0])
        await person.says("/advice")
        await person.says("/services")
        await person.says("mój kolega nie oddycha")  # understood, and answered in Polish
        await asyncio.sleep(0.5)  # longer than the quick-exit ledger's write interval
        assert names_the_chat(settings, Keyring([key.encode()]), CHAT) == []
        assert rows(settings.data_dir, "drafts") == rows(settings.data_dir, "chat_messages") == 0
        # The quick exit still clears it all: the ids were held in memory.
        await person.says("/exit")
        assert len(fake.bot_texts(CHAT)) == 1  # only the one neutral line is left


async def test_a_declined_report_leaves_no_row_naming_the_chat(fake: FakeTelegram, tmp_path: Path, key: str) -> None:
    settings = settings_for(fake, tmp_path / "data", key)
    async with polling_bot(settings):
        person = Person(fake, CHAT)
        await person.says("/report")
        await person.taps("Start")
        await person.taps("Robbery or theft")
        await person.taps("Done")
        await asyncio.sleep(0.5)
        assert names_the_chat(settings, Keyring([key.encode()]), CHAT) != []  # a draft exists now
        for _ in range(7):
            await person.taps("Skip")
        await person.taps("Yes, it's right")
        said = await person.taps("No, don't keep it")
        assert "Nothing was kept" in said[0]
        await asyncio.sleep(0.5)
        assert names_the_chat(settings, Keyring([key.encode()]), CHAT) == []
        assert rows(settings.data_dir, "drafts") == rows(settings.data_dir, "chat_messages") == 0
        await person.says("/exit")  # and the quick exit still deletes every message
        assert len(fake.bot_texts(CHAT)) == 1


# ---------------------------------------------------------------- nothing forgotten lingers
def readable(settings: Settings, key: str) -> list[bytes]:
    """Every token in the database, its log and index that the key opens, opened."""
    return list(Keyring([key.encode()]).tokens_in(data_bytes(settings.data_dir)))


async def draft_with_a_changed_answer(person: Person) -> None:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Skip")
    await person.taps("Skip")
    await person.taps("Skip")
    await person.taps("Skip")
    await person.says("Marker-Alpha said it in his flat")
    for _ in range(3):
        await person.taps("Skip")
    await person.taps("Change an answer")
    await person.taps("In your words")
    await person.says("Marker-Beta, changed my mind")


async def test_after_a_quick_exit_no_token_in_the_database_or_its_log_holds_what_was_said(
    fake: FakeTelegram, tmp_path: Path, key: str
) -> None:
    settings = settings_for(fake, tmp_path / "data", key)
    async with polling_bot(settings):
        person = Person(fake, CHAT)
        await draft_with_a_changed_answer(person)
        assert any(b"Marker-Beta" in plain for plain in readable(settings, key))  # the scan can see
        await person.says("/exit")
        await asyncio.sleep(0.3)
        opened = readable(settings, key)
        assert not [p for p in opened if b"Marker-Alpha" in p or b"Marker-Beta" in p]
        assert b"Marker" not in data_bytes(settings.data_dir)


async def test_after_a_summary_sent_not_kept_no_token_holds_its_content(
    fake: FakeTelegram, running: Running, staffed: Settings, key: str
) -> None:
    person = Person(fake, CHAT)
    reference, _ = await send_report(person, account="Marker-Gamma took my keys")
    await until(lambda: bool(summaries_of(fake)))
    report = None
    for _ in range(50):
        report = await running.app.store.get_report(reference)
        if report is not None and not report.summary:
            break
        await asyncio.sleep(0.05)
    assert report is not None and report.summary == {}  # sent, not kept: content gone
    opened = readable(staffed, key)
    assert opened, "the scan finds the tokens that remain"
    assert not [p for p in opened if b"Marker-Gamma" in p]


# ---------------------------------------------------------------- a quick exit holds relays
async def test_after_a_quick_exit_staff_messages_are_held_until_the_person_returns_with_their_code(
    fake: FakeTelegram, running: Running
) -> None:
    person = Person(fake, CHAT)
    reference, code = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    await person.says("/exit")
    assert len(fake.bot_texts(CHAT)) == 1  # only "Done." is left
    await fake.user_sends(STAFF, f"/reply {reference} Are you somewhere safe?", kind="supergroup", user_id=1)
    await until(lambda: any("used Leave now" in t for t in staff_texts(fake)))
    held = next(t for t in staff_texts(fake) if "used Leave now" in t)
    assert reference in held and "held" in held and "their code" in held
    await fake.user_sends(STAFF, f"/ack {reference}", kind="supergroup", user_id=1)
    await until(lambda: sum("used Leave now" in t for t in staff_texts(fake)) == 2)
    await fake.settle(1.0)
    assert len(fake.bot_texts(CHAT)) == 1  # nothing reached the phone
    said = await person.says(f"/check {code}")
    assert "You were sent 2 message(s) about your report while you were away" in said[0]
    await until(lambda: "Are you somewhere safe?" in person.screen)
    await until(lambda: f"Your report {reference} was received" in person.screen)


async def test_a_wrong_code_releases_nothing(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    reference, _ = await send_report(person)
    await person.says("/exit")
    await fake.user_sends(STAFF, f"/reply {reference} hello", kind="supergroup", user_id=1)
    await until(lambda: any("used Leave now" in t for t in staff_texts(fake)))
    said = await person.says("/check 7K2P-QX9D-M4TA-8BWE")
    assert "No report matches that code" in said[0]
    await fake.settle(0.5)
    assert "hello" not in person.screen


# ---------------------------------------------------------------- staff who are really staff
async def test_staff_commands_from_someone_not_listed_are_refused(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    reference, _ = await send_report(person)
    await fake.user_sends(STAFF, f"/reply {reference} I joined the group", kind="supergroup", user_id=666)
    await until(lambda: any("Only the staff listed" in t for t in staff_texts(fake)))
    assert any("Your Telegram user id is 666: if you are staff" in t for t in staff_texts(fake))
    await fake.user_sends(STAFF, f"/reply {reference} from the group", kind="supergroup", as_group=True)
    await until(lambda: any("You are writing as the group" in t for t in staff_texts(fake)))
    await fake.settle(0.5)
    assert "I joined the group" not in person.screen and "from the group" not in person.screen


async def test_before_any_staff_are_listed_a_worker_learns_their_own_id_to_give_the_operator(
    fake: FakeTelegram, tmp_path: Path, key: str
) -> None:
    fake.chat(STAFF, "supergroup")
    settings = settings_for(fake, tmp_path / "data", key, REACHABLE_STAFF_CHAT_ID=str(STAFF))
    async with polling_bot(settings):
        await fake.user_sends(STAFF, "/ack@reachable_test_bot", kind="supergroup", user_id=4242)
        await until(lambda: bool(staff_texts(fake)))
    assert staff_texts(fake) == [
        "Staff commands are off: the operator has not listed any staff (REACHABLE_STAFF_USER_IDS).\n"
        "Your Telegram user id is 4242: if you are staff, the operator adds it to that list."
    ]


async def test_a_public_staff_chat_refuses_to_start(fake: FakeTelegram, tmp_path: Path, key: str) -> None:
    fake.chat(STAFF, "supergroup").username = "our_public_group"
    settings = settings_for(fake, tmp_path / "data", key, REACHABLE_STAFF_CHAT_ID=str(STAFF))
    with pytest.raises(ConfigError, match=r"the staff chat is public \(@our_public_group\)"):
        async with polling_bot(settings):
            pass


async def test_withdrawing_deletes_the_bots_summary_in_the_staff_chat(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    reference, code = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    assert any(reference in t for t in staff_texts(fake))
    await person.says(f"/delete {code}")
    await until(lambda: any("was withdrawn" in t for t in staff_texts(fake)))
    texts = staff_texts(fake)
    assert not [t for t in texts if t.startswith("New confidential summary")]
    assert any(f"{reference} was withdrawn" in t for t in texts)


def test_email_without_tls_refuses_to_start_unless_named_unsafe(tmp_path: Path) -> None:
    values = {
        "REACHABLE_DATA_DIR": str(tmp_path),
        "REACHABLE_SMTP_HOST": "127.0.0.1",
        "REACHABLE_SMTP_TO": "team@example.org",
        "REACHABLE_SMTP_STARTTLS": "false",
    }
    with pytest.raises(ConfigError, match="unencrypted"):
        create_app(Settings.from_environ(values))
    app = create_app(Settings.from_environ({**values, "REACHABLE_SMTP_INSECURE_PLAINTEXT": "true"}))
    assert "support:email" in app.settings.destinations


# ---------------------------------------------------------------- no exact times
async def test_no_exact_time_sits_beside_a_reference_or_a_chat_key(tmp_path: Path) -> None:
    keyring = Keyring([Keyring.new_key()])
    chat = ChatKey(keyring.chat_key("telegram", 5))
    from storage import NewReport

    report = NewReport("TIME-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, ("robbery",), True, "support", True, 1)
    async with SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=lambda: 1_790_012_345.678) as store:
        await store.commit_turn(
            chat,
            draft=b"{}",
            report=report,
            destinations=("staff_chat",),
            relay_chat="telegram:5",
            update=("telegram", 77),
        )
        await store.remember_messages(chat, [1, 2])
        [item] = await store.claim_due()
        await store.postpone(item.id, 30)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        times = [
            *db.execute("SELECT at FROM audit"),
            *db.execute("SELECT created_at, next_attempt FROM deliveries"),
            *db.execute("SELECT expires_at FROM reports"),
            *db.execute("SELECT expires_at FROM drafts"),
            *db.execute("SELECT at FROM chat_messages"),
        ]
        [(marked,)] = list(db.execute("SELECT at FROM seen_updates"))
        [(sealed,)] = list(db.execute("SELECT summary FROM reports"))
    assert times and all(int(value) % 86400 == 0 for row in times for value in row)
    assert int(marked) % 3600 == 0, "a handled update keeps the hour at most"
    body = json.loads(keyring.decrypt(bytes(sealed)))
    assert body["consented_at"] % 86400 == 0, "the day of consent only, even inside the ciphertext"
    assert LEGACY not in data_bytes_of(tmp_path / "db.sqlite3")  # no token with a time in clear


async def test_a_staff_message_and_an_answer_leave_no_words_in_the_database_or_its_log_once_the_case_closes(
    tmp_path: Path,
) -> None:
    keyring = Keyring([Keyring.new_key()])
    from storage import NewReport
    from storage.backup import back_up

    report = NewReport("WORD-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, ("robbery",), False, "support", True, 1)
    data = tmp_path / "data"
    data.mkdir()
    path = data / "reachable.sqlite3"
    async with SQLiteStore(path, keyring) as store:
        await store.add_report(report)
        await store.enqueue("WORD-0001", "person", "relay", {"chat": "telegram:5", "text": "Marker-Delta are you ok"})
        await store.enqueue("WORD-0001", "staff_chat", "answer", {"text": "Marker-Epsilon I am home"})
        items = await store.claim_due()
        opened = list(keyring.tokens_in(data_bytes(data)))
        assert any(b"Marker-Delta" in p for p in opened), "the scan can see them while they wait"
        for item in items:
            await store.delivered(item.id)
        assert [text for _, text, _ in await store.thread("WORD-0001")] == ["Marker-Delta are you ok"]
        await store.close_relay("WORD-0001")
        opened = list(keyring.tokens_in(data_bytes(data)))
        back_up(data, tmp_path / "backup.sqlite3")  # a backup taken now holds none of it either
    opened += keyring.tokens_in((tmp_path / "backup.sqlite3").read_bytes())
    assert not [p for p in opened if b"Marker-Delta" in p or b"Marker-Epsilon" in p]


async def test_tokens_carry_no_time_and_old_fernet_data_is_upgraded_when_the_store_opens(tmp_path: Path) -> None:
    key = Keyring.new_key()
    keyring = Keyring([key])
    path = tmp_path / "db.sqlite3"
    chat = ChatKey(keyring.chat_key("telegram", 9))
    async with SQLiteStore(path, keyring) as store:
        await store.save_draft(chat, b'{"v":1}')
    from cryptography.fernet import Fernet

    with sqlite3.connect(path) as db:  # as an earlier version wrote it: Fernet, exact expiry
        db.execute("UPDATE drafts SET payload = ?", (Fernet(key).encrypt(b'{"v":1}'),))
    with sqlite3.connect(path) as db:
        assert bytes(db.execute("SELECT payload FROM drafts").fetchone()[0]).startswith(LEGACY)
    async with SQLiteStore(path, keyring) as store:
        assert await store.load_draft(chat) == b'{"v":1}'
    with sqlite3.connect(path) as db:
        token = bytes(db.execute("SELECT payload FROM drafts").fetchone()[0])
    assert keyring.is_current(token) and LEGACY not in data_bytes_of(path)


def data_bytes_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


# ---------------------------------------------------------------- files and keys
async def test_the_data_folder_is_private_to_its_user(tmp_path: Path, key: str) -> None:
    folder = tmp_path / "data"
    async with create_app(Settings.from_environ({"REACHABLE_DATA_DIR": str(folder), "REACHABLE_ENCRYPTION_KEY": key})):
        mode = stat.S_IMODE(folder.stat().st_mode)
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}
    assert mode == 0o700
    assert files and all(m == 0o600 for m in files.values()), files


async def test_a_second_process_on_the_same_data_folder_is_refused_with_a_reason(tmp_path: Path, key: str) -> None:
    settings = Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key})
    async with create_app(settings):
        with pytest.raises(FolderInUse, match="another Reachable process is using"):
            async with create_app(settings):
                pass
        rotate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "keys",
            "rotate",
            env={"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key, "PATH": "/usr/bin:/bin"},
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await rotate.communicate()
    assert rotate.returncode == 2 and "stop it before you rotate keys" in stderr.decode()


def test_the_key_file_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / KEY_FILE).symlink_to(target)
    with pytest.raises(KeyringError, match="symbolic link"):
        write_key_file(tmp_path / KEY_FILE, [Keyring.new_key()])
    with pytest.raises(KeyringError, match="cannot be read safely"):
        read_key_file(tmp_path / KEY_FILE)
    assert target.read_bytes() == b""


def test_processes_starting_together_share_one_key_file(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; import sys; from storage import load_keyring; load_keyring(None, Path(sys.argv[1]))"
    )
    starting = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE) for _ in range(6)]
    finished = [(p.communicate(timeout=60)[1], p.returncode) for p in starting]
    assert all(code == 0 for _, code in finished), finished
    keys = read_key_file(tmp_path / KEY_FILE)
    assert len(keys) == 1 and stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".reachable-key-")] == []


def test_keys_prune_drops_old_keys_once_everything_is_rotated(tmp_path: Path) -> None:
    environ = {"REACHABLE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def reachable(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", "keys", *args]
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)

    first = load_keyring(None, tmp_path)
    asyncio.run(_fill(tmp_path, first))
    assert reachable("rotate").returncode == 0
    assert len(read_key_file(tmp_path / KEY_FILE)) == 2
    pruned = reachable("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 older key(s)" in pruned.stdout
    assert len(read_key_file(tmp_path / KEY_FILE)) == 1


async def _fill(folder: Path, keyring: Keyring) -> None:
    from storage import NewReport

    report = NewReport("PRUN-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, ("robbery",), True, None, False, 1)
    async with SQLiteStore(folder / "reachable.sqlite3", keyring) as store:
        await store.add_report(report)


# ---------------------------------------------------------------- small promises
@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\u0085", "\r", "\x0b", "\x0c", "\x1c", "\r\n"])
def test_no_kind_of_line_break_lets_a_persons_words_escape_the_quote(breaker: str) -> None:
    quoted = quote(f"hello{breaker}New confidential summary FAKE-0001")
    lines = quoted.split("\n")
    assert all(line.startswith("│ ") for line in lines)
    assert not any(ch in quoted for ch in "\u2028\u2029\u0085\r\x0b\x0c\x1c")


def test_c1_controls_are_removed_from_quoted_text() -> None:
    assert quote("a\x9bb\x85c") == "│ ab\n│ c"


@pytest.mark.parametrize(
    ("url", "path"),
    [("https://host.example/webhook", "/webhook"), ("https://host.example/tg/bot", "/tg/bot"), (None, "/telegram")],
)
def test_the_webhook_is_served_on_the_path_telegram_is_given(url: str | None, path: str) -> None:
    assert webhook_path(url) == path


def test_a_webhook_address_without_https_is_refused() -> None:
    with pytest.raises(ConfigError, match="https"):
        webhook_path("http://host.example/webhook")


async def test_the_draft_cache_follows_the_draft_lifetime(tmp_path: Path, key: str) -> None:
    settings = Settings.from_environ(
        {"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key, "REACHABLE_DRAFT_HOURS": "2"}
    )
    app: App = create_app(settings)
    assert app.conversations._positions.ttl == 2 * 3600


async def test_a_delivery_that_can_never_go_is_given_up_and_staff_are_told(tmp_path: Path, key: str) -> None:
    from bot.core.delivery import MAX_ATTEMPTS, DeliveryWorker
    from storage import NewReport

    keyring = Keyring([key.encode()])
    store = SQLiteStore(tmp_path / "db.sqlite3", keyring)
    async with store:
        report = NewReport("GONE-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), True, "support", False, 1)
        await store.add_report(report, destinations=("email",))  # then email was removed from the settings
        sent: list[tuple[str, str]] = []

        class StaffChat:
            destination = "staff_chat"

            async def send(self, item: object) -> None:
                sent.append((item.kind, dict(item.data)["destination"]))  # type: ignore[attr-defined]

        worker = DeliveryWorker(store, {"staff_chat": StaffChat()}, backoff=0.0)
        for _ in range(MAX_ATTEMPTS + 2):
            await worker.run_once()
            store._not_before.clear()  # no waiting in a test
        assert sent == [("undeliverable", "email")]
        assert (await store.delivery_counts()).get("failed") == 1


def test_run_warns_when_the_key_file_sits_beside_the_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bot.ops.keys import warn_about_key_file as _warn_about_key_file

    _warn_about_key_file(Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path)}))
    assert "in the same folder as the database" in caplog.text
    caplog.clear()
    _warn_about_key_file(
        Settings.from_environ(
            {"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode()}
        )
    )
    assert caplog.text == ""


async def test_everything_queued_is_purged_at_retention_sent_or_not(tmp_path: Path) -> None:
    now = [1_790_000_000.0]
    keyring = Keyring([Keyring.new_key()])
    store = SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=lambda: now[0], retention_days=90)
    async with store:
        await store.enqueue("KEEP-0001", "staff_chat", "answer", {"text": "still waiting"})
        now[0] += 91 * 86400
        await store.purge_expired()
        assert await store.delivery_counts() == {}
