"""Reading what people type: normalising it and matching word lists from ``responses/``.

A list entry is a word or phrase matched on word boundaries; a trailing ``*`` matches any
ending ("rape*" matches "raped"). Matching ignores case, accents, zero-width characters and
curly apostrophes, so "I’ve been RAPED" matches like "i've been raped".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u202a\u202b\u202c\u202d\u202e"))
# Also letters that Unicode does not split into a letter and an accent: "ł" is typed as "l".
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ł": "l", "Ł": "L"})


def normalise(text: str) -> str:
    """Case-fold, drop accents and invisible characters, and squeeze white space."""
    folded = unicodedata.normalize("NFKD", text.translate(_INVISIBLE).translate(_APOSTROPHES))
    stripped = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def _pattern(entry: str) -> str:
    words = normalise(entry)
    wildcard = words.endswith("*")
    body = re.escape(words.rstrip("*").strip()).replace(r"\ ", r"\s+")
    tail = r"\w*" if wildcard else ""
    return rf"(?<!\w){body}{tail}(?!\w)"


@lru_cache(maxsize=1024)
def _compile(entries: tuple[str, ...]) -> re.Pattern[str] | None:
    # Longest first, so where entries overlap at one place the longer one is the match found.
    ordered = sorted(entries, key=lambda e: len(normalise(e)), reverse=True)
    patterns = [_pattern(e) for e in ordered if normalise(e).rstrip("*").strip()]
    return re.compile("|".join(patterns)) if patterns else None


def matches(text: str, entries: Iterable[str]) -> bool:
    return matches_normalised(normalise(text), entries)


def matches_normalised(normalised: str, entries: Iterable[str]) -> bool:
    """``matches`` for text already normalised: one text checked against many lists."""
    pattern = _compile(tuple(entries))
    return pattern is not None and pattern.search(normalised) is not None


def spans(normalised: str, entries: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where each entry occurs in text already normalised, the longer where two start together."""
    pattern = _compile(entries)
    return [m.span() for m in pattern.finditer(normalised)] if pattern is not None else []


def label_key(text: str) -> str:
    """The form typed labels are compared in: normalised, punctuation at the ends removed."""
    return normalise(text).strip(" .!?,;:'\"()[]")


_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
# C0 and C1 controls and DEL: none carries meaning in a message, and some act on terminals.
_CONTROL = dict.fromkeys((*range(32), 0x7F, *range(0x80, 0xA0)))
WORD_JOINER = "\u2060"


def inert(text: str) -> str:
    """Someone's words made harmless in a message another person reads: every kind of line
    break (CR, LF, U+2028, U+2029, U+0085, vertical tab, form feed...) becomes one plain line
    break, no bidirectional overrides or other control characters remain, and no "/command" or
    "@mention" Telegram would act on (a word joiner after the slash or at sign; it reads the same)."""
    lines = text.translate(_BIDI).splitlines()
    cleaned = "\n".join(line.translate(_CONTROL) for line in lines)
    return cleaned.replace("/", "/" + WORD_JOINER).replace("@", "@" + WORD_JOINER)


def quote(text: str) -> str:
    """``inert`` text with every line behind a bar, so none of it can pose as a line of ours."""
    return "\n".join(f"│ {line}" for line in inert(text).split("\n"))
