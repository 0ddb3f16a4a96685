"""The staff accounts' rows in SQLite (``storage/accounts.py`` holds their rules): the TOTP
secret sealed with the data key, sessions by a hash of their token."""

from __future__ import annotations

import sqlite3

from storage.accounts import AccountRows, AuditLine, StaffAccount, StaffSession
from storage.crypto import Keyring
from storage.sqlite_file import Connection

ACCOUNT = "name, role, password, totp, last_step, failures, locked_until"


class SQLiteAccounts(Connection, AccountRows):
    keyring: Keyring

    def _account(self, row: sqlite3.Row) -> StaffAccount:
        name, role, password, totp, last_step, failures, locked_until = row
        secret = self.keyring.decrypt(bytes(totp)).decode()
        return StaffAccount(name, role, password, secret, last_step, failures, locked_until)

    async def _insert_account(self, account: StaffAccount) -> bool:
        cursor = await self.db.execute(
            f"INSERT INTO staff_accounts ({ACCOUNT}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",  # noqa: S608 - fixed names
            (
                account.name,
                account.role,
                account.password,
                self.keyring.encrypt(account.totp.encode()),
                account.last_step,
                account.failures,
                account.locked_until,
            ),
        )
        return cursor.rowcount == 1

    async def _load_account(self, name: str) -> StaffAccount | None:
        row = await self._row(f"SELECT {ACCOUNT} FROM staff_accounts WHERE name = ?", (name,))  # noqa: S608
        return self._account(row) if row is not None else None

    async def _update_account(self, account: StaffAccount) -> None:
        await self.db.execute(
            "UPDATE staff_accounts SET role = ?, password = ?, totp = ?, last_step = ?, failures = ?, locked_until = ? "
            "WHERE name = ?",
            (
                account.role,
                account.password,
                self.keyring.encrypt(account.totp.encode()),
                account.last_step,
                account.failures,
                account.locked_until,
                account.name,
            ),
        )

    async def _insert_session(self, session: StaffSession) -> None:
        await self.db.execute(
            "INSERT INTO staff_sessions (token, name, started, seen, csrf) VALUES (?, ?, ?, ?, ?)",
            (session.token, session.name, session.started, session.seen, session.csrf),
        )

    async def _load_session(self, token: bytes) -> StaffSession | None:
        query = "SELECT token, name, started, seen, csrf FROM staff_sessions WHERE token = ?"
        row = await self._row(query, (token,))
        if row is None:
            return None
        found, name, started, seen, csrf = row
        return StaffSession(bytes(found), str(name), int(started), int(seen), str(csrf))

    async def _set_session_seen(self, token: bytes, seen: int) -> None:
        await self.db.execute("UPDATE staff_sessions SET seen = ? WHERE token = ?", (seen, token))

    async def _delete_sessions(self, *, token: bytes | None = None, name: str | None = None) -> None:
        if token is not None:
            await self.db.execute("DELETE FROM staff_sessions WHERE token = ?", (token,))
        if name is not None:
            await self.db.execute("DELETE FROM staff_sessions WHERE name = ?", (name,))

    async def _insert_staff_audit(self, line: AuditLine) -> None:
        await self.db.execute(
            "INSERT INTO staff_audit (name, action, reference, at) VALUES (?, ?, ?, ?)",
            (line.name, line.action, line.reference, line.at),
        )

    async def _staff_audit_lines(self) -> list[AuditLine]:
        rows = await self._rows("SELECT name, action, reference, at FROM staff_audit ORDER BY id")
        return [AuditLine(str(n), str(a), r, int(at)) for n, a, r, at in rows]

    async def _purge_staff(self, *, audit_before: int, sessions_before: int) -> None:
        await self.db.execute("DELETE FROM staff_audit WHERE at <= ?", (audit_before,))
        await self.db.execute("DELETE FROM staff_sessions WHERE started <= ?", (sessions_before,))
