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
from bot.core.quarterly import FEW, PARTITIONS, Labels, columns_of, links, months_of, quarter_of, tables
from bot.core.suppression import SMALL, UNDER, Figure, Problem, Published, Table, line_key
from responses import Responses

SCHEMA = "reachable-figures"
VERSION = 2
SCHEMA_FILE = Path(__file__).with_name("figures.schema.json")
# What a person could answer to "have you told anyone else?" that may be a service in the network
# without saying which: such a report may be an incident counted there too.
UNKNOWN_TOLD = ("other", "not_said")
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


def export(
    service: str, quarter: str, made: Mapping[str, Table], labels: Labels, provisional: bool = False
) -> dict[str, Any]:
    """What may be published and combined: a hidden figure is "<5" (under 5) or "5+" (5 or more,
    hidden so that no other can be worked out). ``provisional``: the quarter is not over, and the
    figures will still change."""
    body: dict[str, Any] = {"schema": SCHEMA, "version": VERSION, "service": service, "quarter": quarter}
    body["months"] = list(months_of(quarter))
    body["provisional"] = provisional
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
                "columns": list(columns_of(dimension, quarter)),
                "rows": rows,
                "totals": columns,
                "total": table.published_total(("all", 0)),
            }
        )
    return body


def to_csv(body: Mapping[str, Any]) -> str:
    """Tidy: one row per dimension, value and period (a month and "total", or the quarter); a
    hidden figure's count is empty and ``hidden`` says "under 5" or "5 or more"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["service", "quarter", "dimension", "value", "period", "count", "hidden"])
    for table in body["tables"]:
        periods = [*table["columns"], "total"] if len(table["columns"]) > 1 else table["columns"]
        for row in table["rows"]:
            cells = [*row["cells"], row["total"]] if len(table["columns"]) > 1 else row["cells"]
            for month, cell in zip(periods, cells, strict=True):
                writer.writerow([body["service"], body["quarter"], table["dimension"], row["value"], month,
                                 *_csv_figure(cell)])  # fmt: skip
        totals = [*table["totals"], table["total"]] if len(table["columns"]) > 1 else table["totals"]
        for month, cell in zip(periods, totals, strict=True):
            writer.writerow([body["service"], body["quarter"], table["dimension"], "total", month,
                             *_csv_figure(cell)])  # fmt: skip
    return out.getvalue()


def _csv_figure(figure: Figure) -> tuple[str, str]:
    """The count (empty where hidden) and what is known of a hidden one."""
    if isinstance(figure, int):
        return str(figure), "no"
    return "", "under 5" if figure == UNDER else "5 or more"


def chart(table: Mapping[str, Any], title: str) -> str:
    """A grouped bar chart of the published figures (hidden ones drawn as nothing: the table
    beside it says which), as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    # Words stay words (smaller, selectable, read by screen readers), ids the same every run.
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "reachable"})
    import matplotlib.pyplot as plt

    months = table["columns"]
    labels = [row["label"] for row in table["rows"]]
    figure, axes = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(labels) * max(1, len(months)) / 2))
    height = 0.8 / max(1, len(months))
    for n, month in enumerate(months):
        values = [c if isinstance(c := row["cells"][n], int) else 0 for row in table["rows"]]
        places = [i + n * height for i in range(len(labels))]
        axes.barh(places, values, height=height, label=month, color=("#1d4e89", "#4f9d69", "#d1a03c")[n % 3])
    axes.set_yticks([i + height * (len(months) - 1) / 2 for i in range(len(labels))], labels=labels)
    axes.invert_yaxis()
    if len(months) > 1:
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
    title = labels.t("figures.title", service=body["service"], quarter=body["quarter"])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f"</head><body><main><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in labels.t("figures.intro").splitlines() if line.strip()),
        *(_provisional(labels) if body["provisional"] else []),
    ]
    for n, table in enumerate(body["tables"]):
        months = list(table["columns"])
        by_month = len(months) > 1
        heading = table["title"]
        hidden = any(isinstance(c, str) or row["value"] == FEW for row in table["rows"] for c in row["cells"])
        total = table["total"]
        if isinstance(total, str):
            sentence = labels.t("figures.summary.all_hidden")
        else:
            note = labels.t("figures.summary.hidden" if hidden else "figures.summary.none")
            sentence = labels.t("figures.summary", total=total, months=", ".join(body["months"]), hidden=note)
        parts.append(f'<section aria-labelledby="t{n}"><h2 id="t{n}">{html.escape(heading)}</h2>')
        parts.append(f"<p>{html.escape(sentence)}</p>")
        parts.append(f"<figure>{chart(table, heading)}</figure>")
        periods = [*months, labels.t("figures.total")] if by_month else [labels.t("figures.quarter")]
        head = "".join(f'<th scope="col">{html.escape(m)}</th>' for m in periods)
        parts.append(f'<table><caption>{html.escape(heading)}</caption><thead><tr><th scope="col">'
                     f'{html.escape(labels.t("figures.column.value"))}</th>{head}</tr></thead><tbody>')  # fmt: skip
        for row in table["rows"]:
            figures = [*row["cells"], row["total"]] if by_month else row["cells"]
            cells = "".join(f"<td>{html.escape(_shown(c, labels))}</td>" for c in figures)
            parts.append(f'<tr><th scope="row">{html.escape(row["label"])}</th>{cells}</tr>')
        sums = [*table["totals"], total] if by_month else table["totals"]
        totals = "".join(f"<td>{html.escape(_shown(c, labels))}</td>" for c in sums)
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
def problem_of(body: Mapping[str, Any]) -> Problem:
    """What a service's export says, and what ties its tables: anyone can work out this much."""
    published = {t["dimension"]: Published.of(t) for t in body["tables"]}
    return Problem(published, links({t["dimension"]: [row["value"] for row in t["rows"]] for t in body["tables"]}))


def _rows(body: Mapping[str, Any], dimension: str) -> dict[str, int]:
    table = next((t for t in body["tables"] if t["dimension"] == dimension), None)
    return {row["value"]: r for r, row in enumerate(table["rows"])} if table else {}


def _span(problem: Problem, dimension: str, rows: Sequence[int]) -> tuple[float, float]:
    """What the published figures allow the sum of these rows' quarters to be."""
    return problem.range_of([line_key(dimension, ("row", r)) for r in rows]) if rows else (0.0, 0.0)


def _kept(body: Mapping[str, Any], problem: Problem) -> tuple[float, float]:
    """Reports kept in the quarter: the total of any table with one value a report."""
    dimension = next((t["dimension"] for t in body["tables"] if t["dimension"] in PARTITIONS), None)
    return problem.range_of([line_key(dimension, ("all", 0))]) if dimension else (0.0, 0.0)


def _dimensions(bodies: Sequence[Mapping[str, Any]], problems: Sequence[Problem]) -> dict[str, dict[str, list[float]]]:
    """Each dimension's values, [low, high] for the network's quarter. A service that shows a
    table as one row (FEW) may hold any of its values there: that row's most goes on each value's
    highest."""
    combined: dict[str, dict[str, list[float]]] = {}
    unnamed: dict[str, list[float]] = {}  # dimension -> [low, high] of the services' one rows (FEW)
    for body, problem in zip(bodies, problems, strict=True):
        for table in body["tables"]:
            for r, row in enumerate(table["rows"]):
                low, high = _span(problem, table["dimension"], [r])
                if row["value"] == FEW:
                    few = unnamed.setdefault(table["dimension"], [0.0, 0.0])
                    few[0] += low
                    few[1] += high
                    continue
                found = combined.setdefault(table["dimension"], {}).setdefault(row["value"], [0, 0])
                found[0] += low
                found[1] += high
    for dimension, (least, most) in unnamed.items():  # any value may be among a service's unnamed ones
        values = combined.setdefault(dimension, {})
        for found in values.values():
            found[1] += most
        if not values:
            values[FEW] = [least, most]
    return combined


def combine(
    bodies: Sequence[Mapping[str, Any]],
    matches: Sequence[Mapping[str, Any]] = (),
    told_as: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Each service's published figures added up; where a service hid a figure, what all its
    published figures allow makes the sum a range.

    Reports kept, counting an incident reported to two services once where the people's own
    answers tell: ``told_as`` names the answer to "have you told anyone else?" that means each
    service here (e.g. {"Galop": "galop"}). "highest" takes every report as a different incident;
    "by their word" takes away those whose person said they had already told another service
    here; "lowest" takes away also those who did not say, or said another service (it may be one
    here), and is never less than the busiest service's. ``matches`` (the services' matching
    exports) count the reports at two or more services that named the same person: one incident
    told twice, or one person harming more than one man; they are not taken away."""
    quarter, services = _checked(bodies)
    told_as = dict(told_as or {})
    for service in told_as:
        if service not in services:
            raise ValueError(f"--told-as names {service!r}, whose figures are not here")
    answer_of = {answer: service for service, answer in told_as.items()}
    problems = [problem_of(body) for body in bodies]
    combined = _dimensions(bodies, problems)
    kept = [_kept(body, problem) for body, problem in zip(bodies, problems, strict=True)]
    said = [0.0, 0.0]  # said they had told another service here
    unknown = 0.0  # may have: did not say, or said another service
    for body, problem, service, (_, most) in zip(bodies, problems, services, kept, strict=True):
        rows = _rows(body, "told")
        if not rows:  # no answers published: any of its reports may be counted elsewhere too
            unknown += most
            continue
        here = [r for value, r in rows.items() if value != FEW and answer_of.get(value, service) != service]
        low, high = _span(problem, "told", here)
        said[0] += low
        said[1] += high + _span(problem, "told", [r for value, r in rows.items() if value == FEW])[1]
        unknown += _span(problem, "told", [r for value, r in rows.items() if value in UNKNOWN_TOLD])[1]
    total = [sum(k[0] for k in kept), sum(k[1] for k in kept)]
    busiest = max(k[0] for k in kept)
    lowest = max(busiest, total[0] - said[1] - unknown)
    word = [max(lowest, total[0] - said[1]), max(lowest, total[1] - said[0])]
    return {
        "schema": SCHEMA + "-network",
        "version": VERSION,
        "quarter": quarter,
        "services": services,
        "told_as": told_as,
        "provisional": any(b.get("provisional") for b in bodies),
        "reports": {
            "low": _whole(lowest),
            "high": _whole(total[1]),
            "by_their_word": {"low": _whole(word[0]), "high": _whole(word[1])} if told_as else None,
            "told_here": {"low": _whole(said[0]), "high": _whole(said[1])},
            "unknown": _whole(unknown),
            "named_at_two": _named_at_two(matches, services),
        },
        "dimensions": {
            d: {v: {"low": _whole(r[0]), "high": _whole(r[1])} for v, r in values.items()}
            for d, values in combined.items()
        },
    }


def _checked(bodies: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The quarter and the services of exports that can be combined."""
    if not bodies:
        raise ValueError("nothing to combine")
    quarters = {b["quarter"] for b in bodies}
    if len(quarters) != 1:
        raise ValueError(f"the exports are of different quarters: {', '.join(sorted(quarters))}")
    services = [str(b["service"]) for b in bodies]
    if len(set(services)) != len(services):
        raise ValueError("a service is in two exports")
    return quarters.pop(), services


def _whole(value: float) -> int | None:
    return None if value == float("inf") else round(value)


def _named_at_two(matches: Sequence[Mapping[str, Any]], services: list[str]) -> int:
    """Reports in a group joined by shared digests that spans two or more services (references
    are never shown): the same person named at more than one service."""
    holders: dict[str, set[tuple[str, str]]] = {}  # digest -> (service, reference)
    for export_ in matches:
        for digest, reference in _entries(export_, services):
            holders.setdefault(digest, set()).add((str(export_["service"]), reference))
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
    return sum(len(found) for found in members.values() if len(set(found)) > 1)


def _entries(export_: Any, services: list[str]) -> list[tuple[str, str]]:
    """A matching export's (digest, reference) pairs, or a clear refusal."""
    if not isinstance(export_, Mapping) or export_.get("format") != "reachable-matching-export":
        raise ValueError("a --matches file is not a matching export (reachable match export)")
    if export_.get("version") != 1 or not isinstance(export_.get("entries"), list):
        raise ValueError(f"{export_.get('service')}: not a matching export of this version")
    if export_.get("service") not in services:
        raise ValueError(f"{export_.get('service')}: a matching export from a service whose figures are not here")
    entries = export_["entries"]
    if not all(isinstance(e, Mapping) and {"digest", "reference"} <= e.keys() for e in entries):
        raise ValueError(f"{export_['service']}: a matching export entry without a digest and a reference")
    return [(str(e["digest"]), str(e["reference"])) for e in entries]


def combined_page(network: Mapping[str, Any], labels: Labels) -> str:
    title = labels.t("figures.combined.title", quarter=network["quarter"], services=", ".join(network["services"]))
    reports = network["reports"]
    kept = labels.t("figures.combined.reports", count=_range(reports, labels))
    why = [labels.t("figures.combined.reports.highest")]
    if reports["low"] != reports["high"]:
        why.append(
            labels.t(
                "figures.combined.reports.lowest",
                unknown=_range({"low": reports["unknown"], "high": reports["unknown"]}, labels),
            )
        )
    if network["told_as"]:
        word = labels.t("figures.combined.reports.word", count=_range(reports["by_their_word"], labels),
                        said=_range(reports["told_here"], labels))  # fmt: skip
    else:
        word = labels.t("figures.combined.reports.no_told_as")
    named = labels.t("figures.combined.reports.named", n=reports["named_at_two"]) if reports["named_at_two"] else ""
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in labels.t("figures.combined.intro").splitlines() if line.strip()),
        *(
            [f"<p><strong>{html.escape(labels.t('figures.provisional'))}</strong></p>"]
            if network["provisional"]
            else []
        ),
        f"<p><strong>{html.escape(kept)}</strong></p>",
        f"<ul>{''.join(f'<li>{html.escape(line)}</li>' for line in [*why, word, *([named] if named else [])])}</ul>",
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


def _provisional(labels: Labels) -> list[str]:
    return [f"<p><strong>{html.escape(labels.t('figures.provisional'))}</strong></p>"]


def _range(found: Mapping[str, Any], labels: Labels) -> str:
    """A network figure in words: under 5 stays under 5 however it was reached."""
    low, high = found["low"], found["high"]
    if high is None:
        return labels.t("figures.combined.at_least", low=low)
    if high < SMALL:
        return labels.t("figures.combined.under", small=SMALL)
    if low == high:
        return str(low)
    return labels.t("figures.combined.range", low=max(low, 0), high=high)


# ---------------------------------------------------------------- the commands
def quarter_figures(responses: Responses, tallies: Mapping[tuple[str, str, str], int], service: str,
                    quarter: str, out: Path, now: float | None = None) -> int:  # fmt: skip
    """Made before the quarter is over, the figures are marked provisional: they will change."""
    labels = Labels(responses)
    provisional = now is not None and quarter >= quarter_of(now)
    body = export(service, quarter, tables(tallies, quarter), labels, provisional)
    try:
        for path in write(body, labels, out):
            print(f"wrote {path}")
    except OSError as error:
        raise ConfigError(f"cannot write the figures to {out}: {error.strerror or error}") from error
    if provisional:
        print(f"{quarter} is not over: these figures are provisional and will change (marked so on the page)")
    return 0


def check_export(body: Any, name: str) -> Mapping[str, Any]:
    """A figures export as `reachable figures` writes it, or a clear refusal."""
    import jsonschema

    try:
        jsonschema.validate(body, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top"
        raise ValueError(
            f"{name} is not a figures export of version {VERSION} (at {where}: {error.message})"
        ) from error
    for table in body["tables"]:
        width = len(table["columns"])
        if len(table["totals"]) != width or any(len(row["cells"]) != width for row in table["rows"]):
            raise ValueError(f"{name}: the {table['dimension']} table's rows do not match its columns")
    return dict(body)


def combine_files(responses: Responses, paths: Sequence[Path], out: Path, matches: Sequence[Path] = (),
                  told_as: Sequence[str] = ()) -> int:  # fmt: skip
    try:
        bodies = [check_export(json.loads(path.read_text(encoding="utf-8")), path.name) for path in paths]
        pairs = [item.partition("=") for item in told_as]
        if any(not service or not answer for service, _, answer in pairs):
            raise ValueError("--told-as looks like SERVICE=ANSWER, e.g. Galop=galop")
        network = combine(
            bodies,
            [json.loads(path.read_text(encoding="utf-8")) for path in matches],
            {service: answer for service, _, answer in pairs},
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot combine these: {error}") from error
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "network.json").write_text(json.dumps(network, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "network.html").write_text(combined_page(network, Labels(responses)), encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write to {out}: {error.strerror or error}") from error
    count = _range(network["reports"], Labels(responses))
    print(f"wrote {out / 'network.json'} and {out / 'network.html'}: reports kept {count}")
    return 0
