"""Run the command line and kill -9 it around its Nth journal save.

    python tests/crash_at.py [--resets STATE|--pass STEP|--build] [--signal TERM] before|after N csvimport-arguments...

A crash at a chosen step of `csvimport start`, for the kill-and-resume tests (--build: around
the build's writing of its manifest, the last step before the run directory is moved into
place; --signal TERM: send SIGTERM instead of SIGKILL, as `kill` does): "before 2"
dies after CreateUserImportJob answered but before the job id reached the journal,
"after 4" right after the journal said the upload began, and so on. With --resets the
step is the Nth line of the reset waves' journal (`resets.jsonl`) that records STATE for
a user: "--resets sending after 2" dies after the 2nd user's intent is on disk but before
their AdminResetUserPassword call; "--resets sent before 2" right after Cognito sent the
2nd user's code, before that was recorded. With --pass the step is the Nth line of a pass's
journal (``csvimport.passjournal.PassJournal``, e.g. `undo.jsonl`) that records STEP
("calling", "done"): "--pass done before 2" dies right after the 2nd call Cognito answered,
before its outcome was recorded. Nothing else of csvimport is changed: the
process is really SIGKILLed, as by `kill -9`.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from csvimport import cli
from csvimport.build import builder
from csvimport.passjournal import PassJournal
from csvimport.passwords.resets import ResetJournal
from csvimport.run.journal import Journal


def main() -> None:
    args = sys.argv[1:]
    target: Any = Journal
    name = "save"
    state: str | None = None
    if args[0] == "--resets":
        target, name, state, args = ResetJournal, "record", args[1], args[2:]
    elif args[0] == "--pass":
        target, name, state, args = PassJournal, "record", args[1], args[2:]
    elif args[0] == "--build":
        target, name, args = builder, "_write_manifest", args[1:]
    kill_with = signal.SIGKILL
    if args[0] == "--signal":
        kill_with, args = signal.Signals["SIG" + args[1]], args[2:]
    when, number, argv = args[0], int(args[1]), args[2:]
    original = getattr(target, name)
    saves = 0

    def save_then_maybe_die(self: Any, *a: Any, **kw: Any) -> None:
        nonlocal saves
        counts = state is None or (a[1] if len(a) > 1 else kw.get("state", kw.get("step"))) == state
        saves += counts
        if counts and when == "before" and saves == number:
            os.kill(os.getpid(), kill_with)
        original(self, *a, **kw)
        if counts and when == "after" and saves == number:
            os.kill(os.getpid(), kill_with)

    setattr(target, name, save_then_maybe_die)
    cli.main(argv)


if __name__ == "__main__":
    main()
