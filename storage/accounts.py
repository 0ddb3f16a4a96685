"""Staff accounts for the web inbox: who may sign in (a name, a role, an Argon2id password hash,
a TOTP secret sealed at rest like every other secret), their signed-in sessions (kept by a hash
of the cookie's token, never the token), and the audit of who opened or did what to which case,
kept for the retention period only. The rules live here once; a backend supplies the rows."""

from __future__ import annotations

import abc
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

ROLES = ("support", "soit", "admin")
# Or the key of a charity's own recipient (REACHABLE_RECIPIENTS_EXTRA): its cases only.
ROLE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SESSION_ABSOLUTE = 12 * 3600  # a session ends this long after sign-in, however active


@dataclass(frozen=True, slots=True)
class StaffAccount:
    name: str
    role: str
    password: str  # an Argon2id hash
    totp: str  # the TOTP secret (base32): sealed at rest
    last_step: int = 0  # the last TOTP time step accepted: a code works once
    failures: int = 0  # failed sign-ins in a row
    locked_until: int = 0


@dataclass(frozen=True, slots=True)
class StaffSession:
    token: bytes  # a hash of the cookie's token
    name: str
    started: int
    seen: int
    csrf: str


@dataclass(frozen=True, slots=True)
class AuditLine:
    name: str
    action: str
    reference: str | None
    at: int


class StaffAccounts(Protocol):
    """What the web inbox and `reachable staff` read and write."""

    async def add_account(self, account: StaffAccount) -> bool: ...
    async def account(self, name: str) -> StaffAccount | None: ...
    async def save_account(self, account: StaffAccount) -> None: ...
    async def use_totp_step(self, name: str, step: int) -> bool: ...
    async def start_session(self, session: StaffSession) -> None: ...
    async def session(self, token: bytes) -> StaffSession | None: ...
    async def touch_session(self, token: bytes, seen: int) -> None: ...
    async def end_session(self, token: bytes) -> None: ...
    async def end_sessions(self, name: str) -> None: ...
    async def staff_audit(self, name: str, action: str, reference: str | None = None) -> None: ...
    async def staff_audit_lines(self) -> list[AuditLine]: ...


class AccountRows(abc.ABC):
    """The row operations a backend implements for accounts, each inside ``_transaction``."""

    @abc.abstractmethod
    def _transaction(self, durable: bool) -> AbstractAsyncContextManager[Any]: ...

    @abc.abstractmethod
    def _now(self) -> int: ...

    @abc.abstractmethod
    async def _insert_account(self, account: StaffAccount) -> bool:
        """False when the name is taken."""

    @abc.abstractmethod
    async def _load_account(self, name: str) -> StaffAccount | None: ...

    @abc.abstractmethod
    async def _update_account(self, account: StaffAccount) -> None: ...

    @abc.abstractmethod
    async def _insert_session(self, session: StaffSession) -> None: ...

    @abc.abstractmethod
    async def _load_session(self, token: bytes) -> StaffSession | None: ...

    @abc.abstractmethod
    async def _set_session_seen(self, token: bytes, seen: int) -> None: ...

    @abc.abstractmethod
    async def _delete_sessions(self, *, token: bytes | None = None, name: str | None = None) -> None: ...

    @abc.abstractmethod
    async def _insert_staff_audit(self, line: AuditLine) -> None: ...

    @abc.abstractmethod
    async def _staff_audit_lines(self) -> list[AuditLine]: ...

    @abc.abstractmethod
    async def _purge_staff(self, *, audit_before: int, sessions_before: int) -> None: ...


class AccountRules(AccountRows):
    """The accounts' rules, above any engine."""

    async def add_account(self, account: StaffAccount) -> bool:
        if account.role not in ROLES and not ROLE.match(account.role):
            raise ValueError(f"a role is one of {', '.join(ROLES)}, or a recipient's key")
        async with self._transaction(durable=True):
            return await self._insert_account(account)

    async def account(self, name: str) -> StaffAccount | None:
        return await self._load_account(name)

    async def save_account(self, account: StaffAccount) -> None:
        async with self._transaction(durable=True):
            await self._update_account(account)

    async def use_totp_step(self, name: str, step: int) -> bool:
        """Accept a TOTP time step once: a code seen before (or an older one) is refused, even
        from two requests at the same moment."""
        async with self._transaction(durable=True):
            found = await self._load_account(name)
            if found is None or step <= found.last_step:
                return False
            await self._update_account(replace(found, last_step=step))
            return True

    async def start_session(self, session: StaffSession) -> None:
        async with self._transaction(durable=True):
            await self._insert_session(session)

    async def session(self, token: bytes) -> StaffSession | None:
        return await self._load_session(token)

    async def touch_session(self, token: bytes, seen: int) -> None:
        async with self._transaction(durable=False):
            await self._set_session_seen(token, seen)

    async def end_session(self, token: bytes) -> None:
        async with self._transaction(durable=True):
            await self._delete_sessions(token=token)

    async def end_sessions(self, name: str) -> None:
        async with self._transaction(durable=True):
            await self._delete_sessions(name=name)

    async def staff_audit(self, name: str, action: str, reference: str | None = None) -> None:
        async with self._transaction(durable=False):
            await self._insert_staff_audit(AuditLine(name, action, reference, self._now()))

    async def staff_audit_lines(self) -> list[AuditLine]:
        return await self._staff_audit_lines()

    async def purge_staff(self, retained: int) -> None:
        """The audit past retention, and sessions past their absolute end."""
        async with self._transaction(durable=False):
            await self._purge_staff(audit_before=retained, sessions_before=self._now() - SESSION_ABSOLUTE)
