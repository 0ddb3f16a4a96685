"""Persistence: drafts, consented reports, outbox, audit and counters, encrypted at rest."""

from storage.base import ChatKey, NewReport, Outgoing, Purged, Store, StoredReport
from storage.crypto import CodeHasher, Keyring, load_keyring, rotate_key_file
from storage.errors import KeyringError, MigrationError, StorageError
from storage.sqlite import DB_FILE, SQLiteStore

__all__ = [
    "DB_FILE",
    "ChatKey",
    "CodeHasher",
    "Keyring",
    "KeyringError",
    "MigrationError",
    "NewReport",
    "Outgoing",
    "Purged",
    "SQLiteStore",
    "StorageError",
    "Store",
    "StoredReport",
    "load_keyring",
    "rotate_key_file",
]
