"""A resource's field values, checked against its declaration: for the API and the dashboard.

Validation walks the resource's declared fields, so every rule (string or null, non-blank
required fields, maximum length, unknown fields) comes from the declaration and every error
names the field at fault. The API stops at the first problem (:func:`validate_fields`, one
error response); the dashboard's forms show every field's problem beside it at once
(:func:`field_problems`), with the same messages, because both run :func:`_check_value`.
"""

from __future__ import annotations

from typing import Any

from overplane.declarations import READ_ONLY_KEYS, Resource
from overplane.errors import InvalidRequest, ParameterInvalid, ParameterMissing, ParameterUnknown


def _check_value(resource: Resource, name: str, value: object, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ParameterInvalid(f"{name} is required and cannot be null.", param=name)
        return None
    if not isinstance(value, str):
        kind = type(value).__name__ if not isinstance(value, bool) else "boolean"
        kind = {"int": "number", "Decimal": "number", "list": "array", "dict": "object"}.get(
            kind, kind
        )
        raise ParameterInvalid(f"{name} must be a string or null, not a {kind}.", param=name)
    field = resource.fields_by_name[name]
    if len(value) > field.max_length:
        raise ParameterInvalid(
            f"{name} must be at most {field.max_length} characters long.", param=name
        )
    if required and not value.strip():
        raise ParameterInvalid(f"{name} is required and cannot be blank.", param=name)
    # Neither backend can store these the same way: PostgreSQL rejects NUL in text, and a lone
    # surrogate (from a \ud800 escape) is not encodable as UTF-8 at all.
    if "\x00" in value:
        raise ParameterInvalid(f"{name} must not contain NUL characters.", param=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParameterInvalid(
            f"{name} must not contain unpaired surrogates.", param=name
        ) from None
    return value


def _known_values(resource: Resource, payload: dict[str, Any]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, value in payload.items():
        if key in resource.fields_by_name:
            values[key] = value
        elif key not in READ_ONLY_KEYS:  # sent back from a fetched object: ignored
            raise ParameterUnknown(f"Received unknown parameter: {key}.", param=key)
    return values


def validate_fields(
    resource: Resource, payload: dict[str, Any], *, partial: bool
) -> dict[str, str | None]:
    """The checked field values of a create, or of a partial update (``partial=True``).

    A create must send every required field as a non-blank string. An update sends only the
    fields it changes; ``null`` clears a field, except a required one.
    """
    values = _known_values(resource, payload)
    if not partial:
        for field in resource.required_fields:
            if field.name not in values:
                raise ParameterMissing(
                    f"Missing required parameter: {field.name}.", param=field.name
                )
    return {
        name: _check_value(resource, name, value, required=resource.fields_by_name[name].required)
        for name, value in values.items()
    }


def field_problems(resource: Resource, payload: dict[str, Any], *, partial: bool) -> dict[str, str]:
    """Every field's problem (field name -> the API's message), or {} when the values are
    valid: what :func:`validate_fields` would refuse, for each field rather than the first."""
    problems: dict[str, str] = {}
    if not partial:
        for field in resource.required_fields:
            if field.name not in payload:
                problems[field.name] = f"Missing required parameter: {field.name}."
    for name, value in payload.items():
        try:
            validate_fields(resource, {name: value}, partial=True)
        except InvalidRequest as error:
            problems[error.param or name] = error.message
    return problems
