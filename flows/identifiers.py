"""Who hurt someone, as they can name them: an app and profile name, a phone number, an email
address, a social media handle, or a name and where. Each is normalised so that two people who
write the same person differently ("Grindr: Tom_88", "tom 88 on grindr") give the same canonical
form; only a keyed digest of that form is compared, ever (``storage/matching.py``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers

DEFAULT_REGION = "GB"
# Between an app and a profile name: "Grindr: Tom", "Tom on Grindr", "Grindr - Tom", "Grindr, Tom".
_APART = re.compile(r"\s*(?::|,|/|\s-\s|\s+on\s+|\s+na\s+|\s+pe\s+|\s+w\s+|\s+în\s+)\s*", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Known:
    """What normalising uses: the apps we know by name, the regions phone numbers are tried in."""

    apps: tuple[str, ...]
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Identifier:
    """One way of naming someone: ``canonical`` is what is compared (through a keyed digest);
    ``shown`` is what the person typed, for the matching contact once two reports match."""

    kind: str
    canonical: str
    shown: str


def _letters(text: str) -> str:
    """Letters and digits only, case and accents folded: "Tom_88" and "tom 88" are one."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in plain if ch.isalnum() and not unicodedata.combining(ch))


def _app(text: str, apps: Iterable[str]) -> tuple[str, str] | None:
    """(app, profile): the app as its canonical name when it is one we know."""
    known = {_letters(a): _letters(a) for a in apps}
    parts = [p for p in _APART.split(text.strip(), maxsplit=1) if p.strip()]
    if len(parts) != 2:
        return None
    first, second = parts
    if _letters(second) in known and _letters(first) not in known:
        first, second = second, first
    app, profile = _letters(first), _letters(second)
    return (app, profile) if app and profile else None


def _phone(text: str, known: Known) -> str | None:
    """E.164: a number valid in the first region that has it (the UK, then the person's own
    country: "600 123 456" written in Polish is a Polish mobile), else possible in the UK."""
    parsed = []
    for region in known.regions:
        try:
            parsed.append(phonenumbers.parse(text, region))
        except phonenumbers.NumberParseException:
            continue
    found = next((n for n in parsed if phonenumbers.is_valid_number(n)), None)
    found = found or next((n for n in parsed if phonenumbers.is_possible_number(n)), None)
    return str(phonenumbers.format_number(found, phonenumbers.PhoneNumberFormat.E164)) if found else None


def _email(text: str, known: Known) -> str | None:
    address = text.strip().casefold()
    return address if _EMAIL.match(address) else None


def _handle(text: str, known: Known) -> str | None:
    return _letters(text.strip().lstrip("@")) or None


def _profile(text: str, known: Known) -> str | None:
    found = _app(text, known.apps)
    return f"{found[0]}:{found[1]}" if found else None


def _name(text: str, known: Known) -> str | None:
    """A name and where, in any order: two words at least ("Dan, Vauxhall")."""
    words = sorted(_letters(w) for w in re.split(r"[\s,;]+", text) if _letters(w))
    return " ".join(words) if len(words) >= 2 else None


CANONICAL: dict[str, Callable[[str, Known], str | None]] = {
    "app": _profile,
    "phone": _phone,
    "email": _email,
    "handle": _handle,
    "name": _name,
}


def identify(kind: str, text: str, apps: Iterable[str] = (), locale: str = "") -> Identifier | None:
    """``text`` as an identifier of ``kind``, or None when it cannot be one (a phone number
    that is no number, an app without a profile name). ``locale``: the person's language, whose
    country's numbers are tried after the UK's."""
    own = locale.upper()
    regions = (DEFAULT_REGION, *((own,) if own in phonenumbers.SUPPORTED_REGIONS and own != DEFAULT_REGION else ()))
    canonical = CANONICAL[kind](text, Known(tuple(apps), regions))
    return Identifier(kind, canonical, " ".join(text.split())[:200]) if canonical else None


KINDS = tuple(CANONICAL)
