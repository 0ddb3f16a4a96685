"""The pieces a flow is declared with, and the checks run when flows are built.

Building a :class:`FlowSet` with a dangling target, a duplicate step key, a step with no way
out, or a message id missing from the English responses raises :class:`FlowError` naming
every problem at once — like python-telegram-bot's ConversationHandler refusing impossible
configurations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum


class FlowError(ValueError):
    """A flow declaration that cannot work. The message lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("flows are not valid:\n" + "\n".join(f"- {p}" for p in self.problems))


class Kind(Enum):
    MENU = "menu"  # options that lead somewhere; typed free text is understood as well as we can
    CHOICE = "choice"  # a report question answered with one option
    MULTI = "multi"  # a report question answered with one or more options
    TEXT = "text"  # a question answered in the person's own words


# Targets that are not steps: things the engine does. ``next``/``goto`` may name these.
ACTIONS = frozenset(
    {
        "@cancel",
        "@check",
        "@continue_report",
        "@crisis",
        "@delete",
        "@drop_answer",
        "@emergency",
        "@erase",
        "@exit",
        "@finish",
        "@greet",
        "@hold_answer",
        "@other",
        "@relay",
        "@report",
        "@restart_report",
        "@resume",
        "@review",
        "@send_later",
    }
)
# Conditions a step or option may depend on.
# "recipients": someone can be offered this report; "no_recipients": no one is set up at all;
# "soit": a SOIT officer is among those offered; "resume": there is a question to go back to.
CONDITIONS = frozenset({"recipients", "no_recipients", "soit", "resume"})
# Options computed when the step is shown.
DYNAMIC = frozenset({"locales", "fields", "answered", "likely", "recipients", "unlocked"})


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str
    goto: str | None = None
    only_if: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One screen. Report questions have a ``field`` and a ``summary_label``."""

    key: str
    prompt: str
    kind: Kind = Kind.MENU
    options: tuple[Option, ...] = ()
    next: str | None = None
    field: str | None = None
    summary_label: str | None = None
    skippable: bool = False
    max_length: int = 0
    validate: str | None = None
    dynamic: str | None = None
    only_if: str | None = None
    # Other words for the prompt under a condition: (condition, message id), the first that holds.
    variants: tuple[tuple[str, str], ...] = ()

    @property
    def is_question(self) -> bool:
        return self.kind is not Kind.MENU

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


@dataclass(frozen=True, slots=True)
class Flow:
    """A named group of steps; ``diagram`` is the Mermaid file kept beside it for reviewers."""

    name: str
    steps: tuple[Step, ...]
    diagram: str | None = None


class FlowSet(Mapping[str, Step]):
    """Every step of every flow, checked once when built."""

    def __init__(
        self,
        flows: Iterable[Flow],
        has_message: Callable[[str], bool],
        intents: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.flows = tuple(flows)
        self._steps: dict[str, Step] = {}
        problems: list[str] = []
        for flow in self.flows:
            for step in flow.steps:
                if step.key in self._steps:
                    problems.append(f"duplicate step key {step.key!r} in flow {flow.name!r}")
                self._steps[step.key] = step
        for flow in self.flows:
            for step in flow.steps:
                problems.extend(self._check(flow.name, step, has_message))
        for intent, target in (intents or {}).items():
            if target.startswith("@") and target not in ACTIONS:
                problems.append(f"intent {intent!r} goes to unknown action {target!r}")
            elif not target.startswith("@") and target not in self._steps:
                problems.append(f"intent {intent!r} goes to {target!r}, which does not exist")
        for intent, label in (labels or {}).items():
            if intents is not None and intent not in intents:
                problems.append(f"the triage question offers unknown intent {intent!r}")
            if not has_message(label):
                problems.append(
                    f"message id {label!r} offered for intent {intent!r} is missing from the English responses"
                )
        if problems:
            raise FlowError(problems)

    def _check(self, flow: str, step: Step, has_message: Callable[[str], bool]) -> Iterator[str]:
        where = f"step {step.key!r} (flow {flow!r})"
        ids = [step.prompt, *(o.label for o in step.options), *(m for _, m in step.variants)]
        if step.summary_label:
            ids.append(step.summary_label)
        for message_id in ids:
            if not has_message(message_id):
                yield f"message id {message_id!r} used by {where} is missing from the English responses"
        targets = [step.next, *(o.goto for o in step.options)]
        for target in targets:
            if target is None:
                continue
            if target.startswith("@"):
                if target not in ACTIONS:
                    yield f"{where} goes to unknown action {target!r}"
            elif target not in self._steps:
                yield f"{where} goes to {target!r}, which does not exist"
        keys = [o.key for o in step.options]
        for key in {k for k in keys if keys.count(k) > 1}:
            yield f"{where} has the option key {key!r} twice"
        for key in {"skip", "done", "leave", "back", "next_page"} & set(keys):
            yield f"{where} uses the reserved option key {key!r}"
        for condition in [step.only_if, *(o.only_if for o in step.options), *(c for c, _ in step.variants)]:
            if condition is not None and condition not in CONDITIONS:
                yield f"{where} depends on unknown condition {condition!r}"
        if step.dynamic is not None and step.dynamic not in DYNAMIC:
            yield f"{where} asks for unknown dynamic options {step.dynamic!r}"
        if step.kind is Kind.MENU and not step.options and step.dynamic is None:
            yield f"{where} is a menu with no options: a dead end"
        if step.kind in (Kind.CHOICE, Kind.MULTI) and not step.options and step.dynamic is None:
            yield f"{where} is a question with no options to choose"
        if step.is_question and step.next is None and not all(o.goto for o in step.options):
            yield f"{where} has no 'next' for answers that have no target"
        if step.kind is Kind.TEXT and step.max_length <= 0:
            yield f"{where} takes typed text but sets no max_length"
        if step.field is not None and step.summary_label is None and not step.field.startswith("consent"):
            yield f"{where} answers field {step.field!r} but has no summary_label"
        if step.only_if is not None and step.next is None:
            yield f"{where} can be skipped (only_if) but has no 'next' to skip to"

    def __getitem__(self, key: str) -> Step:
        return self._steps[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def questions(self) -> tuple[Step, ...]:
        """Report questions, in the order declared: the order of the summary."""
        return tuple(s for s in self._steps.values() if s.summary_label is not None)

    def flow_of(self, key: str) -> str:
        return next(f.name for f in self.flows if any(s.key == key for s in f.steps))
