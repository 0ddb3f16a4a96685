"""`reachable doctor`: check a configuration before people depend on it, without sending a
message anyone would see. One line per check: OK, WARN or FAIL, and what to do."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib

from bot.settings import Settings
from responses import check as check_responses
from storage import DB_FILE
from storage.crypto import KEY_FILE

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    status: str
    check: str
    text: str

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.check}: {self.text}"


def data_folder(settings: Settings) -> list[Finding]:
    folder = settings.data_dir
    if not folder.exists():
        return [Finding(WARN, "data folder", f"{folder} does not exist yet: it is created (mode 0700) at first start")]
    found = []
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        text = f"{folder} is mode {mode:04o}: others can look in (the bot makes it 0700 when it starts)"
        found.append(Finding(WARN, "data folder", text))
    else:
        found.append(Finding(OK, "data folder", f"{folder}, mode {mode:04o}"))
    for path in sorted(folder.glob(f"{DB_FILE}*")) + sorted(folder.glob(KEY_FILE)):
        file_mode = stat.S_IMODE(path.stat().st_mode)
        if file_mode & 0o077:
            found.append(Finding(FAIL, "file permissions", f"{path.name} is mode {file_mode:04o}; chmod 600 it"))
    return found


def key(settings: Settings) -> Finding:
    if settings.encryption_key is not None:
        keys = [k for k in settings.encryption_key.get_secret_value().split(",") if k.strip()]
        if len(keys) > 1:
            return Finding(
                WARN,
                "key",
                f"from REACHABLE_ENCRYPTION_KEY; {len(keys) - 1} older key(s) remain: "
                "after `reachable keys rotate` and 48 hours, `reachable keys prune`",
            )
        return Finding(OK, "key", "from REACHABLE_ENCRYPTION_KEY, one key")
    path = settings.data_dir / KEY_FILE
    if path.exists():
        return Finding(
            WARN,
            "key",
            f"the key file {path} is beside the database: one backup or stolen disk holds both; "
            "give the key through REACHABLE_ENCRYPTION_KEY from a secrets manager",
        )
    return Finding(WARN, "key", "no key yet: a key file is created beside the database at first start")


def database(settings: Settings, thorough: bool = True) -> Finding:
    path = settings.data_dir / DB_FILE
    if not path.exists():
        return Finding(OK, "database", "not created yet (it is at first start)")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            pragma = "integrity_check" if thorough else "quick_check"
            verdict = str(db.execute(f"PRAGMA {pragma}").fetchone()[0])
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as error:
        return Finding(FAIL, "database", f"{path} cannot be read ({error}); restore it from a backup")
    if verdict != "ok":
        return Finding(FAIL, "database", f"integrity check says {verdict!r}: restore it from a backup")
    latest = len(list((Path(__file__).parent.parent / "storage" / "migrations").glob("*.sql")))
    if version < latest:
        return Finding(WARN, "database", f"at version {version} of {latest}: it is migrated at the next start")
    return Finding(OK, "database", f"integrity ok, version {version}")


class BotAPI:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        token = settings.telegram_token.get_secret_value() if settings.telegram_token else ""
        self.base = f"{settings.telegram_api_url.rstrip('/')}/bot{token}"
        self.session = session

    async def call(self, method: str, **params: Any) -> tuple[bool, Any]:
        async with self.session.post(f"{self.base}/{method}", json=params) as answer:
            body = await answer.json(content_type=None)
        return bool(body.get("ok")), body.get("result") if body.get("ok") else body.get("description")


async def telegram(settings: Settings, webhook: bool) -> list[Finding]:
    if settings.telegram_token is None:
        return [Finding(WARN, "token", "REACHABLE_TELEGRAM_TOKEN is not set: `reachable run` will not start")]
    found = []
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = BotAPI(settings, session)
            ok, me = await api.call("getMe")
            if not ok:
                return [Finding(FAIL, "token", f"Telegram refused it ({me}): copy the token from @BotFather again")]
            found.append(Finding(OK, "token", f"the bot is @{me.get('username')}"))
            ok, info = await api.call("getWebhookInfo")
            if ok and info.get("url") and not webhook:
                found.append(Finding(WARN, "webhook", "a webhook is set: polling removes it at start"))
            found += await staff_chats(settings, api)
    except (aiohttp.ClientError, TimeoutError) as error:
        return [Finding(FAIL, "token", f"the Bot API cannot be reached ({type(error).__name__})")]
    return found


async def staff_chats(settings: Settings, api: BotAPI) -> list[Finding]:
    found = []
    for destination, chat_id in sorted(settings.staff_chats.items()):
        ok, chat = await api.call("getChat", chat_id=chat_id)
        if not ok:
            found.append(
                Finding(FAIL, "staff chat", f"{destination} {chat_id}: {chat}; add the bot to it, check the id")
            )
        elif chat.get("username"):
            found.append(
                Finding(FAIL, "staff chat", f"{destination} is public (@{chat['username']}): remove its public link")
            )
        else:
            found.append(Finding(OK, "staff chat", f"{destination}: private, the bot can see it"))
    if settings.staff_chats and not settings.staff_user_ids.strip():
        found.append(Finding(WARN, "staff users", "REACHABLE_STAFF_USER_IDS is empty: staff commands are refused"))
    return found


async def smtp(settings: Settings) -> list[Finding]:
    if not settings.smtp_host:
        return []
    try:
        client = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, start_tls=False, timeout=15)
        await client.connect()
        if settings.smtp_starttls:
            import ssl

            context = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)
            await client.starttls(tls_context=context)
        if settings.smtp_username and settings.smtp_password:
            await client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as error:
        return [Finding(FAIL, "email", f"{settings.smtp_host}:{settings.smtp_port}: {type(error).__name__}")]
    tls = "with TLS" if settings.smtp_starttls else "WITHOUT TLS"
    return [Finding(OK if settings.smtp_starttls else WARN, "email", f"{settings.smtp_host} answers {tls}")]


def webhook_setup(settings: Settings, webhook: bool) -> list[Finding]:
    if not webhook:
        return []
    if settings.webhook_secret is None:
        return [Finding(FAIL, "webhook", "REACHABLE_WEBHOOK_SECRET is not set: set a long random value")]
    return [Finding(OK, "webhook", f"secret set; served at the path of {settings.webhook_url or '/telegram'}")]


def responses(settings: Settings) -> list[Finding]:
    checked = check_responses(settings.responses_dir)
    errors = [p for p in checked.problems if p.severity == "error"]
    if errors:
        return [
            Finding(FAIL, "responses", f"{len(errors)} error(s), first: {errors[0]}: run `reachable responses check`")
        ]
    examples = len(checked.examples())
    warnings = len(checked.problems)  # advice (a service not checked lately), not a fault
    return [Finding(OK, "responses", f"no errors, {warnings} warning(s); {examples} understanding examples")]


async def diagnose(settings: Settings, webhook: bool = False) -> list[Finding]:
    steps: list[Callable[[], Awaitable[list[Finding]]]] = [
        lambda: telegram(settings, webhook),
        lambda: smtp(settings),
    ]
    found = [*data_folder(settings), key(settings), database(settings)]
    for step in steps:
        found += await step()
    return found + webhook_setup(settings, webhook) + responses(settings)


def quick(settings: Settings, webhook: bool) -> list[Finding]:
    """What `reachable run` checks before it starts (no network): it refuses on a FAIL."""
    return [database(settings, thorough=False), *webhook_setup(settings, webhook)]
