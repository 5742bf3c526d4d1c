"""Passes over the pool's users after an import, one Cognito call per user, paced under the
account's UserUpdate quota and journaled (``csvimport.passjournal``) so that a killed pass
resumes without repeating a call: the follow-ups the CSV cannot carry (group memberships,
disabled users) and ``undo`` for rehearsals."""
