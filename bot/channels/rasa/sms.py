"""Text for short channels (SMS, and WhatsApp through Twilio): a reply is one text, options are
numbered lines inside it, and nothing a phone shows is a button's payload.

A text message is cut into segments by the network: 153 characters each in the GSM 7-bit
alphabet when a message takes more than one (160 alone), 67 (70 alone) as soon as one character
is outside it. Typographic quotes, dashes and bullets have plain equivalents, so they are
swapped for them, and Polish and Romanian letters are written without their marks, as texts in
those languages often are (with them, a text holds less than half as much). A text is at most
three segments; a reply longer than that goes as several texts, cut at line ends.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence

MAX_SEGMENTS = 3
WORD_CUT = 201  # characters that always fit three segments: 3 × 67 in UCS-2, 402 of 459 in GSM
# The GSM 03.38 default alphabet, and its extension table (each of those costs two characters).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
PLAIN = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "–": "-",
        "—": "-",
        "•": "-",
        "■": "-",
        "✓": "*",
        "×": "x",
        "…": "...",
        "\u00a0": " ",
        "\u202f": " ",
    }
)

UNMARKED = str.maketrans({"ł": "l", "Ł": "L"})  # no mark to take off: a letter of its own


def gsm_length(text: str) -> int | None:
    """Characters ``text`` takes in the GSM alphabet, or None if it needs UCS-2."""
    length = 0
    for char in text:
        if char in GSM_BASIC:
            length += 1
        elif char in GSM_EXTENDED:
            length += 2
        else:
            return None
    return length


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes."""
    gsm = gsm_length(text)
    if gsm is not None:
        return 1 if gsm <= 160 else -(-gsm // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def fits(text: str) -> bool:
    return segments(text) <= MAX_SEGMENTS


def unmarked(text: str) -> str:
    """Letters outside the GSM alphabet without their marks (ą → a, ł → l, ș → s), where that
    brings them into it; anything else is left as it is."""
    kept = []
    for char in text.translate(UNMARKED):
        if char in GSM_BASIC or char in GSM_EXTENDED:
            kept.append(char)
            continue
        bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        kept.append(bare if bare and all(c in GSM_BASIC for c in bare) else char)
    return "".join(kept)


def plain(text: str) -> str:
    """Typographic characters as their GSM equivalents, letters without marks; no blank lines
    (some gateways, Rasa's Twilio channel among them, send each paragraph as its own message)."""
    lines = [line.rstrip() for line in unmarked(text.translate(PLAIN)).splitlines()]
    return "\n".join(line for line in lines if line.strip())


def one_text(messages: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """A turn's messages (text, option titles) as few texts as fit: one when it fits in three
    segments, options numbered as they are at the step ("1 Start")."""
    lines: list[str] = []
    for text, options in messages:
        lines += plain(text).splitlines()
        lines += [f"{number} {plain(title)}" for number, title in enumerate(options, start=1)]
    return list(_fill(lines))


def _fill(lines: list[str]) -> Iterator[str]:
    current: list[str] = []
    for line in lines:
        for piece in _short(line):
            if current and not fits("\n".join([*current, piece])):
                yield "\n".join(current)
                current = []
            current.append(piece)
    if current:
        yield "\n".join(current)


def _short(line: str) -> Iterator[str]:
    """A line longer than a whole text, cut at spaces; a word longer than a text, every
    ``WORD_CUT`` characters (three segments in either alphabet, even all doubled)."""
    current = ""
    for word in line.split(" "):
        for piece in [word[at : at + WORD_CUT] for at in range(0, len(word), WORD_CUT)] or [""]:
            joined = f"{current} {piece}" if current else piece
            if current and not fits(joined):
                yield current
                joined = piece
            current = joined
    if current:
        yield current
