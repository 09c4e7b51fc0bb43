"""The connector conformance kit: standard tests every connector must pass.

Subclass :class:`ConnectorConformance` in your connector's test suite and provide two
fixtures: ``connector`` (a configured instance, e.g. pointed at your emulator) and
``sample_changes`` (a few :class:`~segsync.ContactChange` objects your system accepts, at
least one of them ``subscribed``). The class's tests then check the contract the runner relies
on::

    from segsync.testing.conformance import ConnectorConformance

    class TestMyConnector(ConnectorConformance):
        @pytest.fixture
        def connector(self, emulator):
            return MyConnector("crm", MySettings(api_key="k", host=emulator.url), tmp_path)

        @pytest.fixture
        def sample_changes(self):
            return [ContactChange("ann@example.com", "upsert", "subscribed", {"first_name": "Ann"})]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest
from pydantic import SecretStr

from segsync.config import secret_fields
from segsync.connector import (
    READ_CAPABILITIES,
    STREAM_CAPABILITY,
    WRITE_CAPABILITIES,
    Batch,
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    Outcome,
    Stream,
    WriteResult,
)
from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store.ingest import Ingestor


def _read_all(connector: Connector, stream: Stream, cursor=None) -> list[Batch]:
    return list(connector.read(stream, cursor))


class ConnectorConformance:
    """Standard tests; see the module docstring for the fixtures to provide."""

    # -- declaration ---------------------------------------------------------------------------

    def test_declares_a_type_name_capabilities_and_settings(self, connector: Connector) -> None:
        cls = type(connector)
        assert isinstance(cls.type_name, str) and cls.type_name.isidentifier()
        assert cls.capabilities and all(isinstance(c, Capability) for c in cls.capabilities)
        assert issubclass(cls.Settings, ConnectorSettings)
        assert connector.enabled_capabilities() <= cls.capabilities
        assert cls.max_batch_size is None or cls.max_batch_size > 0
        assert cls.write_batch_size is None or cls.write_batch_size > 0
        assert isinstance(connector.write_concurrency, int) and connector.write_concurrency >= 1

    def test_secrets_are_secretstr_and_masked_everywhere(self, connector: Connector) -> None:
        settings = connector.settings
        for name in secret_fields(type(settings)):
            value = getattr(settings, name)
            if value is None:
                continue
            assert isinstance(value, SecretStr)
            raw = value.get_secret_value()
            for text in (repr(settings), str(settings), repr(connector), settings.model_dump_json()):
                assert raw not in text, f"secret {name} visible in {text[:80]!r}"

    def test_check_returns_a_list_of_problems(self, connector: Connector) -> None:
        problems = connector.check()
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
        assert problems == [], f"check() reports problems against the test set-up: {problems}"

    # -- reading -------------------------------------------------------------------------------

    def test_read_yields_batches_the_store_accepts_with_json_cursors(self, connector: Connector) -> None:
        enabled = connector.enabled_capabilities()
        if not enabled & READ_CAPABILITIES:
            pytest.skip("the connector does not read")
        with Store(":memory:") as store:
            ingestor = Ingestor(store.con, connection=connector.connection, run_id=None,
                                event_types=EVENT_TYPES)
            for stream in Stream:
                if STREAM_CAPABILITY[stream] not in enabled:
                    continue
                for batch in _read_all(connector, stream):
                    assert batch.stream is stream
                    json.dumps(batch.cursor)  # cursors are stored as JSON
                    result = ingestor.ingest(batch)
                    assert result.rejected == 0, f"{stream.value}: {result.errors}"

    def test_reading_again_from_the_last_cursor_yields_nothing_new(self, connector: Connector) -> None:
        enabled = connector.enabled_capabilities()
        if not enabled & READ_CAPABILITIES:
            pytest.skip("the connector does not read")
        for stream in Stream:
            if STREAM_CAPABILITY[stream] not in enabled:
                continue
            batches = _read_all(connector, stream)
            if not batches:
                continue
            again = _read_all(connector, stream, json.loads(json.dumps(batches[-1].cursor)))
            with Store(":memory:") as store:
                ingestor = Ingestor(store.con, connection=connector.connection, run_id=None,
                                    event_types=EVENT_TYPES)
                for batch in batches:
                    ingestor.ingest(batch)
                new = sum(ingestor.ingest(batch).loaded for batch in again)
            assert new == 0, f"{stream.value}: {new} records loaded again from the final cursor"

    # -- writing -------------------------------------------------------------------------------

    def _write(self, connector: Connector, changes: Sequence[ContactChange]) -> WriteResult:
        size = connector.max_batch_size or len(changes)
        outcomes, calls = [], 0
        for start in range(0, len(changes), size):
            result = connector.write(changes[start:start + size])
            assert isinstance(result, WriteResult)
            outcomes.extend(result.outcomes)
            calls += result.calls
        return WriteResult(outcomes, calls)

    def test_write_answers_exactly_once_per_change(
        self, connector: Connector, sample_changes: list[ContactChange]
    ) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        result = self._write(connector, sample_changes)
        assert sorted(o.contact_key for o in result.outcomes) == sorted(c.contact_key for c in sample_changes)
        assert all(o.status in ("ok", "rejected", "retryable") for o in result.outcomes)
        assert all(o.reason for o in result.outcomes if o.status != "ok"), "a refusal must say why"
        assert result.calls >= 1

    def test_writing_the_same_changes_again_succeeds(
        self, connector: Connector, sample_changes: list[ContactChange]
    ) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        first = {o.contact_key: o.status for o in self._write(connector, sample_changes).outcomes}
        second = {o.contact_key: o.status for o in self._write(connector, sample_changes).outcomes}
        # A crashed run re-sends what was not acknowledged: that must be harmless.
        assert {k for k, v in first.items() if v == "ok"} <= {k for k, v in second.items() if v == "ok"}

    def test_writing_nothing_makes_no_call(self, connector: Connector) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        result = connector.write([])
        assert (result.outcomes, result.calls) == ([], 0)

    def test_write_batches_are_reported_once_each_from_the_calling_thread(
        self, connector: Connector, sample_changes: list[ContactChange]
    ) -> None:
        """A connector with ``write_batch_size`` reports each finished write batch to the runner,
        which acknowledges it at once: every outcome final, every contact in one report, reports
        no larger than a write batch, all from the thread that called ``write``."""
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        if connector.write_batch_size is None:
            pytest.skip("the connector does not report write batches (the whole write is one unit)")
        reports: list[tuple[list[Outcome], threading.Thread]] = []
        result = connector.write(
            sample_changes, report=lambda outcomes: reports.append((list(outcomes), threading.current_thread()))
        )
        assert reports, "write(changes, report=...) never reported"
        assert all(thread is threading.current_thread() for _, thread in reports)
        assert all(0 < len(outcomes) <= connector.write_batch_size for outcomes, _ in reports)
        reported = [o for outcomes, _ in reports for o in outcomes]
        assert len({o.contact_key for o in reported}) == len(reported), "a contact was reported twice"
        assert sorted(reported, key=lambda o: o.contact_key) == sorted(
            {o.contact_key: o for o in result.outcomes}.values(), key=lambda o: o.contact_key)
