"""Which store the settings name: the embedded SQLite file in the data folder (the default, one
process), or a PostgreSQL database several instances share (REACHABLE_DATABASE_URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from storage import DB_FILE, Keyring, SQLiteStore, load_keyring
from storage.inbox import INBOX_FILE, Inbox, SQLiteInbox
from storage.matching import MatchingKey

if TYPE_CHECKING:
    from storage.postgres import PostgresStore


def keyring_of(settings: Settings) -> Keyring:
    if settings.shared_database and settings.encryption_key is None:
        # A key file is one machine's: every instance must seal and open with the same key.
        raise ConfigError(
            "with REACHABLE_DATABASE_URL, set REACHABLE_ENCRYPTION_KEY (the same on every instance) "
            "from a secrets manager; a key file would be one machine's"
        )
    keys = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    return load_keyring(keys, settings.data_dir)


def open_store(
    settings: Settings, keyring: Keyring | None = None, matching: MatchingKey | None = None
) -> SQLiteStore | PostgresStore:
    """The service's store, not yet opened."""
    keyring = keyring or keyring_of(settings)
    if settings.database_url is None:
        return SQLiteStore(
            settings.data_dir / DB_FILE,
            keyring,
            draft_hours=settings.draft_hours,
            retention_days=settings.retention_days,
            matching=matching,
        )
    try:
        from storage.postgres import PostgresStore
    except ImportError as error:
        raise ConfigError(
            "REACHABLE_DATABASE_URL needs PostgreSQL's driver: pip install 'reachable[postgres]'"
        ) from error
    return PostgresStore(
        settings.database_url.get_secret_value(),
        keyring,
        draft_hours=settings.draft_hours,
        retention_days=settings.retention_days,
        matching=matching,
    )


def open_inbox(settings: Settings, store: SQLiteStore | PostgresStore) -> Inbox:
    """Updates read from Telegram and not yet handled: beside the SQLite file, or in the shared
    database, so that what one instance read and did not handle is not lost with its machine."""
    if isinstance(store, SQLiteStore):
        return SQLiteInbox(settings.data_dir / INBOX_FILE, store.keyring)
    from storage.postgres_inbox import PostgresInbox

    return PostgresInbox(store)
