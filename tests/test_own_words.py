"""Understood in their own words all the way through: typed answers inside the report, the next
message after emergency help, no suicide screen for "i dont want to give my name", and a
language switch only on evidence. Each example is typed as people typed it, at the screen
where they typed it, in English, Polish and Romanian."""

from __future__ import annotations

import datetime as dt

import pytest

from flows import Engine, EngineConfig
from flows.effects import StoreReport
from flows.events import Choice, Relayed, Text
from flows.state import Answer, State
from responses import Renderer, Responses
from tests.helpers import Chat, FixedTokens, text_of

# A Thursday afternoon: "last saturday" was five days ago.
THURSDAY = dt.datetime(2026, 12, 3, 14, 0)
URGENT_SCREENS = {"emergency.guidance", "crisis.guidance"}


@pytest.fixture(scope="module")
def engine(responses: Responses) -> Engine:
    return Engine(responses, EngineConfig(forwarding=True), tokens=FixedTokens(), clock=lambda: THURSDAY)


def at(step: str, locale: str = "en", kept: bool = False, **answers: Answer) -> State:
    """A conversation waiting at ``step`` of a report, with ``answers`` given so far (and "yes,
    keep it" when ``kept``; a translation not yet checked has said so by then)."""
    consent: dict[str, Answer] = {"consent.keep": ("yes",)} if kept else {}
    answers = {"what": ("assault",), **answers, **consent}
    return State(locale=locale, step=step, answers=answers, told_unchecked=True)


def said(engine: Engine, state: State, typed: str) -> tuple[list[str], State]:
    outcome = engine.handle(state, Text(typed))
    return [r.message for r in outcome.replies], outcome.state


# ---------------------------------------------------------------- no false alarms
FALSE_ALARMS = {
    "en": [
        "i dont want to give my name",
        "i want to finish this",
        "no nobody is in danger, i want to finish my report",
    ],
    "pl": [
        "nie chce podawac swojego imienia",
        "chce dokonczyc to zgloszenie",
        "nie, nikt nie jest w niebezpieczenstwie, chce dokonczyc zgloszenie",
    ],
    "ro": [
        "nu vreau sa-mi dau numele",
        "vreau sa termin raportul",
        "nu, nimeni nu e in pericol, vreau sa termin raportul",
    ],
}
CASES = [(locale, typed) for locale, phrases in FALSE_ALARMS.items() for typed in phrases]


@pytest.mark.parametrize(("locale", "typed"), CASES)
@pytest.mark.parametrize("where", ["", "report.when", "report.wants", "triage", "review"])
def test_words_about_names_and_finishing_never_bring_the_suicide_screen(
    engine: Engine, locale: str, typed: str, where: str
) -> None:
    state = at(where, locale, when=("week",)) if where else State(locale=locale)
    messages, _ = said(engine, state, typed)
    assert not URGENT_SCREENS & set(messages), messages


def test_finishing_the_report_in_words_goes_to_the_summary(engine: Engine) -> None:
    messages, state = said(engine, at("report.app", when=("week",)), "i want to finish my report")
    assert state.step == "review" and "review.summary" in messages


def test_finishing_the_report_from_the_danger_question_carries_on_with_it(engine: Engine) -> None:
    waiting = State(step="triage", resume="report.app", answers={"what": ("robbery",)})
    _, state = said(engine, waiting, "no nobody is in danger, i want to finish my report")
    assert state.step == "report.app"


# ---------------------------------------------------------------- typed answers inside the report
WHEN = {
    "en": "last saturday night",
    "pl": "w zeszla sobote w nocy",
    "ro": "sambata trecuta noaptea",
}


@pytest.mark.parametrize(("locale", "typed"), WHEN.items())
def test_a_day_in_words_answers_when_it_happened(engine: Engine, locale: str, typed: str) -> None:
    messages, state = said(engine, at("report.when", locale), typed)
    assert state.answers["when"] == ("week",) and state.step == "report.where", messages


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("just now", "today"),
        ("last night", "today"),
        ("3 weeks ago", "month"),
        ("in the summer", "longer"),
        ("beginning of november", "longer"),  # a month alone counts from its first day
    ],
)
def test_other_times_in_words_fall_in_the_right_option(engine: Engine, typed: str, expected: str) -> None:
    _, state = said(engine, at("report.when"), typed)
    assert state.answers["when"] == (expected,)


PLACES = {"en": "a flat in vauxhall", "pl": "w mieszkaniu w vauxhall", "ro": "intr-un apartament in vauxhall"}


@pytest.mark.parametrize(("locale", "typed"), PLACES.items())
def test_a_neighbourhood_answers_where_with_its_borough(engine: Engine, locale: str, typed: str) -> None:
    messages, state = said(engine, at("report.where", locale), typed)
    assert state.answers["where"] == ("london",) and state.answers["borough"] == "Lambeth"
    assert "input.place" in messages and state.step == "report.substances"


@pytest.mark.parametrize(
    ("typed", "borough"), [("vauxhall", "Lambeth"), ("soho", "Westminster"), ("hackny", "Hackney")]
)
def test_the_borough_question_takes_neighbourhoods_and_small_typos(engine: Engine, typed: str, borough: str) -> None:
    _, state = said(engine, at("report.borough", where=("london",)), typed)
    assert state.answers["borough"] == borough


def test_london_at_the_borough_question_moves_on_without_a_borough(engine: Engine) -> None:
    messages, state = said(engine, at("report.borough", where=("london",)), "london")
    assert "report.borough.unknown" not in messages
    assert "borough" not in state.answers and state.step == "report.substances"


def test_a_town_outside_london_is_somewhere_else_not_a_borough_like_it(engine: Engine) -> None:
    _, state = said(engine, at("report.where"), "brighton")
    assert state.answers["where"] == ("elsewhere",) and "borough" not in state.answers


SUBSTANCES = {"en": "g and a bit of tina", "pl": "g i troche tiny", "ro": "g si putina tina"}


@pytest.mark.parametrize(("locale", "typed"), SUBSTANCES.items())
def test_several_things_named_in_a_sentence_answer_a_question_taking_several(
    engine: Engine, locale: str, typed: str
) -> None:
    _, state = said(engine, at("report.substances", locale), typed)
    assert state.answers["substances"] == ("g", "meth") and state.step == "report.account"


def test_a_not_before_a_word_says_the_opposite(engine: Engine) -> None:
    _, state = said(engine, at("report.substances"), "no tina, just g")
    assert state.picked == ("g",) or state.answers.get("substances") == ("g",)


@pytest.mark.parametrize(("locale", "typed"), [("en", "thats all"), ("pl", "to wszystko"), ("ro", "asta e tot")])
def test_thats_all_is_done_at_a_question_taking_several(engine: Engine, locale: str, typed: str) -> None:
    state = at("report.wants", locale, when=("week",)).evolve(picked=("talk",))
    _, after = said(engine, state, typed)
    assert after.answers["wants"] == ("talk",) and after.step == "review"


@pytest.mark.parametrize(
    ("locale", "typed"), [("en", "nobody yet"), ("pl", "nikomu jeszcze"), ("ro", "n-am spus nimanui")]
)
def test_nobody_yet_answers_have_you_told_anyone(engine: Engine, locale: str, typed: str) -> None:
    _, state = said(engine, at("report.elsewhere", locale), typed)
    assert state.answers["elsewhere"] == ("no",)


@pytest.mark.parametrize(
    ("locale", "typed"), [("en", "yes go on"), ("en", "yes"), ("pl", "tak, dawaj"), ("ro", "da, hai")]
)
def test_yes_before_you_start_starts_the_report(engine: Engine, locale: str, typed: str) -> None:
    messages, state = said(engine, State(locale=locale, step="report.intro"), typed)
    assert state.step == "report.what", messages


@pytest.mark.parametrize(
    ("locale", "typed"), [("en", "yes thats right"), ("pl", "tak, zgadza sie"), ("ro", "da, e corect")]
)
def test_yes_at_the_summary_confirms_it(engine: Engine, locale: str, typed: str) -> None:
    _, state = said(engine, at("review", locale, when=("week",)), typed)
    assert state.step == "consent.keep"


@pytest.mark.parametrize(
    ("locale", "typed"),
    [
        ("en", "send it to the support people please"),
        ("pl", "wyslij do zespolu wsparcia"),
        ("ro", "trimite-l la echipa de suport"),
    ],
)
def test_who_to_send_it_to_in_words(engine: Engine, locale: str, typed: str) -> None:
    state = at("consent.send", locale, when=("week",), kept=True)
    _, after = said(engine, state, typed)
    assert after.step == "consent.reply" and after.answers["consent.send"] == ("support",)


def test_dont_send_it_is_not_read_as_send(engine: Engine) -> None:
    state = at("consent.send", when=("week",), kept=True)
    outcome = engine.handle(state, Text("dont send it"))
    assert outcome.state.step == "menu" and "report.kept" in [r.message for r in outcome.replies]


@pytest.mark.parametrize(("locale", "typed"), [("en", "back"), ("pl", "cofnij"), ("ro", "inapoi")])
def test_back_mid_report_goes_to_the_question_before(engine: Engine, locale: str, typed: str) -> None:
    _, state = said(engine, at("report.where", locale, when=("week",)), typed)
    assert state.step == "report.when" and state.answers["when"] == ("week",)


def test_back_skips_the_borough_when_it_was_not_in_london(engine: Engine) -> None:
    _, state = said(engine, at("report.substances", where=("elsewhere",)), "back")
    assert state.step == "report.where"


def test_back_from_the_first_consent_question_shows_the_summary_again(engine: Engine) -> None:
    messages, state = said(engine, at("consent.keep", when=("week",)), "go back")
    assert state.step == "review" and "review.summary" in messages


def test_a_whole_report_typed_as_people_type_it(responses: Responses, engine: Engine) -> None:
    chat = Chat(engine, Renderer(responses, retention_days=90, draft_hours=24))
    for typed in (
        "/report",
        "yes go on",
        "i was robbed",
        "thats all",
        "last saturday night",
        "a flat in vauxhall",
        "g and a bit of tina",
        "he took my phone and my wallet while i was out of it",
        "grindr",
        "nobody yet",
        "someone to talk to",
        "thats all",
        "yes thats right",
        "yes keep it",
        "send it to the support people please",
        "no replies",
    ):
        replies = chat.send(typed)
        assert "didn't catch that" not in text_of(replies), typed
    assert "CODE" in text_of(chat.said[-2:]).upper() and chat.step == "menu"
    stored = next(e for e in chat.effects if isinstance(e, StoreReport))
    assert stored.summary["where"] == ("london",) and stored.summary["borough"] == "Lambeth"
    assert stored.summary["substances"] == ("g", "meth") and stored.summary["when"] == ("week",)
    assert stored.send_to == "support" and stored.allow_reply is False


def test_a_harm_named_at_a_question_is_still_ticked_and_an_overdose_still_interrupts(engine: Engine) -> None:
    messages, _ = said(engine, at("report.when"), "my mate has gone blue and wont respond")
    assert "emergency.guidance" in messages


# ---------------------------------------------------------------- after emergency help
FOLLOW_UPS = {
    "en": (
        "hes not breathing now what do i do",
        "ambulance is here. who can i talk to tomorrow",
        "ive called 999... will the police come too? im scared",
    ),
    "pl": (
        "on teraz nie oddycha co mam robic",
        "karetka przyjechala. z kim moge jutro pogadac",
        "zadzwonilem na 999... czy policja tez przyjedzie? boje sie",
    ),
    "ro": (
        "acum nu mai respira ce fac",
        "a venit ambulanta. cu cine pot vorbi maine",
        "am sunat la 999... vine si politia? mi-e frica",
    ),
}


@pytest.mark.parametrize("locale", FOLLOW_UPS)
def test_after_emergency_help_the_next_message_gets_the_next_thing(engine: Engine, locale: str) -> None:
    not_breathing, arrived, police = FOLLOW_UPS[locale]
    first, state = said(engine, State(locale=locale), "my mate took too much g and wont wake up")
    assert "emergency.guidance" in first
    for typed, screen in (
        (not_breathing, "emergency.cpr"),
        (police, "emergency.police"),
        (arrived, "emergency.arrived"),
    ):
        messages, state = said(engine, state, typed)
        assert messages[-1] == screen and "emergency.guidance" not in messages, (typed, messages)


def test_still_not_breathing_after_the_cpr_steps_is_a_short_reminder_not_the_block_again(engine: Engine) -> None:
    state = engine.enter(State(), "emergency.cpr").state
    messages, state = said(engine, state, "he's still not breathing")
    assert messages == ["emergency.still"]


def test_help_arrived_offers_who_can_help_tomorrow(responses: Responses, engine: Engine) -> None:
    chat = Chat(engine, Renderer(responses, retention_days=90, draft_hours=24))
    chat.send("/emergency")
    said_now = text_of(chat.send("the paramedics are here"))
    assert "Tell the crew what was taken" in said_now and "Who can help" in chat.labels


def test_the_police_answer_is_honest_and_never_a_promise(responses: Responses) -> None:
    text = responses.text("en", "emergency.police")
    assert "can't promise" in text and "Don't let fear of the police stop you calling 999" in text


@pytest.mark.parametrize("locale", ["en", "pl", "ro"])
def test_the_overdose_block_speaks_to_a_friend_calling_for_help_not_about_consent(
    responses: Responses, locale: str
) -> None:
    english = responses.text("en", "emergency.guidance")
    assert "No one has sex" not in english
    consent_lines = {"pl": "Nikt nie uprawia seksu", "ro": "Nimeni nu face sex"}
    assert consent_lines.get(locale, "No one has sex") not in responses.text(locale, "emergency.guidance")


# ---------------------------------------------------------------- language needs evidence
@pytest.mark.parametrize("typed", ["hmm", "k", "aaaaaaaaaaaaaaa", "ok", "lol"])
def test_a_few_characters_never_switch_the_language(engine: Engine, typed: str) -> None:
    messages, state = said(engine, State(), typed)
    assert state.locale == "en" and "language.detected" not in messages


@pytest.mark.parametrize(
    ("typed", "locale"), [("dziękuję", "pl"), ("cześć, potrzebuję pomocy", "pl"), ("am nevoie de ajutor", "ro")]
)
def test_clear_words_in_another_language_switch_and_one_tap_switches_back(
    engine: Engine, typed: str, locale: str
) -> None:
    outcome = engine.handle(State(), Text(typed))
    assert outcome.state.locale == locale
    shown = next(r for r in reversed(outcome.replies) if r.options)
    assert "lang.en" in [o.key for o in shown.options]
    back = engine.handle(outcome.state, Choice(step=shown.step or "", option="lang.en"))
    assert back.state.locale == "en"


# ---------------------------------------------------------------- what a native reader caught
@pytest.mark.parametrize(
    ("locale", "typed"),
    [
        ("pl", "chcę skończyć ze sobą"),
        ("ro", "vreau sa termin cu viata"),
        ("en", "i want to finish it all, i cant go on"),
    ],
)
def test_ending_ones_life_is_never_read_as_finishing_the_report(engine: Engine, locale: str, typed: str) -> None:
    messages, state = said(engine, at("report.app", locale, when=("week",)), typed)
    assert "crisis.guidance" in messages and state.resume == "report.app"


@pytest.mark.parametrize(
    ("locale", "typed"),
    [
        ("pl", "jeszcze nie przyjechali"),
        ("pl", "karetka jest w drodze"),
        ("ro", "n-a venit ambulanta inca"),
        ("ro", "sunt aici singur cu el"),
    ],
)
def test_help_not_there_yet_is_never_told_good_help_is_there(engine: Engine, locale: str, typed: str) -> None:
    messages, _ = said(engine, State(locale=locale, step="emergency"), typed)
    assert "emergency.arrived" not in messages


@pytest.mark.parametrize(
    ("locale", "typed"), [("pl", "pewnie nie"), ("pl", "jasne że nie"), ("ro", "sigur ca nu"), ("en", "sure, no")]
)
def test_a_yes_word_followed_by_a_no_keeps_nothing(engine: Engine, locale: str, typed: str) -> None:
    _, state = said(engine, at("consent.keep", locale, when=("week",)), typed)
    assert state.answers.get("consent.keep") == ("no",)


@pytest.mark.parametrize(("locale", "typed"), [("pl", "nie mam nic przeciwko"), ("ro", "nu ma deranjeaza")])
def test_i_dont_mind_allows_replies(engine: Engine, locale: str, typed: str) -> None:
    state = at("consent.reply", locale, when=("week",), kept=True).with_answer("consent.send", ("support",))
    outcome = engine.handle(state, Text(typed))
    stored = next(e for e in outcome.effects if isinstance(e, StoreReport))
    assert stored.allow_reply is True


def test_a_polish_no_meaning_well_is_not_a_no(engine: Engine) -> None:
    _, state = said(engine, at("report.app", "pl"), "no tak, przez grindra")
    assert state.answers["app"] == ("yes",)


@pytest.mark.parametrize(("locale", "typed"), [("en", "thats all"), ("pl", "to wszystko"), ("ro", "asta e tot")])
def test_thats_all_where_one_answer_is_asked_is_asked_again_never_a_crisis(
    engine: Engine, locale: str, typed: str
) -> None:
    messages, state = said(engine, at("report.when", locale), typed)
    assert messages == ["input.unclear", "report.when"] and state.step == "report.when"


def test_home_or_back_inside_their_own_words_is_their_answer_not_the_menu(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Robbery or theft")
    chat.tap("Done")
    while chat.step != "report.account":
        chat.tap("Skip")
    chat.send("we went back to his home")
    assert chat.step == "report.app", "the account was taken, the next question asked"
    chat.send(Relayed("ABCD-EFGH", "relay", "Are you safe?"))
    said = text_of(chat.send("yes, at home now"))
    assert chat.step == "relay.confirm" and "yes, at home now" in said, "an answer to staff, shown before it goes"
    chat.send(Relayed("ABCD-EFGH", "relay", "Are you safe?"))
    chat.send("menu")
    assert chat.step == "menu", "the menu word by itself still opens the menu"
