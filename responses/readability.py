"""How easy the bot's words are to read, measured with the Flesch-Kincaid grade.

GOV.UK aims for a reading age of 9; our target is a reading age of about 9 to 11 (a US grade
of 4 to 6; reading age = grade + 5) across everything a person reads, with every line treated
as a sentence, as a person reads a bullet. Syllables come from pyphen's bundled hyphenation
dictionaries (hyphenation points + 1; for English never fewer than the vowel groups): a library,
no download, no network.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from functools import lru_cache

import pyphen

from responses.catalog import PAGE_BREAK
from responses.loader import Responses

TARGET_READING_AGE = 11.0  # all the text together, and the median message
WORST_ALLOWED = 12.0  # no single message above this
MIN_WORDS = 8
# What only staff, operators, commissioners (the figures) or Telegram menus read is not measured
# for people.
NOT_FOR_PEOPLE = ("staff.", "telegram.command.", "language.name.", "services.field.", "preview.", "figures.", "inbox.")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
DICTIONARIES = {"en": "en_GB", "pl": "pl_PL", "ro": "ro_RO"}


@dataclass(frozen=True, slots=True)
class Score:
    message: str
    words: int
    sentences: int
    syllables: int

    @property
    def grade(self) -> float:
        return 0.39 * self.words / self.sentences + 11.8 * self.syllables / self.words - 15.59

    @property
    def reading_age(self) -> float:
        return self.grade + 5


@lru_cache(maxsize=4)
def _hyphenator(locale: str) -> pyphen.Pyphen:
    return pyphen.Pyphen(lang=DICTIONARIES.get(locale, "en_GB"))


def sentences_of(text: str) -> list[str]:
    """Lines and sentences a person reads, without variables, bullets or page breaks."""
    text = re.sub(r"\{[^{}]*\}", "", text.replace(PAGE_BREAK, "\n"))
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip(" •■│-–—\t")
        found.extend(part for part in re.split(r"(?<=[.!?])\s+", line) if _WORD.search(part))
    return found


def score(message: str, text: str, locale: str = "en") -> Score | None:
    sentences = sentences_of(text)
    words = [w for s in sentences for w in _WORD.findall(s)]
    if len(words) < MIN_WORDS:
        return None
    syllables = sum(syllables_in(w, locale) for w in words)
    return Score(message, len(words), len(sentences), syllables)


_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables_in(word: str, locale: str = "en") -> int:
    """Hyphenation points + 1; for English, the higher of that and a vowel-group count (with a
    silent final e), since hyphenation dictionaries leave out some breaks and so flatter a text."""
    lowered = word.lower()
    found = len(_hyphenator(locale).positions(lowered)) + 1
    if locale == "en":
        groups = len(_VOWEL_GROUPS.findall(lowered))
        if lowered.endswith("e") and not lowered.endswith(("le", "ee")) and groups > 1:
            groups -= 1
        found = max(found, groups)
    return max(1, found)


def measure(responses: Responses, locale: str = "en") -> list[Score]:
    """A score for every message a person reads (of at least a few words)."""
    scores = []
    for message_id in responses.ids(locale):
        if message_id.startswith(NOT_FOR_PEOPLE):
            continue
        found = score(message_id, responses.text(locale, message_id), locale)
        if found is not None:
            scores.append(found)
    return scores


@dataclass(frozen=True, slots=True)
class Summary:
    messages: int
    overall: float  # reading age of all the text together (word-weighted)
    median: float
    worst: tuple[Score, ...]

    @property
    def meets_target(self) -> bool:
        worst = self.worst[0].reading_age if self.worst else 0.0
        return self.overall <= TARGET_READING_AGE and self.median <= TARGET_READING_AGE and worst <= WORST_ALLOWED


def summarise(scores: list[Score], worst: int = 10) -> Summary:
    words = sum(s.words for s in scores)
    overall = Score("all", words, sum(s.sentences for s in scores), sum(s.syllables for s in scores))
    ranked = sorted(scores, key=lambda s: s.reading_age, reverse=True)
    return Summary(
        messages=len(scores),
        overall=round(overall.reading_age, 1),
        median=round(statistics.median(s.reading_age for s in scores), 1),
        worst=tuple(ranked[:worst]),
    )
