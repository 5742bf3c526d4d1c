"""Reading legacy users from files: CSV, JSON Lines and JSON, with real files on disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvimport.build.sources.base import (
    ROW,
    SOURCE_REASON,
    SOURCE_RULE,
    Source,
    SourceError,
    SourceSpec,
)
from csvimport.build.sources.opener import open_source
from csvimport.errors import ConfigError, ExitStatus

from .helpers import LOOKUP_HOSTILE, lookup_people, records


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def source(path: Path, **options: Any) -> Source:
    return open_source(SourceSpec(str(path), **options))


def values(src: Source) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != ROW} for record in records(src)]


# --- CSV ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    d = delimiter
    path = write(
        tmp_path, "users.csv", f"email{d}name{d}id\na@x.com{d}Ann{d}1\nb@x.com{d}Bob{d}2\n"
    )
    src = source(path)
    assert src.columns() == ["email", "name", "id"]
    assert values(src) == [
        {"email": "a@x.com", "name": "Ann", "id": "1"},
        {"email": "b@x.com", "name": "Bob", "id": "2"},
    ]


def test_csv_sniffing_keeps_commas_inside_semicolon_separated_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "name;city\nDoe, John;Paris\nRoe, Jane;Lyon, FR\n")
    assert values(source(path)) == [
        {"name": "Doe, John", "city": "Paris"},
        {"name": "Roe, Jane", "city": "Lyon, FR"},
    ]


def test_blank_lines_do_not_mislead_delimiter_sniffing(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "email;name;id\n\na@x.com;Ann;1\n  \nb@x.com;Bob;2\n")
    assert source(path).columns() == ["email", "name", "id"]


def test_csv_with_one_column_falls_back_to_comma(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "email\na@x.com\nb@x.com\n")
    assert values(source(path)) == [{"email": "a@x.com"}, {"email": "b@x.com"}]


def test_explicit_delimiter_overrides_sniffing(tmp_path: Path) -> None:
    # Sniffing would pick ",": it is on every line as often as ";".
    path = write(tmp_path, "users.csv", "a,1;b,2\nc,3;d,4\n")
    src = source(path, delimiter=";")
    assert src.columns() == ["a,1", "b,2"]
    assert values(src) == [{"a,1": "c,3", "b,2": "d,4"}]


@pytest.mark.parametrize("spelling", ["\t", "\\t", "tab"])
def test_tab_delimiter_can_be_spelled_as_typed_on_a_command_line(
    tmp_path: Path, spelling: str
) -> None:
    path = write(tmp_path, "users.tsv", "email\tname\na@x.com\tAnn, Lee\n")
    assert values(source(path, delimiter=spelling)) == [{"email": "a@x.com", "name": "Ann, Lee"}]


@pytest.mark.parametrize("delimiter", ["", ";;", '"', "\n"])
def test_unusable_delimiter_is_refused(tmp_path: Path, delimiter: str) -> None:
    path = write(tmp_path, "users.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match="Unusable delimiter") as info:
        source(path, delimiter=delimiter)
    assert info.value.hint is not None and "--delimiter" in info.value.hint


def test_csv_with_embedded_newlines_and_commas_keeps_one_record_per_user(tmp_path: Path) -> None:
    content = (
        "email,address,note\n"
        'a@x.com,"1 Main St\nApt 2, Springfield","said ""hi"""\n'
        'b@x.com,"Line one\r\nLine two",plain\n'
    )
    src = source(write(tmp_path, "users.csv", content))
    rows = records(src)
    assert [(r["email"], r[ROW]) for r in rows] == [("a@x.com", 1), ("b@x.com", 2)]
    assert rows[0]["address"] == "1 Main St\nApt 2, Springfield"
    assert rows[0]["note"] == 'said "hi"'
    assert rows[1]["address"] == "Line one\r\nLine two"


def test_bom_and_surrounding_spaces_are_stripped_from_header_names(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "\ufeffemail , first name ,id\na@x.com,Ann,1\n")
    src = source(path)
    assert src.columns() == ["email", "first name", "id"]
    assert values(src) == [{"email": "a@x.com", "first name": "Ann", "id": "1"}]


def test_null_like_text_in_csv_stays_text_and_empty_stays_empty(tmp_path: Path) -> None:
    path = write(
        tmp_path, "users.csv", "a,b,c,d,e,f\nNA,NULL,null,None,nan,\n#N/A,N/A,-nan,NaN,<NA>,\n"
    )
    rows = values(source(path))
    assert rows == [
        {"a": "NA", "b": "NULL", "c": "null", "d": "None", "e": "nan", "f": ""},
        {"a": "#N/A", "b": "N/A", "c": "-nan", "d": "NaN", "e": "<NA>", "f": ""},
    ]


def test_values_keep_their_text_exactly_including_leading_zeros_and_spaces(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "users.csv", "zip,phone,name\n01234,+4412, Ann \n")
    assert values(source(path)) == [{"zip": "01234", "phone": "+4412", "name": " Ann "}]


def garbled(src: Source) -> list[tuple[int, str, str]]:
    """(__row__, rule, reason) of every row the source garbled."""
    return [(r[ROW], r[SOURCE_RULE], r[SOURCE_REASON]) for r in records(src)
            if r.get(SOURCE_RULE)]  # fmt: skip


def test_rows_with_fewer_fields_than_the_header_are_rejects_naming_their_line(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path, "users.csv", "email,name,id\na@x.com\nb@x.com,Bob\nc@x.com,Cy,3\nd@x.com,Di,\n"
    )
    rows = records(source(path))
    assert [(r[ROW], r["email"], r["name"], r["id"]) for r in rows] == [
        (1, "a@x.com", "", ""), (2, "b@x.com", "Bob", ""), (3, "c@x.com", "Cy", "3"),
        (4, "d@x.com", "Di", ""),
    ]  # fmt: skip
    why = "(a missing ',', or a line break outside double quotes?) - fix the row and build again"
    assert garbled(source(path)) == [
        (1, "too_few_fields", f"line 2: 1 field, but the header has 3 {why}"),
        (2, "too_few_fields", f"line 3: 2 fields, but the header has 3 {why}"),
    ]


@pytest.mark.parametrize("chunk_rows", [1, 2, 50_000])
def test_a_stray_quote_is_a_reject_naming_its_lines_and_each_line_it_swallowed_is_a_row(
    tmp_path: Path, chunk_rows: int
) -> None:
    content = (
        "id,name,email\n"  # line 1
        "1,Ann,a@x.com\n"
        '2,"Bob,b@x.com\n'  # line 3: the quote opens, and swallows...
        "3,Cy,c@x.com\n"
        "\n"  # (a blank line: not a user)
        "4,Di,d@x.com\n"
        '5,"Eve",e@x.com\n'  # line 7: ...up to the quote before Eve
        "6,Fay,f@x.com\n"
    )
    src = source(write(tmp_path, "users.csv", content), chunk_rows=chunk_rows)
    rows = records(src)
    assert [(r[ROW], r["id"]) for r in rows] == [(1, "1"), (2, "2"), (3, ""), (4, ""), (5, ""),
                                                 (6, "6")]  # fmt: skip
    swallowed = "likely a user, read as part of the value a quote opened in column 'name' on "
    assert garbled(src) == [
        (2, "stray_quote", "lines 3-7: a quote opened in column 'name' on line 3 closes on line "
         "7; the 4 lines after it (likely 3 users) were read as part of this value - fix the "
         "quote and build again"),
        (3, "swallowed_line", f"line 4: {swallowed}line 3 - fix the quote and build again"),
        (4, "swallowed_line", f"line 6: {swallowed}line 3 - fix the quote and build again"),
        (5, "swallowed_line", f"line 7: {swallowed}line 3 - fix the quote and build again"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (  # the quote closes in a later column: too few fields
            'id,name,email\n1,Ann,a@x.com\n2,"Bob,b@x.com\n3,Cy,c@x.com 5\'11"\n4,Di,d@x.com\n',
            "lines 3-4: a quote opened in column 'name' on line 3 closes on line 4, leaving the "
            "row with 2 fields (the header has 3); the 1 line after it (likely 1 user) was read",
        ),
        (  # in an earlier column: too many fields, which pandas skips
            'id,name,email\n1,Ann,a@x.com\n2,Bob,"b@x.com\n3 5\'11",Cy,c@x.com\n4,Di,d@x.com\n',
            "lines 3-4: a quote opened in column 'email' on line 3 closes on line 4, leaving the "
            "row with 5 fields (the header has 3); the 1 line after it (likely 1 user) was read",
        ),
    ],
    ids=["too-few", "too-many"],
)
def test_a_quote_that_closes_lines_later_and_leaves_the_row_ragged_is_a_stray_quote(
    tmp_path: Path, content: str, reason: str
) -> None:
    src = source(write(tmp_path, "users.csv", content))
    assert [(r[ROW], r["id"]) for r in records(src)][-1] == (4, "4")
    found = garbled(src)
    assert [(row, rule) for row, rule, _ in found] == [(2, "stray_quote"), (3, "swallowed_line")]
    assert found[0][2].startswith(reason)


def test_blank_lines_are_skipped_and_not_counted_as_records(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "\nemail,id\n\na@x.com,1\n\n  \n\t\nb@x.com,2\n\n\n")
    assert [(r["email"], r[ROW]) for r in records(source(path))] == [("a@x.com", 1), ("b@x.com", 2)]
    assert garbled(source(path)) == []


def test_blank_lines_in_a_one_column_file_are_not_records(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", 'email\na@x.com\n  \n\n"  "\nb@x.com\n')
    assert [(r[ROW], r["email"]) for r in records(source(path))] == [
        (1, "a@x.com"), (2, "  "), (3, "b@x.com")
    ]  # fmt: skip


def test_a_line_of_tab_delimiters_in_a_tab_separated_file_is_a_short_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, "users.tsv", "email\tname\tid\na@x.com\tAnn\t1\n\t\n \nb@x.com\tBob\t2\n"
    )
    assert [(row, rule) for row, rule, _ in garbled(source(path))] == [(2, "too_few_fields")]
    assert garbled(source(path))[0][2].startswith("line 3: 2 fields, but the header has 3")


CP1252_TEXT = "email;name;city\njose@x.com;José Müller;Zürich\nzoe@x.com;Zoë;Liège – €\n"


def test_cp1252_file_reads_with_cp1252_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", CP1252_TEXT, encoding="cp1252")
    assert values(source(path, encoding="cp1252")) == [
        {"email": "jose@x.com", "name": "José Müller", "city": "Zürich"},
        {"email": "zoe@x.com", "name": "Zoë", "city": "Liège – €"},
    ]


def test_cp1252_file_under_utf8_is_refused_naming_encoding_offset_and_line(
    tmp_path: Path,
) -> None:
    data = CP1252_TEXT.encode("cp1252")
    path = write(tmp_path, "users.csv", data)
    offset = data.index("é".encode("cp1252"))
    with pytest.raises(SourceError) as info:
        records(source(path))
    error = info.value
    assert str(error) == (f"Cannot decode {path} as utf-8: byte e9 at offset {offset} (line 2).")
    assert error.line == 2
    assert (
        error.hint == "The file is not utf-8; pass --encoding (e.g. --encoding cp1252 or latin-1)."
    )
    assert error.exit_status == ExitStatus.USAGE


def test_undecodable_byte_far_into_a_file_fails_mid_stream_at_its_exact_offset(
    tmp_path: Path,
) -> None:
    # Valid two-byte characters throughout, one of them straddling the 1 MiB read blocks.
    header = b"email,name\n"
    line = "u@x.com,Zoë\n".encode()
    data = bytearray(header)
    while len(data) < (1 << 20) - 40:
        data += line
    data += b"x" * ((1 << 20) - 10 - len(data)) + b"@x.com,Zo\xc3\xab\n"
    assert data[(1 << 20) - 1 : (1 << 20) + 1] == b"\xc3\xab"
    data += line * 100
    bad = len(data) + len(b"bad@x.com,Zo")
    data += b"bad@x.com,Zo\xff\n" + line
    path = write(tmp_path, "users.csv", bytes(data))
    src = source(path, chunk_rows=10_000)
    chunks = src.chunks()
    first = next(chunks)
    assert len(first) == 10_000 and first["name"].iloc[0] == "Zoë"
    with pytest.raises(SourceError, match=f"byte ff at offset {bad} ") as info:
        list(chunks)
    assert info.value.line == bytes(data[:bad]).count(b"\n") + 1


# Values without quotes, delimiters or line breaks: the stray quotes are the test's own.
TOKEN = st.text(alphabet="abxyz019 .@", max_size=6)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(TOKEN, TOKEN, TOKEN), min_size=3, max_size=12),
    data=st.data(),
    chunk_rows=st.integers(1, 4),
)
def test_a_stray_quote_anywhere_leaves_every_user_counted_and_every_other_row_intact(
    tmp_path: Path, rows: list[tuple[str, str, str]], data: st.DataObject, chunk_rows: int
) -> None:
    # A quote opens at the start of a field of user i (not the first: see the next test)
    # and the next quote in the file, at the start of a field of user k, closes it.
    i = data.draw(st.integers(1, len(rows) - 2))
    k = data.draw(st.integers(i + 1, len(rows) - 1))
    opened, closed = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    lines = [list(row) for row in rows]
    lines[i][opened] = '"' + lines[i][opened]
    lines[k][closed] = '"q' + lines[k][closed]
    text = "a,b,c\n" + "".join(",".join(line) + "\n" for line in lines)
    got = records(source(write(tmp_path, "users.csv", text), delimiter=",", chunk_rows=chunk_rows))
    assert [r[ROW] for r in got] == list(range(1, len(rows) + 1))  # one row per user
    for n, (row, user) in enumerate(zip(got, rows, strict=True)):
        if i <= n <= k:
            assert row[SOURCE_RULE] == ("stray_quote" if n == i else "swallowed_line")
        else:
            assert (row["a"], row["b"], row["c"]) == user and not row.get(SOURCE_RULE)
    assert got[i][SOURCE_REASON].startswith(
        f"lines {i + 2}-{k + 2}: a quote opened in column {'abc'[opened]!r} on line {i + 2} "
        f"closes on line {k + 2}"
    )
    for n in range(i + 1, k + 1):
        assert got[n][SOURCE_REASON].startswith(f"line {n + 2}: likely a user, read as part")


def test_a_stray_quote_in_the_first_record_that_widens_it_is_refused_naming_its_lines(
    tmp_path: Path,
) -> None:
    content = 'id,name,email\n1,"Ann,a@x.com\n2,Bob,b@x.com\n"q3,Cy,c@x.com\n4,Di,d@x.com\n'
    path = write(tmp_path, "users.csv", content)
    with pytest.raises(SourceError) as info:
        source(path).columns()
    assert str(info.value) == (
        f"{path}, lines 2-4: a quote opened in column 'name' on line 2 closes on line 4, "
        "leaving the row with 4 fields (the header has 3); the 2 lines after it (likely 2 "
        "users) were read as part of this value."
    )
    assert info.value.line == 2


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_stray_quote_lines_are_counted_in_the_encoding_given(tmp_path: Path, encoding: str) -> None:
    content = 'id;name;city\n1;Zoë;Liège\n2;"José;Zürich\n3;Léa;Genève\n4;"Noé";Köln\n5;Åsa;Malmö\n'
    src = source(write(tmp_path, "users.csv", content, encoding=encoding), encoding=encoding)
    assert [(r[ROW], r["name"]) for r in records(src)][-1] == (5, "Åsa")
    assert [(row, reason[:8]) for row, _, reason in garbled(src)] == [
        (2, "lines 3-"), (3, "line 4: "), (4, "line 5: ")
    ]  # fmt: skip


def test_a_header_a_stray_quote_spreads_over_lines_is_refused_naming_them(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "users.csv", '\nid,"name,email\n1,Ann,a@x.com\n2,Bob,b@x.com\n')
    with pytest.raises(SourceError) as info:
        source(path).columns()
    assert str(info.value) == (
        f"{path}, lines 2-4: the header's column 2 spans lines, so a quote in the header "
        "likely opens without closing."
    )
    assert info.value.line == 2


def test_a_first_record_wider_than_the_header_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    # Every row may have one field too many (e.g. a trailing delimiter): refuse the file.
    path = write(tmp_path, "users.csv", "email,name\na@x.com,Ann,extra\nb@x.com,Bob\n")
    with pytest.raises(SourceError) as info:
        records(source(path, delimiter=","))
    assert str(info.value) == f"{path}, line 2 (record 1): 3 fields, but the header has 2."
    assert info.value.line == 2
    assert info.value.hint is not None
    assert info.value.hint.startswith("Check --delimiter (this file was read with ',')")


@pytest.mark.parametrize(
    ("content", "row", "line"),
    [
        ("email,name\na@x.com,Ann\nb@x.com,Bob\nc@x.com,Cy,extra\nd@x.com,Di\n", 3, 4),
        ('email,name\na@x.com,"Ann\nLee"\n\nc@x.com,Cy,extra\nd@x.com,Di\n', 2, 5),
    ],
    ids=["later-record", "after-quoted-newline-and-blank-line"],
)
def test_a_later_row_wider_than_the_header_is_a_reject_in_its_place_naming_its_line(
    tmp_path: Path, content: str, row: int, line: int
) -> None:
    src = source(write(tmp_path, "users.csv", content), delimiter=",", chunk_rows=1)
    rows = records(src)
    assert [(r[ROW], r["email"]) for r in rows][row - 1 :] == [(row, ""), (row + 1, "d@x.com")]
    assert garbled(src) == [(row, "too_many_fields", f"line {line}: 3 fields, but the header "
                             "has 2 (a ',' in a value that is not in double quotes?) - fix the "
                             "row and build again")]  # fmt: skip


def test_a_quote_that_never_closes_is_refused_naming_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", 'email,name\na@x.com,"Ann\nb@x.com,Bob\n\nc@x.com,Cy\n')
    with pytest.raises(SourceError) as info:
        records(source(path))
    assert str(info.value) == (
        f"{path}, line 2: a quote opened in column 'name' never closes: the 3 lines after it "
        "were read as part of this value."
    )
    assert info.value.line == 2
    assert info.value.hint is not None and info.value.hint.startswith("Fix the quote on line 2")


@pytest.mark.parametrize("content", ["", "\n\n", "\r\n"], ids=["zero-bytes", "blank-lines", "crlf"])
def test_empty_csv_is_refused(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "users.csv", content)
    with pytest.raises(SourceError, match="is empty: there is no header line"):
        source(path).columns()


def test_header_only_csv_has_its_columns_and_no_rows(tmp_path: Path) -> None:
    src = source(write(tmp_path, "users.csv", "email;name;id\n"))
    assert src.columns() == ["email", "name", "id"]
    assert list(src.chunks()) == []


@pytest.mark.parametrize(
    ("header", "named"),
    [("email,name,email", "'email'"), ("email, name,name ,id,id", "'name', 'id'")],
)
def test_duplicate_header_names_are_refused_naming_them(
    tmp_path: Path, header: str, named: str
) -> None:
    path = write(tmp_path, "users.csv", f"{header}\n{','.join('x' * header.count(','))}x\n")
    with pytest.raises(SourceError) as info:
        source(path).columns()
    assert str(info.value) == f"{path}: the header names a column more than once: {named}."
    with pytest.raises(SourceError):
        list(source(path).chunks())


def test_column_named_like_the_row_number_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "users.csv", "email,__row__\na@x.com,1\n")
    with pytest.raises(SourceError, match="reserves"):
        source(path).columns()


def test_csv_chunks_are_streamed_before_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    lines = ["email,name"] + [f"u{i}@x.com,U{i}" for i in range(20)] + ['late@x.com,"L']
    src = source(write(tmp_path, "users.csv", "\n".join(lines) + "\n"), chunk_rows=5)
    chunks = src.chunks()
    assert list(next(chunks)[ROW]) == [1, 2, 3, 4, 5]
    with pytest.raises(
        SourceError, match="line 22: a quote opened in column 'name' never closes[.]"
    ):
        list(chunks)


# Any text but NUL (which no CSV reader keeps) and lone surrogates (which cannot be encoded).
FIELD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(FIELD, FIELD, FIELD), max_size=12),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    chunk_rows=st.integers(1, 5),
)
def test_any_text_written_as_quoted_csv_reads_back_exactly(
    tmp_path: Path, rows: list[tuple[str, str, str]], delimiter: str, chunk_rows: int
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL)
    writer.writerow(["email", "name", "note"])
    writer.writerows(rows)
    path = write(tmp_path, "users.csv", buffer.getvalue())
    got = records(source(path, delimiter=delimiter, chunk_rows=chunk_rows))
    assert [(r["email"], r["name"], r["note"]) for r in got] == rows
    assert [r[ROW] for r in got] == list(range(1, len(rows) + 1))


# --- JSON Lines and JSON -----------------------------------------------------------------


def test_jsonl_reads_objects_skipping_blank_lines_and_rendering_values_as_text(
    tmp_path: Path,
) -> None:
    lines = [
        '{"email": "a@x.com", "age": 42, "score": 1.5, "active": true, "tags": ["x", "é"]}',
        "",
        '{"email": "b@x.com", "age": null, "active": false, "extra": {"k": 1}, "name": "NULL"}',
        "   ",
        '{"name": "Cy"}',
    ]
    src = source(write(tmp_path, "users.jsonl", "\ufeff" + "\n".join(lines) + "\n"))
    assert src.columns() == ["email", "age", "score", "active", "tags", "extra", "name"]
    rows = records(src)
    assert rows == [
        {"email": "a@x.com", "age": "42", "score": "1.5", "active": "true",
         "tags": '["x", "é"]', "extra": "", "name": "", ROW: 1},
        {"email": "b@x.com", "age": "", "score": "", "active": "false",
         "tags": "", "extra": '{"k": 1}', "name": "NULL", ROW: 2},
        {"email": "", "age": "", "score": "", "active": "", "tags": "", "extra": "",
         "name": "Cy", ROW: 3},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("[1, 2]", "line 3: a JSON array, not an object."),
        ('"just text"', "line 3: a JSON string, not an object."),
        (
            '{"email": "c@x.com",',
            "line 3: not valid JSON: Expecting property name enclosed in double quotes (column 21).",
        ),
    ],
    ids=["array", "string", "truncated"],
)
def test_jsonl_line_that_is_not_an_object_is_refused_naming_the_line(
    tmp_path: Path, bad: str, message: str
) -> None:
    content = f'{{"email": "a@x.com"}}\n\n{bad}\n{{"email": "d@x.com"}}\n'
    path = write(tmp_path, "users.jsonl", content)
    with pytest.raises(SourceError) as info:
        records(source(path))
    assert str(info.value) == f"{path}, {message}"
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("name", "content", "where", "line"),
    [
        ("users.jsonl", '{"name": "ok \\ud83d\\ude00"}\n\n{"name": "cut \\ud83d"}\n', "line 3", 3),
        ("users.jsonl", '{"name": {"nested": ["\\udc00"]}}\n', "line 1", 1),
        ("users.json", '[{"name": "ok \\ud83d\\ude00"}, {"name": "\\uDFFF x"}]', "item 2", None),
    ],
    ids=["jsonl", "jsonl-nested", "json"],
)  # fmt: skip
def test_half_a_character_in_json_is_refused_naming_where_it_is(
    tmp_path: Path, name: str, content: str, where: str, line: int | None
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(SourceError) as info:
        records(source(path))
    assert str(info.value) == (
        f"{path}, {where}: a \\u escape that is half a character (a lone surrogate, e.g. "
        "\\ud800), which no UTF-8 file can hold."
    )
    assert info.value.line == line
    assert "both halves of the surrogate pair" in (info.value.hint or "")


def test_a_whole_character_written_as_a_surrogate_pair_reads_as_that_character(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "users.jsonl", '{"name": "\\ud83d\\ude00 \\u00e9"}\n')
    assert values(source(path)) == [{"name": "😀 é"}]


@pytest.mark.parametrize(
    ("kind", "content", "where"),
    [
        ("jsonl", '{"email": "a@x.com"}\n{"email": "b@x.com", "name": "B", "email" : "c@x.com"}\n',
         "line 2"),
        ("jsonl", '{"email": "a@x.com"}\n{"\\u0065mail": "b@x.com", "email": "c@x.com"}\n',
         "line 2"),
        ("json", '[{"email": "a@x.com"}, {"email": "b@x.com", "email": "c@x.com"}]', "item 2"),
    ],
    ids=["jsonl", "jsonl-escaped", "json"],
)  # fmt: skip
def test_an_object_giving_a_key_twice_is_refused_naming_it(
    tmp_path: Path, kind: str, content: str, where: str
) -> None:
    path = write(tmp_path, f"users.{kind}", content)
    with pytest.raises(SourceError) as info:
        records(source(path))
    assert str(info.value) == (
        f"{path}, {where}: the key 'email' is given more than once, and JSON would keep only "
        "its last value."
    )


def test_jsonl_columns_come_from_the_first_thousand_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"email": f"u{i}@x.com"}) for i in range(1000)]
    lines.append(json.dumps({"email": "late@x.com", "late_key": "ignored"}))
    src = source(write(tmp_path, "users.jsonl", "\n".join(lines)), chunk_rows=400)
    assert src.columns() == ["email"]
    rows = records(src)
    assert len(rows) == 1001 and rows[-1] == {"email": "late@x.com", ROW: 1001}


def test_jsonl_without_objects_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "users.jsonl", "\n\n")
    with pytest.raises(SourceError, match="holds no JSON objects"):
        source(path).columns()


def test_json_array_of_objects_reads_the_union_of_their_keys(tmp_path: Path) -> None:
    data = [{"email": "a@x.com", "id": 1}, {"email": "b@x.com", "phone": "+1555", "id": None}]
    src = source(write(tmp_path, "users.json", json.dumps(data, indent=2)))
    assert src.columns() == ["email", "id", "phone"]
    assert records(src) == [
        {"email": "a@x.com", "id": "1", "phone": "", ROW: 1},
        {"email": "b@x.com", "id": "", "phone": "+1555", ROW: 2},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"users": []}', "holds a JSON object, not an array of objects."),
        ("42", "holds a JSON number, not an array of objects."),
        ("[]", "holds an empty array: there are no users and no columns."),
        (
            '[{"email": "a@x.com"}, "b@x.com"]',
            ": item 2 of the array is a JSON string, not an object.",
        ),
    ],
    ids=["object", "number", "empty-array", "non-object-item"],
)
def test_json_that_is_not_an_array_of_objects_is_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    path = write(tmp_path, "users.json", content)
    with pytest.raises(SourceError) as info:
        source(path).columns()
    assert str(info.value).startswith(str(path))
    assert str(info.value).endswith(message)


def test_json_lines_named_json_are_refused_with_a_hint_to_rename(tmp_path: Path) -> None:
    path = write(tmp_path, "users.json", '{"email": "a@x.com"}\n{"email": "b@x.com"}\n')
    with pytest.raises(SourceError, match="line 2 column 1: not valid JSON: Extra data") as info:
        source(path).columns()
    assert info.value.hint is not None and "name it .jsonl" in info.value.hint


# --- every file kind ---------------------------------------------------------------------


def ten_users(tmp_path: Path, kind: str) -> Path:
    users = [{"email": f"u{n}@x.com", "name": f"User {n}"} for n in range(1, 11)]
    if kind == "csv":
        text = "email,name\n" + "".join(f"{u['email']},{u['name']}\n" for u in users)
    elif kind == "jsonl":
        text = "".join(json.dumps(u) + "\n" for u in users)
    else:
        text = json.dumps(users)
    return write(tmp_path, f"users.{kind}", text)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_chunks_of_three_over_ten_rows_number_every_row_once_in_order(
    tmp_path: Path, kind: str
) -> None:
    src = source(ten_users(tmp_path, kind), chunk_rows=3)
    assert src.kind == kind
    chunks = list(src.chunks())
    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 1]
    combined = pd.concat(chunks)
    assert list(combined[ROW]) == list(range(1, 11))
    assert list(combined["email"]) == [f"u{n}@x.com" for n in range(1, 11)]
    assert combined[ROW].dtype == "int64"
    assert not combined.isna().any().any()
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in combined["name"])


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_file_fingerprint_is_stable_and_hashes_the_bytes(tmp_path: Path, kind: str) -> None:
    path = ten_users(tmp_path, kind)
    src = source(path)
    data = path.read_bytes()
    expected = {
        "kind": kind,
        "path": str(path.resolve()),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": "utf-8",
        **({"delimiter": ","} if kind == "csv" else {}),
    }
    assert src.fingerprint() == expected
    assert src.fingerprint() == expected
    path.write_bytes(data + b"\n")
    assert src.fingerprint()["sha256"] != expected["sha256"]


def test_file_source_describes_itself_by_the_path_given(tmp_path: Path) -> None:
    path = ten_users(tmp_path, "csv")
    assert source(path).describe() == str(path)


# --- looking up by key ------------------------------------------------------------------


def lookup_file(tmp_path: Path, kind: str) -> Path:
    people = lookup_people()
    if kind == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, ["email", "name"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(people)
        text = out.getvalue()
    elif kind == "jsonl":
        text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in people)
    else:
        text = json.dumps(people, ensure_ascii=False)
    return write(tmp_path, f"people.{kind}", text)


def without_row(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != ROW} for record in found]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_lookup_finds_exactly_the_records_whose_column_equals_the_value_as_chunks_gives_them(
    tmp_path: Path, kind: str
) -> None:
    src = source(lookup_file(tmp_path, kind), chunk_rows=4)
    every = records(src)
    for value in [*LOOKUP_HOSTILE, "twice@x.com"]:
        expected = without_row([r for r in every if r["email"] == value])
        assert expected, value
        assert src.lookup("email", value) == expected, value
    assert len(src.lookup("email", "twice@x.com")) == 2
    assert src.lookup("name", "User 3") == [{"email": "a_b@x.com", "name": "User 3"}]
    for missing in ["nobody@x.com", "%", "_", "a%@x.com", "", "\ud800", "a\x00b"]:
        assert src.lookup("email", missing) == [], missing


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_lookup_with_casefold_compares_both_sides_lowered(tmp_path: Path, kind: str) -> None:
    src = source(lookup_file(tmp_path, kind))
    assert src.lookup("email", "ZOË@EXÄMPLE.COM") == []
    found = src.lookup("email", "ZOË@EXÄMPLE.COM", casefold=True)
    assert [r["email"] for r in found] == ["zoë@exämple.com", "ZOË@exämple.com"]
    assert [r["email"] for r in src.lookup("email", "A_B@X.COM", casefold=True)] == ["a_b@x.com"]


def test_lookup_of_an_empty_value_finds_the_records_missing_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "people.jsonl", '{"email": "a@x.com", "name": "Ann"}\n{"name": "Bob"}\n')
    assert source(path).lookup("email", "") == [{"email": "", "name": "Bob"}]


def test_lookup_never_returns_a_record_the_csv_file_garbles(tmp_path: Path) -> None:
    content = (
        "id,name,email\n"
        "1,Ann,a@x.com\n"
        '2,"Bob,b@x.com\n'  # a stray quote, read up to the quote before Eve
        "3,Cy,c@x.com\n"
        "\n"
        "4,Di,d@x.com\n"
        '5,"Eve",e@x.com\n'
        "6,Fay,f@x.com\n"
    )
    src = source(write(tmp_path, "users.csv", content))
    rejects = [(r["id"], r["name"][:3]) for r in records(src) if r[SOURCE_RULE]]
    assert rejects == [("2", "Bob"), ("", ""), ("", ""), ("", "")]
    assert src.lookup("id", "2") == []
    assert src.lookup("id", "") == []
    assert src.lookup("id", "6") == [{"id": "6", "name": "Fay", "email": "f@x.com"}]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_lookup_by_a_column_the_source_lacks_is_refused_naming_its_columns(
    tmp_path: Path, kind: str
) -> None:
    src = source(lookup_file(tmp_path, kind))
    with pytest.raises(SourceError) as info:
        src.lookup("Email", "a@x.com")
    assert str(info.value).endswith(
        "has no column 'Email' to look up by (its columns: email, name)."
    )
    assert info.value.hint is not None and "column" in info.value.hint


def test_lookup_by_a_column_of_a_header_only_csv_is_checked_and_finds_nothing(
    tmp_path: Path,
) -> None:
    src = source(write(tmp_path, "users.csv", "email,name\n"))
    assert src.lookup("email", "a@x.com") == []
    with pytest.raises(SourceError, match="no column 'id'"):
        src.lookup("id", "1")


def test_lookup_value_that_is_not_text_is_refused(tmp_path: Path) -> None:
    src = source(lookup_file(tmp_path, "csv"))
    with pytest.raises(TypeError, match="must be str"):
        src.lookup("email", 42)  # type: ignore[arg-type]


# --- refusing a spec ---------------------------------------------------------------------


def test_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SourceError) as info:
        source(path)
    assert str(info.value) == f"{path}: no such file."
    assert isinstance(info.value, ConfigError) and info.value.exit_status == 2


def test_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "export.csv"
    directory.mkdir()
    with pytest.raises(SourceError, match="is a directory, not a file"):
        source(directory)


def test_unknown_file_kind_is_refused_listing_the_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "users.xlsx", b"PK\x03\x04")
    with pytest.raises(SourceError, match="unknown kind of source '.xlsx'") as info:
        source(path)
    assert info.value.hint is not None
    assert ".csv" in info.value.hint and "sqlite:///" in info.value.hint


@pytest.mark.parametrize("option", [{"table": "users"}, {"query": "select 1"}])
def test_table_or_query_with_a_file_is_refused(tmp_path: Path, option: dict[str, str]) -> None:
    with pytest.raises(SourceError, match="only apply to database URLs"):
        source(ten_users(tmp_path, "csv"), **option)


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_delimiter_with_a_json_file_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(SourceError, match="--delimiter only applies to CSV files"):
        source(ten_users(tmp_path, kind), delimiter=";")


def test_unknown_encoding_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="Unknown encoding 'klingon'"):
        source(ten_users(tmp_path, "csv"), encoding="klingon")


@pytest.mark.parametrize("chunk_rows", [0, -5])
def test_chunk_size_below_one_is_refused(tmp_path: Path, chunk_rows: int) -> None:
    with pytest.raises(SourceError, match="chunk_rows must be at least 1"):
        source(ten_users(tmp_path, "csv"), chunk_rows=chunk_rows)
