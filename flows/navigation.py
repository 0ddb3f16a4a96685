"""Moving through the flows: going to a step or an action, the options a step shows, asking the
question again, leaving a question to come back to it, and where "back" and "next" lead.

Actions (targets starting with "@") and options computed when a step is shown are looked up in
``actions`` and ``computed``, which the engine fills from the parts that own them."""

from __future__ import annotations

from collections.abc import Callable

from flows.config import EngineConfig
from flows.definitions import INTENT_TARGETS, MENU, TRIAGE_LABELS
from flows.lexicon import Lexicon
from flows.model import FlowSet, Kind, Option, Step
from flows.replies import OptionRef, Reply
from flows.state import State
from flows.turn import Turn

LANGUAGE_SWITCH = "lang."
LEAVE = OptionRef("leave", "option.leave")
MORE = OptionRef("next_page", "option.more")
PAGE_BREAK = "\n---\n"
SKIP = OptionRef("skip", "option.skip")
DONE = OptionRef("done", "option.done")
# Where "back" typed at the consent questions goes.
CONSENT_BEFORE = {"consent.keep": "@review", "consent.send": "consent.keep", "consent.reply": "consent.send"}


class Navigator:
    def __init__(self, lexicon: Lexicon, config: EngineConfig, steps: FlowSet) -> None:
        self.lexicon = lexicon
        self.config = config
        self.steps = steps
        self.actions: dict[str, Callable[[Turn], None]] = {}
        self.computed: dict[str, Callable[[State], list[OptionRef]]] = {
            "locales": lambda state: [OptionRef(code, f"language.name.{code}") for code in lexicon.locales],
            "fields": lambda state: [
                *(OptionRef(q.key, q.summary_label or q.prompt) for q in self.asked_questions(state)),
                OptionRef("back", "option.back"),
            ],
            "answered": lambda state: [
                *(OptionRef(q.key, q.summary_label or q.prompt) for q in steps.questions() if q.field in state.answers),
                OptionRef("back", "option.back"),
            ],
            "recipients": lambda state: [
                *(OptionRef(o.key, o.words[0]) for o in config.offers_for(state)),
                OptionRef("no", "consent.send.no"),
            ],
            "likely": lambda state: [
                OptionRef("danger", "triage.option.danger"),
                *(OptionRef(i, TRIAGE_LABELS[i]) for i in state.likely if i in TRIAGE_LABELS),
                OptionRef("other", "triage.option.other"),
            ],
        }

    # ------------------------------------------------------------------ going somewhere
    def go(self, turn: Turn, target: str) -> None:
        if target.startswith("@"):
            self.actions[target](turn)
            return
        step = self.steps[target]
        if not self.holds(step.only_if, turn.state):
            self.go(turn, step.next or MENU)
            return
        likely = turn.state.likely if step.dynamic == "likely" else ()
        turn.state = turn.state.evolve(step=step.key, picked=(), page=0, likely=likely)
        self.prompt(turn, step)

    def prompt(self, turn: Turn, step: Step) -> None:
        pages = self.pages(step, turn.state)
        page = min(turn.state.page, pages - 1) if pages > 1 else None
        options = tuple(self.options(step, turn.state))
        prompt = next((m for c, m in step.variants if self.holds(c, turn.state)), step.prompt)
        turn.replies.append(Reply(message=prompt, options=options, step=step.key, page=page))

    def reprompt(self, turn: Turn) -> None:
        step = self.steps.get(turn.state.step)
        if step is None:
            self.go(turn, MENU)
        elif step.key == "review":
            self.go(turn, "@review")
        else:
            self.prompt(turn, step)

    def menu_prompt(self, turn: Turn) -> Reply:
        """The menu, as the reply that follows an effect's answer."""
        turn.state = turn.state.evolve(step=MENU)
        menu = self.steps[MENU]
        return Reply(message=menu.prompt, options=tuple(self.options(menu, turn.state)), step=MENU)

    def say_then_menu(self, turn: Turn, message: str) -> None:
        turn.say(message)
        self.go(turn, MENU)

    def welcome(self, turn: Turn) -> None:
        turn.say("welcome.notice")
        self.go(turn, MENU)

    def set_locale(self, turn: Turn, locale: str) -> None:
        turn.state = turn.state.evolve(locale=locale)
        turn.say("language.changed")
        target = turn.state.resume
        if target:
            turn.state = turn.state.evolve(resume="")
        self.go(turn, target or MENU)

    def advance(self, turn: Turn, step: Step, option: Option | None) -> None:
        target = option.goto if option is not None and option.goto else step.next
        # Changing an answer from the review goes back to it, unless the answer opens a
        # follow-up question (London opens the borough).
        opens_question = option is not None and option.goto is not None and not option.goto.startswith("@")
        if (
            turn.state.editing
            and step.field is not None
            and not step.field.startswith("consent")
            and not opens_question
        ):
            turn.state = turn.state.evolve(editing=False)
            target = "@review"
        if step.field == "where" and option is not None and option.key != "london":
            turn.state = turn.state.with_answer("borough", None)
        self.go(turn, target or MENU)

    # ------------------------------------------------------------------ leaving and coming back
    def in_report(self, step: Step) -> bool:
        return self.steps.flow_of(step.key) in ("report", "consent") and step.key not in (
            "report.intro",
            "report.unfinished",
        )

    def leave_question(self, turn: Turn) -> None:
        """Remember the question the person is leaving, so they can come back to it."""
        step = self.steps.get(turn.state.step)
        if step is not None and self.in_report(step) and not turn.state.resume:
            # What was ticked so far at a question taking several comes back with it.
            turn.state = turn.state.evolve(resume=step.key, resume_picked=turn.state.picked, picked=())

    def go_back(self, turn: Turn, target: str) -> None:
        """Back to the question left for an interruption, with whatever was ticked there."""
        ticked = turn.state.resume_picked
        turn.state = turn.state.evolve(resume="", resume_picked=())
        self.go_ticked(turn, target, ticked)

    def go_ticked(self, turn: Turn, target: str, ticked: tuple[str, ...]) -> None:
        """To ``target``; a question taking several shows ``ticked`` ticked again."""
        step = self.steps.get(target)
        if step is None or not ticked or step.kind is not Kind.MULTI:
            self.go(turn, target)
            return
        turn.state = turn.state.evolve(step=step.key, picked=ticked, page=0, likely=())
        self.prompt(turn, step)

    def previous(self, turn: Turn, step: Step) -> None:
        """Back to the question before this one, its answer ticked again where it takes several."""
        target = self.question_before(step, turn.state)
        turn.state = turn.state.evolve(editing=False)
        before = self.steps.get(target)
        answer = turn.state.answers.get(before.field or "") if before is not None else None
        self.go_ticked(turn, target, answer if isinstance(answer, tuple) else ())

    def question_before(self, step: Step, state: State) -> str:
        """The question asked before ``step`` (the report's start before its first)."""
        if step.key in CONSENT_BEFORE:
            return CONSENT_BEFORE[step.key]
        asked = self.asked_questions(state)
        if step.key == "review":
            return asked[-1].key if asked else "report.intro"
        keys = [q.key for q in asked]
        if step.key not in keys:
            return MENU
        index = keys.index(step.key)
        return keys[index - 1] if index else "report.intro"

    def asked_questions(self, state: State) -> list[Step]:
        """Questions that can be changed: all of them, except the borough when not in London."""
        return [
            q for q in self.steps.questions() if q.key != "report.borough" or state.answers.get("where") == ("london",)
        ]

    def leads_to(self, step: Step, key: str) -> str:
        """Where choosing option ``key`` at ``step`` leads, a step or an action, without going
        there: for previews and diagrams, so they never copy the engine's navigation."""
        if key in ("leave", "back"):
            return "@exit" if key == "leave" else "review"
        if key in ("skip", "done"):
            return step.next or MENU
        computed: dict[str, Callable[[str], str]] = {
            "locales": lambda k: MENU,
            "fields": lambda k: k,
            "answered": lambda k: "@review",
            "likely": lambda k: {"danger": "@emergency", "other": MENU}.get(k) or INTENT_TARGETS[k],
            "recipients": lambda k: "@finish" if k == "no" else "consent.reply",
            "unlocked": lambda k: {"name": "match.kind", "unname": "@unname"}.get(
                k, "check.reply" if k.startswith("send.") else MENU
            ),
        }
        if step.dynamic in computed:
            return computed[step.dynamic](key)
        option = step.option(key)
        return (option.goto if option is not None else None) or step.next or MENU

    # ------------------------------------------------------------------ what a step shows
    def pages(self, step: Step, state: State) -> int:
        if step.kind is not Kind.MENU:
            return 1
        return self.lexicon.text(state.locale, step.prompt).count(PAGE_BREAK) + 1

    def options(self, step: Step, state: State) -> list[OptionRef]:
        """Every option shown at a step, in the order they are numbered."""
        shown: list[OptionRef] = []
        if state.page < self.pages(step, state) - 1:
            shown.append(MORE)
        if step.dynamic is not None:
            shown = self.computed[step.dynamic](state)
        shown.extend(
            OptionRef(option.key, option.label, selected=option.key in state.picked)
            for option in step.options
            if self.holds(option.only_if, state)
        )
        if step.kind is Kind.MULTI:
            shown.append(DONE)
        if step.skippable:
            shown.append(SKIP)
        if state.detected and step.kind is Kind.MENU:
            shown.extend(
                OptionRef(LANGUAGE_SWITCH + code, f"language.name.{code}")
                for code in self.lexicon.locales
                if code != state.locale
            )
        shown.append(LEAVE)
        return shown

    def holds(self, condition: str | None, state: State) -> bool:
        if condition is None:
            return True
        config, offers_for = self.config, self.config.offers_for
        rules: dict[str, Callable[[], bool]] = {
            "recipients": lambda: bool(offers_for(state)),
            "no_recipients": lambda: not config.offers,
            # a report unlocked by its code, that no one can be sent
            "nothing_to_send": lambda: not state.unlocked_sent and not offers_for(state, state.unlocked_what),
            "soit": lambda: any(o.key == "soit" for o in offers_for(state)),
            "may_name": lambda: config.may_name(state.unlocked_what),
            "named": lambda: state.unlocked_named > 0,
        }
        return rules[condition]() if condition in rules else bool(state.resume)
