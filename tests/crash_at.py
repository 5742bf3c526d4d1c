"""Run the csvimport command line and kill -9 it around its Nth journal save.

    python tests/crash_at.py before|after N csvimport-arguments...

A crash at a chosen step of `csvimport start`, for the kill-and-resume tests: "before 2"
dies after CreateUserImportJob answered but before the job id reached the journal,
"after 4" right after the journal said the upload began, and so on. Nothing else of
csvimport is changed: the process is really SIGKILLed, as by `kill -9`.
"""

from __future__ import annotations

import os
import signal
import sys

from csvimport import cli
from csvimport.journal import Journal


def main() -> None:
    when, number, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    save = Journal.save
    saves = 0

    def save_then_maybe_die(self: Journal) -> None:
        nonlocal saves
        saves += 1
        if when == "before" and saves == number:
            os.kill(os.getpid(), signal.SIGKILL)
        save(self)
        if when == "after" and saves == number:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.save = save_then_maybe_die  # type: ignore[method-assign]
    cli.main(argv)


if __name__ == "__main__":
    main()
