"""The audience a destination would hold, as CSV and JSONL files replaced atomically."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segsync import KNOWN_ATTRIBUTES, ContactChange, Outcome


class AudienceFile:
    """``<base>.jsonl`` is the state (one object per contact); ``<base>.csv`` mirrors it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.jsonl = base.with_name(base.name + ".jsonl")
        self.csv = base.with_name(base.name + ".csv")
        self._rows: dict[str, dict[str, Any]] | None = None

    def rows(self) -> dict[str, dict[str, Any]]:
        if self._rows is None:
            self._rows = {}
            if self.jsonl.exists():
                with self.jsonl.open(encoding="utf-8") as handle:
                    for line in handle:
                        if line.strip():
                            row = json.loads(line)
                            self._rows[row["email"]] = row
        return self._rows

    def apply(self, changes: Sequence[ContactChange]) -> list[Outcome]:
        rows = self.rows()
        outcomes = []
        for change in changes:
            if change.op == "delete":
                rows.pop(change.contact_key, None)
            else:
                rows[change.contact_key] = {
                    "email": change.contact_key,
                    "status": change.status,
                    "tags": sorted(change.tags),
                    "attributes": dict(change.attributes),
                }
            outcomes.append(Outcome.ok(change.contact_key))
        return outcomes

    def save(self) -> int:
        """Replace both files atomically; return how many files were written."""
        rows = [self.rows()[key] for key in sorted(self.rows())]
        self.base.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.jsonl, lambda h: h.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        custom = sorted({k for r in rows for k in r["attributes"]} - set(KNOWN_ATTRIBUTES))
        header = ["email", "status", "tags", *KNOWN_ATTRIBUTES, *custom]

        def write_csv(handle) -> None:
            writer = csv.writer(handle)
            writer.writerow([_inert(name) for name in header])
            for r in rows:
                attrs = r["attributes"]
                writer.writerow(
                    _inert(cell)
                    for cell in [r["email"], r["status"], ";".join(r["tags"])]
                    + [_cell(attrs.get(name)) for name in (*KNOWN_ATTRIBUTES, *custom)]
                )

        _atomic_write(self.csv, write_csv)
        return 2


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# A spreadsheet opening the CSV runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), +1+cmd|..., @SUM(...)): OWASP's CSV injection guidance is to prefix a single
# quote, which shows the text as it is. The JSONL state keeps the exact values.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _atomic_write(path: Path, fill) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
