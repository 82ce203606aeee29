"""Several ``overplane serve`` processes on one database: PostgreSQL, and one SQLite file.

A server process keeps nothing a client depends on (docs/deployment.md, "Many stateless
processes"), so requests may land on any process: a write on one is read at once on the
other, list totals agree, an ``Idempotency-Key`` used on one is replayed by the other, and an
``If-Match`` tag read from one guards a write on the other. And the issue's test: 50
concurrent identical POSTs with one key, spread over two processes, create exactly one object;
every response is that object or ``409 idempotency_key_in_use``.

Each test gets a fresh database; it is migrated and its key registered before the two
processes start (together, with ``--no-migrate``, as a rolling deploy runs them).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from overplane.declarations import RESOURCES
from tests.helpers import (
    REPLAYED,
    Caller,
    RunningServer,
    ServerLauncher,
    assert_replay_of,
    new_api_key,
    optional_field,
    prepare_database,
    valid_body,
)

#: Every test here runs two real ``overplane serve`` processes.
pytestmark = pytest.mark.slow

CONCURRENT_POSTS = 50


@dataclass
class Pair:
    """Two server processes on one database, and a client of each with the same key."""

    servers: tuple[RunningServer, RunningServer]
    key: str
    a: Caller
    b: Caller


@pytest.fixture
def pair(fresh_database_url: str, start_server: ServerLauncher) -> Iterator[Pair]:
    """Two ``overplane serve`` processes on one fresh database."""
    key = new_api_key()
    prepare_database(fresh_database_url, key)
    env = {"OVERPLANE_BOOTSTRAP_KEY": key, "OVERPLANE_ACCESS_LOG": "false"}
    one, two = (start_server.launch(fresh_database_url, "--no-migrate", **env) for _ in range(2))
    one.wait_ready()
    two.wait_ready()
    with one.client(key) as a, two.client(key) as b:
        yield Pair((one, two), key, Caller(a, key, "default"), Caller(b, key, "default"))


def test_writes_are_read_at_once_on_the_other_process(pair: Pair) -> None:
    """Read-your-writes across processes: an object created, updated or deleted through one
    process is retrieved (or gone) through the other at once, and both report the same list
    total after every write, newest first."""
    for resource in RESOURCES:
        field = optional_field(resource).name
        created: list[str] = []
        for i in range(6):
            writer, reader = (pair.a, pair.b) if i % 2 == 0 else (pair.b, pair.a)
            response = writer.post(resource.path, json=valid_body(resource))
            assert response.status_code == 201, response.text
            location = response.headers["location"]
            created.append(location)
            assert reader.get(location).json() == response.json()
            for client in (pair.a, pair.b):
                listed = client.get(resource.path).json()
                assert listed["total"] == len(created)
                assert listed["data"][0]["id"] == response.json()["id"]
            updated = reader.patch(location, json={field: f"by the other {i}"})
            assert writer.get(location).json() == updated.json()
        for i, location in enumerate(created[:3]):
            writer, reader = (pair.a, pair.b) if i % 2 == 0 else (pair.b, pair.a)
            assert writer.delete(location).status_code == 200
            assert reader.get(location).status_code == 404
            assert pair.a.total(resource) == pair.b.total(resource) == len(created) - i - 1


def test_idempotency_keys_and_if_match_hold_across_processes(pair: Pair) -> None:
    """A key used on one process is replayed by the other (and refused there for another
    body); an If-Match tag read on one process guards writes on the other: the write with the
    current tag wins, the stale one is 412 and changes nothing."""
    for resource in RESOURCES:
        body = json.dumps(valid_body(resource)).encode()
        headers = {"Idempotency-Key": secrets.token_hex(8), "Content-Type": "application/json"}
        first = pair.a.post(resource.path, content=body, headers=headers)
        assert first.status_code == 201, first.text
        assert_replay_of(pair.b.post(resource.path, content=body, headers=headers), first)
        reused = pair.b.post(resource.path, content=body + b" ", headers=headers)
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert pair.a.total(resource) == pair.b.total(resource) == 1
        location = first.headers["location"]

        field = optional_field(resource).name
        patch_key = {"Idempotency-Key": secrets.token_hex(8)}
        patched = pair.b.patch(location, json={field: "once"}, headers=patch_key)
        assert patched.status_code == 200
        assert pair.b.patch(location, json={field: "later"}).status_code == 200
        assert_replay_of(pair.a.patch(location, json={field: "once"}, headers=patch_key), patched)
        assert pair.a.get(location).json()[field] == "later"

        read_on_a = pair.a.get(location)
        tag = read_on_a.headers["etag"]
        won = pair.b.patch(location, json={field: "b won"}, headers={"If-Match": tag})
        assert won.status_code == 200
        for stale in (
            pair.a.patch(location, json={field: "a lost"}, headers={"If-Match": tag}),
            pair.a.delete(location, headers={"If-Match": tag}),
        ):
            assert stale.status_code == 412, stale.text
            assert stale.json()["error"]["code"] == "precondition_failed"
        assert pair.b.get(location).json() == won.json()
        assert (
            pair.a.get(location, headers={"If-None-Match": won.headers["etag"]}).status_code == 304
        )
        fresh = {"If-Match": won.headers["etag"]}
        assert pair.a.delete(location, headers=fresh).status_code == 200
        assert pair.b.get(location).status_code == 404


def test_fifty_concurrent_posts_with_one_key_create_one_object(pair: Pair) -> None:
    """50 identical POSTs with one Idempotency-Key, sent at once and spread over the two
    processes, create exactly one object: every response is that object (201; exactly one of
    them not a replay) or 409 idempotency_key_in_use."""
    resource = RESOURCES[-1]
    body = json.dumps(valid_body(resource)).encode()
    headers = {"Idempotency-Key": secrets.token_hex(8), "Content-Type": "application/json"}
    servers = pair.servers
    barrier = threading.Barrier(CONCURRENT_POSTS, timeout=60)

    def post(number: int) -> httpx.Response:
        with servers[number % 2].client(pair.key) as client:
            client.get("/healthz")  # connect before the barrier, so the POSTs really overlap
            barrier.wait()
            return client.post(resource.path, content=body, headers=headers)

    with ThreadPoolExecutor(CONCURRENT_POSTS) as pool:
        responses = list(pool.map(post, range(CONCURRENT_POSTS)))

    created = [r for r in responses if r.status_code == 201]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_use) == CONCURRENT_POSTS, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    assert len({r.content for r in created}) == 1
    assert len([r for r in created if r.headers.get(REPLAYED) is None]) == 1
    for response in in_use:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_in_use")
    assert pair.a.total(resource) == pair.b.total(resource) == 1
    only = pair.b.get(resource.path).json()["data"][0]
    assert only == created[0].json()
    assert pair.a.post(resource.path, content=body, headers=headers).content == created[0].content
