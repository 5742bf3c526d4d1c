"""Stage 2, run: check the pool, then create, upload to and start Cognito's user import jobs,
one per import file, keeping a journal that makes `csvimport start` safe to stop and resume."""
