"""The matching key: digests of the people someone names, kept apart from the data key.

Only a keyed digest of an identifier is ever compared (HMAC-SHA256 under this key). A copy of
the database without this key reveals nothing of who was named; with it, someone could try
every phone number in turn against the digests (a dictionary attack), which is why the key
lives in its own file (``REACHABLE_MATCHING_KEY_FILE``), readable by the bot's user only, and
best on another disk or in a secrets manager. The identifier itself is sealed with the data
key, for the matching contact's notice once two reports match."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from storage.crypto import private_file, secure_folder
from storage.errors import KeyringError

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class MatchingKey:
    key: bytes

    @classmethod
    def new(cls) -> MatchingKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load(cls, path: Path, create: bool = True) -> MatchingKey:
        """The key in ``path``, made (0600) on first use when ``create``."""
        if not path.exists():
            if not create:
                raise KeyringError(f"no matching key at {path}")
            made = cls.new()
            secure_folder(path.parent)
            private_file(path)
            path.write_bytes(base64.urlsafe_b64encode(made.key) + b"\n")
            return made
        try:
            key = base64.urlsafe_b64decode(path.read_bytes().strip())
        except ValueError as error:
            raise KeyringError(f"the matching key at {path} is not a key") from error
        if len(key) != KEY_BYTES:
            raise KeyringError(f"the matching key at {path} is not a key")
        return cls(key)

    def digest(self, kind: str, canonical: str) -> bytes:
        return hmac.digest(self.key, f"{kind}\0{canonical}".encode(), hashlib.sha256)
