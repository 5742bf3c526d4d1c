"""Stage 1, build: read the legacy source, map and validate each user, and write the run
directory's import files (one per slice of the source), rejects and manifest (`csvimport build`)."""
