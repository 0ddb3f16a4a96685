"""``reachable console`` as a person uses it: a real process, real storage, real encryption."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console_process import ConsoleProcess

CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
REFERENCE = re.compile(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})")
pytestmark = pytest.mark.slow


@pytest.fixture
def consoles() -> Iterator[list[ConsoleProcess]]:
    started: list[ConsoleProcess] = []
    yield started
    for console in started:
        if console.process.poll() is None:
            console.kill()
        else:
            console.close()


def rows(data: Path, table: str) -> int:
    with sqlite3.connect(data / "reachable.sqlite3") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def option_number(screen: str, label: str) -> str:
    found = re.search(rf"^\s+(\d+)\. {re.escape(label)}$", screen, re.MULTILINE)
    assert found, f"no option {label!r} on screen:\n{screen}"
    return found.group(1)


def choose(console: ConsoleProcess, label: str) -> str:
    return console.send(option_number(console.screen, label))


def complete_report(console: ConsoleProcess, account: str) -> None:
    choose(console, "Tell us what happened (confidential)")
    choose(console, "Start")
    console.send("1")
    console.send("done")
    choose(console, "Today")
    choose(console, "In London")
    console.send("Southwark")
    console.send("skip")
    assert "In your own words" in console.screen
    console.send(account)
    for _ in range(3):
        console.send("skip")
    assert f"• In your words: {account}" in console.screen


def test_report_keep_and_delete_with_the_code(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    assert "not anonymous" in console.screen
    console.send("/start")
    complete_report(console, "A short account.")
    choose(console, "Yes, it's right")
    screen = choose(console, "Yes, keep it")
    code = CODE.search(screen)
    reference = REFERENCE.search(screen)
    assert code and reference, screen
    assert rows(tmp_path, "reports") == 1
    screen = console.send(f"/delete {code.group(1)}")
    assert "Done. The report is erased." in screen
    assert rows(tmp_path, "reports") == 0
    assert "No report matches that code" in console.send(f"/delete {code.group(1)}")
    assert console.close() == 0


def test_nothing_identifying_or_written_is_readable_in_the_data_folder(
    tmp_path: Path, consoles: list[ConsoleProcess]
) -> None:
    sentence = "Quetzal-7093 happened near the canal after the chill-out"
    chat_id = "7310442981"
    console = ConsoleProcess(tmp_path, chat=chat_id)
    consoles.append(console)
    complete_report(console, sentence)
    choose(console, "Yes, it's right")
    choose(console, "Yes, keep it")
    console.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "reachable.sqlite3" in files
    for path in tmp_path.iterdir():
        content = path.read_bytes()
        assert sentence.encode() not in content, path.name
        assert b"Quetzal" not in content, path.name
        assert chat_id.encode() not in content, path.name


def test_declining_leaves_no_report_and_no_draft(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    complete_report(console, "Something I do not want kept.")
    assert rows(tmp_path, "drafts") == 1
    choose(console, "Yes, it's right")
    assert "Nothing was kept" in choose(console, "No, don't keep it")
    assert rows(tmp_path, "reports") == 0
    assert rows(tmp_path, "drafts") == 0
    console.close()
    assert b"Something I do not want kept" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_emergency_words_mid_report_then_the_same_question(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    choose(console, "Tell us what happened (confidential)")
    choose(console, "Start")
    console.send("skip")
    assert "When did it happen?" in console.screen
    screen = console.send("he's gone under and won't wake up")
    assert "call 999 now" in screen and "press 55" in screen
    screen = choose(console, "Carry on where I was")
    assert "When did it happen?" in screen


def test_killed_mid_report_the_console_continues_at_the_same_question(
    tmp_path: Path, consoles: list[ConsoleProcess]
) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    choose(console, "Tell us what happened (confidential)")
    choose(console, "Start")
    console.send("2")
    console.send("done")
    choose(console, "This week")
    assert "Where did it happen?" in console.screen
    console.kill()

    again = ConsoleProcess(tmp_path)
    consoles.append(again)
    assert "Welcome back" in again.screen and "Where did it happen?" in again.screen
    choose(again, "Somewhere else")
    for _ in range(5):
        again.send("skip")
    assert "• What happened: Given drugs without agreeing" in again.screen
    assert "• When: This week" in again.screen
    assert "• Where: Somewhere else" in again.screen


def test_a_charity_overlay_changes_what_the_console_says(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    overlay = tmp_path / "overlay"
    (overlay / "en").mkdir(parents=True)
    (overlay / "en" / "messages.yaml").write_text(
        "menu.prompt: How can Northside Outreach help tonight?\nmenu.services: Northside's list of helplines\n",
        encoding="utf-8",
    )
    console = ConsoleProcess(tmp_path / "data", env={"REACHABLE_RESPONSES_DIR": str(overlay)})
    consoles.append(console)
    assert "How can Northside Outreach help tonight?" in console.screen
    assert "Northside's list of helplines" in console.screen


def test_a_broken_overlay_stops_the_console_with_every_problem(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    (overlay / "en").mkdir(parents=True)
    (overlay / "en" / "messages.yaml").write_text("report.kept: no variables\nmenu.nope: x\n", encoding="utf-8")
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        env={"REACHABLE_RESPONSES_DIR": str(overlay), "REACHABLE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )
    assert run.returncode == 2
    assert "messages.yaml:1:" in run.stderr and "missing variable {reference}" in run.stderr
    assert "messages.yaml:2:" in run.stderr and "unknown message id" in run.stderr


def test_output_fits_an_80_column_terminal(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    screens = [console.screen, console.send("/help"), console.send("/services"), console.send("/emergency")]
    console.send("/advice")
    screens.append(choose(console, "After a sexual assault"))
    for screen in screens:
        assert max(len(line) for line in screen.splitlines()) <= 80


def test_make_demo_shows_the_whole_path_from_a_report_to_a_staff_reply(
    tmp_path: Path, consoles: list[ConsoleProcess]
) -> None:
    console = ConsoleProcess(tmp_path, env={"REACHABLE_DEMO_INBOX": "1"})
    consoles.append(console)
    assert "DEMO." in console.screen and "/staff reply REF" in console.screen
    complete_report(console, "He took my phone at the chill-out.")
    choose(console, "Yes, it's right")
    choose(console, "Yes, keep it")
    choose(console, "To the support team")
    screen = choose(console, "Yes, they may reply")
    reference = REFERENCE.search(screen)
    assert reference, screen
    inbox = screen if "end of DEMO" in screen else console.wait_for("end of DEMO")
    assert "DEMO: what the support team receives" in inbox and "He took my phone at the chill-out." in inbox
    console.type(f"/staff reply {reference.group(1)} Are you somewhere safe now?")
    arrived = console.wait_for("│ Are you somewhere safe now?")
    if "DEMO, staff see:" not in arrived:  # the reply may reach the person before staff are told
        arrived += console.wait_for("DEMO, staff see:")
    assert "DEMO, staff see: Your reply to" in arrived, "the support worker's side, labelled"
    assert f"A message about your report {reference.group(1)}" in arrived, "and the person's side"
    assert console.close() == 0


def test_without_the_demo_no_demo_inbox_and_no_staff_commands(tmp_path: Path, consoles: list[ConsoleProcess]) -> None:
    console = ConsoleProcess(tmp_path)
    consoles.append(console)
    assert "DEMO" not in console.screen
    assert "DEMO" not in console.send("/staff reply ABCD-1234 hello")
    assert console.close() == 0


def test_the_demo_inbox_is_refused_outside_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("REACHABLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REACHABLE_DEMO_INBOX", "1")
    monkeypatch.setenv("REACHABLE_TELEGRAM_TOKEN", "123:abc")
    assert main(["run"]) == 2
    assert "REACHABLE_DEMO_INBOX is for the console demo only" in capsys.readouterr().err
