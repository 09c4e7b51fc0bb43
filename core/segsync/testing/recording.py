"""Record a connector's HTTP exchange once, replay it offline: the conformance kit without an
account or an emulator in CI.

Recording goes through `responses`' recorder (it wraps ``requests``' transport, so it sees every
call made with ``requests``: the Mailchimp SDK, ``segsync.http``); replay through `responses`'
mock. One YAML file per test holds, in order, each request (method, path, query, body) and the
answer it got, plus what the service adapter reported (see :class:`RecordedService`).

What a recording never holds: request headers (credentials travel there), any known secret
value (replaced by ``<secret>`` wherever it appears; saving fails if one is left), and the live
server's address (rewritten to ``base_url``, which is never contacted). Values that change from
run to run (timestamps in queries and bodies, by default) are normalised on both sides before
requests are compared.

Replay answers a request with the first unplayed recorded answer to the same request, so the
connector must send what it sent when the recording was made; a request the recording does not
hold fails the test, naming it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
import yaml
from pydantic import SecretStr
from responses._recorder import Recorder

from segsync.config import secret_fields
from segsync.connector import Connector, ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync.testing.service import Exchange, RemoteContact, ServiceAdapter

RECORD_ENV = "SEGSYNC_RECORD"
"""Set to 1 to (re)record: the tests then run against the live service and rewrite the files."""
BASE_URL = "http://127.0.0.1:9"
"""Where recorded URLs point (the discard port: nothing listens, nothing is ever sent there)."""
SECRET = "<secret>"
TIMESTAMPS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"
DEFAULT_VOLATILE = (TIMESTAMPS,)


def recording_requested() -> bool:
    return os.environ.get(RECORD_ENV, "") not in ("", "0")


class UnrecordedRequest(AssertionError):
    """The connector sent a request the recording does not hold."""


@dataclass
class _Entry:
    method: str
    path: str  # relative to the base URL, with its normalised query
    body: str | None  # the normalised request body
    status: int
    headers: dict[str, str]
    response: str
    played: bool = False

    def to_yaml(self) -> dict[str, Any]:
        return {"request": {"method": self.method, "path": self.path, "body": self.body},
                "response": {"status": self.status, "headers": self.headers, "body": self.response}}


@dataclass
class Cassette:
    """One test's exchange: HTTP requests and answers, and the service adapter's answers."""

    exchanges: list[_Entry] = field(default_factory=list)
    service: list[dict[str, Any]] = field(default_factory=list)
    page_size: int | None = None

    def save(self, path: Path, secrets: Iterable[str]) -> None:
        text = yaml.safe_dump({"page_size": self.page_size,
                               "exchanges": [e.to_yaml() for e in self.exchanges],
                               "service": self.service}, sort_keys=False, allow_unicode=True, width=120)
        leaked = [s for s in secrets if s and s in text]
        if leaked:  # never write a file holding a secret, whatever slipped past the scrubbing
            raise AssertionError(f"{path.name}: a secret value would be recorded; nothing was written")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Cassette:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = [_Entry(e["request"]["method"], e["request"]["path"], e["request"]["body"],
                          e["response"]["status"], e["response"]["headers"] or {}, e["response"]["body"])
                   for e in data["exchanges"]]
        return cls(entries, list(data["service"] or []), data.get("page_size"))


class _Scrubber:
    """Known secrets out, the live address swapped for the recorded one, volatile values normalised."""

    def __init__(self, secrets: Iterable[str], live_url: str, volatile: Sequence[str]) -> None:
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self.live_url = live_url.rstrip("/")
        self.volatile = [re.compile(p) for p in volatile]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, SECRET)
        return value.replace(self.live_url, BASE_URL)

    def normalised(self, value: str) -> str:
        for pattern in self.volatile:
            value = pattern.sub("<volatile>", value)
        return value

    def request(self, method: str, url: str, body: bytes | str | None) -> tuple[str, str, str | None]:
        parts = urlsplit(url)
        # Decoded, so that volatile values are found whatever their encoding.
        query = sorted(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if text:
            try:  # JSON bodies compare by content, not by key order or spacing
                text = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
            except ValueError:
                pass
        return method.upper(), self.normalised(self.text(path)), self.normalised(self.text(text)) if text else None


class _Recorder(Recorder):
    """`responses`' recorder, keeping each request too (its answer is what the recorder keeps)."""

    def __init__(self, cassette: Cassette, scrub: _Scrubber, log: list[Exchange]) -> None:
        super().__init__()
        self.cassette, self.scrub, self.log = cassette, scrub, log
        self._lock = threading.Lock()

    def _on_request(self, adapter: Any, request: Any, **kwargs: Any) -> Any:
        sent = time.monotonic()
        answer = super()._on_request(adapter, request, **kwargs)
        method, path, body = self.scrub.request(request.method, request.url, request.body)
        headers = {k: self.scrub.text(v) for k, v in answer.headers.items()
                   if k.lower() not in ("date", "server", "content-length", "connection", "set-cookie")}
        with self._lock:
            self.cassette.exchanges.append(_Entry(method, path, body, answer.status_code, headers,
                                                  self.scrub.text(answer.text)))
            self.log.append(Exchange(method, urlsplit(request.url).path, answer.status_code, sent))
        return answer


class _Player:
    def __init__(self, cassette: Cassette, scrub: _Scrubber, log: list[Exchange]) -> None:
        self.cassette, self.scrub, self.log = cassette, scrub, log
        self.unrecorded: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        method, path, body = self.scrub.request(request.method, request.url.replace(BASE_URL, self.scrub.live_url), request.body)
        with self._lock:
            for entry in self.cassette.exchanges:
                if not entry.played and (entry.method, entry.path, entry.body) == (method, path, body):
                    entry.played = True
                    self.log.append(Exchange(method, urlsplit(request.url).path, entry.status, time.monotonic()))
                    return entry.status, dict(entry.headers), entry.response
            self.unrecorded.append(f"{method} {path} {body or ''}".strip())
            route = path.split("?")[0]
            nearest = next((f"{e.path} {e.body or ''}".strip() for e in self.cassette.exchanges
                            if not e.played and e.method == method and e.path.split("?")[0] == route), "none")
        raise UnrecordedRequest(f"the recording holds no (further) answer to {method} {path} {body or ''}; "
                                f"the next unplayed {method} {route} recorded: {nearest}")


class RecordedService(ServiceAdapter):
    """A service adapter that, recording, asks the live adapter and writes its answers down and,
    replaying, answers from the recording. ``fail_next`` and ``add_contacts`` act only while
    recording (their effect is in the recorded answers); ``exchanges`` always lists the HTTP
    requests this run made, with this run's times, so retry waits are checked on the code under
    test, not on the recording."""

    def __init__(self, cassette: Cassette, log: list[Exchange], live: ServiceAdapter | None) -> None:
        self.cassette, self.log, self.live = cassette, log, live
        self.page_size = live.page_size if live is not None else cassette.page_size
        cassette.page_size = self.page_size
        self._replayed = iter(list(cassette.service))

    def _answer(self, name: str, args: list[Any], call: Any) -> Any:
        if self.live is not None:
            value = call()
            self.cassette.service.append({"call": name, "args": args, "result": value})
            return value
        step = next(self._replayed, None)
        if step is None or (step["call"], step["args"]) != (name, args):
            raise UnrecordedRequest(f"the recording holds no service answer to {name}{tuple(args)}; next: {step}")
        return step["result"]

    def contact(self, key: str) -> RemoteContact | None:
        found = self._answer("contact", [key], lambda: _remote_doc(self.live.contact(key)))
        if found is None:
            return None
        return RemoteContact(found["status"], frozenset(found["tags"]), found["attributes"], found["copies"])

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        if self.live is not None:
            self.live.fail_next(count, status, retry_after)

    def exchanges(self) -> Sequence[Exchange]:
        return list(self.log)

    def add_contacts(self, keys: Sequence[str]) -> None:
        if self.live is not None:
            self.live.add_contacts(keys)

    def refused_changes(self) -> Sequence[ContactChange]:
        docs = self._answer("refused_changes", [], lambda: [_change_doc(c) for c in self.live.refused_changes()])
        return [ContactChange(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) for d in docs]

    def max_attempts(self, connector: Connector) -> int | None:
        return self.live.max_attempts(connector) if self.live is not None else super().max_attempts(connector)


def _remote_doc(remote: RemoteContact | None) -> dict[str, Any] | None:
    if remote is None:
        return None
    return {"status": remote.status, "tags": sorted(remote.tags), "attributes": dict(remote.attributes),
            "copies": remote.copies}


def _change_doc(change: ContactChange) -> dict[str, Any]:
    doc = asdict(change)
    return {k: list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, Mapping) else v) for k, v in doc.items()}


@contextmanager
def recording(path: Path, *, secrets: Iterable[str], live_url: str, live_service: ServiceAdapter | None = None,
              volatile: Sequence[str] = DEFAULT_VOLATILE) -> Iterator[RecordedService]:
    """Record every ``requests`` call made inside the block (and ``live_service``'s answers) to ``path``."""
    secrets = list(secrets)
    cassette, log = Cassette(), []
    service = RecordedService(cassette, log, live_service)
    with _Recorder(cassette, _Scrubber(secrets, live_url, volatile), log):
        yield service
    cassette.save(path, secrets)


@contextmanager
def replaying(path: Path, *, secrets: Iterable[str] = (),
              volatile: Sequence[str] = DEFAULT_VOLATILE) -> Iterator[RecordedService]:
    """Answer every ``requests`` call made inside the block from the recording at ``path``;
    fails if a request is not in it or a recorded one was never made."""
    if not path.exists():
        raise AssertionError(f"no recording {path}: record it once with {RECORD_ENV}=1 against the "
                             "emulator or a sandbox")
    cassette, log = Cassette.load(path), []
    player = _Player(cassette, _Scrubber(secrets, BASE_URL, volatile), log)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            mock.add_callback(method, re.compile(".*"), callback=player)
        yield RecordedService(cassette, log, None)
    assert not player.unrecorded, f"requests the recording does not hold: {player.unrecorded}"
    unplayed = [f"{e.method} {e.path}" for e in cassette.exchanges if not e.played]
    assert not unplayed, f"recorded requests the connector no longer makes: {unplayed}"


def secret_values(connector: Connector) -> list[str]:
    """The connector's secret setting values (what a recording must never hold)."""
    return [value.get_secret_value() for name in secret_fields(type(connector.settings))
            if isinstance(value := getattr(connector.settings, name), SecretStr)]


class RecordedConformance(ConnectorConformance):
    """The conformance kit on recorded exchanges, one file per test in ``recordings``.

    Provide :meth:`live` (used only when recording: the connector against the emulator or a
    sandbox, its service adapter, and the live base URL) and :meth:`offline` (a connector
    configured for ``base_url``, used when replaying). Record with ``SEGSYNC_RECORD=1``; replay
    is the default and needs neither network nor account.
    """

    recordings: ClassVar[Path]
    volatile: ClassVar[Sequence[str]] = DEFAULT_VOLATILE

    def live(self, request: pytest.FixtureRequest) -> tuple[Connector, ServiceAdapter | None, str]:
        raise NotImplementedError

    def offline(self, request: pytest.FixtureRequest, base_url: str) -> Connector:
        raise NotImplementedError

    @pytest.fixture
    def _exchange(self, request: pytest.FixtureRequest) -> Iterator[tuple[Connector, RecordedService]]:
        path = self.recordings / f"{request.node.name}.yaml"
        if recording_requested():
            connector, live_service, live_url = self.live(request)
            with recording(path, secrets=secret_values(connector), live_url=live_url,
                           live_service=live_service, volatile=self.volatile) as service:
                yield connector, service
        else:
            connector = self.offline(request, BASE_URL)
            try:
                with replaying(path, secrets=secret_values(connector), volatile=self.volatile) as service:
                    yield connector, service
            finally:
                connector.close()

    @pytest.fixture
    def connector(self, _exchange: tuple[Connector, RecordedService]) -> Connector:
        return _exchange[0]

    @pytest.fixture
    def service(self, _exchange: tuple[Connector, RecordedService]) -> ServiceAdapter:
        return _exchange[1]
