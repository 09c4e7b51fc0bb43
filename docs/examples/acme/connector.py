"""The ``acme`` connector of docs/writing-a-connector.md: the project ``segsync new connector acme``
generates, with its stubs written against the emulator the template ships.

tests/test_writing_a_connector.py generates that project, puts this file in place of the
generated ``segsync_acme/connector.py`` and runs the project's tests (the conformance kit among
them) and tests/acme_example_tests.py; the guide quotes this file and a test checks that the
quote is still this file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsync import Batch, Capability, Connector, ContactChange, Outcome, Stream, WriteResult, lazy_settings

if TYPE_CHECKING:
    from segsync.http import HttpSession

    from segsync_acme.settings import AcmeSettings

PAGE_SIZE = 100  # the most contacts Acme lists per page


class AcmeConnector(Connector):
    """Connections of ``type = "acme"`` in ``segsync.toml``."""

    type_name = "acme"
    capabilities = frozenset({
        Capability.READ_CONTACTS,
        Capability.WRITE_CONTACTS,
        Capability.WRITE_MEMBERSHIPS,
        Capability.WRITE_CONSENT,
    })
    # Named, not imported: `segsync plugins` lists this class without loading pydantic.
    Settings = lazy_settings("segsync_acme.settings:AcmeSettings")
    max_batch_size = 100  # the most contacts Acme's bulk endpoint takes per request

    def __init__(self, connection: str, settings: AcmeSettings, project_dir: Path) -> None:
        super().__init__(connection, settings, project_dir)
        self.settings: AcmeSettings = settings
        self._session: HttpSession | None = None

    @property
    def session(self) -> HttpSession:
        """The HTTP session (retries, pacing, call counting, logs without the key), made on first use."""
        if self._session is None:
            from segsync.http import new_session

            settings = self.settings
            self._session = new_session(
                settings.host,
                headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
                retry=settings.retry_policy(),
                timeout=settings.timeout,
                max_connections=settings.max_connections,
                name=self.connection,
            )
        return self._session

    def check(self) -> list[str]:
        """Problems reaching Acme with these settings (``segsync check``), in words."""
        import requests
        from segsync.http import safe_error

        try:
            response = self.session.get("/v1/account", endpoint="account")
        except requests.RequestException as exc:
            return [f"cannot reach {self.settings.host}: {safe_error(exc)}"]
        if response.status_code in (401, 403):
            return [f"Acme refused the API key (HTTP {response.status_code}); "
                    f"check SEGSYNC_{self.connection.upper()}_API_KEY"]
        if response.status_code >= 400:
            return [f"GET /v1/account answered HTTP {response.status_code}"]
        return []

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        """Contacts changed since ``cursor``: Acme's change feed, a page per batch.

        The cursor of a batch is the change number of its last contact, so a run that stops
        between batches resumes after the last one stored, and a run with nothing new reads
        one empty page.
        """
        from segsync.http import cursor_pages, raise_for_status

        def fetch(after: str | None) -> dict[str, Any]:
            params = {"after": after or 0, "limit": PAGE_SIZE}
            response = self.session.get("/v1/contacts", params=params, endpoint="contacts.list")
            return raise_for_status(response, "contacts.list").json()

        start = None if cursor is None else str(cursor["after"])
        for page in cursor_pages(fetch, items="results", next_cursor="next", start=start):
            rows = [{"email": c["email"], "external_id": c["id"], **c["attributes"]} for c in page]
            yield Batch(stream, cursor={"after": page[-1]["seq"]}, rows=rows,
                        record_ids=[c["id"] for c in page])

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        """One bulk request for the batch: attributes, the status Acme must hold (an opt-out
        becomes Acme's own ``unsubscribed``) and the contact's segments as Acme tags."""
        if not changes:
            return WriteResult([], calls=0)  # writing nothing makes no call
        from segsync.http import raise_for_status

        body = {"contacts": [
            {"email": c.contact_key, "attributes": dict(c.attributes), "status": c.status,
             "tags": sorted(c.tags)}
            for c in changes
        ]}
        calls_before = self.session.calls.total
        response = self.session.post("/v1/contacts/batch", json=body, endpoint="contacts.batch")
        calls = self.session.calls.total - calls_before
        if response.status_code == 429 or response.status_code >= 500:
            # Still failing after the session's retries: the next run sends them again.
            reason = f"Acme answered HTTP {response.status_code}"
            return WriteResult([Outcome.retryable(c.contact_key, reason) for c in changes], calls)
        results = {r["email"]: r for r in raise_for_status(response, "contacts.batch").json()["results"]}
        return WriteResult([_outcome(c, results.get(c.contact_key)) for c in changes], calls)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any]:
        """A local Acme on 127.0.0.1 for ``segsync demo --with acme`` and dry runs."""
        from segsync_acme.emulator import AcmeEmulator

        emulator = stack.enter_context(AcmeEmulator())
        return {"host": emulator.url, "api_key": emulator.api_key}


def _outcome(change: ContactChange, result: dict[str, Any] | None) -> Outcome:
    """Acme's answer for one contact as an :class:`Outcome`; its errors read ``field: reason``."""
    if result is None:
        return Outcome.retryable(change.contact_key, "Acme's answer left this contact out")
    if result["status"] == "ok":
        return Outcome.ok(change.contact_key, external_id=result["id"])
    field, _, reason = result["error"].partition(": ")
    return Outcome.rejected(change.contact_key, reason or field, field=field if reason else None)
