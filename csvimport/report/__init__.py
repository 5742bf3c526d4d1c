"""Stage 3, report: reconcile the run directory with the jobs' CloudWatch logs into one outcome
per user, and write the results, the retry source and the HTML report (`csvimport report`)."""
