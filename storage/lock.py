"""One Reachable process per data folder at a time.

The bot, the console and ``keys rotate|prune`` take an exclusive lock on ``reachable.lock`` in
the data folder. A second process finds it taken and stops with a sentence saying why, rather
than two processes writing one database (conversations held in memory would diverge) or a key
rotation pulling the key from under a running bot. The operating system releases the lock when
a process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from storage.crypto import secure_folder
from storage.errors import StorageError

LOCK_FILE = "reachable.lock"


class FolderInUse(StorageError):
    """Another Reachable process holds the data folder."""


class DataLock:
    def __init__(self, folder: Path, purpose: str = "run") -> None:
        self.folder = folder
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        secure_folder(self.folder)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(
                f"another Reachable process is using {self.folder} (the bot, the console or a key "
                f"command): stop it before you {self.purpose}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class NoLock(DataLock):
    """Instances sharing one PostgreSQL database: the database's own locks keep them apart."""

    def __init__(self) -> None:
        super().__init__(Path())

    def acquire(self) -> None:
        return None
