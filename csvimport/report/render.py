"""Render a run's :class:`~csvimport.outcomes.RunReport` as one shareable HTML page.

The page is read by people who are not engineers and passed around by mail or tickets, so
it is one file that opens offline and sends nothing anywhere: its CSS, its small filter
script and its pygal charts are inline, and a Content-Security-Policy refuses every request
and every script but the one written here. Usernames, emails and phones are masked unless
the caller asks for them; legacy ids are not personal and stay whole, so that a row can be
found in the legacy system. Every value from the data goes through Jinja's autoescaping and
never into a URL, script, style or event-handler attribute.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pygal
from markupsafe import Markup

from csvimport.charts import chart_config, inline_svg
from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.legacyhash import describe
from csvimport.outcomes import (
    LISTED_USERS,
    AdoptionPoint,
    Outcome,
    Reconciliation,
    RunReport,
    UserResult,
)
from csvimport.redact import mask_email, mask_phone, mask_username
from csvimport.report.adoption import adoption_sentence
from csvimport.resources import templates_dir
from csvimport.rundir import DEFERRED, FAILED_USERS, REJECTS, RESULTS

TEMPLATE = "report.html.j2"
SCRIPT = "_report_filter.js"

# A browser shows tens of thousands of rows, but slowly, and nobody reads them there: past
# this the page lists the first ones and points at the run's files, which have them all.
TABLE_ROWS = LISTED_USERS  # what the report keeps (csvimport.report.reconcile)
# A list longer than this is laid out by the browser only when it is scrolled near (CSS
# content-visibility): two of 5,000 rows took seconds to lay out before the page could be used.
LONG_TABLE = 1_000
# Longer values (Cognito allows 2,048 characters, a legacy source anything) are cut for
# display so that one value cannot swamp a table; the files keep them whole.
CLIP_CHARS = 300

# The order and colours of the outcomes in charts: imported first, then what needs work.
OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.IMPORTED: "#2e7d32",
    Outcome.SKIPPED: "#f9a825",
    Outcome.FAILED: "#c62828",
    Outcome.NOT_PROCESSED: "#757575",
    Outcome.REJECTED: "#6a1b9a",
    Outcome.DUPLICATE: "#1565c0",
    Outcome.DEFERRED: "#00838f",
}
_JOB_OUTCOMES = (Outcome.IMPORTED, Outcome.SKIPPED, Outcome.FAILED, Outcome.NOT_PROCESSED)


def render_report(report: RunReport, *, show_pii: bool = False) -> str:
    """Return the report as a complete, self-contained HTML document.

    Usernames, emails and phones are masked unless ``show_pii`` is true; values are
    escaped either way.
    """
    script = _filter_script()
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    # A <meta> policy cannot carry frame-ancestors or report-uri (the browser logs an
    # error for them); what it can say is enough: nothing is fetched, one script runs.
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    rec = report.reconciliation
    sums = _sums(rec)
    # Every count comes from the reconciliation: report.attention and report.duplicates
    # hold only the first TABLE_ROWS users of a large run (csvimport.report.reconcile).
    counts = _outcome_counts(rec)
    template = _environment().get_template(TEMPLATE)
    return template.render(
        report=report,
        rec=rec,
        pii=_Pii(show=show_pii),
        headline=headline(rec),
        sums=sums,
        sum_problems=[s.problem for s in sums if s.problem],
        outcome_chart=_outcome_chart(rec),
        jobs_chart=_jobs_chart(report) if report.jobs else None,
        adoption_chart=_adoption_chart(report.adoption) if report.adoption else None,
        adoption_line=adoption_sentence(report.adoption[-1]) if report.adoption else None,
        job_labels=_job_labels(report),
        attention=report.attention[:TABLE_ROWS],
        attention_total=rec.need_attention,
        attention_outcomes=[(o, counts[o]) for o in Outcome if o.needs_attention],
        duplicates=report.duplicates[:TABLE_ROWS],
        attention_rows=_attention_rows(report.attention[:TABLE_ROWS], _Pii(show=show_pii)),
        duplicate_rows=_duplicate_rows(report.duplicates[:TABLE_ROWS], _Pii(show=show_pii)),
        duplicates_total=rec.duplicates,
        files={
            "results": RESULTS,
            "failed": FAILED_USERS,
            "rejects": REJECTS,
            "deferred": DEFERRED,
        },
        describe_scheme=describe,  # a legacy hash scheme in words, for the passwords section
        LONG_TABLE=LONG_TABLE,
        script=Markup(script),
        csp=csp,
    )


# The tables' rows are made here, not by a Jinja loop (a tenth of a second for 5,000
# users, a report's bounded table); every value is escaped as the template escapes it.
def _escaped(value: str) -> str:
    """``markupsafe.escape(value)`` as text, without its wrapper's cost per value."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))  # fmt: skip


def _attention_rows(users: Sequence[UserResult], pii: _Pii) -> Markup:
    e = _escaped
    return Markup("".join(
        f'<tr data-outcome="{e(u.outcome.value)}">\n'
        f'  <td class="n">{_num(u.source_row)}</td>\n'
        f"  <td>{e(_clip(u.legacy_id))}</td>\n"
        f"  <td>{e(_clip(pii.username(u.username)))}</td>\n"
        f"  <td>{e(_clip(pii.email(u.email)))}</td>\n"
        f"  <td>{e(_clip(pii.phone(u.phone)))}</td>\n"
        f'  <td class="o-{e(u.outcome.name.lower())}">{e(u.outcome.value)}</td>\n'
        f"  <td>{e(_clip(pii.reason(u)))}</td>\n"
        f"  <td>{f'<bdi>{e(_clip(u.job_id))}</bdi>' if u.job_id else '—'}"
        f"""{f'<br><span class="muted">{e(_clip(u.chunk))}</span>' if u.chunk else ''}</td>\n"""
        f'  <td class="n">{_num(u.line) if u.line is not None else "—"}</td>\n'
        "</tr>\n"
        for u in users
    ))  # fmt: skip


def _duplicate_rows(users: Sequence[UserResult], pii: _Pii) -> Markup:
    e = _escaped
    return Markup("".join(
        "<tr>\n"
        f'  <td class="n">{_num(u.source_row)}</td>\n'
        f"  <td>{e(_clip(u.legacy_id))}</td>\n"
        f"  <td>{e(_clip(pii.username(u.username)))}</td>\n"
        f"  <td>{e(_clip(pii.email(u.email)))}</td>\n"
        f"  <td>{e(_clip(pii.phone(u.phone)))}</td>\n"
        f'  <td class="n">'
        f'{_num(u.collided_with_row) if u.collided_with_row is not None else "—"}</td>\n'
        f"  <td>{e(_clip(pii.reason(u)))}</td>\n"
        "</tr>\n"
        for u in users
    ))  # fmt: skip


def write_report(report: RunReport, path: Path, *, show_pii: bool = False) -> Path:
    """Render the report into ``path`` (mode 0600, replaced whole) and return ``path``.

    Readers never see a half-written file: the page goes to a new file in the same folder,
    which then replaces ``path``. Raises ConfigError when the folder cannot be written.
    """
    page = render_report(report, show_pii=show_pii).encode("utf-8")
    try:
        with replaced_private(path, "wb") as f:
            f.write(page)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the report to {path}: {exc.strerror or exc}.",
            hint="Give a path in a folder that exists and that you may write to.",
        ) from exc
    return path


def headline(rec: Reconciliation) -> str:
    """Say in one sentence how many users made it into Cognito and how many did not."""
    if rec.source_rows == 0:
        return "The source had no users."
    # users left out of the import, whom the migration trigger creates at first sign-in
    migrating = f"{_num(rec.deferred)} migrate at first sign-in" if rec.deferred else ""
    if rec.need_attention == 0:
        if migrating:
            return (f"All {_num(rec.source_rows)} users are accounted for: "
                    f"{_num(rec.imported)} in Cognito, {migrating}.")  # fmt: skip
        return f"All {_num(rec.source_rows)} users are in Cognito."
    users = "user is" if rec.source_rows == 1 else "users are"
    need = "needs" if rec.need_attention == 1 else "need"
    return (
        f"{_num(rec.imported)} of {_num(rec.source_rows)} {users} in Cognito; "
        + (f"{migrating}; " if migrating else "")
        + f"{_num(rec.need_attention)} {need} attention"
    )


@dataclass(frozen=True)
class _Pii:
    """The template's view of personal values: masked, or as they are when ``show``."""

    show: bool

    def username(self, value: str) -> str:
        return value if self.show else mask_username(value)

    def email(self, value: str) -> str:
        return value if self.show else mask_email(value)

    def phone(self, value: str) -> str:
        return value if self.show else mask_phone(value)

    def reason(self, user: UserResult) -> str:
        """The user's reason, with their own username, email and phone masked inside it.

        Messages rarely quote values, but a legacy rule or a future Cognito message may.
        Usernames under four characters are left: masking "al" would garble "invalid".
        """
        text = user.reason
        if self.show:
            return text
        masks: list[tuple[str, Callable[[str], str]]] = [
            (user.email, mask_email),
            (user.phone, mask_phone),
            (user.username if len(user.username) >= 4 else "", mask_username),
        ]
        for value, mask in masks:
            if value and value in text:  # most reasons name none of them: no pattern
                # split and join, not re.sub: the mask is data, not a replacement template
                pieces = re.split(rf"(?<!\w){re.escape(value)}(?!\w)", text)
                text = mask(value).join(pieces)
        return text


@dataclass(frozen=True)
class _Sum:
    """One equation of the reconciliation, as the page shows it."""

    total_label: str
    total: int
    parts: list[tuple[str, int]]

    @property
    def parts_total(self) -> int:
        return sum(count for _, count in self.parts)

    @property
    def holds(self) -> bool:
        return self.total == self.parts_total

    @property
    def problem(self) -> str:
        if self.holds:
            return ""
        names = " + ".join(name for name, _ in self.parts)
        return (
            f"{self.total_label} ({_num(self.total)}) is not {names} "
            f"({_num(self.parts_total)}): they differ by "
            f"{_num(abs(self.total - self.parts_total))} users."
        )


# The sums a reconciliation must satisfy: the total field, and the fields that make it up.
_SUMS = (
    ("source_rows", ("rejected", "duplicates", "written")),
    ("written", ("imported", "skipped", "failed", "not_processed")),
)


def _sums(rec: Reconciliation) -> list[_Sum]:
    """The reconciliation's sums, checked here too: the page never trusts them blindly.

    Deferred users are a part of the source rows only in a run that has them: other
    runs' pages are unchanged."""
    return [
        _Sum(
            total.replace("_", " ").capitalize(),
            getattr(rec, total),
            [
                (part.replace("_", " "), getattr(rec, part))
                for part in (
                    *parts,
                    *(("deferred",) if total == "source_rows" and rec.deferred else ()),
                )
            ],
        )  # fmt: skip
        for total, parts in _SUMS
    ]


def _job_labels(report: RunReport) -> list[str]:
    """Name each job by its file; a file run twice (a retry) gets ``#2``, ``#3``."""
    seen: Counter[str] = Counter()
    labels = []
    for job in report.jobs:
        seen[job.chunk] += 1
        labels.append(job.chunk if seen[job.chunk] == 1 else f"{job.chunk} #{seen[job.chunk]}")
    return labels


def _outcome_counts(rec: Reconciliation) -> dict[Outcome, int]:
    """How many source users ended up in each outcome, in the charts' order."""
    return {
        Outcome.IMPORTED: rec.imported,
        Outcome.SKIPPED: rec.skipped,
        Outcome.FAILED: rec.failed,
        Outcome.NOT_PROCESSED: rec.not_processed,
        Outcome.REJECTED: rec.rejected,
        Outcome.DUPLICATE: rec.duplicates,
        **({Outcome.DEFERRED: rec.deferred} if rec.deferred else {}),
    }


def _outcome_chart(rec: Reconciliation) -> Markup:
    counts = _outcome_counts(rec)
    chart = pygal.Pie(_chart_config(list(counts)), inner_radius=0.55)
    for outcome, count in counts.items():
        chart.add(f"{outcome.value} ({_num(count)})", count)
    return inline_svg(chart, "outcomes", "Where the source users ended up")


def _jobs_chart(report: RunReport) -> Markup:
    chart = pygal.StackedBar(_chart_config(list(_JOB_OUTCOMES)))
    chart.x_labels = _job_labels(report)
    logged = {
        Outcome.IMPORTED: [job.logged_succeeded for job in report.jobs],
        Outcome.SKIPPED: [job.logged_skipped for job in report.jobs],
        Outcome.FAILED: [job.logged_failed for job in report.jobs],
        Outcome.NOT_PROCESSED: [job.not_processed for job in report.jobs],
    }
    for outcome, values in logged.items():
        chart.add(outcome.value, values)
    return inline_svg(chart, "jobs", "Users per import job, from the jobs' logs")


# The adoption chart's lines: (legend, AdoptionPoint field, colour).
ADOPTION_SERIES = (
    ("completed their reset", "completed_reset", "#2e7d32"),
    ("created by the migration function", "migrated", "#00838f"),
    ("still waiting to sign in", "waiting", "#f9a825"),
    ("disabled", "disabled", "#757575"),
)


def _adoption_chart(points: Sequence[AdoptionPoint]) -> Markup:
    """One line per kind of progress, one point per verify run, oldest first."""
    chart = pygal.Line(chart_config([colour for _, _, colour in ADOPTION_SERIES]),
                       x_label_rotation=20, show_minor_x_labels=True)  # fmt: skip
    chart.x_labels = [point.at[:16].replace("T", " ") for point in points]
    for legend, name, _ in ADOPTION_SERIES:
        chart.add(legend, [getattr(point, name) for point in points])
    return inline_svg(chart, "adoption", "Adoption over the verify runs")


def _chart_config(outcomes: Sequence[Outcome]) -> Any:
    """pygal settings for a chart of outcomes, in the outcomes' colours."""
    return chart_config([OUTCOME_COLOURS[o] for o in outcomes])


@functools.cache  # its templates are compiled once per process
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        # The report's template takes about 0.1 s to compile, a tenth of a 200,000-user
        # report: Jinja keeps the compiled code (no data) in its own private per-user
        # folder, checked against the template's source on every load.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
        # Everything is escaped, whatever the template's name: select_autoescape() would
        # not know ".html.j2" as HTML.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["clip"] = _clip
    env.filters["duration"] = _duration
    return env


@functools.cache
def _filter_script() -> str:
    """The page's one script, read as is: its hash goes into the CSP."""
    script = (templates_dir() / SCRIPT).read_text(encoding="utf-8")
    # Inlined verbatim, so it must not be able to end its own <script> element.
    if re.search(r"</script|<!--", script, re.I):
        raise AssertionError(f"{SCRIPT} must not contain '</script' or '<!--'")
    return script


def _num(value: int) -> str:
    return f"{value:,}"


def _clip(value: str) -> str:
    if len(value) <= CLIP_CHARS:
        return value
    return f"{value[:CLIP_CHARS]}… ({_num(len(value) - CLIP_CHARS)} more characters)"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
