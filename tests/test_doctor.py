"""`reachable doctor`: each broken configuration gets its own FAIL or WARN line, a correct one
is all OK, and nothing is sent that anyone would see."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.settings import Settings
from bot.ops.doctor import diagnose
from fakes.harness import free_port, start_bot_process
from fakes.postgres import PostgresServer
from fakes.proxy import TLSProxy
from fakes.smtp import SMTPServer
from fakes.telegram import TOKEN, FakeTelegram
from storage import ChatKey, Keyring

STAFF = -1004445556


def settings_with(fake: FakeTelegram, data: Path, **extra: str) -> Settings:
    data.mkdir(mode=0o700, exist_ok=True)
    environ = {
        "REACHABLE_TELEGRAM_TOKEN": TOKEN,
        "REACHABLE_TELEGRAM_API_URL": fake.url,
        "REACHABLE_DATA_DIR": str(data),
        "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
        "REACHABLE_STAFF_CHAT_ID": str(STAFF),
        "REACHABLE_STAFF_USER_IDS": "1",
        **extra,
    }
    return Settings.from_environ({k: v for k, v in environ.items() if v})


async def lines(settings: Settings, webhook: bool = False) -> list[str]:
    return [str(f) for f in await diagnose(settings, webhook)]


async def test_a_correct_configuration_is_all_ok_and_sends_nothing(
    fake: FakeTelegram, tmp_path: Path, unused_tcp_port: int
) -> None:
    fake.chat(STAFF, "supergroup")
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    try:
        settings = settings_with(
            fake,
            tmp_path / "data",
            REACHABLE_SMTP_HOST="127.0.0.1",
            REACHABLE_SMTP_PORT=str(unused_tcp_port),
            REACHABLE_SMTP_TO="worker@charity.example",
            REACHABLE_SMTP_CA_FILE=str(smtp.cert),
        )
        found = await lines(settings)
    finally:
        smtp.stop()
    assert all(line.startswith("OK") for line in found), found
    assert {line.split(":")[0].split()[-1] for line in found} >= {"folder", "key", "database", "token", "chat", "email"}
    assert [m for m, _ in fake.calls if m.startswith("send")] == [] and smtp.mailbox.messages == []


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"REACHABLE_TELEGRAM_TOKEN": "123:wrong"}, "FAIL  token: Telegram refused it (Unauthorized)"),
        ({"REACHABLE_STAFF_CHAT_ID": "-100999"}, "FAIL  staff chat: support:chat -100999: Bad Request: chat not found"),
        ({"REACHABLE_STAFF_USER_IDS": ""}, "WARN  staff users: REACHABLE_STAFF_USER_IDS is empty"),
        ({"REACHABLE_SMTP_HOST": "127.0.0.1", "REACHABLE_SMTP_PORT": "9"}, "FAIL  email: 127.0.0.1:9:"),
        ({"REACHABLE_ENCRYPTION_KEY": ""}, "WARN  key: no key yet"),
    ],
)
async def test_each_broken_setting_gets_its_own_line(
    fake: FakeTelegram, tmp_path: Path, setting: dict[str, str], expected: str
) -> None:
    fake.chat(STAFF, "supergroup")
    found = await lines(settings_with(fake, tmp_path / "data", **setting))
    assert any(line.startswith(expected) for line in found), found


async def test_a_public_staff_chat_and_a_webhook_without_secret_fail_and_an_open_folder_warns(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    fake.chat(STAFF, "supergroup").username = "anyone_can_join"
    settings = settings_with(fake, tmp_path / "data")
    (tmp_path / "data").chmod(0o755)
    found = await lines(settings, webhook=True)
    assert "FAIL  staff chat: support:chat is public (@anyone_can_join): remove its public link" in found
    assert any(line.startswith("WARN  data folder:") and "mode 0755" in line for line in found)
    assert "FAIL  webhook: REACHABLE_WEBHOOK_SECRET is not set: set a long random value" in found


def test_reachable_run_refuses_to_start_on_a_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "reachable.sqlite3").write_bytes(b"this is not a database, a disk went bad" * 100)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REACHABLE_DATA_DIR", str(data))
        env.setenv("REACHABLE_TELEGRAM_TOKEN", TOKEN)
        env.setenv("REACHABLE_TELEGRAM_API_URL", "http://127.0.0.1:9")
        assert main(["run"]) == 2
    said = capsys.readouterr().err
    assert "not started, `reachable doctor` finds: FAIL  database:" in said and "restore it from a backup" in said


@pytest.mark.parametrize(
    ("status", "can_send", "members_may_send"),
    [("left", True, True), ("kicked", True, True), ("restricted", False, True), ("member", True, False)],
)
async def test_a_staff_chat_the_bot_cannot_post_in_fails(
    fake: FakeTelegram, tmp_path: Path, status: str, can_send: bool, members_may_send: bool
) -> None:
    chat = fake.chat(STAFF, "supergroup")
    chat.bot_status, chat.can_send, chat.members_may_send = status, can_send, members_may_send
    found = await lines(settings_with(fake, tmp_path / "data"))
    expected = f"FAIL  staff chat: support:chat: the bot cannot post there ({status}): add the bot again"
    assert any(line.startswith(expected) for line in found), found


async def test_telegrams_own_webhook_errors_and_an_old_address_are_told(fake: FakeTelegram, tmp_path: Path) -> None:
    fake.chat(STAFF, "supergroup")
    fake.webhook = {"url": "https://old.example/telegram"}
    fake.webhook_error = "Wrong response from the webhook: 404 Not Found"
    settings = settings_with(
        fake,
        tmp_path / "data",
        REACHABLE_WEBHOOK_URL="https://bot.example/hook",
        REACHABLE_WEBHOOK_SECRET="a-long-random-secret-0123456789",
    )
    found = await lines(settings, webhook=True)
    told = "WARN  webhook: Telegram sends to https://old.example/telegram; `reachable run --webhook` sets the new one"
    assert told in found
    assert any(
        line.startswith("WARN  webhook: Telegram's last delivery failed 1 min ago (Wrong response from the webhook")
        for line in found
    ), found


async def test_the_webhook_address_is_knocked_on_through_the_https_proxy(
    fake: FakeTelegram, tmp_path: Path, unused_tcp_port_factory: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correct webhook set-up behind HTTPS is all OK; a path the proxy does not pass on and a
    bot that is not running each get their line."""
    fake.chat(STAFF, "supergroup")
    listen = f"127.0.0.1:{unused_tcp_port_factory()}"
    proxy = TLSProxy(tmp_path, unused_tcp_port_factory(), "/hooks/reachable", f"http://{listen}")
    await proxy.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(proxy.cert))  # the server trusts its proxy's certificate
    secret = {"REACHABLE_WEBHOOK_SECRET": "a-long-random-secret-0123456789", "REACHABLE_WEBHOOK_LISTEN": listen}
    settings = settings_with(fake, tmp_path / "data", REACHABLE_WEBHOOK_URL=proxy.url, **secret)
    process = await start_bot_process(settings, "--webhook")
    try:
        for _ in range(100):
            if fake.webhook.get("url") == proxy.url:
                break
            await asyncio.sleep(0.1)
        found = await lines(settings, webhook=True)
        assert all(line.startswith("OK") for line in found), found
        assert f"OK    webhook: {proxy.url} reaches the bot, which refuses updates without the secret" in found

        elsewhere = settings.model_copy(update={"webhook_url": proxy.url.replace("/hooks/reachable", "/tg")})
        assert f"FAIL  webhook: {elsewhere.webhook_url} answers 404: the proxy must pass /tg to {listen}" in (
            await lines(elsewhere, webhook=True)
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    try:
        down = await lines(settings, webhook=True)
    finally:
        await proxy.stop()
    assert f"WARN  webhook: {proxy.url} answers 502: is `reachable run --webhook` running?" in down


def test_settings_that_do_not_parse_get_one_fail_each_without_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("REACHABLE_TELEGRAM_TOKEN", "123:do-not-print-me")
    monkeypatch.setenv("REACHABLE_SMTP_PORT", "twenty-five")
    monkeypatch.setenv("REACHABLE_FRAMEWORK", "django")
    monkeypatch.setenv("REACHABLE_STAFF_USER_IDS", "12, secret-word")
    assert main(["doctor"]) == 1
    said = capsys.readouterr().out.splitlines()
    assert sorted(said) == [
        "FAIL  settings: REACHABLE_FRAMEWORK: Input should be 'aiogram' or 'ptb'",
        "FAIL  settings: REACHABLE_SMTP_PORT: Input should be a valid integer, unable to parse string as an integer",
        "FAIL  settings: REACHABLE_STAFF_USER_IDS: is not in the form README describes",
    ]
    assert "secret-word" not in "\n".join(said) and "do-not-print-me" not in "\n".join(said)


async def test_mail_without_tls_a_key_beside_the_database_a_readable_file_and_broken_responses(
    fake: FakeTelegram, tmp_path: Path, unused_tcp_port: int
) -> None:
    fake.chat(STAFF, "supergroup")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "reachable.key").write_bytes(Keyring.new_key())
    (data / "reachable.key").chmod(0o644)
    broken = tmp_path / "charity" / "en"
    broken.mkdir(parents=True)
    (broken / "messages.yaml").write_text("menu.prompt: [this is not closed\n", encoding="utf-8")
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    try:
        settings = settings_with(
            fake,
            data,
            REACHABLE_ENCRYPTION_KEY="",
            REACHABLE_RESPONSES_DIR=str(tmp_path / "charity"),
            REACHABLE_SMTP_HOST="127.0.0.1",
            REACHABLE_SMTP_PORT=str(unused_tcp_port),
            REACHABLE_SMTP_STARTTLS="false",
            REACHABLE_SMTP_INSECURE_PLAINTEXT="true",
            REACHABLE_SMTP_TO="worker@charity.example",
        )
        found = await lines(settings)
    finally:
        smtp.stop()
    assert "WARN  email: 127.0.0.1 answers WITHOUT TLS" in found
    assert any(
        line.startswith(f"WARN  key: the key file {data / 'reachable.key'} is beside the database") for line in found
    )
    assert "FAIL  file permissions: reachable.key is mode 0644; chmod 600 it" in found
    assert any(line.startswith("FAIL  responses: 1 error(s), first:") and "messages.yaml" in line for line in found), (
        found
    )


async def test_a_database_restored_without_its_key_is_refused_at_start_and_by_doctor(
    fake: FakeTelegram, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from storage import KeyringError, NewReport, SQLiteStore, load_keyring
    from storage.crypto import KEY_FILE

    data = tmp_path / "data"
    settings = settings_with(fake, data, REACHABLE_ENCRYPTION_KEY="")
    keyring = load_keyring(None, data)  # the key file, made at first start
    report = NewReport("REST-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, ("assault",), True, None, False, 1)
    async with SQLiteStore(data / "reachable.sqlite3", keyring) as store:
        await store.add_report(report)
    (data / KEY_FILE).unlink()  # restored from a backup, without the key
    found = await lines(settings)
    assert any(line.startswith("FAIL") and "no key file" in line for line in found), found
    with pytest.raises(KeyringError, match="no key file"):
        load_keyring(None, data)
    assert not (data / KEY_FILE).exists(), "no new key was made silently"
    wrong = Settings.from_environ(
        {"REACHABLE_DATA_DIR": str(data), "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode()}
    )
    found = await lines(wrong)
    assert any(line.startswith("FAIL") and "does not open what is stored" in line for line in found), found
    with pytest.raises(KeyringError, match="does not open this database"):
        async with SQLiteStore(data / "reachable.sqlite3", Keyring([Keyring.new_key()])):
            pass
    monkeypatch_env = {"REACHABLE_DATA_DIR": str(data), "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in monkeypatch_env.items():
            patch.setenv(name, value)
        assert await asyncio.to_thread(main, ["console"]) == 2
    assert "does not open this database" in capsys.readouterr().err


async def test_no_one_to_send_reports_to_is_a_warning_saying_what_to_set(fake: FakeTelegram, tmp_path: Path) -> None:
    alone = settings_with(fake, tmp_path / "data", REACHABLE_STAFF_CHAT_ID="", REACHABLE_STAFF_USER_IDS="")
    found = await lines(alone)
    assert any(line.startswith("WARN") and "no one to send reports to" in line for line in found), found
    staffed = settings_with(fake, tmp_path / "data2")
    assert any(
        line.startswith("OK") and "reports can be sent to: soit, support" in line for line in await lines(staffed)
    ) or any(line.startswith("OK") and "reports can be sent to: support" in line for line in await lines(staffed))


async def test_a_shared_database_is_checked_for_reach_schema_key_and_clock(
    fake: FakeTelegram, tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.postgres import PostgresStore

    fake.chat(STAFF, "supergroup")
    key = Keyring.new_key().decode()
    url = postgres.new_database()
    settings = settings_with(fake, tmp_path / "data", REACHABLE_DATABASE_URL=url, REACHABLE_ENCRYPTION_KEY=key)
    assert "WARN  database: PostgreSQL at version 0 of 1: migrated at the next start" in await lines(settings)
    async with PostgresStore(url, Keyring([key.encode()])) as store:
        await store.save_draft(ChatKey(b"k" * 32), b"sealed before it leaves")
    found = await lines(settings)
    assert "OK    database: PostgreSQL reached, migrations current (version 1)" in found
    assert any(line.startswith("OK    clock: the database's clock is") for line in found), found

    real = time.time
    monkeypatch.setattr("bot.ops.doctor_postgres.time.time", lambda: real() - 120)  # this machine's clock is wrong
    assert any(line.startswith("FAIL  clock:") and "set both by NTP" in line for line in await lines(settings))
    monkeypatch.undo()

    other = settings_with(fake, tmp_path / "data", REACHABLE_DATABASE_URL=url)  # another key
    assert "FAIL  database: the encryption key does not open what is stored: put the right key back" in await lines(
        other
    )
    no_key = settings_with(fake, tmp_path / "data", REACHABLE_DATABASE_URL=url, REACHABLE_ENCRYPTION_KEY="")
    assert any(line.startswith("FAIL  key: REACHABLE_DATABASE_URL needs") for line in await lines(no_key))
    closed = f"postgresql://reachable@127.0.0.1:{free_port()}/nowhere"
    gone = settings_with(fake, tmp_path / "data", REACHABLE_DATABASE_URL=closed, REACHABLE_ENCRYPTION_KEY=key)
    failed = [line for line in await lines(gone) if line.startswith("FAIL  database")]
    assert failed == ["FAIL  database: PostgreSQL cannot be reached (ConnectionRefusedError): check the URL"]
    assert "nowhere" not in failed[0]
