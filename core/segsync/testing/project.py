"""A temporary segsync project for tests: its files, its runs, what a files destination holds.

::

    def test_ann_is_added(tmp_path):
        project = Project.sample(tmp_path)          # segsync.toml, contacts, consent, events
        summary = project.run()
        assert summary.status == "succeeded"
        assert project.audience()["ann@example.com"]["status"] == "subscribed"

Runs go through the real runner with the project's installed plugins, plus
:class:`~segsync.testing.memory.MemoryPlugin` and any plugins the test passes; set
``SEGSYNC_PLUGINS`` (e.g. to ``files``) to keep other installed connectors out.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsync.testing.memory import MemoryPlugin

if TYPE_CHECKING:
    from segsync.insights import Insights
    from segsync.plugins import PluginHost
    from segsync.sync.summary import RunSummary

# A files source ``shop`` (contacts, consent, events under data/) and a files destination
# ``upload`` (out/audience.jsonl), the store beside them.
SAMPLE_CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.csv"
    events = "data/events.jsonl"

    [connections.upload]
    type = "files"
    output = "out/audience"
"""
# Ann and Bo opted in (a form, a double opt-in); Cy has no consent record; Ann opened an email.
SAMPLE_FILES = {
    "contacts.csv": """
        email,first_name,tier
        ann@example.com,Ann,gold
        bo@example.com,Bo,
        cy@example.com,Cy,silver
    """,
    "consent.csv": """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    """,
    "events.jsonl": """
        {"email": "ann@example.com", "type": "email.opened", "timestamp": "2024-02-01T00:00:00Z", "id": "e1"}
    """,
}


class Project:
    """A project folder: ``root`` holds ``segsync.toml``, ``data/`` the source files.

    ``clock`` (e.g. a :class:`~segsync.testing.clock.FakeClock`) gives each run's ``as_of``
    when the run's options set none; without it runs happen at the wall-clock time.
    """

    def __init__(self, root: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.clock = clock

    @classmethod
    def sample(cls, root: Path, *, clock: Callable[[], datetime] | None = None) -> Project:
        """A project with :data:`SAMPLE_CONFIG` and the :data:`SAMPLE_FILES` in ``data/``."""
        project = cls(root, clock=clock)
        project.write_config(SAMPLE_CONFIG)
        for name, text in SAMPLE_FILES.items():
            project.write(name, text)
        return project

    def write_config(self, text: str) -> None:
        """Write ``segsync.toml`` (``text`` is dedented)."""
        (self.root / "segsync.toml").write_text(textwrap.dedent(text), encoding="utf-8")

    def write(self, name: str, text: str) -> Path:
        """Write ``data/<name>`` (``text`` dedented, leading blank lines dropped)."""
        path = self.data / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def append(self, name: str, text: str) -> None:
        """Append to ``data/<name>`` (``text`` dedented, leading blank lines dropped)."""
        with (self.data / name).open("a", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).lstrip())

    def host(self, *plugins: Any) -> PluginHost:
        """The plugin host of a run: installed plugins, the memory connector and ``plugins``."""
        from segsync.plugins import PluginHost

        return PluginHost(extra_plugins=[MemoryPlugin(), *plugins])

    def run(self, *plugins: Any, **options: Any) -> RunSummary:
        """One sync run with ``plugins`` added; ``options`` are ``RunOptions`` fields
        (``dry_run``, ``full_refresh``, ``as_of``, ``sample_size``)."""
        from segsync.config import load_config
        from segsync.sync.runner import RunOptions, Runner, utc_now

        runner = Runner(load_config(self.root / "segsync.toml"), self.host(*plugins), clock=self.clock or utc_now)
        return runner.run(RunOptions(**options))

    @contextmanager
    def insights(self, *plugins: Any, as_of: datetime | None = None) -> Iterator[Insights]:
        """The project's figures (:mod:`segsync.insights`) with its run's plugins and
        ``plugins``, segments evaluated as of ``as_of`` (default: now)."""
        from segsync.insights import read_insights

        with read_insights(self.root / "segsync.toml", self.host(*plugins), as_of=as_of) as view:
            yield view

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Rows of a read-only query over the project's store, for assertions (the tables'
        shape is not part of the public API)."""
        from segsync.config import load_config
        from segsync.store import Store

        with Store(load_config(self.root / "segsync.toml").store_path, read_only=True) as store:
            return store.con.execute(sql, params or []).fetchall()

    def audience(self, name: str = "out/audience") -> dict[str, dict]:
        """What a files destination writing to ``<name>.jsonl`` holds: address → record."""
        path = self.root / f"{name}.jsonl"
        if not path.exists():
            return {}
        return {r["email"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
