"""The conversation engine: ``Engine.handle(state, event) -> Outcome``.

Pure: no I/O, no framework. Replies are message ids with variables and options; effects are
carried out by the channel before it sends the replies.

Safety comes first at every step. Free text the screen does not expect goes through the
understanding step (``flows/triage.py``): an overdose or suicidal thoughts interrupt any
question (and the person can come back to it), being hurt gets one reply that offers emergency
help, support and reporting, and when nothing is clear a short triage question asks whether
anyone is in danger. Nothing ends in "I don't understand".

The engine is a facade over its parts, each holding one concern:

- ``navigation``: going to steps and actions, the options shown, coming back to a question;
- ``typed_options``: typed words as the options on the screen;
- ``triage``: free text understood, urgent help first, the person's language;
- ``choosing``: what an option does, and moves typed at a question;
- ``reporting``: typed answers, the summary, finishing a report;
- ``later``: the code's choices and the relay with staff.

What needs several of them is here, in the open: the order in which typed words are tried
(:meth:`Engine._text`), and which part carries out each action (:meth:`Engine._wire`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from flows.answering import Answering, Reading
from flows.choosing import Choosing
from flows.classifier import trained
from flows.codes import RandomTokens, Tokens
from flows.config import EngineConfig, Offer
from flows.definitions import FLOWS, INTENT_TARGETS, MENU, TRIAGE_LABELS
from flows.events import Choice, Command, Event, Relayed, Resume, Text, Unlocked, Unsupported
from flows.later import Later
from flows.lexicon import Lexicon
from flows.model import Flow, FlowError, FlowSet, Kind, Step
from flows.navigation import Navigator
from flows.replies import Reply, Summary
from flows.reporting import Reporting
from flows.state import Answer, State
from flows.text import label_key
from flows.triage import ACTION_SCREENS, Triage
from flows.turn import Outcome, Turn
from flows.typed_options import Labels, TypedOptions
from flows.understanding import Understander, urgent_in_answer

__all__ = ["ACTION_SCREENS", "Engine", "EngineConfig", "Offer", "Outcome"]

DEEP_LINKS = {
    "report": "@report",
    "advice": "advice",
    "services": "services",
    "emergency": "@emergency",
}
COMMANDS = {**DEEP_LINKS, "exit": "@exit", "cancel": "@cancel", "menu": MENU}
# The emergency screen and what follows it: the next message gets the next thing.
AFTER_EMERGENCY = ("emergency", "emergency.cpr", "emergency.still", "emergency.arrived", "emergency.police")
# Typed answers of more words than this are checked for urgent help first ("to wszystko" is
# an answer; "chcę skończyć ze sobą" may not be).
SHORT_ANSWER = 3
# Anything longer is not read further: enough for any word list, bounded work per message.
READ_LIMIT = 4096


class Engine:
    def __init__(
        self,
        lexicon: Lexicon,
        config: EngineConfig | None = None,
        tokens: Tokens | None = None,
        flows: Iterable[Flow] = FLOWS,
        understander: Understander | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.lexicon = lexicon
        self.config = config = config or EngineConfig()
        self.tokens = tokens or RandomTokens()
        self.steps = steps = FlowSet(flows, lexicon.has, INTENT_TARGETS, TRIAGE_LABELS)
        missing = [m for o in config.offers for m in o.words if not lexicon.has(m)]
        if missing:
            raise FlowError(f"message id {m!r} for a recipient is missing from the English responses" for m in missing)
        self.understander = understander or trained(lexicon.examples(), lexicon.language_samples())
        labels = Labels(lexicon)
        self.answering = Answering(
            words=labels.all_words,
            locale_words=lexicon.words,
            label=labels.key,
            boroughs=lexicon.words("en", "boroughs"),
            places=lambda borough: labels.all_words(f"places:{borough}"),
            clock=clock,
        )
        self.nav = Navigator(lexicon, config, steps)
        self.typed = TypedOptions(lexicon, labels, self.answering, self.nav)
        self.triage = Triage(lexicon, config, steps, self.understander, self.answering, self.nav)
        self.choosing = Choosing(steps, self.nav)
        self.later = Later(config, self.nav)
        with_code = {"@check": self.later.check, "@delete": self.later.delete}
        self.reporting = Reporting(config, steps, self.tokens, self.nav, self.typed, self.triage, with_code)
        self._wire()

    def _wire(self) -> None:
        """Which part carries out each action (a target starting with "@"; ``flows.model.ACTIONS``
        lists them, and building a FlowSet refuses any other), and the options the code's
        choices compute."""
        nav, reporting, later = self.nav, self.reporting, self.later
        nav.actions.update(
            {
                "@emergency": lambda turn: self._urgent_screen(turn, "@emergency"),
                "@crisis": lambda turn: self._urgent_screen(turn, "@crisis"),
                "@greet": lambda turn: nav.say_then_menu(turn, "greeting.reply"),
                "@other": lambda turn: nav.say_then_menu(turn, "menu.unclear"),
                "@resume": lambda turn: nav.go_back(turn, turn.state.resume or MENU),
                "@report": lambda turn: nav.go(
                    turn, "report.unfinished" if turn.state.holds_content or turn.state.resume else "report.intro"
                ),
                "@continue_report": lambda turn: nav.go_back(turn, turn.state.resume or "@review"),
                "@restart_report": reporting.restart,
                "@review": reporting.review,
                "@erase": lambda turn: reporting.forget_then(turn, "report.erased"),
                "@cancel": lambda turn: reporting.forget_then(turn, "cancel.done"),
                "@exit": reporting.exit,
                "@finish": reporting.finish,
                "@relay": later.relay,
                "@drop_answer": later.drop_answer,
                "@send_later": later.send,
                "@identify": lambda turn: nav.go(turn, "match.more"),
                "@match_done": later.match_done,
                "@match_talk": lambda turn: later.match_choice(turn, "talk"),
                "@match_police": lambda turn: later.match_choice(turn, "police"),
                "@unname": later.unname,
            }
        )
        nav.computed["unlocked"] = later.options
        self.choosing.computed["unlocked"] = lambda turn, step, key: later.choose(turn, key)

    # ------------------------------------------------------------------ what channels and tools ask
    def handle(self, state: State, event: Event) -> Outcome:
        # The one-tap language switch is offered on the screen after detection only: it counts
        # when a button or a typed option names it, and then it goes.
        turn = Turn(state if isinstance(event, Choice | Text) else state.evolve(detected=False))
        self._dispatch(turn, event)
        self.triage.tell_unchecked(turn)
        return turn.outcome()

    def enter(self, state: State, target: str) -> Outcome:
        """What happens on arriving at ``target`` (a step or an action) from ``state``."""
        turn = Turn(state)
        self.nav.go(turn, target)
        return turn.outcome()

    def reprompt(self, state: State) -> tuple[Reply, ...]:
        """The question the conversation is waiting on, asked again."""
        turn = Turn(state)
        self.nav.reprompt(turn)
        return tuple(turn.replies)

    def worth_keeping(self, state: State) -> bool:
        """Whether ``state`` needs to outlive this turn (a report draft): answers, or a question of
        the report waiting."""
        step = self.steps.get(state.step)
        in_report = step is not None and self.nav.in_report(step)
        # A language alone is not worth a row naming the chat: it stays in memory.
        return state.holds_content or bool(state.resume) or in_report

    def leads_to(self, step: Step, key: str) -> str:
        return self.nav.leads_to(step, key)

    def question_before(self, step: Step, state: State) -> str:
        return self.nav.question_before(step, state)

    def summary(self, answers: dict[str, Answer] | State) -> Summary:
        return self.reporting.summary(answers)

    def offers_for(self, state: State, what: tuple[str, ...] | None = None) -> tuple[Offer, ...]:
        return self.config.offers_for(state, what)

    # ------------------------------------------------------------------ events
    def _dispatch(self, turn: Turn, event: Event) -> None:
        match event:
            case Command():
                self._command(turn, event)
            case Choice():
                self._choice(turn, event)
            case Text():
                turn.hint = event.hint
                self._text(turn, event.text[:READ_LIMIT], len(event.text))
                if len(event.text) > READ_LIMIT and not any(r.message == "input.too_long" for r in turn.replies):
                    # Said after the first reply (urgent help stays first), before the question.
                    note = Reply("input.read_part", variables={"length": len(event.text), "limit": READ_LIMIT})
                    turn.replies.insert(min(1, len(turn.replies)), note)
            case Unsupported():
                turn.say("input.unsupported")
                self.nav.reprompt(turn)
            case Relayed():
                self.later.relayed(turn, event)
            case Unlocked():
                self.later.unlocked(turn, event)
            case Resume():
                if turn.state.step:
                    turn.say("welcome.back")
                    self.nav.reprompt(turn)
                else:
                    self.nav.welcome(turn)

    def _command(self, turn: Turn, command: Command) -> None:
        name, argument = command.name, command.argument.strip()
        nav = self.nav
        if name in ("delete", "check"):  # act on the code, or ask for it
            nav.leave_question(turn)
            if not argument:
                nav.go(turn, f"{name}.ask")
            elif name == "delete":
                self.later.delete(turn, argument)
            else:
                self.later.check(turn, argument)
        elif name == "start":
            nav.leave_question(turn)
            self._start(turn, argument)
        elif name == "language":
            nav.leave_question(turn)
            self._language(turn, argument)
        elif name == "help":
            turn.say("help.text")
            nav.reprompt(turn)
        elif name in COMMANDS:
            if COMMANDS[name] not in ("@exit", "@cancel"):
                nav.leave_question(turn)
            nav.go(turn, COMMANDS[name])
        else:
            turn.say("command.unknown")
            nav.reprompt(turn)

    def _start(self, turn: Turn, argument: str) -> None:
        target = DEEP_LINKS.get(argument.casefold())
        if target is None:
            self.nav.welcome(turn)
        else:
            self.nav.go(turn, target)

    def _language(self, turn: Turn, argument: str) -> None:
        wanted = argument.casefold()
        if wanted in self.lexicon.locales:
            self.nav.set_locale(turn, wanted)
        else:
            self.nav.go(turn, "language")

    def _choice(self, turn: Turn, choice: Choice) -> None:
        step = self.steps.get(turn.state.step)
        if step is None or choice.step != step.key:
            turn.say("input.expired")
            self.nav.reprompt(turn)
            return
        shown = {o.key for o in self.nav.options(step, turn.state)}  # the language switch too, if shown
        turn.state = turn.state.evolve(detected=False)
        if choice.option not in shown:
            turn.say("input.expired")
            self.nav.reprompt(turn)
            return
        self.choosing.pick(turn, step, (choice.option,), typed=False)

    # ------------------------------------------------------------------ typed words, in order
    def _text(self, turn: Turn, text: str, length: int) -> None:
        step = self.steps.get(turn.state.step)
        reading = self.typed.read(step, turn.state, text) if step is not None else Reading()
        turn.state = turn.state.evolve(detected=False)
        if self._before_answering(turn, step, text, reading):
            return
        if step is None:
            self.triage.understand(turn, text, first_contact=True)
        elif reading.keys:
            self.choosing.pick(turn, step, reading.keys, typed=True)
        elif step.kind is Kind.TEXT:
            self.reporting.answer_text(turn, step, text.strip(), length)
        elif step.kind is Kind.MENU and not self.nav.in_report(step):
            self.triage.understand(turn, text, first_contact=False)
        else:
            self.triage.off_question(turn, step, text)

    def _before_answering(self, turn: Turn, step: Step | None, text: str, reading: Reading) -> bool:
        """What comes before the typed words are taken as an answer or understood: urgent help
        clearly asked for, a move, the menu, what follows emergency help, an emergency phrase, a
        bare yes or no, finishing a report. True when one of them answered."""
        checked = len(text.split()) > SHORT_ANSWER or reading.move == "finish"
        if step is not None and reading and checked and self.triage.urgent_first(turn, text, reading):
            # Words read as an answer that are also clearly about an overdose or suicide
            # ("chcę skończyć ze sobą" is not "finish the report"): help first.
            return True
        if step is not None and self.choosing.moved(turn, step, reading):
            return True
        if reading.keys:
            return False
        free = step is not None and step.kind is Kind.TEXT  # their own words are the answer
        if self.typed.says_menu(text, turn.state.locale, alone=free):
            self.nav.leave_question(turn)
            self.nav.go(turn, MENU)
            return True
        if step is not None and step.key in AFTER_EMERGENCY and self.triage.after_emergency(turn, step, text):
            return True
        return self._shortcut(turn, step, text) or self._finishes_report(turn, step, text)

    def _shortcut(self, turn: Turn, step: Step | None, text: str) -> bool:
        """Words that answer nothing on the screen but need no understanding: an emergency
        phrase (help first) or a bare yes or no (say so kindly, ask again)."""
        triage = self.triage
        answering = step is not None and step.kind is Kind.TEXT and step.field is not None
        if not answering and triage.says_emergency(text):
            if step is None or step.kind is Kind.MENU:
                triage.follow_language(turn, triage.classify(turn, text), text)
            turn.understood = "overdose/words"
            triage.answer(turn, ("overdose",))
            return True
        if not self.typed.says_yes_or_no(text):
            return False
        triage.follow_language(turn, triage.classify(turn, text), text)
        if step is None:
            self.nav.welcome(turn)
        else:
            turn.say("input.unclear")
            self.nav.reprompt(turn)
        return True

    def _finishes_report(self, turn: Turn, step: Step | None, text: str) -> bool:
        """ "i want to finish my report" away from the report's questions, with one waiting:
        back to it."""
        draft = turn.state.resume or turn.state.holds_content
        if not draft or (step is not None and self.nav.in_report(step)):
            return False
        if not self.answering.words("finish").spans(label_key(text)):
            return False
        if urgent_in_answer(self.triage.classify(turn, text), self.config.policy) is not None:
            return False  # "vreau să termin cu tot": not the report; understood below
        self.nav.go(turn, "@continue_report")
        return True

    def _urgent_screen(self, turn: Turn, action: str) -> None:
        self.nav.leave_question(turn)
        self.nav.go(turn, ACTION_SCREENS[action])
