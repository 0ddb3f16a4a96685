"""The web chat in a real browser: Playwright driving Debian's Chromium (no browser download),
with JavaScript on and off, by mouse and by keyboard alone, checked by axe-core at WCAG 2.2 AA."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.core.app import App
from fakes.harness import free_port, web_chat
from storage import Keyring

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
playwright_api = pytest.importorskip("playwright.async_api")
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")
STAFF = {"REACHABLE_STAFF_CHAT_ID": "-1001234", "REACHABLE_STAFF_USER_IDS": "1"}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture
async def neutral() -> AsyncIterator[str]:
    """The neutral site "Leave now" opens (a weather page, on this machine)."""

    async def weather(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>Weather</title><h1>Weather</h1>", content_type="text/html")

    application = web.Application()
    application.router.add_get("/", weather)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


@pytest.fixture
async def site(tmp_path: Path, neutral: str) -> AsyncIterator[tuple[App, str]]:
    extra = {**STAFF, "REACHABLE_WEB_EXIT_URL": neutral}
    async with web_chat(tmp_path / "data", Keyring.new_key().decode(), extra=extra) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


PHONES = [(320, 568), (390, 760)]


async def page_in(browser: Any, javascript: bool = True, width: int = 1280, height: int = 900) -> Any:
    context = await browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": height})
    return await context.new_page()


def option(page: Any, label: str) -> Any:
    """The option button with this label (each shows its number first: "1. Start")."""
    return page.get_by_role("button", name=re.compile(rf"^\d+\. {re.escape(label)}$"))


async def say(page: Any, text: str, javascript: bool) -> None:
    before = await page.locator("#log > li").count()
    await page.fill("#text", text)
    if javascript:
        await page.press("#text", "Enter")
        await page.locator("#log > li").nth(before + 1).wait_for()
    else:
        await page.click("form.say button[type=submit]")


async def tap(page: Any, label: str, javascript: bool) -> None:
    before = await page.locator("#log > li").count()
    await option(page, label).click()
    if javascript:
        await page.locator("#log > li").nth(before).wait_for()


async def whole_report(page: Any, javascript: bool) -> tuple[str, str]:
    await say(page, "/report", javascript)
    for label in ("Start", "Robbery or theft", "Done", "This week", "In London"):
        await tap(page, label, javascript)
    await say(page, "hackney", javascript)
    await tap(page, "Skip", javascript)
    await say(page, "He took my phone and my cards.", javascript)
    for label in ("Skip", "Skip", "Skip", "Yes, it's right", "Yes, keep it", "To the support team"):
        await tap(page, label, javascript)
    await tap(page, "Yes, they may reply", javascript)
    text = await page.locator("#log").inner_text()
    return REF.findall(text)[-1], CODE.findall(text)[-1]


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript on", "javascript off"])
async def test_a_2am_disclosure_then_a_whole_report_kept_and_sent(
    site: tuple[App, str], browser: Any, javascript: bool
) -> None:
    _, base = site
    page = await page_in(browser, javascript)
    loads: list[str] = []
    page.on("load", lambda _: loads.append("load"))
    await page.goto(base)
    await say(page, "i think i was raped last night, i was out of it on G", javascript)
    log = await page.locator("#log").inner_text()
    assert "The Havens" in log or "999" in log
    reference, code = await whole_report(page, javascript)
    assert reference and code
    if javascript:
        assert loads == ["load"], "no page reloads with JavaScript on"
        focused = await page.evaluate("document.activeElement.className + ' ' + document.activeElement.id")
        assert focused.startswith("bot m"), "focus goes to the newest reply"
    else:
        assert len(loads) > 10  # every answer was a form post and a new page


@pytest.mark.parametrize("size", PHONES, ids=["320x568", "390x760"])
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript on", "javascript off"])
async def test_leave_now_opens_the_neutral_site_and_back_does_not_show_the_chat(
    site: tuple[App, str], browser: Any, neutral: str, javascript: bool, size: tuple[int, int]
) -> None:
    _, base = site
    page = await page_in(browser, javascript, *size)
    await page.goto(base)
    await say(page, "/report", javascript)
    await tap(page, "Start", javascript)
    await page.click("#leave")
    await page.wait_for_url(neutral)
    await page.go_back()
    await page.wait_for_load_state()
    await asyncio.sleep(0.5)  # a page that sends the browser on has done so
    shown = await page.content()
    assert page.url == neutral or page.url == "about:blank", f"Back showed {page.url}"
    assert "Confidential chat" not in shown and "/report" not in shown


async def test_escape_twice_leaves(site: tuple[App, str], browser: Any, neutral: str) -> None:
    _, base = site
    page = await page_in(browser)
    await page.goto(base)
    await page.focus("#text")
    await page.keyboard.press("Escape")
    await page.keyboard.press("Escape")
    await page.wait_for_url(neutral)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript on", "javascript off"])
async def test_a_staff_reply_is_read_after_coming_back_with_the_code(
    site: tuple[App, str], browser: Any, neutral: str, javascript: bool
) -> None:
    app, base = site
    app.delivery.backoff = 0.05
    page = await page_in(browser, javascript)
    await page.goto(base)
    reference, code = await whole_report(page, javascript)
    await page.click("#leave")
    await page.wait_for_url(neutral)
    await app.desk.command("reply", f"{reference} Are you somewhere safe now?", frozenset({"support"}))

    back = await page_in(browser, javascript)
    await back.goto(base)
    await say(back, f"/check {code}", javascript)
    for _ in range(60):
        if "Are you somewhere safe now?" in await back.locator("#log").inner_text():
            break
        if javascript:
            await asyncio.sleep(0.5)  # the page asks for new messages by itself
        else:
            await back.click("form.refresh button")
    else:
        raise AssertionError("the staff reply never showed")


@pytest.mark.parametrize("size", [PHONES[0], (1280, 900)], ids=["320x568", "1280x900"])
async def test_a_whole_report_by_keyboard_alone(site: tuple[App, str], browser: Any, size: tuple[int, int]) -> None:
    _, base = site
    page = await page_in(browser, True, *size)
    await page.goto(base)

    async def press_button(label: str) -> None:
        for _ in range(60):
            await page.keyboard.press("Tab")
            focused = await page.evaluate("document.activeElement.textContent.trim()")
            if re.fullmatch(rf"\d+\. {re.escape(label)}", focused):
                await page.keyboard.press("Enter")
                await asyncio.sleep(0.3)
                return
        raise AssertionError(f"{label!r} cannot be reached by Tab")

    async def type_message(text: str) -> None:
        await page.focus("#text")  # focus is kept in the box after each answer
        await page.keyboard.type(text)
        await page.keyboard.press("Enter")
        await asyncio.sleep(0.3)

    await type_message("/report")
    for label in ("Start", "Robbery or theft", "Done", "This week", "In London"):
        await page.focus("#text")
        await press_button(label)
    await type_message("hackney")
    await press_button("Skip")
    await type_message("He took my phone.")
    for label in ("Skip", "Skip", "Skip", "Yes, it's right", "No, don't keep it", "Don't send it"):
        await page.focus("#text")
        await press_button(label)
    outline = await page.evaluate(
        "(() => { const b = document.querySelector('form.say button');"
        " b.focus(); return getComputedStyle(b).outlineStyle; })()"
    )
    assert outline != "none", "focus is visible"
    assert "summary" in (await page.locator("#log").inner_text()).lower()


async def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in results.response["violations"]]


@pytest.mark.parametrize("size", [*PHONES, (1280, 900)], ids=["320x568", "390x760", "1280x900"])
async def test_axe_finds_nothing_on_the_main_screens_and_nothing_scrolls_sideways(
    site: tuple[App, str], browser: Any, size: tuple[int, int], tmp_path: Path
) -> None:
    _, base = site
    width, height = size
    context = await browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = await context.new_page()
    await page.goto(base)
    screens: dict[str, list[str]] = {"welcome": await axe_violations(page)}
    await say(page, "i think i was raped last night", True)
    screens["help after assault"] = await axe_violations(page)
    await say(page, "/report", True)
    await tap(page, "Start", True)
    screens["a question with choices"] = await axe_violations(page)
    await tap(page, "Robbery or theft", True)
    await tap(page, "Done", True)
    await tap(page, "This week", True)
    await tap(page, "In London", True)
    screens["a question to type"] = await axe_violations(page)
    await say(page, "/services", True)
    screens["services"] = await axe_violations(page)
    assert {name: found for name, found in screens.items() if found} == {}
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def visible_below_the_bar(page: Any, element: Any, height: int) -> bool:
    """Whether the element's first line is on screen, not under the sticky bar."""
    box = await element.bounding_box()
    bar = await page.locator("#bar").bounding_box()
    return bool(box and bar and box["y"] >= bar["y"] + bar["height"] - 1 and box["y"] + 20 <= height)


@pytest.mark.parametrize("size", PHONES, ids=["320x568", "390x760"])
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript on", "javascript off"])
async def test_on_a_phone_999_and_the_first_choices_come_first_and_a_reply_starts_in_view(
    site: tuple[App, str], browser: Any, size: tuple[int, int], javascript: bool
) -> None:
    _, base = site
    width, height = size
    page = await page_in(browser, javascript, width, height)
    await page.goto(base)
    assert await visible_below_the_bar(page, page.locator('a[href="tel:999"]').first, height), "999, to tap"
    assert await visible_below_the_bar(page, option(page, "I need help now"), height), "the first choice"
    await say(page, "my friend won't wake up", javascript)
    await page.wait_for_load_state()
    reply = page.locator("#log > li.mine").last.locator("xpath=following-sibling::li[1]")
    assert "call 999 now" in await reply.inner_text()
    assert await visible_below_the_bar(page, reply, height), "the reply's first line is in view, not under the bar"
    assert await reply.locator('a[href="tel:999"]').count() >= 1, "999 in the reply is a link too"


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript on", "javascript off"])
async def test_the_whole_page_speaks_the_persons_language_its_bar_included(
    site: tuple[App, str], browser: Any, javascript: bool
) -> None:
    _, base = site
    page = await page_in(browser, javascript)
    await page.goto(base)
    await say(page, "kolega nie oddycha po G, co mam robic", javascript)
    await page.wait_for_load_state()
    assert await page.evaluate("document.documentElement.lang") == "pl"
    assert await page.locator("#leave").inner_text() == "Wyjdź teraz"
    assert await page.locator("#danger").inner_text() == "Grozi Ci niebezpieczeństwo? Zadzwoń pod 999."


async def test_an_error_answer_keeps_the_page_and_its_leave_now_button(site: tuple[App, str], browser: Any) -> None:
    _, base = site
    page = await page_in(browser)
    await page.goto(base)
    await page.fill("#text", "I need to tell someone. " * 180)  # 4,320 characters: all of it goes
    await page.press("#text", "Enter")
    await page.locator("#log > li.bot", has_text="has 4320 characters. I read the first 4096").wait_for()
    await page.fill("#text", "   ")
    await page.press("#text", "Enter")
    await page.locator("#error", has_text="empty").wait_for()
    # A form from a page gone out of date (its token no longer matches): refused, page kept.
    await page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => { i.value = 'stale'; })")
    await page.fill("#text", "hello")
    await page.press("#text", "Enter")
    await page.locator("#error", has_text="out of date").wait_for()
    assert await page.locator("#leave").is_visible() and await page.locator("#log > li").count() >= 2
    await say(page, "hello again", True)  # and the next message goes through
