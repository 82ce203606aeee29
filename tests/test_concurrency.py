"""Optimistic concurrency: ``ETag``, ``If-Match`` and ``If-None-Match``, and concurrent writers.

The rules (docs/api.md, "Concurrency"): retrieve, create and update return a strong ETag; a
stale ``If-Match`` on PATCH or DELETE is ``412 precondition_failed`` and changes nothing;
``*`` matches any version; a weak tag never matches ``If-Match``; a missing object is 404;
``If-None-Match`` with the current tag is ``304``. Of two writers with the same ``If-Match``
exactly one wins; without it the last write wins and a PATCH is atomic.

The single-request rules run in process; the races run against a real ``overplane serve``
(threads, each with its own HTTP connection), where requests truly overlap.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from overplane.declarations import Resource
from tests.helpers import Caller, RunningServer, Server, ServerLauncher, field_pair, valid_body

STRONG_ETAG = re.compile(r'^"[0-9]+"$')
IF_MATCH_ROUNDS = 25
WRITERS = 4
PATCHES_PER_WRITER = 25


def version(response: httpx.Response) -> int:
    """The number inside a response's strong ETag."""
    tag = response.headers["etag"]
    assert STRONG_ETAG.match(tag), tag
    return int(tag[1:-1])


def assert_precondition_failed(response: httpx.Response) -> None:
    assert response.status_code == 412, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "precondition_failed"
    assert error["param"] == "If-Match"


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``overplane serve`` on the run's database; keys come from the in-process ``server``."""
    launcher = ServerLauncher(tmp_path_factory.mktemp("serve"))
    try:
        yield launcher(database_url, OVERPLANE_ACCESS_LOG="false")
    finally:
        launcher.stop_all()


def test_etag_on_create_retrieve_and_update(api: Caller, resource: Resource) -> None:
    """Create, retrieve and update return a strong, quoted ETag; it is the same for the same
    version and changes with every update (even an empty one)."""
    created = api.post(resource.path, json=valid_body(resource))
    location = created.headers["location"]
    fetched = api.get(location)
    assert fetched.headers["etag"] == created.headers["etag"]
    previous = version(created)
    for body in ({field_pair(resource)[0]: "x"}, {}):
        updated = api.patch(location, json=body)
        assert version(updated) > previous
        assert api.get(location).headers["etag"] == updated.headers["etag"]
        previous = version(updated)


def test_if_none_match_gives_304_while_unchanged(api: Caller, resource: Resource) -> None:
    """If-None-Match with the current tag (alone, in a list, weak, or *) is 304 with no body
    and the ETag; with an old tag it is 200 with the object."""
    location = api.post(resource.path, json=valid_body(resource)).headers["location"]
    old = api.get(location).headers["etag"]
    updated = api.patch(location, json={field_pair(resource)[0]: "y"})
    current = updated.headers["etag"]
    for header in (current, f'"1", {current}', f"W/{current}", "*"):
        unchanged = api.get(location, headers={"If-None-Match": header})
        assert unchanged.status_code == 304, header
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == current
    changed = api.get(location, headers={"If-None-Match": old})
    assert changed.status_code == 200
    assert changed.json() == updated.json()
    assert changed.headers["etag"] == current


def test_stale_if_match_changes_nothing(api: Caller, resource: Resource) -> None:
    """A PATCH or DELETE whose If-Match names an old version is 412 precondition_failed, and
    the object is exactly as it was; a weak tag of the current version does not match either."""
    location = api.post(resource.path, json=valid_body(resource)).headers["location"]
    stale = api.get(location).headers["etag"]
    first, second = field_pair(resource)
    current = api.patch(location, json={first: "current"})
    for header in (stale, f"W/{current.headers['etag']}", '"not-a-version"'):
        assert_precondition_failed(
            api.patch(location, json={first: "lost", second: "lost"}, headers={"If-Match": header})
        )
        assert_precondition_failed(api.delete(location, headers={"If-Match": header}))
        now = api.get(location)
        assert now.json() == current.json()
        assert now.headers["etag"] == current.headers["etag"]


def test_matching_if_match_writes(api: Caller, resource: Resource) -> None:
    """If-Match with the current tag (alone or in a list) or * lets a PATCH and a DELETE
    through."""
    location = api.post(resource.path, json=valid_body(resource)).headers["location"]
    first, _ = field_pair(resource)
    tag = api.get(location).headers["etag"]
    one = api.patch(location, json={first: "one"}, headers={"If-Match": tag})
    assert one.status_code == 200
    listed = f'"1", {one.headers["etag"]}'
    two = api.patch(location, json={first: "two"}, headers={"If-Match": listed})
    assert two.status_code == 200
    three = api.patch(location, json={first: "three"}, headers={"If-Match": "*"})
    assert three.status_code == 200
    assert api.get(location).json()[first] == "three"
    assert api.delete(location, headers={"If-Match": "*"}).status_code == 200
    assert api.get(location).status_code == 404

    other = api.post(resource.path, json=valid_body(resource))
    deleted = api.delete(other.headers["location"], headers={"If-Match": other.headers["etag"]})
    assert deleted.status_code == 200


def test_if_match_on_a_missing_object_is_404(api: Caller, resource: Resource) -> None:
    """If-Match on an object that is gone (or never was) is 404 resource_missing, not 412."""
    created = api.post(resource.path, json=valid_body(resource))
    location = created.headers["location"]
    assert api.delete(location).status_code == 200
    never = f"{resource.path}/{resource.id_prefix}{secrets.token_urlsafe(16)}"
    for path in (location, never):
        for header in (created.headers["etag"], "*", '"1"'):
            for response in (
                api.patch(path, json={}, headers={"If-Match": header}),
                api.delete(path, headers={"If-Match": header}),
            ):
                assert response.status_code == 404, (path, header)
                assert response.json()["error"]["code"] == "resource_missing"


@pytest.mark.slow
def test_two_writers_with_the_same_if_match_one_wins(
    served: RunningServer, server: Server, resource: Resource
) -> None:
    """Two clients read the same version and both PATCH with If-Match at once: in every
    round exactly one gets 200 and the other 412, and the object holds exactly the winner's
    values (both fields) and the winner's ETag."""
    key = server.new_caller().key
    first, second = field_pair(resource)
    clients = [served.client(key) for _ in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    try:
        location = clients[0].post(resource.path, json=valid_body(resource)).headers["location"]

        def write(writer: int, round_: int) -> tuple[str, str, httpx.Response]:
            client = clients[writer]
            tag = client.get(location).headers["etag"]
            token = f"w{writer}-r{round_}"
            barrier.wait()  # both have read; now both write
            headers = {"If-Match": tag}
            return (
                tag,
                token,
                client.patch(location, json={first: token, second: token}, headers=headers),
            )

        with ThreadPoolExecutor(2) as pool:
            for round_ in range(IF_MATCH_ROUNDS):
                results = list(pool.map(write, (0, 1), (round_, round_)))
                assert results[0][0] == results[1][0], "both writers read the same version"
                statuses = sorted(response.status_code for _, _, response in results)
                assert statuses == [200, 412], (round_, [r.text for _, _, r in results])
                (_, token, won), (_, _, lost) = sorted(
                    results, key=lambda result: result[2].status_code
                )
                assert_precondition_failed(lost)
                now = clients[0].get(location)
                assert (now.json()[first], now.json()[second]) == (token, token)
                assert now.json() == won.json()
                assert now.headers["etag"] == won.headers["etag"]
    finally:
        for client in clients:
            client.close()


@pytest.mark.slow
def test_concurrent_patches_are_atomic_and_the_last_one_wins(
    served: RunningServer, server: Server, resource: Resource
) -> None:
    """Without If-Match, writers that each set two fields to their own token never leave the
    object (as any reader sees it, or at the end) with fields of two different writes; every
    write gets a distinct, newer version, and the object ends as the newest write left it."""
    key = server.new_caller().key
    first, second = field_pair(resource)
    with served.client(key) as setup:
        location = setup.post(resource.path, json=valid_body(resource)).headers["location"]
    done = threading.Event()

    def writer(number: int) -> list[httpx.Response]:
        responses = []
        with served.client(key) as client:
            for i in range(PATCHES_PER_WRITER):
                token = f"writer{number}-{i}"
                response = client.patch(location, json={first: token, second: token})
                assert response.status_code == 200, response.text
                assert (response.json()[first], response.json()[second]) == (token, token)
                responses.append(response)
        return responses

    def reader() -> int:
        reads = 0
        with served.client(key) as client:
            while not done.is_set() or reads == 0:
                seen = client.get(location).json()
                assert seen[first] == seen[second], seen
                reads += 1
        return reads

    with ThreadPoolExecutor(WRITERS + 1) as pool:
        reads = pool.submit(reader)
        writes = [pool.submit(writer, number) for number in range(WRITERS)]
        try:
            responses = [response for future in writes for response in future.result()]
        finally:
            done.set()
        assert reads.result() > 0

    versions = [version(response) for response in responses]
    assert len(set(versions)) == len(responses) == WRITERS * PATCHES_PER_WRITER
    last = max(responses, key=version)
    with served.client(key) as client:
        final = client.get(location)
    assert final.json() == last.json()
    assert final.headers["etag"] == last.headers["etag"]
