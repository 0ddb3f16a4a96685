"""Keys, encryption at rest, keyed hashing of chat ids, and the slow hash of secret codes.

- Report content and drafts are encrypted with Fernet (AES-128-CBC + HMAC-SHA256). Several
  keys may be given, newest first: data under older keys still opens, new data uses the newest
  (``MultiFernet``), which is what ``keys rotate`` builds on.
- Chat ids are never stored: a draft is found by HMAC-SHA256 of the channel and chat id under
  a key derived from the oldest encryption key listed, so adding a new key keeps drafts
  findable; dropping the old key later starts open drafts afresh (they last a day at most).
- The secret code is stored only as an Argon2id hash. A 16-bit tag of its SHA-256 narrows the
  search; it leaves 64 of the code's 80 bits to the slow hash.
- The key never lives in the database: it comes from REACHABLE_ENCRYPTION_KEY or from a key
  file created on first run (mode 0600) beside the database, for demos and small setups.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import KeyringError

KEY_FILE = "reachable.key"


class Keyring:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyringError("no encryption key was given")
        try:
            fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError) as error:
            raise KeyringError(
                "an encryption key is not valid: each must be 32 url-safe base64-encoded bytes "
                "(make one with `reachable keys new`)"
            ) from error
        self._fernet = MultiFernet(fernets)
        # From the oldest key: putting a new key in front (rotation) keeps open drafts findable.
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"reachable chat key v1")
        self._hash_key = kdf.derive(keys[-1])
        self.count = len(fernets)

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as error:
            raise KeyringError("stored data cannot be opened with the configured keys") from error

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the newest key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as error:
            raise KeyringError("stored data cannot be opened with the configured keys") from error

    def chat_key(self, channel: str, chat_id: str | int) -> bytes:
        return hmac.new(self._hash_key, f"{channel}\x00{chat_id}".encode(), hashlib.sha256).digest()


def load_keyring(configured: str | None, data_dir: Path) -> Keyring:
    """Keys from the setting (comma-separated, newest first), else from the key file."""
    if configured:
        return Keyring([k.strip().encode() for k in configured.split(",") if k.strip()])
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Keyring.new_key() + b"\n")
    lines = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    return Keyring(lines)


def rotate_key_file(data_dir: Path) -> Keyring:
    """Put a new key in front of the key file's keys (written atomically, mode 0600)."""
    path = data_dir / KEY_FILE
    old = [line.strip() for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []
    keys = [Keyring.new_key(), *old]
    temporary = path.with_suffix(".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"\n".join(keys) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return Keyring(keys)


def code_tag(code: str) -> bytes:
    """Two bytes of SHA-256: enough to find candidates, far too little to verify a guess."""
    return hashlib.sha256(code.encode()).digest()[:2]


class CodeHasher:
    """Argon2id with OWASP's minimum settings (19 MiB, 2 passes): ~20 ms a hash here."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

    def hash(self, code: str) -> str:
        return str(self._hasher.hash(code))

    def verify(self, hashed: str, code: str) -> bool:
        try:
            return bool(self._hasher.verify(hashed, code))
        except (VerificationError, InvalidHashError):
            return False
