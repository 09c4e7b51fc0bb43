"""What the conformance kit's behaviour scenarios need from the service behind a connector.

The standard tests (:mod:`segsync.testing.conformance`) only see what ``write`` and ``read``
return. The behaviour scenarios also look at the service itself — did the contact land, is the
opt-out the system's own, did the retry wait as told — through a small adapter the connector's
author writes against their emulator (or a sandbox account): subclass :class:`ServiceAdapter`,
override what your service allows, and return it from a ``service`` fixture. A scenario that
needs a method the adapter does not override is skipped, naming the method.

Everything is in segsync's words: contact keys are normalized email addresses, attributes use
canonical names (``first_name``, not ``FNAME``), memberships are segment names (not list ids),
and the status is one of :data:`REMOTE_STATUSES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segsync.connector import Connector, ContactChange

SUBSCRIBED = "subscribed"
"""The service will send marketing email to the contact."""
PENDING = "pending"
"""The service waits for the contact to confirm (double opt-in); nothing is sent meanwhile."""
OPTED_OUT = "opted_out"
"""The service's own opt-out (Mailchimp ``unsubscribed``, Brevo ``emailBlacklisted``, …): it
refuses to mail the contact whatever a campaign targets."""
NOT_SUBSCRIBED = "not_subscribed"
"""Known to the service without marketing permission (e.g. Mailchimp ``transactional``)."""
REMOTE_STATUSES = frozenset({SUBSCRIBED, PENDING, OPTED_OUT, NOT_SUBSCRIBED})


@dataclass(frozen=True)
class RemoteContact:
    """One contact as the service holds it.

    ``tags`` are the segment names the contact carries there (tags, lists, a field — however the
    connector writes memberships); ``attributes`` the canonical attributes the service holds
    (only those the adapter can map back; empty values left out); ``copies`` how many records
    the service holds for this key (more than one is a duplicate the connector created).
    """

    status: str
    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    copies: int = 1

    def __post_init__(self) -> None:
        if self.status not in REMOTE_STATUSES:
            raise ValueError(f"RemoteContact.status must be one of {sorted(REMOTE_STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class Exchange:
    """One API request the service received: its method, path, the status it answered (0: no
    answer) and when it arrived (``time.monotonic()`` or wall-clock seconds; only differences
    between entries are used)."""

    method: str
    path: str
    status: int
    at: float


class ServiceAdapter:
    """The author's window on the service; override what the service allows.

    * :meth:`contact` — the scenarios for writes (create, update, tags, opt-out, delete,
      replay, refusals).
    * :meth:`fail_next` and :meth:`exchanges` — the retry scenarios (429 and 5xx answered
      within the connector's declared attempts, the service's retry hint honoured).
    * :meth:`add_contacts` and :attr:`page_size` — the incremental-read scenarios.
    * :meth:`refused_changes` — the partial-refusal scenario.
    """

    page_size: int | None = None
    """Contacts per page when the connector reads contacts (the scenarios add more than two
    pages' worth). None: the read scenarios are skipped."""

    def contact(self, key: str) -> RemoteContact | None:
        """The contact with this key as the service holds it now; None when it holds none."""
        raise NotImplementedError

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (429 or a 5xx) without
        carrying them out; on a 429, tell the client to wait ``retry_after`` seconds the way the
        service does (``Retry-After``, a rate-limit reset header, …)."""
        raise NotImplementedError

    def exchanges(self) -> Sequence[Exchange]:
        """Every API request the service received so far, in order of arrival."""
        raise NotImplementedError

    def add_contacts(self, keys: Sequence[str]) -> None:
        """Create these contacts in the service, subscribed, in this order, each changed after
        everything before it and after every read that has started so far (move the service's
        clock if it has one; never sleep)."""
        raise NotImplementedError

    def refused_changes(self) -> Sequence[ContactChange]:
        """Changes the service refuses (a value it cannot hold, an address it blocks, …); the
        connector must answer each ``rejected`` with a reason. Empty: the scenario is skipped."""
        return ()

    def max_attempts(self, connector: Connector) -> int | None:
        """Tries per request the connector is configured for (429/5xx included). Default: the
        ``max_attempts`` setting, if the connector has one."""
        value = getattr(connector.settings, "max_attempts", None)
        return value if isinstance(value, int) else None


def overrides(adapter: ServiceAdapter, name: str) -> bool:
    """Whether ``adapter`` implements ``name`` (a :class:`ServiceAdapter` method)."""
    return getattr(type(adapter), name) is not getattr(ServiceAdapter, name)
