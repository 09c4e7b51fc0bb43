"""Events are unique per (source, source_event_id), however a file is split into parts and
however often it is read: the first row by line wins, nothing is appended twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync import Batch, FileSlice, Stream
from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.store.sourcefile import parts

from .conftest import rows

HEADER = "email,type,timestamp,id\n"


def _events(path: Path, lines: list[tuple[str, str]]) -> Path:
    path.write_text(HEADER + "".join(f"{email},email.opened,2024-05-01T10:00:00Z,{id_}\n" for email, id_ in lines))
    return path


def _ingest(store: Store, path: Path, lines_per_part: int, connection: str = "src") -> tuple[int, int, int]:
    ingestor = Ingestor(store.con, connection=connection, run_id=1, event_types=EVENT_TYPES,
                        lines_per_part=lines_per_part)
    with store.transaction():
        result = ingestor.ingest(Batch(Stream.EVENTS, None, file=FileSlice(path, "csv", label=path.name)))
    return result.rows, result.loaded, result.rejected


def _events_table(store: Store) -> list[tuple]:
    return rows(store, "SELECT source, source_event_id, contact_key, contact_id IS NOT NULL, campaign_key "
                       "FROM events ORDER BY source, source_event_id")


@pytest.mark.parametrize("lines_per_part", [1, 2, 3, 1_000_000])
def test_repeats_inside_a_part_and_across_parts_load_once_and_the_first_line_wins(tmp_path, lines_per_part) -> None:
    path = _events(tmp_path / "e.csv", [("a@x.co", "e1"), ("b@x.co", "e2"), ("c@x.co", "e1"),
                                        ("d@x.co", "e3"), ("e@x.co", "e2"), ("f@x.co", "e4"), ("g@x.co", "e1")])
    with Store(tmp_path / "s.duckdb") as store:
        assert _ingest(store, path, lines_per_part) == (7, 4, 0)
        assert _events_table(store) == [
            ("src", "e1", "a@x.co", True, "srce1"), ("src", "e2", "b@x.co", True, "srce2"),
            ("src", "e3", "d@x.co", True, "srce3"), ("src", "e4", "f@x.co", True, "srce4"),
        ]


@pytest.mark.parametrize("lines_per_part", [2, 1_000_000])
def test_a_file_read_again_appends_nothing_and_a_file_overlapping_it_only_its_new_events(tmp_path, lines_per_part) -> None:
    first = _events(tmp_path / "e.csv", [("a@x.co", "e1"), ("b@x.co", "e2"), ("c@x.co", "e3"), ("a@x.co", "e2")])
    # Earlier events in another order, repeated, and new ones between them.
    second = _events(tmp_path / "f.csv", [("z@x.co", "e3"), ("b@x.co", "e5"), ("z@x.co", "e1"),
                                          ("c@x.co", "e6"), ("c@x.co", "e5"), ("z@x.co", "e2")])
    with Store(tmp_path / "s.duckdb") as store:
        assert _ingest(store, first, lines_per_part) == (4, 3, 0)
        assert _ingest(store, first, lines_per_part) == (4, 0, 0)
        assert _ingest(store, second, lines_per_part) == (6, 2, 0)
        # The same ids from another connection are other events.
        assert _ingest(store, first, lines_per_part, connection="other") == (4, 3, 0)
        assert _events_table(store) == [
            ("other", "e1", "a@x.co", True, "othere1"), ("other", "e2", "b@x.co", True, "othere2"),
            ("other", "e3", "c@x.co", True, "othere3"),
            ("src", "e1", "a@x.co", True, "srce1"), ("src", "e2", "b@x.co", True, "srce2"),
            ("src", "e3", "c@x.co", True, "srce3"), ("src", "e5", "b@x.co", True, "srce5"),
            ("src", "e6", "c@x.co", True, "srce6"),
        ]
        # Nothing of the batches' scratch tables is left behind.
        assert rows(store, "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_batch_ids'") == [(0,)]


def test_rows_batches_from_a_connector_deduplicate_like_files(tmp_path) -> None:
    row = {"email": "a@x.co", "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z"}
    with Store(tmp_path / "s.duckdb") as store:
        ingestor = Ingestor(store.con, connection="api", run_id=1, event_types=EVENT_TYPES)
        for ids, loaded in ((["p1", "p2", "p1"], 2), (["p2", "p3"], 1)):
            with store.transaction():
                result = ingestor.ingest(Batch(Stream.EVENTS, None, rows=[{**row, "id": i} for i in ids]))
            assert (result.rows, result.loaded) == (len(ids), loaded)
        assert rows(store, "SELECT source_event_id FROM events ORDER BY 1") == [("p1",), ("p2",), ("p3",)]


_LINE = st.one_of(
    st.text(alphabet="ab,x", max_size=6),
    st.builds(lambda a, b: f'"{a}\n{b}",z', st.text(alphabet="ab", max_size=3), st.text(alphabet="ab", max_size=3)),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_LINE, min_size=1, max_size=12), skip=st.integers(0, 12),
       per_part=st.integers(1, 4), fmt=st.sampled_from(["csv", "jsonl"]))
def test_parts_from_a_known_offset_are_the_parts_counted_from_the_top(tmp_path_factory, lines, skip, per_part, fmt) -> None:
    """The cursor's offset replaces the count from the top: the same parts, the same bytes."""
    path = tmp_path_factory.mktemp("p") / f"f.{fmt}"
    body = "".join(line + "\n" for line in lines).encode()
    header = b"h\n" if fmt == "csv" else b""
    path.write_bytes(header + body)
    first_line = len(header.splitlines()) + 1
    # Only offsets a cursor can hold: the start of a physical line.
    starts = [len(header)] + [len(header) + i + 1 for i, byte in enumerate(body) if byte == ord("\n")]
    skip = min(skip, len(starts) - 1)
    from_top = parts(path, fmt, first_line + skip, None, per_part)
    known = parts(path, fmt, first_line + skip, None, per_part, first_byte=starts[skip])
    assert known == from_top


def test_a_hash_loaded_before_is_only_a_candidate_the_id_decides(tmp_path) -> None:
    """Several parts keep the hashes of the ids loaded so far; a row whose hash is among them is
    a repeat only when events holds its id (hashes of distinct ids may collide)."""

    class Colliding(Ingestor):
        def _merge_events(self) -> int:
            # As if e9 (never loaded) and e1 (loaded by part 1) shared a hash: part 2 meets e9's.
            self.con.execute("INSERT INTO _batch_ids SELECT hash('e9')")
            return super()._merge_events()

    path = _events(tmp_path / "e.csv", [("a@x.co", "e1"), ("b@x.co", "e2"), ("c@x.co", "e9"), ("d@x.co", "e1")])
    with Store(tmp_path / "s.duckdb") as store:
        ingestor = Colliding(store.con, connection="src", run_id=1, event_types=EVENT_TYPES, lines_per_part=2)
        with store.transaction():
            result = ingestor.ingest(Batch(Stream.EVENTS, None, file=FileSlice(path, "csv", label=path.name)))
        assert (result.rows, result.loaded, result.rejected) == (4, 3, 0)
        assert _events_table(store) == [
            ("src", "e1", "a@x.co", True, "srce1"), ("src", "e2", "b@x.co", True, "srce2"),
            ("src", "e9", "c@x.co", True, "srce9"),
        ]
