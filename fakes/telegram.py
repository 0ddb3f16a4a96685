"""A fake Telegram Bot API on 127.0.0.1: real HTTP, so the libraries' own clients talk to it.

It keeps every chat's messages (both sides), hands out updates through long-polling
``getUpdates`` with Telegram's offset rules, and refuses what Telegram refuses: unknown methods,
a wrong token, missing or ill-typed parameters, text over 4096 characters, callback data over
64 bytes, deleting a message that does not exist. Every refusal is kept in ``refusals`` so a
test can assert the bot made none.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "123456:TEST-token-for-the-fake-api"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Reachable", "username": "reachable_test_bot"}
ANONYMOUS_ADMIN = 1087968824  # the user Telegram names as the sender of an anonymous admin's message
CHAT_BURST = 25.0  # messages one private chat may get at once before the limit of one a second
Params = dict[str, Any]


class Refused(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass
class Sent:
    message_id: int
    from_bot: bool
    text: str | None
    buttons: list[tuple[str, str]] = field(default_factory=list)
    date: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Chat:
    id: int
    type: str = "private"
    title: str | None = None
    messages: dict[int, Sent] = field(default_factory=dict)
    username: str | None = None  # a public group has one: anyone can find and join it
    # The bot's place in a group: "member", "administrator", "left", "kicked", or "restricted"
    # (then ``can_send`` says whether it may still post).
    bot_status: str = "member"
    can_send: bool = True
    members_may_send: bool = True  # the group's default permissions

    def bot_may_post(self) -> bool:
        if self.type == "private":
            return True
        if self.bot_status == "member":
            return self.members_may_send
        return self.bot_status in ("creator", "administrator") or (self.bot_status == "restricted" and self.can_send)

    def as_json(self) -> dict[str, Any]:
        if self.type == "private":
            return {"id": self.id, "type": "private", "first_name": "Alex"}
        found = {"id": self.id, "type": self.type, "title": self.title or "A group"}
        if self.username:
            found["username"] = self.username
        return found


def _int(params: Params, name: str, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise Refused(400, f"Bad Request: {name} is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refused(400, f"Bad Request: invalid {name} specified") from None


def _json(params: Params, name: str) -> Any:
    value = params.get(name)
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise Refused(400, f"Bad Request: can't parse {name} JSON object") from None


class FakeTelegram:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.chats: dict[int, Chat] = {}
        self.calls: list[tuple[str, Params]] = []
        self.refusals: list[tuple[str, str]] = []
        self.updates: list[dict[str, Any]] = []
        self.history: dict[int, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.webhook: dict[str, Any] = {}
        self.webhook_error: str | None = None  # Telegram's last failure delivering to the webhook
        self.answered_callbacks: set[str] = set()
        self._deleted_bot: dict[int, int] = {}
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(1)
        self._pending_callbacks: set[str] = set()
        self._new_update = asyncio.Condition()
        self._bot_spoke = asyncio.Condition()
        self.last_spoke: dict[int, float] = {}  # chat -> when the bot last sent to it (monotonic)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.fault: Callable[[str, Params], Awaitable[web.Response | str | None]] | None = None
        self.limits = False
        self.too_many = 0
        self.too_many_by: collections.Counter[str] = collections.Counter()  # which limit was passed
        self.busiest_second = 0  # the most messages accepted within one second, all chats
        self._sent_times: collections.deque[float] = collections.deque()
        self._group_times: dict[int, collections.deque[float]] = {}
        self._chat_tokens: dict[int, tuple[float, float]] = {}  # private chat: tokens, when
        # Webhook mode: where updates are POSTed (the https address given to setWebhook stands for
        # it), how often a POST failed and was sent again, and the deliveries under way.
        self.deliver_to: str | None = None
        self.webhook_posts = 0
        self.webhook_retries = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        self._posting: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ server
    async def start(self) -> str:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for delivery in list(self._deliveries):
            delivery.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._posting is not None:
            await self._posting.close()
        async with self._new_update:
            self._new_update.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: Params = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        self.calls.append((method, params))
        if self.fault is not None:
            faulty = await self.fault(method, params)
            if faulty == "drop":
                # The connection dies before Telegram reads the request: nothing was posted.
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=499)
            if isinstance(faulty, web.Response):
                return faulty
        if request.match_info["token"] != self.token:
            return self._refuse(method, Refused(401, "Unauthorized"))
        handler = getattr(self, f"_m_{method.casefold()}", None)
        if handler is None:
            return self._refuse(method, Refused(404, "Not Found"))
        try:
            result = await handler(params)
        except Refused as refused:
            return self._refuse(method, refused)
        return web.json_response({"ok": True, "result": result})

    def _refuse(self, method: str, refused: Refused) -> web.Response:
        if refused.code != 429:  # a 429 is Telegram pacing us, not a protocol error
            self.refusals.append((method, refused.description))
        body: dict[str, Any] = {"ok": False, "error_code": refused.code, "description": refused.description}
        if refused.retry_after is not None:
            body["parameters"] = {"retry_after": refused.retry_after}
        return web.json_response(body, status=refused.code)

    # ------------------------------------------------------------------ what people do
    def chat(self, chat_id: int, kind: str = "private") -> Chat:
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(chat_id, kind)
            self._message_ids[chat_id] = itertools.count(1)
        return self.chats[chat_id]

    def _user(self, user_id: int, language: str | None) -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": "Alex", "username": "alex_private_name"}
        if language:
            user["language_code"] = language
        return user

    def _message(self, chat: Chat, user_id: int, language: str | None, **content: Any) -> dict[str, Any]:
        message_id = next(self._message_ids[chat.id])
        chat.messages[message_id] = Sent(message_id, False, content.get("text"))
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat.as_json(),
            "from": self._user(user_id, language),
            **content,
        }

    async def push(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **update}
        self.history[update_id] = update
        if self.deliver_to is not None and self.webhook:
            delivery = asyncio.create_task(self._post(update))
            self._deliveries.add(delivery)
            delivery.add_done_callback(self._deliveries.discard)
            return update_id
        self.updates.append(update)
        async with self._new_update:
            self._new_update.notify_all()
        return update_id

    async def _post(self, update: dict[str, Any]) -> None:
        """As Telegram does with a webhook: POST the update, at most max_connections at once, and
        send it again, later and later, until it is answered with a 2xx (a bot that died before
        answering gets it again, wherever the address now leads)."""
        if self._posting is None:
            limit = int(self.webhook.get("max_connections", 40))
            self._posting = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=60)
            )
        headers = {"X-Telegram-Bot-Api-Secret-Token": str(self.webhook.get("secret_token", ""))}
        wait = 0.5
        while True:
            self.webhook_posts += 1
            try:
                async with self._posting.post(str(self.deliver_to), json=update, headers=headers) as answer:
                    if 200 <= answer.status < 300:
                        return
                    self.webhook_error = f"Wrong response from the webhook: {answer.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                self.webhook_error = f"Connection failed: {type(error).__name__}"
            self.webhook_retries += 1
            await asyncio.sleep(wait)
            wait = min(wait * 2, 8.0)

    async def user_sends(
        self,
        chat_id: int,
        text: str,
        *,
        kind: str = "private",
        user_id: int | None = None,
        language: str = "en",
        as_group: bool = False,
    ) -> int:
        """A message from a person; ``as_group``: an anonymous admin, who writes as the group
        (Telegram sends GroupAnonymousBot as the sender and the group as ``sender_chat``)."""
        chat = self.chat(chat_id, kind)
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if as_group:
            content["sender_chat"] = chat.as_json()
            user_id = ANONYMOUS_ADMIN
        message = self._message(chat, user_id or chat_id, language, **content)
        return await self.push({"message": message})

    async def user_sends_content(self, chat_id: int, kind: str) -> int:
        files = {"file_id": "AgAD-fake", "file_unique_id": "uniq"}
        samples: dict[str, Any] = {
            "sticker": {
                **files,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            },
            "photo": [{**files, "width": 90, "height": 90}],
            "voice": {**files, "duration": 3},
            "video": {**files, "width": 90, "height": 90, "duration": 3},
            "location": {"latitude": 51.5, "longitude": -0.12},
            "contact": {"phone_number": "+447700900000", "first_name": "Sam"},
        }
        message = self._message(self.chat(chat_id), chat_id, "en", **{kind: samples[kind]})
        return await self.push({"message": message})

    async def user_edits(self, chat_id: int, message_id: int, text: str) -> int:
        chat = self.chat(chat_id)
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "edit_date": int(time.time()),
            "chat": chat.as_json(),
            "from": self._user(chat_id, "en"),
            "text": text,
        }
        return await self.push({"edited_message": message})

    async def user_taps(self, chat_id: int, label: str, data: str | None = None) -> int:
        """Tap the button ``label`` on the bot's latest message that has buttons (or send ``data``)."""
        chat = self.chat(chat_id)
        message = next(m for m in reversed(chat.messages.values()) if m.from_bot and m.buttons)
        if data is None:
            found = [d for text, d in message.buttons if text == label]
            assert found, f"no button {label!r}; buttons: {[t for t, _ in message.buttons]}"
            data = found[0]
        query_id = str(next(self._callback_ids))
        self._pending_callbacks.add(query_id)
        bot_message = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": chat.as_json(),
            "from": BOT_USER,
            "text": message.text or "",
        }
        query = {
            "id": query_id,
            "from": self._user(chat_id, "en"),
            "chat_instance": f"ci{chat_id}",
            "message": bot_message,
            "data": data,
        }
        return await self.push({"callback_query": query})

    # ------------------------------------------------------------------ what tests read
    def bot_texts(self, chat_id: int) -> list[str]:
        return [m.text or "" for m in self.chat(chat_id).messages.values() if m.from_bot]

    def buttons(self, chat_id: int) -> list[str]:
        found = [m for m in self.chat(chat_id).messages.values() if m.from_bot and m.buttons]
        return [text for text, _ in found[-1].buttons] if found else []

    async def wait_for_bot(self, chat_id: int, count: int = 1, timeout: float = 15) -> list[str]:
        """Wait until the bot has sent ``count`` more messages to ``chat_id``; return them."""
        before = self._spoken(chat_id)
        return await self.wait_until_spoken(chat_id, before + count, timeout)

    def _spoken(self, chat_id: int) -> int:
        return sum(1 for m in self.chat(chat_id).messages.values() if m.from_bot) + self._deleted_bot.get(chat_id, 0)

    async def wait_until_spoken(self, chat_id: int, total: int, timeout: float = 15) -> list[str]:
        async def reached() -> None:
            async with self._bot_spoke:
                await self._bot_spoke.wait_for(lambda: self._spoken(chat_id) >= total)

        await asyncio.wait_for(reached(), timeout)
        return self.bot_texts(chat_id)

    async def settle(self, seconds: float = 0.3) -> None:
        """Give the bot a moment in which it should do nothing (for 'no reply' assertions)."""
        await asyncio.sleep(seconds)

    # ------------------------------------------------------------------ Bot API methods
    async def _m_getme(self, params: Params) -> Any:
        return BOT_USER

    async def _m_getupdates(self, params: Params) -> Any:
        offset = _int(params, "offset", required=False) or 0
        timeout = min(_int(params, "timeout", required=False) or 0, 5)
        limit = _int(params, "limit", required=False) or 100
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

        def ready() -> list[dict[str, Any]]:
            return [u for u in self.updates if u["update_id"] >= offset][:limit]

        if not ready() and timeout:
            async with self._new_update:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait_for(lambda: bool(ready())), timeout)
        return ready()

    def enforce_flood_limits(self) -> None:
        """Answer 429 as Telegram does past about 30 messages a second overall, 20 a minute to
        one group, and one a second to one private chat (a burst of 25 allowed), with
        retry_after saying when the limit frees."""
        self.limits = True

    def _flood(self, chat_id: int) -> None:
        if not self.limits:
            return
        now = time.monotonic()
        while self._sent_times and now - self._sent_times[0] >= 1.0:
            self._sent_times.popleft()
        group = self._group_times.setdefault(chat_id, collections.deque())
        while group and now - group[0] >= 60.0:
            group.popleft()
        tokens, stamp = self._chat_tokens.get(chat_id, (CHAT_BURST, now))
        tokens = min(CHAT_BURST, tokens + (now - stamp))
        if len(self._sent_times) >= 30:
            self._past_limit("overall")
            raise Refused(429, "Too Many Requests: retry after 1", retry_after=1)
        if chat_id < 0 and len(group) >= 20:
            self._past_limit("group")
            wait = max(1, math.ceil(60.0 - (now - group[0])))
            raise Refused(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if chat_id > 0 and tokens < 1:
            self._past_limit("chat")
            raise Refused(429, "Too Many Requests: retry after 1", retry_after=1)
        self._sent_times.append(now)
        self.busiest_second = max(self.busiest_second, len(self._sent_times))
        if chat_id < 0:
            group.append(now)
        else:
            self._chat_tokens[chat_id] = (tokens - 1, now)

    def _past_limit(self, limit: str) -> None:
        self.too_many += 1
        self.too_many_by[limit] += 1

    async def _m_sendmessage(self, params: Params) -> Any:
        chat_id = _int(params, "chat_id")
        assert chat_id is not None
        self._flood(chat_id)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refused(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise Refused(400, "Bad Request: message is too long")
        if chat_id not in self.chats:
            raise Refused(400, "Bad Request: chat not found")
        buttons = self._buttons(_json(params, "reply_markup"))
        chat = self.chats[chat_id]
        if not chat.bot_may_post():
            raise Refused(403, "Forbidden: bot is not a member of the supergroup chat")
        message_id = next(self._message_ids[chat_id])
        chat.messages[message_id] = Sent(message_id, True, text, buttons)
        self.last_spoke[chat_id] = time.monotonic()
        async with self._bot_spoke:
            self._bot_spoke.notify_all()
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat.as_json(),
            "from": BOT_USER,
            "text": text,
        }
        return result

    def _buttons(self, markup: Any) -> list[tuple[str, str]]:
        if markup is None:
            return []
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            raise Refused(400, "Bad Request: unsupported reply_markup")
        buttons = []
        for row in markup["inline_keyboard"]:
            for button in row:
                if not isinstance(button.get("text"), str) or not button["text"]:
                    raise Refused(400, "Bad Request: text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is None or len(str(data).encode()) > 64 or not str(data):
                    raise Refused(400, "Bad Request: BUTTON_DATA_INVALID")
                buttons.append((button["text"], str(data)))
        return buttons

    async def _delete(self, chat_id: int, message_id: int) -> bool:
        chat = self.chats.get(chat_id)
        if chat is None or message_id not in chat.messages:
            return False
        if chat.messages.pop(message_id).from_bot:
            self._deleted_bot[chat_id] = self._deleted_bot.get(chat_id, 0) + 1
        return True

    async def _m_deletemessage(self, params: Params) -> Any:
        chat_id, message_id = _int(params, "chat_id"), _int(params, "message_id")
        assert chat_id is not None and message_id is not None
        if not await self._delete(chat_id, message_id):
            raise Refused(400, "Bad Request: message to delete not found")
        return True

    async def _m_deletemessages(self, params: Params) -> Any:
        chat_id = _int(params, "chat_id")
        ids = _json(params, "message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(isinstance(i, int) for i in ids):
            raise Refused(400, "Bad Request: message_ids must be a list of 1-100 message identifiers")
        assert chat_id is not None
        for message_id in ids:
            await self._delete(chat_id, message_id)
        return True

    async def _m_answercallbackquery(self, params: Params) -> Any:
        query_id = params.get("callback_query_id")
        if query_id not in self._pending_callbacks:
            raise Refused(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._pending_callbacks.discard(str(query_id))
        self.answered_callbacks.add(str(query_id))
        return True

    async def _m_getchat(self, params: Params) -> Any:
        chat_id = _int(params, "chat_id")
        if chat_id not in self.chats:
            raise Refused(400, "Bad Request: chat not found")
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels"), False
        )
        chat = self.chats[chat_id]
        permissions = {"permissions": {"can_send_messages": chat.members_may_send}} if chat.type != "private" else {}
        return {
            **chat.as_json(),
            **permissions,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    async def _m_getchatmember(self, params: Params) -> Any:
        chat_id, user_id = _int(params, "chat_id"), _int(params, "user_id")
        if chat_id not in self.chats:
            raise Refused(400, "Bad Request: chat not found")
        if user_id != BOT_USER["id"]:
            raise Refused(400, "Bad Request: user not found")
        chat = self.chats[chat_id]
        member: dict[str, Any] = {"status": chat.bot_status, "user": BOT_USER}
        if chat.bot_status == "administrator":
            rights = ("can_manage_chat", "can_delete_messages", "can_restrict_members", "can_invite_users")
            member |= dict.fromkeys(rights, True) | {"can_be_edited": False, "is_anonymous": False}
            member |= dict.fromkeys(("can_promote_members", "can_change_info", "can_pin_messages"), False)
            member |= dict.fromkeys(("can_post_stories", "can_edit_stories", "can_delete_stories"), False)
            member |= {"can_manage_video_chats": False}
        if chat.bot_status == "restricted":
            kinds = ("messages", "audios", "documents", "photos", "videos", "video_notes", "voice_notes", "polls")
            member |= {f"can_send_{kind}": chat.can_send for kind in kinds}
            member |= {"is_member": True, "until_date": 0, "can_send_other_messages": chat.can_send}
            member |= dict.fromkeys(("can_add_web_page_previews", "can_change_info", "can_invite_users"), False)
            member |= dict.fromkeys(("can_pin_messages", "can_manage_topics"), False)
        if chat.bot_status == "kicked":
            member |= {"until_date": 0}
        return member

    async def _m_setmycommands(self, params: Params) -> Any:
        commands = _json(params, "commands")
        if not isinstance(commands, list) or not commands:
            raise Refused(400, "Bad Request: commands must be non-empty")
        for command in commands:
            if not 1 <= len(command.get("command", "")) <= 32 or not 1 <= len(command.get("description", "")) <= 256:
                raise Refused(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[str(params.get("language_code") or "")] = commands
        return True

    async def _m_setwebhook(self, params: Params) -> Any:
        if not params.get("url"):
            raise Refused(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        return True

    async def _m_deletewebhook(self, params: Params) -> Any:
        self.webhook = {}
        return True

    async def _m_getwebhookinfo(self, params: Params) -> Any:
        info: dict[str, Any] = {"url": self.webhook.get("url", ""), "has_custom_certificate": False}
        info["pending_update_count"] = len(self.updates)
        if self.webhook_error:
            info |= {"last_error_date": int(time.time()) - 60, "last_error_message": self.webhook_error}
        return info

    async def _m_close(self, params: Params) -> Any:
        return True


def too_many_requests(retry_after: int) -> web.Response:
    body = {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }
    return web.json_response(body, status=429)


def server_error() -> web.Response:
    return web.json_response({"ok": False, "error_code": 500, "description": "Internal Server Error"}, status=500)
