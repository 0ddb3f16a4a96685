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
from storage.base import ConsentChange, Naming
from storage.matching import MatchingKey
from storage.memory import MemoryStore
from tests.conftest import Clock

SCHEMA = json.loads((Path(figures.__file__).parent / "figures.schema.json").read_text())
QUARTER = "2026Q4"
MONTHS = months_of(QUARTER)
NOVEMBER = 1_794_000_000.0  # 2026-11-06


def _report(reference: str, what: tuple[str, ...], keep: bool = True, **answers: tuple[str, ...]) -> NewReport:
    summary = {"what": what, **answers}
    return NewReport(reference, f"C0DE-{reference[-4:]}-AAAA-AAAA", summary, what, keep, None, False, 1)


def _store(
    backend: str, folder: Path, keyring: Keyring, hasher: CodeHasher, clock: Clock, matching: MatchingKey | None = None
) -> SQLiteStore | MemoryStore:
    if backend == "sqlite":
        return SQLiteStore(folder / "db.sqlite3", keyring, hasher=hasher, clock=clock, matching=matching)
    return MemoryStore(hasher=hasher, clock=clock, matching=matching)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_a_report_is_counted_only_once_kept_and_taken_back_when_withdrawn(
    backend: str, tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    clock = Clock(NOVEMBER)
    async with _store(backend, tmp_path, keyring, hasher, clock) as store:
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


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_once_a_quarter_is_over_its_figures_no_longer_change(
    backend: str, tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    """Two versions of a quarter's figures must not show what a withdrawal took out."""
    clock = Clock(NOVEMBER)
    async with _store(backend, tmp_path, keyring, hasher, clock) as store:
        await store.commit_turn(ChatKey(b"a" * 32), report=_report("FIGS-0001", ("robbery",), where=("elsewhere",)))
        before = await store.tallies(MONTHS)
        clock.now += 70 * 86400  # January: 2026Q4 is over
        assert await store.erase_by_reference("FIGS-0001") == "FIGS-0001"
        assert await store.tallies(MONTHS) == before, "the quarter's figures stay as they were"
        assert await store.tallies(("2027-01",)) == {("withdrawn", "reports", "2027-01"): 1}


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_who_a_report_went_to_is_counted_when_it_is_sent_later(
    backend: str, tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    clock = Clock(NOVEMBER)
    async with _store(backend, tmp_path, keyring, hasher, clock) as store:
        key = ChatKey(b"a" * 32)
        await store.commit_turn(key, report=_report("FIGS-0001", ("assault",)))
        assert ("recipient", "none", "2026-11") in await store.tallies(MONTHS)
        clock.now += 86400
        sent = ConsentChange("FIGS-0001", "support", None, ("support:chat",), "telegram:1")
        await store.commit_turn(key, consent=sent)
        found = await store.tallies(MONTHS)
        assert found[("recipient", "support", "2026-11")] == 1 and ("recipient", "none", "2026-11") not in found
        await store.erase_by_reference("FIGS-0001")
        assert await store.tallies(MONTHS) == {("withdrawn", "reports", "2026-11"): 1}, "taken back as it now is"


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_a_match_is_counted_once_for_reports_kept_and_taken_back_with_them(
    backend: str, tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    clock = Clock(NOVEMBER)
    matching = MatchingKey.new()
    async with _store(backend, tmp_path, keyring, hasher, clock, matching) as store:
        people = {"FIGS-000A": ChatKey(b"a" * 32), "FIGS-000B": ChatKey(b"b" * 32), "FIGS-000C": ChatKey(b"c" * 32)}
        for reference, key in people.items():
            kept = reference != "FIGS-000C"  # C only sent it on, without keeping it
            await store.commit_turn(key, report=_report(reference, ("drugged",), keep=kept))
        for reference, key in people.items():
            naming = Naming(reference, "app", "grindr:tom88", "Grindr: Tom_88", ("matching:chat",))
            await store.commit_turn(key, naming=naming)
        await store.commit_turn(people["FIGS-000A"], naming=Naming("FIGS-000A", "app", "grindr:tom88", "tom88", ()))

        async def matched() -> int:
            return (await store.tallies(MONTHS)).get(("matched", "reports", "2026-11"), 0)

        assert await matched() == 2, "A and B once each; C was not kept, so not counted"
        await store.commit_turn(people["FIGS-000B"], unname="FIGS-000B")
        assert await matched() == 1, "a name taken back is out of the figure"
        await store.erase_by_reference("FIGS-000A")
        assert await matched() == 0, "so is a report withdrawn"


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


Figures = dict[tuple[Any, ...], int]


def _solutions(table: dict[str, Any], cap_all: int) -> list[Figures]:
    """Every way to fill the hidden figures (cells and totals) with whole counts that agrees with
    all that is published (cells, row totals, column totals, the total, and the marks: "<5" is 0
    to 4, "5+" 5 or more; a row listed at all counted someone): a brute-force recovery attempt,
    row by row, each hidden cell at most the smallest published total it is part of and
    ``cap_all`` (a search capped above the truth finds fewer ways, never more: if it finds three
    values for a figure, there are at least three)."""
    rows, totals = table["rows"], table["totals"]
    hidden = [[c for c, cell in enumerate(row["cells"]) if isinstance(cell, str)] for row in rows]

    def agrees(figure: int | str, value: int) -> bool:
        return value == figure if isinstance(figure, int) else (value < 5) == (figure == "<5")

    def cap(figure: int | str) -> int:
        return figure if isinstance(figure, int) else 4 if figure == "<5" else cap_all

    def fillings(r: int) -> list[tuple[int, ...]]:
        row = rows[r]
        marks = [row["cells"][c] for c in hidden[r]]
        choices = [
            range(5 if mark == "5+" else 0, min(cap(mark), cap(totals[c]), cap(row["total"]), cap(table["total"])) + 1)
            for mark, c in zip(marks, hidden[r], strict=True)
        ]
        known = sum(cell for cell in row["cells"] if isinstance(cell, int))
        return [v for v in itertools.product(*choices) if known + sum(v) >= 1 and agrees(row["total"], known + sum(v))]

    found = []
    for filled in itertools.product(*(fillings(r) for r in range(len(rows)))):
        grid = [list(row["cells"]) for row in rows]
        for r, values in enumerate(filled):
            for c, value in zip(hidden[r], values, strict=True):
                grid[r][c] = value
        columns = [sum(g[c] for g in grid) for c in range(len(totals))]
        if all(agrees(t, v) for t, v in zip(totals, columns, strict=True)) and agrees(table["total"], sum(columns)):
            solution: Figures = {("cell", r, c): grid[r][c] for r in range(len(rows)) for c in hidden[r]}
            solution |= {("row", r): sum(grid[r]) for r, row in enumerate(rows) if isinstance(row["total"], str)}
            solution |= {("column", c): columns[c] for c, t in enumerate(totals) if isinstance(t, str)}
            solution[("all",)] = sum(columns)  # kept even when published: what ties tables together
            found.append(solution)
    return found


def _hidden_keys(table: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys: list[tuple[Any, ...]] = []
    for r, row in enumerate(table["rows"]):
        keys += [("cell", r, c) for c, cell in enumerate(row["cells"]) if isinstance(cell, str)]
        keys += [("row", r)] if isinstance(row["total"], str) else []
    keys += [("column", c) for c, t in enumerate(table["totals"]) if isinstance(t, str)]
    return keys + ([("all",)] if isinstance(table["total"], str) else [])


def _truth(counts: list[list[int]]) -> Figures:
    truth: Figures = {("cell", r, c): v for r, row in enumerate(counts) for c, v in enumerate(row)}
    truth |= {("row", r): sum(row) for r, row in enumerate(counts)}
    truth |= {("column", c): sum(row[c] for row in counts) for c in range(len(counts[0]))}
    return truth | {("all",): sum(map(sum, counts))}


def _published_nothing_small(table: dict[str, Any]) -> bool:
    published = [c for row in table["rows"] for c in [*row["cells"], row["total"]]]
    return all(c in ("<5", "5+") or c >= 5 for c in [*published, *table["totals"], table["total"]])


@pytest.mark.parametrize(
    "counts",
    [
        [[12, 3, 9], [7, 8, 2], [20, 15, 11]],  # two small cells
        [[3, 30, 12], [25, 9, 14]],  # one small cell
        [[6, 0, 0], [14, 9, 15]],  # a row with one month only: its zeros are hidden too
        [[1, 2, 0]],  # a single row, all small
        [[40, 1, 6], [9, 9, 9]],  # a small cell whose row and column would give it away
        [[1, 0, 0], [5, 6, 7]],  # a small row whose total the other row and the total would give away
        [[2, 9, 1], [6, 1, 7], [8, 8, 3]],  # small cells on every row
    ],
)
def test_no_hidden_figure_can_be_worked_out_from_what_is_published(counts: list[list[int]]) -> None:
    values = [f"v{n}" for n in range(len(counts))]
    tallies = {
        ("harm", v, m): n for v, row in zip(values, counts, strict=True) for m, n in zip(MONTHS, row, strict=True)
    }
    body = export("Test service", QUARTER, tables(tallies, QUARTER), Labels(Responses.load()))
    [table] = body["tables"]
    assert _published_nothing_small(table), "nothing under 5 is published"
    truth = _truth(counts)
    hidden = _hidden_keys(table)
    assert hidden, "something was hidden"
    marks = {("cell", r, c): cell for r, row in enumerate(table["rows"]) for c, cell in enumerate(row["cells"])}
    assert all((mark == "<5") == (truth[key] < 5) for key, mark in marks.items() if isinstance(mark, str))
    solutions = _solutions(table, cap_all=max(map(max, counts)) + 2)
    assert solutions and {k: truth[k] for k in solutions[0]} in solutions, "the true figures are among the solutions"
    for key in hidden:
        possible = {s[key] for s in solutions}
        assert len(possible) >= 3, f"{key} (really {truth[key]}) is one of {sorted(possible)} only"


@pytest.mark.parametrize(
    "kept",
    [
        {  # 14 reports: small figures in every table, London's areas adding up to London
            "channel": {"telegram": 9, "web": 3, "rasa": 2},
            "language": {"en": 11, "pl": 3},
            "where": {"london": 8, "elsewhere": 2, "not_said": 4},
            "area": {"Central London": 5, "East London": 3},
            "told": {"no": 10, "galop": 4},
            "recipient": {"support": 6, "soit": 1, "none": 7},
        },
        {  # 6 reports: the total is published, so each table must hide two or more
            "channel": {"telegram": 6},
            "language": {"en": 4, "pl": 2},
            "where": {"london": 5, "not_said": 1},
            "area": {"Central London": 5},
            "recipient": {"support": 3, "none": 3},
        },
        {  # 8 reports: the values listed (each counted someone) would narrow the channels, all hidden
            "channel": {"telegram": 4, "web": 4},
            "language": {"en": 5, "pl": 2, "ro": 1},
            "where": {"london": 6, "elsewhere": 1, "not_said": 1},
            "area": {"Central London": 3, "East London": 2, "South London": 1},
            "told": {"no": 6, "police": 2},
            "recipient": {"support": 6, "soit": 1, "none": 1},
        },
    ],
)
def test_tables_that_count_the_same_reports_give_nothing_away_put_together(kept: dict[str, dict[str, int]]) -> None:
    """The same reports by channel, language, where, area and recipient: what one table hides the
    others must not give away (they share the number kept; the areas add up to London)."""
    tallies = {(d, v, MONTHS[1]): n for d, values in kept.items() for v, n in values.items()}
    body = export("Test service", QUARTER, tables(tallies, QUARTER), Labels(Responses.load()))
    made = {t["dimension"]: t for t in body["tables"]}
    assert all(_published_nothing_small(t) for t in made.values())
    assert len({json.dumps(t["total"]) for d, t in made.items() if d != "area"}) == 1, "one number kept, alike"
    everyone = sum(kept["channel"].values())
    solutions = {d: _solutions(t, cap_all=everyone + 2) for d, t in made.items()}
    london = [row["value"] for row in made["where"]["rows"]].index("london")

    def agrees_together(k: int, london_count: int) -> bool:
        return all(any(s[("all",)] == k for s in solutions[d]) for d in made if d != "area") and any(
            s[("all",)] == london_count for s in solutions["area"]
        )

    together = [
        (k, s[("cell", london, 0)] if ("cell", london, 0) in s else made["where"]["rows"][london]["cells"][0])
        for k in range(everyone + 3)
        for s in solutions["where"]
        if s[("all",)] == k
    ]
    feasible = {(k, ldn) for k, ldn in together if agrees_together(k, ldn)}
    assert (everyone, kept["where"]["london"]) in feasible, "the truth is possible"
    for dimension, table in made.items():
        for key in _hidden_keys(table):
            possible = {
                s[key]
                for s in solutions[dimension]
                if any(
                    (s[("all",)] == k if dimension != "area" else s[("all",)] == ldn)
                    and (dimension != "where" or s.get(("cell", london, 0), ldn) == ldn)
                    for k, ldn in feasible
                )
            }
            assert len(possible) >= 3, f"{dimension} {key} is one of {sorted(possible)} only"


def test_a_table_that_would_give_a_figure_away_by_its_values_shows_them_as_one_row() -> None:
    """Under 5 in all, or values that each counted someone narrowing a hidden figure: which values
    is not shown, only that they are all there."""
    kept = {
        ("channel", "telegram"): 4,
        ("channel", "web"): 4,
        **{("language", v): n for v, n in {"en": 5, "pl": 2, "ro": 1}.items()},
        **{("recipient", v): n for v, n in {"support": 6, "soit": 1, "none": 1}.items()},
        ("screen", "emergency"): 2,
        ("screen", "crisis"): 1,
    }
    body = export("Test service", QUARTER, tables({(d, v, MONTHS[0]): n for (d, v), n in kept.items()}, QUARTER),
                  Labels(Responses.load()))  # fmt: skip
    shown = {t["dimension"]: [row["value"] for row in t["rows"]] for t in body["tables"]}
    assert shown["screen"] == ["few"], "3 screens in all: not which"
    assert shown["channel"] == ["few"], "telegram and web, each under 5, would be 3 or 4 beside 7 or more"
    assert shown["language"] == ["en", "pl", "ro"]
    assert "All (which ones are hidden to keep people safe)" in figures.page(body, Labels(Responses.load()))


def test_where_in_london_is_left_out_when_where_it_happened_is_one_row() -> None:
    """The areas' total is London's count: beside the reports kept, it would give away the rest."""
    kept = {
        "channel": {"telegram": 5, "web": 2, "rasa": 1},
        "language": {"en": 3, "pl": 5},
        "told": {"no": 4, "police": 2, "not_said": 2},
        "recipient": {"support": 4, "soit": 4},
        "where": {"elsewhere": 2, "not_said": 5, "london": 1},
        "area": {"South London": 1},
    }
    made = tables({(d, v, MONTHS[0]): n for d, values in kept.items() for v, n in values.items()}, QUARTER)
    assert made["where"].rows == ("few",)
    assert "area" not in made


def test_the_csv_and_json_validate_against_the_schema(tmp_path: Path) -> None:
    labels = Labels(Responses.load())
    body = export("Demo service", QUARTER, tables(figures.demo_tallies(MONTHS), QUARTER), labels)
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


def _service(name: str, kept: list[int], told: dict[str, int] | None = None) -> dict[str, Any]:
    """A service's export: ``kept`` reports a month, and what their people answered to "have you
    told anyone else?" (all "no" unless said)."""
    tallies = {("recipient", "support", m): n for m, n in zip(MONTHS, kept, strict=True)}
    for answer, n in (told or {"no": sum(kept)}).items():
        tallies[("told", answer, MONTHS[0])] = n
    return export(name, QUARTER, tables(tallies, QUARTER), Labels(Responses.load()))


def _matching(service: str, named: dict[str, list[str]]) -> dict[str, Any]:
    entries = [{"digest": d, "reference": r} for d, references in named.items() for r in references]
    return {"format": "reachable-matching-export", "version": 1, "service": service, "entries": entries}


def test_three_services_combine_into_the_right_counts_and_ranges() -> None:
    galop = _service("Galop", [10, 12, 8])
    clinic = _service("Clinic", [20, 9, 15], {"galop": 6, "no": 38})  # six had told Galop already
    charity = _service("Charity", [7, 3, 6], {"no": 10, "other": 6})  # six told a service not named
    network = combine([galop, clinic, charity], told_as={"Galop": "galop"})
    assert network["services"] == ["Galop", "Clinic", "Charity"]
    # 30 + 44 + 16 reports; by their word the six at the clinic are Galop's incidents again; the
    # six who told "another service" may be too; never fewer than the clinic's own 44.
    assert network["reports"] == {
        "low": 78,
        "high": 90,
        "by_their_word": {"low": 84, "high": 84},
        "told_here": {"low": 6, "high": 6},
        "unknown": 6,
        "named_at_two": 0,
    }
    assert network["dimensions"]["recipient"]["support"] == {"low": 90, "high": 90}, "what each service published"
    assert combine([galop, clinic, charity])["reports"]["by_their_word"] is None, "answers unused unless mapped"
    # Hidden at the clinic: three told Galop (shown "<5"): by their word, a range.
    hidden = _service("Clinic", [20, 9, 15], {"galop": 3, "no": 41})
    assert combine([galop, hidden, charity], told_as={"Galop": "galop"})["reports"] == {
        "low": 80,
        "high": 90,
        "by_their_word": {"low": 86, "high": 89},
        "told_here": {"low": 1, "high": 4},
        "unknown": 6,
        "named_at_two": 0,
    }
    small = _service("Small", [1, 2, 1])  # all under 5: 1 to 4 (listed, so someone), each said "no"
    assert combine([galop, small])["reports"] == {
        "low": 31,
        "high": 34,
        "by_their_word": None,
        "told_here": {"low": 0, "high": 0},
        "unknown": 0,
        "named_at_two": 0,
    }
    # The matching exports: one person named at Galop and at the clinic; one named twice at the
    # clinic only (not across services); one named at all three, twice at the charity: six
    # reports named someone also named at another service. Counted as reported, not taken away.
    matches = [
        _matching("Galop", {"d1": ["G-1"], "d3": ["G-2"]}),
        _matching("Clinic", {"d1": ["C-1"], "d2": ["C-2", "C-3"], "d3": ["C-4"]}),
        _matching("Charity", {"d3": ["H-1", "H-2"]}),
    ]
    named = combine([galop, clinic, charity], matches, {"Galop": "galop"})["reports"]
    assert named["named_at_two"] == 6 and (named["low"], named["high"]) == (78, 90)
    with pytest.raises(ValueError, match="not here"):
        combine([galop, clinic], matches)
    with pytest.raises(ValueError, match="different quarters"):
        combine([galop, {**clinic, "quarter": "2027Q1"}])
    with pytest.raises(ValueError, match="whose figures are not here"):
        combine([galop, clinic], told_as={"Havens": "havens"})


def test_a_service_showing_a_table_as_one_row_widens_the_network_ranges_it_could_be_in() -> None:
    """Three reports at a small service, their answers about telling another service shown as one
    row: any of them may have told Galop, and any may be under any answer."""
    galop = _service("Galop", [10, 12, 8])
    small = _service("Small", [1, 1, 1], {"no": 2, "galop": 1})
    assert [row["value"] for row in next(t for t in small["tables"] if t["dimension"] == "told")["rows"]] == ["few"]
    network = combine([galop, small], told_as={"Galop": "galop"})
    assert network["reports"] == {
        "low": 30,
        "high": 34,
        "by_their_word": {"low": 30, "high": 34},
        "told_here": {"low": 0, "high": 4},
        "unknown": 0,
        "named_at_two": 0,
    }
    assert network["dimensions"]["told"] == {"no": {"low": 30, "high": 34}}, "no row of its own: on every value"


def test_the_network_page_says_under_5_however_it_was_reached(tmp_path: Path) -> None:
    a, b = _service("A", [4, 3, 3]), _service("B", [3, 4, 3], {"no": 8, "other": 2})  # "other" only at B
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert figures.combine_files(Responses.load(), [tmp_path / "a.json", tmp_path / "b.json"], tmp_path) == 0
    network = json.loads((tmp_path / "network.json").read_text())
    assert network["dimensions"]["told"]["other"] == {"low": 1, "high": 4}
    page = (tmp_path / "network.html").read_text()
    assert "<td>under 5</td>" in page and "between 1 and 4" not in page


def test_files_that_are_not_exports_get_a_clear_answer(tmp_path: Path) -> None:
    from bot.core.errors import ConfigError

    good = _service("Galop", [10, 12, 8])
    (tmp_path / "good.json").write_text(json.dumps(good))
    short = json.loads(json.dumps(good))
    short["tables"][0]["rows"][0]["cells"] = [5, 5]
    wrong_cell = json.loads(json.dumps(good))
    wrong_cell["tables"][0]["rows"][0]["cells"] = ["abc"]
    cases = {
        "a list": ([1, 2], "not a figures export"),
        "short": (short, "do not match its columns"),
        "a word for a count": (wrong_cell, "not a figures export"),
        "an old version": ({**good, "version": 1}, "not a figures export of version 2"),
    }
    for name, (body, says) in cases.items():
        (tmp_path / "bad.json").write_text(json.dumps({**body, "service": "Other"} if isinstance(body, dict) else body))
        with pytest.raises(ConfigError, match=says):
            figures.combine_files(Responses.load(), [tmp_path / "good.json", tmp_path / "bad.json"], tmp_path)
        assert name
    (tmp_path / "other.json").write_text(json.dumps({**good, "service": "Other"}))
    pair = [tmp_path / "good.json", tmp_path / "other.json"]
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a matching export"):
        figures.combine_files(Responses.load(), pair, tmp_path, matches=[tmp_path / "list.json"])
    with pytest.raises(ConfigError, match="cannot write"):
        figures.combine_files(Responses.load(), pair, tmp_path / "good.json")
    with pytest.raises(ConfigError, match="SERVICE=ANSWER"):
        figures.combine_files(Responses.load(), pair, tmp_path, told_as=["galop"])
    from bot.cli import main

    assert main(["figures", "combine", *map(str, pair), "--out", str(tmp_path / "good.json")]) == 2


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
    body = export("Demo service", QUARTER, tables(figures.demo_tallies(MONTHS), QUARTER), labels)
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
            reports = json.loads((tmp_path / "network.json").read_text())["reports"]
            shown = f"Reports kept: between {reports['low']} and {reports['high']}."
            assert shown in await page.locator("main").inner_text()
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
    violence = [r for r in rows if r["dimension"] == "harm" and r["value"] == "violence" and r["period"] == month]
    assert violence == [{**violence[0], "count": "", "hidden": "under 5"}], "one report: hidden"
    assert "4242" not in (out / "figures.json").read_text()
    assert "provisional" in (out / "figures.html").read_text(), "this quarter is not over"
