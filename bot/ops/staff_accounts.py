"""`reachable staff add NAME --role support|soit|admin`: a staff account for the inbox. The
password is typed twice (or read from standard input), hashed with Argon2id; the TOTP enrolment
is printed once, as an otpauth:// address and a QR code in the terminal, for the person's
authenticator app. Neither the password nor the secret is shown again or logged."""

from __future__ import annotations

import getpass
import io
import sys

import qrcode

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.core.signin import enrol
from bot.core.stores import open_store
from storage import CodeHasher
from storage.accounts import ROLES

MIN_PASSWORD = 12


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("The same password again: ") != password:
            raise ConfigError("the two passwords differ: nothing was added")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password has at least {MIN_PASSWORD} characters: nothing was added")
    return password


def terminal_qr(text: str) -> str:
    code = qrcode.QRCode(border=2)
    code.add_data(text)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


async def add_account(settings: Settings, name: str, role: str, password: str) -> None:
    if not name.strip() or len(name) > 100:
        raise ConfigError("a name is 1 to 100 characters")
    if role not in ROLES and role not in settings.extra_recipients:
        known = ", ".join([*ROLES, *settings.extra_recipients])
        raise ConfigError(f"no role {role!r}: one of {known}")
    enrolment = enrol(name.strip(), role, password, CodeHasher(), issuer=settings.service_name)
    store = open_store(settings)
    async with store:
        if not await store.add_account(enrolment.account):
            raise ConfigError(f"there is already an account called {name!r}: nothing was changed")
        await store.staff_audit(name.strip(), f"account_added:{role}")
    print(f"Added {name.strip()} ({role}). Scan this with their authenticator app, once, in person:")
    print(terminal_qr(enrolment.uri))
    print(enrolment.uri)
    print("This is shown once. Anyone who sees it can make their codes: do not send it by email or chat.")
