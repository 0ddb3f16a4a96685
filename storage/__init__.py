"""Persistence: drafts, consented reports, outbox, audit and counters, encrypted at rest."""

from storage.base import (
    ChatKey,
    Figures,
    MessageIds,
    NewReport,
    Outbox,
    Outgoing,
    Purged,
    Relays,
    Reports,
    StaffMessages,
    Store,
    StoredReport,
    Turns,
    Upkeep,
)
from storage.crypto import CodeHasher, Keyring, load_keyring, rotate_key_file
from storage.errors import KeyringError, MigrationError, StorageError
from storage.sqlite import DB_FILE, SQLiteStore

__all__ = [
    "DB_FILE",
    "ChatKey",
    "CodeHasher",
    "Figures",
    "Keyring",
    "KeyringError",
    "MessageIds",
    "MigrationError",
    "NewReport",
    "Outbox",
    "Outgoing",
    "Purged",
    "Relays",
    "Reports",
    "SQLiteStore",
    "StaffMessages",
    "StorageError",
    "Store",
    "StoredReport",
    "Turns",
    "Upkeep",
    "load_keyring",
    "rotate_key_file",
]
