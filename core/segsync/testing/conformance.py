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

The behaviour scenarios (create, update, tags, opt-out, consent, delete, replay, refusals,
retries, incremental reads) also look at the service itself: provide a ``service`` fixture
returning a :class:`~segsync.testing.service.ServiceAdapter` (see docs/testing-connectors.md).
Without it they are skipped, as is every test of a capability the connector does not declare.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

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
from segsync.statuses import OutcomeStatus
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.testing.service import (
    NOT_SUBSCRIBED,
    OPTED_OUT,
    PENDING,
    SUBSCRIBED,
    Exchange,
    RemoteContact,
    ServiceAdapter,
    overrides,
)

OUTCOME_STATUSES = tuple(s.value for s in OutcomeStatus)


def _read_all(connector: Connector, stream: Stream, cursor=None) -> list[Batch]:
    return list(connector.read(stream, cursor))


def _require(connector: Connector, *capabilities: Capability) -> None:
    missing = [c.value for c in capabilities if c not in connector.enabled_capabilities()]
    if missing:
        pytest.skip(f"the connector does not declare {', '.join(missing)}")


def _require_service(service: ServiceAdapter | None, *methods: str) -> ServiceAdapter:
    if service is None:
        pytest.skip("no service adapter: return a segsync.testing.service.ServiceAdapter from a "
                    "`service` fixture to run the behaviour scenarios")
    missing = [name for name in methods if not overrides(service, name)]
    if missing:
        pytest.skip(f"the service adapter does not implement {', '.join(missing)}")
    return service


def _key(scenario: str) -> str:
    return f"conformance.{scenario}@example.com"


def _shown(outcome: Outcome | None) -> str:
    if outcome is None:
        return "no outcome"
    reason = f" ({outcome.reason})" if outcome.reason else ""
    return f"{getattr(outcome.status, 'value', outcome.status)}{reason}"


def _held(remote: RemoteContact | None) -> str:
    if remote is None:
        return "no such contact"
    extra = f", {remote.copies} copies" if remote.copies != 1 else ""
    return (f"status {remote.status}, tags {sorted(remote.tags)}, "
            f"attributes {dict(sorted(remote.attributes.items()))}{extra}")


def _emails(batch: Batch, connection: str) -> list[str]:
    """The contact keys a contacts batch carries, one per record (a file slice is loaded into a
    scratch store to find them)."""
    if batch.rows is not None:
        return [str(row.get("email", "")).strip().lower() for row in batch.rows]
    with Store(":memory:") as store:
        Ingestor(store.con, connection=connection, run_id=None, event_types=EVENT_TYPES).ingest(batch)
        return [row[0] for row in store.con.execute("SELECT contact_key FROM contacts").fetchall()]


def _excerpt(text: str, secret: str) -> str:
    at = text.find(secret)
    return text[max(0, at - 60):at + len(secret) + 60].replace(secret, "<the secret>")


class ConnectorConformance:
    """Standard tests; see the module docstring for the fixtures to provide."""

    scenario_attributes: tuple[dict[str, Any], dict[str, Any]] = (
        {"first_name": "Ada"}, {"first_name": "Adele"})
    """Attributes a new contact is created with, then updated to (override for a service that
    cannot hold ``first_name``)."""

    @pytest.fixture
    def service(self) -> ServiceAdapter | None:
        """Override to return your :class:`ServiceAdapter`; None skips the behaviour scenarios."""
        return None

    # -- declaration ---------------------------------------------------------------------------

    def test_declares_a_type_name_capabilities_and_settings(self, connector: Connector) -> None:
        cls = type(connector)
        assert isinstance(cls.type_name, str) and cls.type_name.isidentifier(), (
            f"type_name is {getattr(cls, 'type_name', None)!r}; expected a Python identifier")
        assert cls.capabilities and all(isinstance(c, Capability) for c in cls.capabilities), (
            f"capabilities are {cls.capabilities!r}; expected a non-empty set of Capability")
        assert issubclass(cls.Settings, ConnectorSettings), (
            f"Settings is {cls.Settings!r}; expected a ConnectorSettings subclass")
        assert connector.enabled_capabilities() <= cls.capabilities, (
            f"enabled_capabilities() adds {sorted(c.value for c in connector.enabled_capabilities() - cls.capabilities)}, "
            "which the class does not declare")
        assert cls.max_batch_size is None or cls.max_batch_size > 0, f"max_batch_size is {cls.max_batch_size}"
        assert cls.write_batch_size is None or cls.write_batch_size > 0, f"write_batch_size is {cls.write_batch_size}"
        assert isinstance(connector.write_concurrency, int) and connector.write_concurrency >= 1, (
            f"write_concurrency is {connector.write_concurrency!r}; expected an int of at least 1")

    def test_secrets_are_secretstr_and_masked_everywhere(self, connector: Connector) -> None:
        settings = connector.settings
        for name in secret_fields(type(settings)):
            value = getattr(settings, name)
            if value is None:
                continue
            assert isinstance(value, SecretStr), f"secret setting {name} is a {type(value).__name__}; expected SecretStr"
            raw = value.get_secret_value()
            for text in (repr(settings), str(settings), repr(connector), settings.model_dump_json()):
                assert raw not in text, f"secret {name} visible (expected masked): …{_excerpt(text, raw)}…"

    def test_check_returns_a_list_of_problems(self, connector: Connector) -> None:
        problems = connector.check()
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems), (
            f"check() returned {problems!r}; expected a list of strings")
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
                    assert batch.stream is stream, f"read({stream.value}) yielded a {batch.stream} batch"
                    try:
                        json.dumps(batch.cursor)  # cursors are stored as JSON
                    except (TypeError, ValueError) as exc:
                        pytest.fail(f"{stream.value}: cursor {batch.cursor!r} is not JSON ({exc}); "
                                    "expected a JSON-serialisable value")
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
            assert isinstance(result, WriteResult), f"write returned {type(result).__name__}; expected a WriteResult"
            outcomes.extend(result.outcomes)
            calls += result.calls
        return WriteResult(outcomes, calls)

    def test_write_answers_exactly_once_per_change(
        self, connector: Connector, sample_changes: list[ContactChange]
    ) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        result = self._write(connector, sample_changes)
        answered = Counter(o.contact_key for o in result.outcomes)
        expected = Counter(c.contact_key for c in sample_changes)
        assert sorted(answered.elements()) == sorted(expected.elements()), (
            f"write answered for keys not in the batch: {sorted(answered - expected)}, "
            f"and not for: {sorted(expected - answered)}; expected exactly one outcome per change")
        unknown = [(o.contact_key, o.status) for o in result.outcomes if o.status not in OUTCOME_STATUSES]
        assert not unknown, f"outcomes with unknown statuses {unknown}; expected one of {OUTCOME_STATUSES}"
        assert all(o.reason for o in result.outcomes if o.status != OutcomeStatus.OK), "a refusal must say why"
        assert result.calls >= 1, f"write reported {result.calls} calls for {len(sample_changes)} changes"

    def test_writing_the_same_changes_again_succeeds(
        self, connector: Connector, sample_changes: list[ContactChange]
    ) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        first = {o.contact_key: o.status for o in self._write(connector, sample_changes).outcomes}
        second = {o.contact_key: o.status for o in self._write(connector, sample_changes).outcomes}
        # A crashed run re-sends what was not acknowledged: that must be harmless.
        lost = sorted(k for k, v in first.items() if v == OutcomeStatus.OK and second.get(k) != OutcomeStatus.OK)
        assert not lost, (f"re-sending changes answered ok once was answered "
                          f"{[(k, second.get(k) and str(second[k])) for k in lost]}; expected ok again")

    def test_writing_nothing_makes_no_call(self, connector: Connector) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        result = connector.write([])
        assert (result.outcomes, result.calls) == ([], 0), (
            f"write([]) answered {result.outcomes} with {result.calls} calls; expected nothing and no call")

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
        threads = {t.name for _, t in reports if t is not threading.current_thread()}
        assert not threads, f"reported from threads {sorted(threads)}; expected the thread that called write"
        sizes = [len(outcomes) for outcomes, _ in reports]
        assert all(0 < n <= connector.write_batch_size for n in sizes), (
            f"reports of {sizes} outcomes; expected 1 to write_batch_size ({connector.write_batch_size}) each")
        reported = [o for outcomes, _ in reports for o in outcomes]
        assert len({o.contact_key for o in reported}) == len(reported), "a contact was reported twice"
        assert sorted(reported, key=lambda o: o.contact_key) == sorted(
            {o.contact_key: o for o in result.outcomes}.values(), key=lambda o: o.contact_key), (
            "the reported outcomes differ from those write returned; expected the same final outcomes")

    # -- secrets -------------------------------------------------------------------------------

    def test_secrets_never_reach_logs_output_outcomes_or_cursors(
        self, connector: Connector, sample_changes: list[ContactChange],
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    ) -> None:
        secrets = {name: value.get_secret_value() for name in secret_fields(type(connector.settings))
                   if isinstance(value := getattr(connector.settings, name), SecretStr)
                   and value.get_secret_value()}
        if not secrets:
            pytest.skip("the connector's settings hold no secret")
        caplog.set_level(logging.DEBUG)
        texts: dict[str, str] = {"check()": json.dumps(connector.check())}
        enabled = connector.enabled_capabilities()
        if enabled & WRITE_CAPABILITIES and sample_changes:
            result = self._write(connector, sample_changes)
            texts["write outcomes"] = repr(result.outcomes)
        for stream in Stream:
            if STREAM_CAPABILITY[stream] in enabled:
                texts[f"{stream.value} cursors"] = json.dumps(
                    [b.cursor for b in _read_all(connector, stream)], default=str)
        captured = capsys.readouterr()
        texts.update({"the log": caplog.text, "stdout": captured.out, "stderr": captured.err})
        leaks = [f"{name} in {where}: …{_excerpt(text, secret)}…"
                 for name, secret in secrets.items() for where, text in texts.items() if secret in text]
        assert not leaks, "secret values leaked (expected them masked everywhere): " + "; ".join(leaks)

    # -- behaviour scenarios: writing ----------------------------------------------------------

    def _write_one(self, connector: Connector, change: ContactChange) -> Outcome | None:
        outcomes = self._write(connector, [change]).outcomes
        return next((o for o in outcomes if o.contact_key == change.contact_key), None)

    def _create(self, connector: Connector, service: ServiceAdapter, key: str, scenario: str,
                **fields: Any) -> RemoteContact:
        """Write a new subscribed contact (a step of a scenario) and return what the service holds."""
        change = ContactChange(key, "upsert", "subscribed", dict(self.scenario_attributes[0]),
                               consent_method="form", **fields)
        outcome = self._write_one(connector, change)
        remote = service.contact(key)
        assert outcome is not None and outcome.status == OutcomeStatus.OK and remote is not None, (
            f"{scenario}: creating a subscribed contact was answered {_shown(outcome)} and the service "
            f"holds {_held(remote)}; expected ok and the contact")
        return remote

    def test_create_lands_a_subscribed_contact_with_its_attributes(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact")
        key, attributes = _key("create"), self.scenario_attributes[0]
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "subscribed", dict(attributes), consent_method="form"))
        remote = service.contact(key)
        expected = f"one contact, status {SUBSCRIBED}, with {attributes}"
        assert outcome is not None and outcome.status == OutcomeStatus.OK, (
            f"create: the connector answered {_shown(outcome)} for a new subscribed contact; expected ok")
        assert remote is not None, f"create: the connector answered ok but the service holds no contact; expected {expected}"
        wrong = {k: remote.attributes.get(k) for k, v in attributes.items() if remote.attributes.get(k) != v}
        assert remote.status == SUBSCRIBED and not wrong and remote.copies == 1, (
            f"create: the service holds {_held(remote)}; expected {expected}")

    def test_update_changes_the_attributes_of_the_same_contact(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact")
        key, (_, updated) = _key("update"), self.scenario_attributes
        self._create(connector, service, key, "update")
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "subscribed", dict(updated), previous_status="subscribed", consent_method="form"))
        remote = service.contact(key)
        expected = f"one contact, status {SUBSCRIBED}, with {updated}"
        assert outcome is not None and outcome.status == OutcomeStatus.OK, (
            f"update: the connector answered {_shown(outcome)} for an attribute change; expected ok")
        assert remote is not None and remote.status == SUBSCRIBED and remote.copies == 1 and all(
            remote.attributes.get(k) == v for k, v in updated.items()), (
            f"update: after the change the service holds {_held(remote)}; expected {expected}")

    def test_tags_are_added_and_removed_one_by_one(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        _require(connector, Capability.WRITE_CONTACTS, Capability.WRITE_MEMBERSHIPS)
        service = _require_service(service, "contact")
        key, both = _key("tags"), ("conformance-a", "conformance-b")
        remote = self._create(connector, service, key, "tags", tags=both, tags_add=both)
        assert set(both) <= remote.tags, (
            f"tags: after adding {list(both)} the service holds {_held(remote)}; expected both tags")
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "subscribed", {}, tags=("conformance-b",), tags_remove=("conformance-a",),
            previous_status="subscribed", consent_method="form"))
        remote = service.contact(key)
        assert outcome is not None and outcome.status == OutcomeStatus.OK, (
            f"tags: removing a tag was answered {_shown(outcome)}; expected ok")
        assert remote is not None and "conformance-a" not in remote.tags and "conformance-b" in remote.tags, (
            f"tags: after removing 'conformance-a' the service holds {_held(remote)}; "
            "expected 'conformance-b' only (a removal must not touch other tags)")

    def test_unsubscribe_lands_as_the_services_own_opt_out(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        _require(connector, Capability.WRITE_CONSENT)
        service = _require_service(service, "contact")
        key = _key("unsubscribe")
        self._create(connector, service, key, "unsubscribe")
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "unsubscribed", {}, previous_status="subscribed"))
        remote = service.contact(key)
        assert outcome is not None and outcome.status == OutcomeStatus.OK, (
            f"unsubscribe: the connector answered {_shown(outcome)}; expected ok")
        assert remote is not None and remote.status == OPTED_OUT, (
            f"unsubscribe: the service holds {_held(remote)}; expected status {OPTED_OUT} "
            "(the service's own opt-out, which no campaign can override)")

    def test_no_consent_never_becomes_subscribed(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        """Without consent (``none``) a new contact is not made mailable, a pending one is not
        made subscribed, a subscribed one whose consent was withdrawn stops being mailable, and
        an opted-out one is not brought back."""
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact")
        cases = [
            (ContactChange(_key("none"), "upsert", "none", dict(self.scenario_attributes[0])),
             {None, NOT_SUBSCRIBED, OPTED_OUT}),
            (ContactChange(_key("pending"), "upsert", "pending", dict(self.scenario_attributes[0])),
             {None, NOT_SUBSCRIBED, OPTED_OUT, PENDING}),
        ]
        withdrawn = _key("withdrawn")
        self._create(connector, service, withdrawn, "no consent")
        cases.append((ContactChange(withdrawn, "upsert", "none", {}, previous_status="subscribed"),
                      {None, NOT_SUBSCRIBED, OPTED_OUT}))
        if Capability.WRITE_CONSENT in connector.enabled_capabilities():
            erased = _key("erased")
            self._create(connector, service, erased, "no consent")
            self._write_one(connector, ContactChange(erased, "upsert", "unsubscribed", {},
                                                     previous_status="subscribed"))
            cases.append((ContactChange(erased, "upsert", "none", {}, previous_status="unsubscribed"),
                          {NOT_SUBSCRIBED, OPTED_OUT}))
        wrong = []
        for change, allowed in cases:
            outcome = self._write_one(connector, change)
            remote = service.contact(change.contact_key)
            if (remote.status if remote else None) not in allowed or outcome is None:
                wrong.append(f"status {change.status!r} (previous {change.previous_status!r}) was answered "
                             f"{_shown(outcome)} and the service holds {_held(remote)}; expected "
                             + " or ".join(sorted(a or "no contact" for a in allowed)))
        assert not wrong, "no consent: " + "; ".join(wrong)

    def test_delete_removes_the_contact(self, connector: Connector, service: ServiceAdapter | None) -> None:
        _require(connector, Capability.DELETE_CONTACTS)
        service = _require_service(service, "contact")
        key = _key("delete")
        self._create(connector, service, key, "delete")
        outcome = self._write_one(connector, ContactChange(key, "delete", "none", {}, previous_status="subscribed"))
        remote = service.contact(key)
        assert outcome is not None and outcome.status == OutcomeStatus.OK and remote is None, (
            f"delete: the connector answered {_shown(outcome)} and the service holds {_held(remote)}; "
            "expected ok and no contact")

    def _replay_batch(self, connector: Connector) -> list[ContactChange]:
        enabled = connector.enabled_capabilities()
        tags = ("conformance-replay",) if Capability.WRITE_MEMBERSHIPS in enabled else ()
        batch = [ContactChange(_key(f"replay{i}"), "upsert", "subscribed", dict(self.scenario_attributes[0]),
                               tags=tags, tags_add=tags, consent_method="form") for i in range(3)]
        if Capability.WRITE_CONSENT in enabled:
            batch.append(ContactChange(_key("replay-out"), "upsert", "unsubscribed", {}))
        return batch

    def test_replaying_a_batch_changes_nothing(self, connector: Connector, service: ServiceAdapter | None) -> None:
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact")
        batch = self._replay_batch(connector)
        first = {o.contact_key: o for o in self._write(connector, batch).outcomes}
        before = {c.contact_key: service.contact(c.contact_key) for c in batch}
        second = {o.contact_key: o for o in self._write(connector, batch).outcomes}
        after = {c.contact_key: service.contact(c.contact_key) for c in batch}
        not_ok = [f"{k}: {_shown(first.get(k))}, then {_shown(second.get(k))}" for k in before
                  if (first.get(k) and first[k].status) != OutcomeStatus.OK or (second.get(k) and second[k].status) != OutcomeStatus.OK]
        assert not not_ok, f"replay: expected ok both times, got {'; '.join(not_ok)}"
        copies = [f"{k}: {_held(r)}" for k, r in before.items() if r is None or r.copies != 1]
        assert not copies, f"replay: after one write the service holds {'; '.join(copies)}; expected one copy each"
        changed = [f"{k}: {_held(before[k])} became {_held(after[k])}" for k in before if before[k] != after[k]]
        assert not changed, f"replay: writing the same batch again changed the service: {'; '.join(changed)}; expected no change"

    def test_a_batch_with_refused_records_reports_each(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        if not connector.enabled_capabilities() & WRITE_CAPABILITIES:
            pytest.skip("the connector does not write")
        service = _require_service(service, "contact")
        refused = list(service.refused_changes())
        if not refused:
            pytest.skip("the service adapter names no change the service refuses (refused_changes)")
        good = [ContactChange(_key(f"accepted{i}"), "upsert", "subscribed", dict(self.scenario_attributes[0]),
                              consent_method="form") for i in range(2)]
        batch = [good[0], *refused, good[1]]
        answers = {o.contact_key: o for o in self._write(connector, batch).outcomes}
        wrong = [f"{c.contact_key}: {_shown(answers.get(c.contact_key))}" for c in refused
                 if answers.get(c.contact_key) is None or answers[c.contact_key].status != OutcomeStatus.REJECTED
                 or not answers[c.contact_key].reason]
        assert not wrong, f"refusals: expected each refused record rejected with a reason, got {'; '.join(wrong)}"
        missing = [f"{c.contact_key}: {_shown(answers.get(c.contact_key))}, service holds {_held(service.contact(c.contact_key))}"
                   for c in good if (answers.get(c.contact_key) and answers[c.contact_key].status) != OutcomeStatus.OK
                   or service.contact(c.contact_key) is None]
        assert not missing, f"refusals: the accepted records of the batch must land regardless, got {'; '.join(missing)}"

    # -- behaviour scenarios: retries ----------------------------------------------------------

    def _attempts(self, connector: Connector, service: ServiceAdapter) -> int:
        attempts = service.max_attempts(connector)
        if attempts is None:
            pytest.skip("the connector declares no number of attempts (ServiceAdapter.max_attempts)")
        if attempts < 2:
            pytest.skip(f"the connector is configured for {attempts} attempt: nothing is retried")
        return attempts

    def test_429_and_5xx_are_retried_within_the_declared_attempts(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact", "fail_next", "exchanges")
        attempts = self._attempts(connector, service)
        # One fewer failure than the attempts: the last try must get through.
        key, statuses = _key("retried"), [429 if i % 2 == 0 else 503 for i in range(attempts - 1)]
        mark = len(service.exchanges())
        for status in statuses:
            service.fail_next(1, status, retry_after=0.05)
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "subscribed", dict(self.scenario_attributes[0]), consent_method="form"))
        seen = [e.status for e in service.exchanges()[mark:]]
        assert outcome is not None and outcome.status == OutcomeStatus.OK and service.contact(key) is not None, (
            f"retries: with {len(statuses)} failures ({statuses}) before success and {attempts} attempts "
            f"declared, the connector answered {_shown(outcome)} after requests answered {seen}; "
            "expected it to retry until the write landed (ok)")
        # As many failures as the attempts: the connector must give up, leaving the record to retry.
        key = _key("given-up")
        mark = len(service.exchanges())
        service.fail_next(attempts, 503)
        outcome = self._write_one(connector, ContactChange(
            key, "upsert", "subscribed", dict(self.scenario_attributes[0]), consent_method="form"))
        seen = [e.status for e in service.exchanges()[mark:]]
        assert outcome is not None and outcome.status == OutcomeStatus.RETRYABLE and outcome.reason, (
            f"retries: with every one of its {attempts} declared attempts answered 503, the connector "
            f"answered {_shown(outcome)} after requests answered {seen}; expected retryable with a reason "
            f"after exactly {attempts} attempts")
        assert seen.count(503) == attempts, (
            f"retries: the connector made {seen.count(503)} attempts ({seen}); expected {attempts}")

    def test_retry_hint_of_a_429_is_honoured(self, connector: Connector, service: ServiceAdapter | None) -> None:
        _require(connector, Capability.WRITE_CONTACTS)
        service = _require_service(service, "contact", "fail_next", "exchanges")
        self._attempts(connector, service)
        wait = 0.3
        mark = len(service.exchanges())
        service.fail_next(1, 429, retry_after=wait)
        outcome = self._write_one(connector, ContactChange(
            _key("rate-limited"), "upsert", "subscribed", dict(self.scenario_attributes[0]), consent_method="form"))
        seen: list[Exchange] = list(service.exchanges()[mark:])
        limited = next((i for i, e in enumerate(seen) if e.status == 429), None)
        assert limited is not None and limited + 1 < len(seen) and outcome is not None and outcome.status == OutcomeStatus.OK, (
            f"retry hint: after a 429 the connector answered {_shown(outcome)} with requests answered "
            f"{[e.status for e in seen]}; expected a retry that lands (ok)")
        # A lower bound only: a slow machine makes the gap longer, never shorter.
        gap = seen[limited + 1].at - seen[limited].at
        assert gap >= wait - 0.01, (
            f"retry hint: the connector retried {gap:.3f} s after a 429 that asked it to wait {wait} s; "
            "expected it to wait at least as long as the service asked")

    # -- behaviour scenarios: incremental reads ------------------------------------------------

    def _seeded_read(self, connector: Connector, service: ServiceAdapter | None) -> tuple[ServiceAdapter, list[str]]:
        _require(connector, Capability.READ_CONTACTS)
        service = _require_service(service, "add_contacts")
        if not service.page_size:
            pytest.skip("the service adapter declares no page_size for contacts")
        keys = [_key(f"read{i:05d}") for i in range(2 * service.page_size + 3)]
        service.add_contacts(keys)
        return service, keys

    def _keys_by_batch(self, connector: Connector, cursor: Any = None) -> list[tuple[Batch, list[str]]]:
        return [(batch, _emails(batch, connector.connection))
                for batch in _read_all(connector, Stream.CONTACTS, cursor)]

    def test_incremental_read_pages_through_everything_once(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        service, keys = self._seeded_read(connector, service)
        batches = self._keys_by_batch(connector)
        counts = Counter(k for _, batch_keys in batches for k in batch_keys)
        missing = [k for k in keys if counts[k] == 0]
        twice = {k: counts[k] for k in keys if counts[k] > 1}
        assert not missing, (
            f"paging: a full read of contacts yielded {len(batches)} batches and missed {len(missing)} of the "
            f"{len(keys)} contacts the service holds (e.g. {missing[:3]}); expected every contact once")
        assert not twice, (
            f"paging: a full read yielded {len(twice)} contacts more than once (e.g. "
            f"{dict(list(twice.items())[:3])}); expected every contact once")

    def test_incremental_read_resumes_from_each_cursor_without_gaps_or_duplicates(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        service, keys = self._seeded_read(connector, service)
        batches = self._keys_by_batch(connector)
        wanted = set(keys)
        for index, (batch, _) in enumerate(batches[:-1][:3]):
            before = {k for _, batch_keys in batches[:index + 1] for k in batch_keys} & wanted
            cursor = json.loads(json.dumps(batch.cursor))
            resumed = Counter(k for _, batch_keys in self._keys_by_batch(connector, cursor) for k in batch_keys
                              if k in wanted)
            missing = sorted(wanted - before - set(resumed))
            again = sorted((before & set(resumed)) | {k for k, n in resumed.items() if n > 1})
            where = f"resuming from the cursor of batch {index + 1} of {len(batches)} ({cursor!r})"
            assert not missing, (
                f"resume: {where} never yielded {len(missing)} contacts (e.g. {missing[:3]}); "
                "expected the rest of the read")
            assert not again, (
                f"resume: {where} yielded {len(again)} contacts again (e.g. {again[:3]}); "
                "expected only those after the cursor")

    def test_incremental_read_from_the_last_cursor_yields_only_later_contacts(
        self, connector: Connector, service: ServiceAdapter | None
    ) -> None:
        service, keys = self._seeded_read(connector, service)
        batches = self._keys_by_batch(connector)
        later = [_key(f"later{i}") for i in range(3)]
        service.add_contacts(later)
        cursor = json.loads(json.dumps(batches[-1][0].cursor))
        yielded = Counter(k for _, batch_keys in self._keys_by_batch(connector, cursor) for k in batch_keys)
        missing = [k for k in later if not yielded[k]]
        again = sorted(k for k in keys if yielded[k]) + sorted(k for k in later if yielded[k] > 1)
        assert not missing, (
            f"incremental: reading from the last cursor ({cursor!r}) missed {missing} added after it; "
            "expected every contact changed since")
        assert not again, (
            f"incremental: reading from the last cursor yielded {len(again)} contacts it had already "
            f"yielded (e.g. {again[:3]}); expected only the {len(later)} added since")
