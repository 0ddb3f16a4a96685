"""What choosing an option does, by a button or typed: the options every screen may have (leave,
more, skip, back, another language), ticking at a question that takes several, a single choice,
options computed when the step was shown, and moves typed at a question ("back", "skip", a
borough). Computed options another part owns are added to ``computed`` by the engine."""

from __future__ import annotations

from collections.abc import Callable

from flows.answering import HEARD, Reading
from flows.definitions import INTENT_TARGETS, MENU, SEXUAL_HARMS
from flows.model import FlowSet, Kind, Option, Step
from flows.navigation import LANGUAGE_SWITCH, Navigator
from flows.turn import Turn


def picked_message(before: tuple[str, ...], after: tuple[str, ...]) -> str:
    """What to say when choices are ticked: a sexual assault or a spiking, newly told, is met
    with warmth and "it is not your fault", never a bare "Noted."."""
    told = any(harm in after and harm not in before for harm in SEXUAL_HARMS)
    return "input.picked.sexual" if told else "input.picked"


class Choosing:
    def __init__(self, steps: FlowSet, navigator: Navigator) -> None:
        self.steps = steps
        self.nav = navigator
        self.computed: dict[str, Callable[[Turn, Step, str], None]] = {
            "likely": lambda turn, step, key: navigator.go(
                turn, {"danger": "@emergency", "other": MENU}.get(key) or INTENT_TARGETS[key]
            ),
            "recipients": self._recipient,
            "locales": lambda turn, step, key: navigator.set_locale(turn, key),
            "fields": self._field,
            "answered": self._removal,
        }

    def pick(self, turn: Turn, step: Step, keys: tuple[str, ...], typed: bool) -> None:
        first = keys[0]
        if first in ("leave", "next_page", "skip", "back") or first.startswith(LANGUAGE_SWITCH):
            self.common(turn, step, first)
        elif step.dynamic is not None:
            self.computed[step.dynamic](turn, step, first)
        elif step.kind is Kind.MULTI:
            self.several(turn, step, keys, typed)
        elif step.kind is Kind.CHOICE:
            turn.state = turn.state.with_answer(step.field or step.key, (first,))
            self.nav.advance(turn, step, step.option(first))
        else:
            option = step.option(first)
            if option is not None and option.goto:
                self.nav.go(turn, option.goto)

    def common(self, turn: Turn, step: Step, key: str) -> None:
        """The options any screen may have: leave, more, skip, back, another language."""
        state = turn.state
        if key == "leave":
            self.nav.go(turn, "@exit")
        elif key == "next_page":
            turn.state = state.evolve(page=state.page + 1)
            self.nav.prompt(turn, step)
        elif key == "skip":
            turn.state = state.with_answer(step.field, None) if step.field else state
            self.nav.advance(turn, step, None)
        elif key == "back":
            self.nav.go(turn, "review")
        else:  # the same screen again, in the language chosen
            turn.state = state.evolve(locale=key.removeprefix(LANGUAGE_SWITCH), detected=False)
            turn.say("language.changed")
            self.nav.prompt(turn, step)

    def several(self, turn: Turn, step: Step, keys: tuple[str, ...], typed: bool) -> None:
        """A button or one typed option ticks or unticks; several typed at once ("1, 3") answer."""
        state = turn.state
        if keys == ("done",) or (typed and len(keys) > 1):
            chosen = [k for k in (*state.picked, *keys) if k != "done"]
            if picked_message(state.picked, tuple(chosen)) != "input.picked":
                turn.say("report.not_your_fault")  # a rape or a spiking told in one go: said first
            turn.state = state.with_answer(step.field or step.key, tuple(dict.fromkeys(chosen)))
            self.nav.advance(turn, step, None)
            return
        key = keys[0]
        picked = tuple(k for k in state.picked if k != key) if key in state.picked else (*state.picked, key)
        turn.state = state.evolve(picked=picked)
        turn.say(picked_message(state.picked, picked))
        self.nav.prompt(turn, step)

    def moved(self, turn: Turn, step: Step, reading: Reading) -> bool:
        """A move or a place typed at a question, carried out; False when there is none."""
        in_report = self.nav.in_report(step)
        if reading.move == "previous" and (in_report or step.key == "report.intro"):
            self.nav.previous(turn, step)
        elif reading.move == "finish" and in_report and step.field and not step.field.startswith("consent"):
            self.nav.go(turn, "@review")
        elif reading.move == "skip" and step.skippable and step.field:
            self.common(turn, step, "skip")
        elif reading.move == "done" and step.kind is Kind.MULTI:
            self.several(turn, step, ("done",), typed=True)
        elif reading.move == HEARD:
            turn.say("input.unclear")
            self.nav.reprompt(turn)
        elif reading.borough and step.key in ("report.where", "report.borough"):
            borough_step = self.steps["report.borough"]
            turn.state = turn.state.with_answer("where", ("london",)).with_answer("borough", reading.borough)
            if step.key == "report.where":
                turn.say("input.place", borough=reading.borough)
            self.nav.advance(turn, borough_step, None)
        else:
            return False
        return True

    def _recipient(self, turn: Turn, step: Step, key: str) -> None:
        turn.state = turn.state.with_answer(step.field or step.key, (key,))
        self.nav.advance(turn, step, None if key == "no" else Option(key, "", goto="consent.reply"))

    def _field(self, turn: Turn, step: Step, key: str) -> None:
        turn.state = turn.state.evolve(editing=True)
        self.nav.go(turn, key)

    def _removal(self, turn: Turn, step: Step, key: str) -> None:
        removed = self.steps[key]
        turn.state = turn.state.with_answer(removed.field or "", None)
        if removed.field == "where":
            turn.state = turn.state.with_answer("borough", None)
        self.nav.go(turn, "@review")
