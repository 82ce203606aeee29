"""Contract tests for the five operations on objects: create, retrieve, list, update, delete.

Also ids, timestamps, trailing slashes and the published pages' examples. Every test talks to
the real application over HTTP (see ``conftest.py``) and runs on each backend under test.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from overplane.storage import objects as objects_module
from tests.helpers import Caller, Server, assert_error, object_path, valid_body

T = TypeVar("T")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JSON_HEADERS = {"Content-Type": "application/json"}

# The request bodies of the published pages' curl examples, byte for byte (the Appointment
# page's e-mail address was obfuscated by the page; it is sent here exactly as printed).
SEED_CREATE_BODIES = {
    PARTY_LINK.name: b'{"primary_role":"primary_role_example"}',
    APPOINTMENT.name: (
        b'{"customer_name":"customer_name_example","scheduled_time":"scheduled_time_example",'
        b'"status":"draft","customer_email":"[email\xc2\xa0protected]"}'
    ),
}
SEED_UPDATE_BODIES = {
    PARTY_LINK.name: (
        b'{"primary_role":"primary_role_example","secondary_role":"secondary_role_example"}'
    ),
    APPOINTMENT.name: (
        b'{"customer_name":"customer_name_example",'
        b'"customer_phone_number":"customer_phone_number_example"}'
    ),
}


def keys_in_order(resource: Resource) -> list[str]:
    """The keys every object of ``resource`` has, in the contract's order."""
    return ["id", "created_at", "updated_at", *(f.name for f in resource.fields)]


def parse_timestamp(value: str) -> datetime:
    """A contract timestamp as an aware datetime (after checking its exact format)."""
    assert TIMESTAMP.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def full_body(resource: Resource, tag: str = "") -> dict[str, str | None]:
    """A create body with every field set to a distinct value."""
    return {f.name: f"{f.name} value {tag}".strip() for f in resource.fields}


def list_ids(api: Caller, resource: Resource, **params: int) -> list[str]:
    """The ids of one page of the list, in list order."""
    page = api.list(resource, {name: str(value) for name, value in params.items()})
    return [obj["id"] for obj in page["data"]]


# --- create ---------------------------------------------------------------------------------


def test_create_returns_201_location_and_the_object(api: Caller, resource: Resource) -> None:
    """Create: 201, Location /api/{module}/{resource}/{id}, keys in order, unset fields null."""
    body = valid_body(resource)
    response = api.post(resource.path, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    obj = response.json()
    assert list(obj) == keys_in_order(resource)
    assert response.headers["location"] == f"/api/{resource.module}/{resource.name}/{obj['id']}"
    for field in resource.fields:
        assert obj[field.name] == body.get(field.name), field.name
    assert all(obj[f.name] is None for f in resource.fields if not f.required)
    assert obj["created_at"] == obj["updated_at"]


def test_create_with_every_field_returns_each_value(api: Caller, resource: Resource) -> None:
    """Create: every field sent is stored and returned, in the declared order."""
    body = full_body(resource)
    obj = api.post(resource.path, json=body).json()
    assert list(obj) == keys_in_order(resource)
    assert {k: obj[k] for k in body} == body


def test_values_are_returned_exactly_as_sent(api: Caller, resource: Resource) -> None:
    """Values are strings stored verbatim: no trimming, no date or e-mail normalisation."""
    samples = [
        "2024-01-15T09:30:00Z",
        "2024-01-15 09:30:00+02:00",
        "  padded  ",
        "naïve café ☕ 😀 日本語",
        "line one\nline two\ttab",
        'quote " backslash \\ slash /',
        "not-an-email@",
        "",  # an empty optional value stays an empty string, distinct from null
    ]
    optional = [f for f in resource.fields if not f.required]
    required = resource.required_fields[0]
    for sample in samples:
        overrides: dict[str, str | None] = {optional[0].name: sample}
        if sample.strip():
            overrides[required.name] = sample
        created = api.create(resource, **overrides)
        fetched = api.get(object_path(resource, created["id"])).json()
        for name, value in overrides.items():
            assert created[name] == value, (name, sample)
            assert fetched[name] == value, (name, sample)


def test_each_create_makes_a_new_object(api: Caller, resource: Resource) -> None:
    """Two identical creates make two objects with different ids."""
    first = api.create(resource)
    second = api.create(resource)
    assert first["id"] != second["id"]
    assert api.get(resource.path).json()["total"] == 2


# --- retrieve -------------------------------------------------------------------------------


def test_retrieve_returns_the_created_object(api: Caller, resource: Resource) -> None:
    """Retrieve: 200 and the same object, keys in the same order, as create returned."""
    created = api.post(resource.path, json=full_body(resource)).json()
    response = api.get(object_path(resource, created["id"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert list(response.json()) == keys_in_order(resource)
    assert response.json() == created


def test_retrieve_unknown_id_is_404(api: Caller, resource: Resource) -> None:
    """Retrieve of an id that was never created: 404 resource_missing."""
    unknown = api.create(resource)["id"][:-6] + "zzzzzz"
    assert_error(api.get(object_path(resource, unknown)), 404, "resource_missing", "id")


# --- list -----------------------------------------------------------------------------------


def test_list_of_a_new_account_is_empty(api: Caller, resource: Resource) -> None:
    """List: the envelope is exactly data, has_more, total; a new account has nothing."""
    response = api.get(resource.path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert list(response.json()) == ["data", "has_more", "total"]
    assert response.json() == {"data": [], "has_more": False, "total": 0}


def on_server_loop(
    server: Server, api: Caller, work: Callable[[httpx.AsyncClient], Awaitable[T]]
) -> T:
    """Run ``work`` with an async HTTP client holding ``api``'s key, on the server's event loop.

    Requests sent this way go through httpx's ASGI transport without the test client's thread
    hop, so consecutive requests land in the same millisecond often (on SQLite at least; a
    PostgreSQL commit usually takes longer than that).
    """

    async def run() -> T:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=server.app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {api.key}"},
        ) as client:
            return await work(client)

    result: T = server.run(run)
    return result


def burst_cap(server: Server) -> int:
    """How many requests a burst may send while waiting for same-millisecond neighbours.

    SQLite answers in well under a millisecond, so a long burst is cheap there and makes the
    premise of the tests below hold even on a loaded machine; a PostgreSQL commit usually
    takes longer than a millisecond, so a long burst would only cost time.
    """
    return 1000 if server.database_url.startswith("sqlite") else 100


def create_burst(server: Server, api: Caller, resource: Resource) -> list[dict[str, Any]]:
    """Objects created back to back, until several share a millisecond (or the cap is hit)."""

    async def burst(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = []
        ties = 0
        while len(created) < 30 or (len(created) < burst_cap(server) and ties < 5):
            response = await client.post(resource.path, json=valid_body(resource))
            assert response.status_code == 201, response.text
            created.append(response.json())
            ties += len(created) > 1 and created[-2]["created_at"] == created[-1]["created_at"]
        return created

    return on_server_loop(server, api, burst)


class SteppingClock:
    """The storage layer's clock, moving one millisecond every ``reads_per_ms`` reads: bursts
    of writes then share milliseconds on any machine, however busy (the real clock made the
    premise of the tests below depend on the machine's speed)."""

    def __init__(self, reads_per_ms: int = 4) -> None:
        self.reads_per_ms = reads_per_ms
        self.start = int(datetime.now(UTC).timestamp() * 1000)
        self.reads = 0

    @property
    def last(self) -> int:
        """The time the last read gave."""
        return self.start + (self.reads - 1) // self.reads_per_ms

    def __call__(self) -> int:
        self.reads += 1
        return self.last


@pytest.fixture
def stepping_clock(monkeypatch: pytest.MonkeyPatch) -> SteppingClock:
    """The server's object timestamps from a :class:`SteppingClock` for this test."""
    clock = SteppingClock()
    monkeypatch.setattr(objects_module, "now_ms", clock)
    return clock


def count_ties(objects: list[dict[str, Any]]) -> int:
    """How many objects have the same created_at as the one created just before."""
    return sum(a["created_at"] == b["created_at"] for a, b in itertools.pairwise(objects))


def test_list_is_newest_first_with_ties_in_reverse_creation_order(
    server: Server, api: Caller, resource: Resource, stepping_clock: SteppingClock
) -> None:
    """List: newest first; objects created in the same millisecond come latest-created first."""
    created = create_burst(server, api, resource)
    # The premise of this test: the burst did create objects in the same millisecond, and in
    # several different ones.
    assert count_ties(created) > 0
    assert len({obj["created_at"] for obj in created}) > 1
    expected = [obj["id"] for obj in reversed(created)]
    listed = [
        i
        for offset in range(0, len(created), 100)
        for i in list_ids(api, resource, limit=100, offset=offset)
    ]
    assert listed == expected
    # Pages of another size walk the same order: nothing is skipped or repeated at a page
    # boundary, even where one falls between objects created in the same millisecond.
    paged = [
        i for offset in range(0, 70, 7) for i in list_ids(api, resource, limit=7, offset=offset)
    ]
    assert paged == expected[:70]


def test_list_objects_are_rendered_like_retrieve(api: Caller, resource: Resource) -> None:
    """List: each item is the whole object, exactly as retrieve renders it."""
    first = api.post(resource.path, json=full_body(resource, "a")).json()
    second = api.create(resource)
    data = api.get(resource.path).json()["data"]
    assert [list(obj) for obj in data] == [keys_in_order(resource)] * 2
    assert data == [second, first]


def test_list_default_limit_is_20(api: Caller, resource: Resource) -> None:
    """List: without limit, 20 objects per page; has_more and total describe the rest."""
    ids = [api.create(resource)["id"] for _ in range(23)]
    page = api.get(resource.path).json()
    assert [obj["id"] for obj in page["data"]] == ids[::-1][:20]
    assert page["has_more"] is True
    assert page["total"] == 23
    rest = api.get(resource.path, params={"offset": 20}).json()
    assert [obj["id"] for obj in rest["data"]] == ids[::-1][20:]
    assert rest["has_more"] is False


def test_list_limit_and_offset_slice_the_list(api: Caller, resource: Resource) -> None:
    """List: data is the [offset, offset+limit) slice; has_more == offset+len(data) < total."""
    newest_first = [api.create(resource)["id"] for _ in range(7)][::-1]
    for limit in (1, 2, 3, 6, 7, 8, 100):
        for offset in (0, 1, 3, 5, 6, 7, 8, 50):
            page = api.get(resource.path, params={"limit": limit, "offset": offset}).json()
            expected = newest_first[offset : offset + limit]
            assert [obj["id"] for obj in page["data"]] == expected, (limit, offset)
            assert page["total"] == 7, (limit, offset)
            assert page["has_more"] is (offset + len(expected) < 7), (limit, offset)


def test_list_offset_past_the_end_gives_no_data_and_the_true_total(
    api: Caller, resource: Resource
) -> None:
    """List: an offset past the end gives data [] with the true total and has_more false."""
    for _ in range(3):
        api.create(resource)
    for offset in (3, 4, 1000):
        page = api.get(resource.path, params={"offset": offset}).json()
        assert page == {"data": [], "has_more": False, "total": 3}, offset


# --- update ---------------------------------------------------------------------------------


def test_update_is_partial(api: Caller, resource: Resource) -> None:
    """Update: 200 with the whole object; fields not sent are left unchanged."""
    created = api.post(resource.path, json=full_body(resource, "old")).json()
    changed = resource.fields[-1].name
    response = api.patch(object_path(resource, created["id"]), json={changed: "new value"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert list(updated) == keys_in_order(resource)
    assert updated[changed] == "new value"
    for field in resource.fields[:-1]:
        assert updated[field.name] == created[field.name], field.name
    assert updated["id"] == created["id"]
    assert updated["created_at"] == created["created_at"]
    assert api.get(object_path(resource, created["id"])).json() == updated


def test_update_of_every_field(api: Caller, resource: Resource) -> None:
    """Update: every field can be changed at once, and the change is stored."""
    created = api.post(resource.path, json=full_body(resource, "old")).json()
    new = full_body(resource, "new")
    updated = api.patch(object_path(resource, created["id"]), json=new).json()
    assert {k: updated[k] for k in new} == new
    assert api.get(object_path(resource, created["id"])).json() == updated


def test_update_with_null_clears_an_optional_field(api: Caller, resource: Resource) -> None:
    """Update: a field sent as null is cleared; other fields stay."""
    created = api.post(resource.path, json=full_body(resource)).json()
    optional = [f.name for f in resource.fields if not f.required]
    cleared = optional[0]
    updated = api.patch(object_path(resource, created["id"]), json={cleared: None}).json()
    assert updated[cleared] is None
    assert api.get(object_path(resource, created["id"])).json()[cleared] is None
    assert all(updated[name] == created[name] for name in optional[1:])


@pytest.mark.parametrize(
    "value", [None, "", "   ", "\t\n"], ids=["null", "empty", "spaces", "tabs"]
)
def test_update_cannot_clear_a_required_field(
    api: Caller, resource: Resource, value: str | None
) -> None:
    """Update: null or blank on a required field is 400 parameter_invalid; nothing changes."""
    created = api.create(resource)
    path = object_path(resource, created["id"])
    for field in resource.required_fields:
        response = api.patch(path, json={field.name: value})
        assert_error(response, 400, "parameter_invalid", field.name)
    assert api.get(path).json() == created


def test_update_with_empty_object_is_a_valid_no_op(api: Caller, resource: Resource) -> None:
    """Update: {} is accepted (200) and changes no field."""
    created = api.post(resource.path, json=full_body(resource)).json()
    response = api.patch(object_path(resource, created["id"]), json={})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert list(updated) == keys_in_order(resource)
    for key in ("id", "created_at", *(f.name for f in resource.fields)):
        assert updated[key] == created[key], key


def test_updated_at_moves_strictly_forward_on_rapid_updates(
    server: Server, api: Caller, resource: Resource, stepping_clock: SteppingClock
) -> None:
    """Update: updated_at strictly increases on every accepted update, even within one
    millisecond; created_at never moves.
    """
    created = api.create(resource)
    path = object_path(resource, created["id"])
    field = resource.fields[-1].name

    async def updates(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], int]:
        updated: list[dict[str, Any]] = []
        ahead = 0  # updates stamped later than the clock read once they returned
        while len(updated) < 30 or (len(updated) < burst_cap(server) and ahead < 5):
            body: dict[str, str | None] = {field: f"v{len(updated)}"} if len(updated) % 3 else {}
            response = await client.patch(path, json=body)
            now = datetime.fromtimestamp(stepping_clock.last / 1000, UTC)
            assert response.status_code == 200, response.text
            updated.append(response.json())
            ahead += parse_timestamp(updated[-1]["updated_at"]) > now
        return updated, ahead

    updated, ahead = on_server_loop(server, api, updates)
    # The premise of this test: some updates came within one millisecond of the previous
    # one, so the server had to move updated_at ahead of the clock to keep it increasing.
    assert ahead > 0
    stamps = [parse_timestamp(created["updated_at"])]
    stamps += [parse_timestamp(obj["updated_at"]) for obj in updated]
    assert all(a < b for a, b in itertools.pairwise(stamps)), stamps
    assert all(obj["created_at"] == created["created_at"] for obj in updated)
    fetched = api.get(path).json()
    assert fetched == updated[-1]
    assert fetched["created_at"] == created["created_at"]


def test_update_does_not_change_the_list_order(api: Caller, resource: Resource) -> None:
    """List order follows created_at, which an update never changes."""
    ids = [api.create(resource)["id"] for _ in range(3)]
    api.patch(object_path(resource, ids[0]), json={resource.fields[-1].name: "touched"})
    assert list_ids(api, resource) == ids[::-1]


def test_update_unknown_id_is_404(api: Caller, resource: Resource) -> None:
    """Update of an id that was never created: 404 resource_missing."""
    unknown = api.create(resource)["id"][:-6] + "zzzzzz"
    response = api.patch(object_path(resource, unknown), json=valid_body(resource))
    assert_error(response, 404, "resource_missing", "id")


# --- delete ---------------------------------------------------------------------------------


def test_delete_is_permanent(api: Caller, resource: Resource) -> None:
    """Delete: 200 {"id", "deleted": true}; then retrieve, update and delete give 404."""
    kept = api.create(resource)
    doomed = api.create(resource)
    path = object_path(resource, doomed["id"])
    response = api.delete(path)
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["id", "deleted"]
    assert response.json() == {"id": doomed["id"], "deleted": True}
    assert_error(api.get(path), 404, "resource_missing", "id")
    assert_error(api.patch(path, json=valid_body(resource)), 404, "resource_missing", "id")
    assert_error(api.delete(path), 404, "resource_missing", "id")
    page = api.get(resource.path).json()
    assert [obj["id"] for obj in page["data"]] == [kept["id"]]
    assert page["total"] == 1
    assert api.get(object_path(resource, kept["id"])).json() == kept


# --- ids ------------------------------------------------------------------------------------


def test_ids_have_the_prefix_and_a_url_safe_random_part(api: Caller, resource: Resource) -> None:
    """Ids are {prefix}{random}: URL-safe, long enough for 96 random bits, all different."""
    ids = [api.create(resource)["id"] for _ in range(20)]
    assert len(set(ids)) == len(ids)
    for object_id in ids:
        assert object_id.startswith(resource.id_prefix)
        random_part = object_id.removeprefix(resource.id_prefix)
        assert re.fullmatch(r"[0-9A-Za-z_-]+", random_part), object_id
        assert quote(object_id, safe="") == object_id
        assert len(random_part) >= 17, object_id  # 96 bits need 17 characters of base 62
    # The random tails differ even between ids minted in the same millisecond.
    assert len({object_id[-16:] for object_id in ids}) == len(ids)


def test_id_with_another_prefix_is_404(api: Caller) -> None:
    """An id under the wrong resource, or with its prefix swapped, is simply not found."""
    link = api.create(PARTY_LINK)
    appointment = api.create(APPOINTMENT)
    for resource, object_id in (
        (APPOINTMENT, link["id"]),
        (PARTY_LINK, appointment["id"]),
        (APPOINTMENT, APPOINTMENT.id_prefix + link["id"].removeprefix(PARTY_LINK.id_prefix)),
        (PARTY_LINK, link["id"].removeprefix(PARTY_LINK.id_prefix)),
    ):
        path = object_path(resource, object_id)
        assert_error(api.get(path), 404, "resource_missing", "id")
        assert_error(api.patch(path, json={}), 404, "resource_missing", "id")
        assert_error(api.delete(path), 404, "resource_missing", "id")
    assert api.get(object_path(PARTY_LINK, link["id"])).json() == link
    assert api.get(object_path(APPOINTMENT, appointment["id"])).json() == appointment


@pytest.mark.parametrize(
    "raw_id",
    [
        "%00",
        "x%00y",
        "{prefix}%00",
        "{prefix}" + "a" * 5000,
        "%C3%A9",
        "{prefix}%F0%9F%98%80",
        "%FF",
    ],
    ids=["nul", "nul-inside", "prefix-nul", "very-long", "non-ascii", "emoji", "bad-utf8"],
)
def test_malformed_ids_are_404(api: Caller, resource: Resource, raw_id: str) -> None:
    """Any path text that is not an id of this caller is 404 resource_missing, never a 500."""
    path = object_path(resource, raw_id.format(prefix=resource.id_prefix))
    assert_error(api.get(path), 404, "resource_missing", "id")
    assert_error(api.patch(path, json={}), 404, "resource_missing", "id")
    assert_error(api.delete(path), 404, "resource_missing", "id")


def test_id_of_another_account_is_404(server: Server, resource: Resource) -> None:
    """An id of another account is not found (404, never 403), and stays untouched."""
    owner, stranger = server.new_caller(), server.new_caller()
    obj = owner.create(resource)
    path = object_path(resource, obj["id"])
    assert_error(stranger.get(path), 404, "resource_missing", "id")
    assert_error(
        stranger.patch(path, json={resource.fields[-1].name: "x"}), 404, "resource_missing", "id"
    )
    assert_error(stranger.delete(path), 404, "resource_missing", "id")
    assert owner.get(path).json() == obj


# --- timestamps -----------------------------------------------------------------------------


def test_timestamps_are_rfc3339_utc_with_milliseconds(api: Caller, resource: Resource) -> None:
    """Timestamps look like 2024-01-15T09:30:00.123Z and tell the current UTC time."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = api.create(resource)
    updated = api.patch(object_path(resource, created["id"]), json={}).json()
    listed = api.get(resource.path).json()["data"][0]
    after = datetime.now(UTC) + timedelta(seconds=5)
    for obj in (created, updated, listed):
        for key in ("created_at", "updated_at"):
            stamp = parse_timestamp(obj[key])
            assert stamp.utcoffset() == timedelta(0)
            assert before <= stamp <= after, (key, obj[key])
    assert created["created_at"] == created["updated_at"]
    assert updated["created_at"] == created["created_at"]
    assert listed == updated


# --- trailing slash -------------------------------------------------------------------------


def test_trailing_slash_is_served_the_same_without_redirect(
    api: Caller, resource: Resource
) -> None:
    """A trailing slash on the collection or object path is served the same, never redirected."""
    response = api.post(resource.path + "/", json=valid_body(resource), follow_redirects=False)
    assert response.status_code == 201, response.text
    obj = response.json()
    assert response.headers["location"] == object_path(resource, obj["id"])
    path = object_path(resource, obj["id"]) + "/"

    response = api.get(resource.path + "/", params={"limit": 5}, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.json() == api.get(resource.path, params={"limit": 5}).json()

    response = api.get(path, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.json() == obj

    for slashed in (resource.path + "/", path):
        response = api.request("HEAD", slashed, follow_redirects=False)
        assert response.status_code == 200, slashed
        assert response.content == b""

    response = api.patch(path, json={resource.fields[-1].name: "slash"}, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.json()[resource.fields[-1].name] == "slash"

    for slashed in (resource.path + "/", path):
        response = api.request("PUT", slashed, follow_redirects=False)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == api.request("PUT", slashed[:-1]).headers["allow"]

    response = api.delete(path, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": obj["id"], "deleted": True}
    assert_error(api.get(path, follow_redirects=False), 404, "resource_missing", "id")


# --- the published pages' examples ----------------------------------------------------------


def test_published_curl_examples_work_verbatim(api: Caller, resource: Resource) -> None:
    """The pages' curl bodies (placeholder values included) are accepted and echoed exactly."""
    create_body = SEED_CREATE_BODIES[resource.name]
    response = api.post(resource.path, content=create_body, headers=JSON_HEADERS)
    assert response.status_code == 201, response.text
    created = response.json()
    sent = json.loads(create_body)
    assert {k: created[k] for k in sent} == sent

    path = object_path(resource, created["id"])
    update_body = SEED_UPDATE_BODIES[resource.name]
    response = api.patch(path, content=update_body, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    sent_update = json.loads(update_body)
    assert {k: response.json()[k] for k in sent_update} == sent_update

    fetched = api.get(path).json()
    assert fetched == response.json()
    page = api.get(resource.path).json()
    assert page == {"data": [fetched], "has_more": False, "total": 1}
    assert api.delete(path).json() == {"id": created["id"], "deleted": True}


def test_published_example_object_round_trips(api: Caller, resource: Resource) -> None:
    """The pages' example object, sent as a create and back as an update, is accepted as is."""
    example: dict[str, str | None] = dict(resource.example)
    response = api.post(resource.path, json=example)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] != example["id"]
    assert {f.name: created[f.name] for f in resource.fields} == {
        f.name: example[f.name] for f in resource.fields
    }
    if resource is APPOINTMENT:
        assert created["scheduled_time"] == "scheduled_time_example"
    response = api.patch(object_path(resource, created["id"]), json=example)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["id"]


def test_every_resource_is_covered() -> None:
    """The tests above cover exactly the declared resources (guards the seed body tables)."""
    assert set(SEED_CREATE_BODIES) == set(SEED_UPDATE_BODIES) == {r.name for r in RESOURCES}
