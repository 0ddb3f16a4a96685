"""Where a conversation stands. Immutable; serialised to JSON and encrypted by ``storage/``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

Answer = tuple[str, ...] | str
STATE_VERSION = 1


def _frozen(answers: Mapping[str, Answer] | None = None) -> Mapping[str, Answer]:
    return MappingProxyType(dict(answers or {}))


@dataclass(frozen=True, slots=True)
class State:
    """A conversation's position.

    - ``step``: the step whose question is waiting for an answer ("" when nothing is asked).
    - ``answers``: report answers so far: option keys (tuple) or the person's words (str).
    - ``picked``: options ticked so far at a step that takes several.
    - ``resume``: the step to go back to after an interruption (emergency guidance).
    - ``editing``: a report answer is being changed from the review; go back there after it.
    - ``relay``: the report whose support worker last wrote; the person's answer goes to them.
    - ``page``: which page of a long screen is showing (pages are split by a ``---`` line).
    - ``likely``: what the triage question offers (intents), when we were not sure what was meant.
    - ``detected``: the language was just taken from what the person wrote; offer a one-tap switch.
    - ``resume_picked``: what was ticked at the question ``resume`` names, kept for coming back.
    """

    locale: str = "en"
    step: str = ""
    answers: Mapping[str, Answer] = field(default_factory=_frozen)
    picked: tuple[str, ...] = ()
    resume: str = ""
    editing: bool = False
    relay: str = ""
    page: int = 0
    likely: tuple[str, ...] = ()
    detected: bool = False
    told_unchecked: bool = False  # told once that the translation is not yet checked
    resume_picked: tuple[str, ...] = ()
    answer: str = ""  # an answer to staff, typed, waiting for "send"
    unlocked: str = ""  # the report the person's code opened in this conversation
    unlocked_what: tuple[str, ...] = ()
    unlocked_sent: bool = False
    unlocked_reply: bool = False
    unlocked_named: int = 0  # people named on the unlocked report, for matching
    pending_send: str = ""  # the recipient chosen later, before "may they reply?"

    def evolve(self, **changes: Any) -> State:
        if "answers" in changes:
            changes["answers"] = _frozen(changes["answers"])
        return replace(self, **changes)

    def with_answer(self, name: str, value: Answer | None) -> State:
        answers = dict(self.answers)
        if value is None or value == () or value == "":
            answers.pop(name, None)
        else:
            answers[name] = value
        return self.evolve(answers=answers, picked=())

    @property
    def holds_content(self) -> bool:
        """True when anything the person said is held: then it is a draft worth keeping."""
        return bool(self.answers) or bool(self.picked)

    def to_json(self) -> bytes:
        body = {
            "v": STATE_VERSION,
            "locale": self.locale,
            "step": self.step,
            "answers": {k: list(v) if isinstance(v, tuple) else v for k, v in self.answers.items()},
            "picked": list(self.picked),
            "resume": self.resume,
            "editing": self.editing,
            "relay": self.relay,
            "page": self.page,
            "likely": list(self.likely),
            "detected": self.detected,
            "told_unchecked": self.told_unchecked,
            "resume_picked": list(self.resume_picked),
            "answer": self.answer,
            "unlocked": self.unlocked,
            "unlocked_what": list(self.unlocked_what),
            "unlocked_sent": self.unlocked_sent,
            "unlocked_reply": self.unlocked_reply,
            "unlocked_named": self.unlocked_named,
            "pending_send": self.pending_send,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("v") != STATE_VERSION:
            return cls()
        answers: dict[str, Answer] = {}
        for key, value in dict(body.get("answers", {})).items():
            answers[str(key)] = tuple(map(str, value)) if isinstance(value, list) else str(value)
        return cls(
            locale=str(body.get("locale", "en")),
            step=str(body.get("step", "")),
            answers=_frozen(answers),
            picked=tuple(map(str, body.get("picked", []))),
            resume=str(body.get("resume", "")),
            editing=bool(body.get("editing", False)),
            relay=str(body.get("relay", "")),
            page=int(body.get("page", 0)),
            likely=tuple(map(str, body.get("likely", []))),
            detected=bool(body.get("detected", False)),
            told_unchecked=bool(body.get("told_unchecked", False)),
            resume_picked=tuple(map(str, body.get("resume_picked", []))),
            answer=str(body.get("answer", "")),
            unlocked=str(body.get("unlocked", "")),
            unlocked_what=tuple(map(str, body.get("unlocked_what", []))),
            unlocked_sent=bool(body.get("unlocked_sent", False)),
            unlocked_reply=bool(body.get("unlocked_reply", False)),
            unlocked_named=int(body.get("unlocked_named", 0)),
            pending_send=str(body.get("pending_send", "")),
        )
