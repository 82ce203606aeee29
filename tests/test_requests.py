"""Contract tests for what a request may carry: the body (content type, JSON, size, field
values) and the list's query parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from overplane.declarations import APPOINTMENT, RESOURCES, Resource
from tests.helpers import Caller, assert_error, object_path, optional_field, valid_body

MIB = 1_048_576
JSON_HEADERS = {"Content-Type": "application/json"}


def padded_body(payload: dict[str, Any], size: int) -> bytes:
    """``payload`` as JSON, padded with insignificant whitespace to exactly ``size`` bytes."""
    encoded = json.dumps(payload).encode()
    assert len(encoded) <= size
    return encoded[:-1] + b" " * (size - len(encoded)) + b"}"


# --- content type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json-patch+json",
        "text/json",
    ],
)
def test_another_content_type_is_415(api: Caller, resource: Resource, content_type: str) -> None:
    """A body of another content type is 415 content_type_unsupported, on create and update."""
    body = json.dumps(valid_body(resource)).encode()
    headers = {"Content-Type": content_type}
    assert_error(
        api.post(resource.path, content=body, headers=headers), 415, "content_type_unsupported"
    )
    obj = api.create(resource)
    response = api.patch(object_path(resource, obj["id"]), content=body, headers=headers)
    assert_error(response, 415, "content_type_unsupported")
    assert api.get(resource.path).json()["total"] == 1


def test_a_body_without_content_type_is_415(api: Caller, resource: Resource) -> None:
    """A request with a body but no Content-Type is 415, on create and update."""
    body = json.dumps(valid_body(resource)).encode()
    response = api.post(resource.path, content=body)
    assert "content-type" not in response.request.headers
    assert_error(response, 415, "content_type_unsupported")
    obj = api.create(resource)
    response = api.patch(object_path(resource, obj["id"]), content=body)
    assert_error(response, 415, "content_type_unsupported")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
        "Application/JSON",
    ],
)
def test_json_content_type_with_charset_is_accepted(
    api: Caller, resource: Resource, content_type: str
) -> None:
    """application/json is accepted with or without a UTF-8 charset parameter, in any case."""
    body = json.dumps(valid_body(resource)).encode()
    headers = {"Content-Type": content_type}
    response = api.post(resource.path, content=body, headers=headers)
    assert response.status_code == 201, response.text
    field = resource.fields[-1].name
    update = json.dumps({field: "ü"}).encode()
    response = api.patch(
        object_path(resource, response.json()["id"]), content=update, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()[field] == "ü"


# --- JSON -----------------------------------------------------------------------------------

INVALID_BODIES = {
    "empty": b"",
    "whitespace": b"  \n ",
    "truncated": b'{"a": "b"',
    "single-quotes": b"{'a': 'b'}",
    "trailing-garbage": b'{"a": "b"} x',
    "two-objects": b"{}{}",
    "bare-word": b"hello",
    "invalid-utf8": b'{"x": "\xff\xfe"}',
    "invalid-utf8-key": b'{"\xc3\x28": "x"}',
    "utf8-surrogate": b'{"x": "\xed\xa0\x80"}',
    "utf16": '{"x": "y"}'.encode("utf-16"),
    "array": b'[{"a": "b"}]',
    "empty-array": b"[]",
    "string": b'"a string"',
    "number": b"42",
    "boolean": b"true",
    "null": b"null",
    "deeply-nested-array": b"[" * 100_000 + b"]" * 100_000,
    "deeply-nested-field": b'{"x": ' + b'{"y": ' * 50_000 + b"1" + b"}" * 50_001,
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_body_that_is_not_a_json_object_is_400(
    api: Caller, resource: Resource, body: bytes
) -> None:
    """Malformed JSON, bytes that are not UTF-8, or JSON that is not an object: body_invalid."""
    assert_error(api.post(resource.path, content=body, headers=JSON_HEADERS), 400, "body_invalid")
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    assert_error(api.patch(path, content=body, headers=JSON_HEADERS), 400, "body_invalid")
    assert api.get(path).json() == obj
    assert api.get(resource.path).json()["total"] == 1


def test_body_without_content_type_and_without_bytes_is_400(
    api: Caller, resource: Resource
) -> None:
    """An update with no body at all is not a JSON object: 400 body_invalid."""
    obj = api.create(resource)
    assert_error(api.patch(object_path(resource, obj["id"])), 400, "body_invalid")
    assert_error(api.post(resource.path), 400, "body_invalid")


# --- size -----------------------------------------------------------------------------------


def test_body_over_1_mib_is_413(api: Caller, resource: Resource) -> None:
    """A body larger than 1 MiB is 413 body_too_large, even a valid JSON object."""
    body = padded_body(valid_body(resource), MIB + 1)
    response = api.post(resource.path, content=body, headers=JSON_HEADERS)
    assert response.request.headers["content-length"] == str(MIB + 1)
    assert_error(response, 413, "body_too_large")
    obj = api.create(resource)
    response = api.patch(object_path(resource, obj["id"]), content=body, headers=JSON_HEADERS)
    assert_error(response, 413, "body_too_large")
    assert api.get(resource.path).json()["total"] == 1


def test_body_of_exactly_1_mib_is_accepted(api: Caller, resource: Resource) -> None:
    """The cap is 1 MiB: a body of exactly 1,048,576 bytes is served."""
    body = padded_body(valid_body(resource), MIB)
    assert len(body) == MIB
    response = api.post(resource.path, content=body, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text


def test_streamed_body_over_1_mib_is_413(api: Caller, resource: Resource) -> None:
    """A body sent in chunks, without Content-Length, is capped at 1 MiB as well."""

    def chunks(total: int) -> Iterator[bytes]:
        body = padded_body(valid_body(resource), total)
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    response = api.post(resource.path, content=chunks(MIB + 1), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "body_too_large")
    response = api.post(resource.path, content=chunks(3 * MIB), headers=JSON_HEADERS)
    assert_error(response, 413, "body_too_large")
    assert api.get(resource.path).json()["total"] == 0
    # The same body within the cap, streamed the same way, is served.
    response = api.post(resource.path, content=chunks(MIB), headers=JSON_HEADERS)
    assert response.status_code == 201, response.text


# --- field values ---------------------------------------------------------------------------

NOT_STRINGS: dict[str, object] = {
    "integer": 1,
    "zero": 0,
    "negative": -1,
    "float": 1.5,
    "exponent": 1e3,
    "big-integer": 123456789012345678901234567890,
    "true": True,
    "false": False,
    "empty-array": [],
    "array": ["a string"],
    "empty-object": {},
    "object": {"a": "b"},
}


@pytest.mark.parametrize("value", NOT_STRINGS.values(), ids=NOT_STRINGS.keys())
def test_field_value_that_is_not_a_string_is_400(
    api: Caller, resource: Resource, value: object
) -> None:
    """A number, boolean, array or object as a field value is 400 parameter_invalid naming it."""
    for field in (resource.required_fields[0], optional_field(resource)):
        body: dict[str, object] = {**valid_body(resource), field.name: value}
        response = api.post(resource.path, json=body)
        assert_error(response, 400, "parameter_invalid", field.name)
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    for field in (resource.required_fields[0], optional_field(resource)):
        assert_error(
            api.patch(path, json={field.name: value}), 400, "parameter_invalid", field.name
        )
    assert api.get(path).json() == obj
    assert api.get(resource.path).json()["total"] == 1


@pytest.mark.parametrize("name", ["customer_nmae", "primary_rol", "Status", "ID", "extra", ""])
def test_unknown_field_is_400_naming_it(api: Caller, resource: Resource, name: str) -> None:
    """A field the resource does not have is 400 parameter_unknown naming it."""
    body: dict[str, object] = {**valid_body(resource), name: "value"}
    assert_error(api.post(resource.path, json=body), 400, "parameter_unknown", name)
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    assert_error(api.patch(path, json={name: "value"}), 400, "parameter_unknown", name)
    assert_error(api.patch(path, json={name: None}), 400, "parameter_unknown", name)
    assert api.get(path).json() == obj


def test_field_of_the_other_resource_is_unknown(api: Caller, resource: Resource) -> None:
    """Fields belong to one resource: another resource's field is parameter_unknown."""
    other = "primary_role" if resource is APPOINTMENT else "customer_name"
    body: dict[str, object] = {**valid_body(resource), other: "value"}
    assert_error(api.post(resource.path, json=body), 400, "parameter_unknown", other)


def test_missing_required_field_is_400_naming_it(api: Caller, resource: Resource) -> None:
    """A create without a required field is 400 parameter_missing naming it."""
    for field in resource.required_fields:
        body = valid_body(resource)
        del body[field.name]
        assert_error(api.post(resource.path, json=body), 400, "parameter_missing", field.name)
    only_optional = {optional_field(resource).name: "value"}
    response = api.post(resource.path, json=only_optional)
    assert_error(response, 400, "parameter_missing", resource.required_fields[0].name)
    response = api.post(resource.path, json={})
    assert_error(response, 400, "parameter_missing", resource.required_fields[0].name)
    assert api.get(resource.path).json()["total"] == 0


@pytest.mark.parametrize(
    "value",
    [None, "", " ", "   ", "\t", "\n\r\t "],
    ids=["null", "empty", "1sp", "3sp", "tab", "mix"],
)
def test_blank_or_null_required_field_is_400(
    api: Caller, resource: Resource, value: str | None
) -> None:
    """A required field that is null or blank is 400 parameter_invalid naming it."""
    for field in resource.required_fields:
        response = api.post(resource.path, json=valid_body(resource, **{field.name: value}))
        assert_error(response, 400, "parameter_invalid", field.name)
    assert api.get(resource.path).json()["total"] == 0


def test_optional_fields_accept_null_and_blank(api: Caller, resource: Resource) -> None:
    """Optional fields are string or null: null, "" and spaces are all accepted as sent."""
    optional = [f.name for f in resource.fields if not f.required]
    for value in (None, "", "   "):
        obj = api.create(resource, **dict.fromkeys(optional, value))
        assert all(obj[name] == value for name in optional), value


def test_max_length_is_enforced_per_field(api: Caller, resource: Resource) -> None:
    """Each field takes exactly its declared max_length; one character more is 400 naming it."""
    at_limit = {f.name: "x" * f.max_length for f in resource.fields}
    response = api.post(resource.path, json=at_limit)
    assert response.status_code == 201, response.text
    obj = response.json()
    assert {name: obj[name] for name in at_limit} == at_limit
    assert api.get(object_path(resource, obj["id"])).json() == obj
    path = object_path(resource, obj["id"])
    for field in resource.fields:
        over = "x" * (field.max_length + 1)
        response = api.post(resource.path, json=valid_body(resource, **{field.name: over}))
        assert_error(response, 400, "parameter_invalid", field.name)
        assert_error(api.patch(path, json={field.name: over}), 400, "parameter_invalid", field.name)
    assert api.get(path).json() == obj
    assert api.get(resource.path).json()["total"] == 1


def test_max_length_counts_characters_not_bytes(api: Caller, resource: Resource) -> None:
    """A limit is in characters: max_length multi-byte characters fit, on every backend."""
    values = {f.name: ("😀é" * f.max_length)[: f.max_length] for f in resource.fields}
    response = api.post(resource.path, json=values)
    assert response.status_code == 201, response.text
    fetched = api.get(object_path(resource, response.json()["id"])).json()
    assert {name: fetched[name] for name in values} == values
    field = resource.fields[-1]
    response = api.post(
        resource.path, json=valid_body(resource, **{field.name: "😀" * (field.max_length + 1)})
    )
    assert_error(response, 400, "parameter_invalid", field.name)


def test_declared_max_lengths_meet_the_contract() -> None:
    """customer_details allows at least 65,535 characters; every other field at least 1,000."""
    assert APPOINTMENT.fields_by_name["customer_details"].max_length >= 65_535

    for resource in RESOURCES:
        for field in resource.fields:
            assert field.max_length >= 1_000, (resource.name, field.name)


def test_read_only_keys_are_ignored(api: Caller, resource: Resource) -> None:
    """id, created_at and updated_at in a body are ignored: a fetched object can be sent back."""
    forged = {
        "id": resource.id_prefix + "forged0000000000000000000",
        "created_at": "1999-01-01T00:00:00.000Z",
        "updated_at": "1999-01-01T00:00:00.000Z",
    }
    response = api.post(resource.path, json={**valid_body(resource), **forged})
    assert response.status_code == 201, response.text
    obj = response.json()
    assert obj["id"] != forged["id"]
    assert not obj["created_at"].startswith("1999")
    assert not obj["updated_at"].startswith("1999")

    fetched = api.get(object_path(resource, obj["id"])).json()
    response = api.patch(object_path(resource, obj["id"]), json=fetched)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == obj["id"]
    assert updated["created_at"] == obj["created_at"]
    assert {f.name: updated[f.name] for f in resource.fields} == {
        f.name: obj[f.name] for f in resource.fields
    }

    response = api.patch(object_path(resource, obj["id"]), json=forged)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == obj["id"]
    assert response.json()["created_at"] == obj["created_at"]
    assert not response.json()["updated_at"].startswith("1999")
    assert_error(api.get(object_path(resource, forged["id"])), 404, "resource_missing", "id")


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "trailing\x00"], ids=["nul", "inside", "end"])
def test_nul_characters_are_rejected(api: Caller, resource: Resource, value: str) -> None:
    """NUL in a value is 400 parameter_invalid naming the field (PostgreSQL cannot store it)."""
    for field in (resource.required_fields[0], optional_field(resource)):
        response = api.post(resource.path, json=valid_body(resource, **{field.name: value}))
        assert_error(response, 400, "parameter_invalid", field.name)
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    field = optional_field(resource)
    assert_error(api.patch(path, json={field.name: value}), 400, "parameter_invalid", field.name)
    assert api.get(path).json() == obj


# --- duplicate keys and lone surrogates -------------------------------------------------------


def body_with(resource: Resource, extra: str, **overrides: str | None) -> bytes:
    """A valid create body as JSON text with ``extra`` (raw JSON members) spliced in last."""
    return (
        json.dumps(valid_body(resource, **overrides)).encode()[:-1] + b", " + extra.encode() + b"}"
    )


@pytest.mark.parametrize(
    "second",
    ['"another value"', "null", '"same"', "1", '"esc\\u00e9aped"', "[1, 2]"],
    ids=["string", "null", "same", "number", "escaped", "array"],
)
def test_a_key_sent_twice_is_400_naming_it(api: Caller, resource: Resource, second: str) -> None:
    """A key twice in the body is body_invalid naming it, whichever value comes last and
    whether or not the values differ (parsers disagree on which one wins); nothing is written."""
    field = resource.required_fields[0].name
    body = body_with(resource, f'"{field}": {second}', **{field: "same"})
    assert_error(
        api.post(resource.path, content=body, headers=JSON_HEADERS), 400, "body_invalid", field
    )
    optional = optional_field(resource).name
    first = body_with(resource, f'"{optional}": {second}, "{optional}": "x"')
    assert_error(
        api.post(resource.path, content=first, headers=JSON_HEADERS), 400, "body_invalid", optional
    )
    assert api.total(resource) == 0
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    update = f'{{"{optional}": "a", "{optional}": {second}}}'.encode()
    assert_error(
        api.patch(path, content=update, headers=JSON_HEADERS), 400, "body_invalid", optional
    )
    assert api.get(path).json() == obj


def test_a_key_twice_inside_a_nested_value_is_400_naming_it(
    api: Caller, resource: Resource
) -> None:
    """Nested objects are no field's value, but a repeated key inside one is named too."""
    body = body_with(resource, '"metadata": {"k": 1, "k": 2}')
    assert_error(
        api.post(resource.path, content=body, headers=JSON_HEADERS), 400, "body_invalid", "k"
    )


def test_same_text_as_a_key_and_a_value_is_no_duplicate(api: Caller, resource: Resource) -> None:
    """Quotes and key-like text inside values do not fool the check."""
    field = optional_field(resource).name
    for value in (field, f'"{field}": "x"', '\\"', "a\\\\"):
        created = api.create(resource, **{field: value})
        assert created[field] == value


@pytest.mark.parametrize(
    "escape",
    ["\\ud800", "\\udfff", "x\\ud83d", "\\ude00y", "\\ud800\\u0041"],
    ids=["high", "low", "high-at-end", "low-first", "high-then-letter"],
)
def test_a_lone_surrogate_escape_is_400_naming_its_field(
    api: Caller, resource: Resource, escape: str
) -> None:
    """An escaped surrogate without its partner cannot be stored as UTF-8 on either backend:
    400 parameter_invalid naming the field it was in (also inside an array), nothing written."""
    for field in (resource.required_fields[0].name, optional_field(resource).name):
        body = body_with(resource, f'"{field}": "{escape}"', **{field: None}).replace(
            f'"{field}": null, '.encode(), b"", 1
        )
        response = api.post(resource.path, content=body, headers=JSON_HEADERS)
        assert_error(response, 400, "parameter_invalid", field)
    in_array = body_with(resource, f'"tags": ["ok", "{escape}"]')
    assert_error(
        api.post(resource.path, content=in_array, headers=JSON_HEADERS),
        400,
        "parameter_invalid",
        "tags",
    )
    in_key = body_with(resource, f'"{escape}": "x"')
    assert_error(api.post(resource.path, content=in_key, headers=JSON_HEADERS), 400, "body_invalid")
    assert api.total(resource) == 0
    obj = api.create(resource)
    field = optional_field(resource).name
    update = f'{{"{field}": "{escape}"}}'.encode()
    path = object_path(resource, obj["id"])
    assert_error(
        api.patch(path, content=update, headers=JSON_HEADERS), 400, "parameter_invalid", field
    )
    assert api.get(path).json() == obj


def test_a_paired_surrogate_escape_is_stored(api: Caller, resource: Resource) -> None:
    """An escaped pair is one character (here U+1F600) and round-trips on both backends."""
    field = optional_field(resource).name
    body = body_with(resource, f'"{field}": "smile \\ud83d\\ude00"')
    response = api.post(resource.path, content=body, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    assert api.get(object_path(resource, response.json()["id"])).json()[field] == "smile \U0001f600"


# --- query parameters -----------------------------------------------------------------------

BAD_QUERIES = [
    ("limit", "0"),
    ("limit", "101"),
    ("limit", "abc"),
    ("limit", "-1"),
    ("limit", "1.5"),
    ("limit", ""),
    ("limit", " 5"),
    ("limit", "+5"),
    ("limit", "1e1"),
    ("limit", "0x10"),
    ("limit", "٣"),  # a digit, but not an ASCII one
    ("limit", "99999999999999999999999"),
    ("offset", "-1"),
    ("offset", "abc"),
    ("offset", "1.5"),
    ("offset", ""),
    ("offset", "+1"),
]


@pytest.mark.parametrize(("name", "value"), BAD_QUERIES)
def test_bad_limit_or_offset_is_400_naming_it(
    api: Caller, resource: Resource, name: str, value: str
) -> None:
    """limit outside 1-100 or offset below 0, or either not an integer: 400 naming it."""
    response = api.get(resource.path, params={name: value})
    error = assert_error(response, 400, "parameter_invalid", name)
    assert name in error["message"]


def test_limit_bounds_are_accepted(api: Caller, resource: Resource) -> None:
    """limit=1 and limit=100 are allowed; offset=0 is allowed."""
    first, second = api.create(resource), api.create(resource)
    page = api.get(resource.path, params={"limit": 1}).json()
    assert page == {"data": [second], "has_more": True, "total": 2}
    page = api.get(resource.path, params={"limit": 1, "offset": 1}).json()
    assert page == {"data": [first], "has_more": False, "total": 2}
    page = api.get(resource.path, params={"limit": 100, "offset": 0}).json()
    assert page == {"data": [second, first], "has_more": False, "total": 2}


@pytest.mark.parametrize("offset", [10**6, 2**63, 10**30, 10**100])
def test_huge_offset_gives_empty_page(api: Caller, resource: Resource, offset: int) -> None:
    """An offset far past the end (even beyond 64 bits) gives data [] and the true total."""
    api.create(resource)
    response = api.get(resource.path, params={"offset": str(offset)})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "has_more": False, "total": 1}


@pytest.mark.parametrize("name", ["foo", "starting_before", "Limit", "page", "api_key"])
def test_unknown_query_parameter_on_list_is_400(api: Caller, resource: Resource, name: str) -> None:
    """A query parameter the list does not take is 400 parameter_unknown naming it."""
    response = api.get(resource.path, params={name: "1", "limit": "5"})
    assert_error(response, 400, "parameter_unknown", name)


def test_unknown_query_parameter_on_other_operations_is_400(
    api: Caller, resource: Resource
) -> None:
    """Create, retrieve, update and delete take no query parameters: parameter_unknown."""
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    params = {"expand": "x"}
    response = api.post(resource.path, params=params, json=valid_body(resource))
    assert_error(response, 400, "parameter_unknown", "expand")
    assert_error(api.get(path, params=params), 400, "parameter_unknown", "expand")
    response = api.patch(path, params=params, json={})
    assert_error(response, 400, "parameter_unknown", "expand")
    assert_error(api.delete(path, params=params), 400, "parameter_unknown", "expand")
    assert api.get(path).json() == obj
    assert api.get(resource.path).json()["total"] == 1


@pytest.mark.parametrize("name", ["limit", "offset"])
def test_repeated_query_parameter_is_400(api: Caller, resource: Resource, name: str) -> None:
    """A repeated limit or offset is ambiguous: 400 parameter_invalid naming it."""
    response = api.get(resource.path, params=[(name, "1"), (name, "2")])
    assert_error(response, 400, "parameter_invalid", name)
    response = api.get(resource.path, params=[(name, "1"), (name, "1")])
    assert_error(response, 400, "parameter_invalid", name)


def test_a_number_too_large_for_a_float_is_reported_against_its_field(
    api: Caller, resource: Resource
) -> None:
    """A field value must be a string: even 1e400 is a 400 naming the field, not a decode error."""
    field = resource.fields[0].name
    members = [f'"{field}": 1e400']
    members += [
        f"{json.dumps(k)}: {json.dumps(v)}" for k, v in valid_body(resource).items() if k != field
    ]
    body = "{" + ", ".join(members) + "}"
    response = api.post(resource.path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert response.json()["error"]["param"] == field
