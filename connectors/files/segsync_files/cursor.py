"""Position cursors for append-only files.

A file's cursor records how many rows were loaded, the size of the finished lines they are on
(a last line without its line break is in neither) and a fingerprint of those bytes: the hash
of their first and of their last :data:`FINGERPRINT_BYTES`. When the file has only grown (at
least that size, the same fingerprint), the next run reads and loads the bytes after that
size and nothing before it; when it shrank or its fingerprint differs, it was rewritten and is
loaded again from the top, which is safe: events deduplicate by id, consent records by their
content, and contacts merge. A file whose size, modification time and inode are what they were
when its cursor was taken is not read at all.

The fingerprint reads a bounded number of bytes whatever the file's size, so an appended file
costs its new bytes, not its whole length. What it cannot see is a rewrite that keeps the
size (or grows), the first and the last bytes of what was loaded and changes only the middle;
such a rewrite's new middle is not loaded (its appended rows are). Cursors written before the
fingerprint (a ``sha256`` of the whole prefix) are checked the old way once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from segsync.filesource import Extent

_CHUNK = 1 << 20
# Bytes hashed at each end of the loaded prefix: a rewrite almost always changes the first
# lines (a new header, other early records) or the last ones.
FINGERPRINT_BYTES = 1 << 16


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


def fingerprint(path: Path, length: int) -> dict[str, str]:
    """Hashes of the first and the last :data:`FINGERPRINT_BYTES` of the first ``length``
    bytes of ``path`` (two reads of at most that many bytes)."""
    with path.open("rb") as handle:
        head = handle.read(min(length, FINGERPRINT_BYTES))
        handle.seek(max(length - FINGERPRINT_BYTES, 0))
        tail = handle.read(min(length, FINGERPRINT_BYTES))
    return {"head": hashlib.sha256(head).hexdigest(), "tail": hashlib.sha256(tail).hexdigest()}


def rows_already_loaded(path: Path, previous: dict[str, Any] | None) -> tuple[int, int | None]:
    """How many leading rows of ``path`` the previous cursor covers (0: load it all), and the
    byte offset where the next row starts (None: count from the top)."""
    if not previous:
        return 0, None
    size = path.stat().st_size
    if size < previous["size"]:
        return 0, None
    if "head" in previous:
        if fingerprint(path, previous["size"]) != {"head": previous["head"], "tail": previous["tail"]}:
            return 0, None
    elif prefix_sha256(path, previous["size"]) != previous["sha256"]:
        return 0, None
    return int(previous["rows"]), int(previous["size"])


def unchanged_since(path: Path, previous: dict[str, Any] | None) -> bool:
    """Whether ``path`` has the size and modification time it had when ``previous`` was taken
    (then it is not read at all: a re-run over unchanged files costs one ``stat`` each). Any
    write changes the modification time; a cursor from before these were kept never matches."""
    if not previous or "stat" not in previous:
        return False
    stat = path.stat()
    return previous["stat"] == [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def file_state(path: Path, complete: Extent, rows: int, stat: os.stat_result) -> dict[str, Any]:
    """The cursor of a file: its finished rows, their size and fingerprint, and the file's
    size, modification time and inode when they were read (``stat`` taken before reading)."""
    return {"rows": rows, "size": complete.complete_bytes, **fingerprint(path, complete.complete_bytes),
            "stat": [stat.st_size, stat.st_mtime_ns, stat.st_ino]}
