"""Events: every accepted write records exactly one event, with the change, and nothing else does.

Through the real application on each backend: the event of a create, update and delete holds
the object as the API returned it (the last state for a delete), ``previous_attributes`` of an
update names exactly the fields it changed with their old values, ``request`` names the
request and its Idempotency-Key; refused writes and idempotent replays record nothing; the
event list filters by type (with ``*``) and time, pages by cursor and counts exactly; events
are swept after their retention.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from overplane.clock import now_ms
from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from tests.helpers import NO_LIMITS, Caller, Server, optional_field, valid_body

EVENTS = "/api/events"


def events(api: Caller, **params: str) -> list[dict[str, Any]]:
    """Every event the caller's account has that matches ``params``, newest first."""
    found: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}
    while True:
        page = api.get(EVENTS, params={"limit": "100", **params, **cursor})
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["data"]
        if not body["has_more"]:
            return found
        cursor = {"starting_after": found[-1]["id"]}


def test_each_write_records_one_event_with_the_object_and_the_request(
    api: Caller, resource: Resource
) -> None:
    name = resource.event_name
    created = api.post(
        resource.path, json=valid_body(resource), headers={"Idempotency-Key": "k-create"}
    )
    assert created.status_code == 201
    field = optional_field(resource).name
    updated = api.patch(f"{resource.path}/{created.json()['id']}", json={field: "changed"})
    deleted = api.delete(f"{resource.path}/{created.json()['id']}")
    assert deleted.status_code == 200

    found = events(api)
    assert [e["type"] for e in found] == [f"{name}.deleted", f"{name}.updated", f"{name}.created"]
    gone, changed, made = found
    assert made["data"] == {"object": created.json()}
    assert made["request"] == {
        "id": created.headers["request-id"],
        "idempotency_key": "k-create",
    }
    assert changed["data"] == {
        "object": updated.json(),
        "previous_attributes": {field: None},
    }
    assert changed["request"] == {"id": updated.headers["request-id"], "idempotency_key": None}
    assert gone["data"] == {"object": updated.json()}  # the last state
    for event in found:
        assert event["id"].startswith("evt_")
        assert list(event) == ["id", "type", "created_at", "data", "request"]
        assert api.get(f"{EVENTS}/{event['id']}").json() == event
    assert made["created_at"] == created.json()["created_at"]


def test_previous_attributes_name_only_the_fields_that_changed(
    api: Caller, resource: Resource
) -> None:
    optional = [f.name for f in resource.fields if not f.required]
    first, second = optional[0], optional[1]
    body = valid_body(resource, **{first: "one", second: "two"})
    object_id = api.post(resource.path, json=body).json()["id"]
    required = resource.required_fields[0].name
    # Sent but unchanged (second), changed (first), cleared (required stays: sent as is).
    response = api.patch(
        f"{resource.path}/{object_id}",
        json={first: "uno", second: "two", required: body[required]},
    )
    assert response.status_code == 200
    api.patch(f"{resource.path}/{object_id}", json={second: None})

    cleared, renamed = events(api, type=f"{resource.event_name}.updated")
    assert renamed["data"]["previous_attributes"] == {first: "one"}
    assert cleared["data"]["previous_attributes"] == {second: "two"}
    assert cleared["data"]["object"][second] is None


def test_an_update_setting_no_field_or_a_time_field_keeps_the_right_old_values(
    api: Caller, resource: Resource
) -> None:
    """The stored old values are those of the fields an update sets (PostgreSQL reads only
    theirs): none for an empty PATCH, and a time field's own (not its derived column's)."""
    body = valid_body(resource)
    path = f"{resource.path}/{api.post(resource.path, json=body).json()['id']}"
    assert api.patch(path, json={}).status_code == 200
    expected: list[dict[str, Any]] = [{}]
    for field in resource.time_range_fields:
        changed = api.patch(path, json={field.name: "2026-12-01T10:00:00Z"})
        assert changed.status_code == 200, changed.text
        expected.insert(0, {field.name: body[field.name]})

    found = events(api, type=f"{resource.event_name}.updated")
    assert [e["data"]["previous_attributes"] for e in found] == expected


def test_refused_writes_and_replays_record_nothing(api: Caller, resource: Resource) -> None:
    headers = {"Idempotency-Key": "once"}
    first = api.post(resource.path, json=valid_body(resource), headers=headers)
    replay = api.post(resource.path, json=valid_body(resource), headers=headers)
    assert replay.headers.get("idempotent-replayed") == "true"
    object_id = first.json()["id"]
    refused = [
        api.post(resource.path, json={}),  # a required field is missing
        api.patch(f"{resource.path}/{object_id}", json={"nope": "x"}),
        api.patch(f"{resource.path}/{resource.id_prefix}missing", json={}),
        api.patch(
            f"{resource.path}/{object_id}", json={}, headers={"If-Match": '"1"'}
        ),  # stale version
        api.delete(f"{resource.path}/{object_id}", headers={"If-Match": '"1"'}),
        api.delete(f"{resource.path}/{resource.id_prefix}missing"),
    ]
    assert [r.status_code // 100 for r in refused] == [4] * len(refused)
    assert len(events(api)) == 1
    assert api.get(EVENTS).json()["total"] == 1


def test_a_random_sequence_of_writes_is_recorded_exactly(api: Caller) -> None:
    """Every change of a random sequence of writes appears exactly once, in order, with the
    object as the write returned it and exactly the changed fields' old values."""
    rng = random.Random(20261130)
    alive: dict[str, tuple[Resource, dict[str, Any]]] = {}
    expected: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for _ in range(60):
        action = rng.choice(["create", "update", "update", "delete"] if alive else ["create"])
        if action == "create":
            resource = rng.choice(RESOURCES)
            made = api.post(resource.path, json=valid_body(resource)).json()
            alive[made["id"]] = (resource, made)
            expected.append((f"{resource.event_name}.created", made, None))
            continue
        object_id = rng.choice(sorted(alive))
        resource, before = alive[object_id]
        if action == "delete":
            assert api.delete(f"{resource.path}/{object_id}").status_code == 200
            expected.append((f"{resource.event_name}.deleted", alive.pop(object_id)[1], None))
            continue
        names = rng.sample([f.name for f in resource.fields if not f.required], 2)
        change = {name: rng.choice([None, "a", "b", before[name]]) for name in names}
        after = api.patch(f"{resource.path}/{object_id}", json=change).json()
        alive[object_id] = (resource, after)
        changed = {n: before[n] for n in names if before[n] != after[n]}
        expected.append((f"{resource.event_name}.updated", after, changed))

    found = events(api)[::-1]
    assert len(found) == len(expected)
    for event, (kind, obj, previous) in zip(found, expected, strict=True):
        assert event["type"] == kind
        assert event["data"]["object"] == obj
        assert event["data"].get("previous_attributes") == previous
    assert api.get(EVENTS).json()["total"] == len(expected)


def test_the_list_filters_by_type_and_time_and_pages_by_cursor(api: Caller) -> None:
    for resource in (APPOINTMENT, PARTY_LINK, APPOINTMENT):
        made = api.post(resource.path, json=valid_body(resource)).json()
        api.delete(f"{resource.path}/{made['id']}")
    everything = events(api)
    assert len(everything) == 6

    def types(**params: str) -> list[str]:
        return [e["type"] for e in events(api, **params)]

    assert types(type="appointment.created") == ["appointment.created"] * 2
    assert types(type="appointment.*") == ["appointment.deleted", "appointment.created"] * 2
    assert types(type="*.deleted") == [
        "appointment.deleted",
        "party_link.deleted",
        "appointment.deleted",
    ]
    assert len(types(type="*")) == 6
    assert types(type="invoice.created") == []  # a type no resource has matches nothing
    assert api.get(EVENTS, params={"type": "appointment.created"}).json()["total"] == 2
    bad = api.get(EVENTS, params={"type": "Appointment;drop"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "type"
    unknown = api.get(EVENTS, params={"object_id": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "parameter_unknown"

    middle = everything[2]
    newer = events(api, **{"created_at[gt]": middle["created_at"]})
    assert all(e["created_at"] > middle["created_at"] for e in newer)
    page = api.get(EVENTS, params={"limit": "2", "starting_after": everything[1]["id"]}).json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in everything[2:4]]
    assert page["has_more"] is True
    assert page["total"] == 6
    back = api.get(EVENTS, params={"limit": "2", "ending_before": everything[4]["id"]}).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in everything[2:4]]
    missing = api.get(EVENTS, params={"starting_after": "evt_0000000000000000000000000"})
    assert missing.status_code == 400
    assert api.get(f"{EVENTS}/evt_nope").status_code == 404
    assert api.post(EVENTS, json={}).status_code == 405


def test_events_belong_to_one_account_and_mode(server: Server, resource: Resource) -> None:
    owner = server.new_caller("test")
    stranger = server.new_caller("test")
    live = server.new_caller("live", owner.account_name)
    made = owner.post(resource.path, json=valid_body(resource)).json()
    event = events(owner)[0]
    assert event["data"]["object"]["id"] == made["id"]
    for other in (stranger, live):
        assert events(other) == []
        assert other.get(f"{EVENTS}/{event['id']}").status_code == 404


def test_events_are_swept_after_their_retention(server: Server, api: Caller) -> None:
    made = api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).json()
    api.patch(f"{APPOINTMENT.path}/{made['id']}", json={"status": "confirmed"})
    old, recent = events(api)[::-1]
    retention_ms = server.app.settings.event_retention_days * 86_400_000
    age = now_ms() - retention_ms - 1000

    def backdate(connection: sa.Connection) -> None:
        connection.execute(
            sa.text("UPDATE events SET created_at = :t WHERE id = :id"),
            {"t": age, "id": old["id"]},
        )
        connection.commit()

    migrate.run_with_connection(migrate.alembic_url(server.database_url), backdate)
    server.run(server.app.sweep)
    assert [e["id"] for e in events(api)] == [recent["id"]]
    assert api.get(EVENTS).json()["total"] == 1


@pytest.mark.parametrize("resource", [APPOINTMENT], ids=["appointment"])
def test_writes_record_no_events_when_they_are_off(server: Server, resource: Resource) -> None:
    app = OverplaneApp(
        Settings(database_url=server.database_url, access_log=False, events=False, **NO_LIMITS)
    )
    caller = server.new_caller()
    with TestClient(app) as client:
        quiet = Caller(client, caller.key, caller.account_name)
        made = quiet.post(resource.path, json=valid_body(resource))
        assert made.status_code == 201
        assert quiet.get(EVENTS).json() == {"data": [], "has_more": False, "total": 0}
