"""Safe to publish: every figure under 5 is hidden, cells and totals alike (primary suppression,
shown as "<5"), and enough others (secondary suppression, shown as "5+": they are 5 or more) that
no hidden figure can be narrowed to fewer than three possible values from what is published.

Checked, not assumed, on all the tables published together at once: what ties them is public
(the same reports are counted by channel, by language, by where and by recipient, so those tables
share their monthly totals; London's areas add up to London's row; every report has at least one
harm), and an attacker would use it. For each hidden figure, cell or total, an integer programme
finds the smallest and largest value everything published allows (the figures shown, the sums,
what ties the tables, what the marks say: "<5" is 0 to 4, "5+" is 5 or more, and a row that is
listed at all counted someone). While any hidden figure is narrowed to fewer than three values,
one more figure beside it is hidden: the smallest published figure in the sum that narrows it.
Hiding more only widens what is possible, so a figure found safe stays safe.

The same programme gives the network's ranges when services' figures are combined."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

SMALL = 5  # a figure under this is never published
UNDER = "<5"  # a hidden figure under 5
OVER = "5+"  # a hidden figure of 5 or more
PROTECTION = 2  # a hidden figure keeps at least this many steps between its lowest and highest
# Every unknown is at most this: no service counts a million of anything in a quarter. Without a
# ceiling, asking for the largest value of a figure nothing bounds is an unbounded integer
# programme, which HiGHS can search for ever (ERGO-Code/HiGHS#1962); reaching it means unbounded.
CEILING = 1_000_000
UNBOUNDED = CEILING // 2  # a figure that can reach this is bounded by nothing published
INFEASIBLE = 2  # scipy's milp status
SOLVER = {"time_limit": 20.0}  # seconds; a guard, these programmes take milliseconds
# HiGHS keeps its scheduler per thread that solves, and can deadlock once such a thread has ended
# (ERGO-Code/HiGHS#1886): every programme is solved on this one thread, which lasts.
_SOLVING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suppression")


def _solve(goal: np.ndarray, **arguments: Any) -> Any:
    return _SOLVING.submit(milp, goal, options=SOLVER, **arguments).result()


Cell = tuple[int, int]
Line = tuple[str, int]  # ("row", r), ("column", c), or ("all", 0): a total
Figure = int | str  # a published count, or UNDER / OVER
Key = tuple[str, str, int]  # (table, "cell", r * 1000 + c) or (table, "row" | "column" | "all", n)


def cell_key(table: str, r: int, c: int) -> Key:
    return (table, "cell", r * 1000 + c)


def line_key(table: str, line: Line) -> Key:
    return (table, line[0], line[1])


class Narrowed(ValueError):
    """A hidden figure is narrowed by what the tables list (each value shown counted someone)
    and nothing tied to it is left to hide: ``table`` should show its values as one row."""

    def __init__(self, table: str) -> None:
        super().__init__(f"a hidden figure is narrowed by the values {table!r} lists, and nothing is left to hide")
        self.table = table


@dataclass(frozen=True, slots=True)
class Links:
    """What ties tables published together: figures that are the same count (``same``), and
    figures at most another (``at_most``: (smaller, larger))."""

    same: tuple[tuple[Key, Key], ...] = ()
    at_most: tuple[tuple[Key, Key], ...] = ()


@dataclass(frozen=True, slots=True)
class Published:
    """What anyone can see of a table: each figure, or its mark where hidden."""

    cells: tuple[tuple[Figure, ...], ...]
    row_totals: tuple[Figure, ...]
    column_totals: tuple[Figure, ...]
    total: Figure

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> Published:
        """From a table of a figures export."""
        rows = table["rows"]
        return cls(
            tuple(tuple(row["cells"]) for row in rows),
            tuple(row["total"] for row in rows),
            tuple(table["totals"]),
            table["total"],
        )

    def figures(self, name: str) -> dict[Key, Figure]:
        found: dict[Key, Figure] = {}
        for r, row in enumerate(self.cells):
            for c, figure in enumerate(row):
                found[cell_key(name, r, c)] = figure
        for r, figure in enumerate(self.row_totals):
            found[line_key(name, ("row", r))] = figure
        for c, figure in enumerate(self.column_totals):
            found[line_key(name, ("column", c))] = figure
        found[line_key(name, ("all", 0))] = self.total
        return found


def _alike(name: str, table: Published) -> list[tuple[Key, Key]]:
    """Figures of one table that are the same count: with one column, each cell is its row's
    total and the column's total is the total; with one row, likewise."""
    height, width = len(table.row_totals), len(table.column_totals)
    found = []
    if width == 1:
        found += [(cell_key(name, r, 0), line_key(name, ("row", r))) for r in range(height)]
        found.append((line_key(name, ("column", 0)), line_key(name, ("all", 0))))
    if height == 1:
        found += [(cell_key(name, 0, c), line_key(name, ("column", c))) for c in range(width)]
        found.append((line_key(name, ("row", 0)), line_key(name, ("all", 0))))
    return found


def sums(name: str, height: int, width: int) -> list[tuple[Key, list[Key]]]:
    """Each total of a table with the figures it adds up."""
    found = [(line_key(name, ("row", r)), [cell_key(name, r, c) for c in range(width)]) for r in range(height)]
    found += [(line_key(name, ("column", c)), [cell_key(name, r, c) for r in range(height)]) for c in range(width)]
    found.append((line_key(name, ("all", 0)), [line_key(name, ("column", c)) for c in range(width)]))
    return found


class Problem:
    """What can be known of every hidden figure of tables published together: the figures are
    unknowns, each published one fixed, each hidden one within its mark, bound by the sums and
    the links."""

    def __init__(self, published: Mapping[str, Published], links: Links = Links()) -> None:
        figures: dict[Key, Figure] = {}
        for name, table in published.items():
            figures.update(table.figures(name))
        self.figures = figures
        self._parent: dict[Key, Key] = {key: key for key in figures}
        for a, b in [*links.same, *(pair for name, table in published.items() for pair in _alike(name, table))]:
            if a in figures and b in figures:
                self._parent[self._root(a)] = self._root(b)
        roots = sorted({self._root(key) for key in figures})
        self.index = {root: n for n, root in enumerate(roots)}
        self.bounds = self._marks()
        rows: list[np.ndarray] = []
        lows: list[float] = []  # each row is 0 (a sum) or at most 0 (a link)
        for name, table in published.items():
            for total, parts in sums(name, len(table.row_totals), len(table.column_totals)):
                rows.append(self._row(parts, [total]))
                lows.append(0.0)
        for smaller, larger in links.at_most:
            if smaller in figures and larger in figures:
                rows.append(self._row([smaller], [larger]))
                lows.append(-np.inf)
        self.matrix = np.array(rows) if rows else np.zeros((0, len(roots)))
        self.constraint = LinearConstraint(self.matrix, lows, [0.0] * len(rows)) if rows else None
        self.members: dict[int, list[int]] = {}  # a figure -> the sums and links it is in
        for n, row in enumerate(self.matrix):
            for v in np.nonzero(row)[0]:
                self.members.setdefault(int(v), []).append(n)

    def _marks(self) -> Bounds:
        """Each figure's bounds: fixed where published, what its mark says where hidden."""
        low, high = np.zeros(len(self.index)), np.full(len(self.index), float(CEILING))
        for key, figure in self.figures.items():
            n = self.variable(key)
            if isinstance(figure, int):
                low[n], high[n] = max(low[n], figure), min(high[n], figure)
            elif figure == UNDER:
                high[n] = min(high[n], SMALL - 1)
            else:
                low[n] = max(low[n], SMALL)
            if key[1] == "row":  # a value is listed only when someone was counted under it
                low[n] = max(low[n], 1)
        if np.any(low > high):
            raise ValueError("these figures contradict each other")
        return Bounds(low, high)

    def _row(self, plus: Sequence[Key], minus: Sequence[Key]) -> np.ndarray:
        row = np.zeros(len(self.index))
        for key in plus:
            row[self.variable(key)] += 1
        for key in minus:
            row[self.variable(key)] -= 1
        return row

    def _root(self, key: Key) -> Key:
        while self._parent[key] != key:
            key = self._parent[key]
        return key

    def variable(self, key: Key) -> int:
        return self.index[self._root(key)]

    def range_of(self, keys: Iterable[Key]) -> tuple[float, float]:
        """The smallest and largest the sum of these figures can be, given all that is published
        (``inf`` when nothing published bounds it). Should the solver stop at its time limit,
        the values it had found stand: possible values, so the range is never wider than the
        truth and a figure is never called safe that is not (with no largest value found, the
        smallest stands for it)."""
        goal = np.zeros(len(self.index))
        for key in keys:
            goal[self.variable(key)] += 1
        if not goal.any():
            return 0.0, 0.0
        integral = np.ones(len(self.index))
        extra = {"constraints": self.constraint} if self.constraint is not None else {}
        lowest = _solve(goal, integrality=integral, bounds=self.bounds, **extra)
        if lowest.x is None:
            contradict = lowest.status == INFEASIBLE
            raise ValueError("these figures contradict each other" if contradict else "figures not checked in time")
        highest = _solve(-goal, integrality=integral, bounds=self.bounds, **extra)
        high = -float(highest.fun) if highest.x is not None else float(lowest.fun)
        return round(float(lowest.fun)), float("inf") if high >= UNBOUNDED else round(high)


@dataclass(frozen=True, slots=True)
class Table:
    """A table of counts (rows × columns) with its totals, and which figures are hidden."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    hidden: frozenset[Cell] = frozenset()
    hidden_totals: frozenset[Line] = frozenset()

    def total(self, line: Line) -> int:
        kind, n = line
        if kind == "row":
            return sum(self.counts[n])
        if kind == "column":
            return sum(row[n] for row in self.counts)
        return sum(sum(row) for row in self.counts)

    @property
    def lines(self) -> list[Line]:
        return [*(("row", r) for r in range(len(self.rows))), *(("column", c) for c in range(len(self.columns))),
                ("all", 0)]  # fmt: skip

    def published(self, row: int, column: int) -> Figure:
        value = self.counts[row][column]
        return _mark(value) if (row, column) in self.hidden else value

    def published_total(self, line: Line) -> Figure:
        value = self.total(line)
        return _mark(value) if line in self.hidden_totals else value

    def public(self) -> Published:
        return Published(
            tuple(tuple(self.published(r, c) for c in range(len(self.columns))) for r in range(len(self.rows))),
            tuple(self.published_total(("row", r)) for r in range(len(self.rows))),
            tuple(self.published_total(("column", c)) for c in range(len(self.columns))),
            self.published_total(("all", 0)),
        )

    def values(self, name: str) -> dict[Key, int]:
        found = {cell_key(name, r, c): v for r, row in enumerate(self.counts) for c, v in enumerate(row)}
        found.update({line_key(name, line): self.total(line) for line in self.lines})
        return found


def _mark(value: int) -> str:
    return UNDER if value < SMALL else OVER


@dataclass
class _Hiding:
    """Secondary suppression over tables published together."""

    tables: dict[str, Table]
    links: Links
    values: dict[Key, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, table in self.tables.items():
            self.values.update(table.values(name))

    def hidden(self) -> set[Key]:
        found: set[Key] = set()
        for name, table in self.tables.items():
            found |= {cell_key(name, r, c) for r, c in table.hidden}
            found |= {line_key(name, line) for line in table.hidden_totals}
        return found

    def hide(self, keys: Iterable[Key], problem: Problem | None = None) -> None:
        """Hide these figures and every figure that is the same count (shown alike everywhere)."""
        chosen = set(keys)
        if problem is not None:
            chosen = {k for k in self.values if problem.variable(k) in {problem.variable(c) for c in chosen}}
        for name, table in list(self.tables.items()):
            cells = {(k[2] // 1000, k[2] % 1000) for k in chosen if k[0] == name and k[1] == "cell"}
            lines = {(k[1], k[2]) for k in chosen if k[0] == name and k[1] != "cell"}
            self.tables[name] = Table(table.rows, table.columns, table.counts, table.hidden | cells,
                                      table.hidden_totals | lines)  # fmt: skip

    def problem(self) -> Problem:
        return Problem({name: table.public() for name, table in self.tables.items()}, self.links)

    def run(self) -> dict[str, Table]:
        self.hide([key for key, value in self.values.items() if value < SMALL])
        problem = self.problem()
        self.hide(self.hidden(), problem)  # a count hidden in one table is hidden in all
        checked: set[int] = set()
        while True:
            problem = self.problem()
            waiting = sorted({problem.variable(k) for k in self.hidden()} - checked)
            if not waiting:
                return self.tables
            variable = waiting[0]
            key = next(k for k in self.values if problem.variable(k) == variable)
            low, high = problem.range_of([key])
            if high - low >= PROTECTION:
                checked.add(variable)
                continue
            self.hide([self._beside(problem, variable)], problem)

    def _beside(self, problem: Problem, variable: int) -> Key:
        """The figure to hide next for a narrowed one, looking out from it through the sums that
        hold it, then the sums that hold the hidden figures in those, and so on: first one that
        closes a loop of hidden figures (a rectangle, which protects them all), nearest first;
        else the nearest; then in the sum with the fewest hidden figures, the smallest, a cell
        before a total."""
        hidden = self._hidden(problem)
        keys = {problem.variable(k): k for k in self.values}
        seen_sums: set[int] = set()
        seen = {variable}
        frontier = [variable]
        found: list[tuple[bool, int, int, int, bool, int]] = []
        depth = 0
        while frontier:
            reached: list[int] = []
            for v in frontier:
                for n in problem.members.get(v, []):
                    if n in seen_sums:
                        continue
                    seen_sums.add(n)
                    present = [int(x) for x in np.nonzero(problem.matrix[n])[0]]
                    count = sum(1 for x in present if x in hidden)
                    for x in present:
                        if x not in hidden:
                            closes = any(self._holds_hidden(problem, m, hidden) for m in problem.members[x] if m != n)
                            found.append((not closes, depth, count, self.values[keys[x]], keys[x][1] != "cell", x))
                        elif x not in seen:
                            seen.add(x)
                            reached.append(x)
            frontier = reached
            depth += 1
        if not found:
            raise Narrowed(self._listing(problem, variable, seen))
        return keys[min(found)[-1]]

    def _listing(self, problem: Problem, variable: int, tied: set[int]) -> str:
        """The table whose values, shown as one row, would free a narrowed figure: its own, if
        it lists more than one; else the one tied to it that lists the most."""
        own = next(k for k in self.values if problem.variable(k) == variable)[0]
        if len(self.tables[own].rows) > 1:
            return own
        names = {k[0] for k in self.values if problem.variable(k) in tied}
        most = max(names, key=lambda name: (len(self.tables[name].rows), name))
        if len(self.tables[most].rows) < 2:
            raise ValueError("a hidden figure is narrowed and nothing tied to it is left to hide")
        return most

    @staticmethod
    def _holds_hidden(problem: Problem, n: int, hidden: set[int]) -> bool:
        return any(int(x) in hidden for x in np.nonzero(problem.matrix[n])[0])

    def _hidden(self, problem: Problem) -> set[int]:
        return {problem.variable(k) for k in self.hidden()}


def suppress_together(
    grids: Mapping[str, tuple[Sequence[str], Sequence[str], Sequence[Sequence[int]]]], links: Links = Links()
) -> dict[str, Table]:
    """Tables published together (name -> rows, columns, counts), suppressed so that no hidden
    figure in any of them can be narrowed to fewer than three values, whatever ties them."""
    tables = {
        name: Table(tuple(rows), tuple(columns), tuple(tuple(int(v) for v in row) for row in counts))
        for name, (rows, columns, counts) in grids.items()
    }
    return _Hiding(tables, links).run()


def suppress(rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]]) -> Table:
    """One table on its own."""
    return suppress_together({"table": (rows, columns, counts)})["table"]
