"""`reachable figures`: a quarter's figures from the tallies (which no report can be traced back
to), safe to publish, as a tidy CSV, a JSON export with a schema, and a self-contained page with
charts that works without JavaScript; and `reachable figures combine`, the network's quarter from
several services' exports, with ranges wherever a figure was hidden or the same incident may be
counted twice.

Charts are drawn on the server as SVG with matplotlib (well kept, renders without a browser or a
display, and its SVG carries a title for screen readers); every chart has a table and a sentence."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError
from bot.core.quarterly import Labels, months_of, tables
from bot.core.suppression import UNDER, Figure, Published, Table
from responses import Responses

SCHEMA = "reachable-figures"
VERSION = 1
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:48rem;margin:auto;padding:1rem;line-height:1.5;color:#111}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #555;padding:.25rem .5rem;text-align:right}"
    "th[scope=row],caption{text-align:left}svg{max-width:100%;height:auto}"
)


def _shown(value: Figure, labels: Labels) -> str:
    """A figure on the page: the number, or the charity's words for the marks."""
    if isinstance(value, int):
        return str(value)
    return labels.t("figures.small") if value == UNDER else labels.t("figures.hidden")


def export(service: str, quarter: str, made: Mapping[str, Table], labels: Labels) -> dict[str, Any]:
    """What may be published and combined: a hidden figure is "<5" (under 5) or "5+" (5 or more,
    hidden so that no other can be worked out)."""
    body: dict[str, Any] = {"schema": SCHEMA, "version": VERSION, "service": service, "quarter": quarter}
    body["months"] = list(months_of(quarter))
    body["tables"] = []
    for dimension, table in made.items():
        rows = []
        for r, value in enumerate(table.rows):
            cells = [table.published(r, c) for c in range(len(table.columns))]
            total = table.published_total(("row", r))
            rows.append({"value": value, "label": labels.value(dimension, value), "cells": cells, "total": total})
        columns = [table.published_total(("column", c)) for c in range(len(table.columns))]
        title = labels.t(f"figures.dimension.{dimension}")
        body["tables"].append(
            {
                "dimension": dimension,
                "title": title,
                "rows": rows,
                "totals": columns,
                "total": table.published_total(("all", 0)),
            }
        )
    return body


def to_csv(body: Mapping[str, Any]) -> str:
    """Tidy: one row per dimension, value and month (and "total"); a hidden figure's count is
    empty and ``hidden`` says "under 5" or "5 or more"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["service", "quarter", "dimension", "value", "month", "count", "hidden"])
    for table in body["tables"]:
        for row in table["rows"]:
            for month, cell in zip([*body["months"], "total"], [*row["cells"], row["total"]], strict=True):
                writer.writerow([body["service"], body["quarter"], table["dimension"], row["value"], month,
                                 *_csv_figure(cell)])  # fmt: skip
        for month, cell in zip([*body["months"], "total"], [*table["totals"], table["total"]], strict=True):
            writer.writerow([body["service"], body["quarter"], table["dimension"], "total", month,
                             *_csv_figure(cell)])  # fmt: skip
    return out.getvalue()


def _csv_figure(figure: Figure) -> tuple[str, str]:
    """The count (empty where hidden) and what is known of a hidden one."""
    if isinstance(figure, int):
        return str(figure), "no"
    return "", "under 5" if figure == UNDER else "5 or more"


def chart(table: Mapping[str, Any], months: Sequence[str], title: str) -> str:
    """A grouped bar chart of the published figures (hidden ones drawn as nothing: the table
    beside it says which), as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    # Words stay words (smaller, selectable, read by screen readers), ids the same every run.
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "reachable"})
    import matplotlib.pyplot as plt

    labels = [row["label"] for row in table["rows"]]
    figure, axes = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(labels) * max(1, len(months)) / 2))
    height = 0.8 / max(1, len(months))
    for n, month in enumerate(months):
        values = [c if isinstance(c := row["cells"][n], int) else 0 for row in table["rows"]]
        places = [i + n * height for i in range(len(labels))]
        axes.barh(places, values, height=height, label=month, color=("#1d4e89", "#4f9d69", "#d1a03c")[n % 3])
    axes.set_yticks([i + height * (len(months) - 1) / 2 for i in range(len(labels))], labels=labels)
    axes.invert_yaxis()
    axes.legend(loc="lower right", fontsize="small")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    svg = io.StringIO()
    figure.savefig(svg, format="svg", metadata={"Title": title, "Date": None})
    plt.close(figure)
    drawn = svg.getvalue()
    return drawn[drawn.index("<svg") :].replace("<svg ", '<svg role="img" aria-label="' + html.escape(title) + '" ', 1)


def page(body: Mapping[str, Any], labels: Labels) -> str:
    """The self-contained page: a chart, a table and a sentence for each table; no script."""
    months = list(body["months"])
    title = labels.t("figures.title", service=body["service"], quarter=body["quarter"])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f"</head><body><main><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in labels.t("figures.intro").splitlines() if line.strip()),
    ]
    for n, table in enumerate(body["tables"]):
        heading = table["title"]
        hidden = any(isinstance(c, str) for row in table["rows"] for c in row["cells"])
        total = table["total"]
        if isinstance(total, str):
            sentence = labels.t("figures.summary.all_hidden")
        else:
            note = labels.t("figures.summary.hidden" if hidden else "figures.summary.none")
            sentence = labels.t("figures.summary", total=total, months=", ".join(months), hidden=note)
        parts.append(f'<section aria-labelledby="t{n}"><h2 id="t{n}">{html.escape(heading)}</h2>')
        parts.append(f"<p>{html.escape(sentence)}</p>")
        parts.append(f"<figure>{chart(table, months, heading)}</figure>")
        head = "".join(f'<th scope="col">{html.escape(m)}</th>' for m in [*months, labels.t("figures.total")])
        parts.append(f'<table><caption>{html.escape(heading)}</caption><thead><tr><th scope="col">'
                     f'{html.escape(labels.t("figures.column.value"))}</th>{head}</tr></thead><tbody>')  # fmt: skip
        for row in table["rows"]:
            cells = "".join(f"<td>{html.escape(_shown(c, labels))}</td>" for c in [*row["cells"], row["total"]])
            parts.append(f'<tr><th scope="row">{html.escape(row["label"])}</th>{cells}</tr>')
        totals = "".join(f"<td>{html.escape(_shown(c, labels))}</td>" for c in [*table["totals"], total])
        parts.append(f'<tr><th scope="row">{html.escape(labels.t("figures.total"))}</th>{totals}</tr></tbody></table>')
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write(body: Mapping[str, Any], labels: Labels, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {
        out / "figures.json": json.dumps(body, indent=2, ensure_ascii=False) + "\n",
        out / "figures.csv": to_csv(body),
        out / "figures.html": page(body, labels),
    }
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    return list(written)


def demo_tallies(months: Sequence[str]) -> dict[tuple[str, str, str], int]:
    """Made-up figures for a screenshot and a first look (never a service's own)."""
    found: dict[tuple[str, str, str], int] = {}
    plan = {
        "harm": {
            "assault": (7, 9, 6),
            "drugged": (11, 8, 12),
            "robbery": (6, 3, 8),
            "threats": (2, 5, 4),
            "violence": (5, 6, 9),
        },
        "channel": {"telegram": (14, 12, 15), "web": (9, 8, 11), "rasa": (3, 2, 6)},
        "language": {"en": (21, 18, 25), "pl": (4, 3, 5), "ro": (1, 1, 2)},
        "where": {"london": (19, 17, 23), "elsewhere": (3, 2, 4), "not_said": (4, 3, 5)},
        "area": {
            "Central London": (8, 7, 9),
            "East London": (5, 4, 6),
            "South London": (3, 3, 5),
            "West London": (2, 2, 1),
            "North London": (1, 1, 2),
        },
        "told": {"no": (15, 12, 16), "police": (3, 4, 2), "galop": (5, 3, 6), "not_said": (3, 3, 8)},
        "recipient": {"support": (12, 10, 14), "soit": (3, 2, 4), "none": (11, 10, 14)},
        "withdrawn": {"reports": (2, 1, 3)},
        "matched": {"reports": (0, 2, 2)},
        "screen": {"emergency": (41, 38, 52), "crisis": (17, 12, 19)},
        "advice": {"g_dosing": (63, 58, 71), "overdose": (29, 31, 35), "pep_prep": (22, 25, 18), "police": (14, 9, 16)},
    }
    for dimension, values in plan.items():
        for value, counts in values.items():
            for month, count in zip(months, counts, strict=True):
                found[(dimension, value, month)] = count
    return found


# ---------------------------------------------------------------- the network's quarter
def combine(bodies: Sequence[Mapping[str, Any]], matches: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Each service's published figures added up. Where a service hid a figure, what its other
    figures allow ("<5" is 0 to 4, "5+" 5 or more, the totals) makes the sum a range. Reports
    kept: lowest possible to highest possible, taking away at most the reports people said they
    had already told another service in the network, and those whose naming of who did it matched
    a report at another service (``matches``: the services' `reachable match export` files,
    digests and references only). A high of None: nothing published bounds it."""
    if not bodies:
        raise ValueError("nothing to combine")
    quarters = {b["quarter"] for b in bodies}
    if len(quarters) != 1:
        raise ValueError(f"the exports are of different quarters: {', '.join(sorted(quarters))}")
    services = [str(b["service"]) for b in bodies]
    if len(set(services)) != len(services):
        raise ValueError("a service is in two exports")
    for body in bodies:
        if body.get("schema") != SCHEMA or body.get("version") != VERSION:
            raise ValueError(f"{body.get('service')}: not a figures export of this version")
    combined: dict[str, dict[str, list[float]]] = {}  # dimension -> value -> [low, high] for the quarter
    for table in (t for body in bodies for t in body["tables"]):
        for r, row in enumerate(table["rows"]):
            low, high = _row_range(table, r)
            found = combined.setdefault(table["dimension"], {}).setdefault(row["value"], [0, 0])
            found[0] += low
            found[1] += high
    kept = [_kept(body) for body in bodies]
    told = _overlap(bodies, services, kept)
    matched = _matched(matches, services)
    # At least as many as the busiest service kept: the others can only add to it.
    least = max(k[0] for k in kept)
    low = max(least, sum(k[0] for k in kept) - told - matched)
    return {
        "schema": SCHEMA + "-network",
        "version": VERSION,
        "quarter": quarters.pop(),
        "services": services,
        "reports": {
            "low": _whole(low),
            "high": _whole(sum(k[1] for k in kept)),
            "told": _whole(told),
            "matched": matched,
        },
        "dimensions": {
            d: {v: {"low": _whole(r[0]), "high": _whole(r[1])} for v, r in values.items()}
            for d, values in combined.items()
        },
    }


def _whole(value: float) -> int | None:
    return None if value == float("inf") else round(value)


def _overlap(bodies: Sequence[Mapping[str, Any]], services: list[str], kept: list[tuple[float, float]]) -> float:
    """Reports that may be one incident counted at two services: those whose person said they
    had already told another service in this network (by its name as a "told" answer), at most
    as many as that service kept."""
    overlap = 0.0
    for body, service in zip(bodies, services, strict=True):
        for told in (t for t in body["tables"] if t["dimension"] == "told"):
            for r, row in enumerate(told["rows"]):
                if row["value"] in services and row["value"] != service:
                    overlap += min(_row_range(told, r)[1], kept[services.index(row["value"])][1])
    return overlap


def _matched(matches: Sequence[Mapping[str, Any]], services: list[str]) -> int:
    """Reports that may be one incident because they named the same person at two services: in
    each group of reports joined by a shared digest, all but the most any one service holds (a
    service counts its own reports once already). References are never shown."""
    holders: dict[str, set[tuple[str, str]]] = {}  # digest -> (service, reference)
    for export_ in matches:
        if export_.get("format") != "reachable-matching-export" or export_.get("version") != 1:
            raise ValueError(f"{export_.get('service')}: not a matching export of this version")
        if export_["service"] not in services:
            raise ValueError(f"{export_['service']}: a matching export from a service whose figures are not here")
        for entry in export_["entries"]:
            holders.setdefault(str(entry["digest"]), set()).add((str(export_["service"]), str(entry["reference"])))
    group: dict[tuple[str, str], tuple[str, str]] = {}  # union-find over (service, reference)

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while group.setdefault(node, node) != node:
            node = group[node]
        return node

    for held in holders.values():
        first, *rest = sorted(held)
        for other in rest:
            group[root(other)] = root(first)
    members: dict[tuple[str, str], list[str]] = {}
    for node in list(group):
        members.setdefault(root(node), []).append(node[0])
    return sum(len(found) - max(found.count(s) for s in set(found)) for found in members.values())


def _row_range(table: Mapping[str, Any], r: int) -> tuple[float, float]:
    """A row's quarter, as a range: what the published figures allow its total to be."""
    return Published.of(table).bounds([(r, c) for c in range(len(table["totals"]))])


def _kept(body: Mapping[str, Any]) -> tuple[float, float]:
    """Reports kept in the quarter: one recipient row per report."""
    table = next((t for t in body["tables"] if t["dimension"] == "recipient"), None)
    if table is None:
        return 0.0, 0.0
    return Published.of(table).bounds([(r, c) for r in range(len(table["rows"])) for c in range(len(table["totals"]))])


def combined_page(network: Mapping[str, Any], labels: Labels) -> str:
    title = labels.t("figures.combined.title", quarter=network["quarter"], services=", ".join(network["services"]))
    reports = network["reports"]
    why = " ".join(
        [
            *([labels.t("figures.combined.reports.told", n=reports["told"])] if reports["told"] else []),
            *([labels.t("figures.combined.reports.matched", n=reports["matched"])] if reports["matched"] else []),
        ]
    ) or labels.t("figures.combined.reports.exact")
    kept = labels.t("figures.combined.reports", count=_range(reports, labels), why=why)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in labels.t("figures.combined.intro").splitlines() if line.strip()),
        f"<p><strong>{html.escape(kept)}</strong></p>",
    ]
    for dimension, values in network["dimensions"].items():
        heading = labels.t(f"figures.dimension.{dimension}")
        parts.append(f"<h2>{html.escape(heading)}</h2><table><caption>{html.escape(heading)}</caption><tbody>")
        for value, found in values.items():
            shown = html.escape(_range(found, labels))
            parts.append(f'<tr><th scope="row">{html.escape(labels.value(dimension, value))}</th><td>{shown}</td></tr>')
        parts.append("</tbody></table>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _range(found: Mapping[str, Any], labels: Labels) -> str:
    if found["high"] is None:
        return labels.t("figures.combined.at_least", low=found["low"])
    if found["low"] == found["high"]:
        return str(found["low"])
    return labels.t("figures.combined.range", low=found["low"], high=found["high"])


# ---------------------------------------------------------------- the commands
def quarter_figures(responses: Responses, tallies: Mapping[tuple[str, str, str], int], service: str,
                          quarter: str, out: Path) -> int:  # fmt: skip
    labels = Labels(responses)
    body = export(service, quarter, tables(tallies, months_of(quarter)), labels)
    for path in write(body, labels, out):
        print(f"wrote {path}")
    return 0


def combine_files(responses: Responses, paths: Sequence[Path], out: Path, matches: Sequence[Path] = ()) -> int:
    try:
        bodies = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
        network = combine(bodies, [json.loads(path.read_text(encoding="utf-8")) for path in matches])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot combine these: {error}") from error
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.json").write_text(json.dumps(network, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "network.html").write_text(combined_page(network, Labels(responses)), encoding="utf-8")
    reports = network["reports"]
    count = _range(reports, Labels(responses))
    print(f"wrote {out / 'network.json'} and {out / 'network.html'}: reports kept {count}")
    return 0
