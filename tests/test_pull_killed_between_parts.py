"""A pull killed between the parts of a big file leaves the store as it was (the file's batch
and its cursor commit together), and the next pull loads the file once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.progress import Reporter
from segsync.store import Store
from segsync.sync.pull import pull
from segsync_files import FilesConnector, FilesSettings


def _event(i: int) -> str:
    return json.dumps({"email": "a@x.co", "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z", "id": f"e{i}"}) + "\n"


def _connector(root: Path) -> FilesConnector:
    return FilesConnector("shop", FilesSettings(events="e.jsonl"), root)


KILLED_PULL = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from segsync.progress import Reporter
    from segsync.store import Store
    from segsync.store.ingest import Ingestor
    from segsync.sync.pull import pull
    from segsync.default_plugins.event_types import EVENT_TYPES
    from segsync_files import FilesConnector, FilesSettings

    root = Path(sys.argv[1])
    real = Ingestor._ingest
    def killed_on_the_third_part(self, batch, part):
        if part is not None and part.first_line > 2 * self.lines_per_part:
            os._exit(9)  # no exception, no clean-up: as if the process were killed
        return real(self, batch, part)
    Ingestor._ingest = killed_on_the_third_part
    real_init = Ingestor.__init__
    Ingestor.__init__ = lambda self, *a, **k: real_init(self, *a, **{**k, "lines_per_part": 3})
    with Store(root / "store.duckdb") as store:
        pull(store, FilesConnector("shop", FilesSettings(events="e.jsonl"), root), "files", None,
             EVENT_TYPES, Reporter(quiet=True))
""")


def test_a_pull_killed_between_parts_leaves_the_store_as_it_was_and_the_next_one_loads_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(_event(1) + _event(2))
    with Store(tmp_path / "store.duckdb") as store:
        pull(store, _connector(tmp_path), "files", None, EVENT_TYPES, Reporter(quiet=True))
    # Ten more lines (four parts of three), event 2 again among them.
    with path.open("a") as handle:
        handle.write("".join(_event(i) for i in (3, 4, 5, 2, 6, 7, 8, 9, 10, 11)))
    killed = subprocess.run([sys.executable, "-c", KILLED_PULL, str(tmp_path)], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    with Store(tmp_path / "store.duckdb") as store:
        assert store.con.execute("SELECT count(*) FROM events").fetchall() == [(2,)]
        assert store.get_cursor("shop", "events")["e.jsonl"]["rows"] == 2
        report = pull(store, _connector(tmp_path), "files", None, EVENT_TYPES, Reporter(quiet=True))
        assert (report.status, report.loaded, report.rejected) == ("ok", {"events": 9}, {"events": 0})
        assert [r[0] for r in store.con.execute("SELECT source_event_id FROM events ORDER BY rowid").fetchall()] == [
            f"e{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
        assert store.get_cursor("shop", "events")["e.jsonl"]["rows"] == 12
