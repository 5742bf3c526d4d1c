"""Each log stream's events in time order, so that a page of them costs its own size.

moto keeps a stream's events in arrival order and sorts all of them again for every
GetLogEvents page; FilterLogEvents (``responses.py``) did the same for every page of the
group. A 500,000-line import log read in 10,000-event pages was then quadratic. Here each
stream gets an index, kept beside moto's list and brought up to date when it is read: the
events in (timestamp, event id) order. Event ids grow with arrival, so that order is the
stable time order moto sorts into. The job runner appends in time order (the common case:
the new events are just appended to the index); a client's PutLogEvents or a clock moved
back can append earlier events, and then the index is sorted again (timsort merges the two
runs in linear time). A page is then a bisect to where it starts plus the events it holds.
"""

from __future__ import annotations

import bisect
import operator
import threading
from collections.abc import Iterator
from typing import Any

# (timestamp, event id): where an event sits in a stream's order, and in a group's.
Key = tuple[int, int]


def event_key(event: Any) -> Key:
    return (event.timestamp, event.event_id)


_timestamp = operator.attrgetter("timestamp")


class StreamIndex:
    """One moto log stream's events in (timestamp, event id) order.

    ``examined`` counts the events reads have looked at (one per event considered for a
    page), so that tests can prove a page costs its size and not the stream's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: list[Any] | None = None  # the moto list the index mirrors
        self._indexed = 0  # how many of its events (a prefix, in arrival order) are in
        self._ordered: list[Any] = []
        self.examined = 0

    def ordered(self, stream: Any) -> list[Any]:
        """The stream's events in order, as of now; never changed after it is returned
        except by appending (a re-sort makes a new list), so a reader may keep it."""
        with self._lock:
            events = stream.events
            count = len(events)
            if events is not self._source or count < self._indexed:  # replaced or cut
                self._source, self._indexed, self._ordered = events, 0, []
            if count == self._indexed:
                return self._ordered
            new = events[self._indexed : count]
            self._indexed = count
            keys = [event_key(e) for e in new]
            in_order = all(a <= b for a, b in zip(keys, keys[1:], strict=False))
            if in_order and (not self._ordered or event_key(self._ordered[-1]) <= keys[0]):
                self._ordered.extend(new)
            else:
                self._ordered = sorted(self._ordered + new, key=event_key)
            return self._ordered

    def count(self, events: int) -> None:
        with self._lock:
            self.examined += events


def index_of(stream: Any) -> StreamIndex:
    """The index of a moto log stream (made on first use; a stream made again under the
    same name is a new object, with a new index)."""
    index: StreamIndex | None = getattr(stream, "csvimport_index", None)
    if index is None:
        with _MAKING:
            index = getattr(stream, "csvimport_index", None)
            if index is None:
                index = StreamIndex()
                stream.csvimport_index = index
    return index


_MAKING = threading.Lock()


def time_range(ordered: list[Any], start_time: int | None, end_time: int | None) -> range:
    """The positions in ``ordered`` of the events from ``start_time`` to ``end_time``
    (milliseconds, both included; 0 or None is no bound, as moto reads them)."""
    low = bisect.bisect_left(ordered, start_time, key=_timestamp) if start_time else 0
    high = bisect.bisect_right(ordered, end_time, key=_timestamp) if end_time else len(ordered)
    return range(low, max(low, high))


def events_after(
    stream: Any, after: Key | None, start_time: int | None, end_time: int | None
) -> Iterator[tuple[Key, str, Any]]:
    """The stream's events in order that come after ``after`` (all when None) and lie in
    the time range, each as (key, stream name, event), read lazily: a caller that stops
    early has looked at no more events than it took."""
    index = index_of(stream)
    ordered = index.ordered(stream)
    span = time_range(ordered, start_time, end_time)
    start = span.start
    if after is not None:
        start = max(start, bisect.bisect_right(ordered, after, key=event_key))
    name = stream.log_stream_name
    seen = 0
    try:
        for position in range(start, span.stop):
            event = ordered[position]
            seen += 1
            yield event_key(event), name, event
    finally:  # also when the caller stops early (CPython closes the generator then)
        index.count(seen)
