"""The quarterly figures: counted only after consent and taken back on withdrawal, with no report
or person in them; safe to publish (a recovery attempt from what is published fails for every
hidden figure); a tidy CSV and a JSON export that validate against the schema; three services
combined into the right counts and ranges; the page accessible and whole without JavaScript."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.core.quarterly import Labels, months_of, tables
from bot.core.tallies import Browsing
from bot.ops import figures
from bot.ops.figures import combine, export
from flows.replies import Reply
from responses import Responses
from storage import ChatKey, CodeHasher, Keyring, NewReport, SQLiteStore
from storage.memory import MemoryStore
from tests.conftest import Clock

SCHEMA = json.loads((Path(figures.__file__).parent / "figures.schema.json").read_text())
QUARTER = "2026Q4"
MONTHS = months_of(QUARTER)
NOVEMBER = 1_794_000_000.0  # 2026-11-06


def _report(reference: str, what: tuple[str, ...], keep: bool = True, **answers: tuple[str, ...]) -> NewReport:
    summary = {"what": what, **answers}
    return NewReport(reference, f"C0DE-{reference[-4:]}-AAAA-AAAA", summary, what, keep, None, False, 1)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_a_report_is_counted_only_once_kept_and_taken_back_when_withdrawn(
    backend: str, tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    clock = Clock(NOVEMBER)
    stores = {
        "sqlite": SQLiteStore(tmp_path / "db.sqlite3", keyring, hasher=hasher, clock=clock),
        "memory": MemoryStore(hasher=hasher, clock=clock),
    }
    async with stores[backend] as store:
        counted = (("channel", "web"), ("language", "pl"))
        kept = _report("FIGS-0001", ("drugged", "robbery"), where=("london",), elsewhere=("galop",))
        await store.commit_turn(ChatKey(b"a" * 32), report=kept, counted=counted)
        await store.commit_turn(ChatKey(b"b" * 32), report=_report("FIGS-0002", ("assault",), keep=False))
        found = await store.tallies(MONTHS)
        assert found == {
            ("harm", "drugged", "2026-11"): 1,
            ("harm", "robbery", "2026-11"): 1,
            ("where", "london", "2026-11"): 1,
            ("told", "galop", "2026-11"): 1,
            ("recipient", "none", "2026-11"): 1,
            ("channel", "web", "2026-11"): 1,
            ("language", "pl", "2026-11"): 1,
        }, "the report not kept is not counted"
        clock.now += 40 * 86400  # withdrawn in December
        assert await store.erase_by_reference("FIGS-0001") == "FIGS-0001"
        assert await store.tallies(MONTHS) == {("withdrawn", "reports", "2026-12"): 1}


def test_screens_and_advice_are_counted_by_month_without_anyone_in_them() -> None:
    browsing = Browsing(clock=lambda: NOVEMBER)
    browsing.note([Reply("emergency", step="emergency"), Reply("advice.overdose", step="advice.overdose")])
    browsing.note([Reply("menu.prompt", step="menu"), Reply("crisis", step="crisis")])
    assert browsing.take() == {
        ("screen", "emergency", "2026-11"): 1,
        ("advice", "overdose", "2026-11"): 1,
        ("screen", "crisis", "2026-11"): 1,
    }
    assert browsing.take() == {}, "taken once"


def _solutions(table: dict[str, Any]) -> list[dict[tuple[int, int], int]]:
    """Every way to fill the hidden cells with whole counts that agrees with all that is
    published (cells, row totals, column totals, the total, and the marks: "<5" is 0 to 4, "5+"
    5 or more): a brute-force recovery attempt, row by row, each hidden cell at most the
    smallest published total it is part of (or 30 where none is)."""
    rows, totals = table["rows"], table["totals"]
    hidden = [[c for c, cell in enumerate(row["cells"]) if isinstance(cell, str)] for row in rows]

    def agrees(figure: int | str, value: int) -> bool:
        return value == figure if isinstance(figure, int) else (value < 5) == (figure == "<5")

    def cap(figure: int | str) -> int:
        return figure if isinstance(figure, int) else 4 if figure == "<5" else 30

    def fillings(r: int) -> list[tuple[int, ...]]:
        row = rows[r]
        marks = [row["cells"][c] for c in hidden[r]]
        choices = [
            range(5 if mark == "5+" else 0, min(cap(mark), cap(totals[c]), cap(row["total"])) + 1)
            for mark, c in zip(marks, hidden[r], strict=True)
        ]
        known = sum(cell for cell in row["cells"] if isinstance(cell, int))
        return [values for values in itertools.product(*choices) if agrees(row["total"], known + sum(values))]

    found = []
    for filled in itertools.product(*(fillings(r) for r in range(len(rows)))):
        grid = [list(row["cells"]) for row in rows]
        for r, values in enumerate(filled):
            for c, value in zip(hidden[r], values, strict=True):
                grid[r][c] = value
        if all(agrees(t, sum(g[c] for g in grid)) for c, t in enumerate(totals)) and agrees(
            table["total"], sum(map(sum, grid))
        ):
            found.append({(r, c): grid[r][c] for r in range(len(rows)) for c in hidden[r]})
    return found


@pytest.mark.parametrize(
    "counts",
    [
        [[12, 3, 9], [7, 8, 2], [20, 15, 11]],  # two small cells
        [[3, 30, 12], [25, 9, 14]],  # one small cell
        [[6, 0, 0], [14, 9, 15]],  # a row with one month only: its zeros are hidden too
        [[1, 2, 0]],  # a single row, all small
        [[40, 1, 6], [9, 9, 9]],  # a small cell whose row and column would give it away
    ],
)
def test_no_hidden_figure_can_be_worked_out_from_what_is_published(counts: list[list[int]]) -> None:
    values = [f"v{n}" for n in range(len(counts))]
    tallies = {
        ("harm", v, m): n for v, row in zip(values, counts, strict=True) for m, n in zip(MONTHS, row, strict=True)
    }
    body = export("Test service", QUARTER, tables(tallies, MONTHS), Labels(Responses.load()))
    [table] = body["tables"]
    published = [c for row in table["rows"] for c in [*row["cells"], row["total"]]] + [*table["totals"], table["total"]]
    assert all(c in ("<5", "5+") or c >= 5 for c in published), "nothing under 5 is published"
    marks = [
        (c, v) for row, vs in zip(table["rows"], counts, strict=True) for c, v in zip(row["cells"], vs, strict=True)
    ]
    assert all((c == "<5") == (v < 5) for c, v in marks if isinstance(c, str)), "the marks are true"
    solutions = _solutions(table)
    hidden = solutions[0].keys()
    assert hidden, "something was hidden"
    for cell in hidden:
        assert len({s[cell] for s in solutions}) > 1, f"{cell} can be worked out"
    truth = {(r, c): counts[r][c] for r, c in hidden}
    assert truth in solutions, "the true figures are among the solutions"


def test_the_csv_and_json_validate_against_the_schema(tmp_path: Path) -> None:
    labels = Labels(Responses.load())
    body = export("Demo service", QUARTER, tables(figures.demo_tallies(MONTHS), MONTHS), labels)
    written = figures.write(body, labels, tmp_path)
    jsonschema.validate(json.loads((tmp_path / "figures.json").read_text()), SCHEMA)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "figures.csv").read_text())))
    assert rows and tmp_path / "figures.html" in written
    row_schema = {**SCHEMA["$defs"]["csv_row"], "$defs": SCHEMA["$defs"]}
    for row in rows:
        jsonschema.validate(row, row_schema)
    broken = json.loads((tmp_path / "figures.json").read_text())
    broken["tables"][0]["rows"][0]["cells"][0] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def _service(name: str, kept: list[int], told_galop: int = 0) -> dict[str, Any]:
    """A service's export: ``kept`` reports a month, ``told_galop`` of them said they had told Galop."""
    tallies = {("recipient", "support", m): n for m, n in zip(MONTHS, kept, strict=True)}
    if told_galop:
        tallies[("told", "galop", MONTHS[0])] = told_galop
        tallies[("told", "no", MONTHS[0])] = kept[0] - told_galop
        for month, n in zip(MONTHS[1:], kept[1:], strict=True):
            tallies[("told", "no", month)] = n
    return export(name, QUARTER, tables(tallies, MONTHS), Labels(Responses.load()))


def _matching(service: str, named: dict[str, list[str]]) -> dict[str, Any]:
    entries = [{"digest": d, "reference": r} for d, references in named.items() for r in references]
    return {"format": "reachable-matching-export", "version": 1, "service": service, "entries": entries}


def test_three_services_combine_into_the_right_counts_and_ranges() -> None:
    galop = _service("galop", [10, 12, 8])
    clinic = _service("clinic", [20, 9, 15], told_galop=6)  # six said they had told Galop too
    charity = _service("charity", [7, 3, 6])  # a month under 5: hidden
    network = combine([galop, clinic, charity])
    assert network["services"] == ["galop", "clinic", "charity"]
    # 30 + 44 + 16 (the charity's total is published); up to 6 may be Galop's incidents again.
    assert network["reports"] == {"low": 84, "high": 90, "told": 6, "matched": 0}
    assert network["dimensions"]["recipient"]["support"] == {"low": 90, "high": 90}, "what each service published"
    small = _service("small", [1, 2, 1])  # everything under 5: the total too, so 0 to 4
    assert combine([galop, small])["reports"] == {"low": 30, "high": 34, "told": 0, "matched": 0}
    # The matching exports: one person named at Galop and at the clinic (maybe one incident told
    # twice); one named twice at the clinic (its own reports, already counted apart); one named
    # at all three, twice at the charity: at most two of those four are incidents counted already.
    matches = [
        _matching("galop", {"d1": ["G-1"], "d3": ["G-2"]}),
        _matching("clinic", {"d1": ["C-1"], "d2": ["C-2", "C-3"], "d3": ["C-4"]}),
        _matching("charity", {"d3": ["H-1", "H-2"]}),
    ]
    assert combine([galop, clinic, charity], matches)["reports"] == {"low": 81, "high": 90, "told": 6, "matched": 3}
    with pytest.raises(ValueError, match="not here"):
        combine([galop, clinic], matches)
    with pytest.raises(ValueError, match="different quarters"):
        combine([galop, {**clinic, "quarter": "2027Q1"}])


def test_the_demo_command_writes_the_three_files(tmp_path: Path) -> None:
    from bot.cli import main

    assert main(["figures", "--demo", "--quarter", QUARTER, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "figures.html").read_text()
    assert "<script" not in page and page.count("<svg") == page.count("<table>") == 11
    assert main(["figures", "combine", str(tmp_path / "figures.json"), "--out", str(tmp_path / "net")]) == 2, (
        "combining needs two services"
    )


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_the_page_passes_axe_and_is_whole_without_javascript(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    from axe_playwright_python.async_playwright import Axe

    labels = Labels(Responses.load())
    body = export("Demo service", QUARTER, tables(figures.demo_tallies(MONTHS), MONTHS), labels)
    figures.write(body, labels, tmp_path)
    url = (tmp_path / "figures.html").as_uri()
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            bare = await (await browser.new_context(java_script_enabled=False)).new_page()
            await bare.goto(url)
            assert await bare.locator("h1").inner_text() == "Demo service: figures for 2026Q4"
            assert await bare.locator("table").count() == 11 and await bare.locator("svg[role=img]").count() == 11
            page = await (await browser.new_context(viewport={"width": 320, "height": 568})).new_page()
            await page.goto(url)
            tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
            results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": tags}})
            assert [v["id"] for v in results.response["violations"]] == []
            # The network's page, from two services' exports.
            other = {**body, "service": "Second service"}
            (tmp_path / "other.json").write_text(json.dumps(other))
            figures.combine_files(Responses.load(), [tmp_path / "figures.json", tmp_path / "other.json"], tmp_path)
            await page.goto((tmp_path / "network.html").as_uri())
            kept = sum(row["total"] for t in body["tables"] if t["dimension"] == "recipient" for row in t["rows"])
            assert f"Reports kept: {2 * kept}." in await page.locator("main").inner_text()
            results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": tags}})
            assert [v["id"] for v in results.response["violations"]] == []
        finally:
            await browser.close()


async def test_what_people_did_reaches_the_figures_command_and_no_chat_is_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.core.app import create_app
    from bot.core.guards import FloodGuard
    from bot.core.quarterly import quarter_of
    from bot.core.settings import Settings
    from flows.events import parse_typed

    environ = {"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode()}
    said: list[str] = []
    async with create_app(Settings.from_environ(environ)) as app:
        app.conversations.flood = FloodGuard(burst=10_000)
        typed = ["my mate has gone blue and wont respond", "/report", "Start", "Violence", "Done"]
        typed += ["Skip", "a flat in vauxhall"] + ["Skip"] * 5 + ["Yes, it's right", "Yes, keep it"]
        for text in typed:
            delivery = await app.conversations.handle("web", 4242, parse_typed(text))
            said.extend(m.text for m in delivery.messages)
    assert any("999" in text for text in said) and any("Reference:" in text for text in said)
    async with SQLiteStore(
        tmp_path / "reachable.sqlite3", Keyring([environ["REACHABLE_ENCRYPTION_KEY"].encode()])
    ) as store:
        month = time.strftime("%Y-%m", time.gmtime())
        found = await store.tallies((month,))
    assert found[("screen", "emergency", month)] == 1, "written when the bot stopped"
    assert found[("harm", "violence", month)] == found[("channel", "web", month)] == 1
    assert found[("where", "london", month)] == found[("area", "Central London", month)] == 1, "an area, not Lambeth"
    assert not any("Lambeth" in value for _, value, _ in found)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "figures"
    assert await asyncio.to_thread(main, ["figures", "--quarter", quarter_of(time.time()), "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "figures.csv").read_text())))
    violence = [r for r in rows if r["dimension"] == "harm" and r["value"] == "violence" and r["month"] == month]
    assert violence == [{**violence[0], "count": "", "hidden": "under 5"}], "one report: hidden"
    assert "4242" not in (out / "figures.json").read_text()
