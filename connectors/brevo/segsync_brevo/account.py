"""What the Brevo account holds that the connector needs by name: lists, folders, attributes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from segsync_brevo.api import BrevoApi, BrevoApiError
from segsync_brevo.limits import LISTS_PAGE_MAX
from segsync_brevo.settings import BrevoSettings
from segsync_brevo.side_by_side import side_by_side

log = logging.getLogger(__name__)


class AccountDirectory:
    """Lazily loaded, cached for the life of one connector instance (one run)."""

    def __init__(self, api: BrevoApi, settings: BrevoSettings) -> None:
        self.api = api
        self.settings = settings
        self._lists: dict[int, str] | None = None
        self._attributes: set[str] | None = None
        self._folder: int | None = None

    def lists(self) -> dict[int, str]:
        if self._lists is None:
            found: dict[int, str] = {}
            offset = 0
            while True:
                page = self.api.get_lists(LISTS_PAGE_MAX, offset)
                items = page.get("lists") or []
                for item in items:
                    found[int(item["id"])] = item["name"]
                offset += len(items)
                if not items or offset >= int(page.get("count") or 0):
                    break
            self._lists = found
        return self._lists

    def list_id(self, name: str, *, create: bool) -> int | None:
        if name in self.settings.list_mapping:
            return self.settings.list_mapping[name]
        for list_id, list_name in sorted(self.lists().items()):
            if list_name == name:
                return list_id
        if not create:
            return None
        list_id = self.api.create_list(name, self.folder_id())
        self.lists()[list_id] = name
        log.info("created Brevo list %r (id %d)", name, list_id)
        return list_id

    def prepare(self, create: Sequence[str], lookup: Sequence[str]) -> None:
        """Resolve a write's lists before they are needed, in as few rounds as their order allows:
        the account's lists read once; when some of ``create`` are missing, the folder found
        (or created), then the missing lists created side by side. ``lookup`` names lists only
        looked up (a removal never creates one). The planner's :meth:`list_id` calls then find
        every list without a call."""
        if all(name in self.settings.list_mapping for name in [*create, *lookup]):
            return
        self.lists()  # read here, beside the planning, for the look-ups too
        missing = self.missing(create)
        if not missing:
            return
        folder = self.folder_id()
        failed: BrevoApiError | None = None
        for name, created in side_by_side(lambda name: self.api.create_list(name, folder), missing,
                                          self.settings.max_connections):
            if isinstance(created, BrevoApiError):
                failed = failed or created
                continue
            self.lists()[created] = name
            log.info("created Brevo list %r (id %d)", name, created)
        if failed is not None:
            raise failed

    def missing(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that have no list in Brevo (nor in ``list_mapping``), once each."""
        wanted = [name for name in dict.fromkeys(names) if name not in self.settings.list_mapping]
        if not wanted:
            return []
        existing = set(self.lists().values())
        return [name for name in wanted if name not in existing]

    def folder_id(self) -> int:
        if self._folder is None:
            name = self.settings.list_folder
            self._folder = self.api.find_by_name(self.api.get_folders, "folders", name)
            if self._folder is None:
                self._folder = self.api.create_folder(name)
        return self._folder

    def attributes(self) -> set[str]:
        if self._attributes is None:
            self._attributes = {a["name"].upper() for a in self.api.get_attributes()}
        return self._attributes

    def required_attributes(self) -> list[str]:
        names = set(self.settings.brevo_attributes().values())
        if self.settings.segment_mode == "attribute":
            names.add(self.settings.segment_attribute.upper())
        return sorted(names)

    def missing_attributes(self) -> list[str]:
        present = self.attributes()
        return [name for name in self.required_attributes() if name not in present]

    def create_attribute(self, name: str) -> None:
        self.api.create_attribute(name, "text")
        self.attributes().add(name)
