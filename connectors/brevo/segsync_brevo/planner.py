"""Turns a batch of ContactChanges into the fewest Brevo calls (a :class:`Plan`).

Routing, per change:

* ``delete`` -> ``DELETE /contacts/{email}`` (Brevo has no bulk contact delete).
* new contacts, and contacts whose attributes change -> ``POST /contacts/import`` (async,
  up to 10 MB of rows per call); list additions ride along as the import's ``listIds``.
* blocklist flips on known contacts without attribute changes -> ``POST /contacts/batch``,
  with their list additions/removals folded into the same entry; un-blocklisting always goes
  this way because an import can set ``emailBlacklist`` but never clear it.
* membership-only diffs -> ``POST /contacts/lists/{id}/contacts/add|remove`` (150 a call).
* nothing to change -> no call at all.
"""

from __future__ import annotations

import json
import math
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import itemgetter
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from segsync import ContactChange

from segsync_brevo.account import AccountDirectory
from segsync.collector import collector_paused
from segsync_brevo.limits import LIST_MEMBERS_PER_CALL
from segsync_brevo.mapping import blacklist_target, no_consent_refusal, valid_email
from segsync_brevo.outcomes import Outcomes
from segsync_brevo.settings import BrevoSettings

# An import costs at least two calls: the request and one poll of its process.
IMPORT_COST = 2


@dataclass
class ImportJob:
    rows: list[dict[str, Any]]
    indices: list[int]
    list_ids: frozenset[int]
    blacklist: bool
    # ``rows`` as the JSON array the import sends, from the texts the planner measured (None:
    # encoded when sent). Dropped once sent.
    rows_json: str | None = None


@dataclass
class Plan:
    deletes: list[tuple[int, str]] = field(default_factory=list)
    imports: list[ImportJob] = field(default_factory=list)
    batch: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    adds: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    removes: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    return value


# The JSON an import body is sent as (compact, UTF-8): json.dumps builds an encoder per call,
# which was half the cost of measuring 100,000 rows; the C encoder is made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_encode_row = (c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, True)
               if c_make_encoder is not None else None)


# (change index, row, bytes in an import's body): what chunking needs; the planner's rows also
# carry their JSON text (Measured, from _sized), which chunking passes along.
Sized = tuple[int, dict[str, Any], int]
Measured = tuple[int, dict[str, Any], int, str]
Row = TypeVar("Row", Sized, Measured)


def _row_json(row: dict[str, Any]) -> str:
    """A row as it goes into an import's JSON body (compact; non-ASCII text as it is). Written
    once, while the rows are measured: the import's body is then these texts joined."""
    if len(row) == 1:
        email = row.get("email")
        if isinstance(email, str) and email.isascii() and email.isprintable() and '"' not in email \
                and "\\" not in email:
            return '{"email":"' + email + '"}'  # nothing in it escaped
    return "".join(_encode_row(row, 0)) if _encode_row is not None else _ENCODER.encode(row)


def _json_size(text: str) -> int:
    """Bytes a row's JSON text takes in an import's body (UTF-8, with its separating comma)."""
    return (len(text) if text.isascii() else len(text.encode())) + 1


def _sized(index: int, row: dict[str, Any]) -> Measured:
    """A row with the bytes it takes in an import's JSON body (with its separating comma) and
    the text it takes them with."""
    text = _row_json(row)
    return index, row, _json_size(text), text


def count_chunks(rows: Sequence[Row], max_bytes: int) -> int:
    """``len(chunk_rows(rows, max_bytes))``, without building the chunks (pricing only)."""
    if not rows:
        return 0
    if sum(map(itemgetter(2), rows)) + 2 <= max_bytes:
        return 1  # most groups: summed in C, no loop over the rows
    chunks, size = 0, 2
    for row_size in map(itemgetter(2), rows):
        if chunks and size + row_size > max_bytes:
            chunks += 1
            size = 2
        elif not chunks:
            chunks = 1
        size += row_size
    return chunks


def chunk_rows(rows: Sequence[Row], max_bytes: int) -> list[list[Row]]:
    """Rows in order, cut into chunks whose JSON array stays within ``max_bytes``. Each row's
    size is measured once by the caller: the planner chunks the same rows several ways."""
    chunks: list[list[Row]] = []
    current: list[Row] = []
    size = 2
    for item in rows:
        row_size = item[2]
        if current and size + row_size > max_bytes:
            chunks.append(current)
            current, size = [], 2
        current.append(item)
        size += row_size
    if current:
        chunks.append(current)
    return chunks


def chunk_rows_evenly(rows: Sequence[Row], max_bytes: int) -> list[list[Row]]:
    """As many chunks as :func:`chunk_rows` cuts, of about equal size: Brevo works through an
    account's imports a few at once, so one import of 8 MB beside one of 2 MB would keep the
    write waiting on the big one while a worker idles (74,432 and 25,568 rows for 100,000
    contacts at 8 MB; evenly, 50,000 each)."""
    count = count_chunks(rows, max_bytes)
    if count <= 1:
        return chunk_rows(rows, max_bytes)
    total = sum(map(itemgetter(2), rows))
    chunks: list[list[Row]] = []
    current: list[Row] = []
    done = 0
    for item in rows:
        # Cut where the running total passes the next of count equal shares.
        if current and len(chunks) < count - 1 and done + item[2] > total * (len(chunks) + 1) / count:
            chunks.append(current)
            current = []
        current.append(item)
        done += item[2]
    chunks.append(current)
    if any(sum(map(itemgetter(2), chunk)) + 2 > max_bytes for chunk in chunks):
        return chunk_rows(rows, max_bytes)  # rows too coarse to share out within the limit
    return chunks


class Planner:
    def __init__(self, settings: BrevoSettings, directory: AccountDirectory) -> None:
        self.settings = settings
        self.directory = directory

    def plan(self, changes: Sequence[ContactChange], outcomes: Outcomes,
             lists_ready: Callable[[], None] | None = None,
             lists_needed: Callable[[set[str]], None] | None = None) -> Plan:
        """The calls for ``changes``. Once every change is read, ``lists_needed`` is told the
        names of the lists the changes not refused need (the audience list if any is imported,
        and each segment one of them enters), then ``lists_ready`` (the set-up running beside
        the planning, :meth:`AccountDirectory.prepare`) is waited for, before the first list
        is looked up."""
        # Rows, sizes and groups are a few objects per change and none in a cycle: with the
        # collector running, ~0.4 of 1.1 CPU-s of planning 100,000 changes was its re-scans.
        with collector_paused():
            return self._plan(changes, outcomes, lists_ready, lists_needed)

    def _plan(self, changes: Sequence[ContactChange], outcomes: Outcomes,
              lists_ready: Callable[[], None] | None,
              lists_needed: Callable[[set[str]], None] | None) -> Plan:
        plan = Plan()
        self._list_ids: dict[tuple[str, bool], int | None] = {}
        self._resolved: dict[tuple[Any, Any], tuple[frozenset[int], frozenset[int], str | None]] = {}
        attribute_names = self.settings.brevo_attributes()
        by_lists = self.settings.segment_mode == "lists"
        # First every change is read, needing no list id (the lists may still be being created):
        # (index, email, its segments added and removed, its import row or None, blocklist target, flip).
        routed: list[tuple[int, str, tuple[Any, Any] | None, dict[str, Any] | None, bool | None, bool]] = []
        for index, change in enumerate(changes):
            email = valid_email(change.contact_key)
            if email is None:
                outcomes.reject([index], "not a valid email address", "email")
                continue
            if change.op == "delete":
                plan.deletes.append((index, email))
                continue
            refusal = no_consent_refusal(change.status, change.previous_status)
            if refusal:
                outcomes.reject([index], refusal, "status")
                continue
            attrs = self._attributes(index, change, attribute_names, outcomes)
            if not by_lists:
                self._segment_attribute(index, change, outcomes, attrs)
            if outcomes.failed(index):
                continue
            new = change.previous_status is None
            target = blacklist_target(change.status, change.previous_status)
            before = bool(blacklist_target(change.previous_status or "none"))
            flip = not new and target is not None and target != before
            row = ({"email": email, "attributes": attrs} if attrs else {"email": email}) if new or attrs else None
            segments = (tuple(change.tags_add), tuple(change.tags_remove)) if by_lists else None
            routed.append((index, email, segments, row, target, flip))
        if lists_needed is not None:
            lists_needed(self._lists_needed(routed))
        if lists_ready is not None:
            lists_ready()
        # Then each change is routed with its lists' ids.
        # (index, row, adds) per blocklist flag, for the import strategy choice below.
        to_import: dict[bool, list[tuple[int, dict[str, Any], frozenset[int]]]] = defaultdict(list)
        audience: int | None = None
        none: frozenset[int] = frozenset()
        for index, email, segments, row, target, flip in routed:
            adds, removes = none, none
            if segments is not None and segments != ((), ()):
                adds, removes = self._lists(index, segments, outcomes)
                if outcomes.failed(index):
                    continue
            if row is not None:
                if audience is None:
                    audience = self.directory.list_id(self.settings.audience_list, create=True)
                # Every import of a contact that must be blocklisted sets the flag, not only
                # new ones and flips: an import creates a contact deleted in Brevo since, and
                # without the flag an opted-out person would come back mailable. For a contact
                # already blocklisted, setting it again changes nothing.
                blacklist = bool(target)
                to_import[blacklist].append((index, row, adds))
                if flip and not target:
                    plan.batch.append((index, {"email": email, "emailBlacklisted": False}))
                for list_id in removes:
                    plan.removes[list_id].append((index, email))
            elif flip:
                entry: dict[str, Any] = {"email": email, "emailBlacklisted": target}
                if adds:
                    entry["listIds"] = sorted(adds)
                if removes:
                    entry["unlinkListIds"] = sorted(removes)
                plan.batch.append((index, entry))
            else:
                for list_id in adds:
                    plan.adds[list_id].append((index, email))
                for list_id in removes:
                    plan.removes[list_id].append((index, email))
        for blacklist, rows in to_import.items():
            self._choose_imports(plan, rows, audience, blacklist)
        return plan

    def _lists_needed(self, routed) -> set[str]:  # noqa: ANN001 - _plan's routed changes
        """The lists the routed changes need by name: the audience list if one of them is
        imported, and every segment one of them enters."""
        needed: set[str] = set()
        for segments in {segments for _, _, segments, _, _, _ in routed if segments}:
            needed.update(segments[0])
        if any(row is not None for _, _, _, row, _, _ in routed):
            needed.add(self.settings.audience_list)
        return needed

    def _attributes(self, index, change, names, outcomes) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if not change.attributes:
            return attrs
        present = self.directory.attributes()
        for key, value in change.attributes.items():
            if value is None or key in ("email", "created_at"):
                continue  # Brevo keeps its own createdAt; the email is the identifier
            name = names.get(key)
            if name is None:
                continue  # only mapped attributes are pushed (settings.attribute_mapping)
            if name not in present:
                outcomes.reject(
                    [index],
                    f"Brevo has no contact attribute {name}; run `segsync check --fix` to create it",
                    key,
                )
                continue
            attrs[name] = value if type(value) is str else _json_value(value)
        return attrs

    def _list_id(self, segment: str, *, create: bool) -> int | None:
        """The list of a segment, looked up once per plan (a write names a few lists, each for
        thousands of contacts)."""
        key = (segment, create)
        if key not in self._list_ids:
            self._list_ids[key] = self.directory.list_id(segment, create=create)
            if self._list_ids[key] is not None:
                self._list_ids[(segment, False)] = self._list_ids[key]
        return self._list_ids[key]

    def _segment_attribute(self, index, change, outcomes, attrs) -> None:
        """segment_mode = "attribute": the segments joined into one contact attribute."""
        if change.tags_add or change.tags_remove or change.previous_status is None:
            name = self.settings.segment_attribute.upper()
            if name not in self.directory.attributes():
                outcomes.reject(
                    [index], f"Brevo has no contact attribute {name}; run `segsync check --fix`", "segments"
                )
            attrs[name] = ",".join(sorted(change.tags))

    def _lists(self, index, segments, outcomes) -> tuple[frozenset[int], frozenset[int]]:
        # A write's changes name a few combinations of segments, each for thousands of contacts:
        # the lists of each combination are resolved once.
        resolved = self._resolved.get(segments)
        if resolved is None:
            resolved = self._resolve(*segments)
            self._resolved[segments] = resolved
        adds, removes, missing = resolved
        if missing is not None:
            outcomes.reject(
                [index], f"no Brevo list for segment {missing!r} (set list_mapping or create_lists)", "segments"
            )
        return adds, removes

    def _resolve(self, tags_add, tags_remove) -> tuple[frozenset[int], frozenset[int], str | None]:
        """The lists to add and to remove, and the first segment added that has no list."""
        adds, removes, missing = set(), set(), None
        for segment in tags_add:
            list_id = self._list_id(segment, create=self.settings.create_lists)
            if list_id is None:
                missing = segment if missing is None else missing
            else:
                adds.add(list_id)
        for segment in tags_remove:
            list_id = self._list_id(segment, create=False)
            if list_id is not None:
                removes.add(list_id)
        return frozenset(adds), frozenset(removes), missing

    def _choose_imports(self, plan: Plan, rows, audience: int, blacklist: bool) -> None:
        """Pick the cheapest of three ways to land rows plus their list additions."""
        limit = self.settings.import_max_bytes
        full: list[Measured] = [_sized(i, r) for i, r, _ in rows]
        by_list: dict[int, list[Measured]] = defaultdict(list)
        by_set: dict[frozenset[int], list[Measured]] = defaultdict(list)
        with_audience: dict[frozenset[int], list[Measured]] = {}  # a row's list set -> its by_set group
        for (i, r, adds), sized in zip(rows, full):
            group = with_audience.get(adds)
            if group is None:
                group = with_audience[adds] = by_set[adds | {audience}]
            group.append(sized)
            if adds:
                email_only_sized = _sized(i, {"email": r["email"]})
                for list_id in adds:
                    by_list[list_id].append(email_only_sized)
        base = count_chunks(full, limit) * IMPORT_COST
        costs = {
            "by_set": sum(count_chunks(g, limit) for g in by_set.values()) * IMPORT_COST,
            "per_list_import": base
            + sum(count_chunks(g, limit) for g in by_list.values()) * IMPORT_COST,
            "list_add": base
            + sum(math.ceil(len(g) / LIST_MEMBERS_PER_CALL) for g in by_list.values()),
        }
        strategy = min(costs, key=lambda k: (costs[k], k != "by_set"))
        if strategy == "by_set":
            for list_ids, group in by_set.items():
                self._add_imports(plan, group, list_ids, blacklist)
            return
        self._add_imports(plan, full, frozenset({audience}), blacklist)
        for list_id, group in by_list.items():
            if strategy == "per_list_import":
                self._add_imports(plan, group, frozenset({list_id}), False)
            else:
                plan.adds[list_id].extend((i, r["email"]) for i, r, _, _ in group)

    def _add_imports(self, plan: Plan, group: list[Measured], list_ids: frozenset[int], blacklist: bool) -> None:
        for chunk in chunk_rows_evenly(group, self.settings.import_max_bytes):
            plan.imports.append(ImportJob([r for _, r, _, _ in chunk], [i for i, _, _, _ in chunk], list_ids,
                                          blacklist, "[" + ",".join(map(itemgetter(3), chunk)) + "]"))
