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
MENU = "menu"  # the main menu's step: where every flow ends
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
        "@identify",
        "@match_done",
        "@match_police",
        "@match_talk",
        "@other",
        "@relay",
        "@report",
        "@restart_report",
        "@resume",
        "@review",
        "@send_later",
        "@unname",
    }
)
# Conditions a step or option may depend on.
# "recipients": someone can be offered this report; "no_recipients": no one is set up at all;
# "soit": a SOIT officer is among those offered; "resume": there is a question to go back to;
# "may_name": matching is set up and the report unlocked names a harm; "named": it names someone.
CONDITIONS = frozenset({"recipients", "no_recipients", "nothing_to_send", "soit", "resume", "may_name", "named"})
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
                where = f"step {step.key!r} (flow {flow.name!r})"
                problems.extend(self._check_words(where, step, has_message))
                problems.extend(self._check_targets(where, step))
                problems.extend(self._check_options(where, step))
                problems.extend(self._check_shape(where, step))
        problems.extend(self._check_intents(intents or {}, labels or {}, has_message))
        if problems:
            raise FlowError(problems)

    def _target_problem(self, target: str) -> str | None:
        if target.startswith("@"):
            return None if target in ACTIONS else f"unknown action {target!r}"
        return None if target in self._steps else f"{target!r}, which does not exist"

    def _check_intents(
        self, intents: Mapping[str, str], labels: Mapping[str, str], has_message: Callable[[str], bool]
    ) -> Iterator[str]:
        for intent, target in intents.items():
            problem = self._target_problem(target)
            if problem:
                yield f"intent {intent!r} goes to {problem}"
        for intent, label in labels.items():
            if intents and intent not in intents:
                yield f"the triage question offers unknown intent {intent!r}"
            if not has_message(label):
                yield f"message id {label!r} offered for intent {intent!r} is missing from the English responses"

    @staticmethod
    def _check_words(where: str, step: Step, has_message: Callable[[str], bool]) -> Iterator[str]:
        ids = [step.prompt, *(o.label for o in step.options), *(m for _, m in step.variants)]
        ids.extend([step.summary_label] if step.summary_label else [])
        for message_id in ids:
            if not has_message(message_id):
                yield f"message id {message_id!r} used by {where} is missing from the English responses"

    def _check_targets(self, where: str, step: Step) -> Iterator[str]:
        for target in [step.next, *(o.goto for o in step.options)]:
            problem = self._target_problem(target) if target is not None else None
            if problem:
                yield f"{where} goes to {problem}"

    @staticmethod
    def _check_options(where: str, step: Step) -> Iterator[str]:
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

    @staticmethod
    def _check_shape(where: str, step: Step) -> Iterator[str]:
        """Dead ends and questions that cannot be answered or have nowhere to go."""
        no_options = not step.options and step.dynamic is None
        rules = (
            (step.kind is Kind.MENU and no_options, "is a menu with no options: a dead end"),
            (step.kind in (Kind.CHOICE, Kind.MULTI) and no_options, "is a question with no options to choose"),
            (
                step.is_question and step.next is None and not all(o.goto for o in step.options),
                "has no 'next' for answers that have no target",
            ),
            (step.kind is Kind.TEXT and step.max_length <= 0, "takes typed text but sets no max_length"),
            (
                step.field is not None and step.summary_label is None and not step.field.startswith("consent"),
                f"answers field {step.field!r} but has no summary_label",
            ),
            (step.only_if is not None and step.next is None, "can be skipped (only_if) but has no 'next' to skip to"),
        )
        yield from (f"{where} {text}" for broken, text in rules if broken)

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
