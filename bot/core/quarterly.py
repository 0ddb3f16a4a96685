"""A quarter's figures, as tables safe to publish: the same for `reachable figures` and the staff
chat's /stats. Each table is one dimension's values by month, suppressed (bot.core.suppression)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.errors import ConfigError
from bot.core.suppression import Table, suppress
from responses import Responses

# The dimensions, in the order the page shows them; the first seven count reports kept.
DIMENSIONS = (
    *("harm", "channel", "language", "where", "area", "told", "recipient"),
    *("withdrawn", "matched", "screen", "advice"),
)
QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


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
        return next((self.t(m) for m in candidates if self.responses.has(m)), value)


def tables(tallies: Mapping[tuple[str, str, str], int], months: Sequence[str]) -> dict[str, Table]:
    """One table a dimension (its values × the quarter's months), suppressed for publishing."""
    found: dict[str, Table] = {}
    for dimension in DIMENSIONS:
        values = sorted({v for (d, v, m) in tallies if d == dimension and m in months})
        if not values:
            continue
        counts = [[tallies.get((dimension, v, m), 0) for m in months] for v in values]
        found[dimension] = suppress(values, months, counts)
    return found
