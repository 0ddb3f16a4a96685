"""The checked, merged responses a deployment runs with, and ``responses check``."""

from __future__ import annotations

import datetime as dt
import re
import string
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from flows.definitions import INTENT_TARGETS
from flows.text import label_key, matches_normalised, normalise
from flows.understanding import SAFETY, Example
from responses.catalog import (
    BUILT_INS,
    DEFAULT_DIR,
    DEFAULT_LOCALE,
    PAGE_BREAK,
    TELEGRAM_LIMIT,
    Message,
    Problem,
    Service,
    Sources,
    read_folder,
)

STALE_AFTER = dt.timedelta(days=183)
# The fewest examples an intent may have, in every language that has examples at all.
MIN_SAFETY_EXAMPLES = 40
MIN_EXAMPLES = 10
# Staff read the staff chat in one language (English unless a charity rewrites it); each
# language is named in its own words, the same everywhere.
STAFF_ONLY = ("staff.", "language.name.", "figures.", "inbox.")
# A message may have a wording for one channel, as ``id@channel``: what Telegram can delete, a
# Rasa channel (WhatsApp, SMS) cannot, and the words must say so. Text messages (SMS, and WhatsApp
# through Twilio) are a Rasa channel with less room: ``id@sms`` first, then ``id@rasa``.
CHANNELS = frozenset({"console", "rasa", "sms", "telegram", "web"})
WITHIN = {"sms": "rasa"}
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# Message ids a charity may add beyond the defaults: the words of a recipient it adds
# (REACHABLE_RECIPIENTS_EXTRA), and how staff read its name.
_OPEN_IDS = re.compile(r"^(recipient\.[a-z0-9_]+\.(label|who|who\.via_support)|staff\.send_to\.[a-z0-9_]+)$")
# Symbols used as plain typography, never as the only carrier of meaning.
ALLOWED_SYMBOLS = frozenset("•■│–—→")


class ResponsesError(Exception):
    """The responses folders have errors; ``problems`` lists every one with file and line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the responses:\n" + "\n".join(map(str, errors)))


class Responses:
    """Messages, word lists and services per locale, English filling any gap."""

    def __init__(self, sources: Sources) -> None:
        self._messages = sources.messages
        self._words = sources.words
        self._services = sources.services
        self._examples = tuple(e for locale in sorted(sources.examples) for e in sources.examples[locale])
        self.question_order = sources.question_order
        self.questions_off = sources.questions_off
        self.problems = tuple(sources.problems)

    @classmethod
    def load(cls, overlay: Path | None = None, today: dt.date | None = None) -> Responses:
        responses = check(overlay, today)
        if any(p.severity == "error" for p in responses.problems):
            raise ResponsesError(responses.problems)
        return responses

    @property
    def locales(self) -> tuple[str, ...]:
        others = sorted(loc for loc in self._messages if loc != DEFAULT_LOCALE)
        return (DEFAULT_LOCALE, *others)

    def has(self, message_id: str) -> bool:
        return message_id in self._messages.get(DEFAULT_LOCALE, {})

    def message(self, locale: str, message_id: str, channel: str | None = None) -> Message:
        """The message in ``locale``, English filling a gap. A channel's own wording comes
        first, in the person's language or else in English: the general one may promise what
        this channel cannot do."""
        own, english = self._messages.get(locale, {}), self._messages[DEFAULT_LOCALE]
        chain = []
        while channel is not None:
            chain.append(f"{message_id}@{channel}")
            channel = WITHIN.get(channel)
        # The person's language first, through the channel's wordings; then English's. A
        # charity's own general wording wins over a channel wording it did not write.
        for messages in (own, english):
            general = messages.get(message_id)
            found = next((messages[v] for v in chain if v in messages), None)
            if found is not None and not (general is not None and _shipped(found) and not _shipped(general)):
                return found
            if general is not None and found is not None:
                return general
        return own.get(message_id) or english[message_id]

    def ids(self, locale: str = DEFAULT_LOCALE) -> tuple[str, ...]:
        """Every message id the bot uses (the English set, without channel wordings), in file order."""
        return tuple(key for key in self._messages[DEFAULT_LOCALE] if "@" not in key)

    def variants(self, channel: str) -> tuple[str, ...]:
        """The message ids that have their own wording on ``channel``."""
        suffix = f"@{channel}"
        return tuple(k.removesuffix(suffix) for k in self._messages[DEFAULT_LOCALE] if k.endswith(suffix))

    def text(self, locale: str, message_id: str, channel: str | None = None) -> str:
        return self.message(locale, message_id, channel).text

    def area_of(self, borough: str) -> str | None:
        """The area a London borough is counted under in the figures (``areas:``)."""
        prefix = "areas:"
        found = (k for k, v in self._words.get(DEFAULT_LOCALE, {}).items() if k.startswith(prefix) and borough in v)
        return next((k.removeprefix(prefix) for k in found), None)

    def words(self, locale: str, group: str) -> tuple[str, ...]:
        found = self._words.get(locale, {}).get(group)
        return found if found is not None else self._words.get(DEFAULT_LOCALE, {}).get(group, ())

    def examples(self) -> tuple[Example, ...]:
        return self._examples

    def language_samples(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each language's own messages, line by line: more text to tell languages apart by."""
        samples = []
        for locale in self.locales:
            lines = (
                line.strip(" •■│–-") for m in self._messages.get(locale, {}).values() for line in m.text.split("\n")
            )
            kept = tuple(dict.fromkeys(line for line in lines if len(line) > 20 and "{" not in line))
            samples.append((locale, kept))
        return tuple(samples)

    def services(self, locale: str) -> tuple[Service, ...]:
        """The directory in ``locale``: every service as en/services.yaml has it (its contacts
        are facts, kept once for every language), in the words of its translation if there is
        one, else in English, marked ``translated=False``."""
        english = self._services.get(DEFAULT_LOCALE, {})
        words = self._services.get(locale, {}) if locale != DEFAULT_LOCALE else {}
        listed = []
        for key, service in english.items():
            own = words.get(key)
            if locale == DEFAULT_LOCALE:
                listed.append(service)
            elif own is None:
                listed.append(replace(service, translated=False))
            else:
                listed.append(replace(service, name=own.name, purpose=own.purpose, hours=own.hours))
        return tuple(listed)

    def untranslated_services(self, locale: str) -> tuple[str, ...]:
        """The names of services with no words in ``locale`` (shown in English there)."""
        return tuple(s.name for s in self.services(locale) if not s.translated)


def _shipped(message: Message) -> bool:
    """Whether a message is the project's own default (not a charity's)."""
    return DEFAULT_DIR in message.path.parents


def _placeholders(message: Message) -> tuple[frozenset[str], str | None]:
    """The variables a message uses, or a description of what is wrong with its braces."""
    names: set[str] = set()
    try:
        for _, name, spec, conversion in string.Formatter().parse(message.text):
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                return (
                    frozenset(),
                    f"'{{{name}}}' is not a variable: use a plain name like {{reference}}",
                )
            names.add(name)
    except ValueError:
        return frozenset(), "has an unmatched '{' or '}' (write '{{' or '}}' for a literal brace)"
    return frozenset(names), None


def check(overlay: Path | None = None, today: dt.date | None = None) -> Responses:
    """Read the defaults and ``overlay`` and return them with every problem found."""
    sources = Sources()
    read_folder(DEFAULT_DIR, sources)
    reference = dict(sources.messages.get(DEFAULT_LOCALE, {}))
    # Checking the defaults themselves (`responses check responses/default`): read them once.
    if overlay is not None and overlay.resolve() != DEFAULT_DIR.resolve():
        read_folder(overlay, sources)
    problems = sources.problems
    expected = _expected_variables(reference, sources)
    english_pages = {k: m.text.count(PAGE_BREAK) + 1 for k, m in reference.items() if "@" not in k}
    for locale, messages in sources.messages.items():
        # The bot pages through a screen by its general wording: a channel's own has as many pages.
        pages = {**english_pages, **{k: m.text.count(PAGE_BREAK) + 1 for k, m in messages.items() if "@" not in k}}
        for key, message in messages.items():
            problems.extend(_check_message(locale, key, message, expected, pages))
        if locale != DEFAULT_LOCALE:
            for key in sorted(k for k in set(reference) - set(messages) if not k.startswith(STAFF_ONLY)):
                where = next(iter(messages.values())).path if messages else DEFAULT_DIR / locale
                problems.append(
                    Problem(
                        where,
                        1,
                        f"[{locale}] message {key!r} is missing: English is used",
                        "warning",
                    )
                )
    for locale, messages in sources.messages.items():
        flagged = sources.words.get(locale, {}).get("judgemental", ()) + sources.words.get(DEFAULT_LOCALE, {}).get(
            "judgemental", ()
        )
        for key, message in messages.items():
            problems.extend(_check_tone(locale, key, message, flagged))
    problems.extend(_check_examples(sources.examples))
    for label_id, path, line in sources.answer_ids:
        if label_id not in reference:
            problems.append(Problem(path, line, f"answers for {label_id!r}: no such message id (an option's label)"))
    problems.extend(_check_places(sources))
    # The project ships its directory for each charity to check: only a charity's own folder is
    # asked when it last checked each service.
    own = overlay if overlay is not None and overlay.resolve() != DEFAULT_DIR.resolve() else None
    problems.extend(_check_services(sources, today or dt.date.today(), own))
    return Responses(sources)


def _check_places(sources: Sources) -> Iterator[Problem]:
    """Every ``places:`` entry names a borough of the English list, and every borough in
    ``areas:`` is one, in one area only."""
    boroughs = set(sources.words.get(DEFAULT_LOCALE, {}).get("boroughs", ()))
    for borough, path, line in sources.place_ids:
        if borough not in boroughs:
            yield Problem(path, line, f"places for {borough!r}: not a borough in the English 'boroughs' list")
    seen: dict[str, str] = {}
    for area, path, line in sources.area_ids:
        for borough in sources.words.get(DEFAULT_LOCALE, {}).get(f"areas:{area}", ()):
            if borough not in boroughs:
                yield Problem(path, line, f"areas: {area!r} lists {borough!r}, not a borough in the 'boroughs' list")
            elif borough in seen:
                yield Problem(path, line, f"areas: {borough!r} is in both {seen[borough]!r} and {area!r}")
            seen.setdefault(borough, area)


def _expected_variables(reference: dict[str, Message], sources: Sources) -> dict[str, frozenset[str]]:
    """The variables each message id uses; a channel's wording fills in what the general one does."""
    expected = {key: _placeholders(msg)[0] for key, msg in reference.items()}
    variants = {key for messages in sources.messages.values() for key in messages if "@" in key}
    for key in variants:
        base, _, channel = key.partition("@")
        if channel in CHANNELS and base in expected:
            expected[key] = expected[base]
    return expected


MAY_BE_EMPTY = frozenset({"language.unchecked"})  # empty: nothing is said


def _check_message(
    locale: str, key: str, message: Message, expected: dict[str, frozenset[str]], pages: dict[str, int]
) -> list[Problem]:
    found: list[Problem] = []

    def problem(text: str) -> None:
        found.append(Problem(message.path, message.line, f"[{locale}] {key!r}: {text}"))

    base, at, channel = key.partition("@")
    if at and channel not in CHANNELS:
        problem(f"unknown channel {channel!r} after '@' (channels: {', '.join(sorted(CHANNELS))})")
        return found
    if at and base not in expected:
        problem(f"{base!r} is not a message id, so it cannot have a wording for {channel}")
        return found
    if key not in expected and not _OPEN_IDS.match(key):
        problem("unknown message id (not used by the bot; check the spelling)")
        return found
    expected = {**expected, key: expected.get(key, frozenset())}
    if not message.text.strip() and base not in MAY_BE_EMPTY:
        problem("is empty")
    for text in _size_problems(key, message, pages):
        problem(text)
    names, error = _placeholders(message)
    if error:
        problem(error)
        return found
    for name in sorted(expected[key] - names):
        problem(f"missing variable {{{name}}}")
    for name in sorted(names - expected[key] - BUILT_INS):
        problem(f"unknown variable {{{name}}} (this message can use: {_listing(expected[key] | BUILT_INS)})")
    return found


def _size_problems(key: str, message: Message, pages: dict[str, int]) -> list[str]:
    found = []
    if len(message.text) > TELEGRAM_LIMIT and PAGE_BREAK not in message.text:
        found.append(f"is {len(message.text):,} characters; Telegram allows {TELEGRAM_LIMIT:,}")
    base, at, _ = key.partition("@")
    count = message.text.count(PAGE_BREAK) + 1
    if at and base in pages and count != pages[base]:
        found.append(f"has {count} page(s) and {base!r} has {pages[base]}: they must match")
    return found


def _check_tone(locale: str, key: str, message: Message, flagged: tuple[str, ...]) -> list[Problem]:
    """Judgemental phrases (a list charities extend) and emoji that might carry meaning alone."""
    found = []
    normalised = normalise(message.text)
    for phrase in sorted(set(flagged)):
        if matches_normalised(normalised, [phrase]):
            text = f"[{locale}] {key!r}: {phrase!r} can sound judgemental or blaming; please reword"
            found.append(Problem(message.path, message.line, text, "warning"))
    for line in message.text.splitlines():
        symbols = [ch for ch in line if unicodedata.category(ch) == "So" and ch not in ALLOWED_SYMBOLS]
        bare = _PLACEHOLDER.sub("", line)
        if symbols and not any(ch.isalpha() for ch in bare):
            text = f"[{locale}] {key!r}: {''.join(symbols)} stands alone on a line; say it in words too"
            found.append(Problem(message.path, message.line, text, "warning"))
    for number, page in enumerate(message.text.split(PAGE_BREAK), start=1):
        if len(page) > TELEGRAM_LIMIT and PAGE_BREAK in message.text:
            text = f"[{locale}] {key!r}: page {number} is {len(page):,} characters; Telegram allows {TELEGRAM_LIMIT:,}"
            found.append(Problem(message.path, message.line, text))
    return found


def _check_examples(by_locale: dict[str, list[Example]]) -> list[Problem]:
    """Too few examples for an intent in a language, and the same words under two intents."""
    found: list[Problem] = []
    for locale, examples in sorted(by_locale.items()):
        if not examples:
            continue
        counts = {intent: 0 for intent in INTENT_TARGETS}
        for example in examples:
            counts[example.intent] += 1
        where = Path(examples[-1].path)
        for intent, count in counts.items():
            least = MIN_SAFETY_EXAMPLES if intent in SAFETY else MIN_EXAMPLES
            if count < least:
                text = f"[{locale}] intent {intent!r} has {count} example(s); it needs at least {least}"
                found.append(Problem(where, 1, text))
    seen: dict[tuple[str, str], Example] = {}
    for example in (e for locale in sorted(by_locale) for e in by_locale[locale]):
        # The same words in two languages ("hi", "sos") are fine when they mean the same.
        key = (label_key(example.text), example.locale)
        first = seen.setdefault(key, example)
        if first is example:
            continue
        if first.intent != example.intent:
            text = (
                f"[{example.locale}] example {example.text!r} is under {example.intent!r} here and under "
                f"{first.intent!r} at {first.path}:{first.line}: an example can mean only one thing"
            )
            found.append(Problem(Path(example.path), example.line, text))
        else:
            text = f"[{example.locale}] example {example.text!r} is also at {first.path}:{first.line}"
            found.append(Problem(Path(example.path), example.line, text, "warning"))
    return found


def _listing(names: frozenset[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))


def _check_services(sources: Sources, today: dt.date, own: Path | None) -> list[Problem]:
    """Services never checked by the charity (one line naming them all) and those checked over
    six months ago (one line each, where the date is)."""
    found: list[Problem] = []
    if own is None:
        return found
    english = sources.services.get(DEFAULT_LOCALE, {})
    never = [service.id for service in english.values() if service.last_checked is None]
    if never:
        text = (
            f"{len(never)} service(s) have no last_checked date: {', '.join(never)}. Check each one's "
            "phone, web address and hours, then add `last_checked: YYYY-MM-DD` to it in your en/services.yaml"
        )
        found.append(Problem(own / DEFAULT_LOCALE / "services.yaml", 1, text, "warning"))
    for locale, services in sources.services.items():
        for service in services.values():
            inherited = service.id in english and service.last_checked == english[service.id].last_checked
            if locale != DEFAULT_LOCALE and inherited:
                continue  # a translation carries the English entry's date: warned about once, there
            if service.last_checked is not None and today - service.last_checked > STALE_AFTER:
                text = f"[{locale}] service {service.id!r} was last checked on {service.last_checked}"
                found.append(Problem(service.path, service.line, text + ", over six months ago", "warning"))
    return found


def load_responses(overlay: Path | None = None) -> Responses:
    return Responses.load(overlay)


__all__ = ["Problem", "Responses", "ResponsesError", "check", "load_responses"]
