"""A file read a piece of whole lines at a time (csvimport.pieces)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvimport.pieces import line_pieces, parsed


@given(
    lines=st.lists(st.text(alphabet="ab,", max_size=12), max_size=30),
    last_ends=st.booleans(),
    size=st.integers(min_value=1, max_value=40),
)
def test_the_pieces_are_the_file_cut_only_at_line_ends(
    lines: list[str], last_ends: bool, size: int
) -> None:
    data = "\n".join(lines).encode() + (b"\n" if last_ends and lines else b"")
    pieces = list(line_pieces(io.BytesIO(data), size))
    assert b"".join(pieces) == data
    assert all(piece for piece in pieces)
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    for piece in pieces:  # no longer than asked, but for a first line longer itself
        assert len(piece) <= size + len(piece.split(b"\n")[0])


def test_a_piece_is_parsed_in_one_chunk_whatever_the_lengths_of_its_lines() -> None:
    names = ["a", "b"]

    def read(data: pa.Buffer, block: int) -> pa.Table:
        return pa_csv.read_csv(data, read_options=pa_csv.ReadOptions(column_names=names,
                                                                     block_size=block))  # fmt: skip

    short = b"".join(b"%d,x\n" % n for n in range(1_000))
    table = parsed(short, read)
    assert table.num_rows == 1_000 and table.column("b").num_chunks == 1
    long = b"7," + b"y" * 3 * len(short) + b"\n"  # longer than either block
    for piece in (short + long, long + short, short + long + short):
        table = parsed(piece, read)
        assert table.num_rows == 1_001 + (piece.count(b"\n") > 1_001) * 1_000
        assert table.column("b").num_chunks == 1
        assert "y" * 3 * len(short) in table.column("b").to_pylist()
    with pytest.raises(pa.ArrowInvalid):  # what Arrow refuses in one block is raised
        parsed(short + b"1,2,3\n", read)
