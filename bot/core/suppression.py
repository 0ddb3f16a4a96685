"""Safe to publish: every figure under 5 is hidden, cells and totals alike (primary suppression,
shown as "<5"), and enough others (secondary suppression, shown as "5+": they are 5 or more) that
no hidden figure can be worked out from what is published.

Checked, not assumed: for each hidden cell a linear programme finds the smallest and largest value
everything published allows (the figures shown, the totals, and what the marks say: "<5" is 0 to 4,
"5+" is 5 or more); while any hidden cell is pinned to one value, one more figure beside it is
hidden, preferring a cell that closes a rectangle of hidden cells, then the smallest. The same
programme gives the network's ranges when services' figures are combined (`Published.bounds`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

SMALL = 5  # a figure under this is never published
UNDER = "<5"  # a hidden figure under 5
OVER = "5+"  # a hidden figure of 5 or more
Cell = tuple[int, int]
Line = tuple[str, int]  # ("row", r), ("column", c), or ("all", 0): a total
Figure = int | str  # a published count, or UNDER / OVER


@dataclass(frozen=True, slots=True)
class Published:
    """What anyone can see of a table: each figure, or its mark where hidden."""

    cells: tuple[tuple[Figure, ...], ...]
    row_totals: tuple[Figure, ...]
    column_totals: tuple[Figure, ...]
    total: Figure

    def line(self, line: Line) -> tuple[Figure, list[Cell]]:
        kind, n = line
        width, height = len(self.column_totals), len(self.row_totals)
        if kind == "row":
            return self.row_totals[n], [(n, c) for c in range(width)]
        if kind == "column":
            return self.column_totals[n], [(r, n) for r in range(height)]
        return self.total, [(r, c) for r in range(height) for c in range(width)]

    @property
    def lines(self) -> list[Line]:
        return [
            *(("row", r) for r in range(len(self.row_totals))),
            *(("column", c) for c in range(len(self.column_totals))),
            ("all", 0),
        ]

    def _known(self, cells: Sequence[Cell]) -> int:
        """The sum of the published figures among these cells."""
        return sum(f for f in (self.cells[r][c] for r, c in cells) if isinstance(f, int))

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

    def bounds(self, cells: Sequence[Cell]) -> tuple[float, float]:
        """The smallest and largest the sum of these cells can be, given all that is published
        (``inf`` when nothing published bounds it)."""
        hidden = sorted({(r, c) for r, row in enumerate(self.cells) for c, f in enumerate(row) if isinstance(f, str)})
        known = self._known(cells)
        if not any(cell in hidden for cell in cells):
            return float(known), float(known)
        index = {cell: n for n, cell in enumerate(hidden)}
        equal, equal_sums, under, under_sums = [], [], [], []
        for line in self.lines:
            figure, members = self.line(line)
            row = np.zeros(len(hidden))
            row[[index[m] for m in members if m in index]] = 1
            rest = self._known(members)
            if not isinstance(figure, str):
                equal.append(row)
                equal_sums.append(figure - rest)
            elif figure == UNDER:  # the line's total is 0 to 4
                under.append(row)
                under_sums.append(SMALL - 1 - rest)
            else:  # 5 or more
                under.append(-row)
                under_sums.append(rest - SMALL)
        limits = [(0, SMALL - 1) if self.cells[r][c] == UNDER else (SMALL, None) for r, c in hidden]
        goal = np.zeros(len(hidden))
        goal[[index[cell] for cell in cells if cell in index]] = 1
        problem = {
            "A_eq": equal or None,
            "b_eq": equal_sums or None,
            "A_ub": under or None,
            "b_ub": under_sums or None,
            "bounds": limits,
            "method": "highs",
        }
        low = linprog(goal, **problem)
        high = linprog(-goal, **problem)
        if low.status != 0:
            raise ValueError("these figures contradict each other")
        return known + float(low.fun), float("inf") if high.status == 3 else known - float(high.fun)


@dataclass(frozen=True, slots=True)
class Table:
    """A table of counts (rows × columns) with its totals, and which figures are hidden."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    hidden: frozenset[Cell]
    hidden_totals: frozenset[Line] = frozenset()

    def total(self, line: Line) -> int:
        kind, n = line
        if kind == "row":
            return sum(self.counts[n])
        if kind == "column":
            return sum(row[n] for row in self.counts)
        return sum(sum(row) for row in self.counts)

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


def _mark(value: int) -> str:
    return UNDER if value < SMALL else OVER


def ranges(table: Table) -> dict[Cell, tuple[float, float]]:
    """For each hidden cell, the smallest and largest value the published figures allow: what
    someone trying to undo the suppression can find."""
    public = table.public()
    return {cell: public.bounds([cell]) for cell in sorted(table.hidden)}


def exposed(table: Table) -> list[Cell]:
    """Hidden cells the published figures pin to a single value."""
    return [cell for cell, (low, high) in ranges(table).items() if high - low < 1]


def suppress(rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]]) -> Table:
    grid = tuple(tuple(int(v) for v in row) for row in counts)
    table = Table(tuple(rows), tuple(columns), grid, frozenset())
    hidden = {(r, c) for r, row in enumerate(grid) for c, value in enumerate(row) if value < SMALL}
    totals = {line for line in table.public().lines if table.total(line) < SMALL}
    while True:
        table = Table(tuple(rows), tuple(columns), grid, frozenset(hidden), frozenset(totals))
        pinned = exposed(table)
        if not pinned:
            return table
        candidates = _candidates(grid, hidden, pinned)
        if candidates:
            hidden.add(min(candidates)[-1])
            continue
        r, c = pinned[0]
        # Its whole row and column are hidden: their totals give it away; hide the smaller.
        lines = [line for line in (("row", r), ("column", c), ("all", 0)) if line not in totals]
        lines = lines or [line for line in table.public().lines if line not in totals]
        totals.add(min((table.total(line), line) for line in lines)[1])


def _candidates(
    grid: tuple[tuple[int, ...], ...], hidden: set[Cell], pinned: list[Cell]
) -> list[tuple[bool, int, int, Cell]]:
    """Published cells sharing a row or column with a pinned cell, best first when sorted."""
    near: dict[Cell, int] = {}
    for r, c in pinned:
        for cell in [*((r, k) for k in range(len(grid[0]))), *((k, c) for k in range(len(grid)))]:
            if cell not in hidden:
                near[cell] = near.get(cell, 0) + 1
    found = []
    for (r, c), n in near.items():
        in_row = any((r, k) in hidden for k in range(len(grid[0])) if k != c)
        in_column = any((k, c) in hidden for k in range(len(grid)) if k != r)
        found.append((not (in_row and in_column), grid[r][c], -n, (r, c)))
    return found
