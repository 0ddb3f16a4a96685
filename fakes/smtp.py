"""A real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS, a certificate made for the test,
and switchable faults: refuse with a 4xx, or not listen at all."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from fakes.tls import make_certificate


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    refuse_next: int = 0
    tls_seen: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.tls_seen.append(session.ssl is not None)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 4.3.0 Try again later"
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(message_from_bytes(content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


class SMTPServer:
    def __init__(self, folder: Path, port: int) -> None:
        self.cert, self.key = make_certificate(folder, "smtp")
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    def settings(self, to: str = "worker@charity.example") -> dict[str, str]:
        """The bot's settings that send summaries here, trusting this server's certificate."""
        return {
            "REACHABLE_SMTP_HOST": "127.0.0.1",
            "REACHABLE_SMTP_PORT": str(self.port),
            "REACHABLE_SMTP_TO": to,
            "REACHABLE_SMTP_CA_FILE": str(self.cert),
        }

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        kwargs: dict[str, Any] = {"tls_context": context, "require_starttls": True}
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
