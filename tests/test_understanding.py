"""People are understood in their own words: safety first, in English, Polish and Romanian,
and never a dead end."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.core.app import create_app
from bot.core.settings import Settings
from fakes.harness import Person, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from flows import Engine
from flows import classifier as classifier_module
from flows import columns as columns_module
from flows.classifier import IntentClassifier, TrainedInBackground, _fit, char_grams, load, word_grams
from flows.classifier import Settings as ModelSettings
from flows.columns import Columns
from flows.evaluation import Report, first_reply, score
from flows.events import Choice
from flows.understanding import SAFETY, Decision, Understanding, decide
from responses import Responses, check
from responses.catalog import read_examples
from storage import Keyring
from tests.helpers import Chat, text_of

HELDOUT = Path(__file__).parent / "data" / "heldout"
OVERDOSE_FIRST_AID = "lay them on their side (the recovery position)."
CRISIS = "Samaritans will listen, day or night. It's free: call 116 123."


def emergency(said: str) -> bool:
    return said.startswith("If you or someone else is in danger, call 999 now.") and OVERDOSE_FIRST_AID in said


# ---------------------------------------------------------------- the messages people sent
@pytest.mark.parametrize(
    "typed",
    [
        "my mate has gone blue and wont respond",
        "he's been out for an hour and snoring weird",
        "mate took too much g and wont wake up",
    ],
)
def test_an_overdose_in_someones_own_words_gets_emergency_help_first(chat: Chat, typed: str) -> None:
    assert emergency(text_of(chat.send(typed)))


@pytest.mark.parametrize("typed", ["i want to kill myself", "i dont want to be here anymore", "chcę się zabić"])
def test_suicidal_thoughts_get_their_own_help_and_never_overdose_first_aid(chat: Chat, typed: str) -> None:
    said = text_of(chat.send(typed))
    assert "116 123" in said and "999" in said
    assert OVERDOSE_FIRST_AID not in said and "No one has sex" not in said
    assert chat.step == "crisis"


@pytest.mark.parametrize(
    ("typed", "help_line"),
    [
        ("i woke up and he was fucking me", "The Havens help people after sexual assault"),
        ("he had sex with me while i was passed out", "The Havens help people after sexual assault"),
        ("he has my nudes and wants money", "Being threatened or blackmailed is frightening"),
        ("my phone was taken", "call Crimestoppers: 0800 555 111"),
        ("someone put something in my drink last night", "Some drugs leave the body within 12 hours"),
        ("my boyfriend hits me when hes high", "press 55 when asked"),
    ],
)
def test_being_hurt_in_someones_own_words_gets_that_help_first(chat: Chat, typed: str, help_line: str) -> None:
    said = text_of(chat.send(typed))
    assert help_line in said
    assert "not your fault" in said
    assert "I need help now" in chat.labels


@pytest.mark.parametrize(
    ("typed", "advice"),
    [
        ("is it ok to mix g with alcohol", "Mixing drugs"),
        ("will i get arrested if i report", "Drugs and reporting to police"),
        ("i think i need PEP, condom broke last night", "PEP and PrEP"),
        ("how long should i wait before i redose g", "G (GHB/GBL): dose and timing"),
    ],
)
def test_an_advice_question_gets_the_advice_not_the_topic_list(chat: Chat, typed: str, advice: str) -> None:
    said = text_of(chat.send(typed))
    assert said.startswith(advice)
    assert "More advice" in chat.labels


def test_a_message_naming_two_harms_gets_help_for_both(chat: Chat) -> None:
    said = text_of(chat.send("he robbed me and now hes blackmailing me with my nudes"))
    assert "Crimestoppers" in said and "Being threatened or blackmailed is frightening" in said


@pytest.mark.parametrize(
    ("typed", "locale"), [("mój kolega nie oddycha, brał G", "pl"), ("prietenul meu nu mai respira, a luat G", "ro")]
)
def test_a_first_message_in_polish_or_romanian_is_answered_in_that_language(
    chat: Chat, responses: Responses, typed: str, locale: str
) -> None:
    said = text_of(chat.send(typed))
    assert chat.state.locale == locale
    assert responses.text(locale, "emergency.guidance").split("\n")[0] in said
    assert responses.text(locale, "language.detected") in said
    # One tap switches back, and shows the same help in English.
    assert "English" in chat.labels
    said = text_of(chat.tap("English"))
    assert chat.state.locale == "en" and emergency(said.split("\n\n", 1)[1])


def test_the_language_switch_is_offered_once_then_goes(chat: Chat) -> None:
    chat.send("mój kolega nie oddycha, brał G")
    chat.tap("Menu główne")
    assert "English" not in chat.labels and "Language / Język / Limba" in chat.labels


def test_the_language_option_is_named_in_every_language(responses: Responses) -> None:
    assert {responses.text(locale, "menu.language") for locale in ("en", "pl", "ro")} == {"Language / Język / Limba"}


# ---------------------------------------------------------------- never a dead end
def test_something_unclear_gets_a_triage_question_with_999_never_a_bare_menu(chat: Chat) -> None:
    chat.send("/start")
    said = text_of(chat.send("idk what to do"))
    assert "Is anyone in danger right now? If so, call 999 now." in said
    assert "simple bot" not in said
    assert chat.labels[0] == "Yes, someone is in danger" and "Something else" in chat.labels
    assert emergency(text_of(chat.tap("Yes, someone is in danger")))


def test_the_triage_question_offers_the_likeliest_needs_and_they_lead_there(chat: Chat, engine: Engine) -> None:
    state = chat.state.evolve(step="triage", likely=("robbery", "advice_police"))
    chat.state = state
    chat.send(Choice("triage", "robbery"))
    assert chat.step == "intent.robbery"


def test_a_forged_triage_option_is_refused(chat: Chat) -> None:
    chat.send("idk what to do")
    said = text_of(chat.send(Choice("triage", "delete_report")))
    assert "out of date" in said


@pytest.mark.parametrize("typed", ["menu", "back", "/menu", "Menu", "wróć", "inapoi"])
def test_menu_and_back_work_on_the_delete_code_screen(chat: Chat, typed: str) -> None:
    chat.send("/delete")
    assert chat.step == "delete.ask"
    chat.send(typed)
    assert chat.step == "menu"


@pytest.mark.parametrize("screen", ["/advice", "/services", "/emergency", "/report", "/check", "/language"])
def test_menu_works_on_every_screen(chat: Chat, screen: str) -> None:
    chat.send(screen)
    chat.send("menu")
    assert chat.step == "menu"


def test_menu_in_the_middle_of_a_report_keeps_the_place(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Robbery or theft")
    chat.tap("Done")
    chat.send("menu")
    assert chat.step == "menu"
    chat.tap("Tell us what happened (confidential)")
    chat.tap("Carry on")
    assert chat.step == "report.when"


def test_back_in_the_middle_of_a_report_goes_to_the_question_before(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Robbery or theft")
    chat.tap("Done")
    chat.send("back")
    assert chat.step == "report.what"
    chat.send("go back")
    assert chat.step == "report.intro"
    chat.send("back")
    assert chat.step == "menu"  # outside the report's questions, back is the menu


def test_an_overdose_typed_on_the_delete_code_screen_gets_emergency_help(chat: Chat) -> None:
    chat.send("/delete")
    assert emergency(text_of(chat.send("my friend is not breathing")))


def test_words_that_are_not_a_code_on_the_code_screen_explain_the_code(chat: Chat) -> None:
    chat.send("/delete")
    said = text_of(chat.send("hmm"))
    assert "doesn't look like a code" in said and chat.step == "delete.ask"


def test_an_overdose_typed_at_a_report_question_interrupts_and_the_report_resumes(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Robbery or theft")
    chat.tap("Done")
    assert emergency(text_of(chat.send("wait my mate just collapsed and hes not breathing")))
    chat.tap("Carry on where I was")
    assert chat.step == "report.when"
    assert chat.state.answers["what"] == ("robbery",)


def test_free_text_that_answers_the_question_is_taken_as_the_answer(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.send("he took my phone")
    assert chat.state.picked == ("robbery",)
    chat.tap("Done")
    assert chat.state.answers["what"] == ("robbery",)


def test_an_account_describing_the_past_is_kept_as_the_answer(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Skip")
    chat.tap("Skip")
    chat.tap("Skip")
    chat.tap("Skip")
    chat.send("He raped me while I was out of it at his flat.")
    assert chat.state.answers["account"] == "He raped me while I was out of it at his flat."
    assert chat.step == "report.app"


def test_someone_in_danger_while_writing_their_account_gets_help_and_keeps_their_words(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    for _ in range(4):
        chat.tap("Skip")
    said = text_of(chat.send("i cant do this anymore i want to end my life tonight"))
    assert CRISIS in said
    assert chat.state.answers["account"] == "i cant do this anymore i want to end my life tonight"
    chat.tap("Carry on where I was")
    assert chat.step == "report.app"


# ---------------------------------------------------------------- the policy
def test_suicide_outranks_overdose_so_no_first_aid_is_shown_for_suicidal_thoughts() -> None:
    thoughts = Understanding({"suicide": 0.7, "overdose": 0.1, "other": 0.2})
    assert decide(thoughts) == Decision(("suicide",))


def test_suicidal_thoughts_with_a_likely_overdose_get_suicide_help_then_first_aid() -> None:
    both = Understanding({"suicide": 0.5, "overdose": 0.3, "other": 0.2})
    assert decide(both) == Decision(("suicide", "overdose"))


def test_an_overdose_that_may_be_deliberate_gets_emergency_help_then_the_suicide_help() -> None:
    both = Understanding({"suicide": 0.3, "overdose": 0.5, "other": 0.2})
    assert decide(both) == Decision(("overdose", "suicide"))


def test_a_plausible_overdose_comes_first_even_when_another_intent_is_likelier() -> None:
    unsure = Understanding({"advice_overdose_signs": 0.45, "overdose": 0.25, "other": 0.3})
    assert decide(unsure).intents[0] == "overdose"


def test_a_weak_urgent_reading_against_a_clear_harmless_one_asks_offering_that_help_first() -> None:
    # "i want to finish this": the report, or ending it all? Ask, never assume either.
    contested = Understanding({"report": 0.57, "suicide": 0.38, "other": 0.05})
    decision = decide(contested)
    assert decision.intents == () and decision.likely == ("suicide", "report")


def test_a_weak_guess_asks_instead() -> None:
    weak = Understanding({"services": 0.3, "report": 0.25, "other": 0.25, "greeting": 0.2})
    decision = decide(weak)
    assert decision.intents == () and decision.likely[:2] == ("services", "report")


# ---------------------------------------------------------------- the classifier
TEXTS = ["my mate has gone blue and wont respond", "hi", "zzz", "mój kolega nie oddycha", "a, b. c and d", "", "x" * 30]


def test_our_n_grams_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False).build_analyzer()
    words = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", lowercase=False).build_analyzer()
    for text in TEXTS:
        assert char_grams(2, 5, text) == chars(text)
        assert word_grams(text) == words(text)


def test_classifying_through_the_plain_model_gives_scikit_learns_margins(responses: Responses) -> None:
    from scipy.sparse import hstack

    examples = responses.examples()
    specs = [("char", "2", "5"), ("word",)]
    model, (vectorizers, estimator) = _fit(
        [e.text for e in examples], [e.intent for e in examples], specs, ModelSettings()
    )
    expected = estimator.decision_function(hstack([v.transform(TEXTS) for v in vectorizers], format="csr"))
    for text, row in zip(TEXTS, expected, strict=True):
        assert abs(model.margins(text) - row).max() < 1e-4


def test_a_model_read_back_from_its_file_or_trained_in_another_process_reads_messages_alike(
    responses: Responses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(classifier_module, "_TRAINED", {})  # none trained in this process before
    examples, samples = responses.examples(), dict(responses.language_samples())
    here = IntentClassifier.train(examples, samples)
    texts = [*TEXTS, *(e.text for e in examples[::7])]
    elsewhere = TrainedInBackground(examples, samples, cache=tmp_path)  # trained in a process of its own
    assert elsewhere.source == "trained"
    elsewhere.ready()  # sent here and saved
    saved = load(next(tmp_path.glob("understanding-*.npz")))
    assert saved is not None
    for text in texts:
        expected = here.understand(text)
        for other in (elsewhere.ready().understand(text), saved.understand(text)):
            assert other.language == expected.language
            assert max(abs(other.scores[k] - v) for k, v in expected.scores.items()) < 1e-5


def test_n_grams_sharing_a_hash_still_find_their_own_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    grams = ["ab", " blue ", "wont", "cd"]
    typed = ["wont", "zzz", "ab", "wont", " blue ", "cd"]
    assert Columns(grams).found(typed).tolist() == [2, 0, 2, 1, 3]
    monkeypatch.setattr(columns_module, "hash", len, raising=False)  # "ab" and "cd" now share a hash
    assert Columns(grams).found(typed).tolist() == [2, 0, 2, 1, 3]


@pytest.fixture(scope="module")
def heldout(responses: Responses) -> Report:
    """Messages written apart from the examples and never trained on, each sent to the real engine
    as the first message of a conversation."""
    tested = []
    for path in sorted(HELDOUT.glob("*.yml")):
        found, problems = read_examples(path, path.stem)
        assert not problems
        tested.extend(found)
    classifier = IntentClassifier.train(responses.examples(), dict(responses.language_samples()))
    engine = Engine(responses, understander=classifier)
    return score(tested, classifier.understand_many([e.text for e in tested]), helped=first_reply(engine))


@pytest.mark.parametrize("locale", ["en", "pl", "ro"])
@pytest.mark.parametrize("intent", ["overdose", "suicide", "assault"])
def test_held_out_messages_about_overdose_suicide_and_assault_get_their_help_95_percent(
    heldout: Report, intent: str, locale: str
) -> None:
    figures = heldout.get(intent, locale)
    assert figures.support >= 25
    assert figures.help_recall >= 0.95, [m.example.text for m in heldout.misses if m.example.intent == intent]


@pytest.mark.parametrize("locale", ["en", "pl", "ro"])
@pytest.mark.parametrize("intent", ["drugged", "robbery", "threats", "violence"])
def test_held_out_messages_about_other_harms_get_their_help_90_percent(
    heldout: Report, intent: str, locale: str
) -> None:
    assert heldout.get(intent, locale).help_recall >= 0.9


def test_no_held_out_benign_message_gets_overdose_first_aid(heldout: Report) -> None:
    """Benign: everyday messages, questions about the service, greetings. (Advice questions about
    drugs given emergency guidance are counted in docs/understanding.md; recall comes first.)"""
    benign = [
        e.text for e in heldout.overdose_false_alarms if e.intent not in SAFETY and not e.intent.startswith("advice_")
    ]
    assert benign == []


def test_held_out_messages_are_answered_in_their_language(heldout: Report) -> None:
    assert heldout.language_right / heldout.total >= 0.97


# ---------------------------------------------------------------- charities' example files
def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_example_files_are_checked_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "en/nlu.yml",
        'version: "3.1"\nnlu:\n- intent: overdose\n  examples: |\n    - he went under and wont wake\n'
        "    - hi\n- intent: partying\n  examples: |\n    - lets go out\n- synonym: g\n  examples: |\n    - gina\n",
    )
    problems = [str(p) for p in check(tmp_path).problems if p.severity == "error"]
    assert f"{path}:6: error: [en] example 'hi' is under 'overdose' here and under 'greeting'" in "\n".join(problems)
    assert any(p.startswith(f"{path}:7: error: unknown intent 'partying'") for p in problems)
    assert any(p.startswith(f"{path}:10: error: only '- intent:' entries are read here") for p in problems)


def test_a_language_with_too_few_examples_for_a_safety_intent_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "es/nlu.yml", 'version: "3.1"\nnlu:\n- intent: overdose\n  examples: |\n    - no respira\n')
    problems = [str(p) for p in check(tmp_path).problems if p.severity == "error"]
    assert any("[es] intent 'overdose' has 1 example(s); it needs at least 40" in p for p in problems)
    assert any("[es] intent 'suicide' has 0 example(s); it needs at least 40" in p for p in problems)


def test_retired_word_lists_say_where_examples_go_now(tmp_path: Path) -> None:
    path = write(tmp_path, "en/words.yaml", "assault:\n  - help\n")
    problems = [str(p) for p in check(tmp_path).problems]
    assert (
        f"{path}:1: error: word list 'assault' is no longer used: add examples of what people write to nlu.yml"
        in problems
    )


def test_a_charitys_examples_teach_the_bot_new_ways_of_saying_things(tmp_path: Path, responses: Responses) -> None:
    phrase = "the pineapple has fallen off the shelf"
    before = IntentClassifier.train(responses.examples()).understand(phrase)
    assert before.intent != "overdose"
    lines = "".join(f"    - {phrase} {n}\n" for n in ("", "again", "for real", "right now"))
    write(tmp_path, "en/nlu.yml", f'version: "3.1"\nnlu:\n- intent: overdose\n  examples: |\n{lines}')
    overlaid = Responses.load(tmp_path)
    assert len(overlaid.examples()) == len(responses.examples()) + 4
    assert IntentClassifier.train(overlaid.examples()).understand(phrase).intent == "overdose"


# ---------------------------------------------------------------- privacy
async def test_logs_hold_the_intent_and_a_confidence_band_never_the_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path / "data")})  # bot.core.settings
    caplog.set_level(logging.DEBUG)
    async with create_app(settings) as app:
        await app.conversations.handle("console", "c1", Choice("", "x"))
        from flows.events import Text

        await app.conversations.handle("console", "c1", Text("my mate zebra has gone blue and wont respond"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "understood=overdose/" in logged
    assert "zebra" not in logged and "blue" not in logged


# ---------------------------------------------------------------- through the real bot
ISSUE_MESSAGES = [
    ("my mate has gone blue and wont respond", "If you or someone else is in danger, call 999 now."),
    ("he's been out for an hour and snoring weird", "If you or someone else is in danger, call 999 now."),
    ("i woke up and he was fucking me", "The Havens help people after sexual assault"),
    ("he had sex with me while i was passed out", "The Havens help people after sexual assault"),
    ("i want to kill myself", "Samaritans will listen, day or night."),
    ("he has my nudes and wants money", "Being threatened or blackmailed is frightening."),
    ("my phone was taken", "call Crimestoppers: 0800 555 111"),
    ("will i get arrested if i report", "Drugs and reporting to police"),
    ("i think i need PEP, condom broke last night", "PEP and PrEP"),
]


@pytest.fixture
def telegram_settings(fake: FakeTelegram, tmp_path: Path) -> Settings:
    return settings_for(fake, tmp_path / "data", Keyring.new_key().decode())


async def test_each_message_people_sent_gets_the_right_help_in_its_first_reply_on_telegram(
    fake: FakeTelegram, telegram_settings: Settings
) -> None:
    async with polling_bot(telegram_settings):
        for number, (typed, expected) in enumerate(ISSUE_MESSAGES):
            person = Person(fake, 8_100_000 + number)
            await person.says("/start")
            first = await person.says(typed)
            assert expected in first[0], (typed, first[0][:80])
            if "kill myself" in typed:
                assert OVERDOSE_FIRST_AID not in "\n".join(first)
    assert fake.refusals == []


@pytest.mark.parametrize(
    ("typed", "locale"),
    [("mój kolega nie oddycha, brał G", "pl"), ("frate prietenul meu nu mai respira, a luat G", "ro")],
)
async def test_a_polish_or_romanian_first_message_is_answered_in_that_language_on_telegram(
    fake: FakeTelegram, telegram_settings: Settings, responses: Responses, typed: str, locale: str
) -> None:
    async with polling_bot(telegram_settings):
        person = Person(fake, 8_200_000)
        replies = await person.says(typed)
        assert replies[0] == responses.text(locale, "language.detected")
        assert replies[1].startswith(responses.text(locale, "emergency.guidance").split("\n")[0])
        assert "English" in person.buttons
        again = await person.taps("English")
        assert again[-1].startswith("If you or someone else is in danger, call 999 now.")
