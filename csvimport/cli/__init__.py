"""The ``csvimport`` command line: a thin Typer adapter over the library.

This is the only package that imports Typer. Each command turns its options into library
inputs, calls the library, and prints data on stdout; :func:`main` is the one place where
exceptions become a message on stderr and an exit status (see ``ExitStatus``).

Its rooms: ``app`` (the Typer app, the global options and their state), ``options`` (the
options several commands share), ``display`` (progress on stderr), ``runs`` (opening a run
directory for a command), the commands by stage (``build``, ``run``, ``report``,
``passes``, ``migrate``, ``sandbox``) and ``boundary`` (``main``: errors to exit statuses).
"""

# Importing a command module registers its commands on ``app``.
from csvimport.cli import build, migrate, passes, report, run, sandbox  # noqa: F401
from csvimport.cli.app import app
from csvimport.cli.boundary import main

__all__ = ["app", "main"]
