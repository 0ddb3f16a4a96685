"""The ``reachable`` command: reads settings and hands over to the app. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot import crashpoints
from bot.app import App, create_app, settle_heap
from bot.console import run_console
from bot.errors import ConfigError, ReachableError
from bot.preview import build_preview, to_html, to_markdown
from bot.serving import until_stopped
from bot.settings import Settings
from flows import Engine, EngineConfig
from flows.definitions import build_flows
from flows.model import FlowError
from responses import Renderer, Responses, ResponsesError, check
from responses.readability import TARGET_READING_AGE, WORST_ALLOWED, measure, summarise
from storage import DB_FILE, Keyring, SQLiteStore, StorageError, load_keyring, rotate_key_file
from storage.crypto import KEY_FILE, prune_key_file
from storage.lock import DataLock

if TYPE_CHECKING:
    from bot.doctor import Finding


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
        help="the Telegram library to run on (default: REACHABLE_FRAMEWORK, else aiogram)",
    )
    commands.add_parser("web", help="serve the web chat (for people without Telegram)")
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


def _understanding_test(
    folder: Path | None, heldout: list[Path], folds: int, misses: bool, answers: list[Path] | None = None
) -> int:
    from flows.classifier import IntentClassifier
    from flows.evaluation import cross_validate, first_reply, render, score
    from responses.catalog import read_examples

    responses = Responses.load(folder)
    examples = responses.examples()
    if not heldout and not answers:
        report = cross_validate(examples, lambda part: IntentClassifier.train(part).understand_many, folds)
        title = f"Cross-validation, {folds} folds, {len(examples)} examples (each judged by a model that never saw it)"
        print(render(report, title, misses=misses))
        return 0
    tested = []
    for path in heldout:
        found, problems = read_examples(path, path.stem)
        for problem in problems:
            print(problem, file=sys.stderr)
        if any(p.severity == "error" for p in problems):
            return 2
        tested.extend(found)
    classifier = IntentClassifier.train(examples, dict(responses.language_samples()))
    flows = build_flows(responses.question_order, responses.questions_off)
    if tested:
        engine = Engine(responses, flows=flows, understander=classifier)
        report = score(tested, classifier.understand_many([e.text for e in tested]), helped=first_reply(engine))
        title = (
            f"Held-out: {len(tested)} messages never used in training, each sent as a first message to the bot; "
            f"model trained on {len(examples)} examples"
        )
        print(render(report, title, misses=misses))
    if answers:
        print()
        print(_answers_test(responses, flows, classifier, answers, misses))
    return 0


def _fixed(moment: dt.datetime) -> dt.datetime:
    return moment


def _answers_test(responses: Responses, flows: Any, classifier: Any, paths: list[Path], misses: bool) -> str:
    """Words typed at the report's questions (held out), each at its question: how many were
    understood as meant."""
    from flows.engine import EngineConfig
    from flows.evaluation import AnswerResult, answer_in_report, in_report_rate
    from responses.catalog import read_answer_cases

    results: list[AnswerResult] = []
    for path in paths:
        cases, now = read_answer_cases(path, path.stem)
        config = EngineConfig(forwarding=True)
        engine = Engine(responses, config, flows=flows, understander=classifier, clock=functools.partial(_fixed, now))
        results.extend(answer_in_report(engine, case) for case in cases)
    lines = [in_report_rate(results)]
    if misses:
        lines.append("")
        lines.append("typed answers not understood as meant (step: words -> expected / got):")
        for result in results:
            if not result.right:
                case = result.case
                lines.append(f"  [{case.locale}] {case.step}: {case.text} -> {' '.join(case.expect)} / {result.got}")
    return "\n".join(lines)


def _check(folder: Path | None, readability: bool, locale: str) -> int:
    checked = check(folder)
    problems = checked.problems
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        print(problem)
    if readability and not errors:
        _readability(checked, locale)
    warnings = len(problems) - len(errors)
    print(f"{len(errors)} error(s), {warnings} warning(s)")
    if errors:
        print("The bot will not start with these files until each error above is fixed (each names its file and line).")
    elif warnings:
        print("The bot can start with these files; each warning above is worth fixing.")
    else:
        print("All good: the bot can use these files.")
    return 1 if errors else 0


def _readability(responses: Responses, locale: str) -> None:
    scores = measure(responses, locale)
    summary = summarise(scores, worst=10)
    print(f"\nReading age per message ({locale}), Flesch-Kincaid grade + 5:")
    for found in sorted(scores, key=lambda s: s.message):
        print(f"  {found.reading_age:5.1f}  {found.message}  ({found.words} words)")
    print("\nHardest to read:")
    for found in summary.worst:
        print(f"  {found.reading_age:5.1f}  {found.message}")
    figures = (
        f"\nReading age: all text {summary.overall}, median message {summary.median}, hardest "
        f"{summary.worst[0].reading_age:.1f} ({summary.messages} messages)."
    )
    if locale != "en":
        print(figures + " The formula is made for English: use these only to compare messages in this language.")
        return
    verdict = "meets the target" if summary.meets_target else "DOES NOT meet the target"
    print(
        f"{figures} Target: about 9 to 11 (all text and median at most {TARGET_READING_AGE:g}, "
        f"no message above {WORST_ALLOWED:g}): {verdict}."
    )


def _preview(folder: Path | None, locale: str, out: Path | None) -> int:
    responses = Responses.load(folder)
    if locale not in responses.locales:
        print(f"reachable: no {locale!r} text; languages here: {', '.join(responses.locales)}", file=sys.stderr)
        return 2
    engine = Engine(
        responses,
        EngineConfig(forwarding=True),
        flows=build_flows(responses.question_order, responses.questions_off),
    )
    preview = build_preview(engine, Renderer(responses, retention_days=90, draft_hours=24), locale)
    page = to_markdown(preview) if out is not None and out.suffix == ".md" else to_html(preview)
    if out is None:
        sys.stdout.write(page)
    else:
        out.write_text(page, encoding="utf-8")
        print(f"wrote {out} ({len(preview.step_keys)} screens, {len(preview.other)} other messages)")
    return 0


async def _console(settings: Settings, chat: str) -> None:
    async with create_app(settings) as app:
        demo = (lambda message_id: app.responses.text("en", message_id, "console")) if settings.demo_inbox else None
        await run_console(app.ports(), chat, demo=demo)


async def _rotate(settings: Settings) -> None:
    """Re-encrypt under the newest key. With a key file, a new key is added in front first; with
    REACHABLE_ENCRYPTION_KEY, put the new key first in the list before running this. Refused
    while the bot or the console runs on the same data folder."""
    with DataLock(settings.data_dir, "rotate keys"):
        if settings.encryption_key is None:
            keyring = rotate_key_file(settings.data_dir)
            print(f"added a new key to {settings.data_dir / KEY_FILE}")
        else:
            keyring = load_keyring(settings.encryption_key.get_secret_value(), settings.data_dir)
        async with SQLiteStore(settings.data_dir / DB_FILE, keyring) as store:
            counts = await store.reencrypt()
    done = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"re-encrypted under the newest of {keyring.count} key(s): {done}")
    print("Keep the older key(s) for 48 hours (open drafts are found by the oldest), then: reachable keys prune")


async def _prune(settings: Settings) -> None:
    """Drop every key but the newest, once everything stored opens with the newest alone."""
    with DataLock(settings.data_dir, "prune keys"):
        configured = settings.encryption_key.get_secret_value() if settings.encryption_key else None
        keyring = load_keyring(configured, settings.data_dir)
        if keyring.count == 1:
            print("only one key is in use: nothing to prune")
            return
        store = SQLiteStore(settings.data_dir / DB_FILE, keyring)
        async with store:
            stale = await store.tokens_not_under_newest()
        if stale:
            raise ConfigError(f"{stale} stored item(s) still need an older key: run `reachable keys rotate` first")
        if configured:
            print("everything stored opens with the newest key: remove the older keys from REACHABLE_ENCRYPTION_KEY")
            print("(open drafts are found through the oldest key and start afresh once it is gone)")
            return
        dropped = prune_key_file(settings.data_dir)
    print(f"removed {dropped} older key(s) from {settings.data_dir / KEY_FILE}; open drafts start afresh")


def _checked(args: argparse.Namespace) -> int:
    """Commands whose exit code says what they found."""
    if args.command == "doctor":
        return _doctor_environ(args.webhook)
    settings = Settings.from_environ()
    _logging(settings, quiet=False)
    return asyncio.run(_backup(settings, args.path, args.check))


def _doctor_environ(webhook: bool) -> int:
    """`reachable doctor`: settings that do not parse are findings too, one line each."""
    from bot.doctor import diagnose, unreadable_settings

    try:
        settings = Settings.from_environ()
    except ValidationError as error:
        return _findings(unreadable_settings(error))
    _logging(settings, quiet=False)
    return _findings(asyncio.run(diagnose(settings, webhook)))


def _findings(findings: list[Finding]) -> int:
    from bot.doctor import FAIL

    for finding in findings:
        print(finding)
    return 1 if any(f.status == FAIL for f in findings) else 0


async def _backup(settings: Settings, target: Path, check: bool) -> int:
    """A consistent copy of the database while the bot runs; never the key."""
    from storage.backup import back_up, check_backup

    reports = await asyncio.to_thread(back_up, settings.data_dir, target)
    print(f"backed up {reports} report(s) to {target}; the key is not in it: keep the key's backup apart")
    if not check:
        return 0
    if settings.encryption_key is None and not (settings.data_dir / KEY_FILE).exists():
        raise ConfigError("no key to check the backup with: set REACHABLE_ENCRYPTION_KEY")
    keys = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    checked = await check_backup(target, load_keyring(keys, settings.data_dir))
    print(f"restored to a temporary folder: {checked.readable} of {checked.reports} report(s) readable with the key")
    return 0 if checked.readable == checked.reports else 1


def _warn_about_key_file(settings: Settings) -> None:
    if settings.encryption_key is None:
        logging.getLogger("reachable").warning(
            "the encryption key is the file %s, in the same folder as the database: one backup or one "
            "stolen disk holds both. Set REACHABLE_ENCRYPTION_KEY from a secrets manager instead",
            settings.data_dir / KEY_FILE,
        )


async def _run(settings: Settings, webhook: bool) -> None:
    from bot.doctor import FAIL, quick

    failed = [str(f) for f in quick(settings, webhook) if f.status == FAIL]
    if failed:
        raise ConfigError("not started, `reachable doctor` finds: " + "; ".join(failed))
    _warn_about_key_file(settings)
    app = create_app(settings)  # starts training the understanding step in its own process
    if settings.framework == "ptb":  # the Telegram library is imported meanwhile
        from bot import telegram_ptb_run as ptb

        application = ptb.make_application(settings)
        async with app:
            settle_heap()
            await (ptb.run_webhook(app, application) if webhook else ptb.run_polling(app, application))
        return
    from bot.telegram_run import make_bot, run_polling, run_webhook

    bot = make_bot(settings)
    async with app:
        settle_heap()
        await (run_webhook(app, bot) if webhook else run_polling(app, bot))


async def _beside_telegram(settings: Settings, serving: Callable[[App], AbstractAsyncContextManager[object]]) -> None:
    """Serve another channel, with the Telegram bot in the same process when a token is set
    (the staff chat lives there; one process per data folder)."""
    if settings.telegram_token is not None:
        _warn_about_key_file(settings)
    app = create_app(settings)
    async with app, serving(app):
        settle_heap()
        if settings.telegram_token is None:
            await until_stopped()
            return
        from bot.telegram_run import make_bot, run_polling

        await run_polling(app, make_bot(settings))


async def _rasa_actions(settings: Settings) -> None:
    """The Rasa action server (see bot/rasa_run.py)."""
    try:
        from bot.rasa_run import check_settings, serving_actions
    except ImportError as error:
        raise ConfigError("rasa-sdk is not installed: pip install -e '.[rasa]'") from error
    check_settings(settings)
    await _beside_telegram(settings, serving_actions)


async def _web(settings: Settings) -> None:
    """The web chat (see bot/web_run.py)."""
    from bot.web_run import check_settings, serving_web

    check_settings(settings)
    await _beside_telegram(settings, serving_web)


def _rasa_export(folder: Path | None, out: Path) -> int:
    from bot.rasa_export import export

    for path in export(out, Responses.load(folder)):
        print(f"wrote {path}")
    return 0


def _offline(args: argparse.Namespace) -> int:
    """Commands that read only the responses folder: no settings, no storage."""
    try:
        if args.command == "understanding":
            return _understanding_test(args.folder, args.heldout, args.folds, args.misses, args.answers)
        if args.command == "rasa":
            return _rasa_export(args.folder, args.out)
        if args.action == "preview":
            return _preview(args.folder, args.locale, args.out)
        return _check(args.folder, args.readability, args.locale)
    except ResponsesError as error:
        print(f"reachable: {error}", file=sys.stderr)
        return 2


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
        return _console(settings, args.chat)
    if settings.demo_inbox:
        # Reports "sent to the support team" would go nowhere real: refused, not pretended.
        raise ConfigError("REACHABLE_DEMO_INBOX is for the console demo only (make demo): unset it")
    if args.command == "run":
        if args.framework:
            settings = settings.model_copy(update={"framework": args.framework})
        return _run(settings, args.webhook)
    if args.command == "rasa-actions":
        return _rasa_actions(settings)
    if args.command == "web":
        return _web(settings)
    return _rotate(settings) if args.action == "rotate" else _prune(settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keys" and args.action == "new":
        print(Keyring.new_key().decode())
        return 0
    if args.command in ("responses", "understanding", "rasa"):
        return _offline(args)
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


if __name__ == "__main__":
    sys.exit(main())
