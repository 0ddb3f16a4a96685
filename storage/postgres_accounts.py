"""The staff accounts' rows in PostgreSQL (``storage/accounts.py`` holds their rules): the TOTP
secret sealed with the data key, sessions by a hash of their token."""

from __future__ import annotations

from typing import Any

from storage.accounts import AccountRows, AuditLine, StaffAccount, StaffSession
from storage.postgres_db import PostgresDatabase

ACCOUNT = "name, role, password, totp, last_step, failures, locked_until"


class PostgresAccounts(PostgresDatabase, AccountRows):
    def _account(self, row: Any) -> StaffAccount:
        name, role, password, totp, last_step, failures, locked_until = row
        secret = self.keyring.decrypt(bytes(totp)).decode()
        return StaffAccount(name, role, password, secret, int(last_step), int(failures), int(locked_until))

    def _account_values(self, account: StaffAccount) -> tuple[Any, ...]:
        totp = self.keyring.encrypt(account.totp.encode())
        return (account.name, account.role, account.password, totp, account.last_step, account.failures,
                account.locked_until)  # fmt: skip

    async def _insert_account(self, account: StaffAccount) -> bool:
        query = f"INSERT INTO staff_accounts ({ACCOUNT}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"  # noqa: S608
        return await self._execute(query, *self._account_values(account)) == 1

    async def _load_account(self, name: str) -> StaffAccount | None:
        # Locked within a transaction: a TOTP code used by two requests at once is accepted once.
        row = await self._fetchrow(f"SELECT {ACCOUNT} FROM staff_accounts WHERE name = $1{self._locking}", name)  # noqa: S608
        return self._account(row) if row is not None else None

    async def _update_account(self, account: StaffAccount) -> None:
        await self._execute(
            "UPDATE staff_accounts SET role = $2, password = $3, totp = $4, last_step = $5, failures = $6,"
            " locked_until = $7 WHERE name = $1",
            *self._account_values(account),
        )

    async def _insert_session(self, session: StaffSession) -> None:
        await self._execute(
            "INSERT INTO staff_sessions (token, name, started, seen, csrf) VALUES ($1, $2, $3, $4, $5)",
            session.token, session.name, session.started, session.seen, session.csrf,
        )  # fmt: skip

    async def _load_session(self, token: bytes) -> StaffSession | None:
        row = await self._fetchrow(
            "SELECT token, name, started, seen, csrf FROM staff_sessions WHERE token = $1", token
        )
        if row is None:
            return None
        found, name, started, seen, csrf = row
        return StaffSession(bytes(found), str(name), int(started), int(seen), str(csrf))

    async def _set_session_seen(self, token: bytes, seen: int) -> None:
        await self._execute("UPDATE staff_sessions SET seen = $1 WHERE token = $2", seen, token)

    async def _delete_sessions(self, *, token: bytes | None = None, name: str | None = None) -> None:
        if token is not None:
            await self._execute("DELETE FROM staff_sessions WHERE token = $1", token)
        if name is not None:
            await self._execute("DELETE FROM staff_sessions WHERE name = $1", name)

    async def _insert_staff_audit(self, line: AuditLine) -> None:
        query = "INSERT INTO staff_audit (name, action, reference, at) VALUES ($1, $2, $3, $4)"
        await self._execute(query, line.name, line.action, line.reference, line.at)

    async def _staff_audit_lines(self) -> list[AuditLine]:
        rows = await self._fetch("SELECT name, action, reference, at FROM staff_audit ORDER BY id")
        return [AuditLine(str(n), str(a), r, int(at)) for n, a, r, at in rows]

    async def _purge_staff(self, *, audit_before: int, sessions_before: int) -> None:
        await self._execute("DELETE FROM staff_audit WHERE at <= $1", audit_before)
        await self._execute("DELETE FROM staff_sessions WHERE started <= $1", sessions_before)
