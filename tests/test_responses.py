"""Charity-editable text: the loader reports every problem with its file and line."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from flows.text import matches
from responses import Renderer, Responses, ResponsesError, check

DEFAULTS = Path(__file__).parent.parent / "responses" / "default"


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def errors(folder: Path | None) -> list[str]:
    return [str(p) for p in check(folder).problems if p.severity == "error"]


def test_the_shipped_defaults_have_no_errors() -> None:
    assert errors(None) == []


def test_every_default_message_fits_in_one_telegram_message(responses: Responses) -> None:
    for message_id in ("welcome.notice", "emergency.guidance", "advice.after_assault", "advice.police"):
        assert len(responses.text("en", message_id)) <= 4096


def test_every_fact_text_notes_its_source() -> None:
    """Each block of advice in the default English is preceded by a comment naming a source."""
    lines = (DEFAULTS / "en" / "messages.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.startswith(("advice.", "emergency.guidance", "intent.")) and line.rstrip().endswith("|"):
            before = lines[number - 1]
            assert before.startswith("#") or lines[number - 2].startswith("#"), f"no source above line {number + 1}"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "en/messages.yaml",
        "\n".join(
            [
                "menu.prompt: Hello there",  # fine
                "menu.no_such_id: Nobody asks for this",  # line 2: unknown id
                "report.kept: Kept. Code {code}",  # line 3: missing {reference}
                "report.sent: Sent {reference} {code} to {name}",  # line 4: unknown variable
                f"advice.mixing: {'a' * 5000}",  # line 5: too long
                "advice.consent: Broken { brace",  # line 6: malformed placeholder
                "",
            ]
        ),
    )
    write(tmp_path, "en/words.yaml", "emergency:\n  - help\nnot_a_list: [x]\n")
    write(tmp_path, "en/services.yaml", "- id: galop\n  phone: [1, 2]\n  colour: blue\n")
    write(tmp_path, "pl/messages.yaml", "menu.prompt: 'unclosed\n  quote: here\n")
    return tmp_path


def test_a_broken_overlay_lists_every_problem_with_file_and_line(broken: Path) -> None:
    found = errors(broken)
    messages = str(broken / "en" / "messages.yaml")
    assert any(f"{messages}:2:" in e and "unknown message id" in e for e in found)
    assert any(f"{messages}:3:" in e and "missing variable {reference}" in e for e in found)
    assert any(f"{messages}:4:" in e and "unknown variable {name}" in e for e in found)
    assert any(f"{messages}:5:" in e and "5,000 characters" in e and "4,096" in e for e in found)
    assert any(f"{messages}:6:" in e and "unmatched" in e for e in found)
    assert any(str(broken / "en" / "words.yaml") + ":3:" in e and "unknown word list" in e for e in found)
    services = str(broken / "en" / "services.yaml")
    assert any(f"{services}:3:" in e and "unknown service field 'colour'" in e for e in found)
    assert any(services in e and "'phone' must be text" in e for e in found)
    assert any(str(broken / "pl" / "messages.yaml") in e and "not valid YAML" in e for e in found)
    assert not any(":1:" in e and "menu.prompt" in e for e in found)


def test_loading_a_broken_overlay_refuses_to_start(broken: Path) -> None:
    with pytest.raises(ResponsesError) as caught:
        Responses.load(broken)
    assert "error(s) in the responses" in str(caught.value)


def test_responses_check_command_exits_non_zero_and_prints_each_problem(broken: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot", "responses", "check", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert f"{broken / 'en' / 'messages.yaml'}:2: error:" in run.stdout
    assert f"{broken / 'en' / 'messages.yaml'}:5: error:" in run.stdout
    assert "error(s)" in run.stdout.splitlines()[-2]
    assert run.stdout.splitlines()[-1].startswith("The bot will not start with these files until each error")


def test_responses_check_passes_on_a_valid_overlay(tmp_path: Path) -> None:
    write(tmp_path, "en/messages.yaml", "menu.prompt: Pick one, love.\n")
    run = subprocess.run(
        [sys.executable, "-m", "bot", "responses", "check", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout
    assert run.stdout.splitlines()[-2].startswith("0 error(s)")
    assert run.stdout.splitlines()[-1] == "The bot can start with these files; each warning above is worth fixing."


def test_the_projects_own_files_pass_the_check_with_nothing_to_fix() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot", "responses", "check", "responses/default"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stdout.splitlines() == [
        "0 error(s), 0 warning(s)",
        "All good: the bot can use these files.",
    ], run.stdout


def test_a_charity_is_told_once_which_services_it_has_not_checked(tmp_path: Path) -> None:
    write(tmp_path, "en/services.yaml", "- id: galop\n  last_checked: 2026-11-01\n")
    warnings = [str(p) for p in check(tmp_path, today=dt.date(2026, 11, 21)).problems if p.severity == "warning"]
    unchecked = [w for w in warnings if "no last_checked date" in w]
    assert len(unchecked) == 1 and "havens" in unchecked[0] and "galop" not in unchecked[0].split(":", 3)[-1]


def test_a_duplicate_message_id_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "en/messages.yaml", "menu.prompt: one\noption.yes: Yes\nmenu.prompt: two\n")
    assert any(f"{path}:3:" in e and "first at line 1" in e for e in errors(tmp_path))


def test_a_valid_overlay_changes_text_and_services(tmp_path: Path) -> None:
    write(tmp_path, "en/messages.yaml", "menu.prompt: What now, friend?\n")
    write(tmp_path, "en/services.yaml", "- id: frank\n  remove: true\n- id: galop\n  last_checked: 2026-11-01\n")
    loaded = Responses.load(tmp_path, today=dt.date(2026, 11, 21))
    assert loaded.text("en", "menu.prompt") == "What now, friend?"
    assert loaded.text("en", "option.yes") == "Yes"  # untouched messages fall back to the defaults
    ids = [s.id for s in loaded.services("en")]
    assert "frank" not in ids and "galop" in ids
    galop = next(s for s in loaded.services("en") if s.id == "galop")
    assert galop.phone == "0800 999 5428" and galop.last_checked == dt.date(2026, 11, 1)


def test_services_not_checked_for_six_months_are_warned_about(tmp_path: Path) -> None:
    write(tmp_path, "en/services.yaml", "- id: galop\n  last_checked: 2025-01-01\n")
    warnings = [str(p) for p in check(tmp_path, today=dt.date(2026, 11, 21)).problems if p.severity == "warning"]
    assert any("'galop' was last checked on 2025-01-01, over six months ago" in w for w in warnings)


def test_a_missing_overlay_folder_is_an_error(tmp_path: Path) -> None:
    assert any("does not exist" in e for e in errors(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("text", "words", "expected"),
    [
        ("I’ve been RAPED", ["rape*"], True),
        ("grape juice", ["rape*"], False),
        ("he is not\u200b breathing", ["not breathing"], True),
        ("he is not   breathing", ["not breathing"], True),
        ("call 999!", ["999"], True),
        ("19990", ["999"], False),
    ],
)
def test_word_lists_match_whole_words_whatever_the_typing(text: str, words: list[str], expected: bool) -> None:
    assert matches(text, words) is expected


def test_a_charitys_own_wording_wins_over_a_channel_wording_it_did_not_write(tmp_path: Path) -> None:
    write(tmp_path, "en/messages.yaml", "menu.prompt: What now, friend?\ninput.unclear@telegram: Ours, on Telegram.\n")
    loaded = Responses.load(tmp_path)
    assert loaded.text("en", "menu.prompt", "telegram") == "What now, friend?"  # the default has a @telegram one
    assert loaded.text("en", "input.unclear", "telegram") == "Ours, on Telegram."
    assert "Telegram can see" not in loaded.text("en", "welcome.notice", "console")
    assert "Telegram can see" in loaded.text("en", "welcome.notice", "telegram")


def test_a_services_contacts_are_kept_once_for_every_language(tmp_path: Path) -> None:
    write(
        tmp_path,
        "en/services.yaml",
        "- id: galop\n  phone: 0800 000 0001\n- id: northside\n  name: Northside Outreach\n"
        "  for: Our own drop-in.\n  web: northside.example\n",
    )
    loaded = Responses.load(tmp_path)
    polish = {s.id: s for s in loaded.services("pl")}
    assert polish["galop"].phone == "0800 000 0001", "a number added once shows in every language"
    assert polish["galop"].translated and "LGBT+" in polish["galop"].purpose
    assert not polish["northside"].translated and loaded.untranslated_services("pl") == ("Northside Outreach",)
    listing = Renderer(loaded, retention_days=90, draft_hours=24).services_text("pl")
    assert "■ Northside Outreach (po angielsku)" in listing


def test_a_translation_that_gives_a_phone_number_is_told_where_it_belongs(tmp_path: Path) -> None:
    write(tmp_path, "pl/services.yaml", "- id: galop\n  phone: 0800 000 0002\n")
    assert any("'phone' is a fact, the same in every language" in e for e in errors(tmp_path))


def test_the_chemsex_services_show_by_default_with_their_web_addresses() -> None:
    listing = Renderer(Responses.load(), retention_days=90, draft_hours=24).services_text("en")
    for name, web in (
        ("56 Dean Street", "dean.st"),
        ("Antidote", "londonfriend.org.uk"),
        ("Release", "release.org.uk"),
    ):
        assert name in listing and web in listing
    assert "56 Dean Street, Soho, London W1D 6AQ" in listing
