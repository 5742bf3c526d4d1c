"""The upload: stream a chunk's import file to its job's presigned URL (a PUT to S3).

``CreateUserImportJob`` answers with a presigned URL; the file goes there whole, with
server-side encryption asked for (the header the URL is signed with), before
``StartUserImportJob``. What may pass (a lost connection, 5xx, 408, 429) is retried with
botocore's schedule of waits, as many times as any AWS call (``csvimport.retry``); an
expired URL raises :class:`UploadUrlExpired`, for the caller to replace the job.

The URL is a secret: it appears in no message or exception raised here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from csvimport.errors import ServiceError
from csvimport.retry import Backoff

# The header Cognito's presigned URL is signed with: S3 refuses a PUT without it (facts §4).
SSE_HEADER = "x-amz-server-side-encryption"
SSE_VALUE = "aws:kms"
# GUESS: how an expired presigned URL answers (S3's usual 403 AccessDenied wording).
URL_EXPIRED = re.compile(r"request has expired|expired", re.IGNORECASE)


class UploadUrlExpired(Exception):
    """The presigned URL is no longer valid: the job must be replaced by a new one."""


UPLOAD_CONNECT_TIMEOUT = 10.0
UPLOAD_READ_TIMEOUT = 600.0  # a 100 MB file on a slow link; S3 answers after the body


def upload_file(
    session: requests.Session,
    url: str,
    path: Path,
    *,
    backoff: Backoff,
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """PUT ``path`` to a presigned URL, streamed; retry what may pass, ``attempts`` tries
    in all (the bound of every AWS call: ``csvimport.retry.max_attempts``).

    The URL is a secret: it appears in no message or exception raised here (requests'
    own exceptions name it, so they are never passed on).
    """
    host = urlsplit(url).netloc
    size = path.stat().st_size
    delays = backoff.delays(attempts)
    while True:
        try:
            with path.open("rb") as body:
                response = session.put(
                    url,
                    data=body,
                    headers={SSE_HEADER: SSE_VALUE, "Content-Length": str(size)},
                    timeout=(UPLOAD_CONNECT_TIMEOUT, UPLOAD_READ_TIMEOUT),
                )
        except requests.RequestException as exc:
            problem = f"the connection to {host} failed ({type(exc).__name__})"
        else:
            if response.status_code == 200:
                return
            code = _xml_field(response.text, "Code")
            message = _xml_field(response.text, "Message")
            problem = f"{host} answered HTTP {response.status_code} {code}: {message}".rstrip()
            if response.status_code == 403 and URL_EXPIRED.search(message):
                raise UploadUrlExpired(problem)
            if response.status_code < 500 and response.status_code not in (408, 429):
                raise ServiceError(
                    f"uploading {path.name} was refused: {problem}",
                    hint="The presigned URL was rejected; run `csvimport start RUN_DIR` again "
                    "to upload through a new import job. If it happens again, check the "
                    "clock of this machine and any proxy between it and AWS.",
                )
        delay = next(delays, None)
        if delay is None:
            raise ServiceError(
                f"uploading {path.name} failed after {attempts} tries: {problem}",
                hint="Check the network (and any proxy), then run `csvimport start RUN_DIR` "
                "again: it goes on where it stopped.",
            )
        sleep(delay)


def _xml_field(text: str, name: str) -> str:
    match = re.search(rf"<{name}>(.*?)</{name}>", text or "", re.DOTALL)
    return match.group(1).strip() if match else ""
