"""README's figures table is written from the line `make bench` ends with: a charity reading it
sees each figure with its goal, and whether this run met it."""

from __future__ import annotations

from pathlib import Path

from bench import readme

LINE = (
    "Capacity ...\n"
    "bench: peer_ratio=0.71 peer_p99_ratio=1.87 web_ratio=0.15 web_p99_ms=97 web_mib_per_1000=42 rasa_ratio=0.05 "
    "rasa_p99_ms=9 idle_mib=113 cold_s=1.11 ratio=0.22 answers_p99_ms=1243 keep_p99_ms=1500 rasa_keep_p99_ms=849 "
    "cold_trained_s=4.33 pg_capacity_ratio=nan pg_answers_p99_ms=nan\n"
)


def rows(text: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells[1:]
        for line in text.splitlines()
        if line.startswith("| ")
        for cells in [line[2:-2].split(" | ")]
    }


def test_the_table_says_each_figure_with_its_goal_and_whether_it_was_met(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(f"# Reachable\n\nbefore\n\n{readme.START}\nold table\n{readme.END}\n\nafter\n", encoding="utf-8")

    readme.update(readme.parse(LINE), page, commit=", at commit abc1234")

    text = page.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# Reachable\n\nbefore") and text.endswith("\nafter\n")
    assert "at commit abc1234" in text
    table = rows(text)
    assert table["Web chat: p99 of an answer, 1,000 people at once"] == ["97 ms", "<= 100 ms", "yes"]
    assert table["Web chat: messages a CPU second against a bare aiohttp app"] == ["0.15x", ">= 0.5x", "no"]
    assert table["`reachable run` (python-telegram-bot): memory once idle"] == ["113.0 MiB", "<= 120 MiB", "yes"]
    assert table["Telegram, on aiogram: p99 at 200 messages/s against that peer"] == ["1.87x", "< 1.0x", "no"]
    assert table["Telegram, on aiogram: capacity on PostgreSQL against SQLite"][0] == "not measured"


def test_a_goal_is_judged_on_the_figure_not_on_its_rounding(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(f"{readme.START}\n{readme.END}\n", encoding="utf-8")

    readme.update(readme.parse(readme.line({"idle_mib": 120.4, "cold_s": 1.5})), page)

    table = rows(page.read_text(encoding="utf-8"))
    assert table["`reachable run` (python-telegram-bot): memory once idle"] == ["120.4 MiB", "<= 120 MiB", "no"]
    assert table["`reachable run` (python-telegram-bot): start to first Bot API call, model saved"][2] == "yes"
    assert table["Web chat: p99 of an answer, 1,000 people at once"] == ["not measured", "<= 100 ms", "not measured"]


def test_every_figure_in_the_table_is_one_the_bench_line_carries() -> None:
    carried = {name for name, _ in readme.LINE}
    assert [name for name, *_ in readme.ROWS if name not in carried] == []


def test_the_readme_has_the_place_the_table_is_written_to() -> None:
    text = readme.README.read_text(encoding="utf-8")
    assert text.count(readme.START) == 1 and text.index(readme.START) < text.index(readme.END)
