"""HubSpotConnector: the class the runner drives (see segsync.connector for the contract)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from segsync import Batch, Capability, Connector, ContactChange, Stream, WriteResult, lazy_settings

from segsync_hubspot.limits import BATCH_MAX

if TYPE_CHECKING:
    from segsync_hubspot.settings import HubSpotSettings


class HubSpotConnector(Connector):
    type_name: ClassVar[str] = "hubspot"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.READ_CONTACTS, Capability.READ_CONSENT, Capability.WRITE_CONTACTS,
        Capability.WRITE_MEMBERSHIPS, Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS,
    })
    Settings: ClassVar[type[HubSpotSettings]] = lazy_settings("segsync_hubspot.settings:HubSpotSettings")
    # One write is one batch upsert: HubSpot's CRM batch limit.
    max_batch_size: ClassVar[int | None] = BATCH_MAX

    def __init__(self, connection: str, settings: HubSpotSettings, project_dir: Path) -> None:
        # The HTTP session and its helpers load with the first instance, not with the class.
        from segsync_hubspot.account import Account
        from segsync_hubspot.api import HubSpotApi
        from segsync_hubspot.reader import Reader
        from segsync_hubspot.writer import Writer

        super().__init__(connection, settings, project_dir)
        self.api = HubSpotApi(settings)
        self.account = Account(self.api, settings)
        self._reader = Reader(self.api, settings)
        self._writer = Writer(self.api, settings, self.account)

    def check(self) -> list[str]:
        from segsync.http import HttpError

        from segsync_hubspot.api import error_message

        try:
            missing = self.account.missing_properties()
            problems = [
                f"HubSpot contact property {name} is missing; "
                + ("`segsync check --fix` creates it" if name == self.settings.segment_attribute
                   else "map the attribute to another property (attribute_mapping) or create it in HubSpot")
                for name in missing
            ]
            problems += [f"list_mapping: segment {entry}, which does not exist in HubSpot"
                         for entry in self.account.missing_mapped_lists()]
            if not self.account.subscription_exists():
                problems.append(f"subscription_id {self.settings.subscription_id} is not a subscription type "
                                "of this HubSpot account")
        except (HttpError, OSError) as exc:
            detail = error_message(exc) if isinstance(exc, HttpError) else str(exc)
            return [f"HubSpot at {self.settings.host} is not usable: {detail}"]
        return problems

    def fix(self) -> list[str]:
        """Create the segment property (only ever called by `segsync check --fix`)."""
        if self.account.uses_property and self.settings.segment_attribute in self.account.missing_properties():
            self.account.create_segment_attribute()
            return [f"created HubSpot contact property {self.settings.segment_attribute} (multiple checkboxes)"]
        return []

    def schema_version(self) -> str:
        return self.account.schema_version()

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        return self._reader.read(stream, cursor)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        return self._writer.write(changes)

    def close(self) -> None:
        self.api.close()

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any]:
        """A local HubSpot account prepared as `segsync check --fix` leaves it, for the demo."""
        from segsync_hubspot.emulator import HubSpotEmulator

        emulator = HubSpotEmulator()
        emulator.state.add_segment_property("segsync_segments")
        emulator.start()
        stack.callback(emulator.stop)
        return {"access_token": emulator.access_token, "host": emulator.url, "segment_mode": "both"}
