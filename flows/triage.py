"""Free text, understood: help for what it means, urgent help first, a short triage question when
nothing is clear, and the language the person writes in.

Safety comes first: an overdose or suicidal thoughts interrupt any question (and the person can
come back to it); at a question, only words clearly about them do ("i dont want to give my name"
is not a crisis)."""

from __future__ import annotations

from flows.answering import Answering, Reading
from flows.choosing import picked_message
from flows.config import EngineConfig
from flows.definitions import INTENT_TARGETS, TRIAGE_LABELS, TRIAGE_OFFERS, URGENT_MESSAGES
from flows.lexicon import Lexicon
from flows.model import FlowSet, Kind, Step
from flows.navigation import Navigator
from flows.replies import Reply
from flows.text import label_key, matches
from flows.turn import Turn
from flows.understanding import HARMS, URGENT, Understander, Understanding, band, decide, urgent_in_answer, with_hint

# Screens an action shows, for saying a screen's words without moving to it.
ACTION_SCREENS = {"@emergency": "emergency", "@crisis": "crisis", "@report": "report.intro"}
# Fewer different letters than this say nothing about a language ("k", "hmm", "aaaa").
MIN_DISTINCT_LETTERS = 4
UNCHECKED = "language.unchecked"


class Triage:
    def __init__(
        self,
        lexicon: Lexicon,
        config: EngineConfig,
        steps: FlowSet,
        understander: Understander,
        answering: Answering,
        navigator: Navigator,
    ) -> None:
        self.lexicon = lexicon
        self.policy = config.policy
        self.steps = steps
        self.understander = understander
        self.answering = answering
        self.nav = navigator
        self._short: dict[str, tuple[str, ...]] | None = None
        self._emergency_words: tuple[str, ...] | None = None

    # ------------------------------------------------------------------ what the words mean
    def classify(self, turn: Turn, text: str) -> Understanding:
        """What ``text`` means, worked out once a turn however many rules ask."""
        if turn.classified is not None and turn.classified[0] == text:
            understood = turn.classified[1]
        else:
            understood = with_hint(self.understander.understand(text), turn.hint, self.policy)
            turn.classified = (text, understood)
        turn.understood = f"{understood.intent}/{band(understood.confidence)}"
        return understood

    def says_emergency(self, text: str) -> bool:
        """An unmistakable emergency phrase, in any of the bot's languages: help first, always."""
        if self._emergency_words is None:
            self._emergency_words = tuple(
                sorted({w for locale in self.lexicon.locales for w in self.lexicon.words(locale, "emergency")})
            )
        return matches(text, self._emergency_words)

    def emergency_phrase(self, text: str) -> str | None:
        return "overdose" if self.says_emergency(text) else None

    def urgent(self, turn: Turn, text: str) -> tuple[str, ...]:
        """Urgent help the words ask for, read recall-first as a first message is."""
        if self.says_emergency(text):
            return ("overdose",)
        decision = decide(self.classify(turn, text), self.policy)
        return tuple(i for i in decision.intents if i in URGENT)

    def urgent_in_answer(self, turn: Turn, text: str) -> str | None:
        """Urgent help inside an answer: an emergency phrase, or words clearly about it."""
        if self.says_emergency(text):
            return "overdose"
        return self.clearly_urgent(turn, text)

    def clearly_urgent(self, turn: Turn, text: str) -> str | None:
        """Urgent help the words are clearly about, by what they mean (at a question, only these
        interrupt it)."""
        return urgent_in_answer(self.classify(turn, text), self.policy)

    # ------------------------------------------------------------------ answering it
    def understand(self, turn: Turn, text: str, first_contact: bool) -> None:
        """Free text where no question waits: answer what it means, or ask a triage question."""
        understood = self.classify(turn, text)
        self.follow_language(turn, understood, text)
        decision = decide(understood, self.policy)
        if decision.intents:
            self.answer(turn, decision.intents, first_contact)
            return
        if first_contact:
            turn.say("welcome.notice")
        self._triage(turn, decision.likely)

    def answer(self, turn: Turn, intents: tuple[str, ...], first_contact: bool = False) -> None:
        """Help for each intent, in order: every screen but the last is said without its buttons."""
        targets = [INTENT_TARGETS[intent] for intent in intents]
        if any(intent in URGENT for intent in intents):
            self.nav.leave_question(turn)
        for target in targets[:-1]:
            screen = ACTION_SCREENS.get(target, target)
            turn.say(self.steps[screen].prompt)
        last = targets[-1]
        if last in ("@greet", "@other") and first_contact:
            self.nav.welcome(turn)
        else:
            self.nav.go(turn, last)

    def urgent_first(self, turn: Turn, text: str, reading: Reading) -> bool:
        """Urgent help before a typed answer, when the words are clearly about it; the person
        comes back to this question. Words that would end the questions ("i want to finish it
        all") are read recall-first, as a first message is."""
        self.classify(turn, text)  # what the words mean is logged even when a phrase decides
        if reading.move == "finish":
            now = self.urgent(turn, text)
        else:
            found = self.urgent_in_answer(turn, text)
            now = (found,) if found else ()
        if not now:
            return False
        self.nav.leave_question(turn)
        self.answer(turn, now)
        return True

    def after_emergency(self, turn: Turn, step: Step, text: str) -> bool:
        """The next message after emergency help gets the next thing, never the same block:
        the crew has arrived, will the police come, or it is still happening (CPR)."""
        # Not breathing, or still in danger: what to do now (CPR), then a short "keep going".
        still = "emergency.still" if step.key in ("emergency.cpr", "emergency.still") else "emergency.cpr"
        if self.says_emergency(text):
            # "the ambulance is on its way, he's not breathing": what to do now comes first.
            turn.understood = "overdose/words"
            self.nav.go(turn, still)
            return True
        if self.answering.named_words("arrived", text, turn.state.locale):
            self.nav.go(turn, "emergency.arrived")
            return True
        understood = self.classify(turn, text)
        if self.answering.words("police").spans(label_key(text)) or understood.intent == "advice_police":
            self.nav.go(turn, "emergency.police")
            return True
        if decide(understood, self.policy).intents[:1] == ("overdose",):
            turn.understood = "overdose/after"
            self.nav.go(turn, still)
            return True
        return False

    def off_question(self, turn: Turn, step: Step, text: str) -> None:
        """Typed words at a question with options that name none of them."""
        urgent = self.clearly_urgent(turn, text)
        if urgent:
            self.answer(turn, (urgent,))
            return
        decision = decide(self.classify(turn, text), self.policy)
        named = tuple(i for i in decision.intents if i in HARMS and step.option(i) is not None)
        if step.kind is Kind.MULTI and named:
            # "he took my phone" at "what happened?": tick what they told us.
            before = turn.state.picked
            turn.state = turn.state.evolve(picked=tuple(dict.fromkeys((*turn.state.picked, *named))))
            turn.say(picked_message(before, turn.state.picked))
            self.nav.prompt(turn, step)
            return
        turn.say("input.unclear")
        self.nav.reprompt(turn)

    def not_a_code(self, turn: Turn, step: Step, text: str) -> None:
        """Words where a code was asked for: understood like any free text when they mean
        something clearly; otherwise, how a code looks."""
        decision = decide(self.classify(turn, text), self.policy)
        meant = decision.intents[-1] if decision.intents else "other"
        if meant not in ("other", "greeting", "thanks") and INTENT_TARGETS[meant] != step.key:
            self.answer(turn, decision.intents)
            return
        turn.say("delete.malformed")
        self.nav.prompt(turn, step)

    def _triage(self, turn: Turn, likely: tuple[str, ...]) -> None:
        offered: list[str] = []
        labels: set[str] = set()
        for intent in likely:
            label = TRIAGE_LABELS.get(intent)
            if label is not None and label not in labels:
                offered.append(intent)
                labels.add(label)
        turn.state = turn.state.evolve(likely=tuple(offered[:TRIAGE_OFFERS]))
        self.nav.go(turn, "triage")

    # ------------------------------------------------------------------ the person's language
    def follow_language(self, turn: Turn, understood: Understanding, text: str) -> None:
        """Answer in the language the person writes in, when it is clear, with a one-tap switch.
        A word or two ("czesc", "ajutor") is too short for the model: it counts when the shipped
        examples and word lists use it in one language only."""
        policy = self.policy
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

    def tell_unchecked(self, turn: Turn) -> None:
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

    def _short_languages(self) -> dict[str, tuple[str, ...]]:
        if self._short is None:
            found: dict[str, set[str]] = {}
            for example in self.lexicon.examples():
                short = sum(ch.isalpha() for ch in example.text) < self.policy.language_min_letters
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
