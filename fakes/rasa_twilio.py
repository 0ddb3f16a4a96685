"""Rasa's own Twilio channel with only Twilio's REST client replaced: loaded by a real Rasa 3.6
server (``fakes.rasa_twilio.RecordingTwilio`` in its credentials), it reads Twilio's form posts
and turns replies into messages exactly as Rasa does, and each message Rasa would have sent to
Twilio is posted, as Twilio would have received it, to the test's recorder
(``REACHABLE_TWILIO_RECORDER``). Runs inside Rasa's Python 3.10, not ours."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from rasa.core.channels.channel import OutputChannel
from rasa.core.channels.twilio import TwilioInput, TwilioOutput


class _Messages:
    """Twilio's ``client.messages``: ``create(to=, from_=, body=)``."""

    def create(self, **message: Any) -> dict[str, Any]:
        body = json.dumps(message).encode()
        recorder = os.environ["REACHABLE_TWILIO_RECORDER"]
        request = urllib.request.Request(recorder, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        return message


class _RecordingOutput(TwilioOutput):  # type: ignore[misc]
    @property
    def messages(self) -> _Messages:
        return _Messages()


class RecordingTwilio(TwilioInput):  # type: ignore[misc]
    @classmethod
    def name(cls) -> str:
        return "twilio"

    def get_output_channel(self) -> OutputChannel:
        return _RecordingOutput(self.account_sid, self.auth_token, self.twilio_number)
