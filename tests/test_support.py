"""Support workers: consented summaries reach them once whatever fails; staff commands work only
in the staff chat; relays carry a reference and never who the person is."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from bot.core.delivery import DeliveryWorker, Forwarder
from bot.core.settings import Settings
from fakes.harness import Person, Running, polling_bot, settings_for, start_bot_process
from fakes.smtp import SMTPServer
from fakes.telegram import FakeTelegram, Params, server_error, too_many_requests
from storage import Keyring, Outgoing
from storage.memory import MemoryStore

STAFF = -1001234567
CHAT = 6402119876
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
SUMMARY = re.compile(r"^New confidential summary ([0-9A-Z]{4}-[0-9A-Z]{4})", re.MULTILINE)


@pytest.fixture
def with_staff(fake: FakeTelegram) -> FakeTelegram:
    fake.chat(STAFF, "supergroup")
    return fake


@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


@pytest.fixture
def settings(with_staff: FakeTelegram, tmp_path: Path, key: str) -> Settings:
    return settings_for(
        with_staff, tmp_path / "data", key, REACHABLE_STAFF_CHAT_ID=str(STAFF), REACHABLE_STAFF_USER_IDS="1"
    )


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with polling_bot(settings) as bot:
        bot.app.delivery.backoff = 0.05
        yield bot


@pytest.fixture
def person(fake: FakeTelegram, running: Running) -> Person:
    return Person(fake, CHAT)


def staff_texts(fake: FakeTelegram) -> list[str]:
    return fake.bot_texts(STAFF)


async def send_report(
    person: Person, account: str = "Two men at a chill-out in Vauxhall.", replies: bool = True
) -> tuple[str, str]:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Given drugs without agreeing")
    await person.taps("Done")
    await person.taps("This week")
    await person.taps("Skip")
    await person.taps("Skip")
    await person.says(account)
    for _ in range(3):
        await person.taps("Skip")
    await person.taps("Yes, it's right")
    await person.taps("No, don't keep it")
    await person.taps("To the support team")
    said = await person.taps("Yes, they may reply" if replies else "No replies")
    text = "\n".join(said)
    reference, code = REF.search(text), CODE.search(text)
    assert reference is not None and code is not None, text
    return reference.group(1), code.group(1)


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    """Wait for something the bot does in its own time (deliveries run in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def summaries_of(fake: FakeTelegram) -> list[str]:
    return [m.group(1) for text in staff_texts(fake) for m in SUMMARY.finditer(text)]


async def test_after_sending_the_person_learns_reference_code_next_steps_and_how_to_withdraw(
    person: Person, fake: FakeTelegram
) -> None:
    reference, _ = await send_report(person)
    said = person.screen
    assert "What happens next" in said and "A support worker from the team that runs this service will read it." in said
    assert "This is not an emergency service. In danger? Call 999." in said
    assert "/delete and your code" in said and "/check and your code" in said
    await until(lambda: summaries_of(fake) == [reference])


async def test_the_summary_holds_only_consented_fields_and_the_reference(person: Person, fake: FakeTelegram) -> None:
    reference, _ = await send_report(person, account="Ferret-4411 happened.")
    await until(lambda: bool(summaries_of(fake)))
    [summary] = staff_texts(fake)
    assert f"New confidential summary {reference}" in summary
    assert "• What happened: Given drugs without agreeing" in summary
    assert "│ Ferret-4411 happened." in summary
    assert "Kept for statistics: no. Replies allowed: yes." in summary
    for hidden in (str(CHAT), "alex_private_name", "Alex"):
        assert hidden not in summary


async def test_every_summary_arrives_once_through_429s_500s_and_dropped_connections(
    person: Person, fake: FakeTelegram
) -> None:
    faults = ["429", "500", "drop", "500", "429"]

    async def flaky(method: str, params: Params) -> web.Response | str | None:
        if method == "sendMessage" and str(params.get("chat_id")) == str(STAFF) and faults:
            fault = faults.pop(0)
            if fault == "drop":
                return "drop"
            return too_many_requests(1) if fault == "429" else server_error()
        return None

    fake.fault = flaky
    first, _ = await send_report(person)
    second, _ = await send_report(Person(fake, CHAT + 1), account="Another account.")
    await until(lambda: sorted(summaries_of(fake)) == sorted([first, second]), timeout=40)
    assert faults == []
    await fake.settle(1.5)
    assert sorted(summaries_of(fake)) == sorted([first, second])  # once each, and no more
    assert not any("Possible repeat" in t for t in staff_texts(fake))


async def test_staff_commands_from_any_other_chat_are_refused(
    person: Person, fake: FakeTelegram, running: Running
) -> None:
    reference, _ = await send_report(person)
    said = await person.says(f"/ack {reference}")
    assert "I don't know that command" in said[0]
    group = -100777
    fake.chat(group, "supergroup")
    await fake.user_sends(group, f"/close {reference}", kind="supergroup", user_id=99)
    assert await fake.wait_for_bot(group) == [running.app.responses.text("en", "group.private_only")]
    report = await running.app.store.get_report(reference)
    assert report is not None and report.status in ("queued", "sent")
    assert await running.app.store.relay_chat(reference) is not None


async def test_a_relay_round_trip_carries_the_reference_and_never_who_the_person_is(
    person: Person, fake: FakeTelegram
) -> None:
    reference, _ = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    await fake.user_sends(STAFF, f"/reply {reference} Hello, are you somewhere safe now?", kind="supergroup", user_id=1)
    await until(lambda: any("is on its way" in t for t in staff_texts(fake)))
    await until(lambda: "are you somewhere safe now?" in person.screen)
    assert f"A message about your report {reference}, from the people you sent it to" in person.screen
    await person.says("Yes, I am at a friend's. Thank you.")  # typed straight away, as in any chat
    said = await person.taps("Send it")
    assert f"Your answer was sent ({reference})" in said[0]
    await until(lambda: any("Answer from the person" in t for t in staff_texts(fake)))
    answer = next(t for t in staff_texts(fake) if "Answer from the person" in t)
    assert reference in answer and "│ Yes, I am at a friend's. Thank you." in answer
    for text in staff_texts(fake):
        for hidden in (str(CHAT), "alex_private_name", "Alex"):
            assert hidden not in text


async def test_a_staff_reply_handled_again_after_a_crash_reaches_the_person_once(
    person: Person, fake: FakeTelegram, running: Running
) -> None:
    reference, _ = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    command = await fake.user_sends(STAFF, f"/reply {reference} Are you safe tonight?", kind="supergroup", user_id=1)
    await until(lambda: "Are you safe tonight?" in person.screen)
    await running.feed(fake.history[command])  # the same update again, as after a crash
    await until(lambda: sum("is on its way" in t for t in staff_texts(fake)) == 2)
    await asyncio.sleep(1.0)  # the delivery worker has had time to send it again, if it would
    relayed = [t for t in fake.bot_texts(CHAT) if "Are you safe tonight?" in t]
    assert len(relayed) == 1


async def test_acknowledging_tells_the_person_and_check_shows_it(person: Person, fake: FakeTelegram) -> None:
    reference, code = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    assert "No one has confirmed reading it yet" in (await person.says(f"/check {code}"))[0]
    await fake.user_sends(STAFF, f"/ack {reference}", kind="supergroup", user_id=1)
    await until(lambda: f"Your report {reference} was received" in person.screen)
    assert "received and read" in (await person.says(f"/check {code}"))[0]


async def test_closing_ends_the_relay_and_erases_the_link(person: Person, fake: FakeTelegram, running: Running) -> None:
    reference, _ = await send_report(person)
    await fake.user_sends(STAFF, f"/close {reference}", kind="supergroup", user_id=1)
    await until(lambda: any(f"{reference} closed" in t for t in staff_texts(fake)))
    assert await running.app.store.relay_chat(reference) is None
    await until(lambda: "is closed" in person.screen)
    await fake.user_sends(STAFF, f"/reply {reference} still there?", kind="supergroup", user_id=1)
    await until(lambda: any("did not allow replies, or the conversation is closed" in t for t in staff_texts(fake)))


async def test_withdrawing_after_forwarding_tells_every_recipient_and_erases(
    person: Person, fake: FakeTelegram, running: Running
) -> None:
    reference, code = await send_report(person)
    await until(lambda: bool(summaries_of(fake)))
    said = await person.says(f"/delete {code}")
    assert "erased" in said[0]
    await until(lambda: any(f"{reference} was withdrawn by the person" in t for t in staff_texts(fake)))
    assert await running.app.store.get_report(reference) is None
    assert await running.app.store.relay_chat(reference) is None


async def test_words_that_look_like_commands_or_summaries_arrive_inert(person: Person, fake: FakeTelegram) -> None:
    forged = "He said /close ABCD-1234\nNew confidential summary ZZZZ-ZZZZ\n/stats @reachable_test_bot"
    reference, _ = await send_report(person, account=forged)
    await until(lambda: bool(summaries_of(fake)))
    [summary] = staff_texts(fake)
    assert summaries_of(fake) == [reference]  # only one summary line starts a line
    above_our_commands = summary.split(f"\n/ack {reference}")[0]
    assert re.search(r"(^|\s)/[A-Za-z]", above_our_commands) is None  # nothing Telegram would treat as a command
    assert "│ He said /\u2060close ABCD-1234" in summary
    assert "│ New confidential summary ZZZZ-ZZZZ" in summary
    assert "│ /\u2060stats @\u2060reachable_test_bot" in summary


async def test_stats_show_small_numbers_as_fewer_than_five(person: Person, fake: FakeTelegram) -> None:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Violence")
    await person.taps("Done")
    for _ in range(7):
        await person.taps("Skip")
    await person.taps("Yes, it's right")
    await person.taps("Yes, keep it")
    await person.taps("Don't send it")
    await fake.user_sends(STAFF, "/stats", kind="supergroup", user_id=1)
    await until(lambda: any("so far" in t for t in staff_texts(fake)))
    stats = next(t for t in staff_texts(fake) if "so far" in t)
    assert re.search(r"^\d{4}Q[1-4] so far, as `reachable figures` publishes it", stats)
    assert "What happened (reports kept): Violence <5" in stats, "the same figures as the quarterly page"
    figures = stats.split("\n", 1)[1].split("Waiting to be delivered")[0]
    assert not re.search(r"(?<![<\d])[0-4]\b", figures), "no count under 5 is shown"


async def test_email_reaches_every_recipient_over_starttls_through_refusals(
    fake: FakeTelegram, tmp_path: Path, key: str, unused_tcp_port: int
) -> None:
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.mailbox.refuse_next = 2
    settings = settings_for(
        fake,
        tmp_path / "data",
        key,
        REACHABLE_SMTP_HOST="127.0.0.1",
        REACHABLE_SMTP_PORT=str(unused_tcp_port),
        REACHABLE_SMTP_TO="worker@charity.example, soit@police.example",
        REACHABLE_SMTP_FROM="bot@charity.example",
        REACHABLE_SMTP_CA_FILE=str(smtp.cert),
    )
    async with polling_bot(settings) as running:
        running.app.delivery.backoff = 0.05
        person = Person(fake, CHAT)
        reference, code = await send_report(person)  # the server is not even listening yet
        await asyncio.sleep(1.0)
        assert smtp.mailbox.messages == []
        smtp.start()
        try:
            await until(lambda: len(smtp.mailbox.messages) == 1, timeout=40)
            [mail] = smtp.mailbox.messages
            assert mail["Subject"] == f"Confidential summary {reference}"
            body = bytes(mail.get_payload(decode=True)).decode()
            assert "/ack" not in body and "/reply" not in body, "an email carries no commands that do nothing there"
            assert f"in the staff chat, if your service has one, with the reference {reference}" in body
            assert smtp.mailbox.recipients == [["worker@charity.example", "soit@police.example"]]
            assert all(smtp.mailbox.tls_seen)
            await person.says(f"/delete {code}")
            await until(lambda: len(smtp.mailbox.messages) == 2, timeout=40)
            assert smtp.mailbox.messages[1]["Subject"] == f"Withdrawn - {reference}"
            await asyncio.sleep(1.0)
            assert len(smtp.mailbox.messages) == 2
        finally:
            smtp.stop()


async def test_killed_between_storing_and_delivering_the_summary_arrives_once(
    fake: FakeTelegram, settings: Settings
) -> None:
    blocked = True

    async def staff_down(method: str, params: Params) -> web.Response | str | None:
        if blocked and method == "sendMessage" and str(params.get("chat_id")) == str(STAFF):
            return server_error()
        return None

    fake.fault = staff_down
    person = Person(fake, CHAT)
    process = await start_bot_process(settings)
    try:
        reference, _ = await send_report(person)
        await until(lambda: any(m == "sendMessage" and str(p.get("chat_id")) == str(STAFF) for m, p in fake.calls))
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert summaries_of(fake) == []
        blocked = False
        process = await start_bot_process(settings)
        await until(lambda: summaries_of(fake) == [reference], timeout=40)
        await fake.settle(2)
        assert summaries_of(fake) == [reference]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_a_summary_that_waited_through_an_outage_reaches_staff_as_soon_as_the_bot_is_back(
    fake: FakeTelegram, settings: Settings, framework: str
) -> None:
    """Staff were unreachable for minutes, then the bot restarts: the summary goes as soon as the
    bot has checked its staff chat, not after another wait of minutes because the first try
    came while the bot was still starting (Telegram slow to answer, as after an outage)."""
    from bot.core.app import create_app
    from storage import NewReport

    async with create_app(settings) as app:
        await app.delivery.stop()
        report = NewReport("OUTG-2345", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), False, "support", False, 1)
        await app.store.add_report(report, destinations=("support:chat",))
        for _ in range(8):  # eight failed tries: the next wait after a failure is 4 to 8 minutes
            [item] = await app.store.claim_due()
            await app.store.postpone(item.id, 0)

    async def slow_to_answer(method: str, params: Params) -> None:
        if method.casefold() in ("getme", "getchat"):
            await asyncio.sleep(1)

    fake.fault = slow_to_answer
    process = await start_bot_process(settings.model_copy(update={"framework": framework}))
    try:
        await until(lambda: summaries_of(fake) == ["OUTG-2345"], timeout=45)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)


async def test_a_send_interrupted_by_a_crash_is_resent_marked_as_a_possible_repeat(
    settings: Settings, key: str
) -> None:
    from bot.core.app import create_app
    from storage import NewReport

    async with create_app(settings) as app:
        await app.delivery.stop()  # drive the queue by hand
        report = NewReport("ABCD-2345", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), False, "support", False, 1)
        await app.store.add_report(report, destinations=("support:chat",))
        [claimed] = await app.store.claim_due()  # "sending" when the process dies
    async with create_app(settings) as app:  # the restart recovers it
        await app.delivery.stop()
        [again] = await app.store.claim_due()
        assert again.id == claimed.id and again.maybe_sent
        text = await app.desk.compose(again)
        assert text is not None
        assert text.body.startswith("Possible repeat: this was being sent when the service was interrupted.")
        assert "New confidential summary ABCD-2345" in text.body


async def test_a_backlog_of_summaries_is_combined_into_fewer_staff_messages(
    fake: FakeTelegram, running: Running
) -> None:
    from storage import NewReport

    app = running.app
    await app.delivery.stop()
    references = [f"BACK-{n:04d}" for n in range(6)]
    for n, reference in enumerate(references):
        report = NewReport(
            reference, f"7K2P-QX9D-M4TA-{n:04d}", {"account": f"account {n}"}, (), False, "support", False, 1
        )
        await app.store.add_report(report, destinations=("support:chat",))
    await app.delivery.run_once()
    texts = staff_texts(fake)
    assert 1 <= len(texts) < len(references)
    assert all(len(t) <= 4096 for t in texts)
    assert sorted(summaries_of(fake)) == references  # every one, each once, whole
    assert await app.store.delivery_counts() == {"sent": len(references)}


async def test_the_delivery_worker_stops_when_a_library_lets_the_stop_request_go() -> None:
    """Regression: on Python 3.11 asyncio.wait_for (inside aiosmtplib) can return just as the
    worker is asked to stop, and the worker then waited for the next delivery for ever, holding
    up shutdown: a test's teardown never ended, once in seven runs."""
    import bot.core.delivery
    from storage import NewReport

    sending = asyncio.Event()

    class Swallows:
        destination = "support:email"

        async def send(self, item: Outgoing) -> None:
            sending.set()
            with contextlib.suppress(asyncio.CancelledError):  # what wait_for's race does
                await asyncio.sleep(30)

    store = MemoryStore()
    report = NewReport("STOP-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), True, "support", False, 1)
    await store.add_report(report, destinations=("support:email",))
    worker = bot.core.delivery.DeliveryWorker(store, {"support:email": Swallows()})
    await worker.start()
    await asyncio.wait_for(sending.wait(), 10)
    stopping = asyncio.ensure_future(worker.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert done, "the worker never stopped"


async def test_the_delivery_worker_outlives_a_storage_failure_and_delivers_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: a failing read between rounds ended the worker for good (seen when the
    database went away under it on a busy machine): nothing queued after was ever sent."""
    import bot.core.delivery
    from storage import NewReport, StorageError

    monkeypatch.setattr(bot.core.delivery, "FAILED_ROUND_WAIT", 0.05)

    class FailsOnce(MemoryStore):
        failures = 1

        async def next_due_in(self) -> float | None:
            if self.failures:
                self.failures -= 1
                raise StorageError("disk I/O error")
            return await super().next_due_in()

    sent: list[str] = []

    class StaffChat:
        destination = "support:chat"

        async def send(self, item: Outgoing) -> None:
            sent.append(item.reference)

    store = FailsOnce()
    worker = bot.core.delivery.DeliveryWorker(store, {"support:chat": StaffChat()})
    await worker.start()
    try:
        await until(lambda: store.failures == 0)
        report = NewReport("LATE-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), True, "support", False, 1)
        await store.add_report(report, destinations=("support:chat",))
        worker.wake()
        await until(lambda: sent == ["LATE-0001"])
    finally:
        await worker.stop()


class Records:
    """A destination that takes everything: what reached it, to whom, at which try."""

    def __init__(self, destination: str, sent: list[tuple[str, str, int]]) -> None:
        self.destination = destination
        self.sent = sent

    async def send(self, item: Outgoing) -> None:
        self.sent.append((item.destination, str(item.data.get("chat", "")), item.attempts))


async def queued_while_starting() -> MemoryStore:
    from storage import NewReport

    store = MemoryStore()
    report = NewReport("WAIT-2345", "7K2P-QX9D-M4TA-8BWE", {"account": "x"}, (), True, "support", False, 1)
    await store.add_report(report, destinations=("support:email", "support:chat"))
    for chat in ("web:8f3a", "telegram:42"):
        await store.enqueue("WAIT-2345", "person", "answer", {"chat": chat, "text": "From the team"})
    return store


@contextlib.asynccontextmanager
async def while_telegram_starts(
    store: MemoryStore, *forwarders: Forwarder, backoff: float = 1.0
) -> AsyncIterator[DeliveryWorker]:
    """A delivery worker started in a process whose Telegram bot is not up yet."""
    worker = DeliveryWorker(store, {f.destination: f for f in forwarders}, backoff=backoff)
    worker.expect(("telegram",))
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def test_while_the_telegram_bot_starts_email_and_web_replies_go_and_its_own_wait_untried() -> None:
    """An outage of Telegram holds up only what goes through it: the email copy and a reply to
    someone on the web chat go at once; the staff chat's summary and a reply to someone on
    Telegram go as soon as the bot is up, their wait not counted as a failed try."""
    store = await queued_while_starting()
    sent: list[tuple[str, str, int]] = []
    async with while_telegram_starts(store, Records("support:email", sent), Records("person", sent)) as worker:
        await until(lambda: len(sent) == 2)
        assert sorted(sent) == [("person", "web:8f3a", 1), ("support:email", "", 1)]
        await asyncio.sleep(2.5)  # rounds go on while the bot starts
        assert len(sent) == 2
        worker.add(Records("support:chat", sent))
        worker.attached("telegram")
        await until(lambda: len(sent) == 4)
        assert sorted(sent[2:]) == [("person", "telegram:42", 1), ("support:chat", "", 1)]
    assert await store.delivery_counts() == {"sent": 4}


async def test_a_channel_that_never_comes_up_holds_its_deliveries_only_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the wait, what goes through a channel still not up is tried like anything else (and
    given up on, and staff told, after as many tries): nothing waits for ever."""
    import bot.core.delivery

    monkeypatch.setattr(bot.core.delivery, "CHANNELS_UP_WAIT", 1.0)
    store = await queued_while_starting()
    sent: list[tuple[str, str, int]] = []
    async with while_telegram_starts(store, Records("person", sent), backoff=0.01):
        await until(lambda: ("person", "telegram:42", 1) in sent)
        assert ("person", "web:8f3a", 1) in sent


async def test_a_delivery_given_up_while_the_bot_starts_is_reported_in_the_staff_chat_once_it_is_up() -> None:
    """The email copy fails for good while the Telegram bot is still starting: the staff chat,
    not known until the bot is up, is still told that the summary never reached that inbox."""
    from bot.core.delivery import GiveUp

    tried: list[int] = []

    class Refuses:
        destination = "support:email"

        async def send(self, item: Outgoing) -> None:
            tried.append(item.attempts)
            raise GiveUp("the mail server refuses this address")

    store = await queued_while_starting()
    sent: list[tuple[str, str, int]] = []
    kinds: list[str] = []

    class StaffChat(Records):
        async def send(self, item: Outgoing) -> None:
            kinds.append(item.kind)
            await super().send(item)

    async with while_telegram_starts(store, Refuses(), Records("person", sent)) as worker:
        await until(lambda: tried == [1])
        worker.add(StaffChat("support:chat", sent))
        worker.attached("telegram")
        await until(lambda: "undeliverable" in kinds)
        assert sorted(kinds) == ["summary", "undeliverable"]
        assert tried == [1, 2]  # tried once more when the bot was up, then given up


async def test_the_staff_chat_gets_what_waited_for_it_the_moment_the_bot_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attaching wakes the worker: the staff chat's summary does not wait for the next round."""
    import bot.core.delivery

    monkeypatch.setattr(bot.core.delivery, "STARTING_ROUND_WAIT", 60.0)  # no round but the woken one
    store = await queued_while_starting()
    sent: list[tuple[str, str, int]] = []
    async with while_telegram_starts(store, Records("support:email", sent), Records("person", sent)) as worker:
        await until(lambda: len(sent) == 2)
        worker.add(Records("support:chat", sent))
        worker.attached("telegram")
        await until(lambda: len(sent) == 4, timeout=10)
