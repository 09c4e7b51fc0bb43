"""Request and response validation against Brevo's own Swagger 2.0 spec.

The spec is ``shared/specs/brevo-v3.swagger.yaml`` beside the repository (found by walking up
from this file) or wherever ``SEGSYNC_BREVO_SPEC`` points. Without it the emulator still runs
and warns once that nothing is checked against the spec.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

log = logging.getLogger(__name__)

SPEC_ENV = "SEGSYNC_BREVO_SPEC"
SPEC_NAME = "brevo-v3.swagger.yaml"


class SpecViolation(Exception):
    """A request or response that Brevo's spec does not allow; the message says where."""


def find_spec() -> Path | None:
    override = os.environ.get(SPEC_ENV)
    if override:
        path = Path(override)
        return path if path.is_file() else None
    for ancestor in Path(__file__).resolve().parents:
        candidate = ancestor.parent / "shared" / "specs" / SPEC_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    spec: dict[str, Any]


class SpecValidator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._definitions = spec.get("definitions", {})
        self._operations: list[Operation] = []
        for template, item in spec.get("paths", {}).items():
            pattern = re.sub(r"\{[^}/]+\}", "([^/]+)", template)
            for method, op in item.items():
                if method in ("get", "post", "put", "delete", "patch"):
                    self._operations.append(
                        Operation(method.upper(), template, re.compile(f"^{pattern}$"), op)
                    )
        # Literal segments win over parameters (/contacts/lists before /contacts/{identifier}).
        self._operations.sort(key=lambda o: (o.template.count("{"), -len(o.template)))

    def operation(self, method: str, path: str) -> Operation | None:
        for op in self._operations:
            if op.method == method and op.regex.match(path):
                return op
        return None

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "definitions": self._definitions}

    def check_request(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> Operation:
        op = self.operation(method, path)
        if op is None:
            raise SpecViolation(f"{method} {path} is not an operation of Brevo's API v3")
        for param in op.spec.get("parameters", []):
            where, name = param.get("in"), param.get("name")
            if where == "query":
                if name not in query:
                    if param.get("required"):
                        raise SpecViolation(f"query parameter {name} is required")
                    continue
                _check_scalar(name, query[name], param)
            elif where == "body":
                if body is None:
                    if param.get("required"):
                        raise SpecViolation("a JSON body is required")
                    continue
                try:
                    jsonschema.Draft4Validator(self._schema(param["schema"])).validate(body)
                except jsonschema.ValidationError as exc:
                    where_ = "/".join(str(p) for p in exc.absolute_path) or "body"
                    raise SpecViolation(f"{where_}: {exc.message}") from None
        return op

    def check_response(self, op: Operation, status: int, body: Any) -> None:
        response = op.spec.get("responses", {}).get(str(status))
        if response is None:
            raise SpecViolation(f"{op.method} {op.template} does not document status {status}")
        schema = response.get("schema")
        if schema is None or body is None:
            return
        try:
            jsonschema.Draft4Validator(self._schema(schema)).validate(body)
        except jsonschema.ValidationError as exc:
            where_ = "/".join(str(p) for p in exc.absolute_path) or "body"
            raise SpecViolation(
                f"response {status} of {op.method} {op.template}: {where_}: {exc.message}"
            ) from None


def _check_scalar(name: str, raw: str, param: dict[str, Any]) -> None:
    kind = param.get("type")
    if kind == "integer":
        try:
            value: Any = int(raw)
        except ValueError:
            raise SpecViolation(f"{name} must be an integer") from None
        if "maximum" in param and value > param["maximum"]:
            raise SpecViolation(f"{name} must be at most {param['maximum']}")
        if "minimum" in param and value < param["minimum"]:
            raise SpecViolation(f"{name} must be at least {param['minimum']}")
    elif kind == "boolean" and raw not in ("true", "false"):
        raise SpecViolation(f"{name} must be true or false")
    elif "enum" in param and raw not in param["enum"]:
        raise SpecViolation(f"{name} must be one of {', '.join(map(str, param['enum']))}")


@lru_cache(maxsize=4)
def _load(path: str) -> SpecValidator:
    with open(path, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return SpecValidator(spec)


def load_validator() -> SpecValidator | None:
    path = find_spec()
    if path is None:
        message = (
            f"Brevo's API spec ({SPEC_NAME}) was not found beside the repository or at "
            f"${SPEC_ENV}: the emulator runs WITHOUT checking requests against the spec"
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        return None
    return _load(str(path))
