"""Read the legacy users, in chunks, from a CSV/JSONL/JSON file or a database.

The first stage of the pipeline. :mod:`~csvimport.build.sources.opener` (``open_source``) turns a
:mod:`~csvimport.build.sources.base` ``SourceSpec`` into a ``Source``: :mod:`.csvfile` (with
:mod:`.csvlayout` for the physical lines and stray quotes), :mod:`.jsonfile` (JSON Lines and
JSON arrays) or :mod:`.database` (SQLite, MySQL/MariaDB, PostgreSQL, read-only).
:mod:`.filesource` holds what the file readers share and :mod:`.frames` how values become
the text chunks. Import from the modules; this package re-exports nothing.
"""
