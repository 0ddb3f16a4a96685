"""The Rasa action server's yardstick for `make bench`: rasa-sdk's own server running the least an
action can do, answering every call with one line of text, under the same action name Reachable's
server answers to (bench/rasa_actions.py starts it with ``python -m rasa_sdk --actions``)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


class Minimal(Action):  # type: ignore[misc]  # rasa-sdk is untyped
    def name(self) -> str:
        return "action_reachable"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="Thank you. What happened next?")
        return []
