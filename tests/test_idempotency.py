"""``Idempotency-Key`` with Stripe's semantics, through HTTP, on both resources and backends.

The rules (docs/api.md, "Safe retries"): the first request runs; a repeat with the same key,
method, path and body gets the stored status, headers and body back byte for byte, with
``Idempotent-Replayed: true`` and the first request's ``Request-Id``, however the object has
changed since; the same key with another method, path or body is ``422
idempotency_key_reused``; 4xx responses are stored and replayed too; keys are scoped to the
account and the mode; 1 to 255 characters; ``GET`` ignores the header; keys are honoured for
``OVERPLANE_IDEMPOTENCY_TTL_HOURS`` and then swept.

Concurrent requests with one key (``409 idempotency_key_in_use``) and keys shared by several
server processes are in ``test_processes.py``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx

from overplane.declarations import Resource
from tests.helpers import (
    REPLAYED,
    Caller,
    Server,
    assert_replay_of,
    in_process,
    optional_field,
    sql,
    valid_body,
)

HOUR_MS = 3_600_000


def new_key() -> str:
    return f"idem-{secrets.token_hex(8)}"


def send(
    api: Caller, method: str, path: str, body: Any = None, key: str | None = None
) -> httpx.Response:
    """``method path`` with ``body`` (JSON-encoded, or bytes as they are) and the key."""
    headers = {} if key is None else {"Idempotency-Key": key}
    if body is None:
        return api.request(method, path, headers=headers)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    return api.request(method, path, content=content, headers=headers)


def assert_key_reused(response: httpx.Response, *named: str) -> None:
    """422 idempotency_key_reused, its message naming each of ``named``."""
    assert response.status_code == 422, response.text
    assert response.headers.get(REPLAYED) is None
    error = response.json()["error"]
    assert error["type"] == "idempotency_error"
    assert error["code"] == "idempotency_key_reused"
    assert error["request_id"] == response.headers["request-id"]
    for word in named:
        assert word in error["message"], (word, error["message"])


def key_rows(server: Server, key: str) -> int:
    """How many stored keys are called ``key`` (read behind the server's back)."""
    rows = sql(server.database_url, "SELECT count(*) FROM idempotency_keys WHERE key = ?", key)
    return int(rows[0][0])


def age_key(server: Server, key: str, hours: float) -> None:
    """Pretend the key was first used ``hours`` ago."""
    assert key_rows(server, key) == 1
    sql(
        server.database_url,
        "UPDATE idempotency_keys SET created_at = ? WHERE key = ?",
        time.time_ns() // 1_000_000 - int(hours * HOUR_MS),
        key,
    )


def test_repeated_create_replays_the_first_response(api: Caller, resource: Resource) -> None:
    """A repeated POST replays the first 201 byte for byte, with Idempotent-Replayed, its
    Request-Id, Location and ETag, and creates nothing more: exactly one object exists."""
    key = new_key()
    body = valid_body(resource)
    first = send(api, "POST", resource.path, body, key)
    assert first.status_code == 201, first.text
    for _ in range(2):
        assert_replay_of(send(api, "POST", resource.path, body, key), first)
    assert api.total(resource) == 1
    assert api.get(first.headers["location"]).json() == first.json()


def test_replay_survives_update_and_delete_of_the_object(api: Caller, resource: Resource) -> None:
    """The replay is the stored response, not the object now: after an update and after a
    delete, the repeated POST still gets the first 201 and still creates nothing."""
    key = new_key()
    body = valid_body(resource)
    first = send(api, "POST", resource.path, body, key)
    location = first.headers["location"]
    field = optional_field(resource).name
    assert api.patch(location, json={field: "changed since"}).status_code == 200
    assert_replay_of(send(api, "POST", resource.path, body, key), first)
    assert api.get(location).json()[field] == "changed since"
    assert api.delete(location).status_code == 200
    assert_replay_of(send(api, "POST", resource.path, body, key), first)
    assert api.get(location).status_code == 404
    assert api.total(resource) == 0


def test_patch_with_a_key_runs_once(api: Caller, resource: Resource) -> None:
    """A repeated PATCH replays the first 200 and does not apply again: a later update made
    without the key stays in place."""
    location = api.post(resource.path, json=valid_body(resource)).headers["location"]
    field = optional_field(resource).name
    key = new_key()
    first = send(api, "PATCH", location, {field: "first"}, key)
    assert first.status_code == 200, first.text
    assert first.json()[field] == "first"
    assert api.patch(location, json={field: "second"}).status_code == 200
    replay = send(api, "PATCH", location, {field: "first"}, key)
    assert_replay_of(replay, first)
    assert replay.json()[field] == "first"
    assert api.get(location).json()[field] == "second"


def test_delete_with_a_key_replays_its_200(api: Caller, resource: Resource) -> None:
    """A repeated DELETE gets the stored 200 and deleted body, although the object is gone
    (without the key the same DELETE is a 404)."""
    created = api.post(resource.path, json=valid_body(resource)).json()
    location = f"{resource.path}/{created['id']}"
    key = new_key()
    first = send(api, "DELETE", location, key=key)
    assert first.status_code == 200, first.text
    assert first.json() == {"id": created["id"], "deleted": True}
    assert_replay_of(send(api, "DELETE", location, key=key), first)
    assert api.delete(location).status_code == 404
    assert api.total(resource) == 0


def test_same_key_with_another_body_is_refused(api: Caller, resource: Resource) -> None:
    """Same key, different body: 422 idempotency_key_reused naming the body, and nothing is
    created. The body is compared byte for byte: equal JSON spelt differently is another body."""
    key = new_key()
    body = valid_body(resource)
    first = send(api, "POST", resource.path, body, key)
    assert first.status_code == 201
    field = optional_field(resource).name
    assert_key_reused(send(api, "POST", resource.path, {**body, field: "other"}, key), "body")
    respelt = json.dumps(body, indent=2).encode()
    assert_key_reused(send(api, "POST", resource.path, respelt, key), "body")
    assert api.total(resource) == 1
    assert_replay_of(send(api, "POST", resource.path, body, key), first)


def test_same_key_with_another_path_is_refused(api: Caller, resource: Resource) -> None:
    """Same key and body on another object's path: 422 naming both paths; the second object
    is not changed."""
    one = api.post(resource.path, json=valid_body(resource)).headers["location"]
    two = api.post(resource.path, json=valid_body(resource)).headers["location"]
    before = api.get(two).json()
    field = optional_field(resource).name
    key = new_key()
    assert send(api, "PATCH", one, {field: "patched"}, key).status_code == 200
    assert_key_reused(send(api, "PATCH", two, {field: "patched"}, key), one, two)
    assert api.get(two).json() == before


def test_same_key_with_another_method_is_refused(api: Caller, resource: Resource) -> None:
    """Same key with another method: 422 naming both methods, and nothing is written (the
    DELETE does not delete, the PATCH does not update)."""
    location = api.post(resource.path, json=valid_body(resource)).headers["location"]
    before = api.get(location).json()
    key = new_key()
    assert send(api, "PATCH", location, {}, key).status_code == 200
    assert_key_reused(send(api, "DELETE", location, key=key), "PATCH", "DELETE")
    assert api.get(location).status_code == 200

    created_with = new_key()
    assert send(api, "POST", resource.path, valid_body(resource), created_with).status_code == 201
    field = optional_field(resource).name
    refused = send(api, "PATCH", location, {field: "never"}, created_with)
    assert_key_reused(refused, "POST", "PATCH", resource.path)
    assert api.get(location).json()[field] == before[field]
    assert api.total(resource) == 2


def test_a_client_error_is_stored_and_replayed(api: Caller, resource: Resource) -> None:
    """A 400 is a response like any other: the repeat gets the same body, whose request_id
    is the first request's, as is the Request-Id header; the key then stays taken."""
    key = new_key()
    body = {**valid_body(resource), "no_such_field": "x"}
    first = send(api, "POST", resource.path, body, key)
    assert first.status_code == 400
    error = first.json()["error"]
    assert error["code"] == "parameter_unknown"
    assert error["request_id"] == first.headers["request-id"]
    replay = send(api, "POST", resource.path, body, key)
    assert_replay_of(replay, first)
    assert replay.json()["error"]["request_id"] == first.headers["request-id"]
    assert_key_reused(send(api, "POST", resource.path, valid_body(resource), key), "body")
    assert api.total(resource) == 0

    missing = f"{resource.path}/{resource.id_prefix}{'x' * 24}"
    delete_key = new_key()
    not_found = send(api, "DELETE", missing, key=delete_key)
    assert not_found.status_code == 404
    again = send(api, "DELETE", missing, key=delete_key)
    assert_replay_of(again, not_found)


def test_keys_are_scoped_to_the_account_and_mode(
    server: Server, api: Caller, resource: Resource
) -> None:
    """The same key in another account, or in the live mode of the same account, is another
    key: each runs as a first request and creates its own object."""
    key = new_key()
    body = valid_body(resource)
    first = send(api, "POST", resource.path, body, key)
    assert first.status_code == 201
    others = [server.new_caller(), server.new_caller("live", account_name=api.account_name)]
    for other in others:
        created = send(other, "POST", resource.path, body, key)
        assert created.status_code == 201, created.text
        assert created.headers.get(REPLAYED) is None
        assert created.json()["id"] != first.json()["id"]
        assert other.total(resource) == 1
        assert_replay_of(send(other, "POST", resource.path, body, key), created)
    assert_replay_of(send(api, "POST", resource.path, body, key), first)
    assert api.total(resource) == 1


def test_key_length_limits(api: Caller, resource: Resource) -> None:
    """A key of 255 characters is honoured; 256 characters, or an empty key, is a 400 naming
    Idempotency-Key, and the request does not run."""
    longest = "k" * 254 + secrets.choice("abcdefgh")
    body = valid_body(resource)
    first = send(api, "POST", resource.path, body, longest)
    assert first.status_code == 201, first.text
    assert_replay_of(send(api, "POST", resource.path, body, longest), first)
    for bad in (longest + "k", ""):
        refused = send(api, "POST", resource.path, body, bad)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "parameter_invalid"
        assert error["param"] == "Idempotency-Key"
        assert "Idempotency-Key" in error["message"]
    assert api.total(resource) == 1


def test_get_ignores_the_key(api: Caller, resource: Resource) -> None:
    """GET with an Idempotency-Key is an ordinary GET: never replayed, and it does not take
    the key (a POST with it afterwards runs)."""
    key = new_key()
    before = api.get(resource.path, headers={"Idempotency-Key": key})
    assert before.json()["total"] == 0
    created = send(api, "POST", resource.path, valid_body(resource), key)
    assert created.status_code == 201
    assert created.headers.get(REPLAYED) is None
    after = api.get(resource.path, headers={"Idempotency-Key": key})
    assert after.json()["total"] == 1
    assert after.headers.get(REPLAYED) is None
    assert after.headers["request-id"] != before.headers["request-id"]
    one = api.get(created.headers["location"], headers={"Idempotency-Key": key})
    assert one.status_code == 200
    assert one.headers.get(REPLAYED) is None


def test_an_expired_key_runs_again(server: Server, api: Caller, resource: Resource) -> None:
    """Keys are honoured for the TTL (24 hours by default) and no longer: a key first used
    23 hours ago still replays, one used 25 hours ago runs as new; an app configured with
    OVERPLANE_IDEMPOTENCY_TTL_HOURS=1 already runs a 2-hour-old key as new."""
    body = valid_body(resource)
    recent, expired = new_key(), new_key()
    first_recent = send(api, "POST", resource.path, body, recent)
    first_expired = send(api, "POST", resource.path, body, expired)
    age_key(server, recent, 23)
    age_key(server, expired, 25)
    assert_replay_of(send(api, "POST", resource.path, body, recent), first_recent)
    again = send(api, "POST", resource.path, body, expired)
    assert again.status_code == 201
    assert again.headers.get(REPLAYED) is None
    assert again.json()["id"] != first_expired.json()["id"]
    assert api.total(resource) == 3

    short_key = new_key()
    first_short = send(api, "POST", resource.path, body, short_key)
    age_key(server, short_key, 2)
    assert_replay_of(send(api, "POST", resource.path, body, short_key), first_short)
    with in_process(server.database_url, idempotency_ttl_hours=1) as short:
        on_short = short.caller(api.key, api.account_name)
        rerun = send(on_short, "POST", resource.path, body, short_key)
        assert rerun.status_code == 201
        assert rerun.headers.get(REPLAYED) is None
        assert rerun.json()["id"] != first_short.json()["id"]
    assert api.total(resource) == 5


def test_sweep_deletes_expired_keys_only(server: Server, api: Caller, resource: Resource) -> None:
    """The sweeper deletes keys older than the TTL and keeps younger ones."""
    body = valid_body(resource)
    old, young = new_key(), new_key()
    assert send(api, "POST", resource.path, body, old).status_code == 201
    first_young = send(api, "POST", resource.path, body, young)
    age_key(server, old, 24.5)
    age_key(server, young, 23.5)
    server.run(server.app.sweep)
    assert key_rows(server, old) == 0
    assert key_rows(server, young) == 1
    assert_replay_of(send(api, "POST", resource.path, body, young), first_young)
