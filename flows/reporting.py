"""The report: words typed as answers (kept, shown back, or checked against a list), the summary
and its review, and finishing it: kept, sent, or nothing kept, as the person chose. Also
forgetting a draft and the quick exit."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flows.codes import Tokens, canonical_code
from flows.config import EngineConfig
from flows.definitions import MENU, QUESTIONNAIRE_VERSION
from flows.effects import ForgetDraft, NameOffender, StoreReport, WipeChat
from flows.identifiers import identify
from flows.model import FlowSet, Step
from flows.navigation import Navigator
from flows.replies import MessageRef, Reply, Summary, SummaryLine
from flows.state import Answer, State
from flows.text import quote
from flows.triage import Triage
from flows.turn import Turn
from flows.typed_options import TypedOptions

# Typed where a name is asked, this many words or fewer are a name, not a sentence to understand.
NAME_WORDS = 3


class Reporting:
    def __init__(
        self,
        config: EngineConfig,
        steps: FlowSet,
        tokens: Tokens,
        navigator: Navigator,
        typed: TypedOptions,
        triage: Triage,
        with_code: Mapping[str, Callable[[Turn, str], None]],
    ) -> None:
        self.config = config
        self.steps = steps
        self.tokens = tokens
        self.nav = navigator
        self.typed = typed
        self.triage = triage
        self.with_code = with_code  # "@check" and "@delete": what a code typed at their question does

    # ------------------------------------------------------------------ typed answers
    def answer_text(self, turn: Turn, step: Step, text: str, length: int) -> None:
        if step.next in self.with_code:
            self._code_typed(turn, step, text)
        elif step.next == "@hold_answer":
            self._hold_answer(turn, step, text, length)
        elif step.next == "@identify":
            self._identify(turn, step, text)
        elif not text:
            turn.say("input.unclear")
            self.nav.reprompt(turn)
        elif step.validate is not None and self.typed.known(turn.state.locale, step.validate, text) is None:
            urgent = self.triage.clearly_urgent(turn, text)
            if urgent:
                self.triage.answer(turn, (urgent,))
            else:
                turn.say(f"{step.prompt}.unknown")
                self.nav.reprompt(turn)
        else:
            self._keep_answer(turn, step, text, length)

    def _code_typed(self, turn: Turn, step: Step, text: str) -> None:
        """A code, handed to its action (never kept as an answer); or words meaning something."""
        if canonical_code(text) is None:
            self.triage.not_a_code(turn, step, text)
        else:
            self.with_code[step.next or ""](turn, text)

    def _hold_answer(self, turn: Turn, step: Step, text: str, length: int) -> None:
        """An answer to staff, shown back before it goes. Urgent words get their help first:
        staff may not read an answer for hours."""
        urgent = self.triage.urgent(turn, text)
        if urgent:
            self.triage.answer(turn, urgent)
            return
        if length > step.max_length:
            turn.say("input.too_long", limit=step.max_length)
        turn.state = turn.state.evolve(answer=text[: step.max_length])
        turn.say("relay.confirm.text", text=quote(turn.state.answer))
        self.nav.go(turn, "relay.confirm")

    def _identify(self, turn: Turn, step: Step, text: str) -> None:
        """Who did it, as the person can name them. An emergency phrase gets help first, and so do
        longer words clearly about an overdose or suicide; a few words are a name ("his mate")."""
        sentence = len(text.split()) > NAME_WORDS
        urgent = self.triage.urgent_in_answer(turn, text) if sentence else self.triage.emergency_phrase(text)
        if urgent:
            self.triage.answer(turn, (urgent,))
            return
        kind = step.key.removeprefix("match.")
        found = identify(kind, text[: step.max_length], self.typed.labels.all_words("apps"), turn.state.locale)
        if found is None:
            turn.say(f"{step.prompt}.unknown")
            self.nav.reprompt(turn)
            return
        reference = turn.state.unlocked
        before = len(turn.replies)
        turn.state = turn.state.evolve(unlocked_named=turn.state.unlocked_named + 1)
        turn.say("match.added")
        self.nav.go(turn, "match.more")
        added = tuple(turn.replies[before:])
        del turn.replies[before:]
        gone = (Reply("check.gone"), *added[-1:])
        effect = NameOffender(reference, found.kind, found.canonical, found.shown, added=added, gone=gone)
        turn.effects.append(effect)

    def _keep_answer(self, turn: Turn, step: Step, text: str, length: int) -> None:
        if step.validate is not None:
            text = self.typed.known(turn.state.locale, step.validate, text) or text
        if length > step.max_length:
            text = text[: step.max_length]
            turn.say("input.too_long", limit=step.max_length)
        turn.state = turn.state.with_answer(step.field or step.key, text)
        now = self.triage.urgent_in_answer(turn, text)
        if now is None:
            self.nav.advance(turn, step, None)
            return
        # Kept as the answer; help first, and "carry on" goes on to the next question.
        turn.state = turn.state.evolve(resume=step.next or "@review", editing=False)
        self.triage.answer(turn, (now,))

    # ------------------------------------------------------------------ the summary and finishing
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

    def review(self, turn: Turn) -> None:
        state = turn.state.evolve(editing=False, resume="")
        consentless = {k: v for k, v in state.answers.items() if not k.startswith("consent.")}
        turn.state = state.evolve(answers=consentless)
        summary = self.summary(turn.state)
        if not summary.lines:
            self.forget(turn)
            turn.say("review.empty")
            self.nav.go(turn, MENU)
            return
        turn.say("review.summary", summary=summary)
        self.nav.go(turn, "review")

    def finish(self, turn: Turn) -> None:
        answers = turn.state.answers
        keep = answers.get("consent.keep") == ("yes",)
        sent = answers.get("consent.send", ("no",))
        send_to = sent[0] if isinstance(sent, tuple) and sent and sent[0] != "no" else None
        allow_reply = send_to is not None and answers.get("consent.reply") == ("yes",)
        content = {k: v for k, v in answers.items() if not k.startswith("consent.")}
        self.forget(turn)
        if not keep and send_to is None:
            turn.say("report.nothing_kept")
            self.nav.go(turn, MENU)
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
            who = MessageRef(self.config.offer(send_to).words[1])
            turn.replies.append(Reply("report.sent", {"reference": reference, "code": code, "who": who}))
        else:
            turn.say("report.kept", reference=reference, code=code)
        categories = what if isinstance(what, tuple) else ()
        if self.config.may_name(categories):
            # Naming who did it is offered right after the code, never pushed.
            turn.state = turn.state.evolve(unlocked=reference, unlocked_what=categories, unlocked_sent=bool(send_to))
            self.nav.go(turn, "match.offer")
            return
        self.nav.go(turn, MENU)

    # ------------------------------------------------------------------ forgetting
    def forget(self, turn: Turn) -> None:
        turn.effects.append(ForgetDraft())
        turn.state = State(locale=turn.state.locale)

    def forget_then(self, turn: Turn, message: str) -> None:
        self.forget(turn)
        self.nav.say_then_menu(turn, message)

    def restart(self, turn: Turn) -> None:
        self.forget(turn)
        self.nav.go(turn, "report.intro")

    def exit(self, turn: Turn) -> None:
        turn.effects.extend((ForgetDraft(), WipeChat()))
        turn.state = State(locale=turn.state.locale)
        turn.say("exit.done")
