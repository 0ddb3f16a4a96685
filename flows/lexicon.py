"""What the engine needs from ``responses/``: label text to match typed answers, word lists,
the examples the understanding step learns from, and which languages exist. A protocol, so the
engine never imports the loader."""

from __future__ import annotations

from typing import Protocol

from flows.understanding import Example


class Lexicon(Protocol):
    @property
    def locales(self) -> tuple[str, ...]: ...

    def has(self, message_id: str) -> bool:
        """True when the English defaults define ``message_id``."""
        ...

    def text(self, locale: str, message_id: str) -> str: ...

    def words(self, locale: str, group: str) -> tuple[str, ...]: ...

    def examples(self) -> tuple[Example, ...]:
        """Every training example, in every language."""
        ...

    def language_samples(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """More text per language (the bot's own lines), to tell languages apart."""
        ...
