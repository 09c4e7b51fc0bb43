"""The account's contact lists, tags and custom fields by name, read once per connection.

Lists and tags a segment needs are created on first use when ``create_segments`` is on (and
the audience list always, as an import needs one); custom fields only by ``fix()``
(`segsync check --fix`), never silently.
"""

from __future__ import annotations

import threading

from segsync_constantcontact.api import ConstantContactApi, ConstantContactError
from segsync_constantcontact.limits import CUSTOM_FIELDS_PAGE_MAX, LISTS_PAGE_MAX, TAGS_PAGE_MAX
from segsync_constantcontact.settings import ConstantContactSettings


class Directory:
    def __init__(self, api: ConstantContactApi, settings: ConstantContactSettings) -> None:
        self.api = api
        self.settings = settings
        self._lists: dict[str, str] | None = None  # name -> list_id
        self._tags: dict[str, str] | None = None  # name -> tag_id
        self._fields: dict[str, str] | None = None  # name -> custom_field_id
        self._lock = threading.Lock()

    def _read(self, path: str, items: str, key: str, name: str, limit: int, endpoint: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for page, _ in self.api.pages(path, items, {"limit": limit}, endpoint=endpoint):
            for entry in page:
                if isinstance(entry, dict) and isinstance(entry.get(key), str) and isinstance(entry.get(name), str):
                    found[entry[name]] = entry[key]
        return found

    def lists(self) -> dict[str, str]:
        if self._lists is None:
            self._lists = self._read("/contact_lists", "lists", "list_id", "name", LISTS_PAGE_MAX,
                                     "contact_lists.list")
        return self._lists

    def tags(self) -> dict[str, str]:
        if self._tags is None:
            self._tags = self._read("/contact_tags", "tags", "tag_id", "name", TAGS_PAGE_MAX,
                                    "contact_tags.list")
        return self._tags

    def custom_fields(self) -> dict[str, str]:
        if self._fields is None:
            self._fields = self._read("/contact_custom_fields", "custom_fields", "custom_field_id", "name",
                                      CUSTOM_FIELDS_PAGE_MAX, "custom_fields.list")
        return self._fields

    def forget_custom_fields(self) -> None:
        """Read the custom fields afresh next time (someone may have created one)."""
        self._fields = None

    def missing_custom_fields(self) -> list[str]:
        have = self.custom_fields()
        return sorted(set(self.settings.custom_fields().values()) - set(have))

    def create_custom_field(self, name: str) -> None:
        # The name is derived from the label (blanks become underscores); a label without
        # blanks gives the same name.
        created = self.api.call("POST", "/contact_custom_fields", json={"label": name, "type": "string"},
                                endpoint="custom_fields.create") or {}
        self.custom_fields()[str(created.get("name") or name)] = str(created.get("custom_field_id"))

    def list_id(self, name: str) -> str:
        """The id of list ``name``, created when missing."""
        with self._lock:
            return self._ensure(self.lists(), name, "/contact_lists", "list_id", "contact_lists.create")

    def tag_id(self, name: str) -> str:
        """The id of tag ``name``, created when missing."""
        with self._lock:
            return self._ensure(self.tags(), name, "/contact_tags", "tag_id", "contact_tags.create")

    def segment_id(self, segment: str) -> str | None:
        """The tag or list id of ``segment`` (per ``segment_mode``); None when it does not exist
        and ``create_segments`` is off."""
        known = self.tags() if self.settings.segment_mode == "tags" else self.lists()
        if segment not in known and not self.settings.create_segments:
            return None
        return self.tag_id(segment) if self.settings.segment_mode == "tags" else self.list_id(segment)

    def _ensure(self, known: dict[str, str], name: str, path: str, key: str, endpoint: str) -> str:
        if name in known:
            return known[name]
        try:
            created = self.api.call("POST", path, json={"name": name}, endpoint=endpoint) or {}
        except ConstantContactError as exc:
            if exc.status != 409:  # 409: it exists (made by another run, or a lost answer's create)
                raise
            known.clear()
            known.update(self._read(path, "lists" if key == "list_id" else "tags", key, "name",
                                    LISTS_PAGE_MAX if key == "list_id" else TAGS_PAGE_MAX, endpoint + ".reread"))
            if name not in known:
                raise
            return known[name]
        known[name] = str(created[key])
        return known[name]
