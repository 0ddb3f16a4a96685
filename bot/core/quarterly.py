"""A quarter's figures, as tables safe to publish: the same for `reachable figures` and the staff
chat's /stats. Each table is one dimension's values by month, suppressed (bot.core.suppression)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.errors import ConfigError
from bot.core.suppression import SMALL, Key, Links, Narrowed, Table, line_key, suppress_together
from responses import Responses

# The dimensions, in the order the page shows them; the first seven count reports kept.
DIMENSIONS = (
    *("harm", "channel", "language", "where", "area", "told", "recipient"),
    *("withdrawn", "matched", "screen", "advice"),
)
QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
# A table counting fewer than 5 in all shows one row, not its values: each value listed means at
# least one person, and a few of them beside a total under 5 would give the total away. So does a
# table whose values listed narrow a hidden figure when nothing else is left to hide.
FEW = "few"


def months_of(quarter: str) -> tuple[str, ...]:
    found = QUARTER.match(quarter)
    if found is None:
        raise ConfigError(f"a quarter looks like 2026Q4, not {quarter!r}")
    year, q = int(found.group(1)), int(found.group(2))
    return tuple(f"{year}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1))


def quarter_of(moment: float) -> str:
    """The quarter a moment falls in, like 2026Q4."""
    day = dt.datetime.fromtimestamp(moment, dt.UTC)
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@dataclass(frozen=True, slots=True)
class Labels:
    """What each value is called on the page, from the charity's words."""

    responses: Responses

    def t(self, message_id: str, **variables: object) -> str:
        text = self.responses.text("en", message_id)
        return text.format_map({k: str(v) for k, v in variables.items()}) if variables else text

    def value(self, dimension: str, value: str) -> str:
        candidates = {
            "harm": [f"report.what.{value}"],
            "language": [f"language.name.{value}"],
            "where": [f"report.where.{value}", f"figures.{value}"],
            "area": [f"figures.{value}"],
            "told": [f"report.elsewhere.{value}", f"figures.{value}"],
            "recipient": [f"staff.send_to.{value}", f"recipient.{value}.label", f"figures.{value}"],
            "screen": [f"figures.screen.{value}"],
            "advice": [f"advice.{value}.title"],
            "withdrawn": [f"figures.withdrawn.{value}"],
            "matched": [f"figures.matched.{value}"],
        }.get(dimension, [])
        if value == FEW:
            candidates = ["figures.few"]
        return next((self.t(m) for m in candidates if self.responses.has(m)), value)


# Counted by month: what people were harmed by, and what is tied to nothing else. The rest is
# counted for the quarter: many tables by month would share their monthly totals and, together,
# give away what each hides.
BY_MONTH = frozenset({"harm", "withdrawn", "matched", "screen", "advice"})
# One value a report kept: these tables count the same reports, so their totals agree.
PARTITIONS = ("recipient", "channel", "language", "where", "told")
# One value or more a report kept: each figure is at most the reports kept, the total at least.
SEVERAL = ("harm",)


def columns_of(dimension: str, quarter: str) -> tuple[str, ...]:
    return months_of(quarter) if dimension in BY_MONTH else (quarter,)


def links(rows: Mapping[str, Sequence[str]]) -> Links:
    """What anyone knows ties a quarter's tables (``rows``: each table's values), used both to
    hide enough and to work out the network's ranges."""
    same: list[tuple[Key, Key]] = []
    at_most: list[tuple[Key, Key]] = []
    present = [d for d in PARTITIONS if d in rows]
    if not present:
        return Links()
    kept = line_key(present[0], ("all", 0))
    same += [(line_key(other, ("all", 0)), kept) for other in present[1:]]
    if "area" in rows and "london" in rows.get("where", ()):
        london = list(rows["where"]).index("london")
        same.append((line_key("area", ("all", 0)), line_key("where", ("row", london))))
    for several in (d for d in SEVERAL if d in rows):
        at_most.append((kept, line_key(several, ("all", 0))))
        at_most += [(line_key(several, ("row", r)), kept) for r, v in enumerate(rows[several]) if v != FEW]
    return Links(tuple(same), tuple(at_most))


def tables(tallies: Mapping[tuple[str, str, str], int], quarter: str) -> dict[str, Table]:
    """One table a dimension (its values × the quarter's months, or the quarter), suppressed
    together for publishing: what ties them is known to anyone reading them. A table counting
    under 5 in all, or whose values listed would narrow a hidden figure, shows one row (FEW)."""
    months = months_of(quarter)
    grids: dict[str, tuple[list[str], tuple[str, ...], list[list[int]]]] = {}
    for dimension in DIMENSIONS:
        values = sorted({v for (d, v, m), n in tallies.items() if d == dimension and m in months and n > 0})
        if not values:
            continue
        by_month = [[tallies.get((dimension, v, m), 0) for m in months] for v in values]
        counts = by_month if dimension in BY_MONTH else [[sum(row)] for row in by_month]
        grids[dimension] = (values, columns_of(dimension, quarter), counts)
        if len(values) > 1 and sum(map(sum, counts)) < SMALL:
            grids[dimension] = _as_one(grids[dimension])
    while True:
        if "where" not in grids or grids["where"][0] == [FEW]:
            # London's count would be the areas' total, and the rest what is left of the kept.
            grids.pop("area", None)
        try:
            return suppress_together(grids, links({d: grid[0] for d, grid in grids.items()}))
        except Narrowed as narrowed:
            grids[narrowed.table] = _as_one(grids[narrowed.table])


def _as_one(
    grid: tuple[list[str], tuple[str, ...], list[list[int]]],
) -> tuple[list[str], tuple[str, ...], list[list[int]]]:
    _values, columns, counts = grid
    return [FEW], columns, [[sum(column) for column in zip(*counts, strict=True)]]
