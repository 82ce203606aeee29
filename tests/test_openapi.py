"""The served ``/openapi.json`` describes exactly the contract and the server's real behaviour.

Rules covered (API.md, "Documentation served by the server", and the sections it documents):

- the document is a valid OpenAPI 3.1 document, served without authentication;
- each declared resource has exactly its five operations, and the server's ``Allow`` agrees;
- request and object schemas: required fields, ``maxLength`` from the declarations, string or
  null, no unknown fields, and these schemas accept exactly what the server accepts;
- the list envelope, the error object with every code, the bearer security scheme;
- examples are the published reference pages' values (except the timestamps and the e-mail
  address, which the pages mis-render);
- every status an operation really returns is documented, with its headers, and real response
  bodies validate against the documented schemas; Schemathesis finds no violation.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_spec
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from overplane.auth import keys
from overplane.declarations import RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.http.bodies import MAX_BODY_BYTES
from overplane.http.errors import ERROR_CODES
from overplane.http.openapi import query_names
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import sqlite_path
from overplane.validation.list_query import ListQueryParser
from tests.helpers import NO_LIMITS, Caller, Server, valid_body

JSONObject = dict[str, Any]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: Headers the contract names on some responses; when a response has one, it must be documented.
CONTRACT_HEADERS = (
    "request-id",
    "location",
    "www-authenticate",
    "retry-after",
    "etag",
    "idempotent-replayed",
)

#: Every character ``str.isspace`` (and so the server's notion of blank) counts as whitespace.
WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]

#: The five operations: (path suffix, method).
OPERATIONS = {
    "list": ("", "get"),
    "create": ("", "post"),
    "retrieve": ("/{id}", "get"),
    "update": ("/{id}", "patch"),
    "delete": ("/{id}", "delete"),
}

#: The values the published reference pages (API.md's seeds) show, transcribed verbatim.
PUBLISHED: dict[str, dict[str, JSONObject]] = {
    "party-link": {
        "object": {
            "id": "party-link_abc123",
            "created_at": "2024-01-15T09: 30: 00Z",
            "updated_at": "2024-01-15T09: 30: 00Z",
            "primary_role": "primary_role_example",
            "secondary_role": "secondary_role_example",
            "primary_party": "primary_party_example",
            "secondary_party": "secondary_party_example",
        },
        "create": {"primary_role": "primary_role_example"},
        "update": {
            "primary_role": "primary_role_example",
            "secondary_role": "secondary_role_example",
        },
        "deleted": {"id": "party-link_abc123", "deleted": True},
    },
    "appointment": {
        "object": {
            "id": "appointment_abc123",
            "created_at": "2024-01-15T09: 30: 00Z",
            "updated_at": "2024-01-15T09: 30: 00Z",
            "customer_name": "customer_name_example",
            "customer_phone_number": "customer_phone_number_example",
            "customer_skype": "customer_skype_example",
            "customer_details": "customer_details_example",
            "scheduled_time": "scheduled_time_example",
            "status": "draft",
            "calendar_event": "calendar_event_example",
            "customer_email": "[email protected]",
            "appointment_with": "appointment_with_example",
            "party": "party_example",
        },
        "create": {
            "customer_name": "customer_name_example",
            "scheduled_time": "scheduled_time_example",
            "status": "draft",
            "customer_email": "[email protected]",
        },
        "update": {
            "customer_name": "customer_name_example",
            "customer_phone_number": "customer_phone_number_example",
        },
        "deleted": {"id": "appointment_abc123", "deleted": True},
    },
}
#: Keys whose values the pages mis-render (API.md): compared for shape, not for equality.
MISRENDERED = ("created_at", "updated_at", "customer_email")


# --- helpers -----------------------------------------------------------------------------------


def resolve(document: JSONObject, node: JSONObject) -> JSONObject:
    """``node`` with local ``$ref``s followed."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(document: JSONObject, resource: Resource, name: str) -> JSONObject:
    suffix, method = OPERATIONS[name]
    found: JSONObject = document["paths"][resource.path + suffix][method]
    return found


def response_schema(op: JSONObject, status: str) -> JSONObject:
    schema: JSONObject = op["responses"][status]["content"]["application/json"]["schema"]
    return schema


def request_schema(document: JSONObject, op: JSONObject) -> JSONObject:
    return resolve(document, op["requestBody"]["content"]["application/json"]["schema"])


def rust_validator(document: JSONObject, schema: JSONObject) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator (ECMA-style regexes, formats checked) for ``schema``."""
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )


def python_validator(document: JSONObject, schema: JSONObject) -> Any:
    """The OpenAPI 3.1 dialect's validator (Python regexes) for ``schema``."""
    return OAS31Validator({**schema, "components": document["components"]})


def schema_errors(document: JSONObject, schema: JSONObject, instance: object) -> list[str]:
    return [str(e) for e in rust_validator(document, schema).iter_errors(instance)]


def without_misrendered(value: JSONObject) -> JSONObject:
    return {k: v for k, v in value.items() if k not in MISRENDERED}


def assert_documented(
    document: JSONObject, template: str, method: str, response: httpx.Response
) -> None:
    """``response`` is documented for the operation: status, media type, body schema, headers."""
    where = f"{method.upper()} {template} -> {response.status_code}"
    responses = document["paths"][template][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{where}: status not documented"
    documented = responses[status]
    if "content" not in documented:  # 304: no body, by design
        assert response.content == b"", f"{where}: a body where none is documented"
        return
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type in documented["content"], f"{where}: {media_type} not documented"
    schema = documented["content"][media_type]["schema"]
    errors = schema_errors(document, schema, response.json())
    assert not errors, f"{where}: body violates the documented schema: {errors}"
    headers = {
        name.lower(): resolve(document, h) for name, h in documented.get("headers", {}).items()
    }
    for name in CONTRACT_HEADERS:
        if name in response.headers:
            assert name in headers, f"{where}: header {name} not documented"
    for name, header in headers.items():
        if header.get("required"):
            assert name in response.headers, f"{where}: documented header {name} missing"
        if name in response.headers:
            value: object = response.headers[name]
            if header["schema"].get("type") == "integer":
                value = int(response.headers[name])
            errors = schema_errors(document, header["schema"], value)
            assert not errors, f"{where}: header {name} violates its schema: {errors}"


@pytest.fixture
def document(server: Server) -> JSONObject:
    """The document as the server serves it (without authentication)."""
    response = server.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    served: JSONObject = response.json()
    return served


# --- the document itself -----------------------------------------------------------------------


def test_document_is_valid_openapi_3_1_served_without_auth(server: Server) -> None:
    """GET /openapi.json needs no key and returns a valid OpenAPI 3.1 document."""
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["request-id"].startswith("req_")
    served = response.json()
    assert served["openapi"].startswith("3.1.")
    validate_spec(served, cls=OpenAPIV31SpecValidator)


def test_the_document_has_exactly_the_routes_the_server_serves(
    server: Server, document: JSONObject
) -> None:
    """The /api paths and methods of the document are exactly those the router serves: each
    resource's five operations, the events, the webhook endpoints and their actions."""
    router = server.app.api
    served = {path: set(d.handlers) for path, d in router.collections.items()}
    served |= {f"{path}/{{id}}": set(d.handlers) for path, d in router.objects.items()}
    served |= {f"{p}/{{id}}/{action}": set(d.handlers) for (p, action), d in router.actions.items()}
    api_paths = {p: item for p, item in document["paths"].items() if p.startswith("/api/")}
    documented = {
        p: {m.upper() for m in item if m in HTTP_METHODS} for p, item in api_paths.items()
    }
    assert documented == served
    for resource in RESOURCES:
        assert served[resource.path] == {"GET", "POST"}
        assert served[resource.path + "/{id}"] == {"GET", "PATCH", "DELETE"}
    operation_ids = [
        op["operationId"]
        for item in document["paths"].values()
        for m, op in item.items()
        if m in HTTP_METHODS and "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


def test_unsupported_methods_get_405_allowing_the_documented_methods(
    api: Caller, document: JSONObject
) -> None:
    """A method a path does not document is 405 with an Allow listing the documented ones."""
    error_schema = {"$ref": "#/components/schemas/Error"}
    for template, item in document["paths"].items():
        if not template.startswith("/api/"):
            continue
        path = template.replace("{id}", "x")
        documented = {m.upper() for m in item if m in HTTP_METHODS}
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
            response = api.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.json()["error"]["code"] == "method_not_allowed"
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed - {"HEAD"} == documented, (method, path)
            assert not schema_errors(document, error_schema, response.json())


def test_object_and_request_schemas_follow_the_declarations(
    document: JSONObject, resource: Resource
) -> None:
    """Create requires exactly the required fields; every field is a string (or null where it
    may be) of at most its declared max_length; unknown fields are not allowed."""
    obj = resolve(document, response_schema(operation(document, resource, "retrieve"), "200"))
    create = request_schema(document, operation(document, resource, "create"))
    update = request_schema(document, operation(document, resource, "update"))
    names = [f.name for f in resource.fields]

    assert list(obj["properties"]) == ["id", "created_at", "updated_at", *names]
    assert obj["required"] == ["id", "created_at", "updated_at", *names]
    assert create["required"] == [f.name for f in resource.required_fields]
    assert not update.get("required")
    for schema in (obj, create, update):
        assert schema["additionalProperties"] is False
        for f in resource.fields:
            assert schema["properties"][f.name]["maxLength"] == f.max_length, f.name
    for f in resource.fields:
        assert obj["properties"][f.name]["type"] == ["string", "null"]
        for schema in (create, update):
            expected = "string" if f.required else ["string", "null"]
            assert schema["properties"][f.name]["type"] == expected, f.name


def test_list_envelope_and_parameters(document: JSONObject, resource: Resource) -> None:
    """The list returns {data, has_more, total}; limit is 1-100 (default 20), offset >= 0; every
    parameter the server takes (page, cursors, filters) is documented, and no other."""
    op = operation(document, resource, "list")
    envelope = resolve(document, response_schema(op, "200"))
    obj = response_schema(operation(document, resource, "retrieve"), "200")
    assert envelope["required"] == ["data", "has_more", "total"]
    assert envelope["properties"]["data"] == {"type": "array", "items": obj}
    assert envelope["properties"]["has_more"]["type"] == "boolean"
    assert envelope["properties"]["total"]["type"] == "integer"
    parameters = {p["name"]: p for p in op["parameters"]}
    names = query_names(op["parameters"])
    assert sorted(names) == sorted(ListQueryParser(resource).parameter_names())
    assert all(p["in"] == "query" and not p.get("required") for p in parameters.values())
    # Filters with operators are deepObject parameters, never bracketed names.
    assert not [name for name in parameters if "[" in name]
    ranged = parameters["created_at"]
    assert (ranged["style"], ranged["explode"]) == ("deepObject", True)
    assert list(ranged["schema"]["properties"]) == ["gt", "gte", "lt", "lte"]
    limit, offset = parameters["limit"]["schema"], parameters["offset"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        1,
        100,
        20,
    )
    assert (offset["type"], offset["minimum"], offset["default"]) == ("integer", 0, 0)


def test_error_schema_lists_every_error_code(document: JSONObject) -> None:
    """The Error object lists every code (as examples of an open string) and enumerates every
    type in ERROR_CODES; every error response of every operation uses it."""
    error = document["components"]["schemas"]["Error"]
    inner = error["properties"]["error"]
    assert error["required"] == ["error"]
    assert set(inner["required"]) == {"type", "code", "message", "request_id"}
    # code is an open string (a code added later must not break generated clients); the
    # known codes are its examples and are named in its description.
    code = inner["properties"]["code"]
    assert code["type"] == "string"
    assert "enum" not in code
    assert set(code["examples"]) == {code for _, _, code in ERROR_CODES}
    assert all(c in code["description"] for _, _, c in ERROR_CODES)
    assert set(inner["properties"]["type"]["enum"]) == {kind for _, kind, _ in ERROR_CODES}
    for template, item in document["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (template, status)


def test_bearer_security_scheme(server: Server, document: JSONObject) -> None:
    """Every /api operation requires the bearer scheme; the health checks require nothing."""
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearerAuth": schemes["bearerAuth"]}
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    for template, item in document["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            if template.startswith("/api/"):
                assert "security" not in op, (template, method)  # inherits bearerAuth
                assert "401" in op["responses"], (template, method)
            else:
                assert op["security"] == [], (template, method)
                response = server.client.request(method, template)
                assert response.status_code == 200, (template, response.text)
                assert_documented(document, template, method, response)


# --- examples ----------------------------------------------------------------------------------


def test_examples_are_the_published_pages_values(document: JSONObject, resource: Resource) -> None:
    """Object, list, request and deletion examples equal the published pages' examples (except
    the mis-rendered timestamps and e-mail), and are valid against their own schemas."""
    page = PUBLISHED[resource.name]
    retrieve = operation(document, resource, "retrieve")
    object_schema = response_schema(retrieve, "200")
    obj = resolve(document, object_schema)

    def example(name: str, status: str) -> Any:
        return operation(document, resource, name)["responses"][status]["content"][
            "application/json"
        ]["example"]

    listed = example("list", "200")
    assert listed["has_more"] is False
    assert listed["total"] == 1
    assert len(listed["data"]) == 1
    object_examples = [
        obj["example"],
        example("retrieve", "200"),
        example("create", "201"),
        example("update", "200"),
        listed["data"][0],
    ]
    for value in object_examples:
        assert list(value) == list(page["object"])
        assert without_misrendered(value) == without_misrendered(page["object"])
        assert TIMESTAMP.match(value["created_at"])
        assert TIMESTAMP.match(value["updated_at"])
        assert not schema_errors(document, object_schema, value)
    for f in resource.fields:
        if f.name not in MISRENDERED:
            assert obj["properties"][f.name]["example"] == page["object"][f.name], f.name

    for name, key in (("create", "create"), ("update", "update")):
        op = operation(document, resource, name)
        value = op["requestBody"]["content"]["application/json"]["example"]
        assert list(value) == list(page[key])
        assert without_misrendered(value) == without_misrendered(page[key])
        assert not schema_errors(document, request_schema(document, op), value)
    assert example("delete", "200") == page["deleted"]

    emails = [v["customer_email"] for v in object_examples if "customer_email" in v]
    for email in emails:  # the page's obfuscated text replaced by a real-looking address
        assert re.fullmatch(r"[^@\s\[\]]+@[^@\s\[\]]+\.[a-z]+", email), email


# --- the document against real behaviour -------------------------------------------------------


def test_real_responses_are_documented_and_match_their_schemas(
    server: Server, api: Caller, document: JSONObject, resource: Resource
) -> None:
    """Each operation's real 2xx, 304, 400, 401, 404, 412, 413, 415 and 422 responses are
    documented for it, with their headers, and their bodies validate against the documented
    schemas."""
    collection, item = resource.path, resource.path + "/{id}"
    json_type = {"Content-Type": "application/json"}
    too_large = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    created = api.post(collection, json=valid_body(resource))
    path = f"{collection}/{created.json()['id']}"
    missing = f"{collection}/{resource.id_prefix}0000000000000000000000000"
    first = {"Idempotency-Key": secrets.token_hex(8)}
    assert api.post(collection, json=valid_body(resource), headers=first).status_code == 201
    stale = {"If-Match": '"1"'}
    calls: list[tuple[str, str, int, Callable[[], httpx.Response]]] = [
        (collection, "post", 201, lambda: created),
        (collection, "post", 201, lambda: api.post(collection, json=valid_body(resource), headers=first)),
        (collection, "post", 422, lambda: api.post(collection, json={}, headers=first)),
        (collection, "post", 400, lambda: api.post(collection, json={})),
        (collection, "post", 400, lambda: api.post(collection, content=b"[]", headers=json_type)),
        (collection, "post", 413, lambda: api.post(collection, content=too_large, headers=json_type)),
        (collection, "post", 415, lambda: api.post(collection, content=b"{}", headers={"Content-Type": "text/plain"})),
        (collection, "get", 200, lambda: api.get(collection)),
        (collection, "get", 400, lambda: api.get(collection, params={"limit": "0"})),
        (item, "get", 200, lambda: api.get(path)),
        (item, "get", 304, lambda: api.get(path, headers={"If-None-Match": created.headers["etag"]})),
        (item, "get", 400, lambda: api.get(path, params={"expand": "x"})),
        (item, "get", 404, lambda: api.get(missing)),
        (item, "patch", 200, lambda: api.patch(path, json={})),
        (item, "patch", 412, lambda: api.patch(path, json={}, headers=stale)),
        (item, "patch", 400, lambda: api.patch(path, json={"no_such_field": "x"})),
        (item, "patch", 404, lambda: api.patch(missing, json={})),
        (item, "patch", 413, lambda: api.patch(path, content=too_large, headers=json_type)),
        (item, "patch", 415, lambda: api.patch(path, content=b"{}", headers={"Content-Type": "text/xml"})),
        (item, "delete", 400, lambda: api.delete(path, params={"force": "true"})),
        (item, "delete", 412, lambda: api.delete(path, headers=stale)),
        (item, "delete", 200, lambda: api.delete(path)),
        (item, "delete", 404, lambda: api.delete(path)),
    ]  # fmt: skip
    bad_key = {"Authorization": "Bearer sk_test_" + "0" * 40}
    for template, method in [(collection, "get"), (collection, "post")] + [
        (item, m) for m in ("get", "patch", "delete")
    ]:
        concrete = template.replace("{id}", "x")
        calls.append((template, method, 401, partial(server.client.request, method, concrete)))
        calls.append(
            (
                template,
                method,
                401,
                partial(server.client.request, method, concrete, headers=bad_key),
            )
        )

    for template, method, status, call in calls:
        response = call()
        assert response.status_code == status, (method, template, response.text)
        assert_documented(document, template, method, response)


def test_database_unavailable_is_a_documented_503(tmp_sqlite_url: str) -> None:
    """When the database cannot take a write, create answers the documented 503 with Retry-After."""
    migrate.upgrade(tmp_sqlite_url)
    app = OverplaneApp(
        Settings(
            database_url=tmp_sqlite_url, access_log=False, sqlite_busy_timeout_ms=50, **NO_LIMITS
        )
    )
    resource = RESOURCES[0]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        assert app.db is not None
        client.portal.call(keys.create_account, app.db, "locked")
        _, secret = client.portal.call(keys.create_key, app.db, "locked", "test")
        served = client.get("/openapi.json").json()
        with closing(sqlite3.connect(sqlite_path(tmp_sqlite_url))) as locker:
            locker.isolation_level = None
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            response = client.post(
                resource.path,
                json=valid_body(resource),
                headers={"Authorization": f"Bearer {secret}"},
            )
            locker.execute("ROLLBACK")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert_documented(served, resource.path, "post", response)


def probes(resource: Resource, partial: bool) -> Iterator[tuple[str, JSONObject]]:
    """Bodies at the edges of the field rules, each with a label."""
    required = resource.required_fields[0]
    optional = next(f for f in resource.fields if not f.required)
    base: JSONObject = {} if partial else valid_body(resource)
    values: list[object] = [*WHITESPACE, "\ufeff", "\u200b", "x", " x ", "\x00", "x\x00", ""]
    for value in [*values, None, 5, True]:
        yield f"{required.name}={value!r}", {**base, required.name: value}
    for value in ["", " ", "\ufeff", "x\x00", None, 5, ["x"]]:
        yield f"{optional.name}={value!r}", {**base, optional.name: value}
    for f in resource.fields:
        yield f"{f.name} at max_length", {**base, f.name: "é" * f.max_length}
        yield f"{f.name} over max_length", {**base, f.name: "é" * (f.max_length + 1)}
    yield "unknown field", {**base, f"{required.name}_typo": "x"}
    yield "read-only keys", {**base, "id": 5, "created_at": None, "updated_at": "x"}


@pytest.mark.parametrize("name", ["create", "update"])
def test_request_schemas_accept_exactly_what_the_server_accepts(
    api: Caller, document: JSONObject, resource: Resource, name: str
) -> None:
    """For bodies at the edges of the rules (blank strings in every whitespace, NUL, lengths at
    and over max_length, null, wrong types, unknown and read-only keys), the documented request
    schema is valid exactly when the server accepts the body, under both ECMA-style (Rust) and
    Python regular expressions."""
    schema = request_schema(document, operation(document, resource, name))
    rust, python = rust_validator(document, schema), python_validator(document, schema)
    path = api.post(resource.path, json=valid_body(resource)).headers["location"]
    disagreements = []
    for label, body in probes(resource, partial=name == "update"):
        if name == "create":
            response = api.post(resource.path, json=body)
        else:
            response = api.patch(path, json=body)
        accepted = response.status_code in (200, 201)
        assert accepted or response.status_code == 400, (label, response.text)
        verdicts = {"rust": rust.is_valid(body), "python": bool(python.is_valid(body))}
        if any(v != accepted for v in verdicts.values()):
            disagreements.append(f"{label}: server accepted={accepted}, schema valid={verdicts}")
    assert not disagreements, "\n".join(disagreements)


# --- Schemathesis ------------------------------------------------------------------------------

SCHEMATHESIS_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
SCHEMATHESIS_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: Cases per operation and mode: enough to cover each schema's shapes, small enough to be quick
#: (invalid strings over a 65,535-character maxLength are slow to generate).
SCHEMATHESIS_EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 5}


def send(client: TestClient, case: Case[Any], key: str) -> httpx.Response:
    """Send a Schemathesis case through the test client with ``key``."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    unexpected = set(kwargs) - {"method", "url", "headers", "params", "cookies", "json", "data"}
    assert not unexpected, f"unsupported transport arguments: {unexpected}"
    # A header value is bytes on the wire, and httpx sends only ASCII; a generated value
    # beyond it (an If-None-Match of emoji) cannot be sent this way, so it is left out.
    headers = {
        name: value for name, value in (kwargs.get("headers") or {}).items() if str(value).isascii()
    }
    headers["Authorization"] = f"Bearer {key}"
    content: bytes | None = None
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data.encode() if isinstance(data, str) else bytes(data)
    response: httpx.Response = client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=headers,
        content=content,
    )
    return response


def run_schemathesis(
    server: Server,
    api: Caller,
    op: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    make_id: Callable[[], str] | None,
) -> int:
    """Run one operation's generated cases in ``mode``; the number of cases sent.

    ``make_id`` makes a real object (or event) of the operation's path and returns its id."""
    sent = 0

    @settings(SCHEMATHESIS_SETTINGS, max_examples=SCHEMATHESIS_EXAMPLES[mode])
    @given(case=op.as_strategy(generation_mode=mode), real_id=st.booleans())
    def check(case: Case[Any], real_id: bool) -> None:
        nonlocal sent
        if real_id and make_id is not None and case.path_parameters is not None:
            case.path_parameters["id"] = make_id()
        if mode is GenerationMode.POSITIVE and case.headers:
            # A key seen before with another body is a 422 and a tag that is not the object's
            # current one a 412, by design: give each valid case a fresh key and If-Match: *.
            if "Idempotency-Key" in case.headers:
                case.headers["Idempotency-Key"] = secrets.token_hex(16)
            if "If-Match" in case.headers:
                case.headers["If-Match"] = "*"
        if (
            mode is GenerationMode.POSITIVE
            and isinstance(case.body, dict)
            and "/webhook" in op.path
        ):
            # Rules OpenAPI cannot state: the URL must be public (no DNS here: any name under
            # example.com passes) and each enabled_events pattern must match an event type.
            if "url" in case.body:
                case.body["url"] = "https://hooks.example.com/overplane"
            if "enabled_events" in case.body:
                case.body["enabled_events"] = ["*"]
        cursors = [n for n in ("starting_after", "ending_before") if n in (case.query or {})]
        if mode is GenerationMode.POSITIVE and cursors and op.path.endswith("/attempts"):
            # An attempt exists only once a delivery was tried (test_webhooks.py pages them).
            assert case.query is not None
            for cursor in cursors:
                case.query.pop(cursor)
        elif mode is GenerationMode.POSITIVE and cursors and make_id is not None:
            # Rules OpenAPI cannot state: a cursor names an existing object of the account,
            # and goes with neither the other cursor nor a non-zero offset (docs/api.md).
            assert case.query is not None
            case.query[cursors[0]] = make_id()
            for name in ("offset", *cursors[1:]):
                case.query.pop(name, None)
        response = send(server.client, case, api.key)
        case.validate_response(response, checks=SCHEMATHESIS_CHECKS)
        sent += 1

    check()
    return sent


@pytest.mark.slow
def test_schemathesis_finds_no_violations(
    server: Server, api: Caller, document: JSONObject
) -> None:
    """Schemathesis-generated requests (valid ones, and invalid ones where a body or query can be
    invalid) get no 5xx, only documented statuses, content types and headers, bodies matching
    the documented schemas, 2xx for valid data and 4xx for invalid data. Object operations get
    a real object's id about half of the time."""
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(with_security_parameters=False)  # we send a real key

    def object_maker(resource: Resource) -> Callable[[], str]:
        return lambda: str(api.post(resource.path, json=valid_body(resource)).json()["id"])

    def make_event() -> str:
        object_maker(RESOURCES[0])()  # its event is now the newest
        return str(api.get("/api/events", params={"limit": "1"}).json()["data"][0]["id"])

    def make_endpoint() -> str:
        body = {"url": "https://hooks.example.com/x", "enabled_events": ["*"]}
        return str(api.post("/api/webhook-endpoints", json=body).json()["id"])

    def make_feed() -> str:
        return str(api.post("/api/crm/calendar-feeds", json={}).json()["id"])

    makers = {r.path: object_maker(r) for r in RESOURCES} | {
        "/api/events": make_event,
        "/api/webhook-endpoints": make_endpoint,
        "/api/crm/calendar-feeds": make_feed,
    }
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        op = result.ok()
        collection = op.path.split("/{id}")[0]
        make_id = makers.get(collection)
        modes = [GenerationMode.POSITIVE]
        if op.method in ("post", "patch") or (make_id is not None and op.path == collection):
            modes.append(GenerationMode.NEGATIVE)  # only these have a body or query to break
        for mode in modes:
            count = run_schemathesis(server, api, op, mode, make_id)
            if make_id is not None:
                sent[f"{op.method.upper()} {op.path} {mode.value}"] = count
                assert count * 2 >= SCHEMATHESIS_EXAMPLES[mode], (op.label, mode, count)
    # Every /api operation ran: positive, and negative where a body or query can be broken.
    operations = [
        (path, method)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in HTTP_METHODS
    ]
    negative = [
        (p, m) for p, m in operations if m in ("post", "patch") or (m == "get" and "{id}" not in p)
    ]
    assert len(sent) == len(operations) + len(negative), sent
