"""The report questionnaire (DESIGN §4: every question optional, its order and which are asked
set by a charity) and the separate consent choices after the review (DESIGN §3), as data."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from flows.model import MENU, Flow, Kind, Option, Step

REPORT = Flow(
    name="report",
    diagram="report.mmd",
    steps=(
        Step(
            key="report.intro",
            prompt="report.intro",
            variants=(("no_recipients", "report.intro.keep_only"),),
            options=(
                Option("start", "report.intro.start", goto="report.what"),
                Option("menu", "option.not_now", goto=MENU),
            ),
        ),
        Step(
            key="report.unfinished",
            prompt="report.unfinished",
            options=(
                Option("continue", "report.unfinished.continue", goto="@continue_report"),
                Option("restart", "report.unfinished.restart", goto="@restart_report"),
                Option("menu", "option.menu", goto=MENU),
            ),
        ),
        Step(
            key="report.what",
            prompt="report.what",
            kind=Kind.MULTI,
            field="what",
            summary_label="summary.what",
            skippable=True,
            options=(
                Option("assault", "report.what.assault"),
                Option("drugged", "report.what.drugged"),
                Option("robbery", "report.what.robbery"),
                Option("threats", "report.what.threats"),
                Option("violence", "report.what.violence"),
                Option("other", "report.what.other"),
            ),
            next="report.when",
        ),
        Step(
            key="report.when",
            prompt="report.when",
            kind=Kind.CHOICE,
            field="when",
            summary_label="summary.when",
            skippable=True,
            options=(
                Option("today", "report.when.today"),
                Option("week", "report.when.week"),
                Option("month", "report.when.month"),
                Option("longer", "report.when.longer"),
            ),
            next="report.where",
        ),
        Step(
            key="report.where",
            prompt="report.where",
            kind=Kind.CHOICE,
            field="where",
            summary_label="summary.where",
            skippable=True,
            options=(
                Option("london", "report.where.london", goto="report.borough"),
                Option("elsewhere", "report.where.elsewhere"),
            ),
            next="report.substances",
        ),
        Step(
            key="report.borough",
            prompt="report.borough",
            kind=Kind.TEXT,
            field="borough",
            summary_label="summary.borough",
            skippable=True,
            max_length=60,
            validate="boroughs",
            next="report.substances",
        ),
        Step(
            key="report.substances",
            prompt="report.substances",
            kind=Kind.MULTI,
            field="substances",
            summary_label="summary.substances",
            skippable=True,
            options=(
                Option("g", "report.substances.g"),
                Option("meth", "report.substances.meth"),
                Option("meph", "report.substances.meph"),
                Option("ketamine", "report.substances.ketamine"),
                Option("alcohol", "report.substances.alcohol"),
                Option("other", "report.substances.other"),
            ),
            next="report.account",
        ),
        Step(
            key="report.account",
            prompt="report.account",
            kind=Kind.TEXT,
            field="account",
            summary_label="summary.account",
            skippable=True,
            max_length=1000,
            next="report.app",
        ),
        Step(
            key="report.app",
            prompt="report.app",
            kind=Kind.CHOICE,
            field="app",
            summary_label="summary.app",
            skippable=True,
            options=(Option("yes", "option.yes"), Option("no", "option.no")),
            next="report.elsewhere",
        ),
        Step(
            key="report.elsewhere",
            prompt="report.elsewhere",
            kind=Kind.CHOICE,
            field="elsewhere",
            summary_label="summary.elsewhere",
            skippable=True,
            options=(
                Option("no", "report.elsewhere.no"),
                Option("police", "report.elsewhere.police"),
                Option("galop", "report.elsewhere.galop"),
                Option("havens", "report.elsewhere.havens"),
                Option("other", "report.elsewhere.other"),
            ),
            next="report.wants",
        ),
        Step(
            key="report.wants",
            prompt="report.wants",
            kind=Kind.MULTI,
            field="wants",
            summary_label="summary.wants",
            skippable=True,
            options=(
                Option("information", "report.wants.information"),
                Option("talk", "report.wants.talk"),
                Option("third_party", "report.wants.third_party"),
                Option("police", "report.wants.police"),
            ),
            next="@review",
        ),
    ),
)

CONSENT = Flow(
    name="consent",
    diagram="report.mmd",
    steps=(
        Step(
            key="review",
            prompt="review.prompt",
            options=(
                Option("confirm", "review.confirm", goto="consent.keep"),
                Option("change", "review.change", goto="review.change"),
                Option("remove", "review.remove", goto="review.remove"),
                Option("erase", "review.erase", goto="@erase"),
            ),
        ),
        Step(key="review.change", prompt="review.change.prompt", dynamic="fields"),
        Step(key="review.remove", prompt="review.remove.prompt", dynamic="answered"),
        Step(
            key="consent.keep",
            prompt="consent.keep",
            kind=Kind.CHOICE,
            field="consent.keep",
            options=(Option("yes", "consent.keep.yes"), Option("no", "consent.keep.no")),
            next="consent.send",
        ),
        # Only recipients with a real destination are offered; a SOIT officer only for a
        # sexual offence or being drugged (EngineConfig.recipients).
        Step(
            key="consent.send",
            prompt="consent.send",
            variants=(("soit", "consent.send.soit_offered"),),
            kind=Kind.CHOICE,
            field="consent.send",
            only_if="recipients",
            dynamic="recipients",
            next="@finish",
        ),
        Step(
            key="consent.reply",
            prompt="consent.reply",
            kind=Kind.CHOICE,
            field="consent.reply",
            options=(Option("yes", "consent.reply.yes"), Option("no", "consent.reply.no")),
            next="@finish",
        ),
    ),
)


# The report's optional questions, by field, in their default order. The borough always follows
# "where" (and goes with it); the consent steps are not questions and can never be changed.
QUESTION_FIELDS = ("what", "when", "where", "substances", "account", "app", "elsewhere", "wants")
FOLLOW_UPS = {"where": ("borough",)}


def ordered_report(order: Sequence[str] | None = None, off: Collection[str] = ()) -> Flow:
    """The report with its questions in ``order`` and without those ``off``.

    Raises ValueError naming unknown fields or a questionnaire with no question left.
    """
    chosen = list(order) if order else list(QUESTION_FIELDS)
    unknown = sorted((set(chosen) | set(off)) - set(QUESTION_FIELDS))
    if unknown:
        raise ValueError(f"unknown report question(s): {', '.join(unknown)} (known: {', '.join(QUESTION_FIELDS)})")
    chosen += [f for f in QUESTION_FIELDS if f not in chosen]  # anything not listed keeps its place at the end
    asked = [f for f in dict.fromkeys(chosen) if f not in set(off)]
    if not asked:
        raise ValueError("every report question is turned off: keep at least one")
    by_field = {step.field: step for step in REPORT.steps if step.field}
    chain: list[Step] = []
    for field in asked:
        chain.append(by_field[field])
        chain.extend(by_field[f] for f in FOLLOW_UPS.get(field, ()))
    linked: list[Step] = []
    for index, step in enumerate(chain):
        after = next(
            (s.key for s in chain[index + 1 :] if s.field not in FOLLOW_UPS.get(step.field or "", ())), "@review"
        )
        linked.append(replace(step, next=after))
    intro, unfinished = REPORT.steps[0], REPORT.steps[1]
    intro = replace(
        intro, options=tuple(replace(o, goto=linked[0].key) if o.key == "start" else o for o in intro.options)
    )
    return replace(REPORT, steps=(intro, unfinished, *linked))
