"""The HTML run report: masking, escaping of hostile values, what the page says, the file."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from csvimport.errors import ConfigError
from csvimport.outcomes import (
    Reconciliation,
    RunReport,
)
from csvimport.redact import mask_email, mask_phone, mask_username
from csvimport.report.render import (
    TABLE_ROWS,
    headline,
    render_report,
    write_report,
)
from csvimport.resources import templates_dir

from .helpers import (
    HOSTILE,
    LONG,
    PLAIN,
    PLAIN_EMAIL,
    PLAIN_PHONE,
    SHOWN,
    hostile_report,
    large_report,
)


class _Page(HTMLParser):
    """What an HTML parser sees: every attribute, and the text of <script> and <style>."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: list[tuple[str, str, str]] = []  # tag, name, value
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self._in = tag if tag in self.raw else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.raw[self._in].append(data)


@pytest.fixture(scope="module")
def masked() -> str:
    return render_report(hostile_report())


@pytest.fixture(scope="module")
def unmasked() -> str:
    return render_report(hostile_report(), show_pii=True)


@pytest.mark.parametrize(
    ("value", "masked_value"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("a@b.co.uk", "a***@b***.uk"),
        ("@example.com", "***@e***.com"),
        ("x@localhost", "x***@l***"),
        ("x@host.<script>", "x***@h***"),  # not a top-level domain: not shown
        ("not-an-email", "no…l"),
        ("", ""),
    ],
)
def test_mask_email_keeps_first_letters_and_top_level_domain(value: str, masked_value: str) -> None:
    assert mask_email(value) == masked_value


@pytest.mark.parametrize(
    ("value", "masked_value"),
    [
        ("+14155551212", "+1******1212"),
        ("+447911123456", "+4*******3456"),
        ("+1234567", "+1******"),  # too short to show the last four
        ("4155551212", "******1212"),
        ("", ""),
    ],
)
def test_mask_phone_keeps_length_country_digit_and_last_four(value: str, masked_value: str) -> None:
    assert mask_phone(value) == masked_value
    assert len(mask_phone(value)) == len(value)


@pytest.mark.parametrize(
    ("value", "masked_value"),
    [
        ("jdoe1987", "jd…7"),
        ("john.doe@example.com", "jo…m"),
        ("alice", "a…e"),
        ("abcd", "a…d"),
        ("bob", "b…"),
        ("x", "x…"),
        ("", ""),
    ],
)
def test_mask_username_never_shows_a_name_longer_than_three(value: str, masked_value: str) -> None:
    assert mask_username(value) == masked_value


@pytest.mark.parametrize(
    ("source_rows", "imported", "expected"),
    [
        (50_000, 48_210, "48,210 of 50,000 users are in Cognito; 1,790 need attention"),
        (1_000, 999, "999 of 1,000 users are in Cognito; 1 needs attention"),
        (1, 0, "0 of 1 user is in Cognito; 1 needs attention"),
        (50_000, 50_000, "All 50,000 users are in Cognito."),
        (0, 0, "The source had no users."),
    ],
)
def test_headline_counts_users_in_cognito_and_those_needing_attention(
    source_rows: int, imported: int, expected: str
) -> None:
    rec = Reconciliation(source_rows, 0, 0, source_rows, imported, source_rows - imported, 0, 0)
    assert headline(rec) == expected


def test_page_opens_with_the_headline_and_the_reconciliation(masked: str) -> None:
    assert masked.startswith("<!DOCTYPE html>\n")
    assert (
        '<p class="headline" id="headline">960 of 1,000 users are in Cognito; 40 need attention</p>'
        in masked
    )
    sums = masked[masked.index('id="reconciliation"') : masked.index('id="charts"')]
    for label, count in [("rejected", "12"), ("duplicates", "3"), ("written", "985"), ("imported", "960"),
                         ("skipped", "10"), ("failed", "13"), ("not processed", "2")]:  # fmt: skip
        assert f'<td class="part">{label}</td><td class="n">{count}</td>' in sums
    assert "Source rows = rejected + duplicates + written" in sums
    assert "Written = imported + skipped + failed + not processed" in sums
    assert sums.count("✓ adds up") == 2


def test_every_problem_and_warning_is_listed_in_the_alert_box(masked: str) -> None:
    box = masked[masked.index('id="problems"') : masked.index('id="reconciliation"')]
    assert "7 problems" in box
    assert box.count("<li>") == 2 * len(HOSTILE)
    for value in HOSTILE.values():  # whole, even the long one: problems are never cut
        assert box.count(f"<li>{escape(value)}</li>") == 2


def test_sums_that_do_not_add_up_are_flagged_even_if_no_problem_was_reported() -> None:
    report = hostile_report()
    wrong = Reconciliation(1_000, 12, 3, 980, 960, 10, 13, 2)  # 5 rows lost, 5 too many
    page = render_report(RunReport(**{**vars(report), "reconciliation": wrong, "warnings": []}))
    box = page[page.index('id="problems"') : page.index('id="reconciliation"')]
    assert "2 problems" in box
    assert "Source rows (1,000) is not rejected + duplicates + written (995)" in box
    assert "Written (980) is not imported + skipped + failed + not processed (985)" in box
    assert page.count("does not add up: the parts make") == 2


def test_no_alert_box_when_the_numbers_hold_and_nothing_was_warned() -> None:
    report = hostile_report()
    rec = RunReport(**{**vars(report), "warnings": []}).reconciliation
    clean = Reconciliation(**{**vars(rec), "problems": []})
    page = render_report(RunReport(**{**vars(report), "reconciliation": clean, "warnings": []}))
    assert 'id="problems"' not in page


def test_jobs_whose_counters_disagree_with_an_incomplete_log_are_flagged(masked: str) -> None:
    jobs = masked[masked.index('<section id="jobs">') : masked.index('id="job-reasons"')]
    rows = jobs.split("<tr")[2:]
    assert 'class=""' in rows[0] and "flag" not in rows[0]
    assert "2 min 05 s" in rows[0]
    assert 'class="problem"' in rows[1]
    assert '8<br><span class="flag">log: 7</span>' in rows[1]
    assert "incomplete: 1 line missing" in rows[1]
    assert "counters and log disagree" in rows[1]
    assert "1 h 02 min" in rows[1]


@pytest.mark.parametrize("show_pii", [False, True])
def test_hostile_values_are_escaped_text_everywhere(show_pii: bool) -> None:
    page = render_report(hostile_report(), show_pii=show_pii)
    parsed = _Page(page)
    for tag, name, value in parsed.attributes:
        assert not name.startswith("on"), (tag, name)
        assert name not in {"href", "src", "srcset", "action", "formaction"}, (tag, name)
        assert name != "style" or value == "opacity: 0", (tag, value)  # pygal's tooltip group
        assert "alert(1)" not in value, (tag, name)
    assert "<img" not in page
    assert "<script>alert" not in page
    assert len(parsed.raw["script"]) == 1
    assert "alert(1)" not in parsed.raw["script"][0]
    for css in parsed.raw["style"]:
        assert not any(v[:20] in css for v in HOSTILE.values())
    # Legacy ids, reasons and the run's own fields are never masked: each value is there,
    # escaped, and cut when long.
    for value in SHOWN.values():
        assert str(escape(value)) in page
    assert page.count(LONG) == 2  # only as a problem and a warning, which are never cut
    assert SHOWN["long"] == f"{LONG[:300]}… (9,700 more characters)"


def test_hostile_values_inside_charts_are_escaped() -> None:
    report = hostile_report()
    page = render_report(report)
    chart = page[page.index('<svg xmlns="http://www.w3.org/2000/svg" id="chart-jobs"') :]
    chart = chart[: chart.index("</svg>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in chart  # the second job's file name
    assert "<script" not in chart and "<!--" not in chart


def test_no_url_in_the_page_but_the_svg_namespaces(masked: str) -> None:
    namespace = ' xmlns="http://www.w3.org/2000/svg"'
    assert masked.count(namespace) == masked.count("<svg ") == 2
    rest = masked.replace(namespace, "").replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    assert not re.search(r"https?:|//[a-z]|url\(|@import", rest, re.I)
    assert "xlink:href" not in rest


def test_the_csp_allows_exactly_the_inline_script(masked: str) -> None:
    parsed = _Page(masked)
    csp = next(
        v for tag, name, v in parsed.attributes if tag == "meta" and v.startswith("default-src")
    )
    script = parsed.raw["script"][0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert csp == (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    assert script == (templates_dir() / "_report_filter.js").read_text(encoding="utf-8")
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval", "fetch", "XMLHttp"):
        assert forbidden not in script


def test_personal_values_are_masked_by_default(masked: str) -> None:
    assert PLAIN not in masked
    assert PLAIN_EMAIL not in masked
    assert PLAIN_PHONE not in masked
    assert "al…h" in masked
    assert "a***@e***.com" in masked
    assert "+1******1212" in masked
    assert "Cognito refused a***@e***.com" in masked  # the user's own email, inside the reason
    assert "L-00099" in masked  # legacy ids are not personal
    assert "personal data" not in masked.split('class="muted">Usernames')[0]


def test_show_pii_shows_personal_values_and_says_so(unmasked: str) -> None:
    assert "<td>alice.smith</td>" in unmasked
    assert f"<td>{PLAIN_EMAIL}</td>" in unmasked
    assert f"<td>{PLAIN_PHONE}</td>" in unmasked
    assert f"Cognito refused {PLAIN_EMAIL}" in unmasked
    assert "This copy shows personal data" in unmasked


def test_attention_table_lists_every_user_with_outcome_and_location(masked: str) -> None:
    start = masked.index('id="attention-table"')
    table = masked[start : masked.index("</table>", start)]
    assert table.count("<tr data-outcome=") == 40
    for outcome, count in [
        ("rejected", 12),
        ("duplicate", 3),
        ("skipped", 10),
        ("failed", 13),
        ("not processed", 2),
    ]:
        assert table.count(f'<tr data-outcome="{outcome}">') == count
        assert f'<option value="{outcome}">{outcome} ({count})</option>' in masked
    assert '<option value="imported">' not in masked
    assert 'id="attention-more"' not in masked
    assert '<div class="filter" id="filter" hidden>' in masked  # until the script shows it


def test_a_huge_run_shows_the_first_rows_and_counts_every_user_from_the_reconciliation() -> None:
    report = large_report(2_000_000)  # lists of the first 5,000 only, as reconcile hands them
    page = render_report(report)
    assert page.count("<tr data-outcome=") == TABLE_ROWS
    assert "<h2>Users who need attention (300,000)</h2>" in page
    assert (
        "Showing the first 5,000 of 300,000;\nall of them are in <code>results.jsonl</code> and\n"
        "<code>failed-users.csv</code> in the run directory."
    ) in page
    # The note stands before the table, not after its 5,000 rows.
    assert page.index('id="attention-more"') < page.index('id="attention-table"')
    for outcome, count in [("rejected", "20,000"), ("duplicate", "30,000"), ("skipped", "100,000"),
                           ("failed", "120,000"), ("not processed", "30,000")]:  # fmt: skip
        assert f'<option value="{outcome}">{outcome} ({count})</option>' in page
    section = page[page.index('id="duplicates"') : page.index('id="passwords"')]
    assert "Duplicates (30,000)" in section
    assert section.count("<tr>\n") == TABLE_ROWS
    assert (
        "Showing the first 5,000 of 30,000 duplicates;\nall of them are in "
        "<code>rejects.csv</code> and <code>results.jsonl</code>"
    ) in section


def test_the_page_does_not_grow_with_the_number_of_users_beyond_its_bounded_tables() -> None:
    small = render_report(large_report(2_000)).encode()
    huge = render_report(large_report(2_000_000)).encode()
    # The same 5,000 + 5,000 listed users; only numbers and the "first 5,000 of" notes differ.
    assert abs(len(huge) - len(small)) < 2_000, (len(small), len(huge))
    assert len(huge) < 3_000_000


def test_a_page_with_the_maximum_of_jobs_stays_small_enough_to_open() -> None:
    page = render_report(large_report(2_000_000, jobs=1_000))
    chart = page[page.index('id="chart-jobs"') :]
    chart = chart[: chart.index("</svg>")]
    assert chart.count("<rect") > 4 * 1_000
    assert "<desc" not in chart  # tooltip data for pygal's script, which never runs here
    assert len(page.encode()) < 5_000_000


def test_users_beyond_the_lists_are_pointed_to_the_files_when_none_is_listed() -> None:
    report = large_report(2_000)
    page = render_report(RunReport(**{**vars(report), "attention": [], "duplicates": []}))
    assert "They are listed in <code>results.jsonl</code> and <code>failed-users.csv</code>" in page
    assert "They are listed in <code>rejects.csv</code> and <code>results.jsonl</code>" in page
    assert "every user is in Cognito" not in page and "No duplicates." not in page


def test_reasons_show_explanation_fix_and_masked_examples(masked: str) -> None:
    reasons = masked[masked.index('id="job-reasons"') : masked.index('id="rejects"')]
    assert reasons.count("<tr>\n") == 3
    assert "csvimport does not know this reason yet" in reasons  # the group with no fix
    assert (
        "<bdi>L-00099</bdi> · <bdi>al…h</bdi> · <bdi>a***@e***.com</bdi> · <bdi>+1******1212</bdi>"
        in reasons
    )
    assert "(line 42 of <bdi>chunk-0001.csv</bdi>)" in reasons
    rejects = masked[masked.index('id="rejects"') : masked.index('id="duplicates"')]
    assert rejects.count("<tr>\n") == len(HOSTILE)
    assert "(source row 10)" in rejects


def test_duplicates_name_the_row_that_was_kept(masked: str) -> None:
    section = masked[masked.index('id="duplicates"') : masked.index('id="passwords"')]
    assert "Duplicates (3)" in section
    for kept in (7, 8, 9):
        assert f'<td class="n">{kept}</td>' in section


def test_password_states_are_counted_and_cannot_reset_is_flagged(masked: str) -> None:
    section = masked[masked.index('id="passwords"') : masked.index('id="attention"')]
    assert '<td>imported hash</td><td class="n">900</td>' in section
    assert '<td>must reset</td><td class="n">55</td>' in section
    assert '<tr class="problem"><td>cannot reset</td><td class="n">5</td>' in section


def test_footer_names_the_run_pool_time_and_version(masked: str) -> None:
    footer = masked[masked.index("<footer>") :]
    for label in ("Run directory", "Run id", "User pool", "Generated", "Tool"):
        assert f"<dt>{label}</dt>" in footer
    assert f"<dd><bdi>{escape(HOSTILE['script'])}</bdi></dd>" in footer


def test_rendering_is_deterministic() -> None:
    assert render_report(hostile_report()) == render_report(hostile_report())


def test_importing_the_renderer_leaves_no_legacy_import_hook() -> None:
    assert not [f for f in sys.meta_path if not hasattr(f, "find_spec")]


def test_write_report_creates_a_private_file_and_replaces_an_old_one(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old")
    path.chmod(0o644)
    assert write_report(hostile_report(), path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == render_report(hostile_report())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_write_report_into_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot write the report to"):
        write_report(hostile_report(), tmp_path / "missing" / "report.html")
    assert list(tmp_path.iterdir()) == []
