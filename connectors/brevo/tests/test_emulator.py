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
