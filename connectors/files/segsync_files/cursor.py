"""Position cursors for append-only files.

A file's cursor records how many rows were loaded, the size of the finished lines they are on
and a hash of those bytes (a last line without its line break is in neither). When the file has only grown (same prefix), the next run loads the new rows; when it was
rewritten, it is loaded again from the top, which is safe: events deduplicate by id, consent
records by their content, and contacts merge. A file whose size, modification time and inode
are what they were when its cursor was taken is not read at all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from segsync.filesource import Extent

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


def unchanged_since(path: Path, previous: dict[str, Any] | None) -> bool:
    """Whether ``path`` has the size and modification time it had when ``previous`` was taken
    (then it is not read at all: a re-run over unchanged files costs one ``stat`` each). Any
    write changes the modification time; a cursor from before these were kept never matches."""
    if not previous or "stat" not in previous:
        return False
    stat = path.stat()
    return previous["stat"] == [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def file_state(complete: Extent, rows: int, stat: os.stat_result) -> dict[str, Any]:
    """The cursor of a file: its finished rows and the fingerprint of their bytes, and the file's
    size, modification time and inode when they were read (taken before reading)."""
    return {"rows": rows, "size": complete.complete_bytes, "sha256": complete.sha256,
            "stat": [stat.st_size, stat.st_mtime_ns, stat.st_ino]}
