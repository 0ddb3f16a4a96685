"""How well the understanding step understands: like ``rasa test nlu``, for our classifier and
our safety policy.

Two measures per intent and language:

- the classifier's own precision, recall and F1 (its likeliest intent against the label);
- for safety intents, *help recall*: how often the policy (:func:`flows.understanding.decide`)
  gives that help in the first reply. This is what a person notices, and it is recall-first,
  so it is at least the classifier's recall.

And the false alarms that matter: messages that are not about an overdose given overdose first
aid, and messages not about suicide given the suicide screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flows.definitions import INTENT_TARGETS
from flows.effects import StoreReport
from flows.engine import ACTION_SCREENS, Engine
from flows.events import Text
from flows.model import Step
from flows.state import Answer, State
from flows.understanding import SAFETY, URGENT, AnswerCase, Example, Policy, Understanding, decide

# What a first reply helps with, by the message ids it says.
_HELPS = {
    ACTION_SCREENS.get(target, target): intent
    for intent, target in INTENT_TARGETS.items()
    if intent in SAFETY or intent.startswith("advice_")
}
_PROMPTS = {"emergency": "emergency.guidance", "crisis": "crisis.guidance"}


def first_reply(engine: Engine) -> Callable[[Example, Understanding], tuple[str, ...]]:
    """What the engine's real first reply to an example helps with (its whole routing, word lists
    included), in order: a fresh conversation, the example as its first message."""
    by_message = {_PROMPTS.get(step, engine.steps[step].prompt): intent for step, intent in _HELPS.items()}

    def helped(example: Example, _: Understanding) -> tuple[str, ...]:
        replies = engine.handle(State(), Text(example.text)).replies
        return tuple(by_message[r.message] for r in replies if r.message in by_message)

    return helped


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts for one intent in one language (or ``*`` for all languages)."""

    intent: str
    locale: str
    support: int = 0
    predicted: int = 0
    correct: int = 0
    helped: int = 0  # safety intents: the first reply gave this help

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def help_recall(self) -> float:
        return self.helped / self.support if self.support else 0.0


@dataclass(frozen=True, slots=True)
class Miss:
    example: Example
    got: tuple[str, ...]  # what the first reply answered ("triage" when it asked instead)


@dataclass
class Report:
    figures: dict[tuple[str, str], Figures] = field(default_factory=dict)
    confused: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[Miss] = field(default_factory=list)
    overdose_false_alarms: list[Example] = field(default_factory=list)
    suicide_false_alarms: list[Example] = field(default_factory=list)
    # Messages about no harm at all (advice, the report, "i dont want to give my name") given
    # overdose first aid or the suicide screen: the false alarms that drive people away.
    benign_false_alarms: list[tuple[Example, str]] = field(default_factory=list)
    language_right: int = 0
    total: int = 0

    def get(self, intent: str, locale: str = "*") -> Figures:
        return self.figures.get((intent, locale), Figures(intent, locale))

    @property
    def locales(self) -> list[str]:
        return sorted({locale for _, locale in self.figures if locale != "*"})

    @property
    def intents(self) -> list[str]:
        return sorted({intent for intent, _ in self.figures}, key=_intent_order)


def _intent_order(intent: str) -> tuple[int, str]:
    return (SAFETY.index(intent) if intent in SAFETY else len(SAFETY), intent)


def score(
    examples: Sequence[Example],
    understood: Sequence[Understanding],
    policy: Policy | None = None,
    helped: Callable[[Example, Understanding], tuple[str, ...]] | None = None,
) -> Report:
    """Compare what was understood with what each example means. ``helped`` says what the first
    reply helps with (:func:`first_reply`); by default, what the policy decides."""
    report = Report()
    counts: dict[tuple[str, str], dict[str, int]] = {}

    def bump(intent: str, locale: str, name: str) -> None:
        for where in ((intent, locale), (intent, "*")):
            counts.setdefault(where, {"support": 0, "predicted": 0, "correct": 0, "helped": 0})[name] += 1

    for example, found in zip(examples, understood, strict=True):
        report.total += 1
        report.language_right += found.language == example.locale
        predicted = found.intent
        decision = decide(found, policy or Policy())
        answered = helped(example, found) if helped is not None else decision.intents
        bump(example.intent, example.locale, "support")
        bump(predicted, example.locale, "predicted")
        if predicted == example.intent:
            bump(example.intent, example.locale, "correct")
        else:
            report.confused[(example.intent, predicted)] += 1
        if example.intent in answered:
            bump(example.intent, example.locale, "helped")
        elif example.intent in SAFETY:
            report.misses.append(Miss(example, answered or ("triage", *decision.likely[:2])))
        if example.intent != "overdose" and "overdose" in answered:
            report.overdose_false_alarms.append(example)
        if example.intent != "suicide" and "suicide" in answered:
            report.suicide_false_alarms.append(example)
        urgent = [i for i in ("overdose", "suicide") if i in answered]
        if example.intent not in SAFETY and urgent:
            report.benign_false_alarms.append((example, urgent[0]))
    report.figures = {key: Figures(key[0], key[1], **value) for key, value in counts.items()}
    return report


def cross_validate(
    examples: Sequence[Example],
    train: Callable[[Sequence[Example]], Callable[[Sequence[str]], list[Understanding]]],
    folds: int = 5,
    policy: Policy | None = None,
) -> Report:
    """Each example is understood by a model that never saw it: ``folds`` models, each trained
    on the rest. Folds are stratified by intent and language, and fixed (no randomness)."""
    buckets: dict[tuple[str, str], list[int]] = {}
    for index, example in enumerate(examples):
        buckets.setdefault((example.intent, example.locale), []).append(index)
    fold_of = [0] * len(examples)
    for indices in buckets.values():
        for position, index in enumerate(indices):
            fold_of[index] = position % folds
    ordered: list[Example] = []
    found: list[Understanding] = []
    for fold in range(folds):
        held = [e for e, f in zip(examples, fold_of, strict=True) if f == fold]
        rest = [e for e, f in zip(examples, fold_of, strict=True) if f != fold]
        understand = train(rest)
        ordered.extend(held)
        found.extend(understand([e.text for e in held]))
    return score(ordered, found, policy)


def _help_lines(report: Report) -> list[str]:
    """How often the first reply gave the help needed, urgent and all harms, per language."""
    lines = []
    for locale in ["*", *report.locales]:
        urgent_support = sum(report.get(i, locale).support for i in URGENT)
        urgent_helped = sum(report.get(i, locale).helped for i in URGENT)
        harm_support = sum(report.get(i, locale).support for i in SAFETY)
        harm_helped = sum(report.get(i, locale).helped for i in SAFETY)
        if harm_support:
            lines.append(
                f"first reply gave the help needed ({'all languages' if locale == '*' else locale}): "
                f"urgent {urgent_helped}/{urgent_support} ({urgent_helped / max(urgent_support, 1):.1%}), "
                f"all harms {harm_helped}/{harm_support} ({harm_helped / harm_support:.1%})"
            )
    return lines


def render(report: Report, title: str, confused: int = 10, misses: bool = False) -> str:
    """The report as a plain-text table, like ``rasa test nlu`` prints."""
    lines = [title, ""]
    for locale in ["*", *report.locales]:
        name = "all languages" if locale == "*" else locale
        lines.append(f"{name}:")
        lines.append(f"  {'intent':<24}{'n':>5}{'prec':>7}{'recall':>8}{'f1':>7}{'help':>7}")
        for intent in report.intents:
            figures = report.get(intent, locale)
            if not figures.support:
                continue
            helped = f"{figures.help_recall:>7.0%}" if intent in SAFETY else f"{'':>7}"
            lines.append(
                f"  {intent:<24}{figures.support:>5}{figures.precision:>7.0%}{figures.recall:>8.0%}"
                f"{figures.f1:>7.0%}{helped}"
            )
        lines.append("")
    lines.append(f"language told apart: {report.language_right}/{report.total}")
    lines.append(
        f"overdose first aid for a message about something else: {len(report.overdose_false_alarms)}; "
        f"suicide help for a message about something else: {len(report.suicide_false_alarms)}"
    )
    about_nothing = sum(report.get(i).support for i in report.intents if i not in SAFETY)
    lines.append(
        f"messages about no harm given urgent help (benign false alarms): "
        f"{len(report.benign_false_alarms)} of {about_nothing}"
        + "".join(
            f"; {locale} {sum(1 for e, _ in report.benign_false_alarms if e.locale == locale)}"
            for locale in report.locales
        )
    )
    lines.extend(_help_lines(report))
    lines.append("")
    lines.append("most confused (meant -> understood as):")
    for (meant, got), count in report.confused.most_common(confused):
        lines.append(f"  {count:>4}  {meant} -> {got}")
    if misses:
        lines.append("")
        lines.append("safety examples whose first reply missed their help:")
        for miss in report.misses:
            example = miss.example
            lines.append(f"  [{example.locale}] {example.intent} -> {', '.join(miss.got)}: {example.text}")
        for example in report.overdose_false_alarms:
            lines.append(f"  [{example.locale}] {example.intent} -> overdose first aid: {example.text}")
        for example in report.suicide_false_alarms:
            lines.append(f"  [{example.locale}] {example.intent} -> suicide help: {example.text}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class AnswerResult:
    case: AnswerCase
    got: str  # what happened, in the terms of ``expect``
    right: bool


# Answers that bring a question on screen: what came before it in a report.
_BEFORE: dict[str, dict[str, Answer]] = {
    "report.borough": {"what": ("assault",), "where": ("london",)},
    "review": {"what": ("assault",), "when": ("week",)},
    "consent.keep": {"what": ("assault",), "when": ("week",)},
    "consent.send": {"what": ("assault",), "when": ("week",), "consent.keep": ("yes",)},
    "consent.reply": {"what": ("assault",), "consent.keep": ("yes",), "consent.send": ("support",)},
}


def answer_in_report(engine: Engine, case: AnswerCase) -> AnswerResult:
    """Type ``case.text`` at its question, in its language, and judge what the engine did."""
    answers = _BEFORE.get(case.step, {} if case.step in ("report.intro", "report.what") else {"what": ("assault",)})
    state = State(locale=case.locale, step=case.step, answers=answers)
    outcome = engine.handle(state, Text(case.text))
    stored = next((e for e in outcome.effects if isinstance(e, StoreReport)), None)
    if stored is not None and case.step == "consent.reply":
        got = "yes" if stored.allow_reply else "no"
    elif stored is not None and case.step == "consent.send":
        got = stored.send_to or "no"
    else:
        got = _what_happened(engine, case.step, state, outcome.state)
    expect = set(case.expect)
    # At a question taking several, none of them, done with nothing ticked and skip all move on
    # with no answer kept.
    moved_on = {"none", "done", "skip"}
    multi = engine.steps[case.step].kind.name == "MULTI"
    right = got == " ".join(sorted(expect)) or (expect <= moved_on and got in moved_on and (multi or got == "skip"))
    return AnswerResult(case, got, right)


def _what_happened(engine: Engine, step_key: str, before: State, after: State) -> str:
    step = engine.steps[step_key]
    return _where_it_went(engine, step, before, after) or _what_was_kept(step, before, after)


def _where_it_went(engine: Engine, step: Step, before: State, after: State) -> str:
    """Answers judged by the screen they lead to: the menu, the report's start, the review's
    choices, the question before."""
    if after.step == "menu":
        return "erase" if step.key == "review" and not after.answers else "menu"
    if step.key == "report.intro":
        return "start" if after.step.startswith("report.") and after.step != step.key else "-"
    if step.key == "review":
        return {"consent.keep": "confirm", "review.change": "change", "review.remove": "remove"}.get(after.step, "-")
    if after.step != step.key and after.step == engine.question_before(step, before).removeprefix("@"):
        return "back"
    return ""


def _what_was_kept(step: Step, before: State, after: State) -> str:
    """Answers judged by what was kept: options, a borough, or nothing (skipped)."""
    field = step.field or ""
    borough = after.answers.get("borough")
    if step.key in ("report.where", "report.borough") and isinstance(borough, str):
        return " ".join(sorted([f"borough:{borough}", *(["london"] if step.key == "report.where" else [])]))
    if after.picked and after.step == step.key:
        return " ".join(sorted(after.picked))
    value = after.answers.get(field)
    if isinstance(value, tuple) and value != before.answers.get(field):
        return " ".join(sorted(value))
    if after.step != step.key and field and field not in after.answers:
        return "skip"
    return "-"


def in_report_rate(results: Sequence[AnswerResult]) -> str:
    lines = ["typed answers inside the report, understood:"]
    for locale in sorted({r.case.locale for r in results}):
        mine = [r for r in results if r.case.locale == locale]
        right = sum(r.right for r in mine)
        lines.append(f"  {locale}: {right}/{len(mine)} ({right / len(mine):.0%})")
    right = sum(r.right for r in results)
    lines.append(f"  all: {right}/{len(results)} ({right / len(results):.0%})" if results else "  none tested")
    return "\n".join(lines)
