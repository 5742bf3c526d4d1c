"""Stage 5, migrate: the user-migration Lambda function that moves each deferred legacy user
into Cognito at their first sign-in, checking the password against the legacy hash
(`csvimport.migrate.handler.handler`), and its lookup file (`csvimport migration-lookup`)."""
