"""``[[triggers]]`` in ``segsync.toml``: what to do when someone enters or leaves a segment.

::

    [[triggers]]
    name = "post-purchase"        # names the trigger in reports, the outbox and its secret
    segment = "recent-buyers"
    on = "enter"                  # enter | exit
    action = "event"              # event | tag | webhook | file
    connection = "mailchimp"      # event, tag: the ESP connection that starts the automation
    event = "post_purchase"       # event: the event's name; tag: tag = "journey-post-purchase"

A ``webhook`` trigger names a ``url`` (its signing key is the secret
``SEGSYNC_TRIGGER_<NAME>_SECRET``, from the environment or ``.env``); a ``file`` trigger a
``path`` (JSON Lines, relative to the project folder). See docs/triggers.md.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ACTIONS = ("event", "tag", "webhook", "file")
ESP_ACTIONS = ("event", "tag")
# What each action needs, besides segment and on.
_REQUIRED = {"event": ("connection", "event"), "tag": ("connection", "tag"),
             "webhook": ("url",), "file": ("path",)}
_ALLOWED = {"event": {"connection", "event", "properties"}, "tag": {"connection", "tag"},
            "webhook": {"url", "timeout", "max_attempts", "batch_size"},
            "file": {"path"}}
_OPTIONAL = {"connection", "event", "tag", "url", "path", "properties", "timeout", "max_attempts", "batch_size"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class TriggerDef(BaseModel):
    """One ``[[triggers]]`` table."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    name: str = Field(pattern=_NAME.pattern)
    segment: str = Field(min_length=1)
    on: Literal["enter", "exit"] = "enter"
    action: Literal["event", "tag", "webhook", "file"]
    connection: str | None = None
    # An ESP event's name (Mailchimp: 2-30 characters; Brevo: letters, digits, - and _).
    event: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{2,30}$")
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    # Extra string properties sent with an ESP event (beside segment, change and the key).
    properties: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, pattern=r"^https?://")
    path: str | None = Field(default=None, min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=4, ge=1, le=10)
    batch_size: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _fits_action(self) -> TriggerDef:
        missing = [key for key in _REQUIRED[self.action] if getattr(self, key) is None]
        if missing:
            raise ValueError(f"a {self.action} trigger needs {' and '.join(missing)}")
        given = {key for key in _OPTIONAL if key in self.model_fields_set}
        extra = sorted(given - _ALLOWED[self.action])
        if extra:
            raise ValueError(f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not used "
                             f"by a {self.action} trigger")
        return self

    @property
    def secret_env(self) -> str:
        """Where a webhook trigger's signing key comes from."""
        return f"SEGSYNC_TRIGGER_{self.name.upper().replace('-', '_')}_SECRET"

    @property
    def reaches_person(self) -> bool:
        """An ESP action can start mail to the person: it passes the consent gate."""
        return self.action in ESP_ACTIONS
