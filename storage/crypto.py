"""Keys, encryption at rest, keyed hashing of chat ids, and the slow hash of secret codes.

- Report content and drafts are encrypted with AES-256-GCM under a key derived (HKDF) from each
  configured key. A token carries no time: a Fernet token's creation time is in clear, which
  would date every row. Several keys may be given, newest first: data under older keys still
  opens, new data uses the newest, which is what ``keys rotate`` builds on. Tokens written by
  earlier versions (Fernet) still open, and the store re-encrypts them when it opens.
- A token is self-delimiting (``MAGIC | key id | length | nonce | ciphertext+tag``), so a test
  can find and try to open every token in the database and its write-ahead log.
- Chat ids are never stored: a draft is found by HMAC-SHA256 of the channel and chat id under
  a key derived from the oldest encryption key listed, so adding a new key keeps drafts
  findable; dropping the old key later starts open drafts afresh (they last a day at most).
- The secret code is stored only as an Argon2id hash. A 24-bit tag, keyed with a random secret
  kept sealed in the store (rotated with everything else), narrows the search; it leaves 56 of
  the code's 80 bits to the slow hash, and nobody without the secret can choose codes that share
  a report's tag. Reports kept before the tag was keyed keep their 16-bit SHA-256 tag.
- The key never lives in the database: it comes from REACHABLE_ENCRYPTION_KEY or from a key
  file created on first run (mode 0600) beside the database, for demos and small setups.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import stat
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import KeyringError

KEY_FILE = "reachable.key"
DB_FILE = "reachable.sqlite3"
MAGIC = b"\xa5\x52"  # first bytes of every token of ours
TAG_BYTES = 3  # a keyed tag; the legacy one has two, so the two never collide
_HEADER = struct.Struct(">2s4sI")  # magic, key id, length of nonce + ciphertext + tag
NONCE = 12
LEGACY = b"gAAAAA"  # how every Fernet token starts


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


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
        self._fernets = fernets
        self._fernet = MultiFernet(fernets)
        self._ciphers: dict[bytes, AESGCM] = {}
        self._ids: list[bytes] = []
        for key in keys:
            key_id = _derive(key, b"reachable key id v1")[:4]
            self._ciphers[key_id] = AESGCM(_derive(key, b"reachable aes-256-gcm v1"))
            self._ids.append(key_id)
        # From the oldest key: putting a new key in front (rotation) keeps open drafts findable.
        self._hash_key = _derive(keys[-1], b"reachable chat key v1")
        self._session_key = _derive(keys[-1], b"reachable web session v1")
        self.count = len(fernets)

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plain: bytes) -> bytes:
        key_id = self._ids[0]
        nonce = os.urandom(NONCE)
        header = _HEADER.pack(MAGIC, key_id, NONCE + len(plain) + 16)
        return header + nonce + self._ciphers[key_id].encrypt(nonce, plain, header)

    def decrypt(self, token: bytes) -> bytes:
        if token.startswith(LEGACY):
            try:
                return self._fernet.decrypt(token)
            except InvalidToken as error:
                raise KeyringError("stored data cannot be opened with the configured keys") from error
        if len(token) < _HEADER.size + NONCE + 16 or not token.startswith(MAGIC):
            raise KeyringError("stored data is not an encrypted token")
        _, key_id, length = _HEADER.unpack_from(token)
        cipher = self._ciphers.get(key_id)
        body = token[_HEADER.size :]
        if cipher is None or len(body) != length:
            raise KeyringError("stored data cannot be opened with the configured keys")
        try:
            return cipher.decrypt(body[:NONCE], body[NONCE:], token[: _HEADER.size])
        except InvalidTag as error:
            raise KeyringError("stored data cannot be opened with the configured keys") from error

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the newest key (and in the current format)."""
        return self.encrypt(self.decrypt(token))

    def fernet_time(self, token: bytes) -> int:
        """When a token of the old format was made (it says so in clear: why the format changed)."""
        for fernet in self._fernets:
            with contextlib.suppress(InvalidToken):
                return fernet.extract_timestamp(token)
        raise KeyringError("stored data cannot be opened with the configured keys")

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is in the current format and under the newest key."""
        return token.startswith(MAGIC + self._ids[0])

    def tokens_in(self, raw: bytes) -> Iterator[bytes]:
        """Every token of ours this keyring opens inside ``raw`` (a database or log file), as
        plain text: what someone holding the file and the key could read."""
        start = raw.find(MAGIC)
        while start != -1:
            if len(raw) >= start + _HEADER.size:
                _, key_id, length = _HEADER.unpack_from(raw, start)
                end = start + _HEADER.size + length
                if key_id in self._ciphers and end <= len(raw):
                    with contextlib.suppress(KeyringError):
                        yield self.decrypt(raw[start:end])
            start = raw.find(MAGIC, start + 1)

    def chat_key(self, channel: str, chat_id: str | int) -> bytes:
        return hmac.new(self._hash_key, f"{channel}\x00{chat_id}".encode(), hashlib.sha256).digest()

    def session_ids(self, token: str) -> tuple[str, str]:
        """A web session's chat id and CSRF token, from its cookie's random token: the same after
        a restart, so a conversation (and what it was never shown) can be found again, though
        neither the token nor the chat id is written anywhere."""
        made = [hmac.new(self._session_key, f"{use}\x00{token}".encode(), hashlib.sha256) for use in ("chat", "csrf")]
        return made[0].hexdigest()[:32], base64.urlsafe_b64encode(made[1].digest()).decode().rstrip("=")


def load_keyring(configured: str | None, data_dir: Path) -> Keyring:
    """Keys from the setting (comma-separated, newest first), else from the key file (created
    on first use; a second process starting at the same moment reads the file the first wrote)."""
    if configured:
        return Keyring([k.strip().encode() for k in configured.split(",") if k.strip()])
    path = data_dir / KEY_FILE
    if not path.exists():
        if (data_dir / DB_FILE).exists():
            # A database restored without its key (or a key file lost): a new key would open
            # nothing in it, and every code and report would fail later, one by one.
            raise KeyringError(
                f"there is a database in {data_dir} but no key file: put the key file {KEY_FILE} back from "
                "your key backup, or set REACHABLE_ENCRYPTION_KEY (a new key cannot open what is stored)"
            )
        secure_folder(data_dir)
        with contextlib.suppress(FileExistsError):
            write_key_file(path, [Keyring.new_key()], replace=False)
    return Keyring(read_key_file(path))


def read_key_file(path: Path) -> list[bytes]:
    """The keys in ``path``, refusing a symbolic link (someone could point it elsewhere)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise KeyringError(f"the key file {path} cannot be read safely ({error.strerror})") from error
    with os.fdopen(fd, "rb") as handle:
        lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    if not lines:
        raise KeyringError(f"the key file {path} is empty")
    return lines


def write_key_file(path: Path, keys: Sequence[bytes], replace: bool = True) -> None:
    """Write keys safely: a new file of our own (unique name, O_EXCL, mode 0600, never through a
    symbolic link), flushed to disk, then renamed into place in one step (``replace``) or linked
    only if no key file exists yet (else FileExistsError)."""
    folder = path.parent
    if path.is_symlink():
        raise KeyringError(f"the key file {path} is a symbolic link: refusing to write through it")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".reachable-key-")  # O_EXCL, mode 0600
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(b"\n".join(keys) + b"\n")
            stream.flush()
            os.fsync(stream.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if another process created the file first
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def rotate_key_file(data_dir: Path) -> Keyring:
    """Put a new key in front of the key file's keys."""
    path = data_dir / KEY_FILE
    old = read_key_file(path) if path.exists() else []
    keys = [Keyring.new_key(), *old]
    write_key_file(path, keys)
    return Keyring(keys)


def prune_key_file(data_dir: Path) -> int:
    """Keep only the newest key; the number of keys dropped."""
    path = data_dir / KEY_FILE
    keys = read_key_file(path)
    write_key_file(path, keys[:1])
    return len(keys) - 1


def opens_every(keyring: Keyring, tokens: Iterable[bytes]) -> None:
    """Raise, saying what to do, unless the keyring opens each of ``tokens`` (one stored token of
    each kind: a database restored with the wrong key is refused before anything is written)."""
    try:
        for token in tokens:
            keyring.decrypt(token)
    except KeyringError as error:
        raise KeyringError(
            "the encryption key does not open this database: was it restored without its key? Put the "
            "right key back (REACHABLE_ENCRYPTION_KEY or the key file)"
        ) from error


def secure_folder(folder: Path) -> None:
    """Create ``folder`` if needed and make it readable by this user only (0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) != 0o700:
        folder.chmod(0o700)


def private_file(path: Path) -> None:
    """Create ``path`` if needed, readable by this user only (0600), never through a symlink."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))


def code_tag(secret: bytes, code: str) -> bytes:
    """Three bytes of a keyed hash of a secret code: enough to find its report among many, far
    too little to verify a guess, and not computable without the store's secret, so nobody can
    choose wrong codes that share a kept report's tag (each would cost a slow verification)."""
    return hmac.new(secret, code.encode(), hashlib.sha256).digest()[:TAG_BYTES]


def legacy_code_tag(code: str) -> bytes:
    """The tag reports were kept with before tags were keyed: two bytes of SHA-256, which anyone
    can compute, and so choose wrong codes that each cost a slow verification."""
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
