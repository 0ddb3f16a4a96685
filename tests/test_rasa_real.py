"""A real Rasa 3.6 server (trained from deploy/rasa, run from .venv-rasa) and our action server:
people write through Rasa's own channels, staff replies go back through Rasa's API, and what
Rasa logs is read afterwards. One Rasa serves the whole module (it takes a while to start)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from bot.channels.rasa.sms import segments
from bot.core.app import App, create_app
from fakes import rasa_real
from fakes.harness import settings_for
from fakes.smtp import SMTPServer
from storage import Keyring
from tests.test_support import until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("real-rasa"),
    pytest.mark.skipif(not rasa_real.available(), reason="no Rasa here: `make rasa` builds .venv-rasa"),
]
TOKEN = "real-rasa-shared-token-" + uuid.uuid4().hex
CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
REF = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")
NUMBERED = re.compile(r"^(\d+) (.+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def rasa() -> Iterator[rasa_real.RealRasa]:
    server = rasa_real.RealRasa(TOKEN)
    try:
        server.start(rasa_real.model())
        yield server
    finally:
        server.stop()


@pytest.fixture
async def app(rasa: rasa_real.RealRasa, tmp_path: Path, unused_tcp_port: int) -> AsyncIterator[tuple[App, SMTPServer]]:
    """Our action server for this test, on the port the module's Rasa calls, staff by email."""
    from bot.channels.rasa.run import serving_actions

    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    stub = type("F", (), {"url": "http://127.0.0.1:9"})()
    settings = settings_for(
        stub,
        tmp_path / "data",
        Keyring.new_key().decode(),
        REACHABLE_RASA_ACTIONS_LISTEN=f"127.0.0.1:{rasa.actions_port}",
        REACHABLE_RASA_URL=rasa.url,
        REACHABLE_RASA_TOKEN=TOKEN,
        **smtp.settings(),
    )
    try:
        async with create_app(settings) as running, serving_actions(running):
            running.delivery.backoff = 0.05
            yield running, smtp
    finally:
        smtp.stop()


class OnCallback:
    """A person on a channel where Rasa pushes (``callback``): a web widget with random ids."""

    def __init__(self, rasa: rasa_real.RealRasa) -> None:
        self.rasa = rasa
        self.sender = uuid.uuid4().hex
        self.seen: list[dict[str, Any]] = []

    async def says(self, text: str) -> str:
        messages = await self.rasa.callback(self.sender, text)
        self.seen += messages
        return "\n".join(str(m.get("text") or "") for m in messages)

    async def taps(self, title: str) -> str:
        shown = [b for m in self.seen for b in m.get("buttons") or []]
        payload = next(b["payload"] for b in reversed(shown) if b["title"] == title)
        return await self.says(payload)

    def pushed(self) -> list[str]:
        return [str(m.get("text") or "") for m in self.rasa.recorder.callback[self.sender]]


class OnRest(OnCallback):
    """A person on Rasa's REST channel: answers come only in reply to what they send."""

    async def says(self, text: str) -> str:
        messages = await self.rasa.rest(self.sender, text)
        self.seen += messages
        return "\n".join(str(m.get("text") or "") for m in messages)


class OnPhone:
    """A person texting through Twilio (SMS, or WhatsApp with a ``whatsapp:`` sender)."""

    def __init__(self, rasa: rasa_real.RealRasa, sender: str) -> None:
        self.rasa = rasa
        self.sender = sender
        self.texts: list[str] = []  # the texts of the last reply

    async def says(self, text: str) -> str:
        self.texts = await self.rasa.sms(self.sender, text) or self.texts
        return "\n".join(self.texts)

    async def taps(self, title: str) -> str:
        """Types the number shown beside ``title`` in the last reply."""
        number = next(n for n, shown in reversed(NUMBERED.findall("\n".join(self.texts))) if shown == title)
        return await self.says(number)


class Writer(Protocol):
    async def says(self, text: str) -> str: ...
    async def taps(self, title: str) -> str: ...


async def report_with_replies(person: Writer) -> tuple[str, str]:
    """A whole report, sent to the support team with replies allowed: (reference, code)."""
    await person.says("/report")
    for label in ("Start", "Robbery or theft", "Done", "This week", "In London"):
        await person.taps(label)
    await person.says("hackney")
    await person.taps("Skip")
    await person.says("He took my phone and my cards.")
    for label in ("Skip", "Skip", "Skip", "Yes, it's right", "Yes, keep it", "To the support team"):
        await person.taps(label)
    said = await person.taps("Yes, they may reply")
    [code] = CODE.findall(said)
    [reference] = REF.findall(said)
    return reference, code


async def test_an_emergency_in_their_own_words_gets_999_first(rasa: rasa_real.RealRasa, app: Any) -> None:
    person = OnCallback(rasa)
    said = await person.says("my mate has gone blue and wont respond")
    assert "call 999 now" in said.split("\n\n")[0]
    buttons = [b for m in person.seen for b in m.get("buttons") or []]
    assert buttons and all(b["payload"].startswith("/reachable_button{") for b in buttons)


async def test_a_report_to_its_code_then_a_staff_reply_arrives_once_and_the_answer_reaches_staff(
    rasa: rasa_real.RealRasa, app: tuple[App, SMTPServer]
) -> None:
    running, smtp = app
    person = OnCallback(rasa)
    reference, _ = await report_with_replies(person)
    await until(lambda: len(smtp.mailbox.messages) == 1, timeout=30)
    assert "He took my phone" in smtp.mailbox.messages[0].get_payload()

    told = await running.desk.command("reply", f"{reference} Are you somewhere safe now?", frozenset({"support"}))
    assert told is not None and "on its way" in told and "Sent" not in told
    running.delivery.wake()
    await until(lambda: any("Are you somewhere safe now?" in t for t in person.pushed()), timeout=30)
    await running.delivery.run_once()
    assert sum("Are you somewhere safe now?" in t for t in person.pushed()) == 1

    said = await person.says("yes I'm at home now, thank you")
    assert "yes I'm at home now" in said
    await person.taps("Send it")
    # Deliveries go one at a time: on a busy machine a relay to a slow Rasa (30 s timeout, retried)
    # can stand before the answer twice or more.
    await until(lambda: any("at home now" in body_of(m) for m in smtp.mailbox.messages), timeout=120)


def body_of(mail: Any) -> str:
    return bytes(mail.get_payload(decode=True)).decode()


@pytest.mark.parametrize("sender", ["whatsapp:+447700900123", "+447700900456"])
async def test_staff_replies_reach_phone_senders_as_one_text_with_numbered_options(
    rasa: rasa_real.RealRasa, app: tuple[App, SMTPServer], sender: str
) -> None:
    running, _ = app
    phone = OnPhone(rasa, sender)
    reference, _ = await report_with_replies(phone)

    await running.desk.command("reply", f"{reference} Hello, are you safe?", frozenset({"support"}))
    running.delivery.wake()
    await until(lambda: any("are you safe?" in m["body"] for m in rasa.recorder.sms[sender]), timeout=30)
    bodies = [str(m["body"]) for m in rasa.recorder.sms[sender]]
    assert sum("are you safe?" in b for b in bodies) == 1
    # Every text is short, none is a bare option or carries a payload.
    assert all(segments(b) <= 3 for b in bodies), [segments(b) for b in bodies]
    assert not any("reachable_button" in b or "{" in b for b in bodies)


async def test_polish_on_a_phone_and_the_quick_exit(rasa: rasa_real.RealRasa, app: Any) -> None:
    phone = OnPhone(rasa, "+48500100200")
    said = await phone.says("pomocy, mój przyjaciel nie oddycha po G")
    assert len(phone.texts) == 1 and segments(said) <= 3
    assert "dzwon 999" in said.casefold()  # Polish, its letters without marks
    said = await phone.says("/exit")
    assert len(phone.texts) == 1 and "usun" in said.casefold()
    before = len(rasa.recorder.sms["+48500100200"])
    await app[0].delivery.run_once()
    assert len(rasa.recorder.sms["+48500100200"]) == before


async def test_on_rest_a_staff_reply_waits_for_the_code_and_a_forged_sender_gets_nothing(
    rasa: rasa_real.RealRasa, app: tuple[App, SMTPServer]
) -> None:
    running, _ = app
    person = OnRest(rasa)
    reference, code = await report_with_replies(person)
    told = await running.desk.command("reply", f"{reference} We read it. Are you safe?", frozenset({"support"}))
    assert told is not None and "held" in told
    running.delivery.wake()
    await running.delivery.run_once()
    # Someone else writing as this sender id, or typing the internal intent, gets none of it.
    said = await person.says("/reachable_deliver")
    assert "Are you safe?" not in said
    said = await person.says(f"/check {code}")
    assert "We read it. Are you safe?" in said

    # A phone number typed as a sender into REST is not that phone's conversation.
    phone = OnPhone(rasa, "whatsapp:+447700900999")
    await phone.says("/report")
    await phone.taps("Start")
    await phone.taps("Sexual assault or rape")
    forger = OnRest(rasa)
    forger.sender = "whatsapp:+447700900999"
    said = await forger.says("/report")
    said += await forger.says("Carry on")
    said += await forger.says("/reachable_deliver")
    assert "Sexual assault" not in said and "Carry on" not in said


async def test_rasas_log_holds_no_words_codes_payloads_or_numbers(rasa: rasa_real.RealRasa, app: Any) -> None:
    person = OnCallback(rasa)
    reference, code = await report_with_replies(person)
    await person.says(f"/check {code}")
    await person.says(code)
    phone = OnPhone(rasa, "+447700900777")
    await phone.says("my secret words 8812")
    logged = rasa.logged()
    for secret in (code, "8812", "secret words", "He took my phone", "hackney", "reachable_button", "447700900777"):
        assert secret not in logged, secret
    assert person.sender not in logged and reference not in logged
