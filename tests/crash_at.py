"""Run the csvimport command line and kill -9 it around its Nth journal save.

    python tests/crash_at.py [--resets|--build] [--signal TERM] before|after N csvimport-arguments...

A crash at a chosen step of `csvimport start`, for the kill-and-resume tests (--resets: around the Nth line of the reset
waves' journal instead; --build: around the build's writing of its manifest, the last
step before the run directory is moved into place; --signal TERM: send SIGTERM instead
of SIGKILL, as `kill` does): "before 2"
dies after CreateUserImportJob answered but before the job id reached the journal,
"after 4" right after the journal said the upload began, and so on. Nothing else of
csvimport is changed: the process is really SIGKILLed, as by `kill -9`.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from csvimport import build, cli
from csvimport.journal import Journal
from csvimport.resets import ResetJournal


def main() -> None:
    args = sys.argv[1:]
    target: Any = Journal
    name = "save"
    if args[0] == "--resets":
        target, name, args = ResetJournal, "record", args[1:]
    elif args[0] == "--build":
        target, name, args = build, "_write_manifest", args[1:]
    kill_with = signal.SIGKILL
    if args[0] == "--signal":
        kill_with, args = signal.Signals["SIG" + args[1]], args[2:]
    when, number, argv = args[0], int(args[1]), args[2:]
    original = getattr(target, name)
    saves = 0

    def save_then_maybe_die(self: Any, *a: Any, **kw: Any) -> None:
        nonlocal saves
        saves += 1
        if when == "before" and saves == number:
            os.kill(os.getpid(), kill_with)
        original(self, *a, **kw)
        if when == "after" and saves == number:
            os.kill(os.getpid(), kill_with)

    setattr(target, name, save_then_maybe_die)
    cli.main(argv)


if __name__ == "__main__":
    main()
