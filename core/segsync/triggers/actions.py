"""What a trigger does with each delivery: call a webhook, append to a file, or hand it to an
ESP connection (member event or tag) through the optional connector capability.

Every action answers one :class:`Result` per delivery, in order: ``delivered``, ``rejected``
(the receiver refused it for good) or ``failed`` (tried again next time). A delivery
``in_doubt`` was handed over before, but the process stopped before its outcome was recorded:
the webhook resends it with the same key (the receiver drops repeats), the file action looks
for its key in the file first, an ESP connector looks it up where the system allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from segsync import redaction
from segsync.connector import Capability, Connector, TriggerMessage
from segsync.statuses import OutcomeStatus

from .definitions import TriggerDef

ResultStatus = Literal["delivered", "rejected", "blocked", "failed"]
SIGNATURE_HEADER = "X-Segsync-Signature"
TIMESTAMP_HEADER = "X-Segsync-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class ActionError(Exception):
    """The action cannot run at all (a missing secret, a connection that cannot take triggers)."""


@dataclass(frozen=True)
class Delivery:
    """One outbox row as an action sees it."""

    id: int
    key: str  # the idempotency key, the same on every attempt
    trigger: str
    segment: str
    contact_key: str
    change: Literal["enter", "exit"]
    occurred_at: datetime
    origin: str
    run_id: int | None
    in_doubt: bool

    def document(self) -> dict[str, object]:
        """What a webhook receives and a file holds for it (one JSON object)."""
        return {"id": self.key, "trigger": self.trigger, "segment": self.segment, "change": self.change,
                "email": self.contact_key, "occurred_at": self.occurred_at.isoformat(),
                "origin": self.origin, "run_id": self.run_id}


@dataclass(frozen=True)
class Result:
    status: ResultStatus
    reason: str | None = None


class Action(Protocol):
    def send(self, deliveries: Sequence[Delivery]) -> list[Result]: ...

    def close(self) -> None: ...


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>.<body>"`` with the trigger's secret, as
    sent in ``X-Segsync-Signature`` (a receiver recomputes it and compares in constant time)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Secret(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    secret: SecretStr


def webhook_secret(trigger: TriggerDef, project_dir: Path) -> SecretStr:
    """The trigger's signing key, from the environment or the project's ``.env`` (never the file)."""
    prefix = trigger.secret_env.removesuffix("SECRET")
    bound = type("TriggerSecret", (_Secret,), {"model_config": SettingsConfigDict(
        env_prefix=prefix, env_file=project_dir / ".env", env_file_encoding="utf-8", extra="ignore")})
    try:
        settings = bound()
    except ValidationError:
        raise ActionError(f"trigger {trigger.name!r}: set {trigger.secret_env} (the webhook's signing "
                          f"key) in the environment or in .env") from None
    redaction.remember(settings)
    return settings.secret


class WebhookAction:
    """POSTs a batch of deliveries as JSON ``{"deliveries": [...]}``, signed, retried by the
    HTTP kit on 408/429/5xx and transport errors. Each delivery carries its ``id`` (the
    idempotency key); the ``Idempotency-Key`` header is a digest of the batch's ids."""

    def __init__(self, trigger: TriggerDef, project_dir: Path) -> None:
        from segsync.http import RetryPolicy, new_session

        self.trigger = trigger
        self.secret = webhook_secret(trigger, project_dir)
        self.session = new_session(retry=RetryPolicy(attempts=trigger.max_attempts, wait_initial=0.5, wait_max=10),
                                   timeout=trigger.timeout, max_connections=1, name=f"trigger {trigger.name}")

    def send(self, deliveries: Sequence[Delivery]) -> list[Result]:
        import requests

        from segsync.http import safe_error

        body = json.dumps({"deliveries": [d.document() for d in deliveries]}, sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(self.secret.get_secret_value(), stamp, body),
            IDEMPOTENCY_HEADER: hashlib.sha256(",".join(d.key for d in deliveries).encode()).hexdigest(),
        }
        assert self.trigger.url is not None
        try:
            response = self.session.post(self.trigger.url, data=body, headers=headers,
                                         endpoint="webhook")
        except requests.RequestException as exc:
            return [Result("failed", f"webhook not reached: {safe_error(exc)}")] * len(deliveries)
        if response.ok:
            return [Result("delivered")] * len(deliveries)
        reason = f"webhook answered HTTP {response.status_code}: {response.text[:200]}"
        from segsync.http import is_retryable_status

        status: ResultStatus = "failed" if is_retryable_status(response.status_code) else "rejected"
        return [Result(status, reason)] * len(deliveries)

    def close(self) -> None:
        self.session.close()


class FileAction:
    """Appends one JSON line per delivery (:meth:`Delivery.document`) to a file, synced to disk
    before the outcome is recorded; deliveries in doubt already in the file are not added again."""

    def __init__(self, trigger: TriggerDef, project_dir: Path) -> None:
        assert trigger.path is not None
        self.path = project_dir / trigger.path

    def send(self, deliveries: Sequence[Delivery]) -> list[Result]:
        present = self._keys_present() if any(d.in_doubt for d in deliveries) else set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                for d in deliveries:
                    if d.key not in present:
                        out.write(json.dumps(d.document(), sort_keys=True) + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            return [Result("failed", f"cannot write {self.path.name}: {exc.strerror or exc}")] * len(deliveries)
        return [Result("delivered")] * len(deliveries)

    def _keys_present(self) -> set[str]:
        if not self.path.exists():
            return set()
        keys = set()
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    keys.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash, or someone else's
        return keys

    def close(self) -> None:
        pass


class ConnectorAction:
    """Hands deliveries to an ESP connection's ``send_triggers`` (member event or tag)."""

    def __init__(self, trigger: TriggerDef, connector: Connector | None) -> None:
        if connector is None:
            raise ActionError(f"trigger {trigger.name!r}: connection {trigger.connection!r} is not available")
        if Capability.SEND_TRIGGERS not in connector.enabled_capabilities():
            raise ActionError(f"trigger {trigger.name!r}: connection {trigger.connection!r} "
                              f"({type(connector).type_name}) cannot send events or tags to start automations")
        self.trigger = trigger
        self.connector = connector

    def send(self, deliveries: Sequence[Delivery]) -> list[Result]:
        name = self.trigger.event if self.trigger.action == "event" else self.trigger.tag
        assert name is not None
        messages = [
            TriggerMessage(d.key, d.contact_key, self.trigger.action, name, d.segment, d.change,  # type: ignore[arg-type]
                           d.occurred_at,
                           {**self.trigger.properties, "segment": d.segment, "change": d.change, "segsync_key": d.key},
                           d.in_doubt)
            for d in deliveries
        ]
        outcomes = self.connector.send_triggers(messages)
        if len(outcomes) != len(messages):
            return [Result("failed", f"connection {self.trigger.connection!r} answered {len(outcomes)} "
                                     f"outcomes for {len(messages)} messages")] * len(messages)
        status = {OutcomeStatus.OK: "delivered", OutcomeStatus.REJECTED: "rejected",
                  OutcomeStatus.RETRYABLE: "failed"}
        return [Result(status[o.status], o.reason) for o in outcomes]  # type: ignore[arg-type]

    def close(self) -> None:
        pass  # the connection belongs to the run
