"""What typed words answer at a question: the options they name, a London borough, a date, or a
move (skip, done, back to the previous question, finish the report).

People type answers the way they talk: "last saturday night", "a flat in vauxhall", "g and a
bit of tina", "nobody yet", "yes thats right", "send it to the support people please". The
answer to the question being asked comes first; only words that clearly mean harm interrupt
(the engine decides that). Every word list comes from ``responses/`` (``words.yaml``), in every
language at once, so a charity can add the words its people use.

Dates in words ("last saturday", "3 weeks ago", "w sobotę", "acum 2 săptămâni") are read by
dateparser, a well-kept parser of relative dates in 200 languages, after the charity's own
phrases ("last night", "wczoraj w nocy", "aseară"), which come first.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from flows.replies import OptionRef
from flows.text import label_key, spans

# A move the question cannot take ("thats all" where one answer is asked): asked again kindly.
HEARD = "heard"
# Moves typed at a question, by word list: back to the previous question, skip it, done ticking,
# none of these (skips a question taking several), on to the summary.
MOVES = ("previous", "skip", "done", "none", "finish")
# The step asking when it happened, and the most days ago each of its options covers.
WHEN_STEP = "report.when"
WHEN_DAYS = (("today", 0), ("week", 7), ("month", 31), ("longer", 100_000))
# A message of at most this many words is short: a longer move phrase may stand anywhere in it.
SHORT = 8
# A night that has just ended counts as today ("last night", "saturday night" on Sunday).
EVENING_HOUR = 18
WHERE_STEP = "report.where"
# How close a place typed a little wrong must be to a known name (difflib's ratio).
FUZZY = 0.75
FUZZY_MARGIN = 0.1
# Options on many screens, chosen by their whole label or a move only.
COMMON = frozenset({"leave", "skip", "done", "next_page", "back"})
BOROUGH_STEP = "report.borough"
_PUNCTUATION = ",.;:!?/()\"'"


@dataclass(frozen=True, slots=True)
class Reading:
    """What typed words answer: option keys, a borough, or a move (see ``MOVES``)."""

    keys: tuple[str, ...] = ()
    borough: str = ""
    move: str = ""

    def __bool__(self) -> bool:
        return bool(self.keys or self.borough or self.move)


class Words:
    """A word list in the form typed text is compared in, searchable as phrases."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(dict.fromkeys(k for k in map(label_key, entries) if k))

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __contains__(self, typed: object) -> bool:
        return typed in self.entries

    def spans(self, typed: str) -> list[tuple[int, int]]:
        """Where each entry occurs in ``typed`` on word boundaries (a trailing ``*`` matches any
        ending, "scruff*" is "scruffie" too, as in every word list)."""
        return spans(typed, self.entries)


class Answering:
    """Reads typed answers with word lists from every language. ``words(group)`` gives a list
    merged over languages; ``label(locale, message_id)`` an option's label as compared."""

    def __init__(
        self,
        words: Callable[[str], tuple[str, ...]],
        locale_words: Callable[[str, str], tuple[str, ...]],
        label: Callable[[str, str], str],
        boroughs: Sequence[str],
        places: Callable[[str], tuple[str, ...]],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._words_of = words
        self._locale_words = locale_words
        self._label = label
        self._clock = clock
        self._lists: dict[str, Words] = {}
        # Each borough by its own name and by its neighbourhoods ("vauxhall" is Lambeth).
        self._boroughs = {b: Words((b, *places(b))) for b in boroughs}

    def local(self, locale: str, group: str) -> Words:
        """A word list in one language (its own, or English where it has none)."""
        found = self._lists.get(f"{locale}:{group}")
        if found is None:
            found = self._lists[f"{locale}:{group}"] = Words(self._locale_words(locale, group))
        return found

    def words(self, group: str) -> Words:
        found = self._lists.get(group)
        if found is None:
            found = self._lists[group] = Words(self._words_of(group))
        return found

    # ------------------------------------------------------------------ the whole reading
    def read(
        self, step: str, multi: bool, skippable: bool, shown: Sequence[OptionRef], locale: str, text: str
    ) -> Reading:
        whole = label_key(text)
        typed = self.strip_filler(whole, locale) or whole
        # A move that is the whole message ("skip", "thats all", "previous question") first.
        heard = self.move(whole, alone=True) or self.move(typed, alone=True)
        move = self._move_at(heard, multi, skippable)
        if move:
            return Reading(move=move)
        named = self._options_named(step, shown, locale, whole, typed)
        if isinstance(named, Reading):
            return named
        if not named:
            # A move starting a longer message that names nothing ("dunno its all a blur").
            move = self._move_at(self.move(typed), multi, skippable)
            if move:
                return Reading(move=move)
            named = self.yes_or_no(shown, locale, typed) or self.yes_or_no(shown, locale, whole)
        if not named and heard in ("done", "none"):
            # "to wszystko" where nothing is ticked: words we know, not a crisis to look for.
            return Reading(move=HEARD)
        if len(named) > 1 and not multi:
            return Reading()
        return Reading(keys=named)

    def _options_named(
        self, step: str, shown: Sequence[OptionRef], locale: str, whole: str, typed: str
    ) -> tuple[str, ...] | Reading:
        """Options named inside the message, with a date at "when" and a place at "where"."""
        # Words inside a sentence name only the question's own options: "he wouldn't let me
        # leave" is not the Leave button.
        own = [o for o in shown if o.key not in COMMON and not o.key.startswith("lang.")]
        # Read without the person's filler first: Polish "no dawaj" is "well, go on".
        named = self.named(own, locale, typed) or self.named(own, locale, whole)
        if step in (WHERE_STEP, BOROUGH_STEP):
            # A place in London names its borough; "brighton" (somewhere else) is never "brixton".
            borough = self.borough(whole, fuzzy=named != ("elsewhere",)) or self.borough(typed, fuzzy=not named)
            if borough:
                return Reading(keys=("london",) if step == WHERE_STEP else (), borough=borough)
            if step == BOROUGH_STEP and self.words("answers:report.where.london").spans(whole):
                # "london" (or "somewhere in london") says no more than the last answer did.
                return Reading(move="skip")
        if step == WHEN_STEP:
            # A day named ("saturday night") says more than a time of day alone ("night").
            when = self.when(whole)
            if when and (len(named) != 1 or (named == ("today",) and when != "today")):
                named = (when,)
        return named

    @staticmethod
    def _move_at(move: str, multi: bool, skippable: bool) -> str:
        """The move as this question takes it: done and none only where several may be chosen
        (none skips); no skip where it cannot be skipped ("i'd rather not" is then a no)."""
        if move in ("done", "none") and not multi:
            return ""
        if move == "none":
            move = "skip"
        return "" if move == "skip" and not skippable else move

    def strip_filler(self, typed: str, locale: str = "") -> str:
        """Without "um", "i think", "please" and the like around the answer, in the person's
        language (Polish "no" is "well", not a no)."""
        filler = self.local(locale, "filler") if locale else self.words("filler")
        while True:
            before = typed
            for entry in filler:
                if typed.startswith(entry + " "):
                    typed = typed[len(entry) + 1 :]
                if typed.endswith(" " + entry):
                    typed = typed[: -len(entry) - 1]
                typed = typed.strip(" .,!?;:")
            if typed == before:
                return typed

    def move(self, typed: str, alone: bool = False) -> str:
        """A move typed ``alone`` (a one-word one such as "back" only alone; a longer one such as
        "previous question" in a short message too), or else starting the message."""
        # "back" alone, or as a clause of its own ("cofnij, zle odpowiedzialem").
        if typed in self.words("previous") or label_key(typed.split(",")[0]) in self.words("previous"):
            return "previous"
        spanned = [typed[a:b] for a, b in self.words("previous").spans(typed)]
        if len(typed.split()) <= SHORT and any(len(e.split()) > 1 for e in spanned):
            return "previous"
        # "no nobody is in danger, i want to finish my report": finishing, wherever it is said.
        if any(len(typed[a:b].split()) > 2 for a, b in self.words("finish").spans(typed)):
            return "finish"
        best = ("", 0)
        for move in MOVES[1:]:
            for start, end in self.words(move).spans(typed):
                # Starting the message; alone, with at most two more words ("no drugs at all").
                if start == 0 and end > best[1] and (not alone or len(typed[end:].split()) <= 2):
                    best = (move, end)
        return best[0]

    # ------------------------------------------------------------------ options by their words
    def named(self, shown: Sequence[OptionRef], locale: str, typed: str) -> tuple[str, ...]:
        """Options whose words occur in ``typed``: a charity's phrases for it, its whole label, or
        a word of its label that no other option on the screen has. Longer phrases win where
        two overlap ("not london" over "london")."""
        found: list[tuple[int, int, str]] = []
        labels = {o.key: self._content_words(self._label(locale, o.label)) for o in shown}
        negated = {k for k, words in labels.items() if words & set(self.words("not"))}
        for option in shown:
            phrases = [*self.words(f"answers:{option.label}"), self._label(locale, option.label)]
            # A word of one label only names it, unless that label says no ("Don't send it").
            others = set().union(*(w for k, w in labels.items() if k != option.key))
            own = set() if option.key in negated else labels[option.key] - others - set(self.words("not"))
            spans = Words((*phrases, *own)).spans(typed)
            found.extend((start, end, option.key) for start, end in spans)
        found.sort(key=lambda f: (f[0] - f[1], f[0]))  # longest first
        taken: list[tuple[int, int]] = []
        keys: list[str] = []
        nots = set(self.local(locale, "not") if locale else self.words("not"))
        for start, end, key in found:
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            # "no tina", "nu il pastrati": a not just before it says the opposite.
            before = [w.strip(_PUNCTUATION) for w in typed[:start].split()[-2:]]
            if not nots.intersection(before):
                keys.append(key)
        order = [o.key for o in shown]
        return tuple(sorted(dict.fromkeys(keys), key=order.index))

    def named_words(self, group: str, text: str, locale: str) -> bool:
        """A phrase of ``group`` in ``text`` with no "not" just before it ("they're here", but
        not "nu au venit încă")."""
        typed = label_key(text)
        nots = set(self.local(locale, "not")) | set(self.local("en", "not"))
        for start, _ in self.words(group).spans(typed):
            before = [w.strip(_PUNCTUATION) for w in typed[:start].split()[-2:]]
            if not nots.intersection(before):
                return True
        return False

    def _content_words(self, label: str) -> set[str]:
        """A label's words that can name it inside a sentence: long enough to mean something,
        or a "not"; never filler ("something", "the")."""
        words = {w.strip(_PUNCTUATION) for w in label.replace("'", "").split()}
        nots = set(self.words("not"))
        return {w for w in words if len(w) >= 4 or w in nots} - set(self.words("filler"))

    def yes_or_no(self, shown: Sequence[OptionRef], locale: str, typed: str) -> tuple[str, ...]:
        """A message starting with a yes or a no ("yes thats right", "nah not really"): the one
        option that starts with it, or a charity's phrases for an option that list it. A yes
        followed by a no is a no ("pewnie nie", "sigur că nu")."""
        words = [w for w in (t.strip(_PUNCTUATION) for t in typed.split()) if w]
        negative = set(self.words("no")) | set(self.local(locale, "not"))
        for answer in ("yes", "no"):
            lead = next((n for n in (3, 2, 1) if " ".join(words[:n]) in self.words(answer)), 0)
            if not lead:
                continue
            said = " ".join(words[:lead])
            if answer == "yes" and negative.intersection(words[lead : lead + 3]):
                answer, said = "no", ""
            listed = self.words(answer)
            listing = [o.key for o in shown if said and said in self.words(f"answers:{o.label}")]
            starting = [o.key for o in shown if self._label(locale, o.label).split(" ")[0].strip(",.!?") in listed]
            if answer == "no" and not listing and not starting:
                listing = [o.key for o in shown if set(listed) & set(self.words(f"answers:{o.label}"))]
            chosen = listing or starting
            return (chosen[0],) if len(chosen) == 1 else ()
        return ()

    # ------------------------------------------------------------------ places and dates
    def borough(self, typed: str, fuzzy: bool = True) -> str:
        """The one London borough named, by its name or a neighbourhood in it, or by a name
        typed a little wrong on its own ("hackny", "vauxal")."""
        named = [b for b, words in self._boroughs.items() if words.spans(typed)]
        if named:
            return named[0] if len(named) == 1 else ""
        if not fuzzy or len(typed.split()) > 3:
            return ""
        best: dict[str, float] = {}
        for borough, words in self._boroughs.items():
            for name in words:
                ratio = difflib.SequenceMatcher(None, typed, name).ratio()
                best[borough] = max(best.get(borough, 0.0), ratio)
        ranked = sorted(best.items(), key=lambda item: -item[1])
        if not ranked or ranked[0][1] < FUZZY:
            return ""
        # Clearly the closest: "harow" is Harrow (0.91), not Heathrow (0.77).
        return ranked[0][0] if len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= FUZZY_MARGIN else ""

    def when(self, typed: str) -> str:
        """The option of "When did it happen?" a date in words falls in, or ""."""
        now = self._clock()
        found = _parse_date(typed, now)
        if found is None or found > now + dt.timedelta(hours=1):
            return ""
        days = (now.date() - found.date()).days
        if days == 1 and found.hour >= EVENING_HOUR:
            days = 0
        return next(key for key, most in WHEN_DAYS if days <= most)


def _parse_date(typed: str, now: dt.datetime) -> dt.datetime | None:
    """A date in ``typed`` (English, Polish or Romanian), in the past, relative to ``now``."""
    import dateparser  # imported on first use: most conversations never ask when
    from dateparser.search import search_dates

    # A month without a day ("beginning of december") is read from its first day, not today's.
    settings = {
        "RELATIVE_BASE": now,
        "PREFER_DATES_FROM": "past",
        "PREFER_DAY_OF_MONTH": "first",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    languages = ["en", "pl", "ro"]
    found: dt.datetime | None = dateparser.parse(typed, languages=languages, settings=settings)
    if found is not None:
        return found
    hits: list[tuple[str, dt.datetime]] = search_dates(typed, languages=languages, settings=settings) or []
    # "acum" (now) alone is how Romanian starts "two weeks ago": a bare now says nothing.
    dated = [d for _, d in hits if d != now]
    return dated[0] if len(dated) == 1 else None
