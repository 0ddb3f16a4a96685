"""What a store that writes to disk or to a server does with content and codes, whichever engine:
structured content sealed with the keyring before it is written; a new report's secret code
hashed with Argon2id on threads of its own (keeping a report goes ahead of checking codes), and
tagged with a key of the store's own, read or made on first use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from storage.crypto import CodeHasher, Keyring, code_tag
from storage.hashing import CHECK, KEEP, HashingPool
from storage.rows import CodeSeal


class Sealing:
    keyring: Keyring
    hasher: CodeHasher

    def __init__(self) -> None:
        # Argon2 gets threads of its own, one fewer than the machine has cores and at a lower
        # priority: a burst of reports must not take the CPU from everyone else's replies, nor
        # fill asyncio's default pool, which other work (aiohttp's address lookups) waits on.
        self._hashing = HashingPool()
        self._tag_secret: bytes | None = None  # read (or made) when first needed

    async def _secret(self, name: str) -> bytes:
        """A random secret of this store, made on first use and kept sealed."""
        raise NotImplementedError

    def _stop_hashing(self) -> None:
        self._hashing.close()

    def _seal(self, data: Mapping[str, Any]) -> bytes:
        return self.keyring.encrypt(json.dumps(dict(data), ensure_ascii=False).encode())

    def _open(self, sealed: Any) -> Any:
        return json.loads(self.keyring.decrypt(bytes(sealed)))

    async def _code_tag(self, code: str) -> bytes:
        if self._tag_secret is None:
            self._tag_secret = await self._secret("code tag")
        return code_tag(self._tag_secret, code)

    async def _seal_code(self, code: str) -> CodeSeal:
        hashed = await self._hashing.run(KEEP, self.hasher.hash, code)
        return CodeSeal(hashed, await self._code_tag(code))

    async def _verify_code(self, hashed: str, code: str) -> bool:
        return await self._hashing.run(CHECK, self.hasher.verify, hashed, code)
