"""Starting the channels: the one place that knows every channel, so each channel and the core
know none. Each runs on one app built by ``create_app``; Telegram goes beside the others when a
token is set, because the staff chat lives there."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path

from bot.channels.console.adapter import run_console
from bot.channels.telegram import CHANNEL as TELEGRAM
from bot.core.app import App, create_app, settle_heap
from bot.core.errors import ConfigError
from bot.core.serving import require_telegram_for_staff, until_stopped
from bot.core.settings import Settings
from bot.ops.keys import warn_about_key_file
from responses import Responses


async def console(settings: Settings, chat: str) -> None:
    async with create_app(settings) as app:
        demo = (lambda message_id: app.responses.text("en", message_id, "console")) if settings.demo_inbox else None
        await run_console(app.ports(), chat, demo=demo)


async def telegram(settings: Settings, webhook: bool) -> None:
    from bot.ops.doctor import FAIL, quick

    if settings.shared_database and not webhook:
        raise ConfigError(
            "with REACHABLE_DATABASE_URL, serve Telegram by webhook (reachable run --webhook, behind reachable "
            "spread): Telegram lets one process poll, and a second would take the updates from the first"
        )
    failed = [str(f) for f in quick(settings, webhook) if f.status == FAIL]
    if failed:
        raise ConfigError("not started, `reachable doctor` finds: " + "; ".join(failed))
    warn_about_key_file(settings)
    app = create_app(settings)  # starts training the understanding step in its own process
    run = _telegram_on(app, webhook)  # the Telegram library is imported meanwhile
    async with app:
        settle_heap()
        await run()


def _telegram_on(app: App, webhook: bool) -> Callable[[], Awaitable[None]]:
    """The Telegram bot on the library REACHABLE_FRAMEWORK names, made (its library imported
    only now): what runs it on ``app``, by webhook or polling, until stopped. What goes through
    it (the staff chats, people on Telegram) waits, untried, until it is up or a minute has
    passed (see DeliveryWorker.expect); email and the other channels do not wait."""
    settings = app.settings
    app.delivery.expect((TELEGRAM,))
    if settings.framework == "ptb":
        from bot.channels.telegram import ptb_run

        application = ptb_run.make_application(settings)
        return partial(ptb_run.run_webhook if webhook else ptb_run.run_polling, app, application=application)
    from bot.channels.telegram import aiogram_run

    bot = aiogram_run.make_bot(settings)
    return partial(aiogram_run.run_webhook if webhook else aiogram_run.run_polling, app, bot=bot)


async def _beside_telegram(
    settings: Settings, serving: Callable[[App], AbstractAsyncContextManager[object]], channels: tuple[str, ...]
) -> None:
    """Serve another channel, with the Telegram bot in the same process when a token is set
    (the staff chat lives there; one process per data folder). With a shared database, Telegram
    is the webhook instances' (`reachable run --webhook`): this process serves its channel only,
    and sends only what it can (the staff chats' deliveries are theirs). ``channels``: those
    ``serving`` attaches, whose people's replies wait for it rather than count a failed try."""
    polling = settings.telegram_token is not None and not settings.shared_database
    if polling:
        warn_about_key_file(settings)
    app = create_app(settings)
    app.delivery.expect(channels)
    run = _telegram_on(app, webhook=False) if polling else None
    async with app, serving(app):
        settle_heap()
        await (run() if run is not None else until_stopped())


async def rasa_actions(settings: Settings) -> None:
    """The Rasa action server (see bot/channels/rasa/run.py)."""
    try:
        from bot.channels.rasa.run import CHANNELS, check_settings, serving_actions
    except ImportError as error:
        raise ConfigError("rasa-sdk is not installed: pip install -e '.[rasa]'") from error
    check_settings(settings)
    await _beside_telegram(settings, serving_actions, CHANNELS)


async def web(settings: Settings) -> None:
    """The web chat (see bot/channels/web/run.py)."""
    from bot.channels.web.adapter import CHANNEL
    from bot.channels.web.run import check_settings, serving_web

    check_settings(settings)
    if not settings.staff_web:
        await _beside_telegram(settings, serving_web, (CHANNEL,))
        return
    from bot.ops.inbox.server import serving_inbox

    @asynccontextmanager
    async def both(app: App) -> AsyncIterator[object]:
        async with serving_web(app), serving_inbox(app):
            yield None

    await _beside_telegram(settings, both, (CHANNEL,))


async def staff_web(settings: Settings) -> None:
    """The staff inbox (see bot/ops/inbox/server.py), with Telegram beside it when a token is set."""
    from bot.ops.inbox.server import serving_inbox

    require_telegram_for_staff(settings)
    await _beside_telegram(settings, serving_inbox, ())


async def spread(listen: str, instances: list[str]) -> None:
    """Each chat's requests to the same instance (see bot/ops/spread.py), until SIGTERM."""
    from bot.core.serving import serve
    from bot.ops.spread import Spreader

    async with serve(Spreader(instances).application(), listen, "--listen") as where:
        logging.getLogger("reachable.spread").info("spreading chats over %d instance(s) from %s", len(instances), where)
        await until_stopped()


def rasa_export(folder: Path | None, out: Path) -> int:
    from bot.channels.rasa.export import export

    for path in export(out, Responses.load(folder)):
        print(f"wrote {path}")
    return 0
