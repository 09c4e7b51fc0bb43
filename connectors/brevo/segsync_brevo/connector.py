"""BrevoConnector: the class the runner drives (see segsync.connector for the contract)."""

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

if TYPE_CHECKING:
    from segsync_brevo.settings import BrevoSettings


class BrevoConnector(Connector):
    type_name: ClassVar[str] = "brevo"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    Settings: ClassVar[type[BrevoSettings]] = lazy_settings("segsync_brevo.settings:BrevoSettings")
    # One write may hold a whole import's worth of changes; the planner splits by 10 MB.
    max_batch_size: ClassVar[int | None] = 100_000
    # Each change is reported as soon as the last call it is part of is done (an import of up to
    # import_max_bytes of rows, a batch update of batch_size, a list call of 150); calls run one
    # at a time.
    write_batch_size: ClassVar[int | None] = max_batch_size

    def __init__(self, connection: str, settings: BrevoSettings, project_dir: Path) -> None:
        # The client factory: the SDK loads with the first client, not with the connector class.
        from segsync_brevo.account import AccountDirectory
        from segsync_brevo.api import BrevoApi
        from segsync_brevo.reader import Reader
        from segsync_brevo.writer import Writer

        super().__init__(connection, settings, project_dir)
        self.api = BrevoApi(
            settings.api_key,
            settings.host,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            wait_initial=settings.retry_wait_initial,
            max_backoff=settings.retry_wait_max,
            max_connections=settings.max_connections,
        )
        self.directory = AccountDirectory(self.api, settings)
        self._reader = Reader(self.api, settings, self.directory)
        self._writer = Writer(self.api, settings, self.directory, poll_seconds=settings.import_poll_seconds)

    def check(self) -> list[str]:
        from segsync_brevo.api import BrevoApiError

        problems: list[str] = []
        try:
            missing = self.directory.missing_attributes()
        except BrevoApiError as exc:
            return [f"Brevo at {self.settings.host} is not usable: {exc}"]
        for name in missing:
            problems.append(
                f"Brevo contact attribute {name} is missing; `segsync check --fix` creates it"
            )
        for segment, list_id in self.settings.list_mapping.items():
            if list_id not in self.directory.lists():
                problems.append(f"list_mapping: segment {segment!r} points at Brevo list {list_id}, which does not exist")
        return problems

    def fix(self) -> list[str]:
        """Create the missing contact attributes (only ever called by `segsync check --fix`)."""
        done = []
        for name in self.directory.missing_attributes():
            self.directory.create_attribute(name)
            done.append(f"created Brevo contact attribute {name}")
        return done

    def schema_version(self) -> str:
        """Brevo's contact attributes and which mapped lists exist: records refused for a
        missing one are retried once it exists (created by `check --fix` or by hand)."""
        wanted = set(self.settings.list_mapping.values())
        mapped = sorted(wanted & set(self.directory.lists())) if wanted else []
        return "attributes:" + ",".join(sorted(self.directory.attributes())) + \
            ";lists:" + ",".join(map(str, mapped))

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        return self._reader.read(stream, cursor)

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        return self._writer.write(changes, report)

    def send_triggers(self, messages: Sequence[TriggerMessage]) -> list[Outcome]:
        """Custom events, where a Brevo automation can start (triggers.py)."""
        from segsync_brevo.triggers import send_triggers

        return send_triggers(self.api, messages)

    def close(self) -> None:
        self.api.close()

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any]:
        """A local Brevo account prepared as `segsync check --fix` leaves it, for the demo."""
        from segsync_brevo.emulator import BrevoEmulator
        from segsync_brevo.settings import DEFAULT_ATTRIBUTES

        emulator = BrevoEmulator()
        for name in DEFAULT_ATTRIBUTES.values():
            if name not in ("FIRSTNAME", "LASTNAME"):
                emulator.state.add_attribute(name)
        emulator.start()
        stack.callback(emulator.stop)
        return {"api_key": emulator.api_key, "host": emulator.url}
