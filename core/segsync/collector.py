"""Python's cyclic garbage collector paused around work that allocates many objects but few or
no cycles: pushing a page of changes, planning a connector's write. Meanwhile the collector
would re-scan everything the process holds (the changes among it) again and again; the push
collects the young generations itself once a page."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pause_lock = threading.Lock()
_pauses = 0  # blocks running with the collector paused (a plugin may push from threads)
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic garbage collection off while the block runs, back as it was when the last of
    overlapping (nested or concurrent) blocks ends."""
    global _pauses, _was_enabled
    with _pause_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
