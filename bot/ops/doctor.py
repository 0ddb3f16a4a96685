"""`reachable doctor`: check a configuration before people depend on it, without sending a
message anyone would see. One line per check: OK, WARN or FAIL, and what to do."""

from __future__ import annotations

import contextlib
import sqlite3
import ssl
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiosmtplib
from pydantic import ValidationError

from bot.core.settings import PREFIX, Settings
from responses import check as check_responses
from storage import DB_FILE, KeyringError, load_keyring
from storage.crypto import KEY_FILE
from storage.inbox import INBOX_FILE
from storage.sqlite_file import SEALED

if TYPE_CHECKING:  # imported by the checks that call out: `reachable run` starts without it
    import aiohttp

OK, WARN, FAIL = "OK", "WARN", "FAIL"
# pydantic error types whose message never contains the value given.
QUIET_ERRORS = frozenset(
    {"literal_error", "int_parsing", "int_type", "bool_parsing", "float_parsing", "missing", "url_parsing"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    status: str
    check: str
    text: str

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.check}: {self.text}"


def unreadable_settings(error: ValidationError) -> list[Finding]:
    """One FAIL per setting that does not parse, naming the variable and never echoing its value
    (it may be the token)."""
    found = []
    for problem in error.errors():
        name = PREFIX + str(problem["loc"][0]).upper() if problem["loc"] else "a setting"
        # pydantic's own messages name the expected form; a validator's may quote the value.
        text = problem["msg"] if problem["type"] in QUIET_ERRORS else "is not in the form README describes"
        found.append(Finding(FAIL, "settings", f"{name}: {text}"))
    return found


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
    files = [*folder.glob(f"{DB_FILE}*"), *folder.glob(f"{INBOX_FILE}*"), *folder.glob(KEY_FILE)]
    for path in sorted(files):
        file_mode = stat.S_IMODE(path.stat().st_mode)
        if file_mode & 0o077:
            found.append(Finding(FAIL, "file permissions", f"{path.name} is mode {file_mode:04o}; chmod 600 it"))
    return found


def key(settings: Settings) -> Finding:
    if settings.shared_database and settings.encryption_key is None:
        text = "REACHABLE_DATABASE_URL needs REACHABLE_ENCRYPTION_KEY, the same on every instance (not a key file)"
        return Finding(FAIL, "key", text)
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
    if (settings.data_dir / DB_FILE).exists():
        return Finding(
            FAIL,
            "key",
            f"there is a database but no key file: put {KEY_FILE} back from your key backup, or set "
            "REACHABLE_ENCRYPTION_KEY (a new key cannot open what is stored)",
        )
    return Finding(WARN, "key", "no key yet: a key file is created beside the database at first start")


def matching_key(settings: Settings) -> list[Finding]:
    """With a matching contact: where the matching key is, and whether it sits with the data."""
    if settings.matching is None:
        return []
    path = settings.matching_key_path
    if not path.exists():
        return [Finding(WARN, "matching key", f"{path} does not exist yet: it is made (mode 0600) at first start")]
    if path.parent.resolve() == settings.data_dir.resolve():
        text = (
            f"{path} is beside the database: with both, every phone number could be tried against the "
            "digests; set REACHABLE_MATCHING_KEY_FILE to another disk or a secrets manager's file"
        )
        return [Finding(WARN, "matching key", text)]
    return [Finding(OK, "matching key", f"{path}, apart from the database")]


def _key_opens(settings: Settings, path: Path) -> bool:
    """Whether the configured key opens a stored token of each kind (True when there is no key
    yet to try, or nothing stored: the key finding speaks of that)."""
    configured = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    if configured is None and not (settings.data_dir / KEY_FILE).exists():
        return True
    try:
        keyring = load_keyring(configured, settings.data_dir)
    except KeyringError:
        return False
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for table, _, column in SEALED:
            try:
                row = db.execute(f"SELECT {column} FROM {table} WHERE length({column}) > 0 LIMIT 1").fetchone()  # noqa: S608
            except sqlite3.Error:
                continue  # a table a later version adds
            if row is not None:
                try:
                    keyring.decrypt(bytes(row[0]))
                except KeyringError:
                    return False
    return True


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
    if not _key_opens(settings, path):
        return Finding(
            FAIL,
            "database",
            "the encryption key does not open what is stored: was it restored without its key? Put the right "
            "key back (REACHABLE_ENCRYPTION_KEY or the key file)",
        )
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
    import aiohttp

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
            if ok:
                found += webhook_info(settings, info, webhook)
            found += await staff_chats(settings, api, me["id"])
    except (aiohttp.ClientError, TimeoutError) as error:
        return [Finding(FAIL, "token", f"the Bot API cannot be reached ({type(error).__name__})")]
    return found


def webhook_info(settings: Settings, info: dict[str, Any], webhook: bool) -> list[Finding]:
    """What Telegram says about the webhook: set where we expect, and its last delivery error."""
    url = info.get("url") or ""
    if not webhook:
        return [Finding(WARN, "webhook", "a webhook is set: polling removes it at start")] if url else []
    found = []
    if url and settings.webhook_url and url != settings.webhook_url:
        found.append(Finding(WARN, "webhook", f"Telegram sends to {url}; `reachable run --webhook` sets the new one"))
    if info.get("last_error_message"):
        minutes = max(0, int(time.time() - info.get("last_error_date", 0)) // 60)
        text = f"Telegram's last delivery failed {minutes} min ago ({info['last_error_message']})"
        found.append(Finding(WARN, "webhook", f"{text}; {info.get('pending_update_count', 0)} waiting"))
    return found


def may_post(member: dict[str, Any], chat: dict[str, Any]) -> bool:
    """Whether the bot may send there: as an admin, as a member where members may send (the
    group's default permissions), or restricted but still allowed to."""
    status = member.get("status")
    if status in ("creator", "administrator"):
        return True
    if status == "member":
        return chat.get("permissions", {}).get("can_send_messages", True) is not False
    return status == "restricted" and bool(member.get("can_send_messages"))


async def staff_chats(settings: Settings, api: BotAPI, bot_id: int) -> list[Finding]:
    found = []
    for destination, chat_id in sorted(settings.staff_chats.items()):
        ok, chat = await api.call("getChat", chat_id=chat_id)
        if not ok:
            found.append(
                Finding(FAIL, "staff chat", f"{destination} {chat_id}: {chat}; add the bot to it, check the id")
            )
            continue
        if chat.get("username"):
            found.append(
                Finding(FAIL, "staff chat", f"{destination} is public (@{chat['username']}): remove its public link")
            )
            continue
        ok, member = await api.call("getChatMember", chat_id=chat_id, user_id=bot_id)
        if not ok or not may_post(member, chat):
            status = member.get("status") if ok else member
            advice = "add the bot again and let members send messages"
            found.append(Finding(FAIL, "staff chat", f"{destination}: the bot cannot post there ({status}): {advice}"))
        else:
            found.append(Finding(OK, "staff chat", f"{destination}: private, the bot can post"))
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
            context = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)
            await client.starttls(tls_context=context)
        if settings.smtp_username and settings.smtp_password:
            await client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as error:
        return [Finding(FAIL, "email", f"{settings.smtp_host}:{settings.smtp_port}: {type(error).__name__}")]
    tls = "with TLS" if settings.smtp_starttls else "WITHOUT TLS"
    return [Finding(OK if settings.smtp_starttls else WARN, "email", f"{settings.smtp_host} answers {tls}")]


async def webhook_reached(settings: Settings) -> list[Finding]:
    """Knock on the public webhook address without the secret, as a stranger would: the bot
    refuses with 401, so a 401 means the proxy passes the path to a running bot."""
    url = settings.webhook_url
    if not url:
        return [Finding(WARN, "webhook", "REACHABLE_WEBHOOK_URL is not set: the bot will not tell Telegram where")]
    import aiohttp

    try:
        timeout = aiohttp.ClientTimeout(total=15)
        # Made here, not at import: the system's certificates as they are now.
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.post(url, json={}, allow_redirects=False) as answer,
        ):
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return [Finding(FAIL, "webhook", f"{url} cannot be reached from here ({type(error).__name__})")]
    path, listen = urlsplit(url).path, settings.webhook_listen
    if status == HTTPStatus.UNAUTHORIZED:
        return [Finding(OK, "webhook", f"{url} reaches the bot, which refuses updates without the secret")]
    if status in (HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT):
        return [Finding(WARN, "webhook", f"{url} answers {status}: is `reachable run --webhook` running?")]
    if status == HTTPStatus.NOT_FOUND:
        return [Finding(FAIL, "webhook", f"{url} answers 404: the proxy must pass {path} to {listen}")]
    return [Finding(FAIL, "webhook", f"{url} answers {status} without the secret: it is not this bot's webhook")]


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


def recipients(settings: Settings) -> Finding:
    """Whom people can send a report to: without anyone, reports can be kept, never sent."""
    found = sorted(settings.recipients)
    if not found:
        return Finding(
            WARN,
            "recipients",
            "no one to send reports to: people can keep a report, but not send it. Set REACHABLE_STAFF_CHAT_ID "
            "(a Telegram staff group) or REACHABLE_SMTP_HOST and REACHABLE_SMTP_TO (email)",
        )
    return Finding(OK, "recipients", "reports can be sent to: " + ", ".join(found))


async def diagnose(settings: Settings, webhook: bool = False) -> list[Finding]:
    steps: list[Callable[[], Awaitable[list[Finding]]]] = [
        lambda: telegram(settings, webhook),
        lambda: smtp(settings),
    ]
    if webhook:
        steps.append(lambda: webhook_reached(settings))
    if settings.shared_database:
        from bot.ops.doctor_postgres import shared_database

        steps.insert(0, lambda: shared_database(settings))
    found = [Finding(OK, "settings", "every REACHABLE_ setting parses"), *data_folder(settings)]
    found += [key(settings), *matching_key(settings)]
    found += [] if settings.shared_database else [database(settings)]
    found += [recipients(settings)]
    for step in steps:
        found += await step()
    return found + webhook_setup(settings, webhook) + responses(settings)


def quick(settings: Settings, webhook: bool) -> list[Finding]:
    """What `reachable run` checks before it starts (no network): it refuses on a FAIL."""
    # A shared database is checked as the store opens (migrations, the key).
    checked = [] if settings.shared_database else [database(settings, thorough=False)]
    return [*checked, *webhook_setup(settings, webhook)]
