"""``reachable rasa-actions``: rasa-sdk's own action server (``/webhook``, ``/health``,
``/actions``) in this process's event loop, beside the Telegram bot when a token is set (the
staff chat lives there), and Rasa's HTTP API client for messages staff send later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
from rasa_sdk import endpoint
from rasa_sdk.executor import ActionExecutor
from sanic import Request, Sanic, response
from sanic.exceptions import SanicException

from bot.answers import Told
from bot.app import App
from bot.channel import Channel
from bot.errors import ConfigError
from bot.rasa import DELIVER_INTENT, HANDED, RasaTransport, ReachableAction
from bot.serving import listen_address, require_telegram_for_staff
from bot.settings import Settings
from bot.transport import TransportError

log = logging.getLogger("reachable.rasa")
MAX_CALL_BYTES = 1_000_000  # a tracker with a long history is a few hundred kilobytes
MAX_SENDER_ID = 256


class RasaHTTP:
    """Rasa's HTTP API: ``trigger_intent`` with ``output_channel=latest`` and token auth."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def trigger(self, sender_id: str) -> None:
        params = {"output_channel": "latest", **({"token": self.token} if self.token else {})}
        url = f"{self.url}/conversations/{quote(sender_id, safe='')}/trigger_intent"
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(url, params=params, json={"name": DELIVER_INTENT, "entities": {}}) as answer,
            ):
                if answer.status >= 300:
                    raise TransportError(f"Rasa answered {answer.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransportError("Rasa cannot be reached") from error


def _refusal(status: int, error: str, action_name: object = None) -> response.HTTPResponse:
    """Rasa's error shape for an action call."""
    name = action_name if isinstance(action_name, str) else None
    return response.json({"error": error, "action_name": name}, status=status)


def _problem(call: object) -> str | None:
    """What is wrong with an action call's shape, or None."""
    if not isinstance(call, dict):
        return "the body is not a JSON object"
    if not isinstance(call.get("next_action"), str):
        return "next_action is missing"
    tracker = call.get("tracker")
    if not isinstance(tracker, dict):
        return "tracker is missing"
    sender = tracker.get("sender_id")
    if not isinstance(sender, str) or not sender or len(sender) > MAX_SENDER_ID:
        return "tracker.sender_id is missing or too long"
    if not isinstance(tracker.get("latest_message") or {}, dict):
        return "tracker.latest_message is not an object"
    return None


async def _body(request: Request) -> tuple[int, str] | None:
    """The call's body read, within limits; or the status and error refusing it."""
    if request.headers.get("Content-Encoding") not in (None, "identity"):
        return 400, "compressed action calls are not accepted"
    declared = request.headers.get("Content-Length", "0")
    if not declared.isdecimal() or int(declared) > MAX_CALL_BYTES:
        return 413, "the action call is too large"
    await request.receive_body()  # type: ignore[no-untyped-call]  # middleware runs before the body is read
    return (413, "the action call is too large") if len(request.body) > MAX_CALL_BYTES else None


async def _check_call(request: Request) -> response.HTTPResponse | None:
    if request.path != "/webhook" or request.method != "POST":
        return None
    refused = await _body(request)
    if refused is not None:
        return _refusal(*refused)
    try:
        call = request.json
    except SanicException:
        return _refusal(400, "the body is not JSON")
    problem = _problem(call)
    if problem is not None:
        log.warning("action call refused: %s", problem)
        return _refusal(400, problem, call.get("next_action") if isinstance(call, dict) else None)
    return None


async def _on_error(request: Request, exception: Exception) -> response.HTTPResponse:
    """Never rasa-sdk's default, which echoes the whole request (the conversation) back."""
    status = exception.status_code if isinstance(exception, SanicException) else 500
    log.warning("action call failed: %s", type(exception).__name__)
    text = "the action call is too large" if status == 413 else "the action could not run"
    return _refusal(status, text)


Handler = Callable[..., Awaitable[Any]]


def answered_then_forgotten(webhook: Handler, core: Channel) -> Handler:
    """rasa-sdk's ``/webhook``, writing its answer itself: a kept answer (a new report's code)
    the action handed back is forgotten only once the answer holding it is written to Rasa."""

    async def handler(request: Request, *args: Any, **kwargs: Any) -> Any:
        handed: list[tuple[str, Told]] = []
        token = HANDED.set(handed)
        try:
            answer = await webhook(request, *args, **kwargs)
        finally:
            HANDED.reset(token)
        if not handed:
            return answer
        written = await request.respond(answer)
        try:
            await written.send(end_stream=True)
        except Exception:
            for chat, told in handed:  # not written: it waits for the person's next message
                core.ports.conversations.answer_later(core.ports.conversations.key(core.name, chat), told)
            raise
        # Sanic cancels a request's task once Rasa hangs up, which it does as soon as it has the
        # answer: forgetting what was handed must not be cut short by that.
        forgetting = asyncio.ensure_future(_forget(core, [told for _, told in handed]))  # noqa: RUF006 - kept below
        _forgetting.add(forgetting)
        forgetting.add_done_callback(_forgetting.discard)
        await asyncio.shield(forgetting)
        return None

    return handler


_forgetting: set[asyncio.Future[None]] = set()


async def _forget(core: Channel, handed: list[Told]) -> None:
    for told in handed:
        await core.gone_out(told)


def action_server(core: Channel, transport: RasaTransport) -> Sanic[Any, Any]:
    """rasa-sdk's Sanic app with our one action, quiet and strict about what it accepts."""
    executor = ActionExecutor()
    executor.register_action(ReachableAction(core, transport))
    server: Sanic[Any, Any] = endpoint.create_app(executor, cors_origins=[])
    for route in server.router.routes:
        if route.path == "webhook":
            route.handler = answered_then_forgotten(route.handler, core)
    server.config.ACCESS_LOG = False  # it would log the caller's address
    server.config.REQUEST_MAX_SIZE = MAX_CALL_BYTES
    server.config.FALLBACK_ERROR_FORMAT = "json"
    # Sanic rewrites its own request handling at start-up ("touchup"), which fails the second time
    # in one process (a restart inside it, or the tests); it is a speed-up only.
    server.config.TOUCHUP = False
    server.on_request(_check_call)
    # rasa-sdk's own handler answers 500 with the whole request (the conversation) in the body.
    server.error_handler.cached_handlers.pop((Exception, None), None)
    server.error_handler.add(Exception, _on_error)
    return server


@contextlib.asynccontextmanager
async def serving_actions(app: App) -> AsyncIterator[str]:
    """The action server, listening on REACHABLE_RASA_ACTIONS_LISTEN while inside."""
    settings = app.settings
    check_settings(settings)
    api = RasaHTTP(settings.rasa_url, _secret(settings)) if settings.rasa_url else None
    transport = RasaTransport(api)
    core = Channel(transport, replace(app.ports(), staff_chats={}))  # staff chats are on Telegram
    core.attach()
    server = action_server(core, transport)
    host, port = listen_address(settings.rasa_actions_listen, "REACHABLE_RASA_ACTIONS_LISTEN")
    try:
        running: Any = await server.create_server(host, port, return_asyncio_server=True, access_log=False)
        await running.startup()
        await running.before_start()
        await running.after_start()
        log.info("Rasa action server listening on %s:%d", host, port)
        try:
            yield f"{host}:{port}"
        finally:
            await running.before_stop()
            running.close()
            await running.wait_closed()
            await running.after_stop()
    finally:
        Sanic.unregister_app(server)


def _secret(settings: Settings) -> str | None:
    return settings.rasa_token.get_secret_value() if settings.rasa_token else None


def check_settings(settings: Settings) -> None:
    """Refuse a start where a promise to people on Rasa channels could not be kept."""
    if settings.forwarding and not settings.rasa_url:
        raise ConfigError(
            "reports can be sent to staff, who may reply: set REACHABLE_RASA_URL (and REACHABLE_RASA_TOKEN) "
            "so replies reach people on Rasa channels"
        )
    require_telegram_for_staff(settings)
