"""ConstantContactConnector: the class the runner drives (see segsync.connector for the contract)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from segsync import Batch, Capability, Connector, ContactChange, Stream, WriteResult, lazy_settings

from segsync_constantcontact.limits import ACTIVITY_MAX_CONTACT_IDS

if TYPE_CHECKING:
    from segsync_constantcontact.settings import ConstantContactSettings


class ConstantContactConnector(Connector):
    type_name: ClassVar[str] = "constantcontact"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.READ_CONTACTS, Capability.READ_CONSENT, Capability.WRITE_CONTACTS,
        Capability.WRITE_MEMBERSHIPS, Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS,
    })
    Settings: ClassVar[type[ConstantContactSettings]] = lazy_settings("segsync_constantcontact.settings:ConstantContactSettings")
    # The most contact ids one bulk activity takes (tags, lists, deletions).
    max_batch_size: ClassVar[int | None] = ACTIVITY_MAX_CONTACT_IDS

    def __init__(self, connection: str, settings: ConstantContactSettings, project_dir: Path) -> None:
        from segsync_constantcontact.api import ConstantContactApi
        from segsync_constantcontact.directory import Directory
        from segsync_constantcontact.reader import Reader
        from segsync_constantcontact.writer import Writer

        super().__init__(connection, settings, project_dir)
        self.api = ConstantContactApi(settings)
        self.directory = Directory(self.api, settings)
        self._reader = Reader(self.api, settings, self.directory)
        self._writer = Writer(self.api, settings, self.directory)

    def check(self) -> list[str]:
        from segsync_constantcontact.api import ConstantContactError

        try:
            missing = self.directory.missing_custom_fields()
        except ConstantContactError as exc:
            return [f"Constant Contact at {self.settings.host} is not usable: {exc}"]
        return [f"Constant Contact custom field {name!r} is missing; `segsync check --fix` creates it"
                for name in missing]

    def fix(self) -> list[str]:
        """Create the missing custom fields (only ever called by `segsync check --fix`)."""
        done = []
        for name in self.directory.missing_custom_fields():
            self.directory.create_custom_field(name)
            done.append(f"created Constant Contact custom field {name!r}")
        return done

    def schema_version(self) -> str:
        """The account's custom fields: records refused for a missing one are retried once it
        exists (created by `check --fix` or by hand)."""
        self.directory.forget_custom_fields()
        return "custom_fields:" + ",".join(sorted(self.directory.custom_fields()))

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        return self._reader.read(stream, cursor)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        return self._writer.write(changes)

    def close(self) -> None:
        self.api.close()

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any]:
        """A local Constant Contact account for the demo (OAuth2 refresh configured)."""
        from segsync_constantcontact.emulator import ConstantContactEmulator

        emulator = ConstantContactEmulator()
        emulator.start()
        stack.callback(emulator.stop)
        return {"access_token": emulator.access_token, "refresh_token": emulator.refresh_token,
                "client_id": emulator.client_id, "client_secret": emulator.client_secret,
                "host": emulator.url, "token_url": emulator.token_url,
                # The emulator finishes an activity within 50 ms; a real one takes seconds.
                "activity_poll_seconds": 0.1}
