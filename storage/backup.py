"""A consistent copy of the database while the bot runs (SQLite's online backup API), never
with the key; and a check that restores a copy to a temporary folder and reads every report."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from storage.crypto import DB_FILE, Keyring
from storage.errors import KeyringError, StorageError
from storage.sqlite import SQLiteStore


def back_up(data_dir: Path, target: Path) -> int:
    """Copy the database in ``data_dir`` to ``target`` (a new file, readable by its owner only),
    page by page under SQLite's own locking, so a copy taken mid-write is never half a turn.
    Returns the number of reports in the copy. The key is never copied."""
    source_path = data_dir / DB_FILE
    if not source_path.exists():
        raise StorageError(f"there is no database in {data_dir}")
    if target.exists():
        raise StorageError(f"{target} exists already: choose a new file name")
    if target.resolve().parent == data_dir.resolve():
        raise StorageError("put the backup outside the data folder (a backup beside the data protects nothing)")
    if not target.parent.is_dir():
        raise StorageError(f"the folder {target.parent} does not exist: create it first, or choose another")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise StorageError(f"cannot write {target}: {error.strerror or type(error).__name__}") from error
    os.close(fd)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        return int(copy.execute("SELECT count(*) FROM reports").fetchone()[0])
    finally:
        copy.close()
        source.close()


@dataclass(frozen=True, slots=True)
class Checked:
    reports: int
    readable: int


async def check_backup(backup: Path, keyring: Keyring) -> Checked:
    """Restore ``backup`` to a temporary folder and open every report in it with the key."""
    with tempfile.TemporaryDirectory(prefix="reachable-restore-") as folder:
        restored = Path(folder) / DB_FILE
        shutil.copyfile(backup, restored)
        with sqlite3.connect(restored) as db:
            references = [str(row[0]) for row in db.execute("SELECT reference FROM reports")]
        readable = 0
        try:
            async with SQLiteStore(restored, keyring) as store:
                for reference in references:
                    try:
                        found = await store.get_report(reference)
                    except Exception:
                        found = None
                    readable += found is not None
        except KeyringError:  # the key opens nothing in it
            readable = 0
        return Checked(len(references), readable)
