"""Loading charity-editable text: messages, word lists and the services directory.

Layout (the defaults ship in ``responses/default``; an overlay folder has the same shape and
may hold only what it changes)::

    <dir>/<locale>/messages.yaml   message id -> text ("{name}" marks a variable)
    <dir>/<locale>/words.yaml      word list name -> list of words or phrases
    <dir>/<locale>/services.yaml   list of services; an overlay entry with the same id
                                   replaces fields, and ``remove: true`` drops it
    <dir>/<locale>/nlu*.yml        examples of what people write, per intent, in Rasa's NLU
                                   format; an overlay's examples are learned as well

Every problem is collected with its file and line; nothing stops at the first.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from flows.definitions import INTENT_TARGETS
from flows.report_flows import QUESTION_FIELDS
from flows.understanding import AnswerCase, Example
from responses.hours import rule_problem

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_LOCALE = "en"
TELEGRAM_LIMIT = 4096
WORD_LISTS = frozenset(
    {
        "emergency",
        "menu",
        "yes",
        "no",
        "boroughs",
        "judgemental",
        "previous",
        "skip",
        "done",
        "none",
        "finish",
        "filler",
        "arrived",
        "police",
        "not",
        "apps",
    }
)
# ``places:`` maps a London borough to neighbourhoods in it ("vauxhall" -> Lambeth).
PLACES = "places"
# ``areas:`` groups boroughs for the figures ("Central London" -> Camden, …); a folder that has
# it replaces the grouping it overlays.
AREAS = "areas"
# ``answers:`` maps an option's label id to more words that choose it ("yesterday" -> This week).
ANSWERS = "answers"
# Word lists the bot once listened for; the understanding step learns from examples instead.
RETIRED_LISTS = frozenset({"assault", "drugged", "robbery", "threats"})
# Lists an overlay adds to rather than replaces.
EXTENDED_LISTS = frozenset({"judgemental"})
PAGE_BREAK = "\n---\n"
SERVICE_FIELDS = frozenset(
    {
        "id",
        "name",
        "for",
        "phone",
        "text",
        "email",
        "web",
        "address",
        "hours",
        "languages",
        "last_checked",
        "source",
        "remove",
        "open",
        "closed_on",
    }
)
# What a translation may give: its words. A service's contacts are facts, the same in every
# language, kept once, in en/services.yaml.
SERVICE_WORDS = frozenset({"id", "name", "for", "hours", "remove"})
# Variables every message may use: filled from the deployment's settings.
BUILT_INS = frozenset({"retention_days", "draft_hours", "services"})


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    text: str
    path: Path
    line: int

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name is not None)


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str
    purpose: str
    phone: str = ""
    text: str = ""
    email: str = ""
    web: str = ""
    address: str = ""
    hours: str = ""
    languages: tuple[str, ...] = ()
    last_checked: dt.date | None = None
    source: str = ""
    open: tuple[str, ...] = ()  # opening rules (responses/hours.py); none: hours unknown
    closed_on: tuple[dt.date, ...] = ()
    translated: bool = True  # its words are in the language asked for (else in English)

    @property
    def contactable(self) -> bool:
        """A way to reach it: a number, a text line, an address or a website."""
        return bool(self.phone or self.text or self.email or self.web)

    path: Path = field(default=DEFAULT_DIR, compare=False)
    line: int = field(default=1, compare=False)


@dataclass(slots=True)
class Sources:
    """Raw material read from one or more folders, before checking."""

    messages: dict[str, dict[str, Message]] = field(default_factory=dict)
    words: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    services: dict[str, dict[str, Service]] = field(default_factory=dict)
    question_order: tuple[str, ...] = ()
    questions_off: tuple[str, ...] = ()
    examples: dict[str, list[Example]] = field(default_factory=dict)
    # (label id, file, line) of every ``answers:`` entry, checked once all messages are read
    answer_ids: list[tuple[str, Path, int]] = field(default_factory=list)
    place_ids: list[tuple[str, Path, int]] = field(default_factory=list)
    area_ids: list[tuple[str, Path, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _compose(path: Path, problems: list[Problem]) -> yaml.Node | None:
    try:
        with path.open(encoding="utf-8") as stream:
            # libyaml's loader when present: the examples files are thousands of lines.
            return yaml.compose(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(path, line, f"not valid YAML: {error.problem or error}"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problems.append(Problem(path, 1, f"cannot read the file: {error}"))
    return None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _pairs(path: Path, node: yaml.Node | None, problems: list[Problem]) -> Iterator[tuple[str, yaml.Node, int]]:
    """Key/value pairs of a top-level mapping, reporting duplicates and non-text keys."""
    if node is None:
        return
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(path, _line(node), "expected 'name: value' lines at the top of the file"))
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = _line(key_node)
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(Problem(path, line, "a name must be plain text"))
            continue
        key = str(key_node.value)
        if key in seen:
            problems.append(Problem(path, line, f"{key!r} is defined twice (first at line {seen[key]})"))
            continue
        seen[key] = line
        yield key, value_node, line


def _read_messages(path: Path, locale: str, into: Sources) -> None:
    target = into.messages.setdefault(locale, {})
    for key, value, line in _pairs(path, _compose(path, into.problems), into.problems):
        if not isinstance(value, yaml.ScalarNode) or value.tag != "tag:yaml.org,2002:str":
            into.problems.append(Problem(path, line, f"message {key!r} must be text"))
            continue
        target[key] = Message(key, str(value.value).rstrip("\n"), path, line)


def _read_words(path: Path, locale: str, into: Sources) -> None:
    target = into.words.setdefault(locale, {})
    for key, value, line in _pairs(path, _compose(path, into.problems), into.problems):
        if key in RETIRED_LISTS:
            text = f"word list {key!r} is no longer used: add examples of what people write to nlu.yml"
            into.problems.append(Problem(path, line, text))
            continue
        if key == AREAS:
            for old in [k for k in target if k.startswith(f"{AREAS}:")]:
                del target[old]
            into.area_ids.clear()
        if key in (ANSWERS, PLACES, AREAS):
            _read_answers(path, value, target, into, key)
            continue
        if key not in WORD_LISTS:
            known = ", ".join(sorted(WORD_LISTS | {ANSWERS}))
            into.problems.append(Problem(path, line, f"unknown word list {key!r} (known: {known})"))
            continue
        if not isinstance(value, yaml.SequenceNode) or not all(
            isinstance(item, yaml.ScalarNode) and str(item.value).strip() for item in value.value
        ):
            into.problems.append(Problem(path, line, f"word list {key!r} must be a list of words or phrases"))
            continue
        entries = tuple(str(item.value).strip() for item in value.value)
        target[key] = tuple(dict.fromkeys((*target.get(key, ()), *entries))) if key in EXTENDED_LISTS else entries


def _read_answers(path: Path, node: yaml.Node, target: dict[str, tuple[str, ...]], into: Sources, group: str) -> None:
    """``answers:`` (an option's label id -> words), ``places:`` (a borough -> neighbourhoods) or
    ``areas:`` (an area -> boroughs)."""
    for name, value, line in _pairs(path, node, into.problems):
        if not isinstance(value, yaml.SequenceNode) or not all(
            isinstance(item, yaml.ScalarNode) and str(item.value).strip() for item in value.value
        ):
            into.problems.append(Problem(path, line, f"{group} for {name!r} must be a list of words or phrases"))
            continue
        target[f"{group}:{name}"] = tuple(str(item.value).strip() for item in value.value)
        {ANSWERS: into.answer_ids, PLACES: into.place_ids, AREAS: into.area_ids}[group].append((name, path, line))


def _read_services(path: Path, locale: str, into: Sources) -> None:
    node = _compose(path, into.problems)
    if node is None:
        return
    if not isinstance(node, yaml.SequenceNode):
        into.problems.append(Problem(path, _line(node), "expected a list of services, each starting with '- id:'"))
        return
    target = into.services.setdefault(locale, {})
    for item in node.value:
        entry = {key: (value, line) for key, value, line in _pairs(path, item, into.problems)}
        line = _line(item)
        for key, (_, key_line) in entry.items():
            if key not in SERVICE_FIELDS:
                into.problems.append(Problem(path, key_line, f"unknown service field {key!r}"))
            elif locale != "en" and key not in SERVICE_WORDS:
                text = (
                    f"service field {key!r} is a fact, the same in every language: give it once, in "
                    "en/services.yaml (here only name, for and hours are read)"
                )
                into.problems.append(Problem(path, key_line, text))
        raw = {k: yaml.safe_load(yaml.serialize(v)) for k, (v, _) in entry.items() if k in SERVICE_FIELDS}
        service_id = raw.get("id")
        if not isinstance(service_id, str) or not service_id:
            into.problems.append(Problem(path, line, "every service needs an 'id'"))
            continue
        if raw.get("remove") is True:
            target.pop(service_id, None)
            continue
        # A translation changes only what it gives; the rest comes from the English entry.
        base = target.get(service_id) or into.services.get("en", {}).get(service_id)
        merged = _service(path, line, raw, base, into.problems)
        if merged is not None:
            target[service_id] = merged


def _service(
    path: Path, line: int, raw: dict[str, object], base: Service | None, problems: list[Problem]
) -> Service | None:
    def text(key: str, default: str) -> str:
        value = raw.get(key, default)
        if value is None:
            return ""
        if not isinstance(value, str | int):
            problems.append(Problem(path, line, f"service field {key!r} must be text"))
            return default
        return str(value)

    name = text("name", base.name if base else "")
    purpose = text("for", base.purpose if base else "")
    if not name or not purpose:
        problems.append(Problem(path, line, f"service {raw.get('id')!r} needs a 'name' and a 'for'"))
        return None
    checked = _date(path, line, raw.get("last_checked", base.last_checked if base else None), problems)
    languages = raw.get("languages", list(base.languages) if base else [])
    rules, closed = _opening(path, line, raw, base, problems)
    return Service(
        id=str(raw["id"]),
        name=name,
        purpose=purpose,
        phone=text("phone", base.phone if base else ""),
        text=text("text", base.text if base else ""),
        email=text("email", base.email if base else ""),
        web=text("web", base.web if base else ""),
        address=text("address", base.address if base else ""),
        hours=text("hours", base.hours if base else ""),
        languages=tuple(map(str, languages)) if isinstance(languages, list) else (),
        last_checked=checked,
        source=text("source", base.source if base else ""),
        open=tuple(rules),
        closed_on=tuple(closed),
        path=path,
        line=line,
    )


def _read_examples(path: Path, locale: str, into: Sources) -> None:
    """Rasa NLU training data (``version: "3.1"``, ``nlu:`` → ``- intent:`` / ``examples: |``).
    An overlay's examples are learned as well as the defaults, never instead of them."""
    target = into.examples.setdefault(locale, [])
    for key, value, line in _pairs(path, _compose(path, into.problems), into.problems):
        if key == "version":
            continue
        if key != "nlu":
            into.problems.append(Problem(path, line, f"{key!r} is not used here: only 'nlu' examples are read"))
            continue
        if not isinstance(value, yaml.SequenceNode):
            into.problems.append(Problem(path, line, "'nlu' must be a list of '- intent:' entries"))
            continue
        for item in value.value:
            target.extend(_intent_examples(path, locale, item, into))


def _intent_examples(path: Path, locale: str, item: yaml.Node, into: Sources) -> Iterator[Example]:
    """The examples of one ``- intent:`` entry, reporting what is wrong with it."""
    entry = {k: (v, ln) for k, v, ln in _pairs(path, item, into.problems)}
    if "intent" not in entry:
        kinds = ", ".join(sorted(entry)) or "nothing"
        into.problems.append(Problem(path, _line(item), f"only '- intent:' entries are read here, not {kinds}"))
        return
    intent_node, intent_line = entry["intent"]
    intent = str(intent_node.value) if isinstance(intent_node, yaml.ScalarNode) else ""
    if intent not in INTENT_TARGETS:
        known = ", ".join(sorted(INTENT_TARGETS))
        into.problems.append(Problem(path, intent_line, f"unknown intent {intent!r} (known: {known})"))
        return
    examples = entry.get("examples")
    if examples is None or not isinstance(examples[0], yaml.ScalarNode):
        into.problems.append(Problem(path, intent_line, f"intent {intent!r} needs 'examples: |' lines"))
        return
    node = examples[0]
    # A block scalar's text starts on the line after its "|".
    first = _line(node) + (1 if node.style in ("|", ">") else 0)
    for offset, raw in enumerate(str(node.value).split("\n")):
        text = raw.strip()
        if not text:
            continue
        if not text.startswith("- ") or not text[2:].strip():
            message = f"an example must be a line starting with '- ' (intent {intent!r})"
            into.problems.append(Problem(path, first + offset, message))
            continue
        yield Example(text[2:].strip(), intent, locale, str(path), first + offset)


def read_examples(path: Path, locale: str) -> tuple[list[Example], list[Problem]]:
    """Examples from one Rasa NLU file (a held-out test set, say), with any problems found."""
    sources = Sources()
    _read_examples(path, locale, sources)
    return sources.examples.get(locale, []), sources.problems


def _date(path: Path, line: int, value: object, problems: list[Problem]) -> dt.date | None:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    elif value is None or isinstance(value, dt.date):
        return value
    problems.append(Problem(path, line, "last_checked must be a date like 2026-11-01"))
    return None


def _opening(
    path: Path, line: int, raw: dict[str, object], base: Service | None, problems: list[Problem]
) -> tuple[list[str], list[dt.date]]:
    """A service's ``open:`` rules and ``closed_on:`` dates, checked."""
    rules = raw.get("open", list(base.open) if base else [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        problems.append(Problem(path, line, "open must be a list like ['mon-fri 09:00-17:00'] or ['always']"))
        rules = []
    for rule in rules:
        wrong = rule_problem(rule)
        if wrong:
            problems.append(Problem(path, line, f"service {raw.get('id')!r}: {wrong}"))
    closed = raw.get("closed_on", list(base.closed_on) if base else [])
    if not isinstance(closed, list) or not all(isinstance(d, dt.date) for d in closed):
        problems.append(Problem(path, line, "closed_on must be a list of dates like 2026-12-25"))
        closed = []
    return rules, closed


def _read_questions(path: Path, into: Sources) -> None:
    """``order:`` and ``off:`` lists of report question names; the consent steps are not among them."""
    for key, value, line in _pairs(path, _compose(path, into.problems), into.problems):
        if key not in ("order", "off"):
            into.problems.append(Problem(path, line, f"unknown setting {key!r}: use 'order' and 'off'"))
            continue
        if not isinstance(value, yaml.SequenceNode) or not all(isinstance(i, yaml.ScalarNode) for i in value.value):
            into.problems.append(Problem(path, line, f"{key!r} must be a list of question names"))
            continue
        names = tuple(str(item.value).strip() for item in value.value)
        for item, name in zip(value.value, names, strict=True):
            if name.startswith("consent") or name in ("review", "keep", "send", "reply"):
                into.problems.append(Problem(path, _line(item), f"{name!r}: the consent steps cannot be changed"))
            elif name not in QUESTION_FIELDS:
                known = ", ".join(QUESTION_FIELDS)
                into.problems.append(Problem(path, _line(item), f"unknown report question {name!r} (known: {known})"))
        valid = tuple(n for n in names if n in QUESTION_FIELDS)
        if key == "order":
            into.question_order = valid
        else:
            into.questions_off = valid
    if set(QUESTION_FIELDS) <= set(into.questions_off):
        into.problems.append(Problem(path, 1, "every report question is turned off: keep at least one"))


def read_folder(folder: Path, into: Sources) -> None:
    """Read every locale folder under ``folder`` into ``into``, later folders overriding earlier."""
    if not folder.is_dir():
        into.problems.append(Problem(folder, 1, "this responses folder does not exist"))
        return
    if (folder / "questions.yaml").is_file():
        _read_questions(folder / "questions.yaml", into)
    for locale_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        locale = locale_dir.name
        for name in sorted(p.name for p in locale_dir.iterdir() if p.is_file()):
            path = locale_dir / name
            if name == "messages.yaml":
                _read_messages(path, locale, into)
            elif name == "words.yaml":
                _read_words(path, locale, into)
            elif name == "services.yaml":
                _read_services(path, locale, into)
            elif name.startswith("nlu") and name.endswith((".yml", ".yaml")):
                _read_examples(path, locale, into)
            elif name.endswith((".yaml", ".yml")):
                into.problems.append(
                    Problem(path, 1, "unknown file: expected messages.yaml, words.yaml, services.yaml or nlu*.yml")
                )


def read_answer_cases(path: Path, locale: str) -> tuple[list[AnswerCase], dt.datetime]:
    """Typed answers inside the report, from a held-out file (``today:`` and ``answers:``, each
    ``step``, ``text`` and ``expect``), with the moment they are judged at (noon of ``today``)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    today = raw.get("today")
    day = today if isinstance(today, dt.date) else dt.date.fromisoformat(str(today))
    cases = [
        AnswerCase(str(item["step"]), str(item["text"]), tuple(str(e) for e in item["expect"]), locale)
        for item in raw.get("answers", [])
    ]
    return cases, dt.datetime.combine(day, dt.time(14, 0))
