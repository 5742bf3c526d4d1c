"""Opening a run directory for a command: its warnings on stderr, its journal under lock,
and an importer showing its events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from csvimport.cli.app import CliState
from csvimport.cli.display import JobDisplay
from csvimport.run.jobs import Importer
from csvimport.run.journal import Journal, JournalLock
from csvimport.rundir import RunDir

INTERRUPTED_HINT = (
    "The journal is saved. A started job keeps running in Cognito: `csvimport status "
    "{run} --wait` follows it, `csvimport start {run}` goes on where this stopped, "
    "`csvimport stop {run}` stops the job."
)


def open_run(run_dir: Path) -> RunDir:
    """Open a finished run and say on stderr what its opening found worth a warning."""
    run = RunDir.open(run_dir)
    for warning in run.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return run


@contextmanager
def open_importer(
    state: CliState, run_dir: Path, *, command: str, read_only: bool = False
) -> Iterator[tuple[Importer, JournalLock]]:
    """Open a run, its journal and an importer showing its events on stderr.

    The journal is read-only when asked, or when another process holds the run (then
    ``importer.journal.read_only`` tells). Ctrl-C prints what state the run is left in.
    """
    run = open_run(run_dir)
    lock = JournalLock(run, command=command)
    journal = Journal.load(run)
    if read_only or not lock.try_acquire():
        journal.read_only = True
    with JobDisplay(run_dir) as display:
        importer = Importer(run, journal, state.aws.client("cognito-idp"), on_event=display)
        try:
            yield importer, lock
        except KeyboardInterrupt:
            display.bar.stop()
            typer.echo(INTERRUPTED_HINT.format(run=run_dir), err=True)
            raise
        finally:
            lock.release()
