"""The web chat over real HTTP with JavaScript off, as a browser without scripts uses it: privacy,
security, the quick exit, and a staff reply read after coming back with the code."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from bot.core.app import App
from fakes.harness import web_chat, web_chat_served
from fakes.postgres import PostgresServer
from fakes.web import WebPerson, read
from storage import Keyring

CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")
STAFF = {"REACHABLE_STAFF_CHAT_ID": "-1001234", "REACHABLE_STAFF_USER_IDS": "1"}


@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


@pytest.fixture
async def web(tmp_path: Path, key: str) -> AsyncIterator[tuple[App, str]]:
    async with web_chat(tmp_path / "data", key, extra=STAFF) as running:
        yield running


@pytest.fixture
async def person(web: tuple[App, str]) -> AsyncIterator[WebPerson]:
    someone = WebPerson(web[1])
    await someone.open()
    yield someone
    await someone.close()


def bot_texts(person: WebPerson) -> list[str]:
    return [item.text for item in person.page.items if not item.mine]


async def send_report(person: WebPerson) -> tuple[str, str]:
    """A whole report by buttons and typing, kept and sent to the support team with replies."""
    await person.say("/report")
    for label in ("Start", "Robbery or theft", "Done", "This week", "In London"):
        await person.tap(label)
    await person.say("hackney")
    await person.tap("Skip")
    await person.say("He took my phone and my cards.")
    for label in ("Skip", "Skip", "Skip", "Yes, it's right", "Yes, keep it", "To the support team"):
        await person.tap(label)
    await person.tap("Yes, they may reply")
    said = "\n".join(bot_texts(person))
    return REF.findall(said)[-1], CODE.findall(said)[-1]


async def test_a_first_message_at_2am_gets_help_in_the_page_that_comes_back(person: WebPerson) -> None:
    page = await person.say("i think i was raped last night, i was out of it on G")
    assert person.status == 200
    assert page.items[-2].mine is False or page.items[-1].mine is False
    assert any("The Havens" in t or "999" in t for t in bot_texts(person)[2:])
    assert [label.strip() for label, _ in page.buttons], "the help comes with its options as buttons"


async def test_a_report_kept_and_sent_then_a_staff_reply_read_after_coming_back_with_the_code(
    web: tuple[App, str], person: WebPerson
) -> None:
    app, base = web
    app.delivery.backoff = 0.05
    reference, code = await send_report(person)
    await person.leave()
    await app.desk.command("reply", f"{reference} Are you somewhere safe now?", frozenset({"support"}))
    app.delivery.wake()
    await asyncio.sleep(0.5)
    assert await app.store.relay_held(reference), "nothing can reach a web page: the reply waits"

    back = WebPerson(base)
    try:
        await back.open()
        assert not any("Are you somewhere safe" in t for t in bot_texts(back))
        await back.say(f"/check {code}")
        for _ in range(100):
            if any("Are you somewhere safe now?" in t for t in bot_texts(back)):
                break
            await asyncio.sleep(0.1)
            await back.open()  # "Check for new messages"
        assert any("Are you somewhere safe now?" in t for t in bot_texts(back))
    finally:
        await back.close()


async def test_leave_now_ends_the_session_on_the_server_and_opens_the_neutral_site(
    web: tuple[App, str], person: WebPerson, tmp_path: Path
) -> None:
    _, base = web
    await person.say("/report")
    await person.tap("Start")
    await person.tap("Robbery or theft")
    token = next(c.value for c in person.jar if c.key == "__Host-reachable")
    assert drafts(tmp_path) == 1
    async with person.session.post(f"{base}/exit", data={"csrf": person.page.csrf}, allow_redirects=False) as answer:
        assert answer.status == 303 and answer.headers["Location"] == "/left"
        assert answer.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith("__Host-reachable=") and "Max-Age=0" in cookie
    assert not any(c.key == "__Host-reachable" for c in person.jar), "the browser drops the cookie"
    assert drafts(tmp_path) == 0, "the unfinished answers are forgotten, as /exit does"
    # Our own page on the way out says nothing of the chat and sends the browser on at once;
    # for a while, this address (Back included) does the same, without JavaScript.
    for path in ("/left", "/"):
        page = await person.open(path)
        assert person.location == "https://example.org/" and not page.items and not page.buttons
    # Someone who kept the old cookie finds nothing: a new chat, not the old one.
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[base])
    jar.update_cookies({"__Host-reachable": token}, response_url=URL(base))
    async with aiohttp.ClientSession(cookie_jar=jar) as stranger, stranger.get(f"{base}/") as answer:
        page = read(await answer.text())
    assert page.items[0].text.startswith("Hi.") and not any(i.mine for i in page.items)
    assert not any("Robbery" in i.text for i in page.items)


def drafts(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "reachable.sqlite3") as db:
        return int(db.execute("select count(*) from drafts").fetchone()[0])


async def test_forms_without_the_right_csrf_token_or_cookie_are_refused(
    web: tuple[App, str], person: WebPerson
) -> None:
    _, base = web
    for data in ({"text": "hello"}, {"text": "hello", "csrf": "forged"}):
        async with person.session.post(f"{base}/say", data=data, allow_redirects=False) as answer:
            assert answer.status == 403
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.post(f"{base}/say", data={"text": "hi", "csrf": person.page.csrf}, allow_redirects=False) as answer,
    ):
        assert answer.status == 403  # the token alone, without the session's cookie
    headers = {"Origin": "https://evil.example"}
    data = {"text": "hello", "csrf": person.page.csrf}
    async with person.session.post(f"{base}/say", data=data, headers=headers, allow_redirects=False) as answer:
        assert answer.status == 403
    assert not any(i.mine for i in (await person.open()).items), "nothing refused reached the conversation"


async def test_the_cookie_and_every_response_carry_the_privacy_headers(web: tuple[App, str]) -> None:
    _, base = web
    async with aiohttp.ClientSession() as browser:
        async with browser.get(f"{base}/") as answer:
            cookie = answer.headers["Set-Cookie"]
            page_headers = answer.headers
        for path in ("/static/chat.css", "/static/chat.js", "/static/nothing"):
            async with browser.get(f"{base}{path}") as other:
                assert other.headers["Cache-Control"] == "no-store"
                assert other.headers["Referrer-Policy"] == "no-referrer"
    assert cookie.startswith("__Host-reachable=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= flags
    assert "SameSite=Strict" in cookie and "expires" not in flags and "max-age" not in flags
    csp = page_headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page_headers["Referrer-Policy"] == "no-referrer"
    assert page_headers["Cache-Control"] == "no-store"


async def test_a_flood_from_one_session_does_not_hold_up_another(tmp_path: Path, key: str) -> None:
    async with web_chat(tmp_path / "data", key, real_rate_limits=True) as (_, base):
        flood, calm = WebPerson(base), WebPerson(base)
        try:
            await flood.open()
            await calm.open()
            data = {"text": "spam", "csrf": flood.page.csrf}

            async def post() -> int:
                async with flood.session.post(f"{base}/say", data=data, allow_redirects=False) as answer:
                    return answer.status

            statuses = await asyncio.gather(*(post() for _ in range(60)))
            assert statuses.count(429) >= 40, "one session is held to its own rate"
            await calm.say("hello")
            assert calm.status == 200 and calm.page.items[-1].mine is False
        finally:
            await flood.close()
            await calm.close()


async def test_no_address_or_user_agent_in_the_data_folder_or_the_logs(
    web: tuple[App, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, base = web
    caplog.set_level(logging.DEBUG)
    marks = {"User-Agent": "MarkerAgent/7731", "X-Forwarded-For": "203.0.113.77", "X-Real-IP": "198.51.100.23"}
    async with aiohttp.ClientSession(
        headers=marks, cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[base])
    ) as browser:
        async with browser.get(f"{base}/") as answer:
            page = read(await answer.text())
        data = {"csrf": page.csrf, "text": "/report"}
        async with browser.post(f"{base}/say", data=data) as answer:
            assert answer.status == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    found: list[Any] = []
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            found += [(path.name, m) for m in ("MarkerAgent", "203.0.113.77", "198.51.100.23") if m.encode() in content]
    found += [("log", m) for m in ("MarkerAgent", "203.0.113.77", "198.51.100.23", "127.0.0.1:") if m in logged]
    assert found == []


async def test_the_page_is_light_and_names_its_language(person: WebPerson, web: tuple[App, str]) -> None:
    _, base = web
    sizes = []
    async with aiohttp.ClientSession() as browser:
        for path in ("/", "/static/chat.css", "/static/chat.js"):
            async with browser.get(f"{base}{path}") as answer:
                sizes.append(len(await answer.read()))
    assert sum(sizes) < 50_000, sizes
    page = await person.say("mój kolega nie oddycha, brał G")
    assert page.lang == "pl"
    assert page.items[-1].lang == "pl"


async def test_numbers_shown_on_the_buttons_can_be_typed_and_every_phone_number_is_a_link(person: WebPerson) -> None:
    first = person.page.buttons[0]
    assert person.page.numbers[first[1]] == "1" and first[0] == "I need help now"
    assert person.page.tel[0] == "999", "the first thing to tap on the page is 999"
    page = await person.say("1")
    assert any("call 999 now" in t for t in bot_texts(person))
    assert "999" in page.tel
    await person.say("/services")
    assert {"08009995428", "116123"} <= set(person.page.tel), "Galop and Samaritans, a tap away"


async def test_an_over_long_or_empty_message_gets_a_clear_answer_and_loses_nothing(person: WebPerson) -> None:
    long = "He took my phone. " * 250  # 4,500 characters: the whole of it is sent, and shown
    page = await person.say(long)
    assert person.status == 200 and any(i.mine and i.text == long for i in page.items), "nothing cut"
    assert any("has 4500 characters. I read the first 4096" in t for t in bot_texts(person)), "said, not silent"
    page = await person.say("   \n  ")
    assert person.status == 400 and "empty" in page.error
    page = await person.say("He took my phone.")
    assert person.status == 200 and page.items[-1].mine is False and not page.error


async def test_what_a_person_types_is_shown_as_they_typed_it_never_as_markup_or_a_link(person: WebPerson) -> None:
    typed = "<b>he</b> said 'call me' on 0207 123 4567 & <script>alert(1)</script>"
    page = await person.say(typed)
    assert any(i.mine and i.text == typed for i in page.items), "shown letter for letter, no tag taken as one"
    assert "02071234567" not in page.tel, "a number they typed is not made a link"
    page = await person.say("/services")
    assert "08009995428" in page.tel and any(i.mine and i.text == typed for i in page.items), "still there, unchanged"


async def test_a_leave_now_form_from_another_site_or_without_the_token_ends_nothing(
    web: tuple[App, str], person: WebPerson, tmp_path: Path
) -> None:
    _, base = web
    await person.say("/report")
    await person.tap("Start")
    await person.tap("Robbery or theft")
    async with (
        aiohttp.ClientSession() as other_site,  # SameSite=Strict: no cookie comes with it
        other_site.post(f"{base}/exit", data={"csrf": "x"}, allow_redirects=False) as answer,
    ):
        assert answer.status == 303 and "Clear-Site-Data" not in answer.headers
        assert "Set-Cookie" not in answer.headers
    await person.tap("Done")
    assert person.status == 200 and person.page.buttons, "the person's chat goes on, cookie and all"
    async with person.session.post(f"{base}/exit", data={"csrf": "not the page's"}, allow_redirects=False) as answer:
        assert answer.status == 303  # from our own page (its cookie came along): the browser still leaves
    assert drafts(tmp_path) == 1, "but without the page's token nothing is ended"


async def test_no_room_for_a_new_chat_never_ends_one_in_use(tmp_path: Path, key: str) -> None:
    async with web_chat_served(tmp_path / "data", key) as (_, base, chat):
        chat.sessions.limit = 3
        using = [WebPerson(base) for _ in range(3)]
        late = WebPerson(base)
        try:
            for someone in using:
                await someone.open()
                await someone.say("/services")
            await late.open()
            assert late.status == 503, "no room: refused, not someone else's chat ended"
            assert late.page.tel[:1] == ["999"] and "116123" in late.page.tel, "what to do meanwhile, a tap away"
            for someone in using:
                await someone.say("/advice")
                assert someone.status == 200 and someone.page.items[-1].mine is False
        finally:
            for someone in (*using, late):
                await someone.close()


async def test_a_page_only_loaded_gives_way_and_comes_back_with_its_first_answer(tmp_path: Path, key: str) -> None:
    async with web_chat_served(tmp_path / "data", key) as (_, base, chat):
        chat.sessions.limit = 2
        reader, others = WebPerson(base), [WebPerson(base) for _ in range(2)]
        try:
            await reader.open()  # reads the welcome, sends nothing yet
            for someone in others:
                await someone.open()
            assert len(chat.sessions) == 2
            page = await reader.tap("I need help now")  # their session was let go meanwhile
            assert reader.status == 200 and any("999" in i.text for i in page.items if not i.mine)
        finally:
            for someone in (reader, *others):
                await someone.close()


async def test_new_chats_are_limited_per_address_taken_only_from_the_configured_header(
    tmp_path: Path, key: str
) -> None:
    extra = {"REACHABLE_WEB_CLIENT_ADDRESS_HEADER": "X-Forwarded-For"}
    async with web_chat_served(tmp_path / "data", key, extra=extra, real_rate_limits=True) as (_, base, _chat):

        async def new_chat(address: str) -> int:
            headers = {"X-Forwarded-For": f"198.51.100.1, {address}"}  # the proxy's own entry is the last
            async with aiohttp.ClientSession() as browser, browser.get(f"{base}/", headers=headers) as answer:
                return answer.status

        flood = [await new_chat("203.0.113.9") for _ in range(30)]
        assert flood.count(200) == 20 and flood[-1] == 503, "one address: a few new chats, then wait"
        assert await new_chat("203.0.113.10") == 200, "someone else still starts a chat"
    async with web_chat_served(tmp_path / "data2", key, real_rate_limits=True) as (_, base, _chat):
        statuses = []
        for n in range(30):  # without the setting, a header anyone can send changes nothing
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            async with aiohttp.ClientSession() as browser, browser.get(f"{base}/", headers=headers) as answer:
                statuses.append(answer.status)
        assert statuses.count(200) == 20


async def test_malformed_requests_leave_no_address_or_content_in_the_log(
    web: tuple[App, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, base = web
    caplog.set_level(logging.DEBUG)
    host, port = base.removeprefix("http://").split(":")
    for raw in (
        b"GET / HTTP/1.1\r\nHost: x\r\nbroken header 7731\r\n\r\n",
        b"GET /\x00secret-path-5521 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01 not http at all 4417\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(raw)
        await writer.drain()
        assert (await reader.read(1000)).startswith(b"HTTP/1.")
        writer.close()
    await asyncio.sleep(0.1)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "request failed" in logged, "the failure itself is logged"
    assert not [m for m in ("127.0.0.1", "7731", "5521", "4417", "broken") if m in logged], logged


async def test_a_report_begun_on_one_instance_goes_on_where_it_was_on_another(
    postgres: PostgresServer, tmp_path: Path, key: str
) -> None:
    """Two `reachable web` instances on one PostgreSQL database: the cookie's token names the same
    chat on both (it is derived with the shared key), and the report's draft is in the database."""
    from bot.channels.web.run import COOKIE

    extra = {"REACHABLE_DATABASE_URL": postgres.new_database()}
    async with (
        web_chat_served(tmp_path / "one", key, extra=extra) as (_, one, _),
        web_chat_served(tmp_path / "two", key, extra=extra) as (_, two, _),
    ):
        person = WebPerson(one)
        moved = WebPerson(two)
        try:
            await person.open()
            await person.say("/report")
            page = await person.say("1")
            assert "What happened?" in bot_texts(person)[-1], bot_texts(person)[-3:]
            token = next(cookie.value for cookie in person.jar if cookie.key == COOKIE)
            moved.jar.update_cookies({COOKIE: token}, URL(two))
            page = await moved.open()
            assert "What happened?" in bot_texts(moved)[-1], "shown where they were"
            assert page.csrf == person.page.csrf, "the same session on both"
            await moved.say("1")
            assert "I'm so sorry this happened to you" in " ".join(bot_texts(moved)[-2:]), "answered at that question"
        finally:
            await person.close()
            await moved.close()
