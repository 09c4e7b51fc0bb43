from __future__ import annotations

import json
import time
import subprocess
import sys
import urllib.error
import urllib.request

from pydantic import SecretStr

from segsync.testing import plugin_load_failures, registered_connectors
from segsync_brevo import BrevoConnector
from segsync_brevo.api import BrevoApi, BrevoApiError


def raw(emulator, method, path, body=None, key="test-key"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emulator.url + path, data=data, method=method,
                                     headers={"api-key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_spec_validation_and_error_model(emulator):
    status, headers, body = raw(emulator, "GET", "/contacts?limit=1001")
    assert status == 400
    assert json.loads(body) == {"code": "invalid_parameter", "message": "limit must be at most 1000"}
    assert headers["x-sib-ratelimit-limit"] == "10"
    status, _, body = raw(emulator, "POST", "/contacts/lists/1/contacts/add", {"emails": ["a@b.co"] * 151})
    assert status == 400 and "151" not in json.loads(body)["code"]


def test_import_over_10_mb_is_refused(emulator):
    emulator.state.add_list("l")
    api = BrevoApi(SecretStr("test-key"), emulator.url)
    rows = [{"email": f"user{n}@example.com", "attributes": {"FIRSTNAME": "x" * 200}} for n in range(50_000)]
    try:
        api.import_contacts(rows, list_ids=[1], email_blacklist=False)
    except BrevoApiError as exc:
        assert exc.status == 400 and "10MB" in exc.message
    else:
        raise AssertionError("a jsonBody over 10 MB was accepted")


def test_request_log_records_sizes_and_times(emulator):
    raw(emulator, "GET", "/contacts/lists?limit=5")
    entry = emulator.requests()[-1]
    assert (entry.method, entry.path, entry.status) == ("GET", "/v3/contacts/lists", 200)
    assert entry.response_bytes > 0 and entry.finished >= entry.started


def test_standalone_module_runs():
    proc = subprocess.Popen(
        [sys.executable, "-m", "segsync_brevo.emulator", "--api-key", "k"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        request = urllib.request.Request(url + "/contacts/attributes", headers={"api-key": "k"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert {a["name"] for a in json.load(response)["attributes"]} >= {"FIRSTNAME", "LASTNAME"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_entry_point_registers_the_connector():
    assert plugin_load_failures() == []
    assert registered_connectors("brevo") == {"brevo": BrevoConnector}


def test_imports_are_background_processes_a_few_of_which_run_at_once():
    # Brevo answers an import at once (202 + processId) and processes it in the background:
    # queued, in_process, completed. The emulator runs up to import_workers of them together.
    from segsync_brevo.emulator.state import BrevoState

    state = BrevoState(import_delay=1.5, import_workers=2)
    try:
        list_id = state.add_list("l")
        ids = [state.import_contacts({"jsonBody": [{"email": f"u{n}@example.com"}], "listIds": [list_id]})["processId"]
               for n in range(3)]

        def statuses():
            return [state.get_process(i)["status"] for i in ids]

        deadline = time.monotonic() + 10
        while statuses()[:2] != ["in_process", "in_process"]:
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.01)
        assert statuses()[2] == "queued"  # both workers are busy for 1.5 s
        while statuses() != ["completed"] * 3:
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.05)
        assert [state.get_process(i)["info"] for i in ids] == [{"import": {}}] * 3
        assert sorted(state.contacts[c].email for c in state.lists[list_id].members) == [
            "u0@example.com", "u1@example.com", "u2@example.com"]
    finally:
        state.close()


def test_an_import_row_of_the_wrong_type_is_refused_by_the_compiled_check() -> None:
    # Brevo's import rows (requestContactImport_jsonBody: email a string, attributes an object)
    # have no value constraints: the compiled check takes them, and still refuses a wrong type.
    from segsync_brevo.emulator.spec import spec_validator

    validator = spec_validator()
    assert validator is not None, "Brevo's spec is needed for this test"
    rows = [{"email": f"r{i}@example.com", "attributes": {"FIRSTNAME": "R"}} for i in range(1000)]
    body = {"jsonBody": rows, "listIds": [1]}
    assert validator.check_request("POST", "/contacts/import", {}, body) == []
    bad = [*rows[:3], {"email": 7}, {"email": "x@example.com", "attributes": "FIRSTNAME=R"}]
    assert [(v.field, v.message) for v in validator.check_request("POST", "/contacts/import", {}, {**body, "jsonBody": bad})] == [
        ("jsonBody.3.email", "7 is not of type 'string'"),
        ("jsonBody.4.attributes", "'FIRSTNAME=R' is not of type 'object'")]
    assert not validator._valid_shapes.get(("request", "POST", "/contacts/import", "jsonBody"))  # no shape kept


def test_an_imports_rows_land_when_its_processing_starts_and_it_completes_at_the_modelled_time():
    # The emulator's CPU for an import is inside its modelled time (import_delay + rows at
    # import_rows_per_second), not added after it: the rows are applied as the process starts,
    # sharing one modification time (one slice), and the process stays in_process until the end.
    from segsync_brevo.emulator import BrevoEmulator

    emulator = BrevoEmulator(api_key="test-key", import_delay=600.0)
    emulator.start()
    try:
        audience = emulator.state.add_list("segsync")
        status, _, body = raw(emulator, "POST", "/contacts/import", {
            "jsonBody": [{"email": f"p{n}@example.com", "attributes": {"FIRSTNAME": f"P{n}"}} for n in range(3)],
            "listIds": [audience]})
        process = json.loads(body)["processId"]
        assert status == 202
        for _ in range(500):  # the worker picks the import up at once; the rows follow
            if emulator.state.contact("p2@example.com") is not None:
                break
            time.sleep(0.01)
        contacts = [emulator.state.contact(f"p{n}@example.com") for n in range(3)]
        assert [c.attributes for c in contacts] == [{"FIRSTNAME": f"P{n}"} for n in range(3)]
        assert len({c.modified_at for c in contacts}) == 1
        assert emulator.state.get_process(process)["status"] == "in_process"  # 600 s modelled
        later = emulator.state.seed_contact("later@example.com")
        assert emulator.state.contacts[later].modified_at > contacts[0].modified_at
    finally:
        emulator.stop()


def test_an_import_is_sent_as_the_compact_utf8_json_the_planner_measured(emulator):
    # Rows measured at 9 MB (compact UTF-8, as the planner sizes them) must reach Brevo at that
    # size: the SDK's json.dumps (", " and ": ", every non-ASCII character as \uXXXX) sent these
    # accented rows as over 10 MB, more than Brevo accepts in a body (the emulator measured the
    # rows compact again, so it did not refuse them).
    from segsync_brevo.planner import _sized

    emulator.keep_bodies = True
    audience = emulator.state.add_list("segsync")
    api = BrevoApi(SecretStr("test-key"), emulator.url)
    rows = [{"email": f"zoé{n}@example.com", "attributes": {"FIRSTNAME": "Zoë Ærøskøbing-Åsa " * 8}}
            for n in range(40_000)]
    measured = 2 + sum(_sized(n, row)[2] for n, row in enumerate(rows)) - 1
    assert 9_000_000 < measured < 10 * 1024 * 1024 < len(json.dumps({"jsonBody": rows}).encode())
    api.import_contacts(rows, list_ids=[audience], email_blacklist=False)
    (sent,) = emulator.requests("POST", "/v3/contacts/import")
    assert sent.status == 202
    assert sent.body == json.dumps({"jsonBody": rows, "listIds": [audience], "emailBlacklist": False,
                                    "updateExistingContacts": True, "emptyContactsAttributes": False},
                                   separators=(",", ":"), ensure_ascii=False)
    assert sent.request_bytes == len(sent.body.encode()) < measured + 200
    api.close()
