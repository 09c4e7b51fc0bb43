"""The Mailchimp connector: one audience of one account, read and written through the SDK."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from segsync import (
    Batch,
    Capability,
    Connector,
    ContactChange,
    Outcome,
    OutcomeReport,
    Stream,
    TriggerMessage,
    WriteResult,
    lazy_settings,
)

from segsync_mailchimp import mapping
from segsync_mailchimp.limits import BATCH_MAX

if TYPE_CHECKING:
    # The API client, readers and writer (and with them the SDK, tenacity and a thread pool) are
    # imported by the methods that use them: `segsync plugins` and `--help` only need the class.
    from segsync_mailchimp.api import MailchimpApi
    from segsync_mailchimp.settings import MailchimpSettings
    from segsync_mailchimp.writer import Writer


class MailchimpConnector(Connector):
    type_name: ClassVar[str] = "mailchimp"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    Settings: ClassVar[type[MailchimpSettings]] = lazy_settings("segsync_mailchimp.settings:MailchimpSettings")
    # 200 write batches a write: the writer plans them as the connections free up, so they stay
    # busy through a write, and drain only once per 100,000 changes; the runner holds at most
    # this many changes at once.
    max_batch_size: ClassVar[int | None] = 100_000
    # One batch-subscribe call (and one call per tag) per write batch; each is acknowledged as
    # soon as it is done, with at most max_connections of them in flight.
    write_batch_size: ClassVar[int | None] = BATCH_MAX

    settings: MailchimpSettings

    def __init__(self, connection: str, settings: MailchimpSettings, project_dir: Path) -> None:
        super().__init__(connection, settings, project_dir)
        self._api: MailchimpApi | None = None
        self._writer: Writer | None = None
        self._schema: str | None = None  # read once per run (schema_version)
        self.write_concurrency = settings.max_connections

    @property
    def api(self) -> MailchimpApi:
        if self._api is None:
            from segsync_mailchimp.api import MailchimpApi

            self._api = MailchimpApi(self.settings)
        return self._api

    def check(self) -> list[str]:
        from segsync_mailchimp.api import MailchimpError

        try:
            self.api.call("ping", lambda c: c.ping.get())
            audience = self.api.call("get audience", lambda c: c.lists.get_list(
                self.settings.list_id, fields=["id", "name"])) or {}
            fields = self.api.call("merge fields", lambda c: c.lists.get_list_merge_fields(
                self.settings.list_id, count=1000, fields=["merge_fields.tag"])) or {}
        except MailchimpError as exc:
            return [f"Mailchimp connection {self.connection!r}: {exc}"]
        problems = []
        tags = {f["tag"] for f in fields.get("merge_fields") or ()}
        wanted = set(self.settings.attribute_mapping.values())
        if self.settings.segment_mode == "attribute":
            wanted.add(self.settings.segment_attribute)
        for tag in sorted(wanted - tags):
            problems.append(f"audience {audience.get('name', self.settings.list_id)!r} has no merge field {tag}")
        return problems

    def schema_version(self) -> str:
        """The audience's merge field tags: a refusal for a missing merge field may not hold
        once it exists, so remembered rejections are retried when these change."""
        if self._schema is None:
            fields = self.api.call("merge fields", lambda c: c.lists.get_list_merge_fields(
                self.settings.list_id, count=1000, fields=["merge_fields.tag"])) or {}
            self._schema = ",".join(sorted(f["tag"] for f in fields.get("merge_fields") or ()))
        return self._schema

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        from segsync_mailchimp.reader import ActivityReader, MemberReader

        if stream is Stream.EVENTS:
            return ActivityReader(self.api, self.settings).read(cursor)
        if stream is Stream.CONTACTS:
            tag_to_attribute = {tag: name for name, tag in self.settings.attribute_mapping.items()}
            segment_field = self.settings.segment_attribute if self.settings.segment_mode == "attribute" else None
            to_row = lambda m: mapping.contact_row(m, tag_to_attribute, segment_field)  # noqa: E731
        elif stream is Stream.CONSENT:
            to_row = lambda m: mapping.consent_row(m, self.settings.list_id)  # noqa: E731
        else:
            raise NotImplementedError(f"Mailchimp cannot read {stream.value}")
        return MemberReader(self.api, self.settings).read(stream, cursor, to_row)

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        if not changes:
            return WriteResult(outcomes=[], calls=0)
        if self._writer is None:
            from segsync_mailchimp.writer import Writer

            self._writer = Writer(self.api, self.settings)
        return self._writer.write(changes, report)

    def send_triggers(self, messages: Sequence[TriggerMessage]) -> list[Outcome]:
        """Member events and tags with ``is_syncing`` false, so automations start (triggers.py)."""
        from segsync_mailchimp.triggers import send_triggers

        return send_triggers(self.api, self.settings, messages)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
            self._writer = None

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any]:
        """A local Mailchimp with one empty audience, for ``segsync demo --with mailchimp``."""
        from segsync_mailchimp.emulator import MailchimpEmulator

        emulator = MailchimpEmulator()
        emulator.state.create_audience(DEMO_LIST_ID)
        emulator.start()
        stack.callback(emulator.stop)
        return {"api_key": emulator.api_key, "list_id": DEMO_LIST_ID, "host": emulator.url}


DEMO_LIST_ID = "demo0001"
