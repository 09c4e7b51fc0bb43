"""Mailchimp's error glossary and its problem+json error documents.

Titles, statuses and default details follow Mailchimp's error glossary
(https://mailchimp.com/developer/marketing/docs/errors/). The glossary *names* are what the
``X-Trigger-Error`` header takes, so a test can ask for any of them on any endpoint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

ERROR_DOCS_URL = "https://mailchimp.com/developer/marketing/docs/errors/"

# name -> (status, title, default detail)
GLOSSARY: dict[str, tuple[int, str, str]] = {
    "BadRequest": (400, "Bad Request", "Your request could not be processed."),
    "InvalidAction": (400, "Invalid Action", "The action requested was not valid for this resource."),
    "InvalidResource": (
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, "
        "see the 'errors' array.",
    ),
    "JSONParseError": (
        400,
        "JSON Parse Error",
        "We encountered an unspecified JSON parsing error.",
    ),
    "APIKeyMissing": (
        401,
        "API Key Missing",
        "Your request did not include an API key.",
    ),
    "APIKeyInvalid": (401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."),
    "Forbidden": (403, "Forbidden", "You don't have permission to access this resource."),
    "UserDisabled": (403, "User Disabled", "This account has been disabled."),
    "WrongDatacenter": (403, "Wrong Datacenter", "The API key provided is linked to a different datacenter."),
    "ResourceNotFound": (404, "Resource Not Found", "The requested resource could not be found."),
    "MethodNotAllowed": (
        405,
        "Method Not Allowed",
        "The requested method and resource are not compatible. See the Allow header for "
        "this resource's available methods.",
    ),
    "ResourceNestingTooDeep": (414, "Resource Nesting Too Deep", "The sub-resource requested is nested too deeply."),
    "InvalidMethodOverride": (422, "Invalid Method Override", "You can only use the X-HTTP-Method-Override header with the POST method."),
    "RequestedFieldsInvalid": (426, "Requested Fields Invalid", "The fields requested from this resource are invalid."),
    "TooManyRequests": (
        429,
        "Too Many Requests",
        "You have exceeded the limit of 10 simultaneous connections.",
    ),
    "InternalServerError": (500, "Internal Server Error", "An unexpected internal error has occurred. Please contact Support for more information."),
    "ComplianceRelated": (503, "Compliance Related", "This method has been disabled."),
}


@dataclass
class ApiProblem(Exception):
    """An error answer; raised anywhere in the emulator and rendered as problem+json."""

    name: str
    detail: str | None = None
    title: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return GLOSSARY[self.name][0]

    def document(self, instance: str | None = None) -> dict[str, Any]:
        status, title, detail = GLOSSARY[self.name]
        doc: dict[str, Any] = {
            "type": ERROR_DOCS_URL,
            "title": self.title or title,
            "status": status,
            "detail": self.detail or detail,
            "instance": instance or str(uuid.uuid4()),
        }
        if self.errors:
            doc["errors"] = self.errors
        return doc
