"""Consent and follow-up that mean what they say: real recipients, deciding later with the code,
answers to staff that work like a chat, services open now, and ticks kept through an emergency."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.settings import Settings
from fakes.harness import Person, Running, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from flows import Engine, EngineConfig
from flows.engine import Offer
from responses import Renderer, Responses
from responses.hours import LONDON, open_at
from storage import Keyring
from tests.helpers import Chat, text_of
from tests.test_support import STAFF, staff_texts, until

SOIT = -1009876543
CHAT = 7_300_400_500
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")


def summaries(fake: FakeTelegram, chat: int) -> list[str]:
    return [t for t in fake.bot_texts(chat) if "New confidential summary" in t]


@pytest.fixture
def two_teams(fake: FakeTelegram, tmp_path: Path) -> Settings:
    fake.chat(STAFF, "supergroup")
    fake.chat(SOIT, "supergroup")
    return settings_for(
        fake,
        tmp_path / "data",
        Keyring.new_key().decode(),
        REACHABLE_STAFF_CHAT_ID=str(STAFF),
        REACHABLE_SOIT_CHAT_ID=str(SOIT),
        REACHABLE_STAFF_USER_IDS="1",
    )


@pytest.fixture
async def running(two_teams: Settings) -> AsyncIterator[Running]:
    async with polling_bot(two_teams) as bot:
        bot.app.delivery.backoff = 0.05
        yield bot


async def answer_until_consent(person: Person, what: str) -> None:
    await person.says("/report")
    await person.taps("Start")
    await person.taps(what)
    await person.taps("Done")
    for _ in range(7):
        await person.taps("Skip")
    await person.taps("Yes, it's right")


# ---------------------------------------------------------------- real recipients
async def test_a_soit_choice_reaches_the_soit_officer_and_no_one_else(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Sexual assault or rape")
    said = await person.taps("No, don't keep it")
    assert "SOIT officer is a police officer trained" in said[-1]
    assert person.buttons[:3] == ["To the support team", "To a SOIT police officer", "Don't send it"]
    await person.taps("To a SOIT police officer")
    sent = "\n".join(await person.taps("No replies"))
    assert "A SOIT police officer will read it." in sent
    await until(lambda: bool(summaries(fake, SOIT)))
    await fake.settle(0.5)
    assert summaries(fake, STAFF) == []
    assert "Wants it sent to: a SOIT police officer" in summaries(fake, SOIT)[0]


async def test_only_the_chat_a_report_was_sent_to_may_answer_acknowledge_or_close_it(
    fake: FakeTelegram, running: Running
) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Sexual assault or rape")
    await person.taps("No, don't keep it")
    await person.taps("To a SOIT police officer")
    await person.taps("Yes, they may reply")
    await until(lambda: bool(summaries(fake, SOIT)))
    reference = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}", summaries(fake, SOIT)[0])
    assert reference is not None
    heard = len(fake.bot_texts(CHAT))
    for n, command in enumerate(("reply", "ack", "close"), start=1):
        # The same listed staff member, in the support team's chat: the person chose SOIT.
        await fake.user_sends(STAFF, f"/{command} {reference.group(0)} We are here", kind="supergroup", user_id=1)
        await until(lambda: len([t for t in staff_texts(fake) if "was not sent to this chat" in t]) >= n)  # noqa: B023
    await fake.settle(0.5)
    refused = [t for t in staff_texts(fake) if "was not sent to this chat" in t]
    assert len(refused) == 3 and all(reference.group(0) in t for t in refused)
    assert len(fake.bot_texts(CHAT)) == heard, "the person is sent nothing"
    await fake.user_sends(SOIT, f"/reply {reference.group(0)} I am the SOIT officer", kind="supergroup", user_id=1)
    await until(lambda: any("I am the SOIT officer" in t for t in fake.bot_texts(CHAT)))


async def test_a_soit_officer_is_not_offered_for_a_robbery(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Robbery or theft")
    await person.taps("No, don't keep it")
    assert "To a SOIT police officer" not in person.buttons
    assert "SOIT" not in fake.bot_texts(CHAT)[-1]
    assert "To the support team" in person.buttons


async def test_a_recipient_without_a_destination_is_not_offered(fake: FakeTelegram, tmp_path: Path) -> None:
    fake.chat(STAFF, "supergroup")
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode(), REACHABLE_STAFF_CHAT_ID=str(STAFF))
    async with polling_bot(settings):
        person = Person(fake, CHAT)
        await answer_until_consent(person, "Sexual assault or rape")
        await person.taps("No, don't keep it")
        assert person.buttons[:2] == ["To the support team", "Don't send it"]


def test_with_no_one_to_send_to_the_report_says_it_is_not_sent_and_never_asks(chat: Chat) -> None:
    said = text_of(chat.send("/report"))
    assert "This service does not send reports to anyone." in said and "send it" not in said
    chat.tap("Start")
    chat.tap("Robbery or theft")
    chat.tap("Done")
    while chat.step != "review":
        chat.tap("Skip")
    chat.tap("Yes, it's right")
    chat.tap("Yes, keep it")
    assert chat.step == "menu" and "Your summary is kept." in text_of(chat.said[-2:])


def test_a_charitys_own_recipient_is_offered_with_its_own_words(responses: Responses, tmp_path: Path) -> None:
    folder = tmp_path / "overlay" / "en"
    folder.mkdir(parents=True)
    (folder / "messages.yaml").write_text(
        "recipient.galop.label: To Galop\nrecipient.galop.who: A Galop caseworker will read it.\n", encoding="utf-8"
    )
    overlaid = Responses.load(tmp_path / "overlay")
    engine = Engine(overlaid, EngineConfig(recipients=(Offer("support"), Offer("galop", ("assault",)))))
    chat = Chat(engine, Renderer(overlaid, 90, 24))
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Sexual assault or rape")
    chat.tap("Done")
    while chat.step != "review":
        chat.tap("Skip")
    chat.tap("Yes, it's right")
    chat.tap("No, don't keep it")
    assert "To Galop" in chat.labels
    chat.tap("To Galop")
    said = text_of(chat.tap("No replies"))
    assert "A Galop caseworker will read it." in said


# ---------------------------------------------------------------- deciding later
async def test_a_report_kept_on_day_one_is_sent_on_day_two_with_its_code(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Robbery or theft")
    await person.taps("Yes, keep it")
    kept = "\n".join(await person.taps("Don't send it"))
    code, reference = CODE.search(kept), REF.search(kept)
    assert code is not None and reference is not None
    assert "/check" in kept  # told how to decide more later
    await fake.settle(0.5)
    assert summaries(fake, STAFF) == []
    # Day two: a new conversation (the bot restarted in between would change nothing: it is stored).
    await person.says("/exit")
    said = await person.says(f"/check {code.group(1)}")
    assert "Your report is kept. It has not been sent to anyone." in said[0]
    assert "To the support team" in person.buttons
    await person.taps("To the support team")
    done = await person.taps("Yes, they may reply")
    assert "Your report is on its way." in done[0]
    await until(lambda: bool(summaries(fake, STAFF)))
    assert reference.group(1) in summaries(fake, STAFF)[0]
    report = await running.app.store.get_report(reference.group(1))
    assert report is not None and report.send_to == "support" and report.allow_reply
    await fake.user_sends(
        STAFF, f"/reply {reference.group(1)} Thank you for sending this.", kind="supergroup", user_id=1
    )
    await until(lambda: "Thank you for sending this." in person.screen)


async def test_replies_can_be_stopped_later_with_the_code(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Robbery or theft")
    await person.taps("No, don't keep it")
    await person.taps("To the support team")
    sent = "\n".join(await person.taps("Yes, they may reply"))
    code, reference = CODE.search(sent), REF.search(sent)
    assert code is not None and reference is not None
    await person.says(f"/check {code.group(1)}")
    assert "Stop replies" in person.buttons and "To the support team" not in person.buttons
    await person.taps("Stop replies")
    assert await running.app.store.relay_chat(reference.group(1)) is None
    await fake.user_sends(STAFF, f"/reply {reference.group(1)} hello?", kind="supergroup", user_id=1)
    await until(lambda: any("did not allow replies" in t for t in staff_texts(fake)))


# ---------------------------------------------------------------- answers that feel like a chat
async def test_the_answer_typed_straight_after_a_staff_message_reaches_staff_once(
    fake: FakeTelegram, running: Running
) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Robbery or theft")
    await person.taps("No, don't keep it")
    await person.taps("To the support team")
    sent = "\n".join(await person.taps("Yes, they may reply"))
    reference = REF.search(sent)
    assert reference is not None
    await until(lambda: bool(summaries(fake, STAFF)))
    await fake.user_sends(STAFF, f"/reply {reference.group(1)} Are you safe now?", kind="supergroup", user_id=1)
    await until(lambda: "Are you safe now?" in person.screen)
    shown = await person.says("yes I'm at home now, thank you")
    assert "yes I'm at home now, thank you" in shown[0] and person.buttons[0] == "Send it"
    assert not any("simple bot" in t or "not sure I understood" in t for t in shown)
    confirmed = await person.taps("Send it")
    assert f"Your answer was sent ({reference.group(1)})" in confirmed[0]
    await until(lambda: any("Answer from the person" in t for t in staff_texts(fake)))
    await fake.settle(0.5)
    answers = [t for t in staff_texts(fake) if "Answer from the person" in t]
    assert len(answers) == 1
    assert reference.group(1) in answers[0] and "│ yes I'm at home now, thank you" in answers[0]


async def test_an_answer_can_be_taken_back_before_it_goes(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await answer_until_consent(person, "Robbery or theft")
    await person.taps("No, don't keep it")
    await person.taps("To the support team")
    sent = "\n".join(await person.taps("Yes, they may reply"))
    reference = REF.search(sent)
    assert reference is not None
    await fake.user_sends(STAFF, f"/reply {reference.group(1)} hi", kind="supergroup", user_id=1)
    await until(lambda: "A message about your report" in person.screen)
    await person.says("never mind")
    await person.taps("Don't send it")
    await fake.settle(0.5)
    assert not any("Answer from the person" in t for t in staff_texts(fake))


# ---------------------------------------------------------------- services open now
SUNDAY_3AM = dt.datetime(2026, 11, 22, 3, 0, tzinfo=LONDON)


async def test_open_now_at_3am_on_a_sunday_lists_only_services_open_then(
    fake: FakeTelegram, running: Running, responses: Responses
) -> None:
    running.app.renderer.clock = lambda: SUNDAY_3AM
    person = Person(fake, CHAT)
    said = "\n".join(await person.says("/services"))
    open_part, _, rest = said.partition("Other services")
    assert "Open now (03:00, London time):" in open_part
    listed = [s for s in responses.services("en") if s.contactable]
    for service in listed:
        if open_at(service.open, service.closed_on, SUNDAY_3AM):
            assert service.name in open_part, service.name
        else:
            assert service.name not in open_part and service.name in rest, service.name
    assert {"The Havens", "Samaritans", "FRANK"} <= {s.name for s in listed if s.name in open_part}
    assert "Galop" in rest


def test_check_the_details_is_said_once_and_never_under_999(renderer: Renderer) -> None:
    text = renderer.services_text("en")
    assert text.count("Please check them before you rely on them") == 1
    emergency = text.split("■ Emergency services", 1)[1].split("■", 1)[0]
    assert "check" not in emergency.casefold()


def test_services_with_no_way_to_contact_them_are_not_listed(renderer: Renderer, responses: Responses) -> None:
    text = renderer.services_text("en")
    for service in responses.services("en"):
        assert (f"■ {service.name}" in text) == service.contactable


@pytest.mark.parametrize(
    ("rules", "closed", "moment", "expected"),
    [
        (["always"], [], dt.datetime(2026, 12, 25, 3, 0, tzinfo=LONDON), True),
        (["mon-fri 09:00-17:00"], [], dt.datetime(2026, 11, 23, 9, 0, tzinfo=LONDON), True),
        (["mon-fri 09:00-17:00"], [], dt.datetime(2026, 11, 22, 10, 0, tzinfo=LONDON), False),  # a Sunday
        (["mon-fri 09:00-17:00"], [dt.date(2026, 12, 25)], dt.datetime(2026, 12, 25, 10, 0, tzinfo=LONDON), False),
        (["fri 20:00-02:00"], [], dt.datetime(2026, 11, 28, 1, 30, tzinfo=LONDON), True),  # Saturday small hours
        (["mon-fri 09:00-17:00"], [], dt.datetime(2026, 7, 6, 8, 30, tzinfo=dt.UTC), True),  # 09:30 BST
    ],
)
def test_opening_rules_read_in_london_time(
    rules: list[str], closed: list[dt.date], moment: dt.datetime, expected: bool
) -> None:
    assert open_at(rules, closed, moment) is expected


def test_a_wrong_opening_rule_is_reported_with_file_and_line(tmp_path: Path) -> None:
    from responses import check

    path = tmp_path / "en" / "services.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("- id: galop\n  open: [weekdays 9-5]\n", encoding="utf-8")
    problems = [str(p) for p in check(tmp_path).problems if p.severity == "error"]
    assert any(
        p.startswith(f"{path}:1: error: service 'galop': 'weekdays 9-5' is not an opening rule") for p in problems
    )


# ---------------------------------------------------------------- ticks survive an emergency
async def test_ticks_survive_an_emergency_interruption_on_telegram(fake: FakeTelegram, running: Running) -> None:
    person = Person(fake, CHAT)
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Sexual assault or rape")
    await person.taps("Robbery or theft")
    await person.says("/emergency")
    back = await person.taps("Carry on where I was")
    assert back[-1].startswith("What happened?")
    assert "✓ Sexual assault or rape (chosen)" in person.buttons and "✓ Robbery or theft (chosen)" in person.buttons
    await person.taps("Done")
    report = running.app.conversations._positions.get(running.app.conversations.key("telegram", CHAT))
    assert report is not None and report.answers["what"] == ("assault", "robbery")


def test_words_say_what_the_system_guarantees(responses: Responses) -> None:
    everything = "\n".join(responses.text("en", i) for i in responses.ids())
    for promise in ("never learn who you are", "They never see who you are", "it can take a few days"):
        assert promise not in everything
