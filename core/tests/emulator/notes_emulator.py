"""A tiny service emulated on the kit, for the kit's own tests (also run in its own process)."""

from __future__ import annotations

import threading

from segsync.testing.emulator import Answer, AnswerError, Emulator, Request, route

# ``maxLength`` keeps a note on the shape path (an item schema whose only value constraints are
# enums of strings is compiled into a predicate instead; see segsync.testing.emulator.openapi).
SPEC = {
    "openapi": "3.0.0",
    "paths": {
        "/notes": {
            "get": {"parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 50}}],
                    "responses": {"200": {"content": {"application/json": {"schema": {
                        "type": "object", "required": ["notes"],
                        "properties": {"notes": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}}}}}}}},
            "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"notes": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}}}}}},
                "responses": {"201": {}}},
        },
        "/notes/{id}": {"delete": {"responses": {"204": {}}}},
    },
    "components": {"schemas": {"Note": {
        "type": "object", "required": ["text"],
        "properties": {"text": {"type": "string"}, "color": {"type": "string", "enum": ["red", "blue"], "maxLength": 8}}}}},
}


class NotesEmulator(Emulator):
    name = "notes"
    api_prefix = "/v1"

    def __init__(self, *, api_key: str = "k-123456", **options) -> None:
        super().__init__(**options)
        self.api_key = api_key
        self.notes: list[dict] = []
        self.gate: threading.Event | None = None  # a test holds requests here

    def authenticate(self, request: Request) -> None:
        if request.headers.get("api-key") != self.api_key:
            raise AnswerError(Answer(401, {"code": "unauthorized"}))

    def rate_bucket(self, path: str) -> str:
        return "notes" if path.startswith("/notes") else "other"

    @route("GET", "/notes")
    def list_notes(self, request: Request):
        if self.gate is not None:
            self.gate.wait(5)
        return {"notes": self.notes[: int(request.params.get("limit", 50))]}

    @route("POST", "/notes")
    def add_notes(self, request: Request):
        self.notes.extend(request.body["notes"])
        return 201, {"count": len(self.notes)}

    @route("DELETE", "/notes/{id:int}")
    def delete_note(self, request: Request, id: str):  # noqa: A002
        del self.notes[int(id)]
        return Answer(204)

    @route("GET", "/broken")
    def broken(self, request: Request):
        return {"notes": "not a list"}

    def seed(self, body):
        self.notes.extend(body.get("notes", []))
        return {"count": len(self.notes)}
