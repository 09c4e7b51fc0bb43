"""The emulator on its own: validation, limits, errors, projections and the standalone entry."""

from __future__ import annotations

import subprocess
import sys

import requests

from .conftest import API_KEY, LIST_ID


def post(emulator, path, body, **kw):
    return requests.post(f"{emulator.url}{path}", json=body, auth=("any", API_KEY), timeout=5, **kw)


def get(emulator, path, **kw):
    return requests.get(f"{emulator.url}{path}", auth=("any", API_KEY), timeout=5, **kw)


def test_errors_are_problem_json(emulator):
    answer = requests.get(f"{emulator.url}/ping", auth=("any", "wrong-us1"), timeout=5)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["title"] == "API Key Invalid"
    assert set(answer.json()) == {"type", "title", "status", "detail", "instance"}
    assert requests.get(f"{emulator.url}/ping", timeout=5).json()["title"] == "API Key Missing"
    assert get(emulator, "/lists/nope/members").status_code == 404
    answer = requests.put(f"{emulator.url}/lists/{LIST_ID}", auth=("a", API_KEY), timeout=5)
    assert answer.status_code == 405 and "GET" in answer.headers["Allow"]


def test_x_trigger_error_answers_the_named_error(emulator):
    answer = get(emulator, "/ping", headers={"X-Trigger-Error": "ComplianceRelated"})
    assert (answer.status_code, answer.json()["title"]) == (503, "Compliance Related")


def test_requests_are_validated_against_the_spec(emulator):
    answer = post(emulator, f"/lists/{LIST_ID}", {"members": "not a list"})
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"field": "members", "message": "'not a list' is not of type 'array'"}]
    answer = post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "a@example.com", "status": "maybe"}]})
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "members.0.status"
    answer = get(emulator, f"/lists/{LIST_ID}/members", params={"count": 1001})
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "count"
    assert get(emulator, f"/lists/{LIST_ID}/members", params={"sort_field": "email"}).status_code == 400


def test_bulk_limits(emulator):
    members = [{"email_address": f"m{i}@example.com", "status": "subscribed"} for i in range(501)]
    answer = post(emulator, f"/lists/{LIST_ID}", {"members": members})
    assert answer.status_code == 400 and "500" in answer.json()["detail"]
    segment = post(emulator, f"/lists/{LIST_ID}/segments", {"name": "t", "static_segment": []}).json()
    answer = post(emulator, f"/lists/{LIST_ID}/segments/{segment['id']}",
                  {"members_to_add": [f"m{i}@example.com" for i in range(501)]})
    assert answer.status_code == 400
    duplicate = post(emulator, f"/lists/{LIST_ID}/segments", {"name": "t", "static_segment": []})
    assert duplicate.status_code == 400


def test_batch_subscribe_rules(emulator):
    body = {"members": [{"email_address": "a@example.com", "status": "subscribed", "tags": ["x"]},
                        {"email_address": "a@example.com", "status": "subscribed"},
                        {"email_address": "b@example.com"}]}
    answer = post(emulator, f"/lists/{LIST_ID}", body).json()
    assert (answer["total_created"], answer["error_count"]) == (1, 2)
    assert [e["field"] for e in answer["errors"]] == ["email_address", "status"]
    assert answer["new_members"][0]["tags"][0]["name"] == "x"
    again = post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "a@example.com", "status": "subscribed"}]})
    assert again.json()["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    synced = post(emulator, f"/lists/{LIST_ID}", {"update_existing": True, "sync_tags": True, "members": [
        {"email_address": "a@example.com", "status": "unsubscribed", "tags": ["y"]}]}).json()
    assert [t["name"] for t in synced["updated_members"][0]["tags"]] == ["y"]
    assert synced["updated_members"][0]["status"] == "unsubscribed"


def test_archive_and_permanent_delete(emulator):
    emulator.state.seed_member(LIST_ID, "a@example.com")
    emulator.state.seed_member(LIST_ID, "b@example.com")
    from segsync_mailchimp.emulator import subscriber_hash

    assert requests.delete(f"{emulator.url}/lists/{LIST_ID}/members/{subscriber_hash('a@example.com')}",
                           auth=("a", API_KEY), timeout=5).status_code == 204
    assert get(emulator, f"/lists/{LIST_ID}/members").json()["total_items"] == 1
    assert get(emulator, f"/lists/{LIST_ID}/members", params={"status": "archived"}).json()["total_items"] == 1
    restored = post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "a@example.com", "status": "subscribed"}]})
    assert restored.json()["total_created"] == 1  # an archived contact can come back
    deleted = post(emulator, f"/lists/{LIST_ID}/members/{subscriber_hash('b@example.com')}/actions/delete-permanent", None)
    assert deleted.status_code == 204 and deleted.content == b""
    back = post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "b@example.com", "status": "subscribed"}]})
    assert "permanently deleted" in back.json()["errors"][0]["error"]


def test_fields_projection(emulator):
    emulator.state.seed_member(LIST_ID, "a@example.com")
    doc = get(emulator, f"/lists/{LIST_ID}/members", params={"fields": "members.email_address,total_items"}).json()
    assert doc == {"members": [{"email_address": "a@example.com"}], "total_items": 1}


def test_request_log_records_size_status_and_times(emulator):
    post(emulator, f"/lists/{LIST_ID}", {"members": []})
    (record,) = emulator.calls()
    assert (record.method, record.path, record.status, record.body_size) == ("POST", f"/lists/{LIST_ID}", 200, 15)
    assert record.ended >= record.started


def test_runs_standalone():
    proc = subprocess.Popen([sys.executable, "-m", "segsync_mailchimp.emulator", "--api-key", API_KEY],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Mailchimp emulator at http://127.0.0.1:")
        url = line.split()[3]
        answer = requests.get(f"{url}/lists/aud0001", auth=("a", API_KEY), timeout=5)
        assert answer.json()["id"] == "aud0001"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_batch_members_are_refused_exactly_as_jsonschema_refuses_them(emulator):
    # Batch members are checked by a predicate compiled from the spec's item schema (status is
    # an enum of strings); a refused batch must get jsonschema's own messages for every wrong
    # member and field, and nothing of it is applied.
    import jsonschema

    good = {"email_address": "ok@example.com", "status": "subscribed", "merge_fields": {"FNAME": "A"},
            "tags": ["t"], "vip": False}
    members = [good, {**good, "status": "maybe"}, {**good, "status": 1}, {**good, "email_address": 7},
               {**good, "vip": "yes"}, {**good, "merge_fields": "x"}, {**good, "interests": {"a": 1}},
               {**good, "status": None}, good]
    answer = post(emulator, f"/lists/{LIST_ID}", {"members": members, "update_existing": True})
    validator = emulator.validator
    item = validator._resolve(validator._resolve(validator._body_schema(
        validator.operation("POST", f"/lists/{LIST_ID}")))["properties"]["members"])["items"]
    expected = [{"field": ".".join(["members", str(i), *map(str, error.path)]), "message": error.message}
                for i, member in enumerate(members)
                for error in jsonschema.Draft4Validator({**item, **validator._refs_root}).iter_errors(member)]
    assert answer.status_code == 400
    assert answer.json()["errors"] == expected == [
        {"field": "members.1.status", "message": "'maybe' is not one of ['subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional']"},
        {"field": "members.2.status", "message": "1 is not one of ['subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional']"},
        {"field": "members.2.status", "message": "1 is not of type 'string'"},
        {"field": "members.3.email_address", "message": "7 is not of type 'string'"},
        {"field": "members.4.vip", "message": "'yes' is not of type 'boolean'"},
        {"field": "members.5.merge_fields", "message": "'x' is not of type 'object'"},
        {"field": "members.6.interests.a", "message": "1 is not of type 'boolean'"},
        {"field": "members.7.status", "message": "None is not one of ['subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional']"},
        {"field": "members.7.status", "message": "None is not of type 'string'"},
    ]
    assert emulator.state.audiences[LIST_ID].members == {}
    assert post(emulator, f"/lists/{LIST_ID}", {"members": [good]}).json()["total_created"] == 1


def test_requests_leave_no_reference_cycles_behind(emulator):
    # In its own process the emulator freezes what every request leaves alive (gc.freeze), so a
    # cycle a request made would never be collected: there must be none, on any path (writes,
    # reads, refusals, 404s, answers with and without member documents).
    import gc

    members = [{"email_address": f"c{i}@example.com", "status": "subscribed", "merge_fields": {"FNAME": "F"},
                "tags": ["a", "b"][: i % 3]} for i in range(50)]
    post(emulator, f"/lists/{LIST_ID}", {"members": members[:10]})  # first calls: caches, segments
    gc.collect()
    gc.disable()
    try:
        for query in ("", "?exclude_fields=new_members,updated_members,_links"):
            post(emulator, f"/lists/{LIST_ID}{query}", {"members": members, "update_existing": True})
        post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "x", "status": "maybe"}]})
        post(emulator, f"/lists/{LIST_ID}", {"members": [{"email_address": "bad", "status": "subscribed"}]})
        get(emulator, f"/lists/{LIST_ID}/members/c1@example.com")
        get(emulator, f"/lists/{LIST_ID}/members", params={"count": 100})
        get(emulator, f"/lists/{LIST_ID}/members/nobody@example.com")
        get(emulator, "/lists/nope")
        requests.put(f"{emulator.url}/lists/{LIST_ID}", auth=("a", API_KEY), timeout=5)
        requests.get(f"{emulator.url}/ping", auth=("any", "wrong-us1"), timeout=5)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        # Only what requests make (an earlier test's emulator, whose server and handler class
        # hold each other, may become garbage meanwhile, with its state and log).
        per_request = ("Request", "Answer", "AnswerError", "ApiProblem", "Handler", "traceback")
        made = [o for o in gc.garbage if type(o).__name__ in per_request
                or (type(o).__name__ == "frame" and "segsync" in o.f_code.co_filename)]
        assert made == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_subscriber_hash_is_the_md5_of_the_lower_cased_address():
    import hashlib

    from segsync_mailchimp.emulator import subscriber_hash

    for address in (" Zoë.O'Neil@Example.COM ", "a@b.io", "ÅSA@DOMAIN.SE"):
        assert subscriber_hash(address) == hashlib.md5(address.strip().lower().encode()).hexdigest()
    assert subscriber_hash("Urist.McVankab@freddiesjokes.com") == "62eeb292278cc15f5817cb78f7790b08"
