"""A file read a piece of whole lines at a time, for Arrow to parse one piece at a time.

Arrow's streaming readers (``pyarrow.csv.open_csv``, ``pyarrow.json.open_json``) read the
file in a background thread up to 32 blocks ahead of the batch in hand, so what they hold
grows with their block size, not with what the caller takes: reading an import file in
1 MiB blocks held about 40 MiB of Arrow memory, in 2 MiB blocks about 60 MiB. Parsing
the file's pieces in turn (each with Arrow's ``read_csv``, which parses a piece's two
halves on two threads) holds one piece and what is made of it: about 3 MiB, as fast.

Only for files whose lines are records: no line break inside a value (a JSON-lines file,
or a CSV file without quoted values), so that a piece may end at any line break.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

import pyarrow as pa

# Bytes read and parsed at a time: about 9,000 users of an import file, 10,000 log events.
PIECE_BYTES = 1 << 20


def line_pieces(f: BinaryIO, size: int = PIECE_BYTES) -> Iterator[bytes]:
    """The rest of ``f`` in pieces of whole lines of about ``size`` bytes (a longer line is
    a piece of its own); the last piece may lack its line break."""
    carry = b""
    while data := f.read(size):
        if carry:
            data = carry + data
        cut = data.rfind(b"\n") + 1
        if not cut:  # no line ends here yet: a long line
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut] if carry else data
    if carry:
        yield carry


def parsed(piece: bytes, parse: Callable[[pa.Buffer, int], pa.Table]) -> pa.Table:
    """``parse(buffer, block_size)`` of a piece as two blocks, which Arrow parses on two
    threads, in one chunk. A line longer than a block is no matter: Arrow refuses only a
    line that spans three blocks."""
    return parse(pa.py_buffer(piece), len(piece) // 2 + 1).combine_chunks()
