"""「API」 /docs: the published OpenAPI as a server-rendered page.

FastAPI's Swagger UI and ReDoc load scripts and styles from a CDN and run inline scripts,
which the app's Content-Security-Policy (``'self'`` only) forbids; a page rendered here from
the same ``/openapi.json`` needs neither, so the policy stays as strict on /docs as anywhere.
Operations come grouped by path, each with its parameters, body and answers, then every
schema with its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from reco2.web.kit import PageKit

METHODS = ("get", "post", "put", "patch", "delete")
REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str
    required: bool
    type: str
    description: str


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    params: list[Param] = field(default_factory=list)
    body: list[tuple[str, str]] = field(default_factory=list)  # (content type, schema)
    responses: list[tuple[str, str, str]] = field(default_factory=list)  # code, text, schema


@dataclass(frozen=True, slots=True)
class Schema:
    name: str
    description: str
    fields: list[Param]


def type_of(schema: dict[str, Any]) -> str:
    """A short reading of a JSON schema: a model's name, list[...], a | b, a type with its
    constraints."""
    if "$ref" in schema:
        return str(schema["$ref"]).removeprefix(REF_PREFIX)
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " | ".join(type_of(s) for s in schema[combined])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(type_of(s) for s in schema["prefixItems"]) + "]"
        return f"list[{type_of(schema.get('items', {}))}]"
    limits = [
        f"{label} {schema[key]}"
        for key, label in (
            ("format", "format"),
            ("pattern", "pattern"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("maxItems", "items ≤"),
        )
        if key in schema
    ]
    return f"{kind} ({', '.join(limits)})" if limits else str(kind)


def operations(spec: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [
                Param(
                    p["name"],
                    p["in"],
                    bool(p.get("required")),
                    type_of(p.get("schema", {})),
                    p.get("description", ""),
                )
                for p in op.get("parameters", [])
            ]
            content = op.get("requestBody", {}).get("content", {})
            body = [(kind, type_of(c.get("schema", {}))) for kind, c in content.items()]
            responses = []
            for code, answer in op.get("responses", {}).items():
                schemas = [type_of(c.get("schema", {})) for c in answer.get("content", {}).values()]
                responses.append((code, answer.get("description", ""), " / ".join(schemas)))
            anchor = f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")
            found.append(
                Operation(
                    method.upper(),
                    path,
                    op.get("summary", ""),
                    op.get("description", ""),
                    anchor,
                    params,
                    body,
                    responses,
                )
            )
    return found


def schemas(spec: dict[str, Any]) -> list[Schema]:
    found = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        fields = [
            Param(key, "", key in required, type_of(prop), prop.get("description", ""))
            for key, prop in schema.get("properties", {}).items()
        ]
        found.append(Schema(name, schema.get("description", ""), fields))
    return found


def install(app: FastAPI, kit: PageKit) -> None:
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        spec = app.openapi()
        found = schemas(spec)
        return kit.render(
            request,
            "docs.html",
            info=spec.get("info", {}),
            operations=operations(spec),
            schemas=found,
            schema_names={s.name for s in found},
        )
