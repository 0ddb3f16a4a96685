"""Rasa channels: the JSON a Rasa server sends, POSTed over HTTP to rasa-sdk's real endpoint
serving our action, and a fake Rasa HTTP API receiving what staff send later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.channels.rasa.adapter import RasaTransport
from bot.channels.rasa.run import check_settings
from bot.channels.rasa.sms import segments
from bot.core.app import App
from bot.core.errors import ConfigError
from bot.core.settings import Settings
from fakes.harness import Person, free_port, rasa_bot, settings_for, start_bot_process
from fakes.postgres import PostgresServer
from fakes.rasa import TOKEN as RASA_TOKEN
from fakes.rasa import FakeRasa
from fakes.smtp import SMTPServer
from fakes.telegram import FakeTelegram
from responses import Responses
from storage import Keyring
from tests.test_support import until

SENDER = "whatsapp:+447700900123"
THANKS = Responses.load().text("en", "thanks.reply").split(".")[0]
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")


@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


@pytest.fixture
async def rasa(tmp_path: Path, key: str) -> AsyncIterator[tuple[App, FakeRasa]]:
    async with rasa_bot(tmp_path / "data", key) as running:
        yield running


async def test_a_first_message_at_2am_gets_help_in_the_reply_with_buttons_that_round_trip(
    rasa: tuple[App, FakeRasa],
) -> None:
    _, fake = rasa
    said = await fake.say(SENDER, "i think i was raped last night, i was out of it on G")
    assert any("The Havens" in text or "999" in text for text in said)
    buttons = [b for m in fake.seen[SENDER] for b in m.get("buttons") or []]
    assert buttons and all(b["payload"].startswith("/reachable_button{") for b in buttons)
    said = await fake.tap(SENDER, "Who can help")
    assert "These services can help." in said[0]


async def test_the_words_are_true_for_a_channel_that_cannot_delete(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    [welcome] = [t for t in await fake.say(SENDER, "/start") if t.startswith("Hi.")]
    assert "Telegram" not in welcome
    assert "The app or phone service you write from can see who writes here." in welcome
    said = await fake.say(SENDER, "/exit")
    assert said == [
        "Stopped. We cannot delete messages in this app, so please delete this chat yourself. "
        "Nothing more will come here until you write again."
    ]


async def test_rasas_confident_intent_is_used_but_never_hides_an_emergency(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    # Our own reading of "cheers" alone is unsure; Rasa is sure it is thanks.
    unsure = await fake.say("sms:1", "kk cheers", intent="thanks", confidence=0.97)
    assert not any("Is anyone in danger" in t for t in unsure)
    assert any(t.startswith(THANKS) for t in unsure), unsure
    # Words our own reading does not know: Rasa's confident reading decides.
    said = await fake.say("sms:4", "zorblat numbers pls", intent="services", confidence=0.97)
    assert said[0].startswith("These services can help."), said
    # Rasa reads an emergency as a greeting: our own reading still gives overdose help first.
    said = await fake.say("sms:2", "my mate has gone blue and wont respond", intent="greeting", confidence=0.99)
    assert "call 999 now" in said[0]
    # An intent we do not know, however sure, changes nothing.
    plain = await fake.say("sms:3", "hello", intent="chitchat_weather", confidence=1.0)
    assert plain[0].startswith("Hi.")


async def send_report(fake: FakeRasa) -> str:
    """A whole report by buttons and typing, kept and sent with replies allowed: its reference."""
    await fake.say(SENDER, "/report")
    for label in ("Start", "Robbery or theft", "Done", "This week", "In London"):
        await fake.tap(SENDER, label)
    await fake.say(SENDER, "hackney")
    await fake.tap(SENDER, "Skip")
    await fake.say(SENDER, "He took my phone and my cards.")
    for label in ("Skip", "Skip", "Skip", "Yes, it's right", "Yes, keep it", "To the support team"):
        await fake.tap(SENDER, label)
    said = "\n".join(await fake.tap(SENDER, "Yes, they may reply"))
    assert CODE.search(said), said
    return str(REF.findall("\n".join(fake.texts(SENDER)))[-1])


async def test_a_report_kept_and_sent_by_email_then_a_staff_reply_arrives_through_rasas_api(
    tmp_path: Path, key: str, unused_tcp_port: int
) -> None:
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    try:
        async with rasa_bot(tmp_path / "data", key, **smtp.settings()) as (app, fake):
            app.delivery.backoff = 0.05
            reference = await send_report(fake)
            await until(lambda: len(smtp.mailbox.messages) == 1, timeout=30)
            assert "He took my phone" in smtp.mailbox.messages[0].get_payload()

            before = len(fake.texts(SENDER))
            await app.desk.command("reply", f"{reference} Are you somewhere safe now?", frozenset({"support"}))
            app.delivery.wake()
            await until(lambda: len(fake.texts(SENDER)) > before)
            assert fake.triggers and set(fake.triggers) == {"reachable_deliver"}
            assert "Are you somewhere safe now?" in fake.texts(SENDER)[before]
    finally:
        smtp.stop()


async def test_a_staff_reply_waits_while_rasa_is_down_and_arrives_when_it_is_back(tmp_path: Path, key: str) -> None:
    async with rasa_bot(tmp_path / "data", key, REACHABLE_STAFF_CHAT_ID="-100123") as (app, fake):
        app.delivery.backoff = 0.05
        reference = await send_report(fake)
        fake.reachable = False
        await app.desk.command("reply", f"{reference} Hello, are you safe?", frozenset({"support"}))
        app.delivery.wake()
        await asyncio.sleep(1.5)
        assert not any("are you safe?" in t for t in fake.texts(SENDER))
        fake.reachable = True
        await until(lambda: any("are you safe?" in t for t in fake.texts(SENDER)), timeout=30)


async def test_a_restart_answers_the_call_in_flight_and_closes_the_connections_rasa_kept(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the action server (a deploy, a restart) while Rasa waits for an answer: the person
    still gets it, and no connection is left open behind the stopped server."""
    reached, go_on = asyncio.Event(), asyncio.Event()
    async with rasa_bot(tmp_path / "data", key) as (app, fake):
        handle = app.conversations.handle

        async def busy(*args: Any, **kwargs: Any) -> Any:
            reached.set()
            await go_on.wait()
            return await handle(*args, **kwargs)

        monkeypatch.setattr(app.conversations, "handle", busy)
        port = int(fake.actions_url.rsplit(":", 1)[1])
        kept_open, writer = await asyncio.open_connection("127.0.0.1", port)  # Rasa's idle pooled connection
        in_flight = asyncio.create_task(fake.say(SENDER, "hello"))
        await asyncio.wait_for(reached.wait(), 10)
        asyncio.get_running_loop().call_later(0.5, go_on.set)  # the call ends while the server stops
    said = await asyncio.wait_for(in_flight, 10)
    assert said and said[0].startswith("Hi."), said
    assert await asyncio.wait_for(kept_open.read(), 10) == b""  # closed by the server
    writer.close()
    await writer.wait_closed()


async def test_a_request_that_never_finishes_does_not_hold_a_restart(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.channels.rasa.run.SHUTDOWN_SECONDS", 1.0)
    async with rasa_bot(tmp_path / "data", key) as (_, fake):
        port = int(fake.actions_url.rsplit(":", 1)[1])
        stalled, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /webhook?token={RASA_TOKEN} HTTP/1.1\r\nHost: rasa\r\nContent-Length: 1000\r\n\r\n{{"
        writer.write(head.encode())
        await writer.drain()
        await asyncio.sleep(0.2)
        stopping = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - stopping < 10
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(stalled.read(), 10) == b""
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()


async def test_malformed_oversized_and_unknown_calls_get_rasas_error_shape(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    status, answer = await fake.post(None, raw=b"{not json")
    assert (status, answer) == (400, {"error": "the body is not JSON", "action_name": None})
    status, answer = await fake.post({"next_action": "action_reachable", "tracker": {"events": []}})
    assert status == 400 and answer["action_name"] == "action_reachable"
    assert "sender_id" in answer["error"]
    unknown = {**fake.action_call(SENDER, {"text": "hi"}), "next_action": "utter_anything"}
    status, answer = await fake.post(unknown)
    assert status == 404 and answer["action_name"] == "utter_anything"
    huge = fake.action_call(SENDER, {"text": "x" * 2_000_000, "intent": {}})
    status, answer = await fake.post(huge)
    assert status == 413 and set(answer) == {"error", "action_name"}, answer
    assert "x" * 100 not in str(answer)
    # And the server is still there, answering a person.
    assert (await fake.say("sms:other", "hello"))[0].startswith("Hi.")


async def test_forged_button_payloads_and_stickers_get_a_sensible_answer(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    await fake.say(SENDER, "/start")
    said = await fake.say(SENDER, '/reachable_button{"data":"1|report.consent|send_everything"}', "reachable_button", 1)
    assert "That button is out of date." in said[0]
    said = await fake.say(SENDER, "/reachable_button{broken", "reachable_button", 1)
    assert "That button is out of date." in said[0]
    status, answer = await fake.post(fake.action_call(SENDER, {"text": None, "intent": {"name": None}}))
    assert status == 200
    assert answer["responses"][0]["text"].startswith("Sorry, I can only read text here.")


async def test_a_long_conversation_is_read_as_it_streams_and_an_emergency_is_answered(
    rasa: tuple[App, FakeRasa],
) -> None:
    _, fake = rasa
    call = fake.action_call(SENDER, {"text": "my mate took too much g and wont wake up", "intent": {}})
    # Rasa sends every event of every session: here 40 MB of them, far past any body limit.
    filler = {"event": "bot", "text": "x" * 3000, "timestamp": 1.0}
    call["tracker"]["events"] = [filler] * 13_000 + call["tracker"]["events"]
    status, answer = await fake.post(call)
    assert status == 200, answer
    assert "call 999 now" in answer["responses"][0]["text"]


async def test_a_typed_internal_intent_collects_nothing_and_a_sender_id_on_another_channel_is_another_chat(
    rasa: tuple[App, FakeRasa],
) -> None:
    _, fake = rasa
    await fake.say(SENDER, "/report")
    await fake.tap(SENDER, "Start")
    await fake.tap(SENDER, "Robbery or theft")
    # Someone who knows the phone number writes as it through a channel where the client picks
    # the sender id: another conversation, that keeps nothing for them.
    fake.channel = "rest"
    said = "\n".join(await fake.say(SENDER, "/report"))
    assert "Carry on" not in said and "Robbery" not in said
    said = "\n".join(await fake.say(SENDER, "/reachable_deliver", "reachable_deliver", 1.0))
    assert "Robbery" not in said
    fake.channel = "facebook"
    said = "\n".join(await fake.say(SENDER, "/reachable_deliver", "reachable_deliver", 1.0))
    assert "Robbery" not in said and said  # typed, it is just words: answered as such


async def test_a_call_rasa_sends_twice_is_answered_once(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    latest: dict[str, Any] = {"text": "/report", "intent": {}, "message_id": "9f" * 16}
    first = await fake.run_action(SENDER, latest)
    again = await fake.run_action(SENDER, latest)
    assert first and again == []


async def test_health_is_open_and_everything_else_needs_the_shared_token(rasa: tuple[App, FakeRasa]) -> None:
    _, fake = rasa
    call = fake.action_call(SENDER, {"text": "/report", "intent": {}})
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.actions_url}/health") as answer:
            assert answer.status == 200 and (await answer.json())["status"] == "ok"
        async with session.get(f"{fake.actions_url}/actions", params={"token": RASA_TOKEN}) as answer:
            assert await answer.json() == [{"name": "action_reachable"}]
        for token in ({}, {"token": "guess"}):
            async with session.post(f"{fake.actions_url}/webhook", params=token, json=call) as answer:
                assert answer.status == 401 and "responses" not in await answer.json()
            async with session.get(f"{fake.actions_url}/actions", params=token) as answer:
                assert answer.status == 401


async def test_no_words_or_sender_ids_in_logs_and_no_message_ids_stored(
    rasa: tuple[App, FakeRasa], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, fake = rasa
    caplog.set_level(logging.DEBUG)
    await fake.say(SENDER, "/start")
    await fake.tap(SENDER, "Tell us what happened (confidential)")
    await fake.tap(SENDER, "Start")
    await fake.say(SENDER, "my secret words 8812")
    await fake.post(None, raw=b"{broken secret words 8812")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "8812" not in logged and "447700900123" not in logged
    with sqlite3.connect(tmp_path / "data" / "reachable.sqlite3") as db:
        assert db.execute("select count(*) from chat_messages").fetchone() == (0,)


def test_a_start_that_could_not_keep_its_promises_is_refused(tmp_path: Path) -> None:
    token = {"REACHABLE_RASA_TOKEN": RASA_TOKEN}
    with pytest.raises(ConfigError, match="REACHABLE_RASA_TOKEN"):
        check_settings(Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path)}))
    with pytest.raises(ConfigError, match="REACHABLE_RASA_TOKEN"):
        check_settings(Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_RASA_TOKEN": "short"}))
    base = {"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_SMTP_HOST": "127.0.0.1", "REACHABLE_SMTP_TO": "a@b.example"}
    with pytest.raises(ConfigError, match="REACHABLE_RASA_URL"):
        check_settings(Settings.from_environ({**base, **token}))
    staff_chat = {
        "REACHABLE_DATA_DIR": str(tmp_path),
        "REACHABLE_STAFF_CHAT_ID": "-100",
        "REACHABLE_RASA_URL": "http://r",
    }
    with pytest.raises(ConfigError, match="REACHABLE_TELEGRAM_TOKEN"):
        check_settings(Settings.from_environ({**staff_chat, **token}))
    check_settings(Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), **token}))  # nothing sent


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_reachable_rasa_actions_runs_as_a_process_beside_the_telegram_bot(
    tmp_path: Path, key: str, fake: FakeTelegram, framework: str
) -> None:
    port = free_port()
    rasa = FakeRasa(f"http://127.0.0.1:{port}")
    await rasa.start()
    settings = settings_for(
        fake,
        tmp_path / "data",
        key,
        REACHABLE_RASA_ACTIONS_LISTEN=f"127.0.0.1:{port}",
        REACHABLE_RASA_URL=rasa.url,
        REACHABLE_RASA_TOKEN=RASA_TOKEN,
        REACHABLE_FRAMEWORK=framework,
    )
    process = await start_bot_process(settings, command="rasa-actions")
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{rasa.actions_url}/health") as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.1)
        assert (await rasa.say(SENDER, "/start"))[0].startswith("Hi.")
        person = Person(fake, 7_100_200_300)  # the Telegram bot runs in the same process
        assert (await person.says("/start"))[0].startswith("Hi.")
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        await rasa.stop()


@pytest.mark.parametrize(
    ("greeting", "locale"),
    [("hello", "en"), ("cześć, potrzebuję pomocy", "pl"), ("bună, am nevoie de ajutor", "ro")],
)
async def test_by_text_message_every_main_screen_is_one_text_of_three_segments_at_most(
    rasa: tuple[App, FakeRasa], greeting: str, locale: str
) -> None:
    _, fake = rasa
    fake.channel = "twilio"
    sender = f"+4477009{len(greeting):05d}"
    screens: list[list[str]] = [await fake.say(sender, greeting)]
    # Each command answers, then asks again what the screen it was typed at asked.
    for command in ("/start", "/help", "/start", "/about", "/emergency", "/services", "/report", "1"):
        screens.append(await fake.say(sender, command))
    await fake.say(sender, "/cancel")
    advice = await fake.say(sender, "/advice")
    topics = len(re.findall(r"^\d+ ", advice[0], re.MULTILINE))
    for topic in range(1, topics + 1):
        page = await fake.say(sender, "/advice") and await fake.say(sender, str(topic))
        screens.append(page)
        while (more := re.search(r"^(\d+) (More|Dalej|Mai departe)", page[-1], re.MULTILINE)) is not None:
            page = await fake.say(sender, more.group(1))
            screens.append(page)
    for texts in screens:
        assert len(texts) == 1, texts
        [text] = texts
        assert segments(text) <= 3 and "\n\n" not in text, text
        assert "reachable_button" not in text and "{" not in text
    if locale != "en":
        assert "999" in screens[5][0] and "Call 999" not in screens[5][0]  # their language, not English


@pytest.mark.parametrize(
    "first",
    [
        "my mate has gone blue and wont respond",
        "i was raped last night",
        "someone spiked me at a chillout",
        "a guy is blackmailing me with photos",
        "pomocy, mój przyjaciel nie oddycha po G",
        "ktoś dosypał mi czegoś do drinka",
        "zgwałcono mnie wczoraj",
        "ajutor, prietenul meu nu respiră după G",
        "cineva m-a drogat fara sa stiu",
        "am fost violat aseara",
    ],
)
async def test_by_text_message_a_first_message_about_harm_gets_one_text_in_its_language(
    rasa: tuple[App, FakeRasa], first: str
) -> None:
    _, fake = rasa
    fake.channel = "twilio"
    texts = await fake.say("+447700900111", first)
    assert len(texts) == 1 and segments(texts[0]) <= 3, texts
    assert "999" in texts[0] and re.search(r"^1 ", texts[0], re.MULTILINE)


async def test_a_staff_message_is_handed_over_only_with_its_own_secret_and_two_at_once_both_arrive() -> None:
    got: list[str] = []

    class RasaAPI:
        async def trigger(self, sender_id: str, nonce: str) -> list[dict[str, Any]]:
            chat = f"facebook:{sender_id}"
            await asyncio.sleep(0.01)  # both sends wait on Rasa at once
            assert transport.take_waiting(chat, "a guess") == [] and transport.take_waiting(chat, "é") == []
            got.extend(m["text"] for m in transport.take_waiting(chat, nonce))
            return []

    transport = RasaTransport(RasaAPI())
    await asyncio.gather(transport.send("facebook:abc", "first"), transport.send("facebook:abc", "second"))
    assert sorted(got) == ["first", "second"]


async def test_a_report_begun_through_one_action_server_goes_on_through_another(
    postgres: PostgresServer, tmp_path: Path, key: str
) -> None:
    """Two `reachable rasa-actions` instances on one PostgreSQL database: whichever Rasa calls next
    takes the conversation where it was (the draft is in the database)."""
    url = postgres.new_database()
    async with (
        rasa_bot(tmp_path / "one", key, REACHABLE_DATABASE_URL=url) as (_, first),
        rasa_bot(tmp_path / "two", key, REACHABLE_DATABASE_URL=url) as (_, second),
    ):
        await first.say(SENDER, "/report")
        assert "What happened?" in " ".join(await first.say(SENDER, "1"))
        moved = await second.say(SENDER, "1, 2")
        assert "I'm so sorry this happened to you" in " ".join(moved), moved
