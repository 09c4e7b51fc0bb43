"""Request validation against Mailchimp's OpenAPI document.

Only requests are checked: the spec's request bodies and parameters are reliable, but several of
its response schemas are wrong (see ``../shared/specs/README.md``), so responses follow
Mailchimp's reference docs instead. The spec lives outside the package, at
``<repo>/../shared/specs/``; ``SEGSYNC_MAILCHIMP_SPEC`` points elsewhere. Without it the emulator
still runs, with a warning, and validation is skipped.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

log = logging.getLogger(__name__)

SPEC_ENV = "SEGSYNC_MAILCHIMP_SPEC"
SPEC_NAME = "mailchimp-marketing-v3.openapi.yaml"
# connectors/mailchimp/segsync_mailchimp/emulator/spec.py -> the repository root is parents[4].
_REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_SPEC = _REPO_ROOT.parent / "shared" / "specs" / SPEC_NAME


def spec_path() -> Path:
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC)


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        message = (
            f"Mailchimp OpenAPI spec not found at {path} (set {SPEC_ENV}); "
            "the emulator will NOT validate requests against it"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        log.warning(message)
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader parses 1.6 MB in ~1 s
    with path.open("rb") as fh:
        doc = yaml.load(fh, Loader=loader)
    _apply_errata(doc)
    return doc


def _apply_errata(doc: dict[str, Any]) -> None:
    """Correct the generator's known mistakes in *request* schemas.

    ``merge_fields`` values are typed ``object`` in this re-serialised spec, while Mailchimp
    takes strings and numbers (and objects only for address fields); the constraint is dropped.
    """
    for schema in doc.get("components", {}).get("schemas", {}).values():
        merge_fields = (schema.get("properties") or {}).get("merge_fields")
        if isinstance(merge_fields, dict):
            extra = merge_fields.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") == "object":
                extra.pop("type")


_VALUE_CONSTRAINTS = frozenset({
    "enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "multipleOf", "oneOf", "anyOf", "allOf", "not",
})


def _compile_template(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


class SpecValidator:
    """Finds the spec operation for a request and reports what violates it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or spec_path()
        self.doc = _load(self.path)
        self.enabled = self.doc is not None
        self._routes: list[tuple[re.Pattern[str], str]] = []
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self._valid_shapes: dict[tuple[str, str, str], set[Any]] = {}
        if self.doc:
            # Literal segments first, so /lists/{id}/members wins over a looser template.
            templates = sorted(self.doc["paths"], key=lambda t: (t.count("{"), -len(t)))
            self._routes = [(_compile_template(t), t) for t in templates]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        if not self.doc:
            return None
        for pattern, template in self._routes:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None

    def check(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> list[dict[str, str]]:
        """Violations as Mailchimp's ``errors`` entries (``field``, ``message``); [] when valid."""
        found = self.operation(method, path)
        if found is None:
            return []
        template, op = found
        errors = self._check_query(op.get("parameters", []), query)
        schema = (
            op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        )
        if schema is not None and body is not None:
            errors.extend(self._check_body(template, method, schema, body))
        return errors

    def _check_body(self, template: str, method: str, schema: dict[str, Any], body: Any) -> list[dict[str, str]]:
        """Validate a body; the items of top-level arrays (500 members a batch) are validated
        once per *shape*, because jsonschema takes ~0.4 ms an item and the emulator must not be
        the bottleneck of a benchmark. A shape keeps the values of every value-constrained
        property (enums, patterns, bounds) and only the JSON type of the others, so two items of
        one shape are valid or invalid together; invalid items are always validated in full."""
        resolved = self._resolve(schema)
        arrays = {}
        if isinstance(body, dict):
            for name, prop in (resolved.get("properties") or {}).items():
                items = self._resolve(prop).get("items")
                if isinstance(body.get(name), list) and items is not None:
                    arrays[name] = self._resolve(items)
        top = {k: ([] if k in arrays else v) for k, v in body.items()} if arrays else body
        errors = self._errors(self._validator(template, method, schema), top, "")
        for name, items in arrays.items():
            validator = self._validator(template + "#" + name, method, items)
            known = self._valid_shapes.setdefault((template, method, name), set())
            for i, item in enumerate(body[name]):
                shape = self._shape(item, items)
                if shape in known:
                    continue
                item_errors = self._errors(validator, item, f"{name}.{i}")
                if item_errors:
                    errors.extend(item_errors)
                elif len(known) < 10_000:
                    known.add(shape)
        return errors

    @staticmethod
    def _errors(validator: Any, instance: Any, prefix: str) -> list[dict[str, str]]:
        found = []
        for err in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
            field = ".".join([prefix] * bool(prefix) + [str(p) for p in err.path])
            found.append({"field": field, "message": err.message})
        return found

    def _resolve(self, schema: Any) -> dict[str, Any]:
        while isinstance(schema, dict) and "$ref" in schema and self.doc is not None:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema if isinstance(schema, dict) else {}

    def _shape(self, value: Any, schema: dict[str, Any]) -> Any:
        schema = self._resolve(schema)
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            return ("obj", tuple(sorted(
                (k, self._shape(v, props.get(k, extra if isinstance(extra, dict) else {})))
                for k, v in value.items()
            )))
        if isinstance(value, list):
            items = schema.get("items") or {}
            return ("arr", frozenset(self._shape(v, items) for v in value))
        if _VALUE_CONSTRAINTS & schema.keys():
            return ("val", type(value).__name__, value)
        return ("type", type(value).__name__)

    def _validator(self, template: str, method: str, schema: dict[str, Any]) -> Any:
        key = (template, method)
        if key not in self._validators:
            assert self.doc is not None
            root = dict(schema)
            root["components"] = self.doc["components"]  # so "#/components/..." refs resolve
            self._validators[key] = jsonschema.Draft4Validator(root)
        return self._validators[key]

    @staticmethod
    def _check_query(params: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for param in params:
            if param.get("in") != "query" or param["name"] not in query:
                continue
            name, raw = param["name"], query[param["name"]][-1]
            schema = param.get("schema", {})
            kind = schema.get("type")
            if kind == "integer":
                try:
                    value = int(raw)
                except ValueError:
                    errors.append({"field": name, "message": f"{name} must be an integer"})
                    continue
                if "maximum" in schema and value > schema["maximum"]:
                    errors.append(
                        {"field": name, "message": f"{name} must be at most {schema['maximum']}"}
                    )
                if value < 0:
                    errors.append({"field": name, "message": f"{name} must not be negative"})
            elif kind == "boolean" and raw.lower() not in ("true", "false", "1", "0"):
                errors.append({"field": name, "message": f"{name} must be a boolean"})
            elif "enum" in schema and raw not in schema["enum"]:
                allowed = ", ".join(schema["enum"])
                errors.append({"field": name, "message": f"{name} must be one of: {allowed}"})
        return errors
