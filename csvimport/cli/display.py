"""What commands draw on stderr while they work: progress bars for reading a source, for
import jobs and for paced passes, and the follow-ups summary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from csvimport.run.jobevents import Event, EventKind, JobEnded, JobProgress
from csvimport.run.jobstatus import explain_end


@contextmanager
def rows_read(what: str) -> Iterator[Callable[[int], None]]:
    """A progress line on stderr (a terminal only) counting the source rows read."""
    with Progress(
        TextColumn(what),
        BarColumn(),
        TextColumn("{task.completed:,} rows read"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(what, total=None)
        yield lambda rows: bar.advance(task, rows)


class RateColumn(ProgressColumn):
    """Users processed per second, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} users/s" if task.speed else "")


class JobDisplay:
    """Shows an importer's events on stderr: a line per note, a bar per running job."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = str(run_dir)
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} users"),
            TextColumn("{task.fields[status]}"),
            RateColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> JobDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, JobProgress):
            key = event.attempt.job_id or event.chunk.file
            if key not in self.tasks:
                self.tasks[key] = self.bar.add_task(
                    event.chunk.file, total=event.chunk.rows, status=""
                )
            self.bar.update(self.tasks[key], completed=event.processed, status=event.describe())
            return
        prefix = "warning: " if event.kind is EventKind.WARNING else ""
        self.line(prefix + event.describe())
        if isinstance(event, JobEnded):
            _, hint = explain_end(event.attempt)
            if hint:
                self.line("  " + hint)

    def line(self, text: str) -> None:
        """One message line, above the bars, never re-wrapped, with the run's real path."""
        text = text.replace("RUN_DIR", self.run_dir)
        self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def pass_bar(name: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (a terminal only) for a pass of ``total`` calls; yields
    the ``on_progress(done, total)`` callback the pass reports to."""
    with Progress(TextColumn(name), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,}"), RateColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True,
                  disable=not sys.stderr.isatty()) as bar:  # fmt: skip
        task = bar.add_task(name, total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done)

        yield advance


def followups_summary(counts: dict[str, Any], path: Path, echo: Callable[[str], None]) -> None:
    """What the build listed for `csvimport followups`, and the roles no group takes."""
    memberships = counts["memberships"]
    echo(f"  For `csvimport followups` ({path}): {sum(memberships.values()):,} memberships in "
         f"{len(memberships):,} groups, {counts['disabled']:,} users to disable"
         + (f" ({counts['deferred']:,} users deferred: done when they are in the pool)"
            if counts["deferred"] else "") + ".")  # fmt: skip
    unmapped = counts["unmapped_roles"]
    if unmapped:
        shown = ", ".join(f"{role!r} ({n:,})" for role, n in list(unmapped.items())[:10])
        echo(f"  Legacy roles [groups.names] does not name (those users get no group for "
             f"them): {shown}{' ...' if len(unmapped) > 10 else ''}.")  # fmt: skip
