"""The HTML run report in a real headless Chromium: hostile values stay text, nothing runs
but the page's own script, nothing is fetched, and the filter works with and without
JavaScript.

Debian's chromium is used as it is (CI installs it: see .ci/run); Playwright never
downloads a browser here. A screenshot of the page lands in $CSVIMPORT_TEST_OUTPUT
(default /tmp/csvimport-test-output) for a person to look at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    sync_playwright,
)

from csvimport.assess.page import write_assessment
from csvimport.assess.profile import assess_source
from csvimport.build.sources.base import SourceSpec
from csvimport.report.render import write_report

from .helpers import HOSTILE, SHOWN, assess_legacy, hostile_report, large_report, verify_summaries

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(os.environ.get("CSVIMPORT_TEST_OUTPUT", "/tmp/csvimport-test-output"))
ATTENTION_ROWS = 40  # hostile_report()'s users who need attention
ROWS = "#attention-table tbody tr"
LOAD_SECONDS = 5  # a report of millions of users is usable in a browser within this

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (.ci/run does)",
)


@dataclass
class Seen:
    """Everything a page did that the report must not make it do."""

    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # errors and warnings, CSP's included
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Tests run as root in CI, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=[False, True], ids=["masked", "show-pii"])
def report_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "report-pii.html" if request.param else "report.html"
    path = tmp_path_factory.mktemp("report") / name
    write_report(hostile_report(), path, show_pii=request.param)
    return path.as_uri()


def _open(
    browser: Browser,
    url: str,
    *,
    javascript: bool = True,
    wait_until: Literal["load", "domcontentloaded"] = "load",
) -> tuple[Page, Seen]:
    context: BrowserContext = browser.new_context(java_script_enabled=javascript)
    seen = Seen()

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            seen.console.append(f"{message.type}: {message.text}")

    def on_request(request: Request) -> None:
        seen.requests.append(request.url)

    context.on("dialog", on_dialog)
    context.on("console", on_console)
    context.on("request", on_request)
    page = context.new_page()
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.goto(url, wait_until=wait_until)
    return page, seen


@pytest.fixture
def page(browser: Browser, report_url: str) -> Iterator[tuple[Page, Seen]]:
    opened = _open(browser, report_url)
    yield opened
    opened[0].context.close()


def test_report_opens_without_dialog_error_or_any_request(
    page: tuple[Page, Seen], report_url: str
) -> None:
    shown, seen = page
    assert seen.dialogs == []
    assert seen.console == []  # a CSP refusal would be logged here as an error
    assert seen.page_errors == []
    assert seen.requests == [report_url]
    assert shown.locator("img, iframe, object, embed").count() == 0
    assert shown.locator("script").count() == 1
    assert shown.locator("#filter").is_visible()  # the page's own script ran under the CSP
    OUTPUT.mkdir(parents=True, exist_ok=True)
    name = report_url.rpartition("/")[2].removesuffix(".html")
    shown.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_hostile_values_are_shown_as_text(page: tuple[Page, Seen]) -> None:
    shown, _ = page
    text = shown.locator("body").inner_text()
    for name, value in SHOWN.items():
        assert value in text, name
    assert HOSTILE["long"] not in shown.locator("#attention-table").inner_text()
    legacy_ids = shown.locator(f"{ROWS} td:nth-child(2)").all_inner_texts()
    assert set(legacy_ids) >= set(SHOWN.values())


def test_filter_hides_rows_that_do_not_match(page: tuple[Page, Seen]) -> None:
    shown, seen = page
    visible = shown.locator(f"{ROWS}:visible")
    assert visible.count() == ATTENTION_ROWS
    assert shown.locator("#filter-count").inner_text() == "40 of 40 shown"

    shown.locator("#filter-text").fill("L-00099")
    assert visible.count() == 1
    assert shown.locator("#filter-count").inner_text() == "1 of 40 shown"

    shown.locator("#filter-text").fill("")
    shown.locator("#filter-outcome").select_option("rejected")
    assert visible.count() == 12
    assert set(shown.locator(f"{ROWS}:visible td:nth-child(6)").all_inner_texts()) == {"rejected"}

    shown.locator("#filter-text").fill(HOSTILE["script"])  # matches as text, runs nothing
    assert 0 < visible.count() < 12
    assert seen.dialogs == [] and seen.page_errors == []

    shown.emulate_media(media="print")  # paper gets the whole list and no filter controls
    assert visible.count() == ATTENTION_ROWS
    assert not shown.locator("#filter").is_visible()


def test_without_javascript_the_table_is_complete_and_the_filter_hidden(
    browser: Browser, report_url: str
) -> None:
    shown, seen = _open(browser, report_url, javascript=False)
    try:
        assert shown.locator(f"{ROWS}:visible").count() == ATTENTION_ROWS
        assert not shown.locator("#filter").is_visible()
        assert shown.locator("#headline").inner_text() == (
            "960 of 1,000 users are in Cognito; 40 need attention"
        )
        assert seen.console == [] and seen.page_errors == [] and seen.dialogs == []
        assert seen.requests == [report_url]
    finally:
        shown.context.close()


@pytest.fixture(scope="module")
def large_report_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "report.html"
    write_report(large_report(2_000_000), path)
    return path


def test_a_report_of_two_million_users_opens_quickly_with_the_runs_counts(
    browser: Browser, large_report_path: Path
) -> None:
    # Bounded tables keep the page small whatever the run's size (the same 5,000 + 5,000
    # listed users as for 2,000 users: test_report_html checks that).
    assert large_report_path.stat().st_size < 5_000_000
    url = large_report_path.as_uri()
    started = time.monotonic()
    shown, seen = _open(browser, url, wait_until="domcontentloaded")
    try:
        # The filter is shown by the page's script once it has indexed the rows: usable.
        shown.locator("#filter").wait_for(state="visible", timeout=LOAD_SECONDS * 1_000)
        took = time.monotonic() - started
        # Generous for a 2-core machine shared with other tests; it takes about a second.
        assert took < LOAD_SECONDS, f"the page took {took:.1f} s to become usable"
        assert shown.locator("#headline").inner_text() == (
            "1,700,000 of 2,000,000 users are in Cognito; 300,000 need attention"
        )
        assert shown.locator("#attention h2").inner_text() == "Users who need attention (300,000)"
        assert (
            shown.locator("#attention-more")
            .inner_text()
            .startswith(
                "Showing the first 5,000 of 300,000; all of them are in results.jsonl and "
                "failed-users.csv"
            )
        )
        assert shown.locator("#duplicates").inner_text() == "Duplicates (30,000)"
        options = shown.locator("#filter-outcome option").all_inner_texts()
        assert options == ["all", "rejected (20,000)", "duplicate (30,000)", "skipped (100,000)",
                           "failed (120,000)", "not processed (30,000)"]  # fmt: skip

        visible = shown.locator(f"{ROWS}:visible")
        assert shown.locator("#filter-count").inner_text() == "5,000 of 5,000 shown"
        shown.locator("#filter-outcome").select_option("failed")
        assert shown.locator("#filter-count").inner_text() == "2,000 of 5,000 shown"
        kept = f"{ROWS}:not([hidden])"
        assert shown.locator(kept).count() == 2_000
        assert set(shown.locator(f"{kept} td:nth-child(6)").all_text_contents()) == {"failed"}
        shown.locator("#filter-outcome").select_option("")
        shown.locator("#filter-text").fill("L-00004")
        assert shown.locator("#filter-count").inner_text() == "1 of 5,000 shown"
        # The list is laid out once scrolled near (.long): then the one row left is seen.
        shown.locator("#attention-table").scroll_into_view_if_needed()
        shown.evaluate(
            "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )
        assert visible.count() == 1
        assert visible.locator("td:nth-child(2)").inner_text() == "L-00004"
        assert seen.console == [] and seen.page_errors == [] and seen.dialogs == []
        assert seen.requests == [url]
    finally:
        shown.context.close()


def test_the_adoption_chart_shows_one_point_per_verify_run(
    browser: Browser, tmp_path: Path
) -> None:
    points = verify_summaries(tmp_path, [0, 120, 412])
    path = tmp_path / "report.html"
    write_report(replace(hostile_report(), adoption=points), path)
    shown, seen = _open(browser, path.as_uri())
    try:
        assert seen.console == [] and seen.page_errors == [] and seen.requests == [path.as_uri()]
        chart = shown.locator("#adoption svg")
        assert chart.is_visible()
        assert chart.get_attribute("aria-label") == "Adoption over the verify runs"
        # pygal draws a dot per value: one per verify run on each of the four lines
        dots = [chart.locator(f"g.serie-{n} circle.dot").count() for n in range(5)]
        assert dots == [3, 3, 3, 3, 0]
        legend = chart.locator(".legends").text_content() or ""
        assert "completed their reset" in legend and "still waiting" in legend
        assert shown.locator("#adoption-table tbody tr").count() == 3
        assert shown.locator("#adoption-line").inner_text() == (
            "412 of 1,000 users who had to reset their password have done so (41%); 20 of "
            "200 users left to move at their first sign-in have signed in (10%) as of "
            "2026-11-03."
        )
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shown.locator("#adoption").screenshot(path=str(OUTPUT / "adoption.png"))
    finally:
        shown.context.close()


# --- the assessment page (csvimport assess) --------------------------------------------------


@pytest.fixture(scope="module")
def assessment_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    folder = tmp_path_factory.mktemp("assessment")
    secret = assess_legacy(folder / "legacy.csv")
    found = assess_source(SourceSpec(str(folder / "legacy.csv")))
    write_assessment(found, folder / "out")
    return (folder / "out" / "assessment.html").as_uri(), secret


@pytest.fixture
def assessment(
    browser: Browser, assessment_page: tuple[str, list[str]]
) -> Iterator[tuple[Page, Seen, list[str]]]:
    url, secret = assessment_page
    shown, seen = _open(browser, url)
    yield shown, seen, secret
    shown.context.close()


def test_assessment_page_renders_its_charts_without_requests_or_scripts(
    assessment: tuple[Page, Seen, list[str]], assessment_page: tuple[str, list[str]]
) -> None:
    shown, seen, _ = assessment
    assert (seen.dialogs, seen.console, seen.page_errors) == ([], [], [])
    assert seen.requests == [assessment_page[0]]
    assert shown.locator("script").count() == 0
    assert shown.locator("#headline").inner_text() == "60 users, 6 columns"
    for chart in ("fill-chart", "scheme-chart", "duplicates-chart"):
        svg = shown.locator(f"#{chart} svg")
        assert svg.count() == 1 and svg.is_visible(), chart
        box = svg.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 150, chart
    census = shown.locator("#census").inner_text()
    assert "imported as it is\t24\t40.0%" in census  # bcrypt and pbkdf2_sha256
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shown.screenshot(path=str(OUTPUT / "assessment.png"), full_page=True)


def test_assessment_page_shows_no_username_email_phone_or_hash_unmasked(
    assessment: tuple[Page, Seen, list[str]],
) -> None:
    shown, _, secret = assessment
    text, html = shown.locator("body").inner_text(), shown.content()
    leaked = sorted({value for value in secret if value in text or value in html})
    assert leaked == []
    assert "C…" not in text  # masked usernames keep two letters: "Cu…3"
    assert "Cu…" in text and "cu…" in text  # the case-only examples, masked
    kinds = shown.locator("#columns-table tbody tr").nth(4).inner_text()
    assert "phone 40" in kinds and "GB 40" in kinds  # E.164 numbers are phones, not integers
