"""Keys and backups: `reachable keys rotate|prune`, `reachable backup`, and the warning about a key
kept beside the database."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.core.stores import open_store
from storage import load_keyring, rotate_key_file
from storage.crypto import KEY_FILE, prune_key_file
from storage.lock import DataLock


async def rotate(settings: Settings) -> None:
    """Re-encrypt under the newest key. With a key file, a new key is added in front first; with
    REACHABLE_ENCRYPTION_KEY, put the new key first in the list before running this. Refused
    while the bot or the console runs on the same data folder."""
    with DataLock(settings.data_dir, "rotate keys"):
        if settings.encryption_key is None:
            keyring = rotate_key_file(settings.data_dir)
            print(f"added a new key to {settings.data_dir / KEY_FILE}")
        else:
            keyring = load_keyring(settings.encryption_key.get_secret_value(), settings.data_dir)
        async with open_store(settings, keyring) as store:
            counts = await store.reencrypt()
    done = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"re-encrypted under the newest of {keyring.count} key(s): {done}")
    print("Keep the older key(s) for 48 hours (open drafts are found by the oldest), then: reachable keys prune")


async def prune(settings: Settings) -> None:
    """Drop every key but the newest, once everything stored opens with the newest alone."""
    with DataLock(settings.data_dir, "prune keys"):
        configured = settings.encryption_key.get_secret_value() if settings.encryption_key else None
        keyring = load_keyring(configured, settings.data_dir)
        if keyring.count == 1:
            print("only one key is in use: nothing to prune")
            return
        async with open_store(settings, keyring) as store:
            stale = await store.tokens_not_under_newest()
        if stale:
            raise ConfigError(f"{stale} stored item(s) still need an older key: run `reachable keys rotate` first")
        if configured:
            print("everything stored opens with the newest key: remove the older keys from REACHABLE_ENCRYPTION_KEY")
            print("(open drafts are found through the oldest key and start afresh once it is gone)")
            return
        dropped = prune_key_file(settings.data_dir)
    print(f"removed {dropped} older key(s) from {settings.data_dir / KEY_FILE}; open drafts start afresh")


async def backup(settings: Settings, target: Path, check: bool) -> int:
    """A consistent copy of the database while the bot runs; never the key."""
    from storage.backup import back_up, check_backup

    if settings.database_url is not None:
        from storage.postgres_backup import pg_dump

        if check:
            raise ConfigError(
                "--check restores SQLite files; for PostgreSQL restore the dump to a new database "
                "(createdb, then pg_restore --dbname) and run reachable doctor against it"
            )
        await asyncio.to_thread(pg_dump, settings.database_url.get_secret_value(), target)
        print(f"backed up the database with pg_dump to {target}; the key is not in it: keep the key's backup apart")
        print("restore: createdb NEW && pg_restore --no-owner --dbname NEW " + str(target))
        return 0
    reports = await asyncio.to_thread(back_up, settings.data_dir, target)
    print(f"backed up {reports} report(s) to {target}; the key is not in it: keep the key's backup apart")
    if not check:
        return 0
    if settings.encryption_key is None and not (settings.data_dir / KEY_FILE).exists():
        raise ConfigError("no key to check the backup with: set REACHABLE_ENCRYPTION_KEY")
    keys = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    checked = await check_backup(target, load_keyring(keys, settings.data_dir))
    print(f"restored to a temporary folder: {checked.readable} of {checked.reports} report(s) readable with the key")
    return 0 if checked.readable == checked.reports else 1


def warn_about_key_file(settings: Settings) -> None:
    if settings.encryption_key is None:
        logging.getLogger("reachable").warning(
            "the encryption key is the file %s, in the same folder as the database: one backup or one "
            "stolen disk holds both. Set REACHABLE_ENCRYPTION_KEY from a secrets manager instead",
            settings.data_dir / KEY_FILE,
        )
