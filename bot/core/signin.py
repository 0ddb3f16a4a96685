"""Signing staff in: a password (Argon2id, the same hash as the person's secret code) and a TOTP
code from an authenticator app (pyotp: RFC 6238, 30-second steps, one step of clock drift either
way), each code accepted once; five failures in a row lock the account for fifteen minutes,
whatever the password. An unknown name costs the same hash as a known one, and the answer is the
same: nothing tells which part was wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import pyotp

from storage import CodeHasher
from storage.accounts import ROLE, ROLES, StaffAccount, StaffAccounts

LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
ISSUER = "Reachable"
# What each role may act on: the recipients whose reports it reads. Admins read the figures and
# the support team's cases.
SCOPES = {"support": frozenset({"support"}), "soit": frozenset({"soit"}), "admin": frozenset({"support"})}


@dataclass(frozen=True, slots=True)
class Enrolment:
    account: StaffAccount
    uri: str  # otpauth://… for the authenticator app


def enrol(name: str, role: str, password: str, hasher: CodeHasher, issuer: str = ISSUER) -> Enrolment:
    """A new account: its password hashed and a fresh TOTP secret."""
    if role not in ROLES and not ROLE.match(role):
        raise ValueError(f"a role is one of {', '.join(ROLES)}, or a recipient's key")
    secret = pyotp.random_base32()
    account = StaffAccount(name=name, role=role, password=hasher.hash(password), totp=secret)
    return Enrolment(account, pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer))


class SignIn:
    def __init__(self, store: StaffAccounts, hasher: CodeHasher, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self._dummy = hasher.hash("an unknown name costs the same")

    async def attempt(self, name: str, password: str, code: str) -> StaffAccount | None:
        """The account, if the password and code are right and it is not locked; else None."""
        account = await self.store.account(name)
        hashed = account.password if account is not None else self._dummy
        password_ok = await asyncio.to_thread(self.hasher.verify, hashed, password)
        if account is None:
            return None
        now = int(self.clock())
        if account.locked_until > now:
            await self.store.staff_audit(name, "sign_in_locked")
            return None
        step = self._step(account, code.replace(" ", ""), now)
        if password_ok and step is not None and await self.store.use_totp_step(name, step):
            fresh = await self.store.account(name)
            if fresh is not None and fresh.failures:
                await self.store.save_account(replace(fresh, failures=0))
            await self.store.staff_audit(name, "signed_in")
            return account
        failures = account.failures + 1
        locked = now + LOCK_SECONDS if failures >= LOCK_AFTER else 0
        await self.store.save_account(replace(account, failures=0 if locked else failures, locked_until=locked))
        await self.store.staff_audit(name, "sign_in_locked_now" if locked else "sign_in_failed")
        return None

    def _step(self, account: StaffAccount, code: str, now: int) -> int | None:
        """The time step the code belongs to (this one, or one either side), if it is right."""
        totp = pyotp.TOTP(account.totp)
        for drift in (0, -1, 1):
            moment = now + drift * totp.interval
            if len(code) == totp.digits and code.isdigit() and totp.verify(code, for_time=moment, valid_window=0):
                return int(moment // totp.interval)
        return None
