"""The report: every question skippable, answers by number or label, review, consent, codes."""

from __future__ import annotations

import re

import pytest

from flows import Engine, State
from flows.effects import EraseReport, ForgetDraft, StoreReport
from flows.events import Text
from responses import Renderer
from tests.helpers import Chat, text_of

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


def start_report(chat: Chat) -> None:
    chat.send("/report")
    said = text_of(chat.said[-1:])
    assert "Nothing is kept unless you say yes" in said
    chat.tap("Start")


def answer_everything(chat: Chat, account: str = "He took my phone.") -> None:
    start_report(chat)
    chat.send("1, 2")  # two kinds of harm typed at once
    chat.send("Today")  # by label
    chat.send("1")  # London, by number
    chat.send("lambeth")
    chat.tap("G (GHB or GBL)")
    chat.tap("Done")
    chat.send(account)
    chat.tap("Yes")
    chat.tap("The police")
    chat.send("2")
    chat.send("done")


def skip_until(chat: Chat, step: str) -> None:
    """Skip questions until ``step`` is asked (at most 20: a loop that cannot end is a failure)."""
    for _ in range(20):
        if chat.step == step:
            return
        chat.send("skip")
    raise AssertionError(f"never reached {step}; stuck at {chat.step}")


def stored(chat: Chat) -> list[StoreReport]:
    return [e for e in chat.effects if isinstance(e, StoreReport)]


def test_the_intro_says_what_is_kept_before_the_first_question(chat: Chat) -> None:
    chat.send("/report")
    said = chat.said[-1].text
    assert "not anonymous" in said and "24 hours" in said and "90 days" in said
    assert chat.state.answers == {}


def test_a_full_report_shows_the_exact_summary_before_anything_is_kept(chat: Chat) -> None:
    answer_everything(chat, account="Unique words 4471")
    summary = chat.said[-2].text
    assert "• What happened: Sexual assault or rape, Given drugs without agreeing" in summary
    assert "• When: Today" in summary
    assert "• Borough: Lambeth" in summary
    assert "• In your words: Unique words 4471" in summary
    assert "• What would help: Talking to someone" in summary
    assert chat.step == "review"
    assert not stored(chat)


def test_keeping_gives_a_reference_and_a_code_of_at_least_64_bits(chat: Chat) -> None:
    answer_everything(chat)
    chat.tap("Yes, it's right")
    chat.tap("Yes, keep it")
    [report] = stored(chat)
    assert report.keep and report.send_to is None
    said = text_of(chat.said[-2:])
    assert f"Reference: {report.reference}" in said and f"Secret code: {report.code}" in said
    assert report.summary["what"] == ("assault", "drugged")
    assert report.summary["account"] == "He took my phone."
    assert not any(k.startswith("consent") for k in report.summary)
    assert chat.state.answers == {}


def test_real_codes_have_80_bits_in_the_documented_form(responses: object) -> None:
    from flows.codes import ALPHABET, RandomTokens, canonical_code

    tokens = RandomTokens()
    codes = {tokens.code() for _ in range(200)}
    assert len(codes) == 200 and all(CODE.match(c) for c in codes)
    assert len(ALPHABET) ** 16 >= 2**64
    assert re.match(r"^[0-9A-Z]{4}-[0-9A-Z]{4}$", tokens.reference())
    assert canonical_code("7k2p qx9d m4ta 8bwe") == "7K2P-QX9D-M4TA-8BWE"
    assert canonical_code("7K2P-QX9D") is None


def test_declining_keeps_nothing_and_forgets_the_draft(chat: Chat) -> None:
    answer_everything(chat)
    chat.tap("Yes, it's right")
    said = text_of(chat.tap("No, don't keep it"))
    assert "Nothing was kept" in said
    assert not stored(chat)
    assert any(isinstance(e, ForgetDraft) for e in chat.effects)
    assert chat.state.answers == {}


def test_erase_it_all_from_the_review(chat: Chat) -> None:
    answer_everything(chat)
    said = text_of(chat.tap("Erase it all"))
    assert "Erased" in said and chat.state.answers == {} and not stored(chat)


def test_every_question_can_be_skipped(chat: Chat) -> None:
    start_report(chat)
    asked = []
    for _ in range(20):
        if not chat.step.startswith("report."):
            break
        asked.append(chat.step)
        chat.send("skip")
    assert asked == [
        "report.what",
        "report.when",
        "report.where",
        "report.substances",
        "report.account",
        "report.app",
        "report.elsewhere",
        "report.wants",
    ]
    assert "nothing to keep" in chat.said[-2].text and chat.step == "menu"


def test_changing_an_answer_returns_to_the_review(chat: Chat) -> None:
    answer_everything(chat)
    chat.tap("Change an answer")
    chat.tap("When")
    chat.tap("Longer ago")
    assert chat.step == "review"
    assert "• When: Longer ago" in chat.said[-2].text


def test_changing_where_to_london_asks_for_the_borough_then_returns(chat: Chat) -> None:
    start_report(chat)
    for _ in range(2):
        chat.send("skip")
    chat.tap("Somewhere else")
    skip_until(chat, "review")
    chat.tap("Change an answer")
    chat.tap("Where")
    chat.tap("In London")
    assert chat.step == "report.borough"
    chat.send("Tower Ham")
    assert chat.step == "review"
    assert "• Borough: Tower Hamlets" in chat.said[-2].text


def test_removing_an_answer_takes_it_out_of_the_summary(chat: Chat) -> None:
    answer_everything(chat, account="words to remove")
    chat.tap("Remove an answer")
    chat.tap("In your words")
    assert "words to remove" not in chat.said[-2].text
    assert chat.step == "review"


def test_an_unknown_borough_is_asked_again(chat: Chat) -> None:
    start_report(chat)
    chat.send("skip")
    chat.send("skip")
    chat.tap("In London")
    said = text_of(chat.send("Narnia"))
    assert "I don't know that borough" in said and chat.step == "report.borough"


def test_emergency_words_mid_report_interrupt_then_the_report_resumes_at_the_same_question(chat: Chat) -> None:
    start_report(chat)
    chat.send("skip")
    assert chat.step == "report.when"
    said = text_of(chat.send("my mate is not breathing"))
    assert "call 999 now" in said
    chat.tap("Carry on where I was")
    assert chat.step == "report.when"
    assert chat.said[-1].text == "When did it happen?"


def test_an_answer_that_is_too_long_is_cut_and_the_person_is_told(chat: Chat) -> None:
    start_report(chat)
    skip_until(chat, "report.account")
    said = text_of(chat.send("x" * 5000))
    assert "I kept the first 1000 characters" in said
    assert chat.state.answers["account"] == "x" * 1000


def test_a_typed_answer_that_matches_nothing_is_asked_again(chat: Chat) -> None:
    start_report(chat)
    chat.send("skip")
    said = text_of(chat.send("purple"))
    assert "didn't catch that" in said and chat.step == "report.when"


def test_ticking_options_with_buttons_shows_what_is_picked(chat: Chat) -> None:
    start_report(chat)
    chat.tap("Violence")
    chat.tap("Robbery or theft")
    chat.tap("Violence")  # untick
    picked = [o.label for o in chat.last_with_options.options if o.selected]
    assert picked == ["Robbery or theft"]
    chat.tap("Done")
    assert chat.state.answers["what"] == ("robbery",)


def test_sending_is_offered_only_where_a_recipient_is_configured(
    forwarding_engine: Engine, renderer: Renderer, chat: Chat
) -> None:
    answer_everything(chat)
    chat.tap("Yes, it's right")
    chat.tap("No, don't keep it")
    assert "send it to someone" not in text_of(chat.said)

    sending = Chat(forwarding_engine, renderer)
    answer_everything(sending)
    sending.tap("Yes, it's right")
    sending.tap("No, don't keep it")
    assert "We don't show them your name or your account" in sending.said[-1].text
    sending.tap("To a SOIT police officer")
    sending.tap("Yes, they may reply")
    [report] = stored(sending)
    assert (report.keep, report.send_to, report.allow_reply) == (False, "soit", True)
    assert f"Reference: {report.reference}" in text_of(sending.said[-2:])


def test_report_command_offers_to_carry_on_an_unfinished_report(chat: Chat) -> None:
    start_report(chat)
    chat.tap("Violence")
    chat.tap("Done")
    chat.send("/advice")
    chat.send("/report")
    assert chat.step == "report.unfinished"
    chat.tap("Carry on")
    assert chat.step == "report.when"


def test_cancel_forgets_unfinished_answers(chat: Chat) -> None:
    start_report(chat)
    chat.tap("Violence")
    chat.tap("Done")
    said = text_of(chat.send("/cancel"))
    assert "unfinished answers are deleted" in said
    assert chat.state.answers == {} and any(isinstance(e, ForgetDraft) for e in chat.effects)


def test_delete_asks_for_the_code_and_checks_its_form(chat: Chat) -> None:
    chat.send("/delete")
    assert chat.step == "delete.ask"
    said = text_of(chat.send("not a code"))
    assert "doesn't look like a code" in said and chat.step == "delete.ask"
    chat.send(Text("7k2p qx9d m4ta 8bwe"))
    [erase] = [e for e in chat.effects if isinstance(e, EraseReport)]
    assert erase.code == "7K2P-QX9D-M4TA-8BWE"


def test_delete_with_the_code_on_the_command_line(chat: Chat) -> None:
    chat.send("/delete 7K2P-QX9D-M4TA-8BWE")
    [erase] = [e for e in chat.effects if isinstance(e, EraseReport)]
    assert erase.code == "7K2P-QX9D-M4TA-8BWE"
    assert erase.erased[0].message == "delete.done" and erase.not_found[0].message == "delete.not_found"


@pytest.mark.parametrize(
    ("locale", "warm"),
    [
        ("en", "I'm so sorry this happened to you. It is not your fault."),
        ("pl", "Bardzo mi przykro, że Cię to spotkało. To nie Twoja wina."),
        ("ro", "Îmi pare foarte rău că ți s-a întâmplat asta. Nu este vina ta."),
    ],
)
def test_a_rape_told_inside_the_report_is_met_with_warmth_not_noted(chat: Chat, locale: str, warm: str) -> None:
    chat.state = State(locale=locale, told_unchecked=True)
    chat.send("/report")
    chat.tap(chat.last_with_options.options[0].label)  # Start
    assault = next(o.label for o in chat.last_with_options.options if o.key == "assault")
    said = [m.text for m in chat.tap(assault)]
    assert said[0].startswith(warm) and not said[0].startswith(("Noted", "Zapisane", "Notat")), said
    robbery = next(o.label for o in chat.last_with_options.options if o.key == "robbery")
    assert not chat.tap(robbery)[0].text.startswith(warm), "said once, for what needs it"


def test_coming_back_with_the_code_offers_sending_only_when_it_is_possible(renderer: Renderer) -> None:
    from flows.engine import EngineConfig
    from flows.events import Unlocked
    from responses import Responses

    for config, offered in ((EngineConfig(), False), (EngineConfig(forwarding=True), True)):
        engine = Engine(Responses.load(), config)
        outcome = engine.handle(State(), Unlocked(reference="ABCD-1234", status="kept", what=("robbery",)))
        prompt = renderer.render(outcome.replies[-1], "en").text
        assert ("send it to someone who can help" in prompt) is offered, prompt
        assert {"erase", "menu"} <= {o.key for o in outcome.replies[-1].options}
