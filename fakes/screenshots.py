"""`make screenshots`: the web chat's main screens on a small phone (320×568), a common one
(390×760) and a desktop (1280×800), into docs/web/; and the quarterly figures page made from demo
data (`reachable figures --demo`), into docs/figures/.

The real web chat on a temporary data folder, driven by Playwright with Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from fakes.harness import web_chat
from storage import Keyring

OUT = Path(__file__).resolve().parent.parent / "docs" / "web"
FIGURES = OUT.parent / "figures"
SIZES = ((320, 568), (390, 760), (1280, 800))


def option(page: Any, label: str) -> Any:
    """The option button with this label (buttons show their number first: "1. Start")."""
    return page.get_by_role("button", name=re.compile(rf"^\d+\. {re.escape(label)}$"))


async def answer(page: Any, text: str) -> None:
    before = await page.locator("#log > li").count()
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await page.locator("#log > li").nth(before + 1).wait_for()


async def press(page: Any, label: str) -> None:
    before = await page.locator("#log > li").count()
    await option(page, label).click()
    await page.locator("#log > li").nth(before).wait_for()


async def screens(page: Any, base: str, width: int) -> list[Path]:
    taken = []

    async def shoot(name: str) -> None:
        path = OUT / f"{name}-{width}.png"
        await page.screenshot(path=str(path), full_page=False)
        taken.append(path)

    await page.goto(base)
    await shoot("1-welcome")
    await answer(page, "my mate has gone blue and wont respond")
    await shoot("2-emergency")
    await answer(page, "/report")
    await press(page, "Start")
    await press(page, "Robbery or theft")
    await shoot("3-question")
    return taken


async def figures_page(browser: Any) -> Path:
    """The top of the demo figures page, at a desktop's width, without JavaScript."""
    from bot.cli import main as reachable

    folder = Path(tempfile.mkdtemp())
    reachable(["figures", "--demo", "--quarter", "2026Q4", "--out", str(folder)])
    context = await browser.new_context(viewport={"width": 900, "height": 1100}, java_script_enabled=False)
    page = await context.new_page()
    await page.goto((folder / "figures.html").as_uri())
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "figures-demo.png"
    await page.screenshot(path=str(path), full_page=False)
    await context.close()
    return path


async def inbox_page(browser: Any) -> Path:
    """The staff inbox's case page, after signing in, with a made-up case."""
    import pyotp

    from bot.core.app import create_app
    from bot.core.settings import Settings
    from bot.core.signin import enrol
    from bot.ops.inbox.server import serving_inbox
    from fakes.harness import free_port
    from storage import ChatKey, CodeHasher, NewReport

    port = free_port()
    environ = {
        "REACHABLE_DATA_DIR": tempfile.mkdtemp(),
        "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
        "REACHABLE_STAFF_WEB_LISTEN": f"127.0.0.1:{port}",
        "REACHABLE_SMTP_HOST": "127.0.0.1",
        "REACHABLE_SMTP_PORT": "9",
        "REACHABLE_SMTP_TO": "team@charity.example",
    }
    async with create_app(Settings.from_environ(environ)) as app, serving_inbox(app):
        await app.delivery.stop()  # the made-up summary goes nowhere
        enrolment = enrol("sam", "support", "a demo password, never real", CodeHasher())
        await app.store.add_account(enrolment.account)
        summary: dict[str, tuple[str, ...] | str] = {
            "what": ("drugged",),
            "where": ("london",),
            "borough": "Lambeth",
            "account": "At a party, my drink.",
        }
        report = NewReport("7K2P-QX9D", "7K2P-QX9D-M4TA-8BWE", summary, ("drugged",), True, "support", True, 1)
        await app.store.commit_turn(
            ChatKey(app.keyring.chat_key("web", "demo")), report=report, destinations=("support:email",),
            relay_chat="web:demo",
        )  # fmt: skip
        context = await browser.new_context(viewport={"width": 900, "height": 900}, java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/login")
        await page.fill("#name", "sam")
        await page.fill("#password", "a demo password, never real")
        await page.fill("#code", pyotp.TOTP(enrolment.account.totp).now())
        await page.click("button[type=submit]")
        await page.goto(f"http://127.0.0.1:{port}/cases/7K2P-QX9D")
        path = OUT.parent / "inbox" / "case.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=False)
        await context.close()
        return path


async def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    async with (
        web_chat(Path(tempfile.mkdtemp()), Keyring.new_key().decode()) as (_, base),
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        print(f"wrote {(await figures_page(browser)).relative_to(OUT.parent.parent)}")
        print(f"wrote {(await inbox_page(browser)).relative_to(OUT.parent.parent)}")
        for width, height in SIZES:
            context = await browser.new_context(viewport={"width": width, "height": height})
            for path in await screens(await context.new_page(), base, width):
                print(f"wrote {path.relative_to(OUT.parent.parent)}")
            await context.close()
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
