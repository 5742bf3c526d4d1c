"""One local Lambda function at work: the process the sandbox runs a handler in.

Started by ``lambdas.LocalFunctions`` as ``python lambda_worker.py SPEC`` (by path, so the
csvimport package is never imported here). SPEC is JSON: the handler "module:function",
the sandbox's ``sys.path`` (so the module imports as it would in the sandbox), and the
function's name, ARN and region. The environment is the function's own, set by the sandbox.

Like a Lambda execution environment it imports the handler once (init), then answers
invocations one at a time while the module's state (connections, caches) lives on. The
protocol is one JSON line each way on stdin/stdout: the sandbox sends
``{"event": ..., "deadline": epoch seconds}``, the worker answers ``{"result": ...}`` or
``{"errorType": ..., "errorMessage": ...}``. Anything the handler prints goes to stderr, as a
function's prints go to its log.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any, TextIO


class Context:
    """The parts of Lambda's Python context object a handler commonly reads."""

    def __init__(self, spec: dict[str, Any], deadline: float) -> None:
        self.function_name: str = spec["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = spec["arn"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "sandbox"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _load(handler: str) -> Callable[[Any, Context], Any]:
    module_name, _, function_name = handler.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    if not callable(function):
        raise TypeError(f"{handler} is not a function")
    return function  # type: ignore[no-any-return]


def _answer(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _error(exc: BaseException) -> dict[str, str]:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path[:] = spec["sys_path"]
    # The protocol keeps the real stdout; the handler's prints go to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        function: Callable[[Any, Context], Any] | None = _load(spec["handler"])
        init_error: dict[str, str] | None = None
    except Exception as exc:  # Lambda reports it on each invocation (Runtime.ImportModuleError)
        function = None
        init_error = {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import {spec['handler']}: {exc}",
        }
    _answer(channel, {"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        if function is None:
            _answer(channel, init_error or {})
            continue
        try:
            result = function(request["event"], Context(spec, request["deadline"]))
            _answer(channel, {"result": json.loads(json.dumps(result))})
        except Exception as exc:
            # As Lambda logs a function error: type, message and traceback, on the log.
            print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            _answer(channel, _error(exc))


if __name__ == "__main__":
    main()
