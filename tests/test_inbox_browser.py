"""The staff inbox in a real browser (Debian's Chromium, no JavaScript anywhere in the inbox): a
support worker signs in with a password and an authenticator code, opens the case a person just
sent from the web chat, replies after seeing exactly what will be sent, and the person reads it
in the chat; then acknowledges and closes it. By keyboard alone, at 320 px, checked by axe-core.
A SOIT account asking for that case is refused. On Telegram, the same reply reaches the person."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from bot.core.app import App
from bot.core.signin import enrol
from bot.ops.inbox.server import serving_inbox
from fakes.harness import Person, free_port, polling_bot, settings_for, web_chat
from fakes.telegram import FakeTelegram
from storage import CodeHasher, Keyring
from tests.test_inbox_web import PASSWORD
from tests.test_support import CHAT, STAFF, send_report, until
from tests.test_web_browser import AXE_TAGS, page_in, say, whole_report

CHROMIUM = shutil.which("chromium")
playwright_api = pytest.importorskip("playwright.async_api")
WEB_STAFF = {"REACHABLE_STAFF_CHAT_ID": "-1001234", "REACHABLE_STAFF_USER_IDS": "1"}


async def account(app: App, name: str, role: str) -> pyotp.TOTP:
    enrolment = enrol(name, role, PASSWORD, CodeHasher())
    assert await app.store.add_account(enrolment.account)
    return pyotp.TOTP(enrolment.account.totp)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[App, str, str]]:
    port = free_port()
    extra = {
        **WEB_STAFF,
        "REACHABLE_STAFF_WEB_LISTEN": f"127.0.0.1:{port}",
        "REACHABLE_WEB_EXIT_URL": "https://example.org/",
    }
    async with web_chat(tmp_path / "data", Keyring.new_key().decode(), extra=extra) as (app, base):
        app.delivery.backoff = 0.05
        async with serving_inbox(app):
            yield app, base, f"http://127.0.0.1:{port}"


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def axe_clean(page: Any) -> None:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    assert [v["id"] for v in results.response["violations"]] == [], page.url


async def fits(page: Any) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= 320, f"{page.url} scrolls sideways"


async def tab_to(page: Any, name: str) -> None:
    """Move focus with Tab alone until it is on the control or link called ``name``."""
    for _ in range(40):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "(document.activeElement.labels && document.activeElement.labels[0]"
            " ? document.activeElement.labels[0].textContent : document.activeElement.textContent).trim()"
        )
        if focused.startswith(name):
            return
    raise AssertionError(f"{name!r} cannot be reached by Tab on {page.url}")


async def sign_in_by_keyboard(page: Any, name: str, code: str) -> None:
    await tab_to(page, "Name")
    await page.keyboard.type(name)
    await tab_to(page, "Password")
    await page.keyboard.type(PASSWORD)
    await tab_to(page, "Code from your authenticator app")
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r".*/cases$"))


async def sign_in_by_form(page: Any, inbox: str, name: str, code: str) -> None:
    await page.goto(f"{inbox}/login")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.fill("#code", code)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r".*/cases$"))


async def test_a_support_worker_answers_a_web_chat_report_by_keyboard_at_320px(
    site: tuple[App, str, str], chromium: Any
) -> None:
    app, chat_base, inbox = site
    totp = await account(app, "worker", "support")
    person = await page_in(chromium, True)
    await person.goto(chat_base)
    reference, code = await whole_report(person, True)

    # The inbox has no script (checked below with JavaScript off); on here for axe and focus checks.
    staff = await page_in(chromium, True, 320, 640)
    await staff.goto(f"{inbox}/cases")
    assert staff.url.endswith("/login") and "<script" not in await staff.content()
    await axe_clean(staff)
    await fits(staff)
    await sign_in_by_keyboard(staff, "worker", totp.now())
    await axe_clean(staff)
    await fits(staff)
    await tab_to(staff, reference)
    await staff.keyboard.press("Enter")
    await staff.wait_for_url(re.compile(rf".*/cases/{reference}$"))
    assert "He took my phone and my cards." in await staff.locator("main").inner_text()
    await axe_clean(staff)
    await fits(staff)
    await tab_to(staff, "Your message")
    await staff.keyboard.type("We read it. Are you somewhere safe now?")
    await tab_to(staff, "Check before sending")
    await staff.keyboard.press("Enter")
    await staff.wait_for_url(re.compile(r".*/preview$"))
    assert "We read it. Are you somewhere safe now?" in await staff.locator("blockquote").inner_text()
    await axe_clean(staff)
    await tab_to(staff, "Send it")
    await staff.keyboard.press("Enter")
    await staff.wait_for_url(re.compile(r".*/reply$"))
    # A web page cannot be messaged first: the reply waits until the person asks with their code.
    assert "It reaches them only if they come back and ask with their code." in await staff.locator("main").inner_text()
    await say(person, f"/check {code}", True)
    for _ in range(60):  # the chat asks for new messages by itself
        if "We read it. Are you somewhere safe now?" in await person.locator("#log").inner_text():
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("the reply never reached the person")
    await staff.get_by_role("button", name=re.compile("^Acknowledge")).click()
    await staff.get_by_role("button", name=re.compile("^Close")).click()
    assert "Status: Closed" in await staff.locator("main").inner_text()

    officer = await account(app, "officer", "soit")
    other = await page_in(chromium, False, 320, 640)  # JavaScript off: signing in is a plain form
    await sign_in_by_form(other, inbox, "officer", officer.now())
    refused = await other.goto(f"{inbox}/cases/{reference}")
    assert refused is not None and refused.status == 403
    lines = [(a.name, a.action, a.reference) for a in await app.store.staff_audit_lines()]
    assert ("officer", "refused", reference) in lines and ("worker", "opened", reference) in lines


async def test_a_reply_from_the_inbox_reaches_the_person_on_telegram(
    fake: FakeTelegram, tmp_path: Path, chromium: Any
) -> None:
    fake.chat(STAFF, "supergroup")
    port = free_port()
    inbox = f"http://127.0.0.1:{port}"
    settings = settings_for(
        fake,
        tmp_path / "data",
        Keyring.new_key().decode(),
        REACHABLE_STAFF_CHAT_ID=str(STAFF),
        REACHABLE_STAFF_USER_IDS="1",
        REACHABLE_STAFF_WEB_LISTEN=f"127.0.0.1:{port}",
    )
    async with polling_bot(settings) as running, serving_inbox(running.app):
        running.app.delivery.backoff = 0.05
        totp = await account(running.app, "worker", "support")
        reference, _ = await send_report(Person(fake, CHAT))
        staff = await page_in(chromium, False, 320, 640)  # the inbox needs no JavaScript
        await sign_in_by_form(staff, inbox, "worker", totp.now())
        await staff.get_by_role("link", name=re.compile(reference)).click()
        await staff.get_by_label("Your message").fill("From the inbox: are you safe?")
        await staff.get_by_role("button", name="Check before sending").click()
        await staff.wait_for_url(re.compile(r".*/preview$"))
        await staff.get_by_role("button", name="Send it").click()
        await staff.wait_for_url(re.compile(r".*/reply$"))
        person = Person(fake, CHAT)
        await until(lambda: "From the inbox: are you safe?" in person.screen)
        await person.says("yes, at home now")
        await person.taps("Send it")
        await until(lambda: any("Answer from the person" in t for t in fake.bot_texts(STAFF)))
        await staff.goto(f"{inbox}/cases/{reference}")
        shown = await staff.locator("main").inner_text()
        assert shown.index("From the inbox: are you safe?") < shown.index("yes, at home now"), "the conversation"
        await staff.get_by_role("button", name=re.compile("^Close")).click()
        closed = await staff.locator("main").inner_text()
        assert "Status: Closed" in closed and "yes, at home now" not in closed, "closing takes the conversation"
        # The staff chat acts on the same case: its status is the inbox's.
        await fake.user_sends(STAFF, f"/ack {reference}", kind="supergroup", user_id=1)
        await until(lambda: any(f"{reference}" in t and "acknowledged" in t.lower() for t in fake.bot_texts(STAFF)))
        report = await running.app.store.get_report(reference)
        assert report is not None and report.status == "acknowledged"
