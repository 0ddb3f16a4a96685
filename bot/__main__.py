"""The ``reachable`` command: reads settings and hands over to the app. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bot.app import create_app
from bot.console import run_console
from bot.errors import ReachableError
from bot.settings import Settings
from flows.model import FlowError
from responses import ResponsesError, check
from storage import StorageError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reachable", description="A confidential messaging assistant.")
    commands = parser.add_subparsers(dest="command", required=True)
    console = commands.add_parser("console", help="talk to the bot in this terminal")
    console.add_argument("--chat", default="local", help="which local conversation to continue")
    run = commands.add_parser("run", help="run the Telegram bot (long polling, or --webhook)")
    run.add_argument("--webhook", action="store_true", help="serve a webhook instead of polling")
    responses = commands.add_parser("responses", help="work with the bot's text")
    what = responses.add_subparsers(dest="action", required=True)
    checking = what.add_parser("check", help="check a responses folder and list every problem")
    checking.add_argument("folder", nargs="?", type=Path, help="your overlay folder (default: the built-in text)")
    return parser


def _check(folder: Path | None) -> int:
    problems = check(folder).problems
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        print(problem)
    warnings = len(problems) - len(errors)
    print(f"{len(errors)} error(s), {warnings} warning(s)")
    return 1 if errors else 0


async def _console(settings: Settings, chat: str) -> None:
    async with create_app(settings) as app:
        await run_console(app, chat)


async def _run(settings: Settings, webhook: bool) -> None:
    from bot.telegram_run import make_bot, run_polling, run_webhook

    bot = make_bot(settings)
    async with create_app(settings) as app:
        await (run_webhook(app, bot) if webhook else run_polling(app, bot))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "responses":
        return _check(args.folder)
    try:
        settings = Settings.from_environ()
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
            stream=sys.stderr,
        )
        if args.command == "console":
            # The console shares the terminal: keep the log out of the conversation.
            logging.getLogger().setLevel(logging.WARNING)
            asyncio.run(_console(settings, args.chat))
        elif args.command == "run":
            asyncio.run(_run(settings, args.webhook))
    except (ValidationError, ReachableError, ResponsesError, StorageError, FlowError) as error:
        print(f"reachable: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
