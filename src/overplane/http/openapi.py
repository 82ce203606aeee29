"""The OpenAPI 3.1 document, derived from the same declarations as the routes.

Schemas carry the same rules the validator enforces (required, maxLength, string-or-null, no
unknown fields), and every operation lists every status it can return, with the error object.
``tests/test_openapi.py`` checks the document against the running server's behaviour.
"""

from __future__ import annotations

from typing import Any

from overplane import __version__
from overplane.declarations import RESOURCES, Resource
from overplane.http.errors import ERROR_CODES
from overplane.validation.list_query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RANGE_OPERATORS,
    EventQueryParser,
    ListQueryParser,
)

JSONObject = dict[str, Any]

#: Strings may not hold NUL: PostgreSQL cannot store it, so neither backend accepts it.
NO_NUL = "^[^\\u0000]*$"
#: What a required string may not consist of only: exactly the characters ``str.strip()``
#: removes (``str.isspace``). Spelled out, because ``\\s`` means different sets in different
#: regex dialects (ECMA-262's adds U+FEFF and lacks U+001C-U+001F and U+0085).
BLANK = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
#: A required string must hold a non-blank character (and no NUL).
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{BLANK}][^\\u0000]*$"

_ERROR_DESCRIPTIONS = {
    400: "The request is invalid: a parameter is missing, unknown or malformed, or the body is "
    "not a JSON object.",
    401: "No valid API key was provided.",
    404: "No object with that id exists for this account and mode.",
    413: "The request body is larger than 1 MiB.",
    409: "A request with the same Idempotency-Key is still running; retry shortly.",
    412: "If-Match names a version the object no longer has; nothing was changed.",
    415: "The body is not sent as application/json.",
    422: "The Idempotency-Key was first used with a different method, path or body.",
    429: "Too many requests: the key's budget is spent, or this address failed authentication "
    "too often; retry after the Retry-After delay.",
    500: "An unexpected error on the server.",
    503: "The database is unavailable; retry after the Retry-After delay.",
}


def _ref(name: str) -> JSONObject:
    return {"$ref": f"#/components/schemas/{name}"}


#: Headers the contract requires on some errors, besides Request-Id on every response.
_ERROR_HEADERS: dict[int, JSONObject] = {
    401: {
        "WWW-Authenticate": {
            "description": "Always `Bearer`: how to authenticate.",
            "required": True,
            "schema": {"type": "string", "const": "Bearer"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Whole seconds until a request can pass again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
        "RateLimit-Limit": {
            "description": "The bucket's size: the most requests the key (or, after failed "
            "authentications, the address) may send at once. Every /api response that took a "
            "token carries the three RateLimit headers (docs/limits.md).",
            "schema": {"type": "integer", "minimum": 1},
        },
        "RateLimit-Remaining": {
            "description": "Whole tokens left: 0 here.",
            "schema": {"type": "integer", "minimum": 0},
        },
        "RateLimit-Reset": {
            "description": "Seconds until the bucket is full again.",
            "schema": {"type": "integer", "minimum": 0},
        },
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _error_response(status: int) -> JSONObject:
    codes = [code for s, _, code in ERROR_CODES if s == status and code != "route_missing"]
    return {
        "description": f"{_ERROR_DESCRIPTIONS[status]} Codes: {', '.join(codes)}.",
        "headers": {
            "Request-Id": {"$ref": "#/components/headers/Request-Id"},
            **_ERROR_HEADERS.get(status, {}),
        },
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _success(description: str, schema: JSONObject, example: object, **extra: Any) -> JSONObject:
    headers = {"Request-Id": {"$ref": "#/components/headers/Request-Id"}}
    headers |= extra.pop("headers", {})
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _string_schema(resource: Resource, name: str, *, nullable: bool) -> JSONObject:
    field = resource.fields_by_name[name]
    schema: JSONObject = {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": field.max_length,
        "description": field.description,
        "example": field.example,
    }
    schema["pattern"] = NO_NUL if nullable else NOT_BLANK
    return schema


def _schemas(resource: Resource) -> dict[str, JSONObject]:
    title = resource.title.replace(" ", "")
    read_only: JSONObject = {
        "id": {"description": "Ignored when sent: the server assigns ids."},
        "created_at": {"description": "Ignored when sent."},
        "updated_at": {"description": "Ignored when sent."},
    }
    obj_properties: JSONObject = {
        "id": {
            "type": "string",
            "pattern": f"^{resource.id_prefix}",
            "example": f"{resource.id_prefix}abc123",
        },
        "created_at": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, UTC, milliseconds.",
        },
        "updated_at": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, UTC, milliseconds; moves forward on every update.",
        },
    }
    for f in resource.fields:
        obj_properties[f.name] = {**_string_schema(resource, f.name, nullable=True)}
        obj_properties[f.name].pop("pattern")
    create_properties = dict(read_only)
    update_properties = dict(read_only)
    for f in resource.fields:
        create_properties[f.name] = _string_schema(resource, f.name, nullable=not f.required)
        update_properties[f.name] = _string_schema(resource, f.name, nullable=not f.required)
    return {
        title: {
            "type": "object",
            "description": resource.description,
            "properties": obj_properties,
            "required": list(obj_properties),
            "additionalProperties": False,
            "example": resource.example,
        },
        f"{title}CreateRequest": {
            "type": "object",
            "properties": create_properties,
            "required": [f.name for f in resource.required_fields],
            "additionalProperties": False,
        },
        f"{title}UpdateRequest": {
            "type": "object",
            "description": "Fields not sent are left unchanged; null clears an optional field.",
            "properties": update_properties,
            "additionalProperties": False,
        },
        f"{title}List": {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": _ref(title)},
                "has_more": {"type": "boolean", "description": "offset + len(data) < total"},
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Every object the caller can see.",
                },
            },
            "required": ["data", "has_more", "total"],
            "additionalProperties": False,
        },
    }


_RANGE_WORDS = {"gt": "after", "gte": "at or after", "lt": "before", "lte": "at or before"}


def _id_parameter(noun: str) -> JSONObject:
    """The ``{id}`` of an object path, naming what it identifies."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The identifier of the {noun}.",
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: JSONObject) -> JSONObject:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _page_parameters(name: str, noun: str = "objects") -> list[JSONObject]:
    """The paging parameters every list takes; ``name`` is what a cursor names."""
    return [
        _query(
            "limit",
            f"Maximum number of {noun} to return. Default: {DEFAULT_LIMIT}.",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        ),
        _query(
            "offset",
            f"Number of {noun} to skip for pagination. Default: 0. Not with a cursor.",
            {"type": "integer", "minimum": 0, "default": 0},
        ),
        _query(
            "starting_after",
            f"A cursor: the id of a {name}; the page holds the {noun} after it in list order "
            "(older). has_more says whether more follow in that direction.",
            {"type": "string"},
        ),
        _query(
            "ending_before",
            f"A cursor: the id of a {name}; the page holds the {noun} before it in list order "
            "(newer). has_more says whether more precede it.",
            {"type": "string"},
        ),
    ]


def _range_properties(noun: str, field_name: str, note: str = "") -> JSONObject:
    """The operators of a range filter on ``field_name``, as an object's properties."""
    return {
        operator: {
            "type": "string",
            "format": "date-time",
            "description": f"Only {noun} whose {field_name} is {_RANGE_WORDS[operator]} this "
            f"RFC 3339 date-time.{note}",
        }
        for operator in RANGE_OPERATORS
    }


def _filter_parameter(
    name: str, description: str, operators: JSONObject, equality: JSONObject | None = None
) -> JSONObject:
    """One filter: ``name=value`` (when ``equality`` is given) and ``name[op]=value`` for each
    of ``operators``, declared as one ``deepObject`` parameter (as Stripe's document declares
    ``created``), so that generated clients take ``scheduled_time={"gte": …}`` rather than
    inventing names like ``scheduled_timegte`` for each bracketed parameter."""
    operators_schema: JSONObject = {
        "type": "object",
        "properties": operators,
        "additionalProperties": False,
    }
    schema = operators_schema if equality is None else {"anyOf": [equality, operators_schema]}
    return {
        "name": name,
        "in": "query",
        "description": description,
        "style": "deepObject",
        "explode": True,
        "schema": schema,
    }


def query_names(parameters: list[JSONObject]) -> list[str]:
    """The query parameter names ``parameters`` stand for: a deepObject filter's name (if it
    also takes a plain value) and ``name[op]`` for each of its operators."""
    names: list[str] = []
    for parameter in parameters:
        if parameter.get("style") != "deepObject":
            names.append(parameter["name"])
            continue
        schema = parameter["schema"]
        alternatives = schema.get("anyOf", [schema])
        for alternative in alternatives:
            if alternative.get("type") == "object":
                names += [f"{parameter['name']}[{op}]" for op in alternative["properties"]]
            else:
                names.append(parameter["name"])
    return names


def _list_parameters(resource: Resource) -> list[JSONObject]:
    """Every query parameter of a list: the page parameters, one filter per filterable field
    (equality, ``[null]`` and, on time fields, ranges), then created_at and updated_at."""
    parameters = _page_parameters(resource.title.lower())
    noun = resource.plural
    not_dates = " Values that are not RFC 3339 date-times never match a range."
    for field in resource.filterable_fields:
        operators: JSONObject = {
            "null": {
                "type": "string",
                "enum": ["true", "false"],
                "description": f"true: only {noun} without a {field.name}; false: only those "
                "with one.",
            }
        }
        if field.time_range:
            operators |= _range_properties(noun, field.name, not_dates)
        parameters.append(
            _filter_parameter(
                field.name,
                f"`{field.name}=<value>`: only {noun} whose {field.name} is exactly this value; "
                f"or operators: `{field.name}[{']=…`, `'.join(operators)}]=…`"
                f"{' (ranges on its RFC 3339 values)' if field.time_range else ''}.",
                operators,
                equality={"type": "string", "pattern": NO_NUL},
            )
        )
    for field_name in ("created_at", "updated_at"):
        parameters.append(
            _filter_parameter(
                field_name,
                f"A range of {field_name}: `{field_name}[gte]=2024-01-15T00:00:00Z`, with gt, "
                "gte, lt or lte.",
                _range_properties(noun, field_name),
            )
        )
    documented = query_names(parameters)
    expected = ListQueryParser(resource).parameter_names()
    assert sorted(documented) == sorted(expected), "OpenAPI and parser disagree"
    assert len(set(documented)) == len(documented), "a query parameter documented twice"
    return parameters


def _paths(resource: Resource) -> dict[str, JSONObject]:
    title = resource.title.replace(" ", "")
    name = resource.title.lower()
    tag = [resource.title]
    create_example = {f.name: f.example for f in resource.required_fields}
    update_example = {f.name: f.example for f in resource.fields[:2]}
    id_parameter = _id_parameter(name)
    errors = {str(s): _error_response(s) for s in (400, 401, 429, 500, 503)}
    with_404 = errors | {"404": _error_response(404)}
    with_body = {"413": _error_response(413), "415": _error_response(415)}
    idempotent = {"409": _error_response(409), "422": _error_response(422)}
    conditional = {"412": _error_response(412)}
    idempotency_key = {"$ref": "#/components/parameters/Idempotency-Key"}
    if_match = {"$ref": "#/components/parameters/If-Match"}
    versioned = {"ETag": {"$ref": "#/components/headers/ETag"}}
    replayable = {"Idempotent-Replayed": {"$ref": "#/components/headers/Idempotent-Replayed"}}
    return {
        resource.path: {
            "get": {
                "operationId": f"list{title}s",
                "summary": f"List all {resource.plural}",
                "description": f"Returns a list of {resource.plural}, most recently created first.",
                "tags": tag,
                "parameters": _list_parameters(resource),
                "responses": {
                    "200": _success(
                        f"A page of {resource.plural}.",
                        _ref(f"{title}List"),
                        {"data": [resource.example], "has_more": False, "total": 1},
                    ),
                    **errors,
                },
            },
            "post": {
                "operationId": f"create{title}",
                "summary": f"Create a {name}",
                "tags": tag,
                "parameters": [idempotency_key],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref(f"{title}CreateRequest"),
                            "example": create_example,
                        }
                    },
                },
                "responses": {
                    "201": _success(
                        f"The new {name}.",
                        _ref(title),
                        resource.example,
                        headers={
                            "Location": {
                                "description": "The path of the new object.",
                                "required": True,
                                "schema": {"type": "string"},
                            },
                            **versioned,
                            **replayable,
                        },
                    ),
                    **errors,
                    **with_body,
                    **idempotent,
                },
            },
        },
        resource.path + "/{id}": {
            "parameters": [id_parameter],
            "get": {
                "operationId": f"retrieve{title}",
                "summary": f"Retrieve a {name}",
                "tags": tag,
                "parameters": [{"$ref": "#/components/parameters/If-None-Match"}],
                "responses": {
                    "200": _success(
                        f"The {name}.", _ref(title), resource.example, headers=versioned
                    ),
                    "304": {
                        "description": "Not modified: If-None-Match names the current version.",
                        "headers": {
                            "Request-Id": {"$ref": "#/components/headers/Request-Id"},
                            **versioned,
                        },
                    },
                    **with_404,
                },
            },
            "patch": {
                "operationId": f"update{title}",
                "summary": f"Update a {name}",
                "description": "Sets the fields sent; fields not sent are left unchanged.",
                "tags": tag,
                "parameters": [idempotency_key, if_match],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref(f"{title}UpdateRequest"),
                            "example": update_example,
                        }
                    },
                },
                "responses": {
                    "200": _success(
                        f"The updated {name}.",
                        _ref(title),
                        resource.example,
                        headers=versioned | replayable,
                    ),
                    **with_404,
                    **with_body,
                    **idempotent,
                    **conditional,
                },
            },
            "delete": {
                "operationId": f"delete{title}",
                "summary": f"Delete a {name}",
                "description": "Permanently deletes the object. This cannot be undone.",
                "tags": tag,
                "parameters": [idempotency_key, if_match],
                "responses": {
                    "200": _success(
                        "Confirmation of the deletion.",
                        _ref("Deleted"),
                        {"id": f"{resource.id_prefix}abc123", "deleted": True},
                        headers=replayable,
                    ),
                    **with_404,
                    **idempotent,
                    **conditional,
                },
            },
        },
    }


def _event_types() -> list[str]:
    return [t for r in RESOURCES for t in r.event_types]


def _event_schemas() -> dict[str, JSONObject]:
    """One event schema per resource (its three types), and the list of any events."""
    schemas: dict[str, JSONObject] = {}
    for resource in RESOURCES:
        title = resource.title.replace(" ", "")
        changed = {f.name: {"type": ["string", "null"]} for f in resource.fields}
        schemas[f"{title}Event"] = {
            "type": "object",
            "description": f"A create, update or delete of a {resource.title.lower()}.",
            "properties": {
                "id": {"type": "string", "pattern": "^evt_"},
                "type": {"type": "string", "enum": list(resource.event_types)},
                "created_at": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "properties": {
                        "object": {
                            **_ref(title),
                            "description": "The object after the change (for a delete, the "
                            "last state), as the API returned it then.",
                        },
                        "previous_attributes": {
                            "type": "object",
                            "description": "Only in ….updated events: the fields the update "
                            "changed, with their values before it.",
                            "properties": changed,
                            "additionalProperties": False,
                        },
                    },
                    "required": ["object"],
                    "additionalProperties": False,
                },
                "request": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^req_"},
                        "idempotency_key": {"type": ["string", "null"]},
                    },
                    "required": ["id", "idempotency_key"],
                    "additionalProperties": False,
                },
            },
            "required": ["id", "type", "created_at", "data", "request"],
            "additionalProperties": False,
        }
    schemas["Event"] = {
        "oneOf": [_ref(f"{r.title.replace(' ', '')}Event") for r in RESOURCES],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                event_type: f"#/components/schemas/{r.title.replace(' ', '')}Event"
                for r in RESOURCES
                for event_type in r.event_types
            },
        },
    }
    schemas["EventList"] = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref("Event")},
            "has_more": {"type": "boolean"},
            "total": {"type": "integer", "minimum": 0},
        },
        "required": ["data", "has_more", "total"],
        "additionalProperties": False,
    }
    return schemas


def _event_example() -> JSONObject:
    resource = RESOURCES[0]
    return {
        "id": "evt_0VqAbc123",
        "type": resource.event_types[0],
        "created_at": "2024-01-15T09:30:00.000Z",
        "data": {"object": resource.example},
        "request": {"id": "req_4fQ2mX9kLp0aZ8", "idempotency_key": None},
    }


def _event_paths() -> dict[str, JSONObject]:
    errors = {str(s): _error_response(s) for s in (400, 401, 429, 500, 503)}
    parameters = [
        *_page_parameters("event", "events"),
        _query(
            "type",
            "Only events of this type; * matches any run of characters, as in appointment.* "
            f"or *.deleted. The types: {', '.join(_event_types())}.",
            {"type": "string", "pattern": "^[a-z0-9_.*]{1,100}$"},
        ),
        _filter_parameter(
            "created_at",
            "A range of created_at: `created_at[gte]=2024-01-15T00:00:00Z`, with gt, gte, lt "
            "or lte.",
            _range_properties("events", "created_at"),
        ),
    ]
    parser = EventQueryParser(_event_types())
    assert query_names(parameters) == parser.parameter_names(), "OpenAPI and parser disagree"
    return {
        "/api/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "List all events",
                "description": "Every accepted create, update and delete, newest first; kept "
                "for OVERPLANE_EVENT_RETENTION_DAYS (30 by default).",
                "tags": ["Events"],
                "parameters": parameters,
                "responses": {
                    "200": _success(
                        "A page of events.",
                        _ref("EventList"),
                        {"data": [_event_example()], "has_more": False, "total": 1},
                    ),
                    **errors,
                },
            }
        },
        "/api/events/{id}": {
            "get": {
                "operationId": "retrieveEvent",
                "summary": "Retrieve an event",
                "tags": ["Events"],
                "parameters": [_id_parameter("event")],
                "responses": {
                    "200": _success("The event.", _ref("Event"), _event_example()),
                    **errors,
                    "404": _error_response(404),
                },
            }
        },
    }


def _webhook_endpoint_schemas() -> dict[str, JSONObject]:
    pattern = {"type": "string", "pattern": "^[a-z0-9_.*]{1,100}$"}
    events = {
        "type": "array",
        "items": pattern,
        "minItems": 1,
        "maxItems": 100,
        "description": "Event types to send; * matches any run of characters (appointment.*, "
        "*.deleted, *). Each must match at least one event type.",
    }
    url = {
        "type": "string",
        "format": "uri",
        "maxLength": 2048,
        "description": "http or https. Private, loopback and link-local addresses are refused "
        "unless OVERPLANE_WEBHOOK_ALLOW_PRIVATE is on (checked again at each delivery, after "
        "DNS).",
    }
    description = {"type": ["string", "null"], "maxLength": 1000, "pattern": NO_NUL}
    shown: JSONObject = {
        "id": {"type": "string", "pattern": "^we_"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "url": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "enabled_events": {"type": "array", "items": {"type": "string"}},
        "disabled": {"type": "boolean"},
    }
    read_only = {
        name: {"description": "Ignored when sent."} for name in ("id", "created_at", "updated_at")
    }
    listed = {
        "data": {"type": "array"},
        "has_more": {"type": "boolean"},
        "total": {"type": "integer", "minimum": 0},
    }
    return {
        "WebhookEndpoint": {
            "type": "object",
            "properties": shown,
            "required": list(shown),
            "additionalProperties": False,
        },
        "WebhookEndpointWithSecret": {
            "type": "object",
            "description": "As made, on create and on rotation: the only times the signing "
            "secret is shown.",
            "properties": {**shown, "secret": {"type": "string", "pattern": "^whsec_"}},
            "required": [*shown, "secret"],
            "additionalProperties": False,
        },
        "WebhookEndpointCreateRequest": {
            "type": "object",
            "properties": {
                **read_only,
                "url": url,
                "enabled_events": events,
                "description": description,
            },
            "required": ["url", "enabled_events"],
            "additionalProperties": False,
        },
        "WebhookEndpointUpdateRequest": {
            "type": "object",
            "properties": {
                **read_only,
                "url": url,
                "enabled_events": events,
                "description": description,
                "disabled": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "WebhookEndpointList": {
            "type": "object",
            "properties": {**listed, "data": {"type": "array", "items": _ref("WebhookEndpoint")}},
            "required": list(listed),
            "additionalProperties": False,
        },
        "WebhookAttempt": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^wha_"},
                "created_at": {"type": "string", "format": "date-time"},
                "event_id": {"type": "string", "pattern": "^evt_"},
                "endpoint_id": {"type": "string", "pattern": "^we_"},
                "status_code": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
                "duration_ms": {"type": "integer", "minimum": 0},
                "next_retry_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "When it is tried again; null once delivered or given up.",
                },
            },
            "required": [
                "id",
                "created_at",
                "event_id",
                "endpoint_id",
                "status_code",
                "error",
                "duration_ms",
                "next_retry_at",
            ],
            "additionalProperties": False,
        },
        "WebhookAttemptList": {
            "type": "object",
            "properties": {**listed, "data": {"type": "array", "items": _ref("WebhookAttempt")}},
            "required": list(listed),
            "additionalProperties": False,
        },
        "RedeliverRequest": {
            "type": "object",
            "properties": {
                "endpoint": {
                    "type": "string",
                    "description": "Only to this endpoint (else to every enabled endpoint "
                    "subscribed to the event's type).",
                }
            },
            "additionalProperties": False,
        },
        "Redelivered": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^evt_"},
                "redelivered_to": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["id", "redelivered_to"],
            "additionalProperties": False,
        },
    }


def _webhook_endpoint_paths() -> dict[str, JSONObject]:
    errors = {str(s): _error_response(s) for s in (400, 401, 429, 500, 503)}
    with_404 = errors | {"404": _error_response(404)}
    with_body = {"413": _error_response(413), "415": _error_response(415)}
    idempotent = {"409": _error_response(409), "422": _error_response(422)}
    idempotency_key = {"$ref": "#/components/parameters/Idempotency-Key"}
    id_parameter = _id_parameter("webhook endpoint")
    tag = ["Webhook endpoints"]
    example = {
        "id": "we_0VqAbc123",
        "created_at": "2024-01-15T09:30:00.000Z",
        "updated_at": "2024-01-15T09:30:00.000Z",
        "url": "https://hooks.example.com/overplane",
        "description": None,
        "enabled_events": ["appointment.*"],
        "disabled": False,
    }
    with_secret = {**example, "secret": "whsec_0VqAbc123"}

    def body(schema: str) -> JSONObject:
        return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}

    base = "/api/webhook-endpoints"
    return {
        base: {
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "List all webhook endpoints",
                "tags": tag,
                "parameters": _page_parameters("webhook endpoint", "endpoints"),
                "responses": {
                    "200": _success(
                        "A page of endpoints.",
                        _ref("WebhookEndpointList"),
                        {"data": [example], "has_more": False, "total": 1},
                    ),
                    **errors,
                },
            },
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Create a webhook endpoint",
                "description": "The response holds the signing secret: it is never shown again.",
                "tags": tag,
                "parameters": [idempotency_key],
                "requestBody": body("WebhookEndpointCreateRequest"),
                "responses": {
                    "201": _success(
                        "The new endpoint, with its signing secret.",
                        _ref("WebhookEndpointWithSecret"),
                        with_secret,
                    ),
                    **errors,
                    **with_body,
                    **idempotent,
                },
            },
        },
        base + "/{id}": {
            "get": {
                "operationId": "retrieveWebhookEndpoint",
                "summary": "Retrieve a webhook endpoint",
                "tags": tag,
                "parameters": [id_parameter],
                "responses": {
                    "200": _success("The endpoint.", _ref("WebhookEndpoint"), example),
                    **with_404,
                },
            },
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "summary": "Update a webhook endpoint",
                "description": "disabled: true stops deliveries to it (events keep being "
                "recorded).",
                "tags": tag,
                "parameters": [id_parameter, idempotency_key],
                "requestBody": body("WebhookEndpointUpdateRequest"),
                "responses": {
                    "200": _success("The endpoint.", _ref("WebhookEndpoint"), example),
                    **with_404,
                    **with_body,
                    **idempotent,
                },
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint",
                "summary": "Delete a webhook endpoint",
                "tags": tag,
                "parameters": [id_parameter, idempotency_key],
                "responses": {
                    "200": _success(
                        "Deleted.", _ref("Deleted"), {"id": example["id"], "deleted": True}
                    ),
                    **with_404,
                    **idempotent,
                },
            },
        },
        base + "/{id}/rotate-secret": {
            "post": {
                "operationId": "rotateWebhookEndpointSecret",
                "summary": "Rotate a webhook endpoint's signing secret",
                "description": "Returns a new secret, once; for 24 hours deliveries carry "
                "signatures with both the new and the old one.",
                "tags": tag,
                "parameters": [id_parameter, idempotency_key],
                "responses": {
                    "200": _success(
                        "The endpoint with its new secret.",
                        _ref("WebhookEndpointWithSecret"),
                        with_secret,
                    ),
                    **with_404,
                    **with_body,
                    **idempotent,
                },
            }
        },
        base + "/{id}/attempts": {
            "get": {
                "operationId": "listWebhookAttempts",
                "summary": "List a webhook endpoint's delivery attempts",
                "description": "Every attempt, newest first: the event, the time, the status "
                "code or the error, the duration and when it is tried again.",
                "tags": tag,
                "parameters": [id_parameter, *_page_parameters("attempt", "attempts")],
                "responses": {
                    "200": _success(
                        "A page of attempts.",
                        _ref("WebhookAttemptList"),
                        {"data": [], "has_more": False, "total": 0},
                    ),
                    **with_404,
                },
            }
        },
        "/api/events/{id}/redeliver": {
            "post": {
                "operationId": "redeliverEvent",
                "summary": "Send an event again",
                "description": "Makes the event due now at one endpoint, or at every enabled "
                "endpoint subscribed to its type; the body may be empty.",
                "tags": ["Events"],
                "parameters": [
                    _id_parameter("event"),
                    idempotency_key,
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RedeliverRequest")}},
                },
                "responses": {
                    "200": _success(
                        "Where it is sent again.",
                        _ref("Redelivered"),
                        {"id": "evt_0VqAbc123", "redelivered_to": ["we_0VqAbc123"]},
                    ),
                    **with_404,
                    **with_body,
                    **idempotent,
                },
            }
        },
    }


def _calendar_feed_schemas() -> dict[str, JSONObject]:
    shown: JSONObject = {
        "id": {"type": "string", "pattern": "^calfeed_"},
        "created_at": {"type": "string", "format": "date-time"},
        "description": {"type": ["string", "null"]},
    }
    listed = {
        "data": {"type": "array"},
        "has_more": {"type": "boolean"},
        "total": {"type": "integer", "minimum": 0},
    }
    return {
        "CalendarFeed": {
            "type": "object",
            "properties": shown,
            "required": list(shown),
            "additionalProperties": False,
        },
        "CalendarFeedWithToken": {
            "type": "object",
            "description": "As made, on create: the only time the token and URL are shown.",
            "properties": {
                **shown,
                "token": {"type": "string", "pattern": "^calt_"},
                "url": {
                    "type": "string",
                    "pattern": "^/calendar/calt_.*[.]ics$",
                    "description": "The feed's path on this server (iCalendar, RFC 5545), "
                    "for a calendar app to subscribe to; no header is needed.",
                },
            },
            "required": [*shown, "token", "url"],
            "additionalProperties": False,
        },
        "CalendarFeedCreateRequest": {
            "type": "object",
            "properties": {
                "id": {"description": "Ignored when sent."},
                "created_at": {"description": "Ignored when sent."},
                "description": {"type": ["string", "null"], "maxLength": 1000, "pattern": NO_NUL},
            },
            "additionalProperties": False,
        },
        "CalendarFeedList": {
            "type": "object",
            "properties": {**listed, "data": {"type": "array", "items": _ref("CalendarFeed")}},
            "required": list(listed),
            "additionalProperties": False,
        },
    }


def _calendar_feed_paths() -> dict[str, JSONObject]:
    errors = {str(s): _error_response(s) for s in (400, 401, 500, 503)}
    with_404 = errors | {"404": _error_response(404)}
    with_body = {"413": _error_response(413), "415": _error_response(415)}
    idempotent = {"409": _error_response(409), "422": _error_response(422)}
    idempotency_key = {"$ref": "#/components/parameters/Idempotency-Key"}
    id_parameter = _id_parameter("calendar feed")
    tag = ["Calendar feeds"]
    example = {
        "id": "calfeed_0VqAbc123",
        "created_at": "2024-01-15T09:30:00.000Z",
        "description": "Front desk",
    }
    with_token = {**example, "token": "calt_0VqAbc123", "url": "/calendar/calt_0VqAbc123.ics"}
    base = "/api/crm/calendar-feeds"
    return {
        base: {
            "get": {
                "operationId": "listCalendarFeeds",
                "summary": "List all calendar feeds",
                "tags": tag,
                "parameters": _page_parameters("calendar feed", "feeds"),
                "responses": {
                    "200": _success(
                        "A page of feeds.",
                        _ref("CalendarFeedList"),
                        {"data": [example], "has_more": False, "total": 1},
                    ),
                    **errors,
                },
            },
            "post": {
                "operationId": "createCalendarFeed",
                "summary": "Create a calendar feed",
                "description": "The response holds the feed's token and URL: they are never "
                "shown again. The feed shows the appointments of this key's account and mode "
                "whose scheduled_time is an RFC 3339 date-time. The body may be empty.",
                "tags": tag,
                "parameters": [idempotency_key],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("CalendarFeedCreateRequest")}},
                },
                "responses": {
                    "201": _success(
                        "The new feed, with its token and URL.",
                        _ref("CalendarFeedWithToken"),
                        with_token,
                    ),
                    **errors,
                    **with_body,
                    **idempotent,
                },
            },
        },
        base + "/{id}": {
            "get": {
                "operationId": "retrieveCalendarFeed",
                "summary": "Retrieve a calendar feed",
                "tags": tag,
                "parameters": [id_parameter],
                "responses": {
                    "200": _success("The feed.", _ref("CalendarFeed"), example),
                    **with_404,
                },
            },
            "delete": {
                "operationId": "deleteCalendarFeed",
                "summary": "Delete a calendar feed",
                "description": "Revokes its token: the feed's URL answers 404 from now on.",
                "tags": tag,
                "parameters": [id_parameter, idempotency_key],
                "responses": {
                    "200": _success(
                        "Deleted.", _ref("Deleted"), {"id": example["id"], "deleted": True}
                    ),
                    **with_404,
                    **idempotent,
                },
            },
        },
    }


def _webhooks() -> JSONObject:
    """OpenAPI 3.1's top-level ``webhooks``: what a webhook endpoint receives, per type."""
    hooks: JSONObject = {}
    for resource in RESOURCES:
        title = resource.title.replace(" ", "")
        for event_type in resource.event_types:
            hooks[event_type] = {
                "post": {
                    "summary": f"{event_type}",
                    "description": "Sent to each enabled webhook endpoint subscribed to this "
                    "type; the Overplane-Signature header signs the body (docs/webhooks.md).",
                    "tags": ["Events"],
                    "parameters": [
                        {
                            "name": "Overplane-Signature",
                            "in": "header",
                            "required": True,
                            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                            '"<t>.<body>" with the endpoint\'s secret> (one v1 per secret).',
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(f"{title}Event")}},
                    },
                    "responses": {"2XX": {"description": "Received; anything else is retried."}},
                }
            }
    return hooks


def _health_path(summary: str, description: str) -> JSONObject:
    ok = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    responses: JSONObject = {
        "200": {
            "description": "OK",
            "headers": {"Request-Id": {"$ref": "#/components/headers/Request-Id"}},
            "content": {"application/json": {"schema": ok}},
        }
    }
    if "database" in description:
        responses["503"] = _error_response(503)
    return {
        "get": {
            "summary": summary,
            "description": description,
            "security": [],
            "tags": ["Service"],
            "responses": responses,
        }
    }


def document() -> JSONObject:
    """The whole OpenAPI 3.1 document for every declared resource."""
    schemas: JSONObject = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": sorted({t for _, t, _ in ERROR_CODES})},
                        # An open string: a code added later must not break the clients
                        # generated from this document (Stripe keeps it open too).
                        "code": {
                            "type": "string",
                            "description": "Stable and machine-readable; match on it. New "
                            "codes may be added: treat an unknown one by its status. Known: "
                            f"{', '.join(c for _, _, c in ERROR_CODES)}.",
                            "examples": [c for _, _, c in ERROR_CODES],
                        },
                        "message": {"type": "string"},
                        "param": {
                            "type": "string",
                            "description": "The parameter or field at fault, when there is one.",
                        },
                        "request_id": {"type": "string", "pattern": "^req_"},
                    },
                    "required": ["type", "code", "message", "request_id"],
                }
            },
            "required": ["error"],
            "example": {
                "error": {
                    "type": "invalid_request_error",
                    "code": "parameter_invalid",
                    "message": "limit must be an integer between 1 and 100",
                    "param": "limit",
                    "request_id": "req_4fQ2mX9kLp0aZ8",
                }
            },
        },
        "Deleted": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "deleted": {"const": True}},
            "required": ["id", "deleted"],
            "additionalProperties": False,
        },
    }
    paths: JSONObject = {}
    for resource in RESOURCES:
        schemas |= _schemas(resource)
        paths |= _paths(resource)
    schemas |= _event_schemas() | _webhook_endpoint_schemas() | _calendar_feed_schemas()
    paths |= _event_paths() | _webhook_endpoint_paths() | _calendar_feed_paths()
    paths["/healthz"] = _health_path("Liveness", "The process is up.")
    paths["/readyz"] = _health_path("Readiness", "The database answers; 503 when it does not.")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Overplane API",
            "version": __version__,
            "description": (
                "Stripe-style JSON over HTTP. Authenticate with `Authorization: Bearer "
                "sk_test_…`. Every response carries a `Request-Id` header. A method a path does "
                "not support gets 405 `method_not_allowed` with an `Allow` header; an unknown "
                "path gets 404 `route_missing` (after authentication)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            *({"name": r.title, "description": r.description} for r in RESOURCES),
            {"name": "Events", "description": "Every accepted change, recorded with it."},
            {
                "name": "Webhook endpoints",
                "description": "Where events are sent, signed (docs/webhooks.md).",
            },
            {
                "name": "Calendar feeds",
                "description": "iCalendar feeds of appointments for calendar apps "
                "(docs/dashboard.md).",
            },
        ],
        "paths": paths,
        "webhooks": _webhooks(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A secret key: sk_test_… for test data, sk_live_… for live data.",
                }
            },
            "parameters": {
                "Idempotency-Key": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": "Makes the write safe to retry: a repeat with the same key, "
                    "method, path and body replays the first response (docs/api.md).",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                },
                "If-Match": {
                    "name": "If-Match",
                    "in": "header",
                    "description": "Write only if the object's current ETag is listed (or *); "
                    "else 412 precondition_failed.",
                    "schema": {"type": "string"},
                },
                "If-None-Match": {
                    "name": "If-None-Match",
                    "in": "header",
                    "description": "304 Not Modified if the object's current ETag is listed.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "ETag": {
                    "description": "The object's version, a strong tag for If-Match and "
                    "If-None-Match.",
                    "required": True,
                    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
                },
                "Idempotent-Replayed": {
                    "description": "true when this is the stored response of an earlier request "
                    "with the same Idempotency-Key.",
                    "schema": {"type": "string", "const": "true"},
                },
                "Request-Id": {
                    "description": "A unique id for this request (req_…); error bodies repeat it.",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^req_"},
                },
            },
            "schemas": schemas,
        },
    }
