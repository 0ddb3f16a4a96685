"""Charities make it theirs: overlays, questions, languages, plain language, the preview."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.ops.preview import build_preview, to_html, to_markdown
from fakes.harness import Person, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from flows import Engine, EngineConfig
from flows.definitions import build_flows
from flows.events import Choice
from responses import Renderer, Responses, ResponsesError, check
from storage import Keyring
from tests.console_process import ConsoleProcess
from tests.helpers import Chat, text_of

ROOT = Path(__file__).parent.parent


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    """A charity's folder: one message changed, one service removed, a question relabelled,
    another turned off and the order changed."""
    folder = tmp_path / "northside"
    write(
        folder,
        "en/messages.yaml",
        "menu.prompt: How can Northside help tonight?\nreport.when: Roughly when was it?\nsummary.when: Roughly when\n",
    )
    write(folder, "en/services.yaml", "- id: frank\n  remove: true\n")
    write(folder, "questions.yaml", "order: [when, what]\noff: [app, substances]\n")
    return folder


def engine_for(responses: Responses) -> Engine:
    flows = build_flows(responses.question_order, responses.questions_off)
    return Engine(responses, EngineConfig(), flows=flows)


def test_an_overlay_reorders_and_turns_off_questions_but_never_consent(overlay: Path) -> None:
    responses = Responses.load(overlay)
    chat = Chat(engine_for(responses), Renderer(responses, 90, 24))
    chat.send("/report")
    chat.tap("Start")
    asked = []
    for _ in range(20):
        if not chat.step.startswith("report."):
            break
        asked.append(chat.step)
        chat.send({"report.when": "1", "report.what": "1, 2"}.get(chat.step, "skip"))
    assert asked[:2] == ["report.when", "report.what"]
    assert "report.app" not in asked and "report.substances" not in asked
    assert chat.step == "review"


def test_the_consent_steps_cannot_be_turned_off(tmp_path: Path) -> None:
    path = write(tmp_path, "questions.yaml", "off:\n  - app\n  - consent.keep\n  - colour\n")
    errors = [str(p) for p in check(tmp_path).problems if p.severity == "error"]
    assert any(f"{path}:3:" in e and "consent steps cannot be changed" in e for e in errors)
    assert any(f"{path}:4:" in e and "unknown report question 'colour'" in e for e in errors)


def test_an_overlay_changes_the_conversation_in_the_console(overlay: Path, tmp_path: Path) -> None:
    console = ConsoleProcess(tmp_path / "data", env={"REACHABLE_RESPONSES_DIR": str(overlay)})
    try:
        assert "How can Northside help tonight?" in console.screen
        services = console.send("/services")
        assert "The Havens" in services and "FRANK" not in services
        console.send("/report")
        screen = console.send("1")
        assert "Roughly when was it?" in screen
    finally:
        console.kill()


async def test_an_overlay_changes_the_conversation_on_telegram(
    overlay: Path, fake: FakeTelegram, tmp_path: Path
) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode(), REACHABLE_RESPONSES_DIR=str(overlay))
    async with polling_bot(settings):
        person = Person(fake, 4242)
        assert (await person.says("/start"))[-1] == "How can Northside help tonight?"
        services = "\n".join(await person.says("/services"))
        assert "The Havens" in services and "FRANK" not in services
        await person.says("/report")
        assert (await person.taps("Start"))[-1] == "Roughly when was it?"
        await person.taps("This week")
        await person.taps("Done")
        for _ in range(10):
            if person.screen.splitlines()[-1] == "Is this right?":
                break
            await person.taps("Skip")
        assert "• Roughly when: This week" in person.screen


@pytest.fixture
def defaults_without_a_polish_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "default"
    shutil.copytree(ROOT / "responses" / "default", copy)
    polish = copy / "pl" / "messages.yaml"
    lines = polish.read_text(encoding="utf-8").splitlines(keepends=True)
    polish.write_text("".join(line for line in lines if not line.startswith("menu.prompt:")), encoding="utf-8")
    import responses.catalog
    import responses.loader

    monkeypatch.setattr(responses.catalog, "DEFAULT_DIR", copy)
    monkeypatch.setattr(responses.loader, "DEFAULT_DIR", copy)
    return copy


def test_a_missing_polish_message_falls_back_to_english_with_a_warning(
    defaults_without_a_polish_message: Path,
) -> None:
    loaded = check(None)
    warnings = [str(p) for p in loaded.problems if p.severity == "warning"]
    assert any("[pl] message 'menu.prompt' is missing: English is used" in w for w in warnings)
    assert not [p for p in loaded.problems if p.severity == "error"]
    chat = Chat(engine_for(loaded), Renderer(loaded, 90, 24))
    said = chat.send("/language pl")
    assert said[0].text.startswith("Zmieniono język.")
    assert said[-1].text == "What would you like to do? Choose an option, or type its number."
    assert said[-1].options[0].label == "Potrzebuję pomocy teraz"


def test_polish_and_romanian_are_complete(responses: Responses) -> None:
    missing = [str(p) for p in responses.problems if "is missing" in p.message]
    assert missing == []
    assert responses.locales == ("en", "pl", "ro")


@pytest.mark.parametrize(
    ("locale", "typed", "expected"),
    [
        ("pl", "zostałem zgwałcony", "To nie Twoja wina."),
        ("pl", "on nie oddycha", "zadzwoń teraz pod 999"),
        ("ro", "am fost violat", "Nu este vina ta."),
        ("ro", "nu mai respiră", "sună acum la 999"),
    ],
)
def test_words_about_harm_are_understood_in_polish_and_romanian(
    responses: Responses, locale: str, typed: str, expected: str
) -> None:
    chat = Chat(engine_for(responses), Renderer(responses, 90, 24))
    chat.send(f"/language {locale}")
    assert expected in text_of(chat.send(typed))


async def test_telegram_language_picks_polish_for_a_polish_phone(fake: FakeTelegram, tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    async with polling_bot(settings):
        fake.chat(5151)
        await fake.user_sends(5151, "/start", language="pl")
        texts = await fake.wait_for_bot(5151, 2)
        assert texts[0].startswith("Cześć.")
        assert "pl" in fake.commands and fake.commands["pl"][0]["description"] == "Zacznij od nowa"


def test_the_retention_shown_always_matches_the_setting(responses: Responses) -> None:
    chat = Chat(engine_for(responses), Renderer(responses, retention_days=30, draft_hours=6))
    said = text_of(chat.send("/start")) + text_of(chat.send("/report"))
    assert "after 30 days" in said and "up to 6 hours" in said
    assert "90" not in said and "24 hours" not in said


def test_long_advice_comes_in_short_pages_with_more(chat: Chat) -> None:
    chat.send("/advice")
    first = text_of(chat.tap("Signs of overdose"))
    assert "Call 999 if someone:" in first and "What to do:" not in first
    assert chat.labels[0] == "More"
    second = text_of(chat.tap("More"))
    assert second.startswith("What to do:")
    assert "More" not in chat.labels


def test_a_ticked_option_says_so_in_words(chat: Chat) -> None:
    chat.send("/report")
    chat.tap("Start")
    chat.tap("Violence")
    assert "✓ Violence (chosen)" in [o.text for o in chat.last_with_options.options]


def test_judgemental_phrases_are_flagged_and_charities_can_add_their_own(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "en/messages.yaml",
        "menu.unclear: You should have known better.\nreport.erased: Gone. Don't get wasted again.\n",
    )
    write(tmp_path, "en/words.yaml", "judgemental:\n  - wasted\n")
    warnings = [str(p) for p in check(tmp_path).problems if p.severity == "warning"]
    assert any(f"{path}:1:" in w and "'you should have'" in w for w in warnings)
    assert any(f"{path}:2:" in w and "'wasted'" in w for w in warnings)
    assert not any("judgemental" in w for w in [str(p) for p in check(None).problems])


def test_a_symbol_standing_alone_is_flagged(tmp_path: Path) -> None:
    path = write(tmp_path, "en/messages.yaml", "delete.done: |\n  ✅\n  Your report is gone.\n")
    warnings = [str(p) for p in check(tmp_path).problems if p.severity == "warning"]
    assert any(f"{path}:1:" in w and "stands alone on a line" in w for w in warnings)


def test_readability_figures_are_printed_and_meet_the_target() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot", "responses", "check", "--readability"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0
    assert re.search(r"^\s+\d+\.\d  welcome\.notice  \(\d+ words\)$", run.stdout, re.MULTILINE)
    assert "Hardest to read:" in run.stdout
    verdict = next(line for line in run.stdout.splitlines() if line.startswith("Reading age: all text"))
    assert verdict.endswith("meets the target.")


@pytest.fixture(scope="module")
def preview_engine() -> tuple[Engine, Renderer]:
    responses = Responses.load()
    engine = Engine(responses, EngineConfig(forwarding=True), flows=build_flows())
    return engine, Renderer(responses, 90, 24)


@pytest.mark.parametrize("locale", ["en", "pl", "ro"])
def test_the_preview_covers_every_step_and_every_message(preview_engine: tuple[Engine, Renderer], locale: str) -> None:
    engine, renderer = preview_engine
    preview = build_preview(engine, renderer, locale)
    assert preview.step_keys == set(engine.steps)
    assert preview.message_ids | {i for i in renderer.responses.ids() if i.startswith("preview.")} >= set(
        renderer.responses.ids()
    )
    page = to_html(preview)
    assert all(f'id="step-{key.replace(".", "-")}"' in page for key in engine.steps)
    assert "{" not in re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)  # no unfilled variable
    markdown = to_markdown(preview)
    assert all(f"### `{key}`" in markdown for key in engine.steps)
    assert preview.review_needed == (locale != "en")
    assert ('class="note" role="note"' in page) == (locale != "en")


def test_preview_command_writes_html_and_markdown(tmp_path: Path) -> None:
    for name in ("preview.html", "preview.md"):
        run = subprocess.run(
            [sys.executable, "-m", "bot", "responses", "preview", "--locale", "ro", "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "screens" in run.stdout
    assert (tmp_path / "preview.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert (tmp_path / "preview.md").read_text(encoding="utf-8").startswith("# Tot ce poate spune botul")


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_preview_renders_in_headless_chromium(preview_engine: tuple[Engine, Renderer], tmp_path: Path) -> None:
    engine, renderer = preview_engine
    page = tmp_path / "preview.html"
    page.write_text(to_html(build_preview(engine, renderer, "en")), encoding="utf-8")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "preview.png"
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    for key in engine.steps:
        assert f'id="step-{key.replace(".", "-")}"' in dom
    assert "Everything the bot can say" in dom


def test_an_option_label_from_the_preview_is_a_real_button(chat: Chat) -> None:
    """Guards the preview's claim that its buttons are the bot's: tapping one works."""
    chat.send("/start")
    said = chat.send(Choice(step="menu", option="services"))
    assert "These services can help." in said[0].text


def test_a_charity_groups_boroughs_its_own_way_and_is_told_of_a_borough_in_two_areas(tmp_path: Path) -> None:
    folder = tmp_path / "charity" / "en"
    folder.mkdir(parents=True)
    (folder / "words.yaml").write_text("areas:\n  Inner: [Lambeth, Southwark]\n  Outer: [Bromley, Lambeth, Sutton]\n")
    with pytest.raises(ResponsesError, match=r"words.yaml:3: .*'Lambeth' is in both 'Inner' and 'Outer'"):
        Responses.load(tmp_path / "charity")
    (folder / "words.yaml").write_text("areas:\n  Inner: [Lambeth, Southwark]\n  Outer: [Bromley, Sutton]\n")
    responses = Responses.load(tmp_path / "charity")
    assert responses.area_of("Lambeth") == "Inner" and responses.area_of("Camden") is None, "the grouping replaced"
    assert Responses.load().area_of("Camden") == "Central London"
