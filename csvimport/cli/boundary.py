"""`main`: the one error boundary. Library errors, botocore errors, usage errors, Ctrl-C
and SIGTERM become a message on stderr and an exit status; every credential is masked.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback as tb
from collections.abc import Sequence
from types import FrameType
from typing import Any

import typer

from csvimport.cli.app import PROG_NAME, CliState, app
from csvimport.errors import CsvImportError, ExitStatus, describe_aws_error
from csvimport.redact import mask_credentials


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its status; the one error boundary.

    CsvImportError and botocore errors become an "error: ..." line and a "hint: ..." line
    on stderr, and their exit status; usage errors exit 2; Ctrl-C and SIGTERM exit 130.
    --traceback adds the Python traceback before the message; the exit status stays the
    error's. Anything else is a bug: its traceback is printed and the exit status is
    INTERNAL (70). Every credential is masked.
    """
    state = CliState()
    command = typer.main.get_command(app)
    terminated = _TerminateAsInterrupt()
    try:
        with terminated:
            # Not standalone: Typer returns exit codes and raises errors instead of
            # exiting, so this function is the only place that prints them.
            result = command.main(
                args=list(argv) if argv is not None else None,
                prog_name=PROG_NAME,
                standalone_mode=False,
                obj=state,
            )
        # Typer returns the code of typer.Exit, and turns Ctrl-C into Exit(130).
        status = result if isinstance(result, int) else ExitStatus.OK
        if status == ExitStatus.INTERRUPTED:
            typer.echo(terminated.message, err=True)
    except (KeyboardInterrupt, typer.Abort):
        # Typer raises Abort for end of input at a prompt.
        typer.echo(terminated.message, err=True)
        status = ExitStatus.INTERRUPTED
    except typer.TyperException as exc:
        # Since Typer 0.26 every usage error (unknown option, missing --pool-id, bad value)
        # is a TyperException, as is a ClickException raised by Typer itself.
        status = ExitStatus.USAGE
        message = exc.format_message()
        if message.strip():  # empty when Typer already printed the help (no arguments)
            _error(message, _usage_hint(exc))
    except Exception as exc:
        error = exc if isinstance(exc, CsvImportError) else describe_aws_error(exc)
        if error is None:
            _print_traceback()
            _error(f"internal error: {exc!r}", INTERNAL_ERROR_HINT)
            status = ExitStatus.INTERNAL
        else:
            if state.traceback:
                _print_traceback()
            _error(error.message, error.hint)
            status = error.exit_status
    sys.exit(int(status))


class _TerminateAsInterrupt:
    """While active, SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt): the same
    clean-up, the same message with what state the run is left in, exit 130. A second
    SIGTERM during that clean-up is ignored, so the clean-up itself is not cut short."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: Any = None

    @property
    def message(self) -> str:
        return "interrupted" if self.signal is None else "interrupted (SIGTERM)"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            return
        self.signal = signum
        raise KeyboardInterrupt

    def __enter__(self) -> None:
        # Signal handlers can only be set from the main thread (main() may be called from
        # another one in a library use): there, SIGTERM keeps its default.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


INTERNAL_ERROR_HINT = (
    "This is a bug in csvimport, not in your data: please report it with the traceback above. "
    "Your run directory and journal are left as they were."
)


def _usage_hint(exc: typer.TyperException) -> str:
    # Usage errors carry the context of the command that failed; others do not.
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None) or PROG_NAME
    return f"Run '{command_path} --help' for the options."


def _error(message: str, hint: str | None = None) -> None:
    # Messages may quote a database URL or a driver's words: no credential gets through.
    typer.echo(f"error: {mask_credentials(message)}", err=True)
    if hint:
        typer.echo(f"hint: {mask_credentials(hint)}", err=True)


def _print_traceback() -> None:
    """Print the exception being handled, with its causes, its credentials masked."""
    typer.echo(mask_credentials(tb.format_exc()).rstrip("\n"), err=True)
