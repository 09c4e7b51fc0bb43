"""What the connector knows of the account's schema: contact properties (with the options of
enumerations), the static lists segments map to, the subscription types. Read once per
connector instance and kept up to date by the connector's own changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from segsync_hubspot.api import HubSpotApi
from segsync_hubspot.settings import HubSpotSettings

SEGMENT_PROPERTY_GROUP = "contactinformation"


class Account:
    def __init__(self, api: HubSpotApi, settings: HubSpotSettings) -> None:
        self.api = api
        self.settings = settings
        self._properties: dict[str, dict[str, Any]] | None = None
        self._lists: dict[str, str | None] = {}  # list name -> id (None: looked up, not there)

    # -- properties ------------------------------------------------------------------------

    def properties(self) -> dict[str, dict[str, Any]]:
        if self._properties is None:
            self._properties = {p["name"]: p for p in self.api.properties() if isinstance(p, Mapping) and "name" in p}
        return self._properties

    def missing_properties(self) -> list[str]:
        """Mapped properties (and the segment property, when used) the account lacks."""
        wanted = list(dict.fromkeys(self.settings.hubspot_properties().values()))
        if self.uses_property:
            wanted.append(self.settings.segment_attribute)
        return [name for name in wanted if name not in self.properties()]

    @property
    def uses_property(self) -> bool:
        return self.settings.segment_mode in ("attribute", "both")

    @property
    def uses_lists(self) -> bool:
        return self.settings.segment_mode in ("lists", "both")

    def problem(self, values: Mapping[str, str]) -> tuple[str, str] | None:
        """(property, reason) when HubSpot would refuse ``values``, checked before sending:
        HubSpot refuses a whole batch for one bad value."""
        known = self.properties()
        for name, value in values.items():
            definition = known.get(name)
            if definition is None:
                return name, f"HubSpot has no contact property {name!r}"
            if (definition.get("modificationMetadata") or {}).get("readOnlyValue"):
                return name, f"HubSpot property {name!r} is read-only"
            if definition.get("type") == "enumeration" and value:
                allowed = {o.get("value") for o in definition.get("options") or [] if isinstance(o, Mapping)}
                chosen = value.split(";") if definition.get("fieldType") == "checkbox" else [value]
                for option in chosen:
                    if option not in allowed:
                        return name, f"{option!r} is not one of the options of HubSpot property {name!r}"
        return None

    def ensure_options(self, segments: Iterable[str]) -> None:
        """Add segments missing from the segment property's options (``create_options``)."""
        definition = self.properties().get(self.settings.segment_attribute)
        if definition is None or not self.settings.create_options:
            return
        options = [o for o in definition.get("options") or [] if isinstance(o, Mapping)]
        have = {o.get("value") for o in options}
        missing = sorted(set(segments) - have)
        if not missing:
            return
        merged = [dict(o) for o in options] + [
            {"label": name, "value": name, "displayOrder": len(options) + i, "hidden": False}
            for i, name in enumerate(missing)
        ]
        self.properties()[self.settings.segment_attribute] = self.api.set_options(self.settings.segment_attribute, merged)

    def create_segment_attribute(self) -> None:
        created = self.api.create_property({
            "name": self.settings.segment_attribute, "label": "segsync segments", "type": "enumeration",
            "fieldType": "checkbox", "groupName": SEGMENT_PROPERTY_GROUP, "options": [],
            "description": "Segments segsync computed for this contact",
        })
        self.properties()[self.settings.segment_attribute] = created

    # -- lists -----------------------------------------------------------------------------

    def list_id(self, name: str) -> str | None:
        """The id of the static list for segment ``name``: mapped, found by name, or created
        (``create_lists``); None when there is none."""
        mapped = self.settings.list_mapping.get(name)
        if mapped is not None:
            return mapped
        if name not in self._lists:
            found = self.api.list_by_name(name)
            if found is not None and found.get("processingType") not in ("MANUAL", "SNAPSHOT"):
                raise ValueError(f"HubSpot list {name!r} is {found.get('processingType')}; segsync writes only "
                                 "to static (MANUAL) lists: rename it or map the segment to another list")
            self._lists[name] = None if found is None else str(found["listId"])
        if self._lists[name] is None and self.settings.create_lists:
            self._lists[name] = str(self.api.create_list(name)["listId"])
        return self._lists[name]

    def missing_mapped_lists(self) -> list[str]:
        return [f"{segment} -> {list_id}" for segment, list_id in self.settings.list_mapping.items()
                if self.api.get_list(list_id) is None]

    # -- subscriptions ---------------------------------------------------------------------

    def subscription_exists(self) -> bool:
        wanted = self.settings.subscription_id
        return wanted is None or any(str(d.get("id")) == str(wanted)
                                     for d in self.api.subscription_definitions() if isinstance(d, Mapping))

    def schema_version(self) -> str:
        """Properties and their options, and which mapped lists exist: a record refused for a
        missing one is retried once it exists."""
        self._properties = None
        parts = []
        for name, definition in sorted(self.properties().items()):
            options = sorted(str(o.get("value")) for o in definition.get("options") or [] if isinstance(o, Mapping))
            parts.append(name + ("=" + "|".join(options) if options else ""))
        return "properties:" + ",".join(parts) + ";lists:" + ",".join(self.missing_mapped_lists())
