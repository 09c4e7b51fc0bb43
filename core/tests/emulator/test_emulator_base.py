"""segsync.testing.emulator: routing, faults, limits, validation, the log, its own process."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import requests

from segsync.testing.emulator import EmulatorProcess, OpenApiValidator, RandomFaults
from segsync.testing.emulator.process import GC_THRESHOLDS

sys.path.insert(0, str(Path(__file__).parent))
from notes_emulator import SPEC, NotesEmulator  # noqa: E402

KEY = {"api-key": "k-123456"}


@pytest.fixture
def notes():
    with NotesEmulator() as emulator:
        yield emulator


def call(emulator, method, path, **kwargs):
    kwargs.setdefault("headers", KEY)
    kwargs.setdefault("timeout", 5)
    return requests.request(method, emulator.url + path, **kwargs)


def test_routes_answers_and_the_log(notes) -> None:
    assert notes.url == f"http://127.0.0.1:{notes.port}/v1"
    answer = call(notes, "POST", "/notes", json={"notes": [{"text": "a"}, {"text": "b", "color": "red"}]})
    assert (answer.status_code, answer.json()) == (201, {"count": 2})
    assert answer.headers["Content-Type"] == "application/json"
    assert call(notes, "GET", "/notes?limit=1").json() == {"notes": [{"text": "a"}]}
    deleted = call(notes, "DELETE", "/notes/0")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert notes.notes == [{"text": "b", "color": "red"}]
    assert call(notes, "GET", "/nothing").status_code == 404
    assert call(notes, "DELETE", "/notes/x").status_code == 404  # {id:int} takes digits only
    refused = call(notes, "PUT", "/notes")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, POST")
    assert call(notes, "GET", "/notes", headers={"api-key": "wrong"}).json() == {"code": "unauthorized"}
    records = notes.calls()
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", "/notes", 201), ("GET", "/notes", 200), ("DELETE", "/notes/0", 204), ("GET", "/nothing", 404),
        ("DELETE", "/notes/x", 404), ("PUT", "/notes", 405), ("GET", "/notes", 401)]
    first = records[0]
    assert first.request_bytes == len(b'{"notes": [{"text": "a"}, {"text": "b", "color": "red"}]}')
    assert first.response_bytes == len(b'{"count":2}')  # compact JSON
    assert first.ended >= first.started and first.body is None
    assert records[1].query == {"limit": ["1"]} and records[1].query_string == "limit=1"
    assert [r.method for r in notes.calls("GET", r"^/notes$")] == ["GET", "GET"]


def test_scripted_faults_by_count_route_and_skip(notes) -> None:
    notes.inject("status", 2, status=503, method="GET", path="^/notes$", skip=1)
    notes.inject("status", status=429, path="notes", retry_after=1.5)
    statuses = [call(notes, "GET", "/notes").status_code for _ in range(4)]
    # The request the first fault lets through is the second one's to take; faults are used up.
    assert statuses == [429, 503, 503, 200]
    assert [r.fault for r in notes.calls()] == ["status", "status", "status", None]
    notes.inject("status", status=429, retry_after=1.5)
    assert call(notes, "GET", "/notes").headers["Retry-After"] == "1.5"


def test_connection_faults_act_like_the_network(notes) -> None:
    notes.inject("reset")
    with pytest.raises(requests.ConnectionError):
        call(notes, "POST", "/notes", json={"notes": [{"text": "never"}]})
    notes.inject("lost")
    with pytest.raises(requests.ConnectionError):
        call(notes, "POST", "/notes", json={"notes": [{"text": "applied"}]})
    notes.inject("timeout", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        call(notes, "POST", "/notes", json={"notes": [{"text": "late"}]}, timeout=0.2)
    notes.inject("drop")
    with pytest.raises(requests.ConnectionError):
        call(notes, "GET", "/notes")
    for _ in range(50):  # the timed-out request is applied once its delay is over
        if len(notes.calls()) == 4:
            break
        threading.Event().wait(0.05)
    assert [n["text"] for n in notes.notes] == ["applied", "late"]
    assert [(r.fault, r.status) for r in notes.calls()] == [("reset", 0), ("lost", 201), ("timeout", 201), ("drop", 0)]


def test_random_faults_are_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        with NotesEmulator(random_faults=RandomFaults(0.5, kinds=("429", "5xx"), seed=7)) as notes:
            outcomes.append([call(notes, "GET", "/notes").status_code for _ in range(12)])
            assert notes.random_faults.injected["429"] + notes.random_faults.injected["5xx"] == sum(
                1 for s in outcomes[-1] if s != 200)
    assert outcomes[0] == outcomes[1]
    assert {429, 200} <= set(outcomes[0])


def test_rate_limits_per_bucket_with_headers() -> None:
    with NotesEmulator(rate_limits={"notes": ((2, 60.0),)}) as notes:
        answers = [call(notes, "GET", "/notes") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
        assert answers[2].headers["X-RateLimit-Limit"] == "2"
        assert 0 < float(answers[2].headers["X-RateLimit-Reset"]) <= 60
        assert call(notes, "GET", "/broken").status_code == 200  # bucket "other" is not limited
        notes.configure({"rate_limits": False})
        assert call(notes, "GET", "/notes").status_code == 200


def test_the_connection_limit_refuses_the_extra_request() -> None:
    with NotesEmulator(max_connections=1) as notes:
        notes.gate = threading.Event()
        first = {}
        thread = threading.Thread(target=lambda: first.update(answer=call(notes, "GET", "/notes")))
        thread.start()
        for _ in range(100):
            if notes.connections.in_flight == 1:
                break
            threading.Event().wait(0.02)
        second = call(notes, "GET", "/notes")
        notes.gate.set()
        thread.join()
        assert (first["answer"].status_code, second.status_code) == (200, 429)
        assert notes.peak_in_flight == 1
        assert [r.admitted for r in notes.calls(admitted_only=False)] == [True, False]


def test_requests_are_validated_against_the_spec_once_per_shape() -> None:
    validator = OpenApiValidator(SPEC)
    with NotesEmulator(validator=validator, validate_responses=True) as notes:
        bad = call(notes, "POST", "/notes", json={"notes": [{"text": "a"}, {"color": "green", "text": "b"}, {}]})
        assert bad.status_code == 400
        assert bad.json()["errors"] == [
            {"field": "notes.1.color", "message": "'green' is not one of ['red', 'blue']"},
            {"field": "notes.2", "message": "'text' is a required property"}]
        assert notes.notes == []
        assert call(notes, "GET", "/notes?limit=51").json()["message"] == "limit must be at most 50"
        assert call(notes, "POST", "/notes").json()["message"] == "a JSON body is required"
        many = [{"text": f"note {i}", "color": "red"} for i in range(300)]
        assert call(notes, "POST", "/notes", json={"notes": many}).status_code == 201
        assert call(notes, "GET", "/broken").status_code == 200
    # 300 items of one shape were validated as one; the enum's value is part of the shape.
    item_shapes = validator._valid_shapes[("request", "POST", "/notes", "notes")]
    assert len(item_shapes) == 2  # {"text"} and {"text", "color": "red"}
    assert notes.violations == []  # /broken is not in the spec: nothing to check it against


def test_an_item_shape_keeps_everything_its_validity_depends_on() -> None:
    # Items are validated once per shape, so a shape must tell apart every two items that are
    # not valid together: types inside lists and maps, and the values under value constraints.
    item = {"type": "object", "properties": {
        "text": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        # maxLength: a value constraint the compiled check does not take, so items go through shapes
        "colors": {"type": "array", "items": {"enum": ["red", "blue"], "maxLength": 8}},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        "parts": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}
    spec = {"openapi": "3.0.0", "paths": {"/notes": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"notes": {"type": "array", "items": item}}}}}},
        "responses": {"201": {}}}}}}
    validator = OpenApiValidator(spec)
    good = {"text": "a", "tags": ["x", "y"], "colors": ["red"], "meta": {"k": "v"}, "parts": [{"n": 1}]}
    bad = [
        ({**good, "tags": ["x", 1]}, "notes.0.tags.1", "1 is not of type 'string'"),
        ({**good, "tags": [["x"]]}, "notes.0.tags.0", "['x'] is not of type 'string'"),
        ({**good, "colors": ["green"]}, "notes.0.colors.0", "'green' is not one of ['red', 'blue']"),
        ({**good, "meta": {"k": 2}}, "notes.0.meta.k", "2 is not of type 'string'"),
        ({**good, "parts": [{"n": "1"}]}, "notes.0.parts.0.n", "'1' is not of type 'integer'"),
        ({**good, "text": None}, "notes.0.text", "None is not of type 'string'"),
    ]
    assert validator.check_request("POST", "/notes", {}, {"notes": [good, {**good, "tags": ["z"]}]}) == []
    for instance, field, message in bad:
        assert [(v.field, v.message) for v in validator.check_request("POST", "/notes", {}, {"notes": [instance]})] == [
            (field, message)]
    assert len(validator._valid_shapes[("request", "POST", "/notes", "notes")]) == 1


def test_answers_the_spec_forbids_are_collected() -> None:
    spec = {**SPEC, "paths": {**SPEC["paths"], "/broken": {"get": {"responses": SPEC["paths"]["/notes"]["get"]["responses"]}}}}
    with NotesEmulator(validator=OpenApiValidator(spec), validate_responses=True) as notes:
        call(notes, "GET", "/broken")
    assert notes.violations == ["notes: response 200 of GET /broken: 'not a list' is not of type 'array'"]


def test_swagger2_specs_validate_body_parameters() -> None:
    swagger = {"swagger": "2.0", "paths": {"/notes": {"post": {"parameters": [
        {"in": "body", "name": "b", "required": True, "schema": {"$ref": "#/definitions/Notes"}}],
        "responses": {"201": {}}}}},
        "definitions": {"Notes": {"type": "object", "properties": {"notes": {"type": "array", "maxItems": 2,
                                                                              "items": {"type": "object"}}}}}}
    validator = OpenApiValidator(swagger)
    assert validator.check_request("POST", "/notes", {}, {"notes": [{}, {}, {}]})[0].message == (
        "[{}, {}, {}] is too long")
    assert validator.check_request("POST", "/notes", {}, None)[0].message == "a JSON body is required"
    assert validator.check_request("POST", "/notes", {}, {"notes": [{}]}) == []


def test_an_emulator_runs_in_its_own_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    with EmulatorProcess("notes_emulator:NotesEmulator", api_key="k-123456") as notes:
        assert notes.seed({"notes": [{"text": "seeded"}]}) == {"count": 1}
        assert requests.get(f"{notes.url}/notes", headers=KEY, timeout=5).json() == {"notes": [{"text": "seeded"}]}
        notes.inject(kind="status", status=502)
        assert requests.get(f"{notes.url}/notes", headers=KEY, timeout=5).status_code == 502
        log = notes.log()
        assert [(e["method"], e["path"], e["status"], e["fault"]) for e in log if e["api"]] == [
            ("GET", "/notes", 200, None), ("GET", "/notes", 502, "status")]
        assert [e["path"] for e in log if not e["api"]] == ["/_emulator/seed", "/_emulator/faults"]
        assert notes.cpu_seconds() > 0
        # Its own process collects garbage less often than Python's default (700, 10, 10):
        # an emulator's state is millions of long-lived objects without cycles.
        assert notes.stats()["gc_thresholds"] == list(GC_THRESHOLDS) == [50_000, 50, 100]


# Item schemas as the compiled check takes them (types, properties, required,
# additionalProperties, items, enums of strings), nested a little.
_leaf_schemas = st.sampled_from([{}, {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"},
                                 {"type": "null"}, {"type": ["string", "integer"]}, {"type": "object"},
                                 {"type": "array"}, {"description": "anything", "format": "email"},
                                 {"enum": ["a", "b"]}, {"type": "string", "enum": ["a", ""]},
                                 {"type": "integer", "enum": ["1"]}, {"enum": []}])
_item_schemas = st.recursive(_leaf_schemas, lambda inner: st.one_of(
    st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(st.sampled_from("abc"), inner, max_size=3)},
                          optional={"required": st.lists(st.sampled_from("abc"), max_size=2, unique=True),
                                    "additionalProperties": st.booleans() | inner}),
    st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
    st.fixed_dictionaries({"properties": st.dictionaries(st.sampled_from("ab"), inner, max_size=2)})), max_leaves=6)
_json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2) | st.text(max_size=3)
                            | st.sampled_from(["a", "b", "", "1"]),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
                            max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(schema=_item_schemas, items=st.lists(_json_values, min_size=1, max_size=4))
def test_a_compiled_item_check_agrees_with_jsonschema(schema, items) -> None:
    # Arrays of items without value constraints (a Brevo import's rows) are checked by a
    # predicate compiled from the item schema instead of through shapes and jsonschema: it must
    # accept and refuse exactly what Draft 4 does, and the refused items get jsonschema's messages.
    import jsonschema

    spec = {"openapi": "3.0.0", "paths": {"/notes": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"notes": {"type": "array", "items": schema}}}}}},
        "responses": {"201": {}}}}}}
    validator = OpenApiValidator(spec)
    expected = [(f"notes.{i}" + "".join(f".{p}" for p in error.path), error.message)
                for i, item in enumerate(items)
                for error in sorted(jsonschema.Draft4Validator(schema).iter_errors(item), key=lambda e: [str(p) for p in e.path])]
    found = [(v.field, v.message) for v in validator.check_request("POST", "/notes", {}, {"notes": items})]
    assert found == expected
    assert validator._item_check(validator._resolve(schema)) is not None  # compiled, not through shapes



def test_answers_go_out_without_waiting_for_nagle(notes, monkeypatch: pytest.MonkeyPatch) -> None:
    # An answer is written as its head, then its body. With Nagle's algorithm on, the body
    # waited for the client's acknowledgement of the head, which clients delay up to 40 ms:
    # every call took ~40 ms more than the emulator's latency (a benchmark at 100 ms: 140 ms).
    import socket

    handler = notes._server.RequestHandlerClass
    seen: list[int] = []
    setup = handler.setup

    def recording_setup(self) -> None:
        setup(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(handler, "setup", recording_setup)
    assert call(notes, "GET", "/notes").status_code == 200
    assert len(seen) == 1 and seen[0] != 0


def test_its_own_process_freezes_what_requests_leave_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    with EmulatorProcess("notes_emulator:NotesEmulator", api_key="k-123456") as notes:
        assert notes.stats()["gc_frozen"] == 0  # answered before the end of the first request
        # ... which froze every object alive then (the start-up's, the emulator's state). The
        # freeze comes after the answer, in the thread that sent it: the next request, on a
        # connection (and thread) of its own, may be answered first on a busy machine, so ask
        # again until a later request sees it (the count of requests is the bound, not a time).
        frozen = [notes.stats()["gc_frozen"]]
        while frozen[-1] == 0 and len(frozen) < 200:
            frozen.append(notes.stats()["gc_frozen"])
        assert frozen[-1] > 1000, frozen
    with NotesEmulator() as in_process:  # an emulator in a test's process freezes nothing
        assert in_process.freeze_after_requests is False
