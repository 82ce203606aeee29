"""Random sequences of operations against one account agree with an in-memory model of the contract.

For each declared resource a Hypothesis state machine creates, updates (partially, with ``null``
clearing optional fields, and with ``{}``), deletes, retrieves and lists objects of one brand-new
account, and checks every response against a model that knows only the contract (API.md):

- list: newest first (the model's creation order reversed), ``total``, ``has_more`` is
  ``offset + len(data) < total``, ``data`` is exactly the model's slice (ids, field values and
  timestamps);
- update: fields not sent are unchanged, ``null`` clears, a rejected update changes nothing;
- ``updated_at`` moves strictly forward on every accepted update, ``created_at`` never changes;
- retrieve, update and delete of a deleted, unknown or wrong-prefix id: 404 ``resource_missing``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from overplane.declarations import RESOURCES, Field, Resource
from tests.helpers import Caller, Server, assert_error

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DEFAULT_LIMIT = 20  # the contract's default page size

MACHINE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    # Creating the account per example and the occasional maximum-length body are slow-ish.
    suppress_health_check=[HealthCheck.too_slow],
)

#: Any character a JSON string can carry that both backends store: no NUL, no lone surrogate.
CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")


def field_values(field: Field) -> st.SearchStrategy[str]:
    """Strings a create or update may send for ``field``: short ones, and exactly max_length."""
    short = st.text(CHARACTERS, max_size=min(20, field.max_length))
    longest = CHARACTERS.map(lambda c: c * field.max_length)
    values = st.one_of(short, short, short, longest)
    if field.required:  # required fields must be non-blank
        return values.filter(lambda v: v.strip() != "")
    return values


def sent_value(field: Field) -> st.SearchStrategy[str | None]:
    """A value a client may send for ``field``; ``null`` only where the field may be cleared."""
    if field.required:
        return field_values(field)
    return st.none() | field_values(field)


def create_bodies(resource: Resource) -> st.SearchStrategy[dict[str, str | None]]:
    """Every required field, any subset of the optional ones (some sent as null)."""
    return st.fixed_dictionaries(
        {f.name: field_values(f) for f in resource.required_fields},
        optional={f.name: sent_value(f) for f in resource.fields if not f.required},
    )


def update_bodies(resource: Resource) -> st.SearchStrategy[dict[str, str | None]]:
    """Any subset of the fields, including none at all (``{}``)."""
    return st.fixed_dictionaries({}, optional={f.name: sent_value(f) for f in resource.fields})


def parse_timestamp(value: object) -> datetime:
    """A contract timestamp (``2024-01-15T09:30:00.123Z``) as a datetime; fails on any other."""
    assert isinstance(value, str)
    assert TIMESTAMP.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ModelObject:
    """What the contract says an object must look like."""

    id: str
    created_at: str
    updated_at: str
    values: dict[str, str | None]

    def rendered(self, resource: Resource) -> dict[str, Any]:
        """The object as the server must render it, keys in contract order."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            **{f.name: self.values[f.name] for f in resource.fields},
        }


def assert_same_object(actual: object, expected: dict[str, Any]) -> None:
    """``actual`` equals ``expected``, including the order of its keys."""
    assert isinstance(actual, dict)
    assert list(actual) == list(expected)
    assert actual == expected


class ResourceMachine(RuleBasedStateMachine):
    """One account's objects of one resource, driven by random operations."""

    def __init__(self, server: Server, resource: Resource) -> None:
        super().__init__()
        self.resource = resource
        self.caller: Caller = server.new_caller()
        self.objects: dict[str, ModelObject] = {}  # live objects, in creation order
        self.gone: list[str] = []  # ids deleted in this run
        self.create_bodies = create_bodies(resource)
        self.update_bodies = update_bodies(resource)
        other_prefixes = [r.id_prefix for r in RESOURCES if r.id_prefix != resource.id_prefix]
        self.foreign_prefix = other_prefixes[0] if other_prefixes else "other_"

    def path(self, object_id: str) -> str:
        return f"{self.resource.path}/{object_id}"

    def newest_first(self) -> list[ModelObject]:
        return list(reversed(self.objects.values()))

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        """Create returns 201, a Location and the object with exactly the values sent."""
        body = data.draw(self.create_bodies, label="body")
        response = self.caller.post(self.resource.path, json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        object_id = created["id"]
        assert isinstance(object_id, str)
        assert object_id.startswith(self.resource.id_prefix)
        assert object_id not in self.objects
        assert object_id not in self.gone
        assert response.headers["location"] == self.path(object_id)
        assert created["created_at"] == created["updated_at"]
        parse_timestamp(created["created_at"])
        model = ModelObject(
            id=object_id,
            created_at=created["created_at"],
            updated_at=created["updated_at"],
            values={f.name: body.get(f.name) for f in self.resource.fields},
        )
        assert_same_object(created, model.rendered(self.resource))
        self.objects[object_id] = model

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def retrieve(self, data: st.DataObject) -> None:
        """Retrieve returns the object exactly as the model has it."""
        model = self.objects[data.draw(st.sampled_from(list(self.objects)), label="id")]
        response = self.caller.get(self.path(model.id))
        assert response.status_code == 200, response.text
        assert_same_object(response.json(), model.rendered(self.resource))

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        """Update is partial, null clears, and updated_at moves strictly forward."""
        model = self.objects[data.draw(st.sampled_from(list(self.objects)), label="id")]
        body = data.draw(self.update_bodies, label="body")
        response = self.caller.patch(self.path(model.id), json=body)
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["created_at"] == model.created_at
        assert parse_timestamp(updated["updated_at"]) > parse_timestamp(model.updated_at)
        model.updated_at = updated["updated_at"]
        model.values.update(body)
        assert_same_object(updated, model.rendered(self.resource))

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def rejected_update(self, data: st.DataObject) -> None:
        """An invalid update is a 400 naming the field, and changes nothing."""
        model = self.objects[data.draw(st.sampled_from(list(self.objects)), label="id")]
        kind = data.draw(st.sampled_from(["null_required", "too_long", "not_string", "unknown"]))
        field = data.draw(st.sampled_from(self.resource.fields), label="field")
        if kind == "null_required":
            field = data.draw(st.sampled_from(self.resource.required_fields), label="field")
            body: dict[str, object] = {field.name: None}
        elif kind == "too_long":
            body = {field.name: "x" * (field.max_length + 1)}
        elif kind == "not_string":
            body = {field.name: data.draw(st.sampled_from([0, 1.5, True, [], {}]), label="value")}
        else:
            body = {f"{field.name}_typo": "value"}
        response = self.caller.patch(self.path(model.id), json=body)
        if kind == "unknown":
            assert_error(response, 400, "parameter_unknown", f"{field.name}_typo")
        else:
            assert_error(response, 400, "parameter_invalid", field.name)
        after = self.caller.get(self.path(model.id))
        assert after.status_code == 200, after.text
        assert_same_object(after.json(), model.rendered(self.resource))

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        """Delete returns the deletion confirmation and the object is gone for good."""
        object_id = data.draw(st.sampled_from(list(self.objects)), label="id")
        response = self.caller.delete(self.path(object_id))
        assert response.status_code == 200, response.text
        assert response.json() == {"id": object_id, "deleted": True}
        del self.objects[object_id]
        self.gone.append(object_id)

    @rule(data=st.data())
    def missing(self, data: st.DataObject) -> None:
        """Retrieve, update and delete of a deleted, unknown or wrong-prefix id give 404."""
        unknown = st.text(string.ascii_letters + string.digits, min_size=1, max_size=30).map(
            lambda rest: self.resource.id_prefix + rest
        )
        candidates = [unknown]
        if self.gone:
            candidates.append(st.sampled_from(self.gone))
        if self.objects:  # a live object's random part under another resource's prefix
            candidates.append(
                st.sampled_from(list(self.objects)).map(
                    lambda i: self.foreign_prefix + i.removeprefix(self.resource.id_prefix)
                )
            )
        object_id = data.draw(st.one_of(candidates), label="id")
        if object_id in self.objects:  # a random id that happens to exist: not this rule's case
            return
        method = data.draw(st.sampled_from(["GET", "PATCH", "DELETE"]), label="method")
        if method == "PATCH":
            body = data.draw(self.update_bodies, label="body")
            response = self.caller.patch(self.path(object_id), json=body)
        else:
            response = self.caller.request(method, self.path(object_id))
        assert_error(response, 404, "resource_missing", "id")
        assert response.json()["error"]["type"] == "invalid_request_error"

    @rule(
        limit=st.none() | st.integers(min_value=1, max_value=100),
        data=st.data(),
    )
    def list_page(self, limit: int | None, data: st.DataObject) -> None:
        """A page is the model's newest-first slice, with the true total and has_more."""
        total = len(self.objects)
        offset = data.draw(st.none() | st.integers(0, total + 5), label="offset")
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(limit)
        if offset is not None:
            params["offset"] = str(offset)
        response = self.caller.get(self.resource.path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert list(page) == ["data", "has_more", "total"]
        start = offset or 0
        expected = self.newest_first()[start : start + (limit or DEFAULT_LIMIT)]
        assert page["total"] == total
        assert [o["id"] for o in page["data"]] == [m.id for m in expected]
        for actual, model in zip(page["data"], expected, strict=True):
            assert_same_object(actual, model.rendered(self.resource))
        assert page["has_more"] is (start + len(page["data"]) < total)


@pytest.mark.slow
def test_operations_agree_with_the_model(server: Server, resource: Resource) -> None:
    """Any sequence of the five operations behaves as the contract's model says (per resource)."""

    class Machine(ResourceMachine):
        def __init__(self) -> None:
            super().__init__(server, resource)

    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)
