"""The ``reachable`` command: reads the arguments and settings and hands over. Channels start in
``bot/launch.py``; operators' tools live in ``bot/ops/``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot import launch
from bot.core import crashpoints
from bot.core.errors import ConfigError, ReachableError
from bot.core.settings import Settings
from bot.core.stores import open_store
from bot.ops import keys
from flows.model import FlowError
from responses import Responses, ResponsesError
from storage import Keyring, StorageError

if TYPE_CHECKING:
    from bot.ops.doctor import Finding


def _staff_parser(commands: Any) -> None:
    commands.add_parser("staff-web", help="serve the staff inbox (accounts from `reachable staff add`)")
    staff = commands.add_parser("staff", help="staff accounts for the inbox")
    staff_what = staff.add_subparsers(dest="action", required=True)
    adding = staff_what.add_parser("add", help="add an account; prints its authenticator enrolment")
    adding.add_argument("name", help="the name they sign in with")
    adding.add_argument(
        "--role", required=True, help="whose cases they see: support, soit, admin, or a charity's own recipient's key"
    )
    adding.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def _figures_parser(commands: Any) -> None:
    figures = commands.add_parser("figures", help="a quarter's figures, safe to publish; or combine services'")
    figures.add_argument("combine", nargs="*", help="`combine a.json b.json …`: the network's quarter from exports")
    figures.add_argument("--quarter", help="the quarter, like 2026Q4")
    figures.add_argument("--out", type=Path, default=Path("figures"), help="the folder to write (default: figures)")
    figures.add_argument("--demo", action="store_true", help="made-up figures, for a first look and the README")
    figures.add_argument(
        "--matches", nargs="+", type=Path, default=[], help="when combining: the services' match exports"
    )
    figures.add_argument(
        "--told-as",
        action="append",
        default=[],
        metavar="SERVICE=ANSWER",
        help="when combining: the answer to 'have you told anyone else?' that means this service (Galop=galop)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reachable", description="A confidential messaging assistant.")
    commands = parser.add_subparsers(dest="command", required=True)
    console = commands.add_parser("console", help="talk to the bot in this terminal")
    console.add_argument("--chat", default="local", help="which local conversation to continue")
    run = commands.add_parser("run", help="run the Telegram bot (long polling, or --webhook)")
    run.add_argument("--webhook", action="store_true", help="serve a webhook instead of polling")
    run.add_argument(
        "--framework",
        choices=("aiogram", "ptb"),
        help="the Telegram library to run on (default: REACHABLE_FRAMEWORK, else ptb)",
    )
    commands.add_parser("web", help="serve the web chat (for people without Telegram)")
    spreading = commands.add_parser(
        "spread", help="in front of several instances: each chat's updates to the same one (README: Several instances)"
    )
    spreading.add_argument("instances", nargs="+", help="each instance's address, e.g. http://127.0.0.1:8080")
    spreading.add_argument("--listen", default="127.0.0.1:8090", help="where to listen (default: 127.0.0.1:8090)")
    _staff_parser(commands)
    doctor = commands.add_parser("doctor", help="check the configuration; sends nothing anyone would see")
    doctor.add_argument("--webhook", action="store_true", help="check the webhook set-up too")
    backup = commands.add_parser("backup", help="copy the database while the bot runs (never the key)")
    backup.add_argument("path", type=Path, help="the new backup file (outside the data folder)")
    backup.add_argument("--check", action="store_true", help="restore it to a temporary folder and read every report")
    commands.add_parser(
        "rasa-actions",
        help="serve Rasa assistants (WhatsApp, SMS, web widgets) as a rasa-sdk action server",
    )
    rasa = commands.add_parser("rasa", help="the Rasa project that goes with the action server")
    rasa_what = rasa.add_subparsers(dest="action", required=True)
    exporting = rasa_what.add_parser(
        "export", help="write domain.yml, data/nlu.yml and data/rules.yml from the bot's own examples"
    )
    exporting.add_argument("folder", nargs="?", type=Path, help="your overlay folder (default: the built-in text)")
    exporting.add_argument("--out", type=Path, default=Path("deploy/rasa"), help="the Rasa project (deploy/rasa)")
    responses = commands.add_parser("responses", help="work with the bot's text")
    what = responses.add_subparsers(dest="action", required=True)
    checking = what.add_parser("check", help="check a responses folder and list every problem")
    checking.add_argument("folder", nargs="?", type=Path, help="your overlay folder (default: the built-in text)")
    checking.add_argument("--readability", action="store_true", help="print reading ages, worst first")
    checking.add_argument("--locale", default="en", help="language to measure with --readability")
    previewing = what.add_parser("preview", help="every screen, in order, as a page a reviewer can read")
    previewing.add_argument("folder", nargs="?", type=Path, help="your overlay folder (default: the built-in text)")
    previewing.add_argument("--locale", default="en", help="language to show (default: en)")
    previewing.add_argument("--out", type=Path, help="write here (.html, or .md for Markdown); default: print")
    understanding = commands.add_parser("understanding", help="how well the bot understands what people write")
    understanding_what = understanding.add_subparsers(dest="action", required=True)
    testing = understanding_what.add_parser(
        "test", help="precision, recall and F1 per intent and language, like 'rasa test nlu'"
    )
    testing.add_argument("folder", nargs="?", type=Path, help="your overlay folder (default: the built-in text)")
    testing.add_argument(
        "--heldout",
        type=Path,
        action="append",
        default=[],
        help="a Rasa NLU file of messages never used in training, named by language (en.yml); "
        "without it, cross-validation",
    )
    testing.add_argument(
        "--answers",
        type=Path,
        action="append",
        default=[],
        help="a file of words typed at the report's questions and what they mean, named by language (en.yml)",
    )
    testing.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    testing.add_argument("--misses", action="store_true", help="list the safety examples whose help was missed")
    _match_parser(commands)
    _figures_parser(commands)
    keys = commands.add_parser("keys", help="encryption keys")
    keys_what = keys.add_subparsers(dest="action", required=True)
    keys_what.add_parser("new", help="print a new key for REACHABLE_ENCRYPTION_KEY")
    keys_what.add_parser(
        "rotate",
        help="re-encrypt everything under the newest key (with a key file: add a new key first)",
    )
    keys_what.add_parser(
        "prune",
        help="drop older keys once nothing stored needs them (with REACHABLE_ENCRYPTION_KEY: say whether you may)",
    )
    return parser


# Matching commands that read only files.
FROM_FILES = ("combine", "new-network-key")


def _match_parser(commands: Any) -> None:
    match = commands.add_parser("match", help="matching reports that name the same person, across services")
    match_what = match.add_subparsers(dest="action", required=True)
    exporting = match_what.add_parser("export", help="this service's digests under the network key (no identifier)")
    exporting.add_argument("--out", type=Path, required=True, help="the export file to write")
    combining = match_what.add_parser("combine", help="find matches between services' exports (no key needed)")
    combining.add_argument("exports", nargs="+", type=Path, help="exports from two or more services")
    combining.add_argument("--out", type=Path, help="a folder for one <service>.matches.json each")
    network = match_what.add_parser("new-network-key", help="make the network key the services share, once")
    network.add_argument("path", type=Path, help="the key file to write")
    match_what.add_parser("rotate-key", help="put every digest under a new matching key (the bot stopped)")


def _checked(args: argparse.Namespace) -> int:
    """Commands whose exit code says what they found."""
    if args.command == "doctor":
        return _doctor_environ(args.webhook)
    settings = Settings.from_environ()
    _logging(settings, quiet=False)
    return asyncio.run(keys.backup(settings, args.path, args.check))


def _doctor_environ(webhook: bool) -> int:
    """`reachable doctor`: settings that do not parse are findings too, one line each."""
    from bot.ops.doctor import diagnose, unreadable_settings

    try:
        settings = Settings.from_environ()
    except ValidationError as error:
        return _findings(unreadable_settings(error))
    _logging(settings, quiet=False)
    return _findings(asyncio.run(diagnose(settings, webhook)))


def _findings(findings: list[Finding]) -> int:
    from bot.ops.doctor import FAIL

    for finding in findings:
        print(finding)
    return 1 if any(f.status == FAIL for f in findings) else 0


def _offline(args: argparse.Namespace) -> int:
    """Commands that read only files (the responses folder, matching exports): no settings, no storage."""
    try:
        return _from_files(args)
    except (ResponsesError, ConfigError) as error:
        print(f"reachable: {error}", file=sys.stderr)
        return 2


def _from_files(args: argparse.Namespace) -> int:
    from bot.ops import figures, matching, texts
    from bot.ops.understanding import understanding_test

    if args.command == "figures":
        return _figures_from_files(args, figures)
    if args.command == "match":
        return (
            matching.combine(args.exports, args.out)
            if args.action == "combine"
            else matching.new_network_key(args.path)
        )
    if args.command == "understanding":
        return understanding_test(args.folder, args.heldout, args.folds, args.misses, args.answers)
    if args.command == "rasa":
        return launch.rasa_export(args.folder, args.out)
    if args.action == "preview":
        return texts.preview(args.folder, args.locale, args.out)
    return texts.check_folder(args.folder, args.readability, args.locale)


def _figures_from_files(args: argparse.Namespace, figures: Any) -> int:
    from bot.core import quarterly

    responses = Responses.load(None)
    if args.combine:
        if args.combine[0] != "combine" or len(args.combine) < 3:
            raise ConfigError("to combine: reachable figures combine a.json b.json … --out DIR")
        return int(
            figures.combine_files(responses, [Path(p) for p in args.combine[1:]], args.out, args.matches, args.told_as)
        )
    quarter = args.quarter or "2026Q4"
    tallies = figures.demo_tallies(quarterly.months_of(quarter))
    return int(figures.quarter_figures(responses, tallies, "Demo service", quarter, args.out))


def _logging(settings: Settings, quiet: bool) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # aiosqlite logs every statement with its parameters at DEBUG: never let stored data into logs.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    # rasa-sdk and Sanic log requests and events at INFO and DEBUG: keep them to warnings.
    for name in ("rasa_sdk", "sanic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if quiet:  # the console shares the terminal: keep the log out of the conversation
        logging.getLogger().setLevel(logging.WARNING)


def _serving(args: argparse.Namespace, settings: Settings) -> Coroutine[Any, Any, None]:
    if args.command == "console":
        return launch.console(settings, args.chat)
    if settings.demo_inbox:
        # Reports "sent to the support team" would go nowhere real: refused, not pretended.
        raise ConfigError("REACHABLE_DEMO_INBOX is for the console demo only (make demo): unset it")
    if args.command == "run":
        if args.framework:
            settings = settings.model_copy(update={"framework": args.framework})
        return launch.telegram(settings, args.webhook)
    servers = {"rasa-actions": launch.rasa_actions, "web": launch.web, "staff-web": launch.staff_web}
    if args.command in servers:
        return servers[args.command](settings)
    operators = {"match": _matching, "figures": _figures, "staff": _staff}
    if args.command in operators:
        return operators[args.command](args, settings)
    return keys.rotate(settings) if args.action == "rotate" else keys.prune(settings)


def _staff(args: argparse.Namespace, settings: Settings) -> Coroutine[Any, Any, None]:
    from bot.ops.staff_accounts import add_account, read_password

    password = read_password(args.password_stdin)  # asked before anything is opened

    async def run() -> None:
        await add_account(settings, args.name, args.role, password)

    return run()


def _figures(args: argparse.Namespace, settings: Settings) -> Coroutine[Any, Any, None]:
    from bot.core import quarterly
    from bot.ops import figures

    if not args.quarter:
        raise ConfigError("say which quarter: reachable figures --quarter 2026Q4")
    quarterly.months_of(args.quarter)  # refused before anything is opened

    async def run() -> None:
        store = open_store(settings)
        async with store:
            tallies = await store.tallies(quarterly.months_of(args.quarter))
        responses = Responses.load(settings.responses_dir)
        figures.quarter_figures(responses, tallies, settings.service_name, args.quarter, args.out, time.time())

    return run()


def _matching(args: argparse.Namespace, settings: Settings) -> Coroutine[Any, Any, None]:
    from bot.ops import matching

    async def run() -> None:
        if args.action == "export":
            await matching.export(settings, args.out)
        else:
            await matching.rotate_key(settings)

    return run()


def _from_files_only(args: argparse.Namespace) -> bool:
    """Commands that need no settings and no storage."""
    if args.command == "figures":
        return bool(args.combine or args.demo)
    return args.command in ("responses", "understanding", "rasa") or getattr(args, "action", "") in FROM_FILES


def _spread(args: argparse.Namespace) -> int:
    """`reachable spread`: no settings and no data (it holds nothing)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(launch.spread(args.listen, args.instances))
    except (ReachableError, ValueError) as error:
        print(f"reachable: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _without_settings(args: argparse.Namespace) -> int | None:
    """Commands that need no settings: their exit code, or None for every other command."""
    if args.command == "keys" and args.action == "new":
        print(Keyring.new_key().decode())
        return 0
    if _from_files_only(args):
        return _offline(args)
    if args.command == "spread":
        return _spread(args)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    done = _without_settings(args)
    if done is not None:
        return done
    try:
        if args.command in ("backup", "doctor"):
            return _checked(args)
        settings = Settings.from_environ()
        _logging(settings, quiet=args.command == "console")
        crashpoints.arm_from(os.environ)
        asyncio.run(_serving(args, settings))
    except (ValidationError, ReachableError, ResponsesError, StorageError, FlowError) as error:
        print(f"reachable: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
