"""`reachable doctor` with REACHABLE_DATABASE_URL: the shared PostgreSQL database answers, its
schema is the one this program knows, the key opens what is stored, and the database's clock
agrees with this machine's (days, expiries and retention are counted by the bot's clock; instances
whose clocks disagree expire drafts at different moments)."""

from __future__ import annotations

import asyncio
import time

from bot.core.settings import Settings
from bot.ops.doctor import FAIL, OK, WARN, Finding
from storage import KeyringError, load_keyring

SKEW_WARN = 2.0  # seconds
SKEW_FAIL = 60.0
TIMEOUT = 10.0


async def shared_database(settings: Settings) -> list[Finding]:
    try:
        import asyncpg

        from storage.postgres_db import PG_SEALED, migrations, schema_version
    except ImportError:
        return [Finding(FAIL, "database", "REACHABLE_DATABASE_URL needs pip install 'reachable[postgres]'")]
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    try:
        connection = await asyncpg.connect(url, timeout=TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        # The reason names no password: asyncpg's messages carry the user and database at most.
        return [Finding(FAIL, "database", f"PostgreSQL cannot be reached ({type(error).__name__}): check the URL")]
    try:
        sent = time.time()
        server = float(await connection.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))
        skew = server - (sent + time.time()) / 2
        version = await schema_version(connection)
        sealed = []
        if version:
            for table, _, column in PG_SEALED:
                query = f"SELECT {column} FROM {table} WHERE octet_length({column}) > 0 LIMIT 1"  # noqa: S608
                row = await connection.fetchrow(query)
                if row is not None:
                    sealed.append(bytes(row[0]))
    finally:
        await asyncio.shield(connection.close())
    latest = migrations()[-1][0]
    found = [_schema(version, latest), _clock(skew)]
    if sealed and not _opens(settings, sealed):
        text = "the encryption key does not open what is stored: put the right key back"
        found.append(Finding(FAIL, "database", text))
    return found


def _schema(version: int, latest: int) -> Finding:
    if version > latest:
        text = f"PostgreSQL at version {version}, newer than this program knows ({latest}): upgrade"
        return Finding(FAIL, "database", text)
    if version < latest:
        return Finding(WARN, "database", f"PostgreSQL at version {version} of {latest}: migrated at the next start")
    return Finding(OK, "database", f"PostgreSQL reached, migrations current (version {version})")


def _clock(skew: float) -> Finding:
    text = f"the database's clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} this machine's"
    if abs(skew) >= SKEW_FAIL:
        return Finding(FAIL, "clock", text + ": set both by NTP")
    if abs(skew) >= SKEW_WARN:
        return Finding(WARN, "clock", text + ": set both by NTP")
    return Finding(OK, "clock", text)


def _opens(settings: Settings, tokens: list[bytes]) -> bool:
    configured = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    try:
        keyring = load_keyring(configured, settings.data_dir)
        for token in tokens:
            keyring.decrypt(token)
    except KeyringError:
        return False
    return True
