"""After a report: deciding later with the code (check it, send it, allow or stop replies, erase
it) and the relay with staff (their message, acknowledgement or closing; the person's answer)."""

from __future__ import annotations

from flows.codes import canonical_code
from flows.config import EngineConfig
from flows.definitions import MENU
from flows.effects import ChangeConsent, CheckReport, EraseReport, ForgetNames, MatchChoice, RelayToStaff
from flows.events import Relayed, Unlocked
from flows.navigation import Navigator
from flows.replies import MessageRef, OptionRef, Reply
from flows.state import State
from flows.text import quote
from flows.turn import Turn

STATUSES = ("kept", "queued", "sent", "acknowledged", "closed")


class Later:
    def __init__(self, config: EngineConfig, navigator: Navigator) -> None:
        self.config = config
        self.nav = navigator

    # ------------------------------------------------------------------ with the code
    def check(self, turn: Turn, typed: str) -> None:
        code = canonical_code(typed)
        if code is None:
            turn.say("check.how")
            self.nav.go(turn, MENU)
            return
        prompt = self.nav.menu_prompt(turn)
        turn.effects.append(
            CheckReport(
                code=code,
                by_status={s: (Reply(f"check.{s}"), prompt) for s in STATUSES},
                not_found=(Reply("delete.not_found"), prompt),
                released=Reply("check.released"),
            )
        )

    def delete(self, turn: Turn, typed: str) -> None:
        code = canonical_code(typed)
        if code is None:
            turn.say("delete.malformed")
            self.nav.go(turn, "delete.ask")
            return
        prompt = self.nav.menu_prompt(turn)
        turn.effects.append(
            EraseReport(
                code=code,
                erased=(Reply("delete.done"), prompt),
                not_found=(Reply("delete.not_found"), prompt),
            )
        )

    def unlocked(self, turn: Turn, event: Unlocked) -> None:
        self.nav.leave_question(turn)
        turn.state = turn.state.evolve(
            unlocked=event.reference,
            unlocked_what=event.what,
            unlocked_sent=event.send_to is not None,
            unlocked_reply=event.allow_reply,
            unlocked_named=event.named,
            pending_send="",
        )
        if event.released:
            turn.say("check.released", count=event.released)
        turn.say(f"check.{event.status}")
        self.nav.go(turn, "check.choices")

    def options(self, state: State) -> list[OptionRef]:
        """With the code: send it (if not sent), allow or stop replies (if sent), erase it."""
        if not state.unlocked_sent:
            offers = self.config.offers_for(state, state.unlocked_what)
            shown = [OptionRef(f"send.{o.key}", o.words[0]) for o in offers]
        elif state.unlocked_reply:
            shown = [OptionRef("stop_replies", "check.stop_replies")]
        else:
            shown = [OptionRef("allow_replies", "check.allow_replies")]
        if self.config.may_name(state.unlocked_what):
            shown.append(OptionRef("name", "check.name"))
        if state.unlocked_named:
            shown.append(OptionRef("unname", "check.unname"))
        return [*shown, OptionRef("erase", "check.erase"), OptionRef("menu", "option.menu")]

    def choose(self, turn: Turn, choice: str) -> None:
        state = turn.state
        if choice == "menu":
            turn.state = state.evolve(unlocked="")
            self.nav.go(turn, MENU)
        elif choice == "erase":
            prompt = self.nav.menu_prompt(turn)
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
            self.nav.go(turn, "check.reply")
        elif choice == "name":
            self.nav.go(turn, "match.kind")
        elif choice == "unname":
            self.unname(turn)

    def send(self, turn: Turn) -> None:
        state = turn.state
        allow = state.answers.get("consent.later_reply") == ("yes",)
        recipient = state.pending_send
        turn.state = state.with_answer("consent.later_reply", None).evolve(pending_send="", unlocked_sent=True)
        done = Reply("check.sent_now", {"who": MessageRef(self.config.offer(recipient).words[1])})
        self._change(turn, recipient, allow, done)

    def _change(self, turn: Turn, send_to: str | None, allow: bool | None, done: Reply) -> None:
        reference = turn.state.unlocked
        prompt = self.nav.menu_prompt(turn)
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

    # ------------------------------------------------------------------ the relay with staff
    def relayed(self, turn: Turn, event: Relayed) -> None:
        """Staff wrote (or acknowledged, or closed): tell the person, keep their place."""
        self.nav.leave_question(turn)
        if event.kind == "ack":
            turn.say("relay.ack", reference=event.reference)
            self.nav.reprompt(turn)
            return
        if event.kind == "matched":
            # Someone else named the same person: what happens next is the person's choice.
            turn.state = turn.state.evolve(relay=event.reference)
            turn.say("match.found", reference=event.reference)
            self.nav.go(turn, "match.found")
            return
        if event.kind == "closed":
            if turn.state.relay == event.reference:
                turn.state = turn.state.evolve(relay="")
            turn.say("relay.closed", reference=event.reference)
            self.nav.reprompt(turn)
            return
        turn.state = turn.state.evolve(relay=event.reference)
        turn.say("relay.incoming", reference=event.reference, text=quote(event.text))
        self.nav.go(turn, "relay.incoming")

    def relay(self, turn: Turn) -> None:
        """Send the person's answer (confirmed) to staff, if the relay is still open."""
        reference, text = turn.state.relay, turn.state.answer
        turn.state = turn.state.evolve(answer="")
        if not reference or not text:
            turn.say("relay.nothing_open")
            self.nav.go(turn, MENU)
            return
        prompt = self.nav.menu_prompt(turn)
        sent: tuple[Reply, ...] = (Reply("relay.sent", {"reference": reference}), prompt)
        closed = (Reply("relay.closed", {"reference": reference}), prompt)
        turn.effects.append(RelayToStaff(reference=reference, text=text, sent=sent, closed=closed))

    # ------------------------------------------------------------------ who did it
    def unname(self, turn: Turn) -> None:
        """Everyone the person named on the unlocked report is removed."""
        reference = turn.state.unlocked
        prompt = self.nav.menu_prompt(turn)
        turn.state = turn.state.evolve(unlocked="", unlocked_named=0)
        done, gone = (Reply("match.removed"), prompt), (Reply("check.gone"), prompt)
        turn.effects.append(ForgetNames(reference=reference, done=done, gone=gone))

    def match_done(self, turn: Turn) -> None:
        turn.state = turn.state.evolve(unlocked="", unlocked_named=0)
        self.nav.go(turn, MENU)

    def match_choice(self, turn: Turn, choice: str) -> None:
        """After a match: talk to the caseworker, or go to the police with support."""
        reference = turn.state.relay
        prompt = self.nav.menu_prompt(turn)
        if not reference:
            turn.replies.extend((Reply("relay.nothing_open"), prompt))
            return
        sent = (Reply(f"match.chosen.{choice}", {"reference": reference}), prompt)
        closed = (Reply("relay.closed", {"reference": reference}), prompt)
        turn.effects.append(MatchChoice(reference=reference, choice=choice, sent=sent, closed=closed))

    def drop_answer(self, turn: Turn) -> None:
        turn.state = turn.state.evolve(answer="")
        self.nav.say_then_menu(turn, "relay.confirm.dropped")
