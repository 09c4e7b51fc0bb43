"""The emulated account: audiences, members, tags/static segments and campaign reports.

Every rule here mirrors documented Mailchimp behaviour (see the connector's README for the
references): batch-subscribe's per-member ``errors[]``, the compliance state that keeps
unsubscribed and cleaned members from being re-subscribed by an import, permanent deletion that
forbids re-import, archiving by ``DELETE``, and the 500-member limits of the bulk endpoints.
All public methods take the state lock, so the threaded HTTP server can call them directly.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, ClassVar

from segsync_mailchimp.emulator.problems import ApiProblem

BATCH_MAX = 500  # members per batch-subscribe call and per segment add/remove list
PAGE_MAX = 1000  # ``count`` maximum of collection endpoints
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


try:  # CPython's own MD5 takes half the time of OpenSSL's (hashlib's) for a 30-byte address
    from _md5 import md5 as _md5
except ImportError:  # a Python built without it
    _md5 = hashlib.md5


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return _md5(email.strip().lower().encode()).hexdigest()


@lru_cache(maxsize=4096)  # a batch's members share their timestamps: each is formatted once
def iso(ts: datetime | None) -> str:
    return "" if ts is None else ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_time(raw: str, name: str) -> datetime:
    try:
        ts = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise ApiProblem(
            "InvalidResource", f"{name} must be an ISO 8601 time such as 2015-10-21T15:41:36+00:00"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@dataclass
class MergeField:
    merge_id: int
    tag: str
    name: str
    type: str = "text"  # text, number, date, birthday, address, phone, url, ...
    required: bool = False

    def doc(self, list_id: str) -> dict[str, Any]:
        return {
            "merge_id": self.merge_id, "tag": self.tag, "name": self.name, "type": self.type,
            "required": self.required, "default_value": "", "public": True,
            "display_order": self.merge_id, "options": {}, "help_text": "", "list_id": list_id,
        }

    CHECKED: ClassVar[frozenset[str]] = frozenset({"number", "date", "birthday", "address"})

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this field, or None (always None for a type
        outside ``CHECKED``)."""
        if value in ("", None):
            return None
        if self.type == "number":
            try:
                float(value)
            except (TypeError, ValueError):
                return "Please enter a number"
        elif self.type == "date":
            try:
                date.fromisoformat(str(value))
            except ValueError:
                return "Please enter a date"
        elif self.type == "birthday" and not re.fullmatch(r"\d{2}/\d{2}", str(value)):
            return "Please enter a month and day (MM/DD)"
        elif self.type == "address" and not isinstance(value, dict):
            return "Please enter a complete address"
        return None


DEFAULT_MERGE_FIELDS = (
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
    ("BIRTHDAY", "Birthday", "birthday"),
)


@dataclass(slots=True)  # a million of them in a benchmark: no __dict__ each
class Member:
    email_address: str
    status: str
    timestamp_signup: datetime | None
    timestamp_opt: datetime | None
    last_changed: datetime
    source: str = "API - Generic"
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: set[int] = field(default_factory=set)
    ip_signup: str = ""
    ip_opt: str = ""
    email_type: str = "html"
    language: str = ""
    vip: bool = False
    unsubscribe_reason: str = ""
    web_id: int = 0
    # Fields answered in place of the member's own (see MailchimpState.serve_member_as); None
    # (rather than an empty dict per member) when there are none.
    served_as: dict[str, Any] | None = None
    # The subscriber hash; computed from the address unless the caller has it already (the
    # address of a member never changes).
    id: str = ""
    # Contact events (POST …/members/{hash}/events), oldest first: name, properties, occurred_at,
    # is_syncing (an event sent with is_syncing true starts no automation). None until the first.
    events: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = subscriber_hash(self.email_address)


@dataclass
class Segment:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    members: set[str] = field(default_factory=set)  # subscriber hashes


@dataclass
class Audience:
    id: str
    name: str
    merge_fields: dict[str, MergeField] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)
    segment_ids: dict[str, int] = field(default_factory=dict)  # name -> id (names are unique)
    forgotten: set[str] = field(default_factory=set)

    def add_segment(self, segment: Segment) -> Segment:
        self.segments[segment.id] = segment
        self.segment_ids[segment.name] = segment.id
        return segment

    def blank_merge_fields(self) -> dict[str, Any]:
        """Every merge field of the audience, empty: where a new member's fields start."""
        return dict.fromkeys(self.merge_fields, "")


@dataclass
class Campaign:
    id: str
    list_id: str
    send_time: datetime
    subject: str = ""
    recipients: list[str] = field(default_factory=list)  # hashes, in send order
    activity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # hash -> actions
    unsubscribes: list[dict[str, Any]] = field(default_factory=list)


class _Batch:
    """One batch-subscribe call: its options, and what it looks up for every entry, once."""

    __slots__ = ("audience", "update_existing", "sync_tags", "skip_merge", "skip_dupes", "now", "seen",
                 "created", "updated", "blank_fields", "checked_fields", "required_fields", "tag_groups")

    def __init__(self, audience: Audience, *, update_existing: bool, sync_tags: bool, skip_merge: bool,
                 skip_dupes: bool, now: datetime) -> None:
        self.audience, self.now = audience, now
        self.update_existing, self.sync_tags = update_existing, sync_tags
        self.skip_merge, self.skip_dupes = skip_merge, skip_dupes
        self.seen: set[str] = set()
        self.created: list[Member] = []
        self.updated: list[Member] = []
        self.blank_fields = audience.blank_merge_fields()
        # Only these types can refuse a value (MergeField.problem); text, phone, url... cannot.
        self.checked_fields = {tag: f for tag, f in audience.merge_fields.items() if f.type in MergeField.CHECKED}
        self.required_fields = [f for f in audience.merge_fields.values() if f.required]
        self.tag_groups: dict[tuple[Any, ...], tuple[frozenset[int], tuple[set[str], ...]]] = {}



def _page(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
    count = int(query.get("count", ["10"])[-1])
    offset = int(query.get("offset", ["0"])[-1])
    if count > PAGE_MAX:
        raise ApiProblem("InvalidResource", f"count must be at most {PAGE_MAX}")
    return items[offset : offset + count]


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("true", "1")


class EmulatorState:
    """One Mailchimp account. Seed it with the ``seed_*``/``record_*`` methods."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or (lambda: datetime.now(timezone.utc).replace(microsecond=0))
        self.audiences: dict[str, Audience] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.outbox: list[tuple[str, str, str]] = []  # (kind, list_id, address): emails "sent"
        # What would start an automation: (kind "event" | "tag", name, list_id, address), for an
        # event or a tag added with is_syncing false, in arrival order.
        self.automation_starts: list[tuple[str, str, str, str]] = []
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ seeding
    def create_audience(
        self,
        list_id: str = "aud0001",
        name: str = "Newsletter",
        merge_fields: Iterable[tuple[str, str, str] | tuple[str, str, str, bool]] = (),
    ) -> Audience:
        with self.lock:
            audience = Audience(list_id, name)
            for spec in (*DEFAULT_MERGE_FIELDS, *merge_fields):
                tag, label, kind, *required = spec
                audience.merge_fields[tag] = MergeField(
                    len(audience.merge_fields) + 1, tag, label, kind, bool(required and required[0])
                )
            self.audiences[list_id] = audience
            return audience

    def seed_member(
        self,
        list_id: str,
        email: str,
        status: str = "subscribed",
        *,
        merge_fields: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        timestamp_signup: datetime | None = None,
        timestamp_opt: datetime | None = None,
        last_changed: datetime | None = None,
        source: str = "Hosted Signup Form",
        ip_opt: str = "",
        unsubscribe_reason: str = "",
    ) -> Member:
        with self.lock:
            audience = self.audience(list_id)
            now = self.clock()
            member = Member(
                email_address=email,
                status=status,
                timestamp_signup=timestamp_signup or now,
                timestamp_opt=timestamp_opt if timestamp_opt else (now if status == "subscribed" else None),
                last_changed=last_changed or now,
                source=source,
                merge_fields=audience.blank_merge_fields() | dict(merge_fields or {}),
                ip_opt=ip_opt,
                unsubscribe_reason=unsubscribe_reason,
                web_id=next(self._ids),
            )
            audience.members[member.id] = member
            self._tag(audience, member, tags, replace=False)
            return member

    def seed_campaign(
        self, list_id: str, campaign_id: str, send_time: datetime, recipients: Iterable[str],
        subject: str = "",
    ) -> Campaign:
        with self.lock:
            self.audience(list_id)
            campaign = Campaign(campaign_id, list_id, send_time, subject or campaign_id)
            campaign.recipients = [subscriber_hash(e) for e in recipients]
            self.campaigns[campaign_id] = campaign
            return campaign

    def record_activity(
        self, campaign_id: str, email: str, action: str, timestamp: datetime, *,
        url: str | None = None, bounce_type: str | None = None, ip: str = "",
    ) -> None:
        """An open, click or bounce; a hard bounce cleans the member, as Mailchimp does."""
        with self.lock:
            campaign = self.campaigns[campaign_id]
            entry: dict[str, Any] = {"action": action, "timestamp": timestamp, "ip": ip}
            if url:
                entry["url"] = url
            if bounce_type:
                entry["type"] = bounce_type
            campaign.activity.setdefault(subscriber_hash(email), []).append(entry)
            member = self.audience(campaign.list_id).members.get(subscriber_hash(email))
            if action == "bounce" and bounce_type == "hard" and member is not None:
                member.status, member.last_changed = "cleaned", timestamp

    def record_unsubscribe(
        self, campaign_id: str, email: str, timestamp: datetime, reason: str = "N/A (Unsubscribe link)"
    ) -> None:
        with self.lock:
            campaign = self.campaigns[campaign_id]
            campaign.unsubscribes.append(
                {"hash": subscriber_hash(email), "timestamp": timestamp, "reason": reason}
            )
            member = self.audience(campaign.list_id).members.get(subscriber_hash(email))
            if member is not None:
                member.status, member.last_changed = "unsubscribed", timestamp
                member.unsubscribe_reason = reason

    # ------------------------------------------------------------------ lookups
    def audience(self, list_id: str) -> Audience:
        try:
            return self.audiences[list_id]
        except KeyError:
            raise ApiProblem("ResourceNotFound") from None

    def member(self, list_id: str, key: str) -> Member | None:
        """A member by subscriber hash or address (Mailchimp accepts both in paths)."""
        with self.lock:
            key = subscriber_hash(key) if "@" in key else key.lower()
            return self.audience(list_id).members.get(key)

    def serve_member_as(self, list_id: str, email: str, **fields: Any) -> None:
        """Answer this member's document with ``fields`` in place of its own (a field given as
        ``...`` is left out): a malformed payload, for tests of what a client does with one."""
        with self.lock:
            member = self.member(list_id, email)
            if member is None:
                raise KeyError(email)
            member.served_as = dict(fields)

    def tag_names(self, list_id: str, member: Member) -> list[str]:
        segments = self.audience(list_id).segments
        return sorted(segments[i].name for i in member.tags if i in segments)

    def member_doc(self, audience: Audience, m: Member) -> dict[str, Any]:
        tags = [{"id": i, "name": audience.segments[i].name} for i in sorted(m.tags)]
        first, last = m.merge_fields.get("FNAME", ""), m.merge_fields.get("LNAME", "")
        doc = {
            "id": m.id, "email_address": m.email_address, "unique_email_id": m.id[:10],
            "contact_id": m.id, "full_name": f"{first} {last}".strip(), "web_id": m.web_id,
            "email_type": m.email_type, "status": m.status,
            "consents_to_one_to_one_messaging": True, "merge_fields": dict(m.merge_fields),
            "interests": {}, "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": m.ip_signup, "timestamp_signup": iso(m.timestamp_signup),
            "ip_opt": m.ip_opt, "timestamp_opt": iso(m.timestamp_opt), "member_rating": 2,
            "last_changed": iso(m.last_changed), "language": m.language, "vip": m.vip,
            "email_client": "", "location": {"latitude": 0, "longitude": 0, "gmtoff": 0,
                                             "dstoff": 0, "country_code": "", "timezone": ""},
            "source": m.source, "tags_count": len(tags), "tags": tags, "list_id": audience.id,
            "_links": [],
        }
        if m.status == "unsubscribed":
            doc["unsubscribe_reason"] = m.unsubscribe_reason
        for name, value in (m.served_as or {}).items():
            if value is ...:
                doc.pop(name, None)
            else:
                doc[name] = value
        return doc

    # ------------------------------------------------------------------ endpoints
    def list_doc(self, list_id: str) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            counts = {s: 0 for s in STATUSES}
            for m in a.members.values():
                counts[m.status] += 1
            return {
                "id": a.id, "web_id": 1, "name": a.name, "double_optin": False,
                "stats": {"member_count": counts["subscribed"],
                          "unsubscribe_count": counts["unsubscribed"],
                          "cleaned_count": counts["cleaned"], "total_contacts": len(a.members)},
                "_links": [],
            }

    def list_members(self, list_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            status = query.get("status", [None])[-1]
            members = [m for m in a.members.values()
                       if (m.status == status if status else m.status != "archived")]
            # "changed after"/"changed before" the given time, as the reference words it.
            for name, keep in (
                ("since_last_changed", lambda m, t: m.last_changed > t),
                ("before_last_changed", lambda m, t: m.last_changed < t),
                ("since_timestamp_opt", lambda m, t: m.timestamp_opt is not None and m.timestamp_opt > t),
                ("before_timestamp_opt", lambda m, t: m.timestamp_opt is not None and m.timestamp_opt < t),
            ):
                if name in query:
                    bound = parse_time(query[name][-1], name)
                    members = [m for m in members if keep(m, bound)]
            sort_field = query.get("sort_field", [None])[-1]
            if sort_field:
                epoch = datetime.min.replace(tzinfo=timezone.utc)
                members.sort(
                    key=lambda m: (getattr(m, sort_field) or epoch, m.web_id),
                    reverse=query.get("sort_dir", ["ASC"])[-1] == "DESC",
                )
            page = _page(members, query)
            return {"members": [self.member_doc(a, m) for m in page], "list_id": a.id,
                    "total_items": len(members), "_links": []}

    def get_member(self, list_id: str, key: str) -> dict[str, Any]:
        with self.lock:
            member = self.member(list_id, key)
            if member is None:
                raise ApiProblem("ResourceNotFound")
            return self.member_doc(self.audience(list_id), member)

    def archive_member(self, list_id: str, key: str) -> None:
        """``DELETE /lists/{id}/members/{hash}`` archives; the address can come back later."""
        with self.lock:
            member = self.member(list_id, key)
            if member is None or member.status == "archived":
                raise ApiProblem("ResourceNotFound")
            member.status, member.last_changed = "archived", self.clock()

    def delete_permanent(self, list_id: str, key: str) -> None:
        with self.lock:
            a = self.audience(list_id)
            member = self.member(list_id, key)
            if member is None:
                raise ApiProblem("ResourceNotFound")
            del a.members[member.id]
            for segment in a.segments.values():
                segment.members.discard(member.id)
            a.forgotten.add(member.id)

    def add_member_event(self, list_id: str, key: str, body: dict[str, Any]) -> None:
        """``POST /lists/{list_id}/members/{hash}/events``: name 2-30 characters, properties
        strings; Mailchimp keeps every event (it does not deduplicate them)."""
        name = body.get("name")
        if not isinstance(name, str) or not 2 <= len(name) <= 30:
            raise ApiProblem("InvalidResource", errors=[{"field": "name",
                                                         "message": "Must be 2-30 characters in length"}])
        properties = body.get("properties") or {}
        if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
            raise ApiProblem("InvalidResource", errors=[{"field": "properties",
                                                         "message": "Property values must be strings"}])
        with self.lock:
            member = self.member(list_id, key)
            if member is None:
                raise ApiProblem("ResourceNotFound")
            occurred = parse_time(body["occurred_at"], "occurred_at") if body.get("occurred_at") else self.clock()
            syncing = bool(body.get("is_syncing"))
            if member.events is None:
                member.events = []
            member.events.append({"name": name, "properties": dict(properties), "occurred_at": iso(occurred),
                                  "is_syncing": syncing})
            if not syncing:
                self.automation_starts.append(("event", name, list_id, member.email_address))

    def member_events(self, list_id: str, key: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /lists/{list_id}/members/{hash}/events``: newest first, paged by count/offset."""
        with self.lock:
            member = self.member(list_id, key)
            if member is None:
                raise ApiProblem("ResourceNotFound")
            events = [{k: e[k] for k in ("name", "properties", "occurred_at")} for e in reversed(member.events or ())]
            return {"events": _page(events, query), "total_items": len(events), "_links": []}

    def update_member_tags(self, list_id: str, key: str, body: dict[str, Any]) -> None:
        """``POST /lists/{list_id}/members/{hash}/tags``: each tag ``active`` (added) or
        ``inactive`` (removed); a tag added with ``is_syncing`` false may start an automation."""
        tags = body.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, dict) and t.get("name") for t in tags):
            raise ApiProblem("InvalidResource", errors=[{"field": "tags", "message": "Tags must have a name"}])
        with self.lock:
            a = self.audience(list_id)
            member = self.member(list_id, key)
            if member is None:
                raise ApiProblem("ResourceNotFound")
            for tag in tags:
                segment = self._segment_by_name(a, str(tag["name"]))
                if tag.get("status", "active") == "inactive":
                    member.tags.discard(segment.id)
                    segment.members.discard(member.id)
                elif segment.id not in member.tags:
                    member.tags.add(segment.id)
                    segment.members.add(member.id)
                    if not body.get("is_syncing"):
                        self.automation_starts.append(("tag", segment.name, list_id, member.email_address))

    def merge_fields_doc(self, list_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            fields = [f.doc(a.id) for f in a.merge_fields.values()]
            return {"merge_fields": _page(fields, query), "list_id": a.id,
                    "total_items": len(fields), "_links": []}

    def batch_subscribe(self, list_id: str, body: dict[str, Any], query: dict[str, list[str]],
                        member_docs: bool = True) -> dict[str, Any]:
        """Apply a batch; ``member_docs`` False leaves the answer's member lists empty (for a
        request whose ``fields`` projection drops them: building 500 documents is the cost)."""
        with self.lock:
            a = self.audience(list_id)
            entries = body.get("members") or []
            if len(entries) > BATCH_MAX:
                raise ApiProblem(
                    "InvalidResource",
                    f"You may only submit up to {BATCH_MAX} members per batch; this request has {len(entries)}.",
                )
            batch = _Batch(a, update_existing=bool(body.get("update_existing")),
                           sync_tags=bool(body.get("sync_tags")),
                           skip_merge=_flag(query, "skip_merge_validation"),
                           skip_dupes=_flag(query, "skip_duplicate_check"),
                           now=self.clock())  # one time for the whole batch, as one request's
            errors: list[dict[str, str]] = []
            for entry in entries:
                email = str(entry.get("email_address") or "").strip()
                error = self._subscribe_one(batch, entry, email)
                if error:
                    errors.append({"email_address": email, "error": error[0], "error_code": error[1],
                                   "field": error[2], "field_message": error[3]})
            created, updated = batch.created, batch.updated
            return {
                "new_members": [self.member_doc(a, m) for m in created] if member_docs else [],
                "updated_members": [self.member_doc(a, m) for m in updated] if member_docs else [],
                "errors": errors, "total_created": len(created), "total_updated": len(updated),
                "error_count": len(errors), "_links": [],
            }

    def _subscribe_one(self, batch: _Batch, entry: dict[str, Any], email: str) -> tuple[str, str, str, str] | None:
        """Apply one batch entry; return (error, error_code, field, field_message) on refusal."""
        if not _EMAIL.match(email):
            return (f"{email} looks fake or invalid, please enter a real email address.",
                    "ERROR_GENERIC", "email_address", "Please provide a valid email address.")
        a, now = batch.audience, batch.now
        key = subscriber_hash(email)
        if key in batch.seen:
            if batch.skip_dupes:
                return None
            return (f"{email} was included more than once in this request.", "ERROR_GENERIC",
                    "email_address", "Duplicate email address")
        batch.seen.add(key)
        if key in a.forgotten:
            return (f"{email} was permanently deleted and cannot be re-imported. The contact must "
                    "re-subscribe to get back on the list.", "ERROR_GENERIC", "", "")
        status = entry.get("status")
        merge_fields = entry.get("merge_fields") or {}
        if type(merge_fields) is not dict:
            merge_fields = dict(merge_fields)
        checked = batch.checked_fields
        if checked:
            for tag, value in merge_fields.items():
                definition = checked.get(tag)
                problem = definition.problem(value) if definition else None
                if problem:
                    return ("Your merge fields were invalid.", "ERROR_GENERIC", tag, problem)
        existing = a.members.get(key)
        if existing is not None and existing.status == "archived":
            archived, existing = existing, None  # an archived contact is re-added as new
        else:
            archived = None
        if existing is None:
            if not status:
                return ("The resource submitted could not be validated.", "ERROR_GENERIC",
                        "status", "Status is required for new members")
            if not batch.skip_merge:
                for definition in batch.required_fields:
                    if merge_fields.get(definition.tag) in (None, ""):
                        return ("Your merge fields were invalid.", "ERROR_GENERIC",
                                definition.tag, "Please enter a value")
            # Mailchimp leaves timestamp_signup empty for API adds unless the request sets it
            # (it is the time of a sign-up form, not of an import).
            signup = entry.get("timestamp_signup")
            signup = _opt_time(signup) if signup else (archived.timestamp_signup if archived else None)
            if status == "subscribed":
                opt = entry.get("timestamp_opt")
                opt = _opt_time(opt) if opt else now
            else:
                opt = None
            names = entry.get("tags")
            if archived is None:
                # Every field in order, positionally: keyword arguments cost 0.3 us a member (a
                # field out of place changes the recorded documents of test_emulator_documents).
                member = Member(email, status, signup, opt, now, "API - Generic", batch.blank_fields | merge_fields,
                                set(), entry.get("ip_signup", ""), entry.get("ip_opt", ""), "html", "", False, "",
                                next(self._ids), None, key)
                a.members[key] = member
            else:
                member = archived
                member.email_address, member.status, member.last_changed = email, status, now
                member.timestamp_signup, member.timestamp_opt = signup, opt
                member.ip_signup, member.ip_opt = entry.get("ip_signup", ""), entry.get("ip_opt", "")
                member.source = "API - Generic"
                member.merge_fields = batch.blank_fields | merge_fields
            if names:  # after the member: a tag created now takes the next id after its web_id
                tag_ids, tag_members = self._tag_group(batch, names)
                member.tags |= tag_ids  # (an archived member keeps the tags it had)
                for members in tag_members:
                    members.add(key)
            _copy_profile(member, entry)
            if status == "pending":
                self.outbox.append(("confirmation", a.id, email))
            batch.created.append(member)
            return None
        if not batch.update_existing:
            return (f"{email} is already a list member. Use PUT to insert or update list members.",
                    "ERROR_CONTACT_EXISTS", "", "")
        if status and status != existing.status:
            refused = _compliance_refusal(existing.status, status, email)
            if refused:
                return refused
            existing.status = status
            if status == "subscribed":
                existing.timestamp_opt = _opt_time(entry.get("timestamp_opt")) or now
                existing.ip_opt = entry.get("ip_opt", existing.ip_opt)
            elif status == "pending":
                self.outbox.append(("confirmation", a.id, email))
            existing.last_changed = now
        changed = {t: v for t, v in merge_fields.items() if existing.merge_fields.get(t) != v}
        if changed:
            existing.merge_fields.update(changed)
            existing.last_changed = now
        if _copy_profile(existing, entry):
            existing.last_changed = now
        if "tags" in entry or batch.sync_tags:
            self._tag(a, existing, entry.get("tags") or (), replace=batch.sync_tags)
        batch.updated.append(existing)
        return None

    def _tag_group(self, batch: _Batch, names: Any) -> tuple[frozenset[int], tuple[set[str], ...]]:
        """The ids of the tags ``names`` and their segments' member sets, for a new member (what
        ``_tag(..., replace=False)`` adds): looked up once per batch for each list of names, as
        a batch's members repeat a few combinations. A tag missing is created, in name order."""
        try:
            group_key = tuple(names)
            group = batch.tag_groups.get(group_key)
        except TypeError:  # a name that cannot be a key (no spec check): looked up each time
            group_key, group = None, None
        if group is None:
            segments = {}
            for name in names:
                segment = self._segment_by_name(batch.audience, str(name))
                segments[segment.id] = segment.members
            group = (frozenset(segments), tuple(segments.values()))
            if group_key is not None:
                batch.tag_groups[group_key] = group
        return group

    def _tag(self, a: Audience, member: Member, names: Iterable[str], replace: bool) -> None:
        wanted = {self._segment_by_name(a, str(n)).id for n in names}
        if replace:
            for segment_id in member.tags - wanted:
                a.segments[segment_id].members.discard(member.id)
            member.tags = set()
        for segment_id in wanted:
            a.segments[segment_id].members.add(member.id)
        member.tags |= wanted

    def _segment_by_name(self, a: Audience, name: str) -> Segment:
        segment_id = a.segment_ids.get(name)
        if segment_id is not None:
            return a.segments[segment_id]
        now = self.clock()
        return a.add_segment(Segment(next(self._ids), name, now, now))

    def segment_doc(self, a: Audience, s: Segment) -> dict[str, Any]:
        return {"id": s.id, "name": s.name, "member_count": len(s.members), "type": "static",
                "created_at": iso(s.created_at), "updated_at": iso(s.updated_at),
                "options": {}, "list_id": a.id, "_links": []}

    def list_segments(self, list_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            kind = query.get("type", ["static"])[-1]
            segments = [self.segment_doc(a, s) for s in a.segments.values()] if kind == "static" else []
            return {"segments": _page(segments, query), "list_id": a.id,
                    "total_items": len(segments), "_links": []}

    def get_segment(self, list_id: str, segment_id: str) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            return self.segment_doc(a, self._segment(a, segment_id))

    def segment_members(self, list_id: str, segment_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            segment = self._segment(a, segment_id)
            members = [a.members[h] for h in sorted(segment.members, key=lambda h: a.members[h].web_id)]
            return {"members": [self.member_doc(a, m) for m in _page(members, query)],
                    "total_items": len(members), "_links": []}

    def _segment(self, a: Audience, segment_id: str) -> Segment:
        try:
            return a.segments[int(segment_id)]
        except (KeyError, ValueError):
            raise ApiProblem("ResourceNotFound") from None

    def create_segment(self, list_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            a = self.audience(list_id)
            name = str(body.get("name") or "").strip()
            if not name:
                raise ApiProblem("InvalidResource", errors=[{"field": "name", "message": "This value should not be blank."}])
            if "static_segment" in body and "options" in body:
                raise ApiProblem("InvalidResource", "static_segment cannot be provided with the options field.")
            if "static_segment" not in body:
                raise ApiProblem("InvalidResource", "The emulator only models static segments and tags; send static_segment.")
            if name in a.segment_ids:
                # Mailchimp's own answer (seen in solspace/craft-freeform#1576).
                raise ApiProblem("BadRequest", "Sorry, that tag already exists.")
            now = self.clock()
            segment = a.add_segment(Segment(next(self._ids), name, now, now))
            for email in body.get("static_segment") or ():
                member = a.members.get(subscriber_hash(str(email)))
                if member is not None and member.status != "archived":  # others are ignored
                    segment.members.add(member.id)
                    member.tags.add(segment.id)
            return self.segment_doc(a, segment)

    def batch_segment(self, list_id: str, segment_id: str, body: dict[str, Any],
                      member_docs: bool = True) -> dict[str, Any]:
        """Add and remove a static segment's members; ``member_docs`` False leaves the answer's
        member lists empty (for a request that excludes them)."""
        with self.lock:
            a = self.audience(list_id)
            segment = self._segment(a, segment_id)
            to_add, to_remove = body.get("members_to_add") or [], body.get("members_to_remove") or []
            for name, items in (("members_to_add", to_add), ("members_to_remove", to_remove)):
                if len(items) > BATCH_MAX:
                    raise ApiProblem(
                        "InvalidResource",
                        f"{name} accepts at most {BATCH_MAX} email addresses; this request has {len(items)}.",
                    )
            added: list[Member] = []
            removed: list[Member] = []
            missing: list[str] = []
            for email, into in [(e, added) for e in to_add] + [(e, removed) for e in to_remove]:
                member = a.members.get(subscriber_hash(str(email)))
                if member is None or member.status == "archived":
                    missing.append(str(email))
                    continue
                if into is added and member.id not in segment.members:
                    segment.members.add(member.id)
                    member.tags.add(segment.id)
                    added.append(member)
                elif into is removed and member.id in segment.members:
                    segment.members.discard(member.id)
                    member.tags.discard(segment.id)
                    removed.append(member)
            if added or removed:
                segment.updated_at = self.clock()
            errors = ([{"email_addresses": missing, "error": "Email addresses do not belong to this list."}]
                      if missing else [])
            return {"members_added": [self.member_doc(a, m) for m in added] if member_docs else [],
                    "members_removed": [self.member_doc(a, m) for m in removed] if member_docs else [],
                    "errors": errors, "total_added": len(added), "total_removed": len(removed),
                    "error_count": len(missing), "_links": []}

    def reports(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            campaigns = sorted(self.campaigns.values(), key=lambda c: (c.send_time, c.id))
            if "since_send_time" in query:
                since = parse_time(query["since_send_time"][-1], "since_send_time")
                campaigns = [c for c in campaigns if c.send_time >= since]
            if "before_send_time" in query:
                before = parse_time(query["before_send_time"][-1], "before_send_time")
                campaigns = [c for c in campaigns if c.send_time < before]
            docs = [self.report_doc(c) for c in campaigns]
            return {"reports": _page(docs, query), "total_items": len(docs), "_links": []}

    def report(self, campaign_id: str) -> dict[str, Any]:
        with self.lock:
            return self.report_doc(self._campaign(campaign_id))

    def report_doc(self, c: Campaign) -> dict[str, Any]:
        actions = [x for acts in c.activity.values() for x in acts]
        count = lambda action: sum(1 for x in actions if x["action"] == action)  # noqa: E731
        return {
            "id": c.id, "campaign_title": c.subject, "type": "regular", "list_id": c.list_id,
            "list_is_active": True, "list_name": self.audiences[c.list_id].name,
            "subject_line": c.subject, "preview_text": "", "emails_sent": len(c.recipients),
            "abuse_reports": 0, "unsubscribed": len(c.unsubscribes), "send_time": iso(c.send_time),
            "bounces": {"hard_bounces": sum(1 for x in actions if x.get("type") == "hard"),
                        "soft_bounces": sum(1 for x in actions if x.get("type") == "soft"),
                        "syntax_errors": 0},
            "opens": {"opens_total": count("open")}, "clicks": {"clicks_total": count("click")},
            "_links": [],
        }

    def _campaign(self, campaign_id: str) -> Campaign:
        try:
            return self.campaigns[campaign_id]
        except KeyError:
            raise ApiProblem("ResourceNotFound") from None

    def email_activity(self, campaign_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """Recipients and their actions; with ``since``, only actions after it (and only the
        recipients that have such actions)."""
        with self.lock:
            c = self._campaign(campaign_id)
            a = self.audiences[c.list_id]
            since = parse_time(query["since"][-1], "since") if "since" in query else None
            rows = []
            for h in dict.fromkeys([*c.recipients, *c.activity]):
                acts = [x for x in c.activity.get(h, []) if since is None or x["timestamp"] > since]
                if since is not None and not acts:
                    continue
                member = a.members.get(h)
                rows.append({
                    "campaign_id": c.id, "list_id": c.list_id, "list_is_active": True,
                    "email_id": h, "email_address": member.email_address if member else "",
                    "activity": [{**x, "timestamp": iso(x["timestamp"])} for x in acts],
                    "_links": [],
                })
            return {"emails": _page(rows, query), "campaign_id": c.id,
                    "total_items": len(rows), "_links": []}

    def unsubscribed(self, campaign_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            c = self._campaign(campaign_id)
            a = self.audiences[c.list_id]
            rows = []
            for u in c.unsubscribes:
                member = a.members.get(u["hash"])
                rows.append({
                    "email_id": u["hash"], "email_address": member.email_address if member else "",
                    "merge_fields": dict(member.merge_fields) if member else {}, "vip": False,
                    "timestamp": iso(u["timestamp"]), "reason": u["reason"],
                    "campaign_id": c.id, "list_id": c.list_id, "list_is_active": True, "_links": [],
                })
            return {"unsubscribes": _page(rows, query), "campaign_id": c.id,
                    "total_items": len(rows), "_links": []}


def _opt_time(raw: Any) -> datetime | None:
    return parse_time(str(raw), "timestamp") if raw else None


def _copy_profile(member: Member, entry: dict[str, Any]) -> bool:
    changed = False
    for name in ("email_type", "language", "vip"):
        if name in entry and getattr(member, name) != entry[name]:
            setattr(member, name, entry[name])
            changed = True
    return changed


def _compliance_refusal(current: str, wanted: str, email: str) -> tuple[str, str, str, str] | None:
    """Mailchimp refuses to (re-)subscribe unsubscribed and cleaned contacts through an import;
    an unsubscribed contact may be sent a confirmation (``pending``), a cleaned one may not."""
    if wanted == "subscribed" and current in ("unsubscribed", "cleaned"):
        blocked = True
    else:
        blocked = wanted == "pending" and current == "cleaned"
    if not blocked:
        return None
    return (f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
            "and cannot be subscribed.", "ERROR_GENERIC", "status", "Member In Compliance State")
