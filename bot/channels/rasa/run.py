"""``reachable rasa-actions``: an action server (``/webhook``, ``/health``, ``/actions``) running
rasa-sdk's executor in this process's event loop, beside the Telegram bot when a token is set (the
staff chat lives there), and Rasa's HTTP API client for messages staff send later."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import ijson
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionNotFoundException
from sanic import Request, Sanic, response
from sanic.exceptions import SanicException
from yarl import URL

from bot.channels.rasa.adapter import (
    ACTION,
    CHANNEL,
    DELIVER_ENTITY,
    DELIVER_INTENT,
    HANDED,
    SMS,
    RasaTransport,
    ReachableAction,
)
from bot.core.answers import Told
from bot.core.app import App
from bot.core.channel import Channel
from bot.core.errors import ConfigError
from bot.core.serving import SHUTDOWN_SECONDS, listen_address, require_telegram_for_staff
from bot.core.settings import Settings
from bot.core.transport import TransportError

log = logging.getLogger("reachable.rasa")
CHANNELS = (CHANNEL, SMS)  # the channels the action server serves
# Rasa sends every event of the conversation with each call (about 3 KB a turn): a call is read
# as it streams and only the latest message is kept, so only a runaway stream is refused.
MAX_CALL_BYTES = 1_000_000_000
LARGE_CALL_BYTES = 50_000_000
MAX_MESSAGE_BYTES = 200_000  # the latest message as Rasa parsed it (text, intents, entities)
MAX_SENDER_ID = 256
UNWIND_SECONDS = 2.0  # on stop, for what calls cut short still have to write


class RasaHTTP:
    """Rasa's HTTP API: ``trigger_intent`` with ``output_channel=latest`` and token auth."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def trigger(self, sender_id: str, nonce: str) -> list[dict[str, Any]]:
        params = {"output_channel": "latest", **({"token": self.token} if self.token else {})}
        # Rasa 3.6 does not decode its path: the sender id goes as it is (bot.channels.rasa.adapter.PATH_SAFE).
        url = URL(f"{self.url}/conversations/{sender_id}/trigger_intent", encoded=True)
        body = {"name": DELIVER_INTENT, "entities": {DELIVER_ENTITY: nonce}}
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(url.with_query(params), json=body) as answer,
            ):
                if answer.status >= 300:
                    raise TransportError(f"Rasa answered {answer.status}")
                found = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise TransportError("Rasa cannot be reached") from error
        messages = found.get("messages") if isinstance(found, dict) else None
        return messages if isinstance(messages, list) else []


def _refusal(status: int, error: str, action_name: object = None) -> response.HTTPResponse:
    """Rasa's error shape for an action call."""
    name = action_name if isinstance(action_name, str) else None
    return response.json({"error": error, "action_name": name}, status=status)


class TooLarge(Exception):
    pass


class ActionCall:
    """The parts of an action call the action needs, read as the body streams in: Rasa sends
    the whole conversation (every event of every session) with each call, and a long one must
    neither be refused nor held in memory. Everything else is passed over as it is parsed."""

    WANTED = ("next_action", "tracker.sender_id", "tracker.latest_input_channel")
    LATEST = "tracker.latest_message"

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}
        self.latest: Any = None
        self._builder: ijson.ObjectBuilder | None = None
        self._depth = 0
        self._latest_size = 0
        self._events: list[tuple[str, str, Any]] = ijson.sendable_list()
        self._parser = ijson.parse_coro(self._events, use_float=True)  # Rasa's confidences as floats
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > MAX_CALL_BYTES:
            raise TooLarge
        self._parser.send(chunk)
        self._take()

    def close(self) -> None:
        self._parser.close()
        self._take()

    def _take(self) -> None:
        for prefix, event, value in self._events:
            if self._builder is not None or (prefix == self.LATEST and event == "start_map"):
                self._build(event, value)
            elif prefix in self.WANTED and event in ("string", "null"):
                self.found[prefix] = value
        del self._events[:]

    def _build(self, event: str, value: Any) -> None:
        if self._builder is None:
            self._builder = ijson.ObjectBuilder()
        self._latest_size += len(value) if isinstance(value, str) else 8
        if self._latest_size > MAX_MESSAGE_BYTES:
            raise TooLarge
        self._builder.event(event, value)
        self._depth += {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}.get(event, 0)
        if self._depth == 0:
            self.latest = self._builder.value
            self._builder = None

    def problem(self) -> str | None:
        """What is wrong with the call's shape, or None."""
        if not isinstance(self.found.get("next_action"), str):
            return "next_action is missing"
        sender = self.found.get("tracker.sender_id")
        if not isinstance(sender, str) or not sender or len(sender) > MAX_SENDER_ID:
            return "tracker.sender_id is missing or too long"
        if self.latest is not None and not isinstance(self.latest, dict):
            return "tracker.latest_message is not an object"
        return None

    def as_call(self) -> dict[str, Any]:
        """The call as rasa-sdk takes it: no events but the latest message's input channel."""
        channel = self.found.get("tracker.latest_input_channel")
        return {
            "next_action": self.found["next_action"],
            "sender_id": self.found["tracker.sender_id"],
            "tracker": {
                "sender_id": self.found["tracker.sender_id"],
                "latest_message": self.latest or {},
                "events": [{"event": "user", "input_channel": channel}] if isinstance(channel, str) else [],
            },
            "domain": {},
        }


def _authorised(request: Request, token: str) -> bool:
    given = request.args.get("token")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


async def _read_call(request: Request) -> ActionCall | response.HTTPResponse:
    if request.headers.get("Content-Encoding") not in (None, "identity"):
        return _refusal(400, "compressed action calls are not accepted")
    call = ActionCall()
    try:
        while (chunk := await request.stream.read()) is not None:  # type: ignore[union-attr]
            call.feed(chunk)
        call.close()
    except TooLarge:
        log.error("action call refused: too large (the person got no answer)")
        return _refusal(413, "the action call is too large")
    except ijson.JSONError:
        return _refusal(400, "the body is not JSON")
    if call.size > LARGE_CALL_BYTES:
        log.warning("a long conversation: an action call of %d MB", call.size // 1_000_000)
    problem = call.problem()
    if problem is not None:
        log.warning("action call refused: %s", problem)
        return _refusal(400, problem, call.found.get("next_action"))
    return call


def action_server(cores: dict[str, tuple[Channel, RasaTransport]], token: str) -> Sanic[Any, Any]:
    """rasa-sdk's executor with our one action behind a Sanic app of our own: every call needs
    the shared token; a call is read as it streams; nothing is echoed back or logged."""
    executor = ActionExecutor()
    executor.register_action(ReachableAction(cores))
    server: Sanic[Any, Any] = Sanic(f"reachable_actions_{id(cores)}", configure_logging=False)
    server.config.ACCESS_LOG = False  # it would log the caller's address
    server.config.REQUEST_MAX_SIZE = MAX_CALL_BYTES
    server.config.FALLBACK_ERROR_FORMAT = "json"
    # Sanic rewrites its own request handling at start-up ("touchup"), which fails the second time
    # in one process (a restart inside it, or the tests); it is a speed-up only.
    server.config.TOUCHUP = False
    # Rasa waits up to 300 s for an action; Sanic would cancel a slow answer at 60 s.
    server.config.RESPONSE_TIMEOUT = 300

    @server.get("/health")
    async def health(_: Request) -> response.HTTPResponse:
        return response.json({"status": "ok"})

    @server.get("/actions")
    async def actions(request: Request) -> response.HTTPResponse:
        if not _authorised(request, token):
            return _refusal(401, "the token is missing or wrong")
        return response.json([{"name": ACTION}])

    @server.post("/webhook", stream=True)
    async def webhook(request: Request) -> response.HTTPResponse | None:
        if not _authorised(request, token):
            log.warning("action call refused: the token is missing or wrong")
            return _refusal(401, "the token is missing or wrong")
        call = await _read_call(request)
        if not isinstance(call, ActionCall):
            return call
        handed: list[tuple[Channel, str, Told]] = []
        reset = HANDED.set(handed)
        try:
            with _running_call():
                result = await executor.run(call.as_call())
        except ActionNotFoundException as error:
            return _refusal(404, "no such action", error.action_name)
        except BaseException:
            _later(handed)  # cancelled or failed before the answer was written: it waits
            raise
        finally:
            HANDED.reset(reset)
        answer = response.json(result.model_dump() if result else None)
        if not handed:
            return answer
        await _written_then_forgotten(request, answer, handed)
        return None

    server.error_handler.add(Exception, _on_error)
    return server


async def _on_error(request: Request, exception: Exception) -> response.HTTPResponse:
    """Never a body that echoes the request (the conversation) back."""
    status = exception.status_code if isinstance(exception, SanicException) else 500
    log.warning("action call failed: %s", type(exception).__name__)
    text = "the action call is too large" if status == 413 else "the action could not run"
    return _refusal(status, text)


async def _written_then_forgotten(
    request: Request, answer: response.HTTPResponse, handed: list[tuple[Channel, str, Told]]
) -> None:
    """A kept answer (a new report's code) the action handed back is forgotten only once the
    answer holding it is written to Rasa."""
    written = await request.respond(answer)
    try:
        await written.send(end_stream=True)
    except BaseException:  # Sanic cancels the request when Rasa hangs up: a CancelledError
        _later(handed)
        raise
    # Sanic cancels a request's task once Rasa hangs up, which it does as soon as it has the
    # answer: forgetting what was handed must not be cut short by that.
    forgetting = asyncio.ensure_future(_forget(handed))
    _forgetting.add(forgetting)
    forgetting.add_done_callback(_forgetting.discard)
    await asyncio.shield(forgetting)


def _later(handed: list[tuple[Channel, str, Told]]) -> None:
    """Not written: each kept answer waits for that person's next message."""
    for core, chat, told in handed:
        core.ports.conversations.answer_later(core.ports.conversations.key(core.name, chat), told)


_forgetting: set[asyncio.Future[None]] = set()
_calls: set[asyncio.Task[Any]] = set()  # calls running the action, until it has answered


@contextlib.contextmanager
def _running_call() -> Iterator[None]:
    """This call is running the action: a stop waits for it to end (``_drain``)."""
    this = asyncio.current_task()
    if this is not None:
        _calls.add(this)
    try:
        yield
    finally:
        _calls.discard(this)


async def _forget(handed: list[tuple[Channel, str, Told]]) -> None:
    for core, _, told in handed:
        await core.gone_out(told)


@contextlib.asynccontextmanager
async def serving_actions(app: App) -> AsyncIterator[str]:
    """The action server, listening on REACHABLE_RASA_ACTIONS_LISTEN while inside."""
    settings = app.settings
    check_settings(settings)
    token = _secret(settings)
    assert token is not None  # check_settings
    api = RasaHTTP(settings.rasa_url, token) if settings.rasa_url else None
    cores = {}
    for name in CHANNELS:
        transport = RasaTransport(api, name)
        core = Channel(transport, replace(app.ports(), staff_chats={}))  # staff chats are on Telegram
        core.attach()
        cores[name] = (core, transport)
    server = action_server(cores, token)
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
            # Before waiting for the server: from Python 3.12.1 that wait lasts until every
            # connection has closed, which Rasa's kept-alive ones do only when told to.
            await _drain(running.connections, SHUTDOWN_SECONDS)
            await running.wait_closed()
            await running.after_stop()
    finally:
        Sanic.unregister_app(server)


async def _drain(connections: set[Any], grace: float) -> None:
    """Closing the server leaves the connections Rasa opened: a call in flight is answered (for up
    to ``grace`` seconds) before the app it needs closes, and every connection is then closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        for connection in list(connections):
            connection.close_if_idle()  # a kept-alive connection is idle between calls
        if not connections or loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)
    for connection in list(connections):
        connection.abort()  # its call is cancelled
    # What calls still do once their connection has gone (a cancelled turn finishing its write,
    # a code written to Rasa being forgotten) ends before the app closes the store under it.
    left = {*_calls, *_forgetting}
    if left:
        await asyncio.wait(left, timeout=UNWIND_SECONDS)
    await asyncio.sleep(0)  # an aborted transport closes its socket on the loop's next turn


def _secret(settings: Settings) -> str | None:
    return settings.rasa_token.get_secret_value() if settings.rasa_token else None


def check_settings(settings: Settings) -> None:
    """Refuse a start where a promise to people on Rasa channels could not be kept."""
    if settings.rasa_token is None or len(settings.rasa_token.get_secret_value()) < 16:
        raise ConfigError(
            "set REACHABLE_RASA_TOKEN (16 characters or more): the action server answers only calls that "
            "carry it (the token in Rasa's endpoints.yml), and Rasa's API is called with it"
        )
    if settings.forwarding and not settings.rasa_url:
        raise ConfigError(
            "reports can be sent to staff, who may reply: set REACHABLE_RASA_URL (and REACHABLE_RASA_TOKEN) "
            "so replies reach people on Rasa channels"
        )
    require_telegram_for_staff(settings)
