"""Request (and optionally response) validation against a service's OpenAPI 3 or Swagger 2 spec.

Validation must cost an emulator little, or a benchmark measures the emulator, not the client:

* the spec is parsed once per process (``load_spec`` is cached) and each operation's schemas
  are compiled into a ``jsonschema`` validator once, on first use, then reused;
* a body's top-level arrays (500 members a batch, 10 MB of import rows) are validated item by
  item, once per *shape*: a shape keeps the values of every value-constrained property (enums,
  patterns, bounds) and only the JSON type of the others, so two items of one shape are valid or
  invalid together. Invalid items are always validated in full; whole bodies and answers of a
  shape already found valid are not validated again;
* an array whose item schema has no value constraint but enums of strings (types, properties,
  required, additionalProperties, items, enum: a Brevo import's rows, Mailchimp's batch members
  with their ``status`` enum) is checked by a predicate compiled from that schema once, with
  Draft 4's type rules, instead of item by item through shapes (~0.5 µs a row instead of
  ~2-4 µs); only the items it refuses go through jsonschema, for the messages.

Violations come back as ``(field, message)`` with jsonschema's messages; the emulator turns
them into the service's own error format.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

SHAPE_CACHE_MAX = 10_000  # shapes remembered per operation and array (a bound on memory)
# Constraints that make an item's validity depend on its values, not only on its types. (No
# "format": jsonschema ignores it without a format checker.)
_VALUE_CONSTRAINTS = frozenset({
    "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "multipleOf", "oneOf", "anyOf", "allOf", "not", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties",
})


# Keywords a compiled item check understands; any other keyword that is not an annotation makes
# the schema go through shapes and jsonschema. ``enum`` only when every value is a string: then
# Draft 4's equality is plain string equality (jsonschema's ``equal`` compares strings with ``==``
# and tells ``True`` from ``1`` only for the other types).
_STRUCTURAL = frozenset({"type", "properties", "additionalProperties", "items", "required", "enum"})
_ANNOTATIONS = frozenset({"description", "example", "examples", "format", "default", "title", "readOnly",
                          "writeOnly", "nullable", "deprecated", "xml", "externalDocs", "discriminator"})
# Draft 4's types as jsonschema checks them: booleans are neither integers nor numbers, and an
# integral float is not an integer (that came with draft 6).
_DRAFT4_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}
_COMPILE_DEPTH = 8


@dataclass(frozen=True)
class Violation:
    field: str  # dotted path ("members.0.status"), a query parameter's name, or "" for the body
    message: str  # a query parameter's message names the parameter ("limit must be at most 50")
    where: str = "body"  # or "query"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field and self.where == "body" else self.message


@lru_cache(maxsize=8)
def load_spec(path: str) -> dict[str, Any]:
    """The parsed spec at ``path`` (YAML or JSON), once per process."""
    import yaml

    with open(path, "rb") as fh:
        if path.endswith(".json"):
            import json

            return json.load(fh)
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def find_spec(name: str, env: str, start: Path) -> Path | None:
    """``$env`` when set, else ``shared/specs/<name>`` beside an ancestor of ``start``."""
    import os

    override = os.environ.get(env)
    if override:
        return Path(override) if Path(override).is_file() else None
    for ancestor in start.resolve().parents:
        candidate = ancestor.parent / "shared" / "specs" / name
        if candidate.is_file():
            return candidate
    return None


def warn_missing(what: str, name: str, env: str) -> None:
    message = (f"{what}'s API spec ({name}) was not found beside the repository or at ${env}: "
               "the emulator runs WITHOUT checking requests against the spec")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)


@dataclass
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    spec: dict[str, Any]


class OpenApiValidator:
    """Finds the spec's operation for a request and reports what violates it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.swagger2 = "swagger" in spec
        self._refs_root = {"definitions": spec.get("definitions", {})} if self.swagger2 else {
            "components": spec.get("components", {})}
        self._operations: list[Operation] = []
        for template, item in (spec.get("paths") or {}).items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    self._operations.append(Operation(method.upper(), template, re.compile(f"^{pattern}$"), op))
        # Literal segments win over parameters (/contacts/lists before /contacts/{identifier}).
        self._operations.sort(key=lambda o: (o.template.count("{"), -len(o.template)))
        self._found: dict[tuple[str, str], Operation | None] = {}
        self._validators: dict[tuple[Any, ...], Any] = {}
        self._valid_shapes: dict[tuple[Any, ...], set[Any]] = {}
        self._schema_info: dict[int, tuple[Any, ...]] = {}
        self._compiled: dict[int, Callable[[Any], bool] | None] = {}
        self._keep_alive: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path | str) -> OpenApiValidator:
        return _validator_for(str(path))

    # -- operations ----------------------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation | None:
        key = (method, path)
        if key not in self._found:
            found = next((op for op in self._operations if op.method == method and op.regex.match(path)), None)
            if len(self._found) < SHAPE_CACHE_MAX:
                self._found[key] = found
            return found
        return self._found[key]

    # -- requests ------------------------------------------------------------------------

    def check_request(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> list[Violation]:
        """What of the request violates its operation ([] also for operations the spec lacks)."""
        op = self.operation(method, path)
        if op is None:
            return []
        violations = self._check_query(op, query)
        schema = self._body_schema(op)
        if schema is not None and body is None and self._body_required(op):
            violations.append(Violation("", "a JSON body is required"))
        elif schema is not None and body is not None:
            violations += self._check(("request", op.method, op.template), schema, body)
        return violations

    def _body_schema(self, op: Operation) -> dict[str, Any] | None:
        if self.swagger2:
            for param in op.spec.get("parameters", []):
                if param.get("in") == "body":
                    return param.get("schema")
            return None
        content = op.spec.get("requestBody", {}).get("content", {})
        return (content.get("application/json") or {}).get("schema")

    def _body_required(self, op: Operation) -> bool:
        if self.swagger2:
            return any(p.get("in") == "body" and p.get("required") for p in op.spec.get("parameters", []))
        return bool(op.spec.get("requestBody", {}).get("required"))

    def _check_query(self, op: Operation, query: dict[str, list[str]]) -> list[Violation]:
        found = []
        for param in op.spec.get("parameters", []):
            param = self._resolve(param)
            if param.get("in") != "query":
                continue
            name = param.get("name")
            if name not in query:
                if param.get("required"):
                    found.append(Violation(name, f"query parameter {name} is required", "query"))
                continue
            problem = _scalar_problem(name, query[name][-1], param.get("schema", param))
            if problem:
                found.append(Violation(name, problem, "query"))
        return found

    # -- responses -----------------------------------------------------------------------

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[Violation]:
        """What of an answer the spec forbids. An error status the operation does not document
        is not reported (specs list few of them)."""
        op = self.operation(method, path)
        if op is None:
            return []
        responses = op.spec.get("responses", {})
        response = responses.get(str(status))
        if response is None:
            if status >= 400:
                return []
            return [Violation("", f"{op.method} {op.template} does not document status {status}")]
        response = self._resolve(response)
        schema = response.get("schema") if self.swagger2 else (
            (response.get("content") or {}).get("application/json") or {}).get("schema")
        if schema is None or body is None:
            return []
        return [Violation(v.field, f"response {status} of {op.method} {op.template}: {v.message}")
                for v in self._check(("response", op.method, op.template, status), schema, body)]

    # -- validation by shape -------------------------------------------------------------

    def _check(self, key: tuple[Any, ...], schema: dict[str, Any], body: Any) -> list[Violation]:
        resolved = self._resolve(schema)
        arrays: dict[str, dict[str, Any]] = {}
        if isinstance(body, dict):
            for name, prop in (resolved.get("properties") or {}).items():
                prop = self._resolve(prop)
                if isinstance(body.get(name), list) and isinstance(prop.get("items"), dict) \
                        and not (_VALUE_CONSTRAINTS & prop.keys()):
                    arrays[name] = self._resolve(prop["items"])
        top = {k: ([] if k in arrays else v) for k, v in body.items()} if arrays else body
        violations = self._validate_once(key, schema, top, "")
        for name, items in arrays.items():
            fits = self._item_check(items)
            if fits is not None and all(map(fits, body[name])):
                continue  # every item has the types the schema asks for: nothing else to check
            for i, item in enumerate(body[name]):
                if fits is None or not fits(item):
                    violations += self._validate_once((*key, name), items, item, f"{name}.{i}")
        return violations

    def _item_check(self, schema: dict[str, Any]) -> Callable[[Any], bool] | None:
        """The compiled check of an array's item schema, or None when it has value constraints."""
        if id(schema) not in self._compiled:
            check = self._compile(schema, 0)
            with self._lock:
                self._compiled[id(schema)] = None if check is False else (check or _anything)
                self._keep_alive.append(schema)
        return self._compiled[id(schema)]

    def _compile(self, schema: Any, depth: int) -> Callable[[Any], bool] | None | bool:
        """A predicate true exactly when jsonschema (Draft 4) finds ``schema`` satisfied; None
        when the schema accepts anything; False when it cannot be compiled (value constraints
        other than an enum of strings, combinators, too deep)."""
        resolved = self._resolve(schema)
        if depth > _COMPILE_DEPTH or not isinstance(schema, dict):
            return False
        keywords = {k for k in resolved if not k.startswith("x-")} - _ANNOTATIONS
        if keywords - _STRUCTURAL:
            return False
        allowed = resolved.get("enum")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(type(v) is str for v in allowed):
                return False
            allowed = frozenset(allowed)
        kinds = resolved.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if kinds is not None and (not isinstance(kinds, list) or not all(k in _DRAFT4_TYPES for k in kinds)):
            return False
        type_ok = None if kinds is None else (
            _DRAFT4_TYPES[kinds[0]] if len(kinds) == 1 else
            (lambda tests: lambda v: any(t(v) for t in tests))([_DRAFT4_TYPES[k] for k in kinds]))
        props: dict[str, Callable[[Any], bool] | None] = {}
        for name, sub in (resolved.get("properties") or {}).items():
            compiled = self._compile(sub, depth + 1)
            if compiled is False:
                return False
            props[name] = compiled
        extra = resolved.get("additionalProperties", True)
        if isinstance(extra, dict):
            extra = self._compile(extra, depth + 1)
            if extra is False:
                return False
            extra = True if extra is None else extra
        elif extra is not False:
            extra = True
        items = resolved.get("items")
        if items is not None:
            items = self._compile(items, depth + 1) if isinstance(items, dict) else False
            if items is False:
                return False
        required = list(resolved.get("required") or ())
        checked = {name: test for name, test in props.items() if test is not None}
        object_rules = bool(required or checked or extra is not True)
        if type_ok is None and not object_rules and items is None and allowed is None:
            return None
        if not object_rules and items is None and allowed is None:
            return type_ok  # a type alone (most properties): its test, without a call around it

        def check(value: Any) -> bool:
            if type_ok is not None and not type_ok(value):
                return False
            if allowed is not None and (type(value) is not str or value not in allowed):
                return False
            if object_rules and type(value) is dict:
                for name in required:
                    if name not in value:
                        return False
                for name, item in value.items():
                    test = checked.get(name)
                    if test is not None:
                        if not test(item):
                            return False
                    elif name not in props and extra is not True and (extra is False or not extra(item)):
                        return False
            if items is not None and type(value) is list:
                return all(map(items, value))
            return True

        return check

    def _validate_once(self, key: tuple[Any, ...], schema: dict[str, Any], instance: Any, prefix: str) -> list[Violation]:
        shape = self._shape(instance, schema)
        with self._lock:
            known = self._valid_shapes.setdefault(key, set())
            if shape in known:
                return []
        validator = self._validator(key, schema)
        found = [Violation(".".join([prefix] * bool(prefix) + [str(p) for p in err.path]), err.message)
                 for err in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])]
        if not found:
            with self._lock:
                if len(known) < SHAPE_CACHE_MAX:
                    known.add(shape)
        return found

    def _validator(self, key: tuple[Any, ...], schema: dict[str, Any]) -> Any:
        validator = self._validators.get(key)
        if validator is None:
            import jsonschema

            # Refs ("#/components/..." or "#/definitions/...") resolve against the spec's root.
            validator = jsonschema.Draft4Validator({**schema, **self._refs_root})
            self._validators[key] = validator
        return validator

    def _resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            node: Any = self.spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            schema, seen = node, seen + 1
        return schema if isinstance(schema, dict) else {}

    def _shape(self, value: Any, schema: dict[str, Any]) -> Any:
        # Called for every item of every big body: what each schema says is looked up once, and
        # a scalar under an unconstrained schema is its type without a call of its own.
        info = self._schema_info.get(id(schema))
        if info is None:
            info = self._learn(schema)
        props, extra, items, constrained, free, extra_free, items_free = info
        kind = type(value)
        if kind is dict:
            out = []
            for k, v in value.items():
                child = type(v)
                if child is not dict and child is not list and (k in free if k in props else extra_free):
                    out.append((k, child))
                else:
                    out.append((k, self._shape(v, props.get(k, extra))))
            return frozenset(out)
        if kind is list:
            if constrained:
                return ("arr", tuple(self._shape(v, items) for v in value))
            kinds = frozenset(map(type, value))
            if items_free and dict not in kinds and list not in kinds:
                return ("arr", kinds)
            return ("arr", frozenset(self._shape(v, items) for v in value))
        if constrained:
            return (kind, value)
        return kind

    def _learn(self, schema: dict[str, Any]) -> tuple[Any, ...]:
        """(properties, additionalProperties, items, whether values matter, names of the
        properties whose values do not matter, whether additional ones' do not, whether items'
        do not)."""
        resolved = self._resolve(schema)
        extra = resolved.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else {}
        props = resolved.get("properties") or {}
        items = resolved.get("items") or {}

        def free(sub: Any) -> bool:
            return not (_VALUE_CONSTRAINTS & self._resolve(sub).keys())

        info = (props, extra, items, not free(resolved),
                frozenset(name for name, sub in props.items() if free(sub)), free(extra), free(items))
        with self._lock:
            self._schema_info[id(schema)] = info
            self._keep_alive.append(schema)  # ids stay unique while the schema is referenced
        return info


def _anything(_value: Any) -> bool:
    return True


@lru_cache(maxsize=8)
def _validator_for(path: str) -> OpenApiValidator:
    return OpenApiValidator(load_spec(path))


def _scalar_problem(name: str, raw: str, schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            return f"{name} must be an integer"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{name} must be at most {schema['maximum']}"
        if value < schema.get("minimum", 0):
            return f"{name} must be at least {schema.get('minimum', 0)}"
    elif kind == "boolean" and raw.lower() not in ("true", "false"):
        return f"{name} must be true or false"
    elif "enum" in schema and raw not in [str(v) for v in schema["enum"]]:
        return f"{name} must be one of: {', '.join(map(str, schema['enum']))}"
    return None
