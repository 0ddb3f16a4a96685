"""The conversation a person has with the engine: welcome, understanding free text, safety first."""

from __future__ import annotations

import pytest

from flows.events import Resume, Unsupported
from flows.replies import Reply
from responses import Renderer
from tests.helpers import Chat, text_of


def test_start_gives_the_privacy_notice_before_anything_is_asked(chat: Chat) -> None:
    said = text_of(chat.send("/start"))
    assert "confidential, but not anonymous" in said
    assert "The app you write in can see who writes here" in said
    assert "90 days" in said and "24 hours" in said
    assert "/exit" in said
    assert chat.step == "menu"
    assert "Tell us what happened (confidential)" in chat.labels


def test_first_message_without_start_still_gets_the_notice(chat: Chat) -> None:
    said = text_of(chat.send("hello?"))
    assert "not anonymous" in said
    assert chat.step == "menu"


@pytest.mark.parametrize("typed", ["I've been raped", "i’ve been RAPED", "I think I was raped last night"])
def test_the_2am_test_one_reply_offers_safety_support_and_reporting(chat: Chat, typed: str) -> None:
    chat.send("/start")
    replies = chat.send(typed)
    assert len(replies) == 1
    reply = replies[0].text
    assert "999" in reply
    assert "020 3299 6900" in reply  # the Havens
    assert "report" in reply.lower()
    assert "not your fault" in reply
    assert "arrest" not in reply.lower()
    assert {"I need help now", "Who can help", "Tell you what happened"} <= {o.label for o in replies[0].options}


def test_2am_test_works_as_the_very_first_message(chat: Chat) -> None:
    replies = chat.send("I've been raped")
    assert len(replies) == 1 and "999" in replies[0].text and "arrest" not in replies[0].text.lower()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("someone spiked my drink", "12 hours"),
        ("he robbed me and took my phone", "Crimestoppers"),
        ("he is blackmailing me with pictures", "blackmailed"),
    ],
)
def test_words_about_being_hurt_get_a_warm_specific_reply(chat: Chat, typed: str, expected: str) -> None:
    chat.send("/start")
    said = text_of(chat.send(typed))
    assert expected in said
    assert "not your fault" in said


@pytest.mark.parametrize("typed", ["my friend won't wake up", "I think he overdosed", "he's not breathing"])
def test_emergency_words_get_emergency_guidance_first(chat: Chat, typed: str) -> None:
    chat.send("/start")
    said = text_of(chat.send(typed))
    assert said.startswith("If you or someone else is in danger, call 999 now.")
    assert "press 55" in said and "18000" in said and "recovery position" in said


def test_something_off_topic_gets_a_kind_line_with_999_and_the_menu(chat: Chat) -> None:
    chat.send("/start")
    said = text_of(chat.send("whats the weather like tomorrow"))
    assert "I'm not sure I understood. If you or someone else is in danger, call 999." in said
    assert chat.step == "menu"


def test_a_question_about_the_service_gets_who_sees_what(chat: Chat) -> None:
    chat.send("/start")
    said = text_of(chat.send("what is this"))
    assert "confidential, but not anonymous" in said and "A bot answers here, not a person." in said


def test_every_menu_option_is_answerable_by_number_or_by_label(chat: Chat) -> None:
    chat.send("/start")
    chat.send("2")
    assert chat.step == "advice"
    chat.send("main menu")
    assert chat.step == "menu"
    chat.send("Who can help")
    assert chat.step == "services"


def test_emergency_command_works_from_any_step(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    said = text_of(chat.send("/emergency"))
    assert "call 999" in said
    assert "Carry on where I was" in chat.labels


def test_stickers_and_photos_get_a_gentle_reask_and_change_nothing(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Robbery or theft")
    before = chat.state
    said = text_of(chat.send(Unsupported(kind="sticker")))
    assert "I can only read text" in said
    assert "What happened?" in said
    assert chat.state == before


def test_a_button_from_an_earlier_question_has_expired(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    old = chat.last_with_options
    chat.tap("Done")
    from flows.events import Choice

    said = text_of(chat.send(Choice(step=old.step or "", option="assault")))
    assert "That button is out of date" in said
    assert chat.step == "report.when"


def test_forged_button_data_is_refused_gently(chat: Chat) -> None:
    from flows.events import Choice

    chat.send("/start")
    said = text_of(chat.send(Choice(step="menu", option="'; DROP TABLE reports")))
    assert "out of date" in said and chat.step == "menu"
    said = text_of(chat.send(Choice(step="no.such.step", option="x")))
    assert "out of date" in said


def test_unknown_commands_are_explained(chat: Chat) -> None:
    chat.send("/start")
    assert "/help" in text_of(chat.send("/frobnicate"))


def test_help_lists_the_commands_and_is_honest_about_quick_exit(chat: Chat) -> None:
    said = text_of(chat.send("/help"))
    for command in ("/emergency", "/report", "/advice", "/services", "/delete", "/language", "/cancel", "/exit"):
        assert command in said
    assert "It does not clear other history on your phone" in said


def test_exit_wipes_the_chat_and_forgets_the_draft(chat: Chat) -> None:
    from flows.effects import ForgetDraft, WipeChat

    chat.send("/report")
    chat.tap("Start")
    chat.tap("Sexual assault or rape")
    said = chat.send("/exit")
    assert [m.text for m in said] == ["Done."]
    assert any(isinstance(e, WipeChat) for e in chat.effects)
    assert any(isinstance(e, ForgetDraft) for e in chat.effects)
    assert not chat.state.answers and chat.step == ""


def test_leave_now_is_on_every_screen(chat: Chat) -> None:
    chat.send("/start")
    for label in ("I need help now", "Main menu", "Advice and staying safer", "Mixing drugs"):
        assert "Leave now" in chat.labels
        chat.tap(label)
    assert "Leave now" in chat.labels
    chat.tap("Leave now")
    assert chat.said[-1].text == "Done."


def test_resume_after_restart_asks_the_waiting_question_again(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Done")
    said = text_of(chat.send(Resume()))
    assert "Welcome back" in said and "When did it happen?" in said


def test_deep_links_open_the_matching_flow(chat: Chat) -> None:
    chat.send("/start report")
    assert chat.step == "report.intro"
    chat.send("/start advice")
    assert chat.step == "advice"


def test_every_advice_topic_can_be_read(chat: Chat, responses: object) -> None:
    chat.send("/advice")
    topics = [label for label in chat.labels if label not in ("Main menu", "Leave now")]
    assert len(topics) == 10
    for topic in topics:
        said = text_of(chat.tap(topic))
        assert said.splitlines()[0] == topic
        chat.tap("More advice")


def test_services_list_every_service_that_can_be_reached_and_say_details_must_be_checked(chat: Chat) -> None:
    said = text_of(chat.send("/services"))
    for name in ("The Havens", "Galop", "Rape Crisis", "Crimestoppers", "FRANK", "Samaritans"):
        assert name in said
    assert "0800 999 5428" in said
    assert "Survivors UK" in said and "survivorsuk.org" in said  # a verified web address, and no phone
    assert said.count("Please check them before you rely on them.") == 1


def test_language_command_lists_languages(chat: Chat) -> None:
    chat.send("/language")
    assert chat.labels[0] == "English"
    said = text_of(chat.tap("English"))
    assert "Language changed." in said and chat.step == "menu"


NOT_CHECKED = {
    "pl": "To tłumaczenie nie zostało jeszcze sprawdzone przez rodzimego użytkownika języka.",
    "ro": "Această traducere nu a fost încă verificată de un vorbitor nativ.",
}


@pytest.mark.parametrize(
    ("locale", "first", "then"),
    [
        ("pl", "mój kolega nie oddycha, brał G", "co mam robić dalej"),
        ("ro", "prietenul meu nu respira, a luat G", "ce fac acum"),
    ],
)
def test_a_translation_not_yet_checked_says_so_once_after_the_help_never_before(
    chat: Chat, locale: str, first: str, then: str
) -> None:
    help_now = [m.text for m in chat.send(first)]
    assert NOT_CHECKED[locale] not in help_now, "nothing between urgent help and its question"
    assert "999" in help_now[0] or "999" in help_now[1]
    later = [m.text for m in chat.send(then)]
    assert later.count(NOT_CHECKED[locale]) == 1 and later[-1] != NOT_CHECKED[locale], "said before the question"
    assert NOT_CHECKED[locale] not in [m.text for m in chat.send("/services")], "once a conversation"


def test_in_english_there_is_no_such_note(chat: Chat) -> None:
    said = [m.text for m in (*chat.send("hello"), *chat.send("/services"))]
    assert not any(note in said for note in NOT_CHECKED.values()) and all(s.strip() for s in said)


@pytest.mark.parametrize("locale", ["en", "pl", "ro"])
def test_each_channel_speaks_of_itself(renderer: Renderer, locale: str) -> None:
    """No "Telegram" and no "tap" where they are not true: Telegram is named on Telegram only."""
    telegram = {"en": "Telegram", "pl": "Telegram", "ro": "Telegram"}[locale]
    tap = {"en": "Tap", "pl": "Naciśnij", "ro": "Apasă"}[locale]
    for message in ("welcome.notice", "about.text", "report.intro", "consent.reply", "relay.incoming.prompt"):
        assert telegram in renderer.render(Reply(message), locale, "telegram").text, message
        for channel in ("console", "web", "rasa", "sms"):
            assert telegram not in renderer.render(Reply(message), locale, channel).text, (message, channel)
    for message in ("menu.prompt", "input.unclear", "input.unsupported"):
        for channel in ("console", "rasa", "sms", "web"):
            assert tap not in renderer.render(Reply(message), locale, channel).text, (message, channel)
