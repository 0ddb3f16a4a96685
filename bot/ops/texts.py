"""`reachable responses check` and `reachable responses preview`: a charity's text, checked and shown."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.ops.preview import build_preview, to_html, to_markdown
from flows import Engine, EngineConfig
from flows.definitions import build_flows
from responses import Renderer, Responses, check
from responses.readability import TARGET_READING_AGE, WORST_ALLOWED, measure, summarise


def check_folder(folder: Path | None, readability: bool, locale: str) -> int:
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


def preview(folder: Path | None, locale: str, out: Path | None) -> int:
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
