"""Render an OpenAPI 3 document of Orchid's REST surface from a FileDescriptorSet.

The REST surface is what Envoy's grpc_json_transcoder exposes: every google.api.http rule
(additional_bindings included) of every service in package orchid.v1. The document follows
the transcoder's JSON conventions: proto field names (snake_case), 64-bit integers as
strings, enums by name, well-known types in their proto3 JSON form.

Comments of the .proto files (the descriptor set must carry source info) become summaries
and descriptions; google.api.field_behavior becomes required / readOnly / writeOnly.

Usage: python tools/gen_openapi.py DESCRIPTOR_SET [OUT.json]   (gen_proto.py calls render())
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

PACKAGE = "orchid.v1"
# Services reachable without a bearer token (probes).
PUBLIC_SERVICES = frozenset({"orchid.v1.OpsService"})
ERROR_SCHEMA = "google.rpc.Status"
HTTP_VERBS = ("get", "put", "post", "delete", "patch")

FDP = descriptor_pb2.FieldDescriptorProto
_INT64_TYPES = {FDP.TYPE_INT64, FDP.TYPE_SINT64, FDP.TYPE_SFIXED64}
_UINT64_TYPES = {FDP.TYPE_UINT64, FDP.TYPE_FIXED64}
_INT32_TYPES = {FDP.TYPE_INT32, FDP.TYPE_SINT32, FDP.TYPE_SFIXED32}
_UINT32_TYPES = {FDP.TYPE_UINT32, FDP.TYPE_FIXED32}

Schema = dict[str, Any]

# Well-known types rendered inline in their proto3 JSON form.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "description": 'Seconds with an "s" suffix, e.g. "1.5s".'},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths."},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "format": "float", "nullable": True},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
}


@dataclass
class Route:
    """One HTTP binding of one RPC."""

    service: str  # full name, e.g. orchid.v1.PlanService
    method: str  # RPC name, e.g. GetPlan
    verb: str  # lower-case HTTP verb
    path: str  # OpenAPI path, e.g. /api/v1/plans/{key}
    body: str  # "", "*" or a field name
    response_body: str
    input_type: str  # full message name, no leading dot
    output_type: str
    binding_index: int  # 0 for the main rule, 1.. for additional_bindings


@dataclass
class Catalog:
    """Messages, enums, services and comments of a FileDescriptorSet, by full name."""

    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    services: dict[str, descriptor_pb2.ServiceDescriptorProto] = field(default_factory=dict)
    comments: dict[tuple[str, ...], str] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes) -> Catalog:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        catalog = cls()
        for file in fds.file:
            catalog._add_file(file)
        return catalog

    def _add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        by_path = {
            tuple(loc.path): _clean_comment(loc.leading_comments) for loc in file.source_code_info.location
        }

        def add_message(msg: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
            name = f"{prefix}.{msg.name}"
            self.messages[name] = msg
            self._remember(("message", name), by_path.get(path))
            for i, fld in enumerate(msg.field):
                self._remember(("field", name, fld.name), by_path.get((*path, 2, i)))
            for i, nested in enumerate(msg.nested_type):
                add_message(nested, name, (*path, 3, i))
            for i, enum in enumerate(msg.enum_type):
                add_enum(enum, name, (*path, 4, i))

        def add_enum(enum: descriptor_pb2.EnumDescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
            name = f"{prefix}.{enum.name}"
            self.enums[name] = enum
            self._remember(("enum", name), by_path.get(path))
            for i, value in enumerate(enum.value):
                self._remember(("enum_value", name, value.name), by_path.get((*path, 2, i)))

        for i, msg in enumerate(file.message_type):
            add_message(msg, file.package, (4, i))
        for i, enum in enumerate(file.enum_type):
            add_enum(enum, file.package, (5, i))
        for i, svc in enumerate(file.service):
            name = f"{file.package}.{svc.name}"
            self.services[name] = svc
            self._remember(("service", name), by_path.get((6, i)))
            for j, rpc in enumerate(svc.method):
                self._remember(("method", name, rpc.name), by_path.get((6, i, 2, j)))

    def _remember(self, key: tuple[str, ...], comment: str | None) -> None:
        if comment:
            self.comments[key] = comment

    def comment(self, *key: str) -> str:
        return self.comments.get(tuple(key), "")


def _clean_comment(text: str) -> str:
    lines = text.splitlines()
    # protoc keeps the space after "//"; remove one leading space from every line.
    return "\n".join(line[1:] if line.startswith(" ") else line for line in lines).strip()


def _type_name(type_name: str) -> str:
    return type_name.lstrip(".")


def routes(catalog: Catalog) -> list[Route]:
    """Return every HTTP binding of every RPC of the orchid.v1 services, in file order."""
    found = []
    for service_name, service in sorted(catalog.services.items()):
        if not service_name.startswith(f"{PACKAGE}."):
            continue
        for rpc in service.method:
            rule = rpc.options.Extensions[annotations_pb2.http]
            for index, binding in enumerate([rule, *rule.additional_bindings]):
                found.append(_route(service_name, rpc, binding, index))
    return found


def _route(
    service: str, rpc: descriptor_pb2.MethodDescriptorProto, rule: http_pb2.HttpRule, index: int
) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise ValueError(f"{service}.{rpc.name} has no google.api.http rule")
    if pattern == "custom":
        verb, path = rule.custom.kind.lower(), rule.custom.path
    else:
        verb, path = pattern, getattr(rule, pattern)
    return Route(
        service=service,
        method=rpc.name,
        verb=verb,
        path=re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", path),
        body=rule.body,
        response_body=rule.response_body,
        input_type=_type_name(rpc.input_type),
        output_type=_type_name(rpc.output_type),
        binding_index=index,
    )


def path_params(path: str) -> list[str]:
    """Return the field paths bound in an OpenAPI path template, in order."""
    return re.findall(r"\{([^}]+)\}", path)


class _Builder:
    """Builds component schemas on demand, following references transitively."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.schemas: dict[str, Schema] = {}

    def ref(self, full_name: str) -> Schema:
        if full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full_name])
        if full_name not in self.schemas:
            self.schemas[full_name] = {}  # placeholder breaks recursion (Step.sub_steps)
            if full_name in self.catalog.enums:
                self.schemas[full_name] = self._enum_schema(full_name)
            else:
                self.schemas[full_name] = self.message_schema(full_name)
        return {"$ref": f"#/components/schemas/{full_name}"}

    def _enum_schema(self, full_name: str) -> Schema:
        enum = self.catalog.enums[full_name]
        lines = [self.catalog.comment("enum", full_name), ""]
        for value in enum.value:
            doc = self.catalog.comment("enum_value", full_name, value.name).replace("\n", " ")
            lines.append(f"- `{value.name}`: {doc}")
        return {
            "type": "string",
            "enum": [v.name for v in enum.value],
            "description": "\n".join(lines).strip(),
        }

    def message_schema(self, full_name: str, *, skip: frozenset[str] = frozenset()) -> Schema:
        msg = self.catalog.messages[full_name]
        properties: dict[str, Schema] = {}
        required = []
        for fld in msg.field:
            if fld.name in skip:
                continue
            properties[fld.name] = self.field_schema(full_name, fld)
            if field_behavior_pb2.REQUIRED in _behaviors(fld):
                required.append(fld.name)
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self.catalog.comment("message", full_name)
        if description:
            schema["description"] = description
        return schema

    def field_schema(self, message_name: str, fld: descriptor_pb2.FieldDescriptorProto) -> Schema:
        schema = self._value_schema(fld)
        if fld.label == FDP.LABEL_REPEATED and not self._is_map(fld):
            schema = {"type": "array", "items": schema}
        behaviors = _behaviors(fld)
        extra: Schema = {}
        description = self.catalog.comment("field", message_name, fld.name)
        if description:
            extra["description"] = description
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            extra["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            extra["writeOnly"] = True
        if not extra:
            return schema
        if "$ref" in schema:
            # OpenAPI 3.0 ignores siblings of $ref; allOf keeps the field's own description.
            schema = {"allOf": [schema]}
        return {**schema, **extra}

    def _is_map(self, fld: descriptor_pb2.FieldDescriptorProto) -> bool:
        if fld.type != FDP.TYPE_MESSAGE:
            return False
        entry = self.catalog.messages.get(_type_name(fld.type_name))
        return bool(entry and entry.options.map_entry)

    def _value_schema(self, fld: descriptor_pb2.FieldDescriptorProto) -> Schema:
        if self._is_map(fld):
            entry = self.catalog.messages[_type_name(fld.type_name)]
            value = next(f for f in entry.field if f.name == "value")
            return {"type": "object", "additionalProperties": self._value_schema(value)}
        if fld.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM, FDP.TYPE_GROUP):
            return self.ref(_type_name(fld.type_name))
        return _scalar_schema(fld.type)


def _scalar_schema(kind: int) -> Schema:
    if kind in _INT64_TYPES:
        return {"type": "string", "format": "int64"}
    if kind in _UINT64_TYPES:
        return {"type": "string", "format": "uint64"}
    if kind in _INT32_TYPES:
        return {"type": "integer", "format": "int32"}
    if kind in _UINT32_TYPES:
        return {"type": "integer", "format": "int64", "minimum": 0}
    if kind == FDP.TYPE_DOUBLE:
        return {"type": "number", "format": "double"}
    if kind == FDP.TYPE_FLOAT:
        return {"type": "number", "format": "float"}
    if kind == FDP.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FDP.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    return {"type": "string"}


def _behaviors(fld: descriptor_pb2.FieldDescriptorProto) -> list[int]:
    return list(fld.options.Extensions[field_behavior_pb2.field_behavior])


def _query_fields(
    builder: _Builder, message_name: str, prefix: str, seen: frozenset[str]
) -> Iterator[tuple[str, descriptor_pb2.FieldDescriptorProto, str]]:
    """Yield (query name, field, owning message) for the fields a query string can set."""
    for fld in builder.catalog.messages[message_name].field:
        name = f"{prefix}{fld.name}"
        type_name = _type_name(fld.type_name)
        if builder._is_map(fld):
            continue  # the transcoder cannot bind maps from a query string
        if fld.type == FDP.TYPE_MESSAGE and type_name not in _WELL_KNOWN:
            if fld.label != FDP.LABEL_REPEATED and type_name not in seen:
                yield from _query_fields(builder, type_name, f"{name}.", seen | {type_name})
            continue
        yield name, fld, message_name


def _operation(builder: _Builder, route: Route) -> Schema:
    catalog = builder.catalog
    bound = path_params(route.path)
    comment = catalog.comment("method", route.service, route.method)
    service_short = route.service.rsplit(".", 1)[1]
    operation_id = f"{service_short}_{route.method}"
    if route.binding_index:
        operation_id += f"_{route.binding_index + 1}"
    op: Schema = {
        "operationId": operation_id,
        "tags": [service_short],
        "summary": comment.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".") if comment else "",
        "description": comment,
        "parameters": [],
        "responses": _responses(builder, route),
    }
    fields = {f.name: f for f in catalog.messages[route.input_type].field}
    for param in bound:
        top = param.split(".")[0]
        schema = builder.field_schema(route.input_type, fields[top]) if top in fields else {"type": "string"}
        op["parameters"].append({"name": param, "in": "path", "required": True, "schema": schema})
    if route.body == "*":
        op["requestBody"] = _request_body(
            builder.message_schema(route.input_type, skip=frozenset(p.split(".")[0] for p in bound))
        )
    elif route.body:
        op["requestBody"] = _request_body(builder.field_schema(route.input_type, fields[route.body]))
    if route.body != "*":
        for name, fld, owner in _query_fields(builder, route.input_type, "", frozenset()):
            if name in bound or name.split(".")[0] in {*bound, route.body}:
                continue
            schema = builder.field_schema(owner, fld)
            query: Schema = {"name": name, "in": "query", "schema": schema}
            if field_behavior_pb2.REQUIRED in _behaviors(fld):
                query["required"] = True
            op["parameters"].append(query)
    if route.service in PUBLIC_SERVICES:
        op["security"] = []
    if not op["parameters"]:
        del op["parameters"]
    return op


def _request_body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _responses(builder: _Builder, route: Route) -> Schema:
    if route.response_body:
        fields = {f.name: f for f in builder.catalog.messages[route.output_type].field}
        schema = builder.field_schema(route.output_type, fields[route.response_body])
    else:
        schema = builder.ref(route.output_type)
    return {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "default": {
            "description": "Error: the gRPC status, with the HTTP status mapped from its code.",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
        },
    }


def _status_schema() -> Schema:
    return {
        "type": "object",
        "description": "Error body (google.rpc.Status) returned by the gateway for non-OK gRPC statuses.",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "gRPC status code."},
            "message": {"type": "string", "description": "Developer-facing error message."},
            "details": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/google.protobuf.Any"},
                "description": "Structured error details.",
            },
        },
    }


def build(descriptor_set: bytes) -> Schema:
    """Return the OpenAPI document (a JSON-ready dict) for a serialized FileDescriptorSet."""
    catalog = Catalog.from_bytes(descriptor_set)
    builder = _Builder(catalog)
    paths: dict[str, Schema] = {}
    for route in routes(catalog):
        item = paths.setdefault(route.path, {})
        if route.verb in item:
            raise ValueError(f"duplicate route {route.verb.upper()} {route.path}")
        item[route.verb] = _operation(builder, route)
    schemas = dict(builder.schemas)
    schemas[ERROR_SCHEMA] = _status_schema()
    schemas["google.protobuf.Any"] = _WELL_KNOWN["google.protobuf.Any"]
    tags = [
        {"name": name.rsplit(".", 1)[1], "description": catalog.comment("service", name)}
        for name in sorted(catalog.services)
        if name.startswith(f"{PACKAGE}.")
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Orchid API",
            "version": "v1",
            "description": (
                "REST surface of Orchid (package orchid.v1), transcoded from gRPC by Envoy. "
                "JSON uses proto field names (snake_case); 64-bit integers are strings; enums are "
                "names; timestamps are RFC 3339. Every route except the health probes needs a "
                "bearer JWT that identifies the tenant (in development mode, AUTH_ENABLED=false, "
                "the X-Tenant-ID and X-User-ID headers instead)."
            ),
        },
        "tags": tags,
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def render(descriptor_set: bytes) -> str:
    """Return the OpenAPI document as deterministic JSON text (sorted keys, final newline)."""
    return json.dumps(build(descriptor_set), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    text = render(Path(argv[0]).read_bytes())
    if len(argv) == 2:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
