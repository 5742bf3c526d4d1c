"""A tiny legacy directory behind the sandbox's UserMigration trigger, for the tests.

Named in a pool spec as "tests.migration_handler:handler". The sandbox runs it in its own
process with the environment the spec gives: MIGRATION_LEGACY_FILE names a JSON object of
legacy users by the lower-cased name they sign in with, each {"password": ..., "response":
{the trigger's answer}, "sleep": seconds (optional)}; MIGRATION_CALLS_FILE is where each
call is appended as one JSON line (the event, its password replaced by "***").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STARTED = time.time()  # module state lives on between calls of a warm function


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seen = json.loads(json.dumps(event))
    if "password" in seen["request"]:
        seen["request"]["password"] = "***"
    seen["remaining_ms"] = context.get_remaining_time_in_millis()
    seen["function_name"] = context.function_name
    seen["process"] = os.getpid()
    with Path(os.environ["MIGRATION_CALLS_FILE"]).open("a", encoding="utf-8") as calls:
        calls.write(json.dumps(seen) + "\n")
    legacy = json.loads(Path(os.environ["MIGRATION_LEGACY_FILE"]).read_text(encoding="utf-8"))
    record = legacy.get(event["userName"].lower())
    if record is None:
        raise LookupError("User does not exist in the legacy directory")
    time.sleep(record.get("sleep", 0))
    authenticating = event["triggerSource"] == "UserMigration_Authentication"
    if authenticating and event["request"]["password"] != record["password"]:
        raise PermissionError("Bad password")
    event["response"].update(record["response"])
    return event
