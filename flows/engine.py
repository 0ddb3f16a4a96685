"""The conversation engine: ``Engine.handle(state, event) -> Outcome``.

Pure: no I/O, no framework. Replies are message ids with variables and options; effects are
carried out by the channel before it sends the replies.

Safety comes first at every step. Free text the screen does not expect goes through the
understanding step (``flows/understanding.py``): an overdose or suicidal thoughts interrupt any
question (and the person can come back to it), being hurt gets one reply that offers emergency
help, support and reporting, and when nothing is clear a short triage question asks whether
anyone is in danger. Nothing ends in "I don't understand".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flows.answering import HEARD, Answering, Reading
from flows.classifier import trained
from flows.codes import RandomTokens, Tokens, canonical_code
from flows.definitions import (
    FLOWS,
    INTENT_TARGETS,
    MENU,
    QUESTIONNAIRE_VERSION,
    SEXUAL_HARMS,
    TRIAGE_LABELS,
    TRIAGE_OFFERS,
    URGENT_MESSAGES,
)
from flows.effects import (
    ChangeConsent,
    CheckReport,
    Effect,
    EraseReport,
    ForgetDraft,
    RelayToStaff,
    StoreReport,
    WipeChat,
)
from flows.events import Choice, Command, Event, Hint, Relayed, Resume, Text, Unlocked, Unsupported
from flows.lexicon import Lexicon
from flows.model import Flow, FlowError, FlowSet, Kind, Option, Step
from flows.replies import MessageRef, OptionRef, Reply, Summary, SummaryLine
from flows.state import Answer, State
from flows.text import label_key, matches, quote
from flows.understanding import (
    HARMS,
    URGENT,
    Policy,
    Understander,
    Understanding,
    band,
    decide,
    urgent_in_answer,
    with_hint,
)

DEEP_LINKS = {
    "report": "@report",
    "advice": "advice",
    "services": "services",
    "emergency": "@emergency",
}
COMMANDS = {
    "report": "@report",
    "advice": "advice",
    "services": "services",
    "emergency": "@emergency",
    "exit": "@exit",
    "cancel": "@cancel",
    "menu": MENU,
}
# Screens an action shows, for saying a screen's words without moving to it.
ACTION_SCREENS = {"@emergency": "emergency", "@crisis": "crisis", "@report": "report.intro"}
LANGUAGE_SWITCH = "lang."
LEAVE = OptionRef("leave", "option.leave")
MORE = OptionRef("next_page", "option.more")
PAGE_BREAK = "\n---\n"
SKIP = OptionRef("skip", "option.skip")
DONE = OptionRef("done", "option.done")
# Where "back" typed at the consent questions goes.
CONSENT_BEFORE = {"consent.keep": "@review", "consent.send": "consent.keep", "consent.reply": "consent.send"}
# The emergency screen and what follows it: the next message gets the next thing.
AFTER_EMERGENCY = ("emergency", "emergency.cpr", "emergency.still", "emergency.arrived", "emergency.police")
# Typed answers of more words than this are checked for urgent help first ("to wszystko" is
# an answer; "chcę skończyć ze sobą" may not be).
SHORT_ANSWER = 3
# "menu" inside a message of at most this many words goes to the menu ("main menu pls").
MENU_WORDS = 6
# Fewer different letters than this say nothing about a language ("k", "hmm", "aaaa").
MIN_DISTINCT_LETTERS = 4
# Anything longer is not read further: enough for any word list, bounded work per message.
READ_LIMIT = 4096
UNCHECKED = "language.unchecked"


@dataclass(frozen=True, slots=True)
class Offer:
    """Someone a summary can be sent to: offered only when the report names one of ``only_for``
    (if any). ``via_support``: the support team passes it on (the words say so)."""

    key: str
    only_for: tuple[str, ...] = ()
    via_support: bool = False


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What differs between deployments and changes what the engine offers.

    ``recipients``: who a summary may be sent to, each with a real destination. ``forwarding``
    is a shorthand (for previews and tests) for the support team and a SOIT officer through it.
    """

    forwarding: bool = False
    recipients: tuple[Offer, ...] = ()
    policy: Policy = field(default_factory=Policy)

    @property
    def offers(self) -> tuple[Offer, ...]:
        if self.recipients or not self.forwarding:
            return self.recipients
        return (Offer("support"), Offer("soit", SEXUAL_HARMS, via_support=True))


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: tuple[Reply, ...]
    state: State
    effects: tuple[Effect, ...] = ()
    understood: str = ""  # "intent/band" when free text was understood: all a log may say of it


@dataclass(slots=True)
class _Turn:
    """Replies and effects gathered while one event is handled."""

    state: State
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    understood: str = ""
    hint: Hint | None = None  # another assistant's reading of the typed text, if any
    classified: tuple[str, Understanding] | None = None  # the typed text, understood once a turn

    def say(self, message: str, **variables: str | int | Summary) -> None:
        self.replies.append(Reply(message=message, variables=variables))

    def outcome(self) -> Outcome:
        return Outcome(tuple(self.replies), self.state, tuple(self.effects), self.understood)


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
        self.config = config or EngineConfig()
        self.tokens = tokens or RandomTokens()
        self.steps = FlowSet(flows, lexicon.has, INTENT_TARGETS, TRIAGE_LABELS)
        missing = [m for o in self.config.offers for m in self._recipient_words(o) if not lexicon.has(m)]
        if missing:
            raise FlowError(f"message id {m!r} for a recipient is missing from the English responses" for m in missing)
        self.understander = understander or trained(lexicon.examples(), lexicon.language_samples())
        self._label_keys: dict[tuple[str, str], str] = {}
        self._menu_words: frozenset[str] | None = None
        self._word_sets: dict[str, frozenset[str]] = {}
        self._entry_keys: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}  # list entries, as compared
        self._short: dict[str, tuple[str, ...]] | None = None
        self._emergency_words: tuple[str, ...] | None = None
        self.answering = Answering(
            words=self._all_words,
            locale_words=lexicon.words,
            label=self._label_key,
            boroughs=lexicon.words("en", "boroughs"),
            places=lambda borough: self._all_words(f"places:{borough}"),
            clock=clock,
        )

    # ------------------------------------------------------------------ entry point
    def handle(self, state: State, event: Event) -> Outcome:
        # The one-tap language switch is offered on the screen after detection only: it counts
        # when a button or a typed option names it, and then it goes.
        turn = _Turn(state if isinstance(event, Choice | Text) else state.evolve(detected=False))
        self._dispatch(turn, event)
        self._tell_unchecked(turn)
        return turn.outcome()

    def _tell_unchecked(self, turn: _Turn) -> None:
        """Once a conversation, after the help and before the question: a translation not yet
        checked by a native speaker says so (its ``language.unchecked``; empty says nothing)."""
        locale = turn.state.locale
        if turn.state.told_unchecked or not turn.replies or not self.lexicon.text(locale, UNCHECKED).strip():
            return
        if any(reply.message in URGENT_MESSAGES for reply in turn.replies):
            return  # nothing between urgent help and its question: the next turn says it
        if not turn.replies[-1].options:
            return  # said before a question only (never after a quick exit's one neutral line)
        at = len(turn.replies) - 1
        switched = any(reply.message.startswith("language.") for reply in turn.replies)
        if switched and not any(not reply.message.startswith("language.") for reply in turn.replies[:at]):
            return  # it would come before the first help in this language (which asks): a later turn says it
        turn.state = turn.state.evolve(told_unchecked=True)
        turn.replies.insert(at, Reply(UNCHECKED))

    def _dispatch(self, turn: _Turn, event: Event) -> None:
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
                self._reprompt(turn)
            case Relayed():
                self._relayed(turn, event)
            case Unlocked():
                self._unlocked(turn, event)
            case Resume():
                if turn.state.step:
                    turn.say("welcome.back")
                    self._reprompt(turn)
                else:
                    self._welcome(turn)

    def enter(self, state: State, target: str) -> Outcome:
        """What happens on arriving at ``target`` (a step or an action) from ``state``."""
        turn = _Turn(state)
        self._go(turn, target)
        return turn.outcome()

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
            "unlocked": lambda k: "check.reply" if k.startswith("send.") else MENU,
        }
        if step.dynamic in computed:
            return computed[step.dynamic](key)
        option = step.option(key)
        return (option.goto if option is not None else None) or step.next or MENU

    def reprompt(self, state: State) -> tuple[Reply, ...]:
        """The question the conversation is waiting on, asked again."""
        turn = _Turn(state)
        self._reprompt(turn)
        return tuple(turn.replies)

    def worth_keeping(self, state: State) -> bool:
        """Whether ``state`` needs to outlive this turn (a report draft): answers, or a question of
        the report waiting."""
        step = self.steps.get(state.step)
        in_report = step is not None and self._in_report(step)
        # A language alone is not worth a row naming the chat: it stays in memory.
        return state.holds_content or bool(state.resume) or in_report

    # ------------------------------------------------------------------ events
    def _command(self, turn: _Turn, command: Command) -> None:
        name, argument = command.name, command.argument.strip()
        special = {
            "start": self._start,
            "help": self._help,
            "delete": self._with_code("delete.ask", self._delete),
            "check": self._with_code("check.ask", self._check),
            "language": self._language,
        }.get(name)
        if special is not None:
            special(turn, argument)
        elif name in COMMANDS:
            if COMMANDS[name] not in ("@exit", "@cancel"):
                self._leave_question(turn)
            self._go(turn, COMMANDS[name])
        else:
            turn.say("command.unknown")
            self._reprompt(turn)

    def _start(self, turn: _Turn, argument: str) -> None:
        self._leave_question(turn)
        target = DEEP_LINKS.get(argument.casefold())
        if target is None:
            self._welcome(turn)
        else:
            self._go(turn, target)

    def _help(self, turn: _Turn, argument: str) -> None:
        turn.say("help.text")
        self._reprompt(turn)

    def _with_code(self, ask: str, act: Callable[[_Turn, str], None]) -> Callable[[_Turn, str], None]:
        """``/delete CODE``, ``/check CODE``: act on the code, or ask for it."""

        def handle(turn: _Turn, argument: str) -> None:
            self._leave_question(turn)
            if argument:
                act(turn, argument)
            else:
                self._go(turn, ask)

        return handle

    def _language(self, turn: _Turn, argument: str) -> None:
        self._leave_question(turn)
        wanted = argument.casefold()
        if wanted in self.lexicon.locales:
            self._set_locale(turn, wanted)
        else:
            self._go(turn, "language")

    def _choice(self, turn: _Turn, choice: Choice) -> None:
        step = self.steps.get(turn.state.step)
        if step is None or choice.step != step.key:
            turn.say("input.expired")
            self._reprompt(turn)
            return
        if choice.option not in {o.key for o in self._options(step, turn.state)}:
            turn.state = turn.state.evolve(detected=False)
            turn.say("input.expired")
            self._reprompt(turn)
            return
        turn.state = turn.state.evolve(detected=False)
        self._pick(turn, step, (choice.option,), typed=False)

    def _text(self, turn: _Turn, text: str, length: int) -> None:
        step = self.steps.get(turn.state.step)
        reading = self._read(step, turn.state, text) if step is not None else Reading()
        turn.state = turn.state.evolve(detected=False)
        if self._before_answering(turn, step, text, reading):
            return
        if step is None:
            self._understand(turn, text, first_contact=True)
        elif reading.keys:
            self._pick(turn, step, reading.keys, typed=True)
        elif step.kind is Kind.TEXT:
            self._answer_text(turn, step, text.strip(), length)
        elif step.kind is Kind.MENU and not self._in_report(step):
            self._understand(turn, text, first_contact=False)
        else:
            self._off_question(turn, step, text)

    def _before_answering(self, turn: _Turn, step: Step | None, text: str, reading: Reading) -> bool:
        """What comes before the typed words are taken as an answer or understood: urgent help
        clearly asked for, a move, the menu, what follows emergency help, an emergency phrase, a
        bare yes or no, finishing a report. True when one of them answered."""
        checked = len(text.split()) > SHORT_ANSWER or reading.move == "finish"
        if step is not None and reading and checked and self._urgent_first(turn, text, reading):
            # Words read as an answer that are also clearly about an overdose or suicide
            # ("chcę skończyć ze sobą" is not "finish the report"): help first.
            return True
        if step is not None and self._moved(turn, step, reading):
            return True
        if reading.keys:
            return False
        if self._says_menu(text, turn.state.locale):
            self._leave_question(turn)
            self._go_to_menu(turn)
            return True
        if step is not None and step.key in AFTER_EMERGENCY and self._after_emergency(turn, step, text):
            return True
        return self._shortcut(turn, step, text) or self._finishes_report(turn, step, text)

    def _shortcut(self, turn: _Turn, step: Step | None, text: str) -> bool:
        """Words that answer nothing on the screen but need no understanding: an emergency
        phrase (help first) or a bare yes or no (say so kindly, ask again)."""
        answering = step is not None and step.kind is Kind.TEXT and step.field is not None
        if not answering and self._says_emergency(text):
            if step is None or step.kind is Kind.MENU:
                self._follow_language(turn, self._classify(turn, text), text)
            turn.understood = "overdose/words"
            self._answer(turn, ("overdose",))
            return True
        if label_key(text) not in self._word_set("yes") | self._word_set("no"):
            return False
        self._follow_language(turn, self._classify(turn, text), text)
        if step is None:
            self._welcome(turn)
        else:
            turn.say("input.unclear")
            self._reprompt(turn)
        return True

    def _finishes_report(self, turn: _Turn, step: Step | None, text: str) -> bool:
        """ "i want to finish my report" away from the report's questions, with one waiting:
        back to it."""
        draft = turn.state.resume or turn.state.holds_content
        if not draft or (step is not None and self._in_report(step)):
            return False
        if not self.answering.words("finish").spans(label_key(text)):
            return False
        if urgent_in_answer(self._classify(turn, text), self.config.policy) is not None:
            return False  # "vreau să termin cu tot": not the report; understood below
        self._go(turn, "@continue_report")
        return True

    def _read(self, step: Step, state: State, text: str) -> Reading:
        """What typed words answer at ``step``: an option by its label, number or listed words
        first; at the report's questions, summary and consent, also words inside a sentence,
        dates, places and moves (``flows/answering.py``)."""
        picked = self._typed_options(step, state, text)
        if picked or not (self._in_report(step) or step.key == "report.intro" or step.is_question):
            return Reading(keys=picked)
        if step.kind is Kind.TEXT and step.field is not None and step.validate is None:
            # Free words ("in your own words..."): only a move typed alone is not the answer.
            move = self.answering.move(self.answering.strip_filler(label_key(text), state.locale), alone=True)
            return Reading(move=move) if move in ("previous", "skip") and len(text) < 40 else Reading()
        if step.kind is Kind.TEXT and step.validate is None:
            return Reading()
        shown = self._options(step, state)
        multi = step.kind is Kind.MULTI
        return self.answering.read(step.key, multi, step.skippable, shown, state.locale, text)

    def _urgent_first(self, turn: _Turn, text: str, reading: Reading) -> bool:
        """Urgent help before a typed answer, when the words are clearly about it; the person
        comes back to this question. Words that would end the questions ("i want to finish it
        all") are read recall-first, as a first message is."""
        understood = self._classify(turn, text)
        if self._says_emergency(text):
            now: tuple[str, ...] = ("overdose",)
        elif reading.move == "finish":
            now = tuple(i for i in decide(understood, self.config.policy).intents if i in URGENT)
        else:
            found = urgent_in_answer(understood, self.config.policy)
            now = (found,) if found else ()
        if not now:
            return False
        self._leave_question(turn)
        self._answer(turn, now)
        return True

    def _moved(self, turn: _Turn, step: Step, reading: Reading) -> bool:
        """A move or a place typed at a question, carried out; False when there is none."""
        if reading.move == "previous" and (self._in_report(step) or step.key == "report.intro"):
            self._previous(turn, step)
        elif reading.move == "finish" and self._in_report(step) and step.field and not step.field.startswith("consent"):
            self._go(turn, "@review")
        elif reading.move == "skip" and step.skippable and step.field:
            self._pick_common(turn, step, "skip")
        elif reading.move == "done" and step.kind is Kind.MULTI:
            self._pick_several(turn, step, ("done",), typed=True)
        elif reading.move == HEARD:
            turn.say("input.unclear")
            self._reprompt(turn)
        elif reading.borough and step.key in ("report.where", "report.borough"):
            borough_step = self.steps["report.borough"]
            turn.state = turn.state.with_answer("where", ("london",)).with_answer("borough", reading.borough)
            if step.key == "report.where":
                turn.say("input.place", borough=reading.borough)
            self._advance(turn, borough_step, None)
        else:
            return False
        return True

    def _previous(self, turn: _Turn, step: Step) -> None:
        """Back to the question before this one, its answer ticked again where it takes several."""
        target = self.question_before(step, turn.state)
        turn.state = turn.state.evolve(editing=False)
        before = self.steps.get(target)
        answer = turn.state.answers.get(before.field or "") if before is not None else None
        self._go_ticked(turn, target, answer if isinstance(answer, tuple) else ())

    def question_before(self, step: Step, state: State) -> str:
        """The question asked before ``step`` (the report's start before its first)."""
        if step.key in CONSENT_BEFORE:
            return CONSENT_BEFORE[step.key]
        asked = self._asked_questions(state)
        if step.key == "review":
            return asked[-1].key if asked else "report.intro"
        keys = [q.key for q in asked]
        if step.key not in keys:
            return MENU
        index = keys.index(step.key)
        return keys[index - 1] if index else "report.intro"

    def _says_menu(self, text: str, locale: str = "en") -> bool:
        """ "menu" or "back" typed alone, in any of the bot's languages, or "menu" in a message of
        a few words ("main menu pls", "wroc do menu")."""
        typed = label_key(text)
        if not typed or len(typed) > 40:
            return False
        if self._menu_words is None:
            # "back" outside the report goes to the menu too; inside it, to the question before.
            self._menu_words = self._word_set("menu") | self._word_set("previous")
        stripped = self.answering.strip_filler(typed, locale)
        if typed in self._menu_words or stripped in self._menu_words:
            return True
        return len(typed.split()) <= MENU_WORDS and bool(self.answering.words("menu").spans(typed))

    def _says_emergency(self, text: str) -> bool:
        """An unmistakable emergency phrase, in any of the bot's languages: help first, always."""
        if self._emergency_words is None:
            self._emergency_words = tuple(
                sorted({w for locale in self.lexicon.locales for w in self.lexicon.words(locale, "emergency")})
            )
        return matches(text, self._emergency_words)

    def _after_emergency(self, turn: _Turn, step: Step, text: str) -> bool:
        """The next message after emergency help gets the next thing, never the same block:
        the crew has arrived, will the police come, or it is still happening (CPR)."""
        # Not breathing, or still in danger: what to do now (CPR), then a short "keep going".
        still = "emergency.still" if step.key in ("emergency.cpr", "emergency.still") else "emergency.cpr"
        if self._says_emergency(text):
            # "the ambulance is on its way, he's not breathing": what to do now comes first.
            turn.understood = "overdose/words"
            self._go(turn, still)
            return True
        if self.answering.named_words("arrived", text, turn.state.locale):
            self._go(turn, "emergency.arrived")
            return True
        understood = self._classify(turn, text)
        if self.answering.words("police").spans(label_key(text)) or understood.intent == "advice_police":
            self._go(turn, "emergency.police")
            return True
        if decide(understood, self.config.policy).intents[:1] == ("overdose",):
            turn.understood = "overdose/after"
            self._go(turn, still)
            return True
        return False

    def _all_words(self, group: str) -> tuple[str, ...]:
        """A word list in every language at once."""
        return tuple(dict.fromkeys(w for locale in self.lexicon.locales for w in self.lexicon.words(locale, group)))

    def _go_to_menu(self, turn: _Turn) -> None:
        self._go(turn, MENU)

    # ------------------------------------------------------------------ understanding free text
    def _classify(self, turn: _Turn, text: str) -> Understanding:
        """What ``text`` means, worked out once a turn however many rules ask."""
        if turn.classified is not None and turn.classified[0] == text:
            understood = turn.classified[1]
        else:
            understood = with_hint(self.understander.understand(text), turn.hint, self.config.policy)
            turn.classified = (text, understood)
        turn.understood = f"{understood.intent}/{band(understood.confidence)}"
        return understood

    def _understand(self, turn: _Turn, text: str, first_contact: bool) -> None:
        """Free text where no question waits: answer what it means, or ask a triage question."""
        understood = self._classify(turn, text)
        self._follow_language(turn, understood, text)
        decision = decide(understood, self.config.policy)
        if decision.intents:
            self._answer(turn, decision.intents, first_contact)
            return
        if first_contact:
            turn.say("welcome.notice")
        self._triage(turn, decision.likely)

    def _answer(self, turn: _Turn, intents: tuple[str, ...], first_contact: bool = False) -> None:
        """Help for each intent, in order: every screen but the last is said without its buttons."""
        targets = [INTENT_TARGETS[intent] for intent in intents]
        if any(intent in URGENT for intent in intents):
            self._leave_question(turn)
        for target in targets[:-1]:
            screen = ACTION_SCREENS.get(target, target)
            turn.say(self.steps[screen].prompt)
        last = targets[-1]
        if last in ("@greet", "@other") and first_contact:
            self._welcome(turn)
        else:
            self._go(turn, last)

    def _triage(self, turn: _Turn, likely: tuple[str, ...]) -> None:
        offered: list[str] = []
        labels: set[str] = set()
        for intent in likely:
            label = TRIAGE_LABELS.get(intent)
            if label is not None and label not in labels:
                offered.append(intent)
                labels.add(label)
        turn.state = turn.state.evolve(likely=tuple(offered[:TRIAGE_OFFERS]))
        self._go(turn, "triage")

    def _follow_language(self, turn: _Turn, understood: Understanding, text: str) -> None:
        """Answer in the language the person writes in, when it is clear, with a one-tap switch.
        A word or two ("czesc", "ajutor") is too short for the model: it counts when the shipped
        examples and word lists use it in one language only."""
        policy = self.config.policy
        language = understood.language
        letters = [ch for ch in label_key(text) if ch.isalpha()]
        if len(set(letters)) < MIN_DISTINCT_LETTERS:
            language = ""  # "k", "hmm", "aaaaaaaa": no evidence of any language
        elif len(letters) < policy.language_min_letters or len(label_key(text).split()) == 1:
            # One word says a language only when it is a word of that language alone.
            only = self._short_languages().get(label_key(text), ())
            language = only[0] if len(only) == 1 else ""
        elif understood.language_confidence < policy.language:
            language = ""
        if language and language != turn.state.locale and language in self.lexicon.locales:
            turn.state = turn.state.evolve(locale=language, detected=True)
            turn.say("language.detected")

    def _short_languages(self) -> dict[str, tuple[str, ...]]:
        if self._short is None:
            found: dict[str, set[str]] = {}
            for example in self.lexicon.examples():
                short = sum(ch.isalpha() for ch in example.text) < self.config.policy.language_min_letters
                if short or len(label_key(example.text).split()) == 1:
                    found.setdefault(label_key(example.text), set()).add(example.locale)
            for locale in self.lexicon.locales:
                for group in ("yes", "no", "menu"):
                    own = self.lexicon.words(locale, group)
                    if locale == "en" or own != self.lexicon.words("en", group):
                        for word in own:
                            found.setdefault(label_key(word), set()).add(locale)
            self._short = {text: tuple(sorted(locales)) for text, locales in found.items()}
        return self._short

    def _off_question(self, turn: _Turn, step: Step, text: str) -> None:
        """Typed words at a question with options that name none of them."""
        understood = self._classify(turn, text)
        # At a question, only words clearly about an overdose or suicide interrupt it: "i dont
        # want to give my name" is not a crisis.
        urgent = urgent_in_answer(understood, self.config.policy)
        if urgent:
            self._answer(turn, (urgent,))
            return
        decision = decide(understood, self.config.policy)
        named = tuple(i for i in decision.intents if i in HARMS and step.option(i) is not None)
        if step.kind is Kind.MULTI and named:
            # "he took my phone" at "what happened?": tick what they told us.
            before = turn.state.picked
            turn.state = turn.state.evolve(picked=tuple(dict.fromkeys((*turn.state.picked, *named))))
            turn.say(self._picked(before, turn.state.picked))
            self._prompt(turn, step)
            return
        turn.say("input.unclear")
        self._reprompt(turn)

    # ------------------------------------------------------------------ options
    def _pages(self, step: Step, state: State) -> int:
        if step.kind is not Kind.MENU:
            return 1
        return self.lexicon.text(state.locale, step.prompt).count(PAGE_BREAK) + 1

    def _options(self, step: Step, state: State) -> list[OptionRef]:
        """Every option shown at a step, in the order they are numbered."""
        shown: list[OptionRef] = []
        if state.page < self._pages(step, state) - 1:
            shown.append(MORE)
        if step.dynamic is not None:
            shown = self._dynamic_options[step.dynamic](state)
        shown.extend(
            OptionRef(option.key, option.label, selected=option.key in state.picked)
            for option in step.options
            if self._holds(option.only_if, state)
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

    @property
    def _dynamic_options(self) -> dict[str, Callable[[State], list[OptionRef]]]:
        """Options computed when a step is shown, by the step's ``dynamic``."""
        return {
            "locales": lambda state: [OptionRef(code, f"language.name.{code}") for code in self.lexicon.locales],
            "fields": lambda state: [
                *(OptionRef(q.key, q.summary_label or q.prompt) for q in self._asked_questions(state)),
                OptionRef("back", "option.back"),
            ],
            "answered": lambda state: [
                *(
                    OptionRef(q.key, q.summary_label or q.prompt)
                    for q in self.steps.questions()
                    if q.field in state.answers
                ),
                OptionRef("back", "option.back"),
            ],
            "recipients": lambda state: [
                *(OptionRef(o.key, f"recipient.{o.key}.label") for o in self.offers_for(state)),
                OptionRef("no", "consent.send.no"),
            ],
            "unlocked": self._later_options,
            "likely": lambda state: [
                OptionRef("danger", "triage.option.danger"),
                *(OptionRef(i, TRIAGE_LABELS[i]) for i in state.likely if i in TRIAGE_LABELS),
                OptionRef("other", "triage.option.other"),
            ],
        }

    def _later_options(self, state: State) -> list[OptionRef]:
        """With the code: send it (if not sent), allow or stop replies (if sent), erase it."""
        if not state.unlocked_sent:
            offers = self.offers_for(state, state.unlocked_what)
            shown = [OptionRef(f"send.{o.key}", f"recipient.{o.key}.label") for o in offers]
        elif state.unlocked_reply:
            shown = [OptionRef("stop_replies", "check.stop_replies")]
        else:
            shown = [OptionRef("allow_replies", "check.allow_replies")]
        return [*shown, OptionRef("erase", "check.erase"), OptionRef("menu", "option.menu")]

    def _asked_questions(self, state: State) -> list[Step]:
        """Questions that can be changed: all of them, except the borough when not in London."""
        return [
            q for q in self.steps.questions() if q.key != "report.borough" or state.answers.get("where") == ("london",)
        ]

    def _label_key(self, locale: str, message_id: str) -> str:
        """A label as typed answers are compared to it; the text never changes once loaded."""
        found = self._label_keys.get((locale, message_id))
        if found is None:
            found = self._label_keys[(locale, message_id)] = label_key(self.lexicon.text(locale, message_id))
        return found

    def _typed_options(self, step: Step, state: State, text: str) -> tuple[str, ...]:
        """Options named by typed numbers or labels ("2", "Skip", "1, 3"), by more words a
        charity lists for them ("yesterday" for This week), by yes or no, or, at a question, by
        words of only one label ("tina", "keep it"); empty if none."""
        shown = self._options(step, state)
        by_label = {self._label_key(state.locale, o.label): o.key for o in shown}
        whole = label_key(text)
        if whole in by_label:
            return (by_label[whole],)
        named = self._named_option(step, state, shown, whole)
        if named is not None:
            return (named,)
        parts = [p for p in whole.replace(",", " ").split() if p]
        if not parts or not all(p.isdecimal() and 1 <= int(p) <= len(shown) for p in parts):
            return ()
        if len(parts) > 1 and step.kind is not Kind.MULTI:
            return ()
        keys = [shown[int(p) - 1].key for p in parts]
        if len(keys) > 1 and any(k in ("skip", "leave", "done", "back") for k in keys):
            return ()
        return tuple(dict.fromkeys(keys))

    def _word_set(self, group: str) -> frozenset[str]:
        """A word list in every language at once, in the form typed answers are compared in."""
        found = self._word_sets.get(group)
        if found is None:
            found = self._word_sets[group] = frozenset(self.answering.words(group))
        return found

    def _named_option(self, step: Step, state: State, shown: list[OptionRef], typed: str) -> str | None:
        if not typed:
            return None
        for option in shown:
            if typed in self._word_set(f"answers:{option.label}"):
                return option.key
        for answer in ("yes", "no"):
            if typed not in self._word_set(answer):
                continue
            if step.dynamic == "likely":  # "Is anyone in danger right now?"
                return "danger" if answer == "yes" else "other"
            starting = [
                o.key
                for o in shown
                if self._label_key(state.locale, o.label).split(" ")[0].strip(",.!?") in self._word_set(answer)
            ]
            return starting[0] if len(starting) == 1 else None
        if not step.is_question:
            return None
        return self._by_words(state, shown, typed)

    def _by_words(self, state: State, shown: list[OptionRef], typed: str) -> str | None:
        """The one option whose label holds every typed word (or a word starting with it), the
        best covered when several do: "tina" is Crystal meth (Tina), "keep it" is Yes, keep it."""
        words = [w for w in typed.replace(",", " ").split() if w]
        if not words or len(words) > 6:
            return None
        best: list[tuple[float, str]] = []
        for option in shown:
            label = [w.strip("()'\",.") for w in self._label_key(state.locale, option.label).split()]
            label = [w for w in label if w]
            if all(any(lw == w or (len(w) >= 3 and lw.startswith(w)) for lw in label) for w in words):
                best.append((len(words) / len(label), option.key))
        best.sort(reverse=True)
        if not best or (len(best) > 1 and best[0][0] == best[1][0]):
            return None
        return best[0][1]

    def _pick(self, turn: _Turn, step: Step, keys: tuple[str, ...], typed: bool) -> None:
        first = keys[0]
        if first in ("leave", "next_page", "skip", "back") or first.startswith(LANGUAGE_SWITCH):
            self._pick_common(turn, step, first)
        elif step.dynamic is not None:
            self._pick_dynamic[step.dynamic](turn, step, first)
        elif step.kind is Kind.MULTI:
            self._pick_several(turn, step, keys, typed)
        elif step.kind is Kind.CHOICE:
            turn.state = turn.state.with_answer(step.field or step.key, (first,))
            self._advance(turn, step, step.option(first))
        else:
            option = step.option(first)
            if option is not None and option.goto:
                self._go(turn, option.goto)

    def _pick_common(self, turn: _Turn, step: Step, key: str) -> None:
        """The options any screen may have: leave, more, skip, back, another language."""
        state = turn.state
        if key == "leave":
            self._go(turn, "@exit")
        elif key == "next_page":
            turn.state = state.evolve(page=state.page + 1)
            self._prompt(turn, step)
        elif key == "skip":
            turn.state = state.with_answer(step.field, None) if step.field else state
            self._advance(turn, step, None)
        elif key == "back":
            self._go(turn, "review")
        else:  # the same screen again, in the language chosen
            turn.state = state.evolve(locale=key.removeprefix(LANGUAGE_SWITCH), detected=False)
            turn.say("language.changed")
            self._prompt(turn, step)

    @property
    def _pick_dynamic(self) -> dict[str, Callable[[_Turn, Step, str], None]]:
        """What choosing a computed option does, by the step's ``dynamic``."""
        return {
            "likely": lambda turn, step, key: self._go(
                turn, {"danger": "@emergency", "other": MENU}.get(key) or INTENT_TARGETS[key]
            ),
            "unlocked": lambda turn, step, key: self._later(turn, key),
            "recipients": self._pick_recipient,
            "locales": lambda turn, step, key: self._set_locale(turn, key),
            "fields": self._pick_field,
            "answered": self._pick_removal,
        }

    def _pick_recipient(self, turn: _Turn, step: Step, key: str) -> None:
        turn.state = turn.state.with_answer(step.field or step.key, (key,))
        self._advance(turn, step, None if key == "no" else Option(key, "", goto="consent.reply"))

    def _pick_field(self, turn: _Turn, step: Step, key: str) -> None:
        turn.state = turn.state.evolve(editing=True)
        self._go(turn, key)

    def _pick_removal(self, turn: _Turn, step: Step, key: str) -> None:
        removed = self.steps[key]
        turn.state = turn.state.with_answer(removed.field or "", None)
        if removed.field == "where":
            turn.state = turn.state.with_answer("borough", None)
        self._go(turn, "@review")

    def _pick_several(self, turn: _Turn, step: Step, keys: tuple[str, ...], typed: bool) -> None:
        """A button or one typed option ticks or unticks; several typed at once ("1, 3") answer."""
        state = turn.state
        if keys == ("done",) or (typed and len(keys) > 1):
            chosen = [k for k in (*state.picked, *keys) if k != "done"]
            if self._picked(state.picked, tuple(chosen)) != "input.picked":
                turn.say("report.not_your_fault")  # a rape or a spiking told in one go: said first
            turn.state = state.with_answer(step.field or step.key, tuple(dict.fromkeys(chosen)))
            self._advance(turn, step, None)
            return
        key = keys[0]
        picked = tuple(k for k in state.picked if k != key) if key in state.picked else (*state.picked, key)
        turn.state = state.evolve(picked=picked)
        turn.say(self._picked(state.picked, picked))
        self._prompt(turn, step)

    @staticmethod
    def _picked(before: tuple[str, ...], after: tuple[str, ...]) -> str:
        """What to say when choices are ticked: a sexual assault or a spiking, newly told, is met
        with warmth and "it is not your fault", never a bare "Noted."."""
        told = any(harm in after and harm not in before for harm in SEXUAL_HARMS)
        return "input.picked.sexual" if told else "input.picked"

    def _answer_text(self, turn: _Turn, step: Step, text: str, length: int) -> None:
        if step.next in ("@delete", "@check"):
            self._code_typed(turn, step, text)
        elif step.next == "@hold_answer":
            self._hold_answer(turn, step, text, length)
        elif not text:
            turn.say("input.unclear")
            self._reprompt(turn)
        elif step.validate is not None and self._known(turn.state.locale, step.validate, text) is None:
            urgent = urgent_in_answer(self._classify(turn, text), self.config.policy)
            if urgent:
                self._answer(turn, (urgent,))
            else:
                turn.say(f"{step.prompt}.unknown")
                self._reprompt(turn)
        else:
            self._keep_answer(turn, step, text, length)

    def _code_typed(self, turn: _Turn, step: Step, text: str) -> None:
        """A code, handed to its action (never kept as an answer); or words meaning something."""
        if canonical_code(text) is None:
            self._not_a_code(turn, step, text)
        elif step.next == "@delete":
            self._delete(turn, text)
        else:
            self._check(turn, text)

    def _hold_answer(self, turn: _Turn, step: Step, text: str, length: int) -> None:
        """An answer to staff, shown back before it goes. Urgent words get their help first:
        staff may not read an answer for hours."""
        urgent = ("overdose",) if self._says_emergency(text) else self._urgent(turn, text)
        if urgent:
            self._answer(turn, urgent)
            return
        if length > step.max_length:
            turn.say("input.too_long", limit=step.max_length)
        turn.state = turn.state.evolve(answer=text[: step.max_length])
        turn.say("relay.confirm.text", text=quote(turn.state.answer))
        self._go(turn, "relay.confirm")

    def _keep_answer(self, turn: _Turn, step: Step, text: str, length: int) -> None:
        if step.validate is not None:
            text = self._known(turn.state.locale, step.validate, text) or text
        if length > step.max_length:
            text = text[: step.max_length]
            turn.say("input.too_long", limit=step.max_length)
        turn.state = turn.state.with_answer(step.field or step.key, text)
        policy = self.config.policy
        now = "overdose" if self._says_emergency(text) else urgent_in_answer(self._classify(turn, text), policy)
        if now is None:
            self._advance(turn, step, None)
            return
        # Kept as the answer; help first, and "carry on" goes on to the next question.
        turn.state = turn.state.evolve(resume=step.next or "@review", editing=False)
        self._answer(turn, (now,))

    def _urgent(self, turn: _Turn, text: str) -> tuple[str, ...]:
        decision = decide(self._classify(turn, text), self.config.policy)
        return tuple(i for i in decision.intents if i in URGENT)

    def _not_a_code(self, turn: _Turn, step: Step, text: str) -> None:
        """Words where a code was asked for: understood like any free text when they mean
        something clearly; otherwise, how a code looks."""
        understood = self._classify(turn, text)
        decision = decide(understood, self.config.policy)
        meant = decision.intents[-1] if decision.intents else "other"
        if meant not in ("other", "greeting", "thanks") and INTENT_TARGETS[meant] != step.key:
            self._answer(turn, decision.intents)
            return
        turn.say("delete.malformed")
        self._prompt(turn, step)

    def _known(self, locale: str, group: str, text: str) -> str | None:
        """The list entry ``text`` names: exactly, or as the start of only one entry."""
        keyed = self._entry_keys.get((locale, group))
        if keyed is None:
            entries = self.lexicon.words(locale, group) or self.lexicon.words("en", group)
            keyed = self._entry_keys[(locale, group)] = tuple((e, label_key(e)) for e in entries)
        typed = label_key(text)
        exact = [e for e, key in keyed if key == typed]
        starts = [e for e, key in keyed if len(typed) >= 3 and key.startswith(typed)]
        found = exact or starts
        return found[0] if len(found) == 1 else None

    def _advance(self, turn: _Turn, step: Step, option: Option | None) -> None:
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
        self._go(turn, target or MENU)

    # ------------------------------------------------------------------ moving
    def _holds(self, condition: str | None, state: State) -> bool:
        if condition is None:
            return True
        if condition == "recipients":
            return bool(self.offers_for(state))
        if condition == "no_recipients":
            return not self.config.offers
        if condition == "nothing_to_send":  # a report unlocked by its code, that no one can be sent
            return not state.unlocked_sent and not self.offers_for(state, state.unlocked_what)
        if condition == "soit":
            return any(o.key == "soit" for o in self.offers_for(state))
        return bool(state.resume)

    @staticmethod
    def _recipient_words(offer: Offer) -> tuple[str, str]:
        """The button and the "who reads it, and how" sentence of a recipient."""
        who = f"recipient.{offer.key}.who" + (".via_support" if offer.via_support else "")
        return f"recipient.{offer.key}.label", who

    def offers_for(self, state: State, what: tuple[str, ...] | None = None) -> tuple[Offer, ...]:
        """Who this report may be sent to: a recipient limited to some harms only when the report
        names one of them ("what happened", or ``what`` given)."""
        if what is None:
            answer = state.answers.get("what", ())
            what = answer if isinstance(answer, tuple) else ()
        return tuple(o for o in self.config.offers if not o.only_for or set(o.only_for) & set(what))

    def _go(self, turn: _Turn, target: str) -> None:
        if target.startswith("@"):
            self._act(turn, target)
            return
        step = self.steps[target]
        if not self._holds(step.only_if, turn.state):
            self._go(turn, step.next or MENU)
            return
        likely = turn.state.likely if step.dynamic == "likely" else ()
        turn.state = turn.state.evolve(step=step.key, picked=(), page=0, likely=likely)
        self._prompt(turn, step)

    def _prompt(self, turn: _Turn, step: Step) -> None:
        pages = self._pages(step, turn.state)
        page = min(turn.state.page, pages - 1) if pages > 1 else None
        options = tuple(self._options(step, turn.state))
        prompt = next((m for c, m in step.variants if self._holds(c, turn.state)), step.prompt)
        turn.replies.append(Reply(message=prompt, options=options, step=step.key, page=page))

    def _reprompt(self, turn: _Turn) -> None:
        step = self.steps.get(turn.state.step)
        if step is None:
            self._go(turn, MENU)
        elif step.key == "review":
            self._go(turn, "@review")
        else:
            self._prompt(turn, step)

    def _leave_question(self, turn: _Turn) -> None:
        """Remember the question the person is leaving, so they can come back to it."""
        step = self.steps.get(turn.state.step)
        if step is not None and self._in_report(step) and not turn.state.resume:
            # What was ticked so far at a question taking several comes back with it.
            turn.state = turn.state.evolve(resume=step.key, resume_picked=turn.state.picked, picked=())

    def _go_back(self, turn: _Turn, target: str) -> None:
        """Back to the question left for an interruption, with whatever was ticked there."""
        ticked = turn.state.resume_picked
        turn.state = turn.state.evolve(resume="", resume_picked=())
        self._go_ticked(turn, target, ticked)

    def _go_ticked(self, turn: _Turn, target: str, ticked: tuple[str, ...]) -> None:
        """To ``target``; a question taking several shows ``ticked`` ticked again."""
        step = self.steps.get(target)
        if step is None or not ticked or step.kind is not Kind.MULTI:
            self._go(turn, target)
            return
        turn.state = turn.state.evolve(step=step.key, picked=ticked, page=0, likely=())
        self._prompt(turn, step)

    def _in_report(self, step: Step) -> bool:
        return self.steps.flow_of(step.key) in ("report", "consent") and step.key not in (
            "report.intro",
            "report.unfinished",
        )

    def _welcome(self, turn: _Turn) -> None:
        turn.say("welcome.notice")
        self._go(turn, MENU)

    def _set_locale(self, turn: _Turn, locale: str) -> None:
        turn.state = turn.state.evolve(locale=locale)
        turn.say("language.changed")
        target = turn.state.resume
        if target:
            turn.state = turn.state.evolve(resume="")
        self._go(turn, target or MENU)

    # ------------------------------------------------------------------ actions
    def _act(self, turn: _Turn, action: str) -> None:
        self._actions[action](turn)

    @property
    def _actions(self) -> dict[str, Callable[[_Turn], None]]:
        """What each action (a target starting with "@") does. ``flows.model.ACTIONS`` lists
        them, and building a FlowSet refuses any other."""
        return {
            "@emergency": lambda turn: self._urgent_screen(turn, "@emergency"),
            "@crisis": lambda turn: self._urgent_screen(turn, "@crisis"),
            "@greet": lambda turn: self._say_then_menu(turn, "greeting.reply"),
            "@other": lambda turn: self._say_then_menu(turn, "menu.unclear"),
            "@resume": lambda turn: self._go_back(turn, turn.state.resume or MENU),
            "@report": lambda turn: self._go(
                turn, "report.unfinished" if turn.state.holds_content or turn.state.resume else "report.intro"
            ),
            "@continue_report": lambda turn: self._go_back(turn, turn.state.resume or "@review"),
            "@restart_report": self._restart_report,
            "@review": self._review,
            "@erase": lambda turn: self._forget_then(turn, "report.erased"),
            "@cancel": lambda turn: self._forget_then(turn, "cancel.done"),
            "@exit": self._exit,
            "@finish": self._finish,
            "@relay": lambda turn: self._relay(turn, turn.state.answer),
            "@drop_answer": self._drop_answer,
            "@send_later": self._send_later,
        }

    def _urgent_screen(self, turn: _Turn, action: str) -> None:
        self._leave_question(turn)
        self._go(turn, ACTION_SCREENS[action])

    def _say_then_menu(self, turn: _Turn, message: str) -> None:
        turn.say(message)
        self._go(turn, MENU)

    def _restart_report(self, turn: _Turn) -> None:
        turn.effects.append(ForgetDraft())
        turn.state = State(locale=turn.state.locale)
        self._go(turn, "report.intro")

    def _forget_then(self, turn: _Turn, message: str) -> None:
        self._forget(turn)
        self._say_then_menu(turn, message)

    def _exit(self, turn: _Turn) -> None:
        turn.effects.extend((ForgetDraft(), WipeChat()))
        turn.state = State(locale=turn.state.locale)
        turn.say("exit.done")

    def _drop_answer(self, turn: _Turn) -> None:
        turn.state = turn.state.evolve(answer="")
        self._say_then_menu(turn, "relay.confirm.dropped")

    def _forget(self, turn: _Turn) -> None:
        turn.effects.append(ForgetDraft())
        turn.state = State(locale=turn.state.locale)

    def summary(self, answers: dict[str, Answer] | State) -> Summary:
        """The summary of ``answers``, in question order; consent choices are not part of it."""
        held = answers.answers if isinstance(answers, State) else answers
        lines: list[SummaryLine] = []
        for question in self.steps.questions():
            value = held.get(question.field or "")
            if value is None:
                continue
            label = question.summary_label or question.prompt
            if isinstance(value, str):
                lines.append(SummaryLine(question.field or "", label, text=value))
            else:
                labels = tuple(o.label for key in value if (o := question.option(key)) is not None)
                lines.append(SummaryLine(question.field or "", label, choices=labels))
        return Summary(tuple(lines))

    def _review(self, turn: _Turn) -> None:
        state = turn.state.evolve(editing=False, resume="")
        consentless = {k: v for k, v in state.answers.items() if not k.startswith("consent.")}
        turn.state = state.evolve(answers=consentless)
        summary = self.summary(turn.state)
        if not summary.lines:
            self._forget(turn)
            turn.say("review.empty")
            self._go(turn, MENU)
            return
        turn.say("review.summary", summary=summary)
        self._go(turn, "review")

    def _finish(self, turn: _Turn) -> None:
        answers = turn.state.answers
        keep = answers.get("consent.keep") == ("yes",)
        sent = answers.get("consent.send", ("no",))
        send_to = sent[0] if isinstance(sent, tuple) and sent and sent[0] != "no" else None
        allow_reply = send_to is not None and answers.get("consent.reply") == ("yes",)
        content = {k: v for k, v in answers.items() if not k.startswith("consent.")}
        self._forget(turn)
        if not keep and send_to is None:
            turn.say("report.nothing_kept")
            self._go(turn, MENU)
            return
        reference, code = self.tokens.reference(), self.tokens.code()
        what = content.get("what", ())
        turn.effects.insert(
            0,
            StoreReport(
                reference=reference,
                code=code,
                summary=content,
                categories=what if isinstance(what, tuple) else (),
                keep=keep,
                send_to=send_to,
                allow_reply=allow_reply,
                questionnaire_version=QUESTIONNAIRE_VERSION,
            ),
        )
        if send_to:
            offer = next((o for o in self.config.offers if o.key == send_to), Offer(send_to))
            who = MessageRef(self._recipient_words(offer)[1])
            turn.replies.append(Reply("report.sent", {"reference": reference, "code": code, "who": who}))
        else:
            turn.say("report.kept", reference=reference, code=code)
        self._go(turn, MENU)

    def _menu_prompt(self, turn: _Turn) -> Reply:
        turn.state = turn.state.evolve(step=MENU)
        menu = self.steps[MENU]
        return Reply(message=menu.prompt, options=tuple(self._options(menu, turn.state)), step=MENU)

    def _relayed(self, turn: _Turn, event: Relayed) -> None:
        """Staff wrote (or acknowledged, or closed): tell the person, keep their place."""
        self._leave_question(turn)
        if event.kind == "ack":
            turn.say("relay.ack", reference=event.reference)
            self._reprompt(turn)
            return
        if event.kind == "closed":
            if turn.state.relay == event.reference:
                turn.state = turn.state.evolve(relay="")
            turn.say("relay.closed", reference=event.reference)
            self._reprompt(turn)
            return
        turn.state = turn.state.evolve(relay=event.reference)
        turn.say("relay.incoming", reference=event.reference, text=quote(event.text))
        self._go(turn, "relay.incoming")

    def _relay(self, turn: _Turn, text: str) -> None:
        """Send the person's answer (confirmed) to staff, if the relay is still open."""
        reference = turn.state.relay
        turn.state = turn.state.evolve(answer="")
        if not reference or not text:
            turn.say("relay.nothing_open")
            self._go(turn, MENU)
            return
        prompt = self._menu_prompt(turn)
        sent: tuple[Reply, ...] = (Reply("relay.sent", {"reference": reference}), prompt)
        closed = (Reply("relay.closed", {"reference": reference}), prompt)
        turn.effects.append(RelayToStaff(reference=reference, text=text, sent=sent, closed=closed))

    # ------------------------------------------------------------------ deciding later, with the code
    def _unlocked(self, turn: _Turn, event: Unlocked) -> None:
        self._leave_question(turn)
        turn.state = turn.state.evolve(
            unlocked=event.reference,
            unlocked_what=event.what,
            unlocked_sent=event.send_to is not None,
            unlocked_reply=event.allow_reply,
            pending_send="",
        )
        if event.released:
            turn.say("check.released", count=event.released)
        turn.say(f"check.{event.status}")
        self._go(turn, "check.choices")

    def _later(self, turn: _Turn, choice: str) -> None:
        state = turn.state
        if choice == "menu":
            turn.state = state.evolve(unlocked="")
            self._go(turn, MENU)
        elif choice == "erase":
            prompt = self._menu_prompt(turn)
            turn.state = turn.state.evolve(unlocked="")
            turn.effects.append(
                EraseReport(
                    code="",
                    reference=state.unlocked,
                    erased=(Reply("delete.done"), prompt),
                    not_found=(Reply("check.gone"), prompt),
                )
            )
        elif choice in ("allow_replies", "stop_replies"):
            allow = choice == "allow_replies"
            turn.state = state.evolve(unlocked_reply=allow)
            done = Reply("check.replies_allowed" if allow else "check.replies_stopped")
            self._change(turn, None, allow, done)
        elif choice.startswith("send."):
            turn.state = state.evolve(pending_send=choice.removeprefix("send."))
            self._go(turn, "check.reply")

    def _send_later(self, turn: _Turn) -> None:
        state = turn.state
        allow = state.answers.get("consent.later_reply") == ("yes",)
        recipient = state.pending_send
        turn.state = state.with_answer("consent.later_reply", None).evolve(pending_send="", unlocked_sent=True)
        offer = next((o for o in self.config.offers if o.key == recipient), Offer(recipient))
        done = Reply("check.sent_now", {"who": MessageRef(self._recipient_words(offer)[1])})
        self._change(turn, recipient, allow, done)

    def _change(self, turn: _Turn, send_to: str | None, allow: bool | None, done: Reply) -> None:
        reference = turn.state.unlocked
        prompt = self._menu_prompt(turn)
        turn.state = turn.state.evolve(unlocked="")
        turn.effects.append(
            ChangeConsent(
                reference=reference,
                send_to=send_to,
                allow_reply=allow,
                done=(done, prompt),
                gone=(Reply("check.gone"), prompt),
            )
        )

    def _check(self, turn: _Turn, typed: str) -> None:
        code = canonical_code(typed)
        if code is None:
            turn.say("check.how")
            self._go(turn, MENU)
            return
        prompt = self._menu_prompt(turn)
        statuses = ("kept", "queued", "sent", "acknowledged", "closed")
        turn.effects.append(
            CheckReport(
                code=code,
                by_status={s: (Reply(f"check.{s}"), prompt) for s in statuses},
                not_found=(Reply("delete.not_found"), prompt),
                released=Reply("check.released"),
            )
        )

    def _delete(self, turn: _Turn, typed: str) -> None:
        code = canonical_code(typed)
        if code is None:
            turn.say("delete.malformed")
            self._go(turn, "delete.ask")
            return
        prompt = self._menu_prompt(turn)
        turn.effects.append(
            EraseReport(
                code=code,
                erased=(Reply("delete.done"), prompt),
                not_found=(Reply("delete.not_found"), prompt),
            )
        )
