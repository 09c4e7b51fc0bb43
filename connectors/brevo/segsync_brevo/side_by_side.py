"""Brevo calls made side by side: a write's imports, its list calls, the lists its set-up creates."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from segsync_brevo.api import BrevoApiError

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(call: Callable[[T], R], items: Sequence[T], max_connections: int) -> Iterator[tuple[T, R | BrevoApiError]]:
    """``call(item)`` for every item, up to ``max_connections`` at once (each request still
    paced by its rate-limit bucket and the account's budget), yielded in the calling thread as
    each finishes: its result, or the :class:`BrevoApiError` it raised."""
    if len(items) <= 1 or max_connections <= 1:
        for item in items:
            try:
                yield item, call(item)
            except BrevoApiError as exc:
                yield item, exc
        return
    with ThreadPoolExecutor(min(max_connections, len(items)), thread_name_prefix="brevo") as pool:
        futures = {pool.submit(call, item): item for item in items}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except BrevoApiError as exc:
                yield futures[future], exc
