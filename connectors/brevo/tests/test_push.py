from __future__ import annotations

import json
import threading

from hypothesis import given
from hypothesis import strategies as st
from segsync import ContactChange


def change(email, status="subscribed", previous=None, attributes=None, add=(), remove=(), op="upsert", tags=None):
    return ContactChange(
        contact_key=email, op=op, status=status, attributes=attributes or {},
        tags=tuple(tags if tags is not None else add), tags_add=tuple(add), tags_remove=tuple(remove),
        previous_status=previous,
    )


def api_calls(emulator):
    return [(e.method, e.path) for e in emulator.requests()]


def test_bulk_import_with_invalid_rows(emulator, connector):
    changes = [
        change("ann@example.com", attributes={"first_name": "Ann"}, add=("vip",)),
        change("bob@example.com", attributes={"last_name": "Lee"}, add=("vip",)),
        change("jösé@example.com", attributes={"first_name": "José"}, add=("vip",)),  # Brevo refuses
        change("not an email"),
    ]
    result = connector.write(changes)
    status = {o.contact_key: o.status for o in result.outcomes}
    assert status == {
        "ann@example.com": "ok", "bob@example.com": "ok",
        "jösé@example.com": "rejected", "not an email": "rejected",
    }
    assert [o.field for o in result.outcomes if o.status == "rejected"] == ["email", "email"]
    ann = emulator.state.contact("ann@example.com")
    lists = {l.name: l.id for l in emulator.state.lists.values()}
    assert ann.attributes == {"FIRSTNAME": "Ann"}
    assert ann.list_ids == {lists["segsync"], lists["vip"]}
    assert emulator.state.contact("jösé@example.com") is None
    imports = emulator.requests("POST", "/v3/contacts/import")
    assert len(imports) == 1
    assert result.calls == len(emulator.requests()) + 1  # +1: the report download
    assert ("GET", "/v3/contacts/attributes") in api_calls(emulator)


def test_an_internationalized_domain_lands_in_its_punycode_form(emulator, connector):
    # segsync's contact key holds the domain as punycode, the form Brevo accepts (README,
    # "Addresses with non-ASCII characters"); a non-ASCII local part is refused (test above).
    result = connector.write([change("ann@xn--bcher-kva.de", add=("vip",))])
    assert [(o.contact_key, o.status) for o in result.outcomes] == [("ann@xn--bcher-kva.de", "ok")]
    assert emulator.state.contact("ann@xn--bcher-kva.de") is not None


def test_list_membership_diffs_use_add_and_remove(emulator, connector):
    a, b = emulator.state.add_list("a"), emulator.state.add_list("b")
    for n in range(160):
        emulator.state.seed_contact(f"u{n}@example.com", list_ids=[b] if n < 3 else [])
    emulator.clear_log()
    changes = [change(f"u{n}@example.com", previous="subscribed", add=("a",)) for n in range(160)]
    changes += [change("u0@example.com", previous="subscribed", remove=("b",))]
    changes += [change("ghost@example.com", previous="subscribed", add=("a",))]
    result = connector.write(changes)
    assert [o.status for o in result.outcomes].count("ok") == 161
    assert result.outcomes[-1].status == "rejected"
    assert api_calls(emulator) == [
        ("GET", "/v3/contacts/lists"),
        ("POST", f"/v3/contacts/lists/{a}/contacts/add"),
        ("POST", f"/v3/contacts/lists/{a}/contacts/add"),
        ("POST", f"/v3/contacts/lists/{b}/contacts/remove"),
    ]
    assert result.calls == 4
    assert len(emulator.state.lists[a].members) == 160
    assert emulator.state.contact("u0@example.com").list_ids == {a}
    assert emulator.state.contact("u1@example.com").list_ids == {a, b}


def test_blocklist_push_both_directions(emulator, connector):
    emulator.state.seed_contact("stay@example.com")
    emulator.state.seed_contact("back@example.com", blacklisted=True)
    emulator.clear_log()
    result = connector.write([
        change("stay@example.com", status="unsubscribed", previous="subscribed"),
        change("back@example.com", status="subscribed", previous="unsubscribed"),
        change("new@example.com", status="complained", attributes={"first_name": "N"}),
    ])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"]
    assert emulator.state.contact("stay@example.com").email_blacklisted is True
    assert emulator.state.contact("back@example.com").email_blacklisted is False
    assert emulator.state.contact("new@example.com").email_blacklisted is True
    assert [p for m, p in api_calls(emulator) if m == "POST"] == [
        "/v3/contacts/folders", "/v3/contacts/lists",  # the audience list, created once
        "/v3/contacts/batch", "/v3/contacts/import",  # blocklist flips before any import
    ]


def test_a_new_contact_without_a_confirmed_opt_in_is_not_added(emulator, connector):
    # Brevo mails every contact it holds unless blocklisted: "none" or "pending" must not land.
    result = connector.write([
        change("none@example.com", status="none", attributes={"first_name": "N"}),
        change("pending@example.com", status="pending", attributes={"first_name": "P"}),
        change("yes@example.com", status="subscribed"),
    ])
    assert [(o.contact_key, o.status, o.field) for o in result.outcomes] == [
        ("none@example.com", "rejected", "status"),
        ("pending@example.com", "rejected", "status"),
        ("yes@example.com", "ok", None),
    ]
    assert result.outcomes[0].reason == "no marketing consent on record; the contact is not added to Brevo"
    assert emulator.state.contact("none@example.com") is None
    assert emulator.state.contact("pending@example.com") is None
    assert emulator.state.contact("yes@example.com").email_blacklisted is False


def test_consent_withdrawn_from_a_mailable_contact_blocklists_it(emulator, connector):
    emulator.state.seed_contact("was-in@example.com")
    emulator.state.seed_contact("was-pending@example.com")
    emulator.state.seed_contact("was-out@example.com", blacklisted=True)
    result = connector.write([
        change("was-in@example.com", status="none", previous="subscribed"),
        change("was-pending@example.com", status="none", previous="pending"),
        change("was-out@example.com", status="none", previous="unsubscribed"),
    ])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"]
    assert emulator.state.contact("was-in@example.com").email_blacklisted is True
    assert emulator.state.contact("was-pending@example.com").email_blacklisted is True
    assert emulator.state.contact("was-out@example.com").email_blacklisted is True


def test_delete_including_405(emulator, connector):
    emulator.state.seed_contact("gone@example.com")
    emulator.clear_log()
    result = connector.write([
        change("gone@example.com", op="delete"),
        change("never@example.com", op="delete"),
        change("owner@example.com", op="delete"),
    ])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "rejected"]
    assert "405" in result.outcomes[2].reason
    assert emulator.state.contact("gone@example.com") is None
    assert emulator.state.contact("owner@example.com") is not None
    assert result.calls == 3 and len(emulator.requests("DELETE")) == 3


def test_no_change_writes_make_no_calls(emulator, connector):
    emulator.state.seed_contact("ann@example.com")
    emulator.clear_log()
    result = connector.write([
        change("ann@example.com", previous="subscribed"),
        change("ann@example.com", status="unsubscribed", previous="cleaned"),
    ])
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    assert result.calls == 0 and emulator.requests() == []


def test_missing_attribute_is_rejected_until_fix(emulator, connector):
    emulator.state.seed_contact("ann@example.com")
    problems = connector.check()
    assert any("COMPANY" in p for p in problems)
    first = connector.write([change("ann@example.com", previous="subscribed", attributes={"company": "Acme"})])
    assert first.outcomes[0].status == "rejected" and first.outcomes[0].field == "company"
    assert emulator.requests("POST", "/v3/contacts/attributes") == []  # never silently created
    created = connector.fix()
    assert "created Brevo contact attribute COMPANY" in created
    assert connector.check() == []
    second = connector.write([change("ann@example.com", previous="subscribed", attributes={"company": "Acme"})])
    assert second.outcomes[0].status == "ok"
    assert emulator.state.contact("ann@example.com").attributes["COMPANY"] == "Acme"


def test_segments_as_attribute(emulator, make_connector):
    connector = make_connector(segment_mode="attribute")
    connector.fix()
    result = connector.write([change("ann@example.com", add=("vip", "new"), tags=("new", "vip"))])
    assert result.outcomes[0].status == "ok"
    assert emulator.state.contact("ann@example.com").attributes["SEGSYNC_SEGMENTS"] == "new,vip"
    assert {l.name for l in emulator.state.lists.values()} == {"segsync"}


def test_each_change_is_reported_when_its_last_call_is_done(emulator, make_connector):
    # Small imports: several import jobs; a delete; a membership-only change (one list call).
    connector = make_connector(import_max_bytes=1000)
    emulator.state.seed_contact("gone@example.com")
    emulator.state.seed_contact("member@example.com")
    new = [change(f"n{i:03d}@example.com", attributes={"first_name": f"N{i}"}) for i in range(30)]
    changes = [change("gone@example.com", op="delete", status="unsubscribed", previous="subscribed"),
               *new,
               change("member@example.com", previous="subscribed", add=("vip",)),
               change("not an email")]
    reports: list[list[str]] = []
    result = connector.write(changes, report=lambda outcomes: reports.append([o.contact_key for o in outcomes]))
    imports = len(emulator.requests("POST", "/v3/contacts/import"))
    assert imports >= 2  # the 1,000-byte limit splits the 30 rows
    # First what needs no call (refused while planning), then the delete, each import job as it
    # completes, and the list call.
    assert reports[0] == ["not an email"]
    assert reports[1] == ["gone@example.com"]
    assert sorted(k for r in reports[2:2 + imports] for k in r) == sorted(c.contact_key for c in new)
    assert reports[2 + imports:] == [["member@example.com"]]
    assert sorted(k for r in reports for k in r) == sorted(c.contact_key for c in changes)
    assert {o.contact_key: o.status for o in result.outcomes}["not an email"] == "rejected"


def test_each_import_row_is_measured_once_however_the_planner_groups_it(emulator, make_connector, monkeypatch):
    # The planner prices three ways to import (one per list set, all rows + one per list, all
    # rows + list calls) by cutting the rows into chunks of import_max_bytes; a row's JSON (its
    # size, and its text in the import's body) is written once, not once per grouping and again
    # when the chosen imports are cut or sent.
    from segsync_brevo import planner

    measured: list[dict] = []
    write_json = planner._row_json
    monkeypatch.setattr(planner, "_row_json", lambda row: measured.append(row) or write_json(row))
    vip, trial = emulator.state.add_list("vip"), emulator.state.add_list("trial")
    changes = [change(f"m{i:02d}@example.com", attributes={"first_name": f"F{i}"},
                      add=("vip", "trial") if i % 2 else ("vip",)) for i in range(40)]
    result = make_connector(import_max_bytes=600).write(changes)

    assert [o.status for o in result.outcomes] == ["ok"] * 40
    assert len(measured) == 80  # each contact's row, and its email-only row for the per-list imports
    assert sorted(r["email"] for r in measured if "attributes" in r) == [f"m{i:02d}@example.com" for i in range(40)]
    assert len(emulator.state.lists[vip].members) == 40 and len(emulator.state.lists[trial].members) == 20
    assert emulator.state.contact("m01@example.com").list_ids >= {vip, trial}
    assert result.calls == sum(1 for _ in emulator.requests())


@given(st.emails() | st.text(max_size=30).map(lambda s: s + "@example.com"))
def test_a_rows_measured_size_is_its_json_size(email):
    from segsync_brevo.planner import _sized

    for row in ({"email": email}, {"email": email, "attributes": {"FIRSTNAME": email[:5]}}):
        _, _, size, text = _sized(0, row)
        assert size == len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        assert text == json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def test_an_import_goes_out_as_brevo_json_and_lists_are_resolved_once_per_write(emulator, connector, monkeypatch):
    # The import body is JSON already (the rows the planner sized): the SDK sends it without
    # walking every value, with Brevo's field names; each segment's list is looked up once.
    emulator.keep_bodies = True
    vip = emulator.state.add_list("vip")
    looked_up: list[str] = []
    list_id = connector.directory.list_id
    monkeypatch.setattr(connector.directory, "list_id",
                        lambda name, *, create: looked_up.append(name) or list_id(name, create=create))
    result = connector.write([change(f"j{i}@example.com", attributes={"first_name": f"J{i}"}, add=("vip",))
                              for i in range(3)])
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    assert looked_up.count("vip") == 1
    (sent,) = [json.loads(r.body) for r in emulator.requests("POST", "/v3/contacts/import")]
    audience = next(l.id for l in emulator.state.lists.values() if l.name == "segsync")
    assert sent == {"jsonBody": [{"email": f"j{i}@example.com", "attributes": {"FIRSTNAME": f"J{i}"}} for i in range(3)],
                    "listIds": sorted({vip, audience}),
                    "emailBlacklist": False, "updateExistingContacts": True, "emptyContactsAttributes": False}


def test_an_imports_rows_are_sent_as_the_planner_wrote_them_while_measuring_them(emulator, connector, monkeypatch):
    # Each row's JSON is written once, when the planner measures it; the import's body is those
    # texts joined, not the rows encoded again in the thread that sends them. Quotes,
    # backslashes and accents arrive as the rows say.
    from segsync_brevo import api

    emulator.keep_bodies = True
    encoded: list[object] = []

    class Spy(json.JSONEncoder):
        def encode(self, o):
            encoded.append(o)
            return super().encode(o)

    monkeypatch.setattr(api, "_COMPACT", Spy(separators=(",", ":"), ensure_ascii=False))
    names = ['Zoë "Z"', "back\\slash", "plain"]
    result = connector.write([change(f"t{i}@example.com", attributes={"first_name": name}, add=("vip",))
                              for i, name in enumerate(names)])

    assert [o.status for o in result.outcomes] == ["ok"] * 3
    (sent,) = [r.body for r in emulator.requests("POST", "/v3/contacts/import")]
    rows = [{"email": f"t{i}@example.com", "attributes": {"FIRSTNAME": name}} for i, name in enumerate(names)]
    assert sent.startswith('{"jsonBody":' + json.dumps(rows, separators=(",", ":"), ensure_ascii=False) + ",")
    assert json.loads(sent)["jsonBody"] == rows
    list_ids = json.loads(sent)["listIds"]
    # Encoded when sent: the body's keys and its other fields, never the rows.
    assert encoded == ["jsonBody", "listIds", list_ids, "emailBlacklist", False,
                       "updateExistingContacts", True, "emptyContactsAttributes", False]


def test_list_calls_go_out_side_by_side(emulator, connector):
    # 600 known contacts entering list "a": four add calls of ≤ 150, sent at once (up to
    # max_connections; the contacts bucket allows 10 a second) rather than one after another.
    a = emulator.state.add_list("a")
    for n in range(600):
        emulator.state.seed_contact(f"s{n:03d}@example.com")
    emulator.latency = 0.3
    emulator.clear_log()
    reports: list[list[str]] = []
    result = connector.write([change(f"s{n:03d}@example.com", previous="subscribed", add=("a",)) for n in range(600)],
                             report=lambda outcomes: reports.append([o.contact_key for o in outcomes]))
    assert [o.status for o in result.outcomes] == ["ok"] * 600
    assert api_calls(emulator) == [("GET", "/v3/contacts/lists")] + [("POST", f"/v3/contacts/lists/{a}/contacts/add")] * 4
    assert emulator.max_concurrency() == 4
    assert sorted(len(r) for r in reports) == [150] * 4  # each call's contacts reported as it ends
    assert len(emulator.state.lists[a].members) == 600


class ScriptedProcesses:
    """The import side of a Brevo API: process ``n`` (numbered from 1 as imports arrive) is
    ``in_process`` for its first ``busy[n]`` polls, then completed."""

    def __init__(self, busy: dict[int, int]) -> None:
        self.busy = busy
        self.polls: list[int] = []
        self.imported = 0

    def import_contacts(self, rows, *, list_ids, email_blacklist):
        self.imported += 1
        return self.imported

    def get_process(self, process_id):
        self.polls.append(process_id)
        done = self.polls.count(process_id) > self.busy[process_id]
        return {"id": process_id, "status": "completed" if done else "in_process", "info": {"import": {}}}


def test_imports_are_polled_oldest_first_and_a_round_without_progress_costs_one_poll():
    from pydantic import SecretStr

    from segsync_brevo import BrevoSettings
    from segsync_brevo.outcomes import Outcomes
    from segsync_brevo.planner import ImportJob, Plan
    from segsync_brevo.writer import Writer

    api = ScriptedProcesses({1: 2, 2: 0, 3: 1})
    sleeps: list[float] = []
    settings = BrevoSettings(api_key=SecretStr("k"), max_connections=1)
    writer = Writer(api, settings, directory=None, poll_seconds=0.5, sleep=sleeps.append)
    changes = [change(f"i{n}@example.com") for n in range(3)]
    plan = Plan(imports=[ImportJob([{"email": c.contact_key}], [n], frozenset({7}), False)
                         for n, c in enumerate(changes)])
    reports: list[list[str]] = []
    outcomes = Outcomes(changes, lambda done: reports.append([o.contact_key for o in done]))
    for job in plan.imports:
        outcomes.expect(job.indices)
    writer._imports(plan, outcomes)

    # Round 1: process 1 still running, 2 and 3 not asked. Round 2 (after twice the wait): the
    # same. Round 3: 1 and 2 are done, 3 is still running. Round 4 (the wait starts again after
    # progress): 3 is done.
    assert api.polls == [1, 1, 1, 2, 3, 3]
    assert sleeps == [0.5, 1.0, 2.0, 0.5]
    assert reports == [["i0@example.com"], ["i1@example.com"], ["i2@example.com"]]
    assert [o.status for o in outcomes.result()] == ["ok"] * 3



class ProcessesInFlight(ScriptedProcesses):
    """:class:`ScriptedProcesses` that records which polls were in flight together: a poll is
    answered once ``together[n]`` polls are in flight (n counts the polls), so polls sent one
    after another would wait for each other (and fail the test) instead of passing by luck.
    ``errors`` maps a process to the error its first poll raises."""

    def __init__(self, busy, together, errors=None) -> None:
        super().__init__(busy)
        self.together = together
        self.errors = errors or {}
        self.in_flight: list[int] = []
        self.groups: list[list[int]] = []
        self.arrived = self.released = 0  # polls that arrived, polls whose group was complete
        self.lock = threading.Condition()

    def get_process(self, process_id):
        with self.lock:
            self.in_flight.append(process_id)
            arrival, self.arrived = self.arrived, self.arrived + 1
            if len(self.in_flight) == self.together[arrival]:  # the last of its group records it
                self.groups.append(sorted(self.in_flight))
                self.released = self.arrived
                self.lock.notify_all()
            # a guard against a hang, not a measure: too few in flight fails the assertions
            self.lock.wait_for(lambda: arrival < self.released, timeout=10)
            answer = super().get_process(process_id)
            self.in_flight.remove(process_id)
        if process_id in self.errors:
            raise self.errors.pop(process_id)
        return answer


def poll_imports(api, imports, max_connections, sizes=None):
    from pydantic import SecretStr

    from segsync_brevo import BrevoSettings
    from segsync_brevo.outcomes import Outcomes
    from segsync_brevo.planner import ImportJob, Plan
    from segsync_brevo.writer import Writer

    sleeps: list[float] = []
    settings = BrevoSettings(api_key=SecretStr("k"), max_connections=max_connections)
    writer = Writer(api, settings, directory=None, poll_seconds=0.5, sleep=sleeps.append)
    sizes = sizes or [1] * imports
    changes = [change(f"i{n}@example.com") for n in range(sum(sizes))]
    jobs, first = [], 0
    for size in sizes:
        indices = list(range(first, first + size))
        jobs.append(ImportJob([{"email": changes[i].contact_key} for i in indices], indices, frozenset({7}), False))
        first += size
    reports: list[list[str]] = []
    outcomes = Outcomes(changes, lambda done: reports.append([o.contact_key for o in done]))
    for job in jobs:
        outcomes.expect(job.indices)
    api.writer = writer
    writer._imports(Plan(imports=jobs), outcomes)
    return sleeps, reports, outcomes.result()


def test_imports_behind_one_found_done_are_polled_side_by_side():
    # Round 1: process 1 still running (one poll). Round 2: process 1 is done, so the three
    # behind it are polled together, all done: 5 polls, as one after another, in two latencies.
    api = ProcessesInFlight({1: 1, 2: 0, 3: 0, 4: 0}, together=[1, 1, 3, 3, 3])
    sleeps, reports, result = poll_imports(api, 4, max_connections=10)

    assert sorted(api.polls[:2]) == [1, 1] and sorted(api.polls[2:]) == [2, 3, 4]
    assert api.groups == [[1], [1], [2, 3, 4]]
    assert sleeps == [0.5, 1.0]
    assert reports == [["i0@example.com"], ["i1@example.com"], ["i2@example.com"], ["i3@example.com"]]
    assert [o.status for o in result] == ["ok"] * 4


def test_side_by_side_polls_go_max_connections_at_a_time_and_settle_each_import_on_its_own():
    from segsync_brevo.api import BrevoApiError, RetryableApiError

    # max_connections 2. Round 1: 1 is done; 2 and 3 together (3's poll is refused for good:
    # its rows rejected, the round goes on); 4 and 5 together: 4 still running, 5 done (settled
    # now), so the round stops before 6. Round 2: 4 is done, then 6 and 7 together: 6 done, 7's
    # poll answered 503 (the round ends; 7 is polled again at once: it was accepted with 1,
    # which took one round). Round 3: 7 is done.
    errors = {3: BrevoApiError(400, "invalid_parameter", "process 3 is not an import"),
              7: RetryableApiError(503, "unavailable", "try again")}
    api = ProcessesInFlight({1: 0, 2: 0, 3: 0, 4: 1, 5: 0, 6: 0, 7: 0}, errors=errors,
                            together=[1, 2, 2, 2, 2, 1, 2, 2, 1])
    sleeps, reports, result = poll_imports(api, 7, max_connections=2)

    assert api.groups == [[1], [2, 3], [4, 5], [4], [6, 7], [7]]
    assert sorted(api.polls) == [1, 2, 3, 4, 4, 5, 6, 7, 7]
    assert sleeps == [0.5, 0.5, 0.0]
    assert reports == [["i0@example.com"], ["i1@example.com"], ["i2@example.com"],
                       ["i4@example.com"], ["i3@example.com"], ["i5@example.com"], ["i6@example.com"]]
    assert [o.status for o in result] == ["ok", "ok", "rejected", "ok", "ok", "ok", "ok"]
    assert result[2].reason == (
        "import process 3 unreadable: Brevo API error 400 invalid_parameter: process 3 is not an import")



class ImportsASecondApart(ProcessesInFlight):
    """Imports sent one at a time (max_connections 1), each accepted a second of the writer's
    clock after the one before and numbered as ``numbers`` says (Brevo numbers them as they
    arrive, which need not be the order of their answers); the polls may then go 3 at once."""

    def __init__(self, busy, together, numbers) -> None:
        super().__init__(busy, together)
        self.numbers = numbers

    def import_contacts(self, rows, *, list_ids, email_blacklist):
        self.writer.clock.now += 1.0
        if self.imported + 1 == len(self.busy):
            self.writer.settings = self.writer.settings.model_copy(update={"max_connections": 3})
        return self.numbers[super().import_contacts(rows, list_ids=list_ids, email_blacklist=email_blacklist) - 1]


def test_only_imports_that_can_be_done_are_polled_beside_the_one_found_done():
    # Processes 2, 1, 3, 4, 5, 6 of 1, 4, 1, 4, 1, 1 rows accepted at 1, 2, ... 6 s. Round 1
    # (6.5 s): process 1 is done, having taken at most 4.5 s for its 4 rows. Process 2 was
    # accepted before it: polled next, done. Process 3 can be done only from 7.625 s (had it
    # waited for 1's place: 6.5 s + 4.5 s / 4), so it is polled alone: done; then 4, alone: not
    # done, the round stops. Rounds 2 and 3 (7 s, 8 s): 4 is done at 8 s, and 5 and 6 (done by
    # 7.625 s even after waiting) are polled together.
    api = ImportsASecondApart({1: 0, 2: 0, 3: 0, 4: 2, 5: 0, 6: 0}, together=[1, 1, 1, 1, 1, 1, 2, 2],
                              numbers=[2, 1, 3, 4, 5, 6])
    sleeps, reports, result = poll_imports(api, 6, max_connections=1, sizes=[1, 4, 1, 4, 1, 1])

    assert api.groups == [[1], [2], [3], [4], [4], [4], [5, 6]]
    assert sorted(api.polls) == [1, 2, 3, 4, 4, 4, 5, 6]
    assert sleeps == [0.5, 0.5, 1.0]
    assert reports == [[f"i{n}@example.com" for n in range(1, 5)], ["i0@example.com"], ["i5@example.com"],
                       [f"i{n}@example.com" for n in range(6, 10)], ["i10@example.com"], ["i11@example.com"]]
    assert [o.status for o in result] == ["ok"] * 12

class RepliesOutOfOrder(ProcessesInFlight):
    """Imports sent side by side and numbered as they arrive, whose ``202``s come at the times
    ``accepted_at`` gives per process number (not in number order). Each time is what the clock
    reads in the thread the 202 came to; every other read (the calling thread's, later) sees
    the service's time, which is the last 202's once every import is answered."""

    def __init__(self, busy, together, accepted_at) -> None:
        super().__init__(busy, together)
        self.accepted_at = accepted_at
        self.now = 0.0
        self.answered: dict[int, float] = {}  # thread -> its 202's time, until that thread reads it
        self.all_sent = threading.Barrier(len(busy))

    def import_contacts(self, rows, *, list_ids, email_blacklist):
        with self.lock:
            self.imported += 1
            number = self.imported
        self.all_sent.wait(timeout=10)  # every 202 is in before the writer handles any
        with self.lock:
            self.answered[threading.get_ident()] = self.accepted_at[number]
            self.now = max(self.now, self.accepted_at[number])
        return number

    def clock(self) -> float:
        with self.lock:
            return self.answered.pop(threading.get_ident(), self.now)

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_an_import_is_polled_beside_the_one_found_done_only_when_its_202_came_first():
    from pydantic import SecretStr

    from segsync_brevo import BrevoSettings
    from segsync_brevo.outcomes import Outcomes
    from segsync_brevo.planner import ImportJob, Plan
    from segsync_brevo.writer import Writer

    # Processes 1, 2, 3 answered 202 at 2.0, 1.0 and 3.0 s: 2 was accepted before 1, 3 after
    # it. The writer handles the three answers once all are in (at 3.0 s). Round 1 (3.5 s): 1
    # is done, having taken 1.5 s; 2, accepted before it, is polled next (with no other); 3,
    # accepted after it and not done by now had it waited for a place, is polled after 2, alone.
    # (The times read by the calling thread are all 3.0 s: 3 would go beside 2.)
    api = RepliesOutOfOrder({1: 0, 2: 0, 3: 0}, together=[1, 1, 1], accepted_at={1: 2.0, 2: 1.0, 3: 3.0})
    settings = BrevoSettings(api_key=SecretStr("k"), max_connections=3)
    writer = Writer(api, settings, directory=None, poll_seconds=0.5, sleep=api.sleep, clock=api.clock)
    sent_together: list[list[int]] = []  # the process numbers of each group of polls sent at once
    fan_out = writer._side_by_side

    def side_by_side(call, items):
        if items and isinstance(items[0], tuple):  # polls: (job, process number); not the imports
            sent_together.append([process_id for _, process_id in items])
        return fan_out(call, items)

    writer._side_by_side = side_by_side
    changes = [change(f"q{n}@example.com") for n in range(3)]
    jobs = [ImportJob([{"email": c.contact_key}], [n], frozenset({7}), False) for n, c in enumerate(changes)]
    outcomes = Outcomes(changes)
    for job in jobs:
        outcomes.expect(job.indices)
    writer._imports(Plan(imports=jobs), outcomes)

    assert sent_together == [[1], [2], [3]]
    assert api.groups == [[1], [2], [3]]
    assert api.polls == [1, 2, 3]
    assert api.now == 3.5
    assert [o.status for o in outcomes.result()] == ["ok"] * 3


def test_the_outcomes_are_built_while_the_imports_are_processed_and_a_later_refusal_still_counts(monkeypatch):
    from pydantic import SecretStr

    from segsync_brevo import BrevoSettings, outcomes as outcomes_module
    from segsync_brevo.outcomes import Outcomes
    from segsync_brevo.planner import ImportJob, Plan
    from segsync_brevo.writer import Writer

    # Two imports of two rows; the second one's report names b1 invalid. Every ok outcome is
    # built during the first wait (4 of them), none after: b1's result is its rejection.
    built: list[str] = []
    ok = outcomes_module.Outcome.ok
    monkeypatch.setattr(outcomes_module.Outcome, "ok",
                        staticmethod(lambda key, external_id=None: built.append(key) or ok(key, external_id)))

    class Service(ScriptedProcesses):
        def get_process(self, process_id):
            answer = super().get_process(process_id)
            if process_id == 2:
                answer["info"] = {"import": {"invalid_emails": "https://reports.example/2.csv"}}
            return answer

        def fetch_report(self, url):
            return "EMAIL\nb1@example.com\n"

    api = Service({1: 0, 2: 0})
    built_when: list[int] = []  # how many outcomes were built at each wait
    writer = Writer(api, BrevoSettings(api_key=SecretStr("k"), max_connections=1), directory=None,
                    poll_seconds=0.5, sleep=lambda seconds: built_when.append(len(built)))
    changes = [change(e) for e in ("a0@example.com", "a1@example.com", "b0@example.com", "b1@example.com")]
    jobs = [ImportJob([{"email": c.contact_key} for c in changes[s:s + 2]], [s, s + 1], frozenset({7}), False)
            for s in (0, 2)]
    outcomes = Outcomes(changes)
    for job in jobs:
        outcomes.expect(job.indices)
    writer._imports(Plan(imports=jobs), outcomes)
    result = outcomes.result()

    assert built_when == [4]
    assert built == [c.contact_key for c in changes]
    assert [(o.status, o.field) for o in result] == [("ok", None)] * 3 + [("rejected", "email")]
    assert result[3].reason == "Brevo's import rejected the address as invalid"


json_scalars = st.text(max_size=20) | st.integers(-10**9, 10**9) | st.booleans()


@given(st.emails(), st.dictionaries(st.sampled_from(["FIRSTNAME", "LASTNAME", "CITY", "NOTE"]), json_scalars, max_size=4))
def test_a_rows_size_with_any_attribute_values_is_its_json_size(email, attributes):
    # _sized encodes with one C encoder made once; quotes, backslashes, control characters and
    # non-ASCII text must still count as json.dumps writes them (UTF-8 bytes).
    from segsync_brevo.planner import _sized

    row = {"email": email, "attributes": attributes}
    _, _, size, text = _sized(0, row)
    assert size == len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()) + 1
    assert text == json.dumps(row, separators=(",", ":"), ensure_ascii=False)


@given(st.lists(st.integers(1, 400), max_size=60), st.integers(100, 2000))
def test_chunks_are_counted_as_they_are_cut(sizes, limit):
    # Pricing counts the chunks without cutting them (count_chunks); the count must be what
    # chunk_rows then cuts, whether the group fits in one import or not.
    from segsync_brevo.planner import chunk_rows, count_chunks

    rows = [(i, {"email": f"{i}@example.com"}, size) for i, size in enumerate(sizes)]
    assert count_chunks(rows, limit) == len(chunk_rows(rows, limit))


def test_the_lists_of_a_combination_of_segments_are_resolved_once_and_the_collector_waits(
        emulator, make_connector, monkeypatch):
    # 300 changes naming 3 combinations of segments: each combination's lists are resolved once
    # per write (list_id once per segment), and the cyclic collector is paused while the rows are
    # planned (they hold no cycles; it would re-scan the caller's heap), then running again.
    import gc

    from segsync_brevo import planner

    collector_on: list[bool] = []
    write_json = planner._row_json
    monkeypatch.setattr(planner, "_row_json", lambda row: collector_on.append(gc.isenabled()) or write_json(row))
    emulator.state.add_list("gone")
    connector = make_connector(create_lists=False)
    emulator.state.add_list("vip"), emulator.state.add_list("trial")
    resolved: list[tuple[str, bool]] = []
    planned = connector._writer.planner._resolve
    monkeypatch.setattr(connector._writer.planner, "_resolve",
                        lambda add, remove: resolved.append((add, remove)) or planned(add, remove))
    combos = [(("vip",), ()), (("vip", "trial"), ("gone",)), (("nolist",), ())]
    changes = [change(f"r{i:03d}@example.com", attributes={"first_name": "R"},
                      add=combos[i % 3][0], remove=combos[i % 3][1]) for i in range(300)]
    result = connector.write(changes)

    assert sorted(resolved) == sorted(combos)
    status = [(o.status, o.field) for o in result.outcomes]
    assert status == [("ok", None), ("ok", None), ("rejected", "segments")] * 100
    assert result.outcomes[2].reason == "no Brevo list for segment 'nolist' (set list_mapping or create_lists)"
    assert collector_on and not any(collector_on)
    assert gc.isenabled()
    lists = {l.name: l for l in emulator.state.lists.values()}
    assert len(lists["vip"].members) == 200 and len(lists["trial"].members) == 100


@given(st.lists(st.integers(1, 400), max_size=60), st.integers(402, 2000))
def test_rows_are_shared_evenly_among_as_many_imports_as_they_need(sizes, limit):
    # An import per max_bytes as before, but of about equal size (Brevo processes a few at
    # once: one big and one small import leave a worker idle while the big one runs).
    from segsync_brevo.planner import chunk_rows, chunk_rows_evenly

    rows = [(i, {"email": f"{i}@example.com"}, size) for i, size in enumerate(sizes)]
    greedy, even = chunk_rows(rows, limit), chunk_rows_evenly(rows, limit)
    assert len(even) == len(greedy)
    assert [item for chunk in even for item in chunk] == rows
    totals = [sum(size for _, _, size in chunk) for chunk in even]
    assert all(total + 2 <= limit for total in totals)
    if len(even) > 1 and even != greedy:  # shared out: no two differ by more than two rows
        assert max(totals) - min(totals) <= 2 * max(sizes)


def test_the_lists_are_created_side_by_side_while_the_changes_are_planned(emulator, make_connector, monkeypatch):
    # A first write into an empty account: the lists it needs (the audience and one per segment)
    # are read, then the folder, then created side by side, in a thread of their own while the
    # changes are read; the planner waits for them only to route the changes to their lists.
    import threading

    emulator.latency = 0.5
    connector = make_connector()
    planner = connector._writer.planner
    every_change_read = threading.Event()
    attributes = planner._attributes
    monkeypatch.setattr(planner, "_attributes", lambda index, *rest: (
        index == 29 and every_change_read.set()) or attributes(index, *rest))
    overlapped: list[bool] = []
    prepare = connector.directory.prepare

    def preparing(create, lookup):
        prepare(create, lookup)
        overlapped.append(every_change_read.wait(timeout=60))  # False: planning waited for the set-up

    monkeypatch.setattr(connector.directory, "prepare", preparing)
    changes = [change(f"p{i:02d}@example.com", attributes={"first_name": "P"}, add=(("a", "b", "c")[i % 3],))
               for i in range(30)]
    result = connector.write(changes)

    assert [o.status for o in result.outcomes] == ["ok"] * 30
    assert overlapped == [True]
    calls = api_calls(emulator)
    assert calls[:4] == [("GET", "/v3/contacts/attributes"), ("GET", "/v3/contacts/lists"),
                         ("GET", "/v3/contacts/folders"), ("POST", "/v3/contacts/folders")]
    assert calls[4:8] == [("POST", "/v3/contacts/lists")] * 4
    # Then the rows (one import, its poll) and, 30 contacts being too few for an import per
    # list, one add call per list.
    assert calls[8:10] == [("POST", "/v3/contacts/import"), ("GET", "/v3/processes/1")]
    segment_lists = sorted(l.id for l in emulator.state.lists.values() if l.name in "abc")
    assert sorted(calls[10:]) == [("POST", f"/v3/contacts/lists/{n}/contacts/add") for n in segment_lists]
    creates = [e for e in emulator.requests("POST") if e.path == "/v3/contacts/lists"]
    assert max(c.started for c in creates) < min(c.ended for c in creates)  # all four in flight at once
    assert sorted(l.name for l in emulator.state.lists.values()) == ["a", "b", "c", "segsync"]
    assert result.calls == len(calls) == 13


def poll_timed_imports(done_at: dict[int, float], accepted_at: list[float] | None = None):
    """Four imports of 10, 10, 5 and 5 rows through ``Writer._imports`` on a clock of the test's
    (poll_seconds 1.5, one connection): import ``n`` is accepted at ``accepted_at[n - 1]`` (all
    at 0.0 without it), each poll takes 0.1 s and finds process ``n`` completed from
    ``done_at[n]`` on. Returns the writer's sleeps, the polls as (process, time answered) and
    the outcomes' statuses."""
    from pydantic import SecretStr

    from segsync_brevo import BrevoSettings
    from segsync_brevo.outcomes import Outcomes
    from segsync_brevo.planner import ImportJob, Plan
    from segsync_brevo.writer import Writer

    now = [0.0]

    class Service:
        imported = 0
        polls: list[tuple[int, float]] = []

        def import_contacts(self, rows, *, list_ids, email_blacklist):
            self.imported += 1
            if accepted_at is not None:
                now[0] = accepted_at[self.imported - 1]
            return self.imported

        def get_process(self, process_id):
            now[0] = round(now[0] + 0.1, 6)  # each poll takes 0.1 s; the answer is of its end
            self.polls.append((process_id, now[0]))
            done = done_at[process_id] <= now[0]
            return {"id": process_id, "status": "completed" if done else "in_process", "info": {"import": {}}}

    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    api = Service()
    writer = Writer(api, BrevoSettings(api_key=SecretStr("k"), max_connections=1), directory=None,
                    poll_seconds=1.5, sleep=sleep, clock=lambda: now[0])
    sizes = [10, 10, 5, 5]
    changes = [change(f"w{n}@example.com") for n in range(sum(sizes))]
    starts = [0, 10, 20, 25]
    plan = Plan(imports=[ImportJob([{"email": c.contact_key} for c in changes[s:s + n]], list(range(s, s + n)),
                                   frozenset({7}), False) for s, n in zip(starts, sizes)])
    outcomes = Outcomes(changes)
    for job in plan.imports:
        outcomes.expect(job.indices)
    writer._imports(plan, outcomes)
    return sleeps, [(p, round(t, 1)) for p, t in api.polls], [o.status for o in outcomes.result()]


def test_an_import_found_unfinished_after_progress_is_polled_again_when_it_can_be_done():
    # Brevo works a few imports at once, in order: process 3 was found unfinished because it
    # waited for 1 or 2 to free a place. It can be done no sooner than process 1 was found done
    # plus as long as 1 took (1.6 s), for its rows (half of 1's): the next poll comes 0.6 s later,
    # not a whole import_poll_seconds (1.5 s), and it finds 3 and 4 done.
    sleeps, polls, statuses = poll_timed_imports({1: 1.0, 2: 1.0, 3: 2.2, 4: 2.2})

    assert sleeps == [1.5, 0.6]
    assert polls == [(1, 1.6), (2, 1.7), (3, 1.8), (3, 2.5), (4, 2.6)]
    assert statuses == ["ok"] * 30


def test_how_long_the_first_import_found_done_took_is_counted_from_the_last_202():
    # Four imports sent one at a time, accepted at 0.0, 0.4, 0.8 and 1.2 s (the writer's clock;
    # each poll takes 0.1 s). Nothing is polled before the last 202: the first poll, 1.5 s after
    # it, finds 1 done at 2.8 s, which took 1.6 s counted from the last 202 (not 2.8 s from its
    # own), then 2 done and 3 (half as many rows) unfinished. 3 is polled again 0.8 s after 1
    # was found done (3.6 s; from its own 202 it would be 1.4 s after, 4.2 s): done, and so is 4.
    sleeps, polls, statuses = poll_timed_imports({1: 2.0, 2: 2.0, 3: 3.4, 4: 3.4},
                                                 accepted_at=[0.0, 0.4, 0.8, 1.2])

    assert sleeps == [1.5, 0.6]
    assert polls == [(1, 2.8), (2, 2.9), (3, 3.0), (3, 3.7), (4, 3.8)]
    assert statuses == ["ok"] * 30


def test_a_list_is_created_only_for_segments_some_change_not_refused_enters(emulator, connector):
    # "bad" is entered only by invalid addresses and "ghost" only by contacts with an attribute
    # Brevo lacks (COMPANY): every change entering them is refused, so neither list is created
    # (the set-up creates lists once the planner has read every change). "vip" is.
    changes = [change("v1@example.com", attributes={"first_name": "V"}, add=("vip",)),
               change("v2@example.com", add=("vip", "ghost"), attributes={"company": "Acme"}),
               change("not an email", add=("bad",)),
               change("also@not@an@email", add=("bad", "vip")),
               change("g1@example.com", attributes={"company": "Acme"}, add=("ghost",))]
    result = connector.write(changes)

    assert [(o.status, o.field) for o in result.outcomes] == [
        ("ok", None), ("rejected", "company"), ("rejected", "email"), ("rejected", "email"),
        ("rejected", "company")]
    assert sorted(l.name for l in emulator.state.lists.values()) == ["segsync", "vip"]
    assert api_calls(emulator) == [
        ("GET", "/v3/contacts/attributes"), ("GET", "/v3/contacts/lists"), ("GET", "/v3/contacts/folders"),
        ("POST", "/v3/contacts/folders"), ("POST", "/v3/contacts/lists"), ("POST", "/v3/contacts/lists"),
        ("POST", "/v3/contacts/import"), ("GET", "/v3/processes/1")]
    vip = next(l for l in emulator.state.lists.values() if l.name == "vip")
    assert vip.members == {emulator.state.contact("v1@example.com").id}


def test_a_write_whose_changes_are_all_refused_creates_no_list(emulator, connector):
    # The lists were read, and the folder a missing list would go in found (created: it was
    # missing too) while the changes were read; once all are refused, no list is created.
    result = connector.write([change("nope", add=("vip",)), change("g@example.com", attributes={"company": "A"})])

    assert [(o.status, o.field) for o in result.outcomes] == [("rejected", "email"), ("rejected", "company")]
    assert emulator.state.lists == {}
    assert api_calls(emulator) == [("GET", "/v3/contacts/attributes"), ("GET", "/v3/contacts/lists"),
                                   ("GET", "/v3/contacts/folders"), ("POST", "/v3/contacts/folders")]
    assert result.calls == 4


def test_the_outcomes_a_write_returns_are_those_it_reported(emulator, connector):
    # Each change is reported as its last call ends; the write's result hands back those same
    # outcomes rather than building every one again (100,000 of them took 0.5 s after the push).
    reported: list = []
    changes = [change(f"o{i}@example.com", attributes={"first_name": "O"}, add=("vip",)) for i in range(20)]
    result = connector.write([*changes, change("not an email")], report=reported.extend)
    assert [o.status for o in result.outcomes] == ["ok"] * 20 + ["rejected"]
    by_key = {o.contact_key: o for o in reported}
    assert len(reported) == 21
    assert all(o is by_key[o.contact_key] for o in result.outcomes)
