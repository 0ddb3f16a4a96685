"""References and secret codes.

Both use Crockford's base-32 alphabet (upper-case letters and digits, no I, L, O or U), in
groups of four joined by hyphens. A reference (``XXXX-XXXX``, 40 bits) names a report to staff.
A code (``XXXX-XXXX-XXXX-XXXX``, 80 bits) lets only the person who holds it erase their report.
"""

from __future__ import annotations

import secrets
from typing import Protocol

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_GROUPS = 2
CODE_GROUPS = 4
_TYPED = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def _token(groups: int) -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(groups * 4))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


class Tokens(Protocol):
    def reference(self) -> str: ...
    def code(self) -> str: ...


class RandomTokens:
    """Tokens from the operating system's secure random source."""

    def reference(self) -> str:
        return _token(REFERENCE_GROUPS)

    def code(self) -> str:
        return _token(CODE_GROUPS)


def _canonical(typed: str, groups: int) -> str | None:
    chars = "".join(ch for ch in typed.upper() if ch.isalnum()).translate(_TYPED)
    if len(chars) != groups * 4 or any(ch not in ALPHABET for ch in chars):
        return None
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def canonical_code(typed: str) -> str | None:
    """The code in its printed form, forgiving case, spaces and look-alike letters; None if not a code."""
    return _canonical(typed, CODE_GROUPS)


def canonical_reference(typed: str) -> str | None:
    return _canonical(typed, REFERENCE_GROUPS)
