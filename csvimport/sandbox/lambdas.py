"""Local stand-ins for Lambda functions: a pool spec names a Python handler for an ARN.

A pool spec's ``x-csvimport.lambda_functions`` maps a Lambda function ARN (the one its
``LambdaConfig`` names) to ``{"handler": "module:function", "environment": {...}}``. The
sandbox never imports the handler itself: each function runs in its own process
(``lambda_worker.py``), started on first use with the function's environment and kept warm
between invocations, as a Lambda execution environment is. A call that outlives its timeout
kills that process (the next call starts a new one), as Lambda resets a timed-out
environment.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import settings as S

WORKER = Path(__file__).with_name("lambda_worker.py")
FUNCTION_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):([0-9]{12}):function:([\w-]+)(:[\w$-]+)?"
)
HANDLER_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
SPEC_KEY = "lambda_functions"
SPEC_HELP = (
    f'"{SPEC_KEY}" must map Lambda function ARNs (arn:aws:lambda:REGION:ACCOUNT:function:NAME) '
    'to {"handler": "module:function", "environment": {"NAME": "value", ...}} '
    "(environment optional); the module must be importable by the sandbox's Python"
)


@dataclass(frozen=True)
class LocalFunction:
    """A Lambda function the sandbox runs locally."""

    arn: str
    handler: str  # "module:function"
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.arn.split(":")[6]

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


def parse_functions(value: Any) -> list[LocalFunction]:
    """Read a spec's ``lambda_functions`` mapping; ValueError (naming the form) when bad."""
    if not isinstance(value, dict):
        raise ValueError(SPEC_HELP)
    functions = []
    for arn, entry in value.items():
        if not isinstance(arn, str) or not FUNCTION_ARN.fullmatch(arn):
            raise ValueError(f"{SPEC_HELP}; {arn!r} is not a function ARN")
        if not isinstance(entry, dict) or set(entry) - {"handler", "environment"}:
            raise ValueError(f"{SPEC_HELP}; the entry of {arn} is not such an object")
        handler = entry.get("handler")
        if not isinstance(handler, str) or not HANDLER_NAME.fullmatch(handler):
            raise ValueError(f'{SPEC_HELP}; the handler of {arn} must be "module:function"')
        environment = entry.get("environment", {})
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
        ):
            raise ValueError(f"{SPEC_HELP}; the environment of {arn} must map names to strings")
        functions.append(LocalFunction(arn, handler, tuple(sorted(environment.items()))))
    return functions


@dataclass(frozen=True)
class Invocation:
    """How one call of a function ended: a result, a function error, or a timeout."""

    result: Any = None
    error_type: str = ""
    error_message: str = ""
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        return self.timed_out or bool(self.error_type)


class FunctionGone(Exception):
    """The worker process ended or could not start."""


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    buffer: bytearray = field(default_factory=bytearray)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise FunctionGone("the function's process ended") from None

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next answer, or None when none came within ``timeout`` seconds."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise FunctionGone(
                        f"Runtime exited with error: exit status {self.process.wait()}"
                    )
                self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class LocalFunctions:
    """The sandbox's local Lambda functions by ARN, each with at most one warm worker."""

    def __init__(self) -> None:
        self._functions: dict[str, LocalFunction] = {}
        self._workers: dict[str, _Worker] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def register(self, function: LocalFunction) -> None:
        """Name the handler of an ARN; a changed handler or environment restarts its worker."""
        with self._lock:
            if self._functions.get(function.arn) == function:
                return
            self._functions[function.arn] = function
            self._locks.setdefault(function.arn, threading.Lock())
            worker = self._workers.pop(function.arn, None)
        if worker is not None:
            worker.stop()

    def get(self, arn: str) -> LocalFunction | None:
        with self._lock:
            return self._functions.get(arn)

    def invoke(self, arn: str, event: dict[str, Any], timeout: float) -> Invocation:
        """Call the function once with ``event``, waiting at most ``timeout`` seconds for
        its answer (the function's start excluded); KeyError for an ARN with no handler."""
        with self._lock:
            function = self._functions[arn]
            lock = self._locks[arn]
        with lock:  # one invocation at a time per environment, as Lambda does
            try:
                worker = self._worker(function)
                worker.send({"event": event, "deadline": time.time() + timeout})
                answer = worker.receive(timeout)
            except FunctionGone as exc:
                self._drop(arn)
                return Invocation(error_type="Runtime.ExitError", error_message=str(exc))
            if answer is None:
                self._drop(arn)
                return Invocation(timed_out=True)
        if "errorType" in answer:
            return Invocation(error_type=answer["errorType"], error_message=answer["errorMessage"])
        return Invocation(result=answer.get("result"))

    def _worker(self, function: LocalFunction) -> _Worker:
        with self._lock:
            worker = self._workers.get(function.arn)
        if worker is not None and worker.process.poll() is None:
            return worker
        spec = {
            "handler": function.handler,
            "sys_path": [p or os.getcwd() for p in sys.path],
            "function_name": function.name,
            "arn": function.arn,
        }
        env = dict(os.environ)  # the sandbox's own environment, as a local run would have
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
        })  # fmt: skip
        env.update(dict(function.environment))
        process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C meant for the sandbox is not the function's
        )
        worker = _Worker(process)
        try:
            ready = worker.receive(S.FUNCTION_INIT_TIMEOUT_SECONDS)
        except FunctionGone:
            worker.stop()
            raise
        if ready is None:
            worker.stop()
            raise FunctionGone("the function did not start in time")
        with self._lock:
            self._workers[function.arn] = worker
        return worker

    def _drop(self, arn: str) -> None:
        with self._lock:
            worker = self._workers.pop(arn, None)
        if worker is not None:
            worker.stop()

    def close(self) -> None:
        """Stop every worker (the registry stays)."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()
