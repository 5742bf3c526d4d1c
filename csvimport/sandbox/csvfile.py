"""Read an uploaded import file in Cognito's CSV dialect (facts §2).

Values are not quoted; a comma inside a value is written ``\\,``; values are trimmed.
How any other backslash reads is undocumented: ``settings.BACKSLASH_IS_LITERAL`` is the
sandbox's choice. The sandbox reads lines on its own, never with csvimport's writer
(``csvimport.cognito_csv``): it is the oracle that writer is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import settings as S


class FileRejected(Exception):
    """The whole file is unusable: the job fails with this message."""


def split_values(line: str) -> list[str]:
    """Split one line into its values, unescaped and trimmed as Cognito trims them."""
    if "\\" not in line:
        return [part.strip() for part in line.split(",")]
    values: list[str] = []
    value: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        following = line[i + 1 : i + 2]
        if char == "\\" and (
            following == "," or (following == "\\" and not S.BACKSLASH_IS_LITERAL)
        ):
            value.append(following)  # an escaped comma (or, if not literal, backslash)
            i += 2
            continue
        if char == ",":
            values.append("".join(value).strip())
            value = []
        else:
            value.append(char)
        i += 1
    values.append("".join(value).strip())
    return values


@dataclass
class ImportFile:
    """The header and the data lines, each with the line number Cognito logs for it."""

    header: list[str]
    lines: list[tuple[int, str]]


def read_import_file(data: bytes, *, first_line_number: int) -> ImportFile:
    """Parse the bytes of an upload; raise FileRejected when Cognito would fail the job."""
    if len(data) > S.MAX_FILE_BYTES:
        raise FileRejected(S.MSG_TOO_BIG)
    if data.startswith(b"\xef\xbb\xbf"):
        raise FileRejected(S.MSG_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(S.MSG_BAD_ENCODING) from exc
    raw_lines = text.split("\n")
    if S.ACCEPT_CRLF:
        raw_lines = [line[:-1] if line.endswith("\r") else line for line in raw_lines]
    non_blank = [line for line in raw_lines if line.strip()]
    if not non_blank:
        raise FileRejected(S.MSG_EMPTY_FILE)
    header = split_values(non_blank[0])
    lines = [(first_line_number + i, line) for i, line in enumerate(non_blank[1:])]
    if len(lines) > S.MAX_USERS_PER_FILE:
        raise FileRejected(S.MSG_TOO_MANY_USERS)
    return ImportFile(header=header, lines=lines)


def check_header(header: list[str], expected: list[str], *, with_hash: bool) -> None:
    """Raise FileRejected unless the header holds exactly the pool's columns (any order)."""
    allowed = list(expected) + (["password_hash"] if with_hash else [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise FileRejected(S.MSG_HEADER_DUPLICATE.format(columns=", ".join(repeated)))
    if "password_hash" in header and not with_hash:
        raise FileRejected(S.MSG_HASH_COLUMN_WITHOUT_ALGORITHM)
    missing = [c for c in expected if c not in header]
    if missing:
        raise FileRejected(S.MSG_HEADER_MISSING.format(columns=", ".join(missing)))
    unknown = [c for c in header if c not in allowed]
    if unknown:
        raise FileRejected(S.MSG_HEADER_UNKNOWN.format(columns=", ".join(unknown)))
