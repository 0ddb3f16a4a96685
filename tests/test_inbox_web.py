"""The staff inbox over real HTTP: signing in takes a password and a fresh TOTP code, a code works
once, repeated failures lock the account, a session is new at every sign-in and dead after
signing out or standing idle, every form needs its CSRF token and a POST from another origin is
refused, and an account sees and acts on only the cases sent to its team (403 and audited)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pyotp
import pytest
from yarl import URL

from bot.core.app import App, create_app
from bot.core.settings import Settings
from bot.core.signin import enrol
from bot.ops.inbox.server import COOKIE, Inbox, serving_inbox
from fakes.harness import free_port
from fakes.smtp import SMTPServer
from storage import ChatKey, CodeHasher, Keyring, NewReport

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def inbox(tmp_path: Path, unused_tcp_port: int) -> AsyncIterator[tuple[App, str, Inbox]]:
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    port = free_port()
    overlay = tmp_path / "charity" / "en"
    overlay.mkdir(parents=True)
    (overlay / "messages.yaml").write_text(
        "recipient.galop.label: To Galop\nrecipient.galop.who: A Galop caseworker will read it.\n", encoding="utf-8"
    )
    environ = {
        "REACHABLE_RESPONSES_DIR": str(tmp_path / "charity"),
        "REACHABLE_DATA_DIR": str(tmp_path / "data"),
        "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
        "REACHABLE_STAFF_WEB_LISTEN": f"127.0.0.1:{port}",
        "REACHABLE_SOIT_EMAIL": "soit@police.example",
        "REACHABLE_RECIPIENTS_EXTRA": '{"galop": {"email": "cases@galop.example"}}',
        **smtp.settings(),
    }
    try:
        async with create_app(Settings.from_environ(environ)) as app, serving_inbox(app) as served:
            yield app, f"http://127.0.0.1:{port}", served
    finally:
        smtp.stop()


async def add(app: App, name: str, role: str) -> pyotp.TOTP:
    enrolment = enrol(name, role, PASSWORD, CodeHasher())
    assert await app.store.add_account(enrolment.account)
    return pyotp.TOTP(enrolment.account.totp)


async def case(app: App, reference: str, send_to: str) -> None:
    report = NewReport(
        reference, f"{reference}-AAAA-BBBB", {"what": ("assault",)}, ("assault",), True, send_to, True, 1
    )
    chat = ChatKey(app.keyring.chat_key("web", reference))
    await app.store.commit_turn(chat, report=report, destinations=(f"{send_to}:email",), relay_chat=f"web:{reference}")


def browser(base: str) -> aiohttp.ClientSession:
    """A client that keeps ``__Host-`` cookies over plain HTTP on this machine, as a browser does."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[base])
    return aiohttp.ClientSession(base_url=base, cookie_jar=jar)


async def form_token(client: aiohttp.ClientSession, path: str) -> str:
    async with client.get(path) as page:
        found = CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def sign_in(client: aiohttp.ClientSession, name: str, code: str, password: str = PASSWORD) -> int:
    token = await form_token(client, "/login")
    form = {"csrf": token, "name": name, "password": password, "code": code}
    async with client.post("/login", data=form, allow_redirects=False) as answer:
        return answer.status


async def test_signing_in_takes_the_password_and_a_fresh_code_and_a_code_works_once(
    inbox: tuple[App, str, Inbox],
) -> None:
    app, base, _ = inbox
    totp = await add(app, "sam", "support")
    async with browser(base) as client:
        assert await sign_in(client, "sam", "000000" if totp.now() != "000000" else "111111") == 401
        assert await sign_in(client, "sam", totp.now(), password="wrong password here") == 401
        assert await sign_in(client, "nobody", totp.now()) == 401
        code = totp.now()
        assert await sign_in(client, "sam", code) == 303
        async with client.get("/cases") as page:
            assert page.status == 200 and "Sign out" in await page.text()
    async with browser(base) as replaying:
        assert await sign_in(replaying, "sam", code) == 401, "the same code again is refused"
    actions = [line.action for line in await app.store.staff_audit_lines()]
    assert actions == ["sign_in_failed", "sign_in_failed", "signed_in", "sign_in_failed"]


async def test_five_failures_lock_the_account_even_against_the_right_password(inbox: tuple[App, str, Inbox]) -> None:
    app, base, _ = inbox
    totp = await add(app, "sam", "support")
    async with browser(base) as attacker:
        for _ in range(5):
            assert await sign_in(attacker, "sam", totp.now(), password="guess guess guess") == 401
        assert await sign_in(attacker, "sam", totp.now()) == 401, "locked: the right password is refused too"
    account = await app.store.account("sam")
    assert account is not None and account.locked_until > 0
    assert [line.action for line in await app.store.staff_audit_lines()][-2:] == [
        "sign_in_locked_now",
        "sign_in_locked",
    ]


async def test_a_form_without_its_token_or_from_another_origin_changes_nothing(inbox: tuple[App, str, Inbox]) -> None:
    app, base, _ = inbox
    totp = await add(app, "sam", "support")
    await case(app, "CSRF-0001", "support")
    async with browser(base) as client:
        assert await sign_in(client, "sam", totp.now()) == 303
        token = await form_token(client, "/cases/CSRF-0001")
        async with client.post("/cases/CSRF-0001/close", data={"csrf": "forged"}) as answer:
            assert answer.status == 403
        elsewhere = {"Origin": "https://evil.example"}
        async with client.post("/cases/CSRF-0001/close", data={"csrf": token}, headers=elsewhere) as answer:
            assert answer.status == 403, "the right token from another site's page is refused too"
        async with client.post("/login", data={"csrf": "x", "name": "sam"}, headers=elsewhere) as answer:
            assert answer.status == 403
        report = await app.store.get_report("CSRF-0001")
        assert report is not None and report.status != "closed"
        async with client.post("/cases/CSRF-0001/close", data={"csrf": token}) as answer:
            assert answer.status == 200 and "closed" in await answer.text()
        report = await app.store.get_report("CSRF-0001")
        assert report is not None and report.status == "closed"


async def test_a_session_is_new_at_sign_in_and_dead_after_sign_out_or_idle(inbox: tuple[App, str, Inbox]) -> None:
    app, base, served = inbox
    totp = await add(app, "sam", "support")
    async with browser(base) as client:
        planted = "a-token-an-attacker-chose"
        client.cookie_jar.update_cookies({COOKIE: planted}, response_url=URL(base))
        assert await sign_in(client, "sam", totp.now()) == 303
        [cookie] = [c for c in client.cookie_jar if c.key == COOKIE]
        assert cookie.value != planted, "a token planted before signing in is not the session"
        stolen = cookie.value
        token = await form_token(client, "/cases")
        async with client.post("/logout", data={"csrf": token}, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/login"
    async with browser(base) as thief:
        thief.cookie_jar.update_cookies({COOKIE: stolen}, response_url=URL(base))
        async with thief.get("/cases", allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/login", "signed out means signed out"
    async with browser(base) as client:
        assert await sign_in(client, "sam", totp.at(time.time() + 30)) == 303, "the next code: the last is used"
        now = served.clock()
        served.clock = lambda: now + 31 * 60
        async with client.get("/cases", allow_redirects=False) as page:
            assert page.status == 303, "half an hour unused: signed out"


async def test_an_account_sees_and_acts_on_only_its_teams_cases(inbox: tuple[App, str, Inbox]) -> None:
    app, base, _ = inbox
    soit = await add(app, "officer", "soit")
    support = await add(app, "worker", "support")
    await case(app, "SPRT-0001", "support")
    await case(app, "SQXT-0001", "soit")
    async with browser(base) as client:
        assert await sign_in(client, "officer", soit.now()) == 303
        async with client.get("/cases") as page:
            listed = await page.text()
        assert "SQXT-0001" in listed and "SPRT-0001" not in listed
        async with client.get("/cases/SPRT-0001") as page:
            assert page.status == 403 and "SPRT" not in await page.text()
        token = await form_token(client, "/cases/SQXT-0001")
        before = await app.store.delivery_counts()
        for action in ("reply", "ack", "close"):
            async with client.post(f"/cases/SPRT-0001/{action}", data={"csrf": token, "text": "hello"}) as answer:
                assert answer.status == 403
        assert await app.store.delivery_counts() == before, "nothing was queued for the person"
        report = await app.store.get_report("SPRT-0001")
        assert report is not None and report.status not in ("acknowledged", "closed", "replied")
        async with client.get("/figures") as page:
            assert page.status == 403, "the figures are for admins"
    lines = [(a.name, a.action, a.reference) for a in await app.store.staff_audit_lines()]
    assert ("officer", "refused", "SPRT-0001") in lines and ("officer", "opened", "SQXT-0001") in lines
    async with browser(base) as client:
        assert await sign_in(client, "worker", support.now()) == 303
        async with client.get("/cases/SPRT-0001") as page:
            assert page.status == 200 and "Case SPRT-0001" in await page.text()
        token = await form_token(client, "/cases/SPRT-0001")
        form = {"csrf": token, "text": "Are you somewhere safe now?"}
        async with client.post("/cases/SPRT-0001/preview", data=form) as page:
            preview = await page.text()
        assert "The person will see exactly this:" in preview and "Are you somewhere safe now?" in preview
        report = await app.store.get_report("SPRT-0001")
        assert report is not None and report.status != "replied", "a preview sends nothing"
        async with client.post("/cases/SPRT-0001/reply", data=form) as page:
            assert page.status == 200
        report = await app.store.get_report("SPRT-0001")
        assert report is not None and report.status == "replied"


def test_an_operator_adds_an_account_and_is_shown_its_enrolment_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    environ = {
        **os.environ,
        "REACHABLE_DATA_DIR": str(tmp_path),
        "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
    }
    command = [sys.executable, "-m", "bot", "staff", "add", "sam", "--role", "soit", "--password-stdin"]

    def run(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, input=password + "\n", capture_output=True, text=True, env=environ, timeout=120)

    unknown = subprocess.run(
        [*command[:-3], "--role", "police", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, env=environ, timeout=120,
    )  # fmt: skip
    assert unknown.returncode != 0 and "no role 'police'" in unknown.stderr
    short = run("too short")
    assert short.returncode != 0 and "at least 12 characters" in short.stderr
    added = run(PASSWORD)
    assert added.returncode == 0, added.stderr
    uri = re.search(r"otpauth://totp/\S+", added.stdout)
    assert uri is not None and "secret=" in uri.group(0)
    assert "█" in added.stdout or "▀" in added.stdout, "a QR code to scan"
    assert PASSWORD not in added.stdout + added.stderr
    again = run(PASSWORD)
    assert again.returncode != 0 and "already an account called 'sam'" in again.stderr
    totp = pyotp.parse_uri(uri.group(0))
    assert isinstance(totp, pyotp.TOTP) and len(totp.now()) == 6


async def test_a_form_sent_twice_acts_once_and_withdrawn_or_failed_cases_are_shown(
    inbox: tuple[App, str, Inbox],
) -> None:
    app, base, _ = inbox
    totp = await add(app, "sam", "support")
    await case(app, "TW1C-0001", "support")
    async with browser(base) as client:
        assert await sign_in(client, "sam", totp.now()) == 303
        token = await form_token(client, "/cases/TW1C-0001")
        async with client.post("/cases/TW1C-0001/preview", data={"csrf": token, "text": "Once only"}) as page:
            once = re.search(r'name="once" value="(\d+)"', await page.text())
        assert once is not None
        before = sum((await app.store.delivery_counts()).values())
        form = {"csrf": token, "text": "Once only", "once": once.group(1)}
        for _ in range(2):  # Back, and send again
            async with client.post("/cases/TW1C-0001/reply", data=form) as answer:
                assert answer.status == 200
        assert sum((await app.store.delivery_counts()).values()) == before + 1, "one message for the person"
        actions = [(a.action, a.reference) for a in await app.store.staff_audit_lines()]
        assert actions.count(("reply", "TW1C-0001")) == 1, "recorded once"

        await case(app, "WDRN-0001", "support")
        for _ in range(200):  # the summary reaches the team's email first
            report = await app.store.get_report("WDRN-0001")
            if report is not None and report.status == "sent":
                break
            await asyncio.sleep(0.05)
        assert await app.store.erase_by_reference("WDRN-0001") == "WDRN-0001"
        async with client.get("/cases?status=withdrawn") as page:
            listed = await page.text()
        assert "WDRN-0001" in listed and "please delete your copies" in listed
        async with client.get("/cases/WDRN-0001") as page:
            assert page.status == 404

        await app.delivery.stop()
        await case(app, "FA1L-0001", "support")
        for due in await app.store.claim_due():
            await app.store.postpone(due.id, 0, give_up=True)
        async with client.get("/cases") as page:
            assert "FA1L-0001: to the support team (email), given up after 1 tries." in await page.text()


async def test_a_charitys_own_recipient_has_its_own_inbox(inbox: tuple[App, str, Inbox]) -> None:
    app, base, _ = inbox
    galop = await add(app, "caseworker", "galop")
    support = await add(app, "worker", "support")
    await case(app, "GXP9-0001", "galop")
    await case(app, "SPRT-0002", "support")
    async with browser(base) as client:
        assert await sign_in(client, "caseworker", galop.now()) == 303
        async with client.get("/cases") as page:
            listed = await page.text()
        assert "GXP9-0001" in listed and "SPRT-0002" not in listed
    async with browser(base) as client:
        assert await sign_in(client, "worker", support.now()) == 303
        async with client.get("/cases/GXP9-0001") as page:
            assert page.status == 403


async def test_an_admin_is_one_click_from_the_quarters_figures(inbox: tuple[App, str, Inbox]) -> None:
    app, base, _ = inbox
    admin = await add(app, "lead", "admin")
    await app.store.tally({("screen", "emergency", time.strftime("%Y-%m", time.gmtime())): 7})
    async with browser(base) as client:
        assert await sign_in(client, "lead", admin.now()) == 303
        async with client.get("/cases") as page:
            assert 'href="/figures"' in await page.text()
        async with client.get("/figures") as page:
            shown = await page.text()
        assert page.status == 200 and "<script" not in shown
        assert "Emergency screen" in shown and "provisional" in shown, "the quarter so far, marked so"
