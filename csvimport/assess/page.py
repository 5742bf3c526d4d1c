"""Write the assessment folder: ``assessment.json`` for programs, ``assessment.html`` for people.

The page looks like the migration report (the same stylesheet, ``templates/_page_style.css``)
and follows its rules: one file that opens offline and fetches nothing (a
Content-Security-Policy without any script), inline pygal charts (fill rate per column, hash
schemes, duplicates), every value autoescaped. It holds only what the assessment holds:
counts and masked examples, never a hash. A ``proposal`` (``propose``'s ``to_json()``) in
the data gets its own section.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
import pygal
from markupsafe import Markup

from csvimport.assess.model import Assessment
from csvimport.charts import chart_config, inline_svg
from csvimport.errors import ConfigError
from csvimport.files import fsync_folder, replaced_private
from csvimport.legacyhash import describe
from csvimport.resources import templates_dir

FORMAT_VERSION: Final = 1  # of assessment.json; raised when a field changes meaning
JSON_FILE: Final = "assessment.json"
PAGE_FILE: Final = "assessment.html"
TEMPLATE: Final = "assessment.html.j2"
CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
# The census buckets in the order the page shows them, with their colours.
BUCKETS: Final = {
    "importable": ("imported as it is", "#2e7d32"),
    "convertible": ("converted, then imported", "#66bb6a"),
    "at_first_sign_in": ("verified at first sign-in (migration function)", "#00838f"),
    "unknown": ("unknown scheme: must reset", "#c62828"),
    "empty": ("no hash: must reset", "#757575"),
}
PALETTE: Final = ("#1565c0", "#2e7d32", "#f9a825", "#6a1b9a", "#00838f", "#c62828",
                  "#757575", "#8d6e63", "#ad1457", "#283593")  # fmt: skip


def assessment_json(assessment: Assessment) -> dict[str, Any]:
    """What ``assessment.json`` holds: the assessment and the format's version."""
    return {"format_version": FORMAT_VERSION, **assessment.to_json()}


def render_page(data: dict[str, Any], *, generated: str | None = None) -> str:
    """Return the page for ``assessment.json``'s data (and its optional ``proposal``)."""
    generated = generated or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = data["rows"]
    roles = {column: role for role, column in data["roles"].items()
             if isinstance(column, str)}  # fmt: skip
    roles.update({c: a for c, a in data["roles"].get("attributes", {}).items()})
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            data=data,
            rows=rows,
            roles=roles,
            census=data["passwords"],
            buckets=BUCKETS,
            proposal=data.get("proposal"),
            generated=generated,
            csp=CSP,
            fill_chart=_fill_chart(data),
            scheme_chart=_scheme_chart(data["passwords"]),
            duplicates_chart=_duplicates_chart(data["duplicates"]),
            describe_scheme=describe,
        )
    )


def write_assessment(
    assessment: Assessment, folder: Path, *, proposal: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``assessment.json`` and ``assessment.html`` into ``folder`` (mode 0600, each
    replaced whole); return their paths. Raises ConfigError when the folder cannot be
    written."""
    data = assessment_json(assessment)
    page_data = {**data, "proposal": proposal} if proposal is not None else data
    texts = {
        JSON_FILE: json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        PAGE_FILE: render_page(page_data),
    }
    paths = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            with replaced_private(folder / name) as f:
                f.write(text)
            paths.append(folder / name)
        fsync_folder(folder)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the assessment to {folder}: {exc.strerror or exc}.",
            hint="Give an --out folder you may write to (it is created when missing).",
        ) from exc
    return paths


def _fill_chart(data: dict[str, Any]) -> Markup:
    columns = data["columns"]
    chart = pygal.HorizontalBar(chart_config(["#1565c0"], show_legend=False, range=(0, 100),
                                             height=max(220, 34 * len(columns) + 120)))  # fmt: skip
    chart.x_labels = [c["name"] for c in columns]
    chart.add("filled (%)", [round(100 * c["filled"] / c["rows"], 1) if c["rows"] else 0
                             for c in columns])  # fmt: skip
    return inline_svg(chart, "fill", "Share of rows with a value, per column (%)")


def _scheme_chart(census: dict[str, Any]) -> Markup | None:
    schemes = {name: n for name, n in census.get("by_scheme", {}).items() if n}
    if census.get("empty"):
        schemes["(no hash)"] = census["empty"]
    if not schemes:
        return None
    chart = pygal.Pie(chart_config(PALETTE), inner_radius=0.55)
    for name, count in sorted(schemes.items(), key=lambda s: -s[1]):
        chart.add(f"{name} ({count:,})", count)
    return inline_svg(chart, "schemes", "Password hashes by scheme")


def _duplicates_chart(duplicates: list[dict[str, Any]]) -> Markup | None:
    if not duplicates:
        return None
    chart = pygal.Bar(chart_config(PALETTE))
    chart.x_labels = [f"{d['role']} ({d['column']})" for d in duplicates]
    chart.add("repeats, exact", [d["exact"] for d in duplicates])
    chart.add("repeats, ignoring case", [d["folded"] for d in duplicates])
    chart.add("dropped by reject-all", [d["dropped_by_policy"].get("reject-all", 0)
                                        for d in duplicates])  # fmt: skip
    return inline_svg(chart, "duplicates", "Rows repeating a username, email or phone")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,  # whatever the name: select_autoescape() would not know .html.j2
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda value: f"{value:,}"
    env.filters["pct"] = lambda part, whole: f"{100 * part / whole:.1f}%" if whole else "—"
    env.filters["tojson_text"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env
