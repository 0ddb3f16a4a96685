"""What the engine needs from ``responses/``: label text to match typed answers, word lists,
and which languages exist. A protocol, so the engine never imports the loader."""

from __future__ import annotations

from typing import Protocol


class Lexicon(Protocol):
    @property
    def locales(self) -> tuple[str, ...]: ...

    def has(self, message_id: str) -> bool:
        """True when the English defaults define ``message_id``."""
        ...

    def text(self, locale: str, message_id: str) -> str: ...

    def words(self, locale: str, group: str) -> tuple[str, ...]: ...
