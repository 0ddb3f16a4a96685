"""A stand-in for a Rasa server, over real HTTP on 127.0.0.1: it calls the action server with
the JSON Rasa sends (``next_action``, ``sender_id``, ``tracker``, ``domain``, ``version``) and
serves the part of Rasa's HTTP API the bot uses (``trigger_intent``, token auth), recording what
each person would see on their channel."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import aiohttp
import rasa_sdk
from aiohttp import web

# The Rasa version a call names: the same major and minor as the installed rasa-sdk, as a
# matching Rasa server sends (rasa-sdk warns on any other).
RASA_VERSION = ".".join(rasa_sdk.__version__.split(".")[:2]) + ".0"
TOKEN = "rasa-test-token-0123456789"
DOMAIN: dict[str, Any] = {
    "version": "3.1",
    "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": False},
    "intents": ["overdose", "suicide", "greeting", "reachable_button", "reachable_deliver"],
    "entities": [],
    "slots": {},
    "responses": {},
    "actions": ["action_reachable"],
    "forms": {},
}


class FakeRasa:
    def __init__(self, actions_url: str, channel: str = "facebook") -> None:
        self.actions_url = actions_url.rstrip("/")
        self.channel = channel  # the input channel people write from
        self.seen: dict[str, list[dict[str, Any]]] = {}  # what each person's channel showed
        self.calls: list[tuple[int, dict[str, Any]]] = []  # (status, answer) of each action call
        self.triggers: list[str] = []
        self.reachable = True
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------------ Rasa's HTTP API
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/conversations/{sender}/trigger_intent", self._trigger_intent)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _trigger_intent(self, request: web.Request) -> web.Response:
        if not self.reachable:
            return web.Response(status=503)
        if request.query.get("token") != TOKEN:
            return web.json_response({"status": "failure", "reason": "NotAuthenticated"}, status=401)
        # Rasa 3.6 takes the path as it is, without decoding percent-escapes.
        sender = request.raw_path.split("/conversations/", 1)[1].rsplit("/trigger_intent", 1)[0]
        body = await request.json()
        self.triggers.append(str(body.get("name")))
        entities = [{"entity": k, "value": v} for k, v in (body.get("entities") or {}).items()]
        intent = {"name": body["name"], "confidence": 1.0}
        latest: dict[str, Any] = {"intent": intent, "entities": entities, "text": None}
        messages = await self.run_action(sender, latest)
        # Rasa answers with what its output channel collected: on REST (which cannot push) that
        # is everything, and nobody sees it; on callback it is also posted to the person.
        answer: dict[str, Any] = {"tracker": {"sender_id": sender}}
        if self.channel in ("rest", "callback"):
            answer["messages"] = messages
        if self.channel == "rest" and messages:
            del self.seen[sender][-len(messages) :]
        return web.json_response(answer)

    # ------------------------------------------------------------------ a person on a channel
    async def say(self, sender: str, text: str, intent: str | None = None, confidence: float = 0.0) -> list[str]:
        """The person types ``text``; Rasa's NLU read it as ``intent`` (if given)."""
        parsed = {"name": intent, "confidence": confidence} if intent else {"name": None, "confidence": 0.0}
        latest: dict[str, Any] = {"intent": parsed, "entities": [], "text": text, "message_id": uuid.uuid4().hex}
        return [m.get("text", "") for m in await self.run_action(sender, latest)]

    async def tap(self, sender: str, title: str) -> list[str]:
        """The person presses a button shown last: Rasa sends its payload as the next message."""
        shown = [b for m in self.seen.get(sender, []) for b in m.get("buttons") or []]
        payload = next(b["payload"] for b in reversed(shown) if b["title"] == title)
        # Rasa reads "/intent{...}" payloads itself, with full confidence.
        return await self.say(sender, payload, intent=payload[1:].split("{", 1)[0], confidence=1.0)

    def action_call(self, sender: str, latest: dict[str, Any]) -> dict[str, Any]:
        events = self._events.setdefault(sender, [{"event": "action", "name": "action_session_start"}])
        events.append({"event": "user", "timestamp": time.time(), "text": latest.get("text"), "parse_data": latest})
        return {
            "next_action": "action_reachable",
            "sender_id": sender,
            "tracker": {
                "sender_id": sender,
                "slots": {},
                "latest_message": latest,
                "latest_event_time": time.time(),
                "followup_action": None,
                "paused": False,
                "events": list(events),
                "latest_input_channel": self.channel,
                "active_loop": {},
                "latest_action": {"action_name": "action_listen"},
                "latest_action_name": "action_listen",
            },
            "domain": DOMAIN,
            "version": RASA_VERSION,
        }

    async def post(self, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
        """POST an action call (or ``raw`` bytes) to the action server: (status, JSON answer)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.actions_url}/webhook",
                params={"token": TOKEN},
                data=io.BytesIO(raw if raw is not None else json.dumps(body).encode()),
                headers={"Content-Type": "application/json"},
            ) as answer,
        ):
            return answer.status, await answer.json(content_type=None)

    async def run_action(self, sender: str, latest: dict[str, Any]) -> list[dict[str, Any]]:
        status, answer = await self.post(self.action_call(sender, latest))
        self.calls.append((status, answer))
        if status != 200:
            raise AssertionError(f"the action server answered {status}: {answer}")
        messages: list[dict[str, Any]] = answer.get("responses", [])
        self.seen.setdefault(sender, []).extend(messages)
        return messages

    def texts(self, sender: str) -> list[str]:
        return [str(m.get("text") or "") for m in self.seen.get(sender, [])]
