"""segsync.testing.recording: what a recording holds (no secret, no live address, no request
header), and that replay answers only the requests that were recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from segsync.testing.recording import BASE_URL, UnrecordedRequest, recording, replaying

SECRET = "sk-live-7d1e44b09a"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps({"echo": body, "token": SECRET, "next": f"http://{self.headers['Host']}/page/2"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-Key", SECRET)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def live() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _post(base: str, **body: object) -> requests.Response:
    return requests.post(f"{base}/contacts?key={SECRET}&since=2024-05-01T10:00:00Z", json=body,
                         headers={"Authorization": f"Bearer {SECRET}"}, timeout=5)


def test_a_recording_holds_no_secret_no_live_address_and_no_request_header(live: str, tmp_path: Path) -> None:
    path = tmp_path / "exchange.yaml"
    with recording(path, secrets=[SECRET], live_url=live):
        answer = _post(live, email="ann@example.com")
    assert answer.status_code == 201 and answer.json()["token"] == SECRET  # the live call is untouched
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text and live not in text and "Authorization" not in text and "Bearer" not in text
    assert "path: /contacts?key=<secret>&since=<volatile>" in text
    assert '"token": "<secret>"' in text and f'"next": "{BASE_URL}/page/2"' in text
    assert "X-Request-Key: <secret>" in text


def test_replay_answers_recorded_requests_and_names_any_other(live: str, tmp_path: Path) -> None:
    path = tmp_path / "exchange.yaml"
    with recording(path, secrets=[SECRET], live_url=live):
        _post(live, email="ann@example.com")
        _post(live, email="bo@example.com")
    # Offline: the same requests (a later timestamp is volatile) get the recorded answers, in order.
    with replaying(path, secrets=[SECRET]) as service:
        first = requests.post(f"{BASE_URL}/contacts?since=2025-01-01T00:00:00Z&key={SECRET}",
                              json={"email": "ann@example.com"}, timeout=5)
        second = _post(BASE_URL, email="bo@example.com")
    assert (first.status_code, first.json()["echo"], first.json()["token"]) == (201, {"email": "ann@example.com"}, "<secret>")
    assert second.json()["echo"] == {"email": "bo@example.com"}
    assert [(e.method, e.path, e.status) for e in service.exchanges()] == [("POST", "/contacts", 201)] * 2

    with pytest.raises(AssertionError) as unplayed:
        with replaying(path, secrets=[SECRET]):
            with pytest.raises(UnrecordedRequest) as unrecorded:
                _post(BASE_URL, email="cy@example.com")
            _post(BASE_URL, email="ann@example.com")
    assert "the recording holds no (further) answer to POST /contacts?key=<secret>&since=<volatile> " \
           '{"email":"cy@example.com"}' in str(unrecorded.value)
    assert str(unplayed.value).startswith("requests the recording does not hold: "
                                          "['POST /contacts?key=<secret>&since=<volatile> {\"email\":\"cy@example.com\"}']")


def test_replay_without_a_recording_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"no recording .*missing\.yaml: record it once with SEGSYNC_RECORD=1"):
        with replaying(tmp_path / "missing.yaml"):
            pass
