"""Position cursors for append-only files.

A file's cursor records how many rows were loaded, the size of the finished lines they are on
and a hash of those bytes (a last line without its line break is in neither). When the file has only grown (same prefix), the next run loads the new rows; when it was
rewritten, it is loaded again from the top, which is safe: events deduplicate by id, consent
records by their content, and contacts merge.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from segsync.store.sourcefile import Extent

_CHUNK = 1 << 20


def prefix_sha256(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    remaining = length
    with path.open("rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def rows_already_loaded(path: Path, previous: dict[str, Any] | None) -> int:
    """How many leading rows of ``path`` the previous cursor covers (0: load it all)."""
    if not previous:
        return 0
    size = path.stat().st_size
    if size < previous["size"] or prefix_sha256(path, previous["size"]) != previous["sha256"]:
        return 0
    return int(previous["rows"])


def file_state(complete: Extent, rows: int) -> dict[str, Any]:
    return {"rows": rows, "size": complete.complete_bytes, "sha256": complete.sha256}
