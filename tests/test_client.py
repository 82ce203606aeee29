"""The Python client (``overplane.client``) against the real application over real HTTP.

- Every method of both clients (``Client`` and ``AsyncClient``), on each backend: the five
  operations of every declared resource, filters and cursors, events, webhook endpoints.
- Both clients cover every operation of ``/openapi.json``, so they cannot fall behind.
- Every exception class, from real responses: ours where the server gives that answer, a
  scripted local server's (not Overplane) for those it does not (429, a non-idempotency 409,
  a proxy's 502, a newer server's unknown codes and fields).
- Auto-paging walks every object across many pages, holding one page at a time.
- Retries never duplicate: a proxy that lets the server answer and then drops the connection
  makes the client retry with the same Idempotency-Key, and exactly one object exists.
- Retry timing: Retry-After (and RateLimit-Reset) honoured; no retry past max_retries.
- ``client/resources.py`` is what the declarations generate.
- The bulk creates ``overplane import`` sends (``overplane.client.bulk``): the
  ``AsyncClient``'s create byte for byte, its errors and its retries, over connections of
  their own; created by the call, or already there before it.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from overplane import AsyncClient, Client
from overplane.client import (
    APIConnectionError,
    APIError,
    APIObject,
    Appointment,
    AuthenticationError,
    ConflictError,
    Deleted,
    Event,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    OverplaneError,
    PreconditionFailedError,
    RateLimitError,
    generate,
)
from overplane.client.bulk import BulkCreates, Connections, encode_lines
from overplane.client.calls import RetryPolicy
from overplane.client.clients import OBJECT_CLASSES
from overplane.client.errors import error_class, retry_after_seconds
from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from tests.helpers import (
    DroppingProxy,
    ProxiedRequest,
    Scripted,
    ScriptedServer,
    Server,
    free_port,
    optional_field,
    served_over_tcp,
    valid_body,
)

WEBHOOK_URL = "https://hooks.example.com/overplane"


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    """The application on each backend, over real TCP (one per module and backend)."""
    with served_over_tcp(database_url) as url:
        yield url


@pytest.fixture
def key(server: Server) -> str:
    """A test key of a brand-new account (minted on the same database)."""
    return server.new_caller().key


@pytest.fixture
def client(base_url: str, key: str) -> Iterator[Client]:
    with Client(api_key=key, base_url=base_url) as made:
        yield made


def body(resource: Resource, **overrides: str) -> dict[str, Any]:
    """A valid create body (as keyword arguments of ``create``)."""
    return dict(valid_body(resource, **overrides))


def namespace_of(client: Client | AsyncClient, resource: Resource) -> Any:
    """``client.appointments`` for the appointment resource, and so on."""
    return getattr(client, resource.plural.replace(" ", "_"))


def scripted(script: list[Scripted]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.close()


def error_body(status_type: str, code: str, message: str = "no", **extra: str) -> Any:
    return {"error": {"type": status_type, "code": code, "message": message, **extra}}


# --- every method, sync ------------------------------------------------------------------------


def test_the_five_operations(client: Client, resource: Resource) -> None:
    namespace = namespace_of(client, resource)
    optional = optional_field(resource)
    created = namespace.create(**body(resource))
    assert isinstance(created, OBJECT_CLASSES[resource.path])
    assert created.id.startswith(resource.id_prefix)
    assert getattr(created, optional.name) is None  # null fields are None
    assert list(created.to_dict()) == ["id", "created_at", "updated_at", *resource.fields_by_name]

    fetched = namespace.retrieve(created.id)
    assert fetched == created
    assert fetched is not created
    assert repr(fetched).startswith(f"{type(created).__name__}(id='{created.id}'")

    updated = namespace.update(created.id, **{optional.name: "set"})
    assert getattr(updated, optional.name) == "set"
    assert updated != created
    cleared = namespace.update(created.id, **{optional.name: None})
    assert getattr(cleared, optional.name) is None
    version = f'"{int(datetime.fromisoformat(cleared.updated_at).timestamp() * 1000)}"'
    guarded = namespace.update(created.id, if_match=version, **{optional.name: "guarded"})
    assert getattr(guarded, optional.name) == "guarded"
    with pytest.raises(PreconditionFailedError) as stale:
        namespace.update(created.id, if_match=version, **{optional.name: "stale"})
    assert stale.value.status == 412
    assert stale.value.code == "precondition_failed"

    page = namespace.list(limit=10)
    assert (page.total, page.has_more, [o.id for o in page.data]) == (1, False, [created.id])

    deleted = namespace.delete(created.id)
    assert isinstance(deleted, Deleted)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(NotFoundError) as missing:
        namespace.retrieve(created.id)
    assert missing.value.param == "id"
    assert str(missing.value.request_id).startswith("req_")


def test_filters_and_cursors(client: Client) -> None:
    appointments = client.appointments
    early = appointments.create(**body(APPOINTMENT, scheduled_time="2024-01-15T09:00:00Z"))
    late = appointments.create(
        **body(APPOINTMENT, scheduled_time="2024-03-01T09:00:00Z", status="confirmed")
    )
    free = appointments.create(**body(APPOINTMENT, party="p_1"))
    assert [o.id for o in appointments.list(status="confirmed").data] == [late.id]
    march = appointments.list(scheduled_time={"gte": "2024-02-01T00:00:00Z"})
    assert [o.id for o in march.data] == [late.id]
    bounded = appointments.list(
        scheduled_time={"gte": datetime(2024, 1, 1, tzinfo=UTC), "lt": "2024-02-01T00:00:00Z"}
    )
    assert [o.id for o in bounded.data] == [early.id]
    assert [o.id for o in appointments.list(party={"null": False}).data] == [free.id]
    assert appointments.list(party={"null": True}).total == 2
    since = datetime.now(UTC) - timedelta(hours=1)
    assert appointments.list(created_at={"gte": since}).total == 3
    with pytest.raises(ValueError, match="timezone"):
        appointments.list(created_at={"gte": datetime(2024, 1, 1)})
    after = appointments.list(limit=1, starting_after=free.id)
    assert ([o.id for o in after.data], after.has_more, after.total) == ([late.id], True, 3)
    before = appointments.list(ending_before=early.id)
    assert [o.id for o in before.data] == [free.id, late.id]
    assert appointments.list(limit=1, offset=2).data[0].id == early.id


def test_events(client: Client) -> None:
    created = client.appointments.create(**body(APPOINTMENT))
    client.appointments.update(created.id, status="confirmed")
    events = client.events.list(type="appointment.*")
    assert [e.type for e in events.data] == ["appointment.updated", "appointment.created"]
    updated = events.data[0]
    assert isinstance(updated, Event)
    assert isinstance(updated.data.object, Appointment)  # data.object has its resource's class
    assert updated.data.object.status == "confirmed"
    assert updated.data.previous_attributes.status == "draft"
    assert client.events.retrieve(updated.id) == updated
    assert client.events.list(created_at={"gte": "2000-01-01T00:00:00Z"}).total == 2
    assert client.events.redeliver(updated.id).redelivered_to == []
    with pytest.raises(NotFoundError):
        client.events.redeliver(updated.id, endpoint="we_missing")


def test_webhook_endpoints(client: Client) -> None:
    hooks = client.webhook_endpoints
    made = hooks.create(url=WEBHOOK_URL, enabled_events=["appointment.*"], description="ops")
    assert made.secret.startswith("whsec_")
    assert "secret" not in hooks.retrieve(made.id)
    changed = hooks.update(made.id, disabled=True, description=None)
    assert (changed.disabled, changed.description) == (True, None)
    assert [e.id for e in hooks.list().data] == [made.id]
    rotated = hooks.rotate_secret(made.id)
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != made.secret
    attempts = hooks.attempts(made.id, limit=5)
    assert (attempts.data, attempts.total, attempts.has_more) == ([], 0, False)
    event = client.events.list(limit=1)
    client.appointments.create(**body(APPOINTMENT))
    event = client.events.list(limit=1)
    assert client.events.redeliver(event.data[0].id, endpoint=made.id).redelivered_to == [made.id]
    assert hooks.delete(made.id) == Deleted({"id": made.id, "deleted": True})
    with pytest.raises(NotFoundError):
        hooks.retrieve(made.id)


# --- every method, async -----------------------------------------------------------------------


def test_the_async_client_does_everything_the_sync_one_does(
    base_url: str, key: str, resource: Resource
) -> None:
    async def scenario() -> None:
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            namespace = namespace_of(client, resource)
            optional = optional_field(resource)
            created = await namespace.create(**body(resource))
            assert await namespace.retrieve(created.id) == created
            updated = await namespace.update(created.id, **{optional.name: "x"})
            assert getattr(updated, optional.name) == "x"
            page = await namespace.list(**{optional.name: "x"})
            assert [o.id for o in page.data] == [created.id]
            assert [o.id async for o in page] == [created.id]
            events = await client.events.list(limit=1)
            assert events.data[0].type.endswith(".updated")
            event = await client.events.retrieve(events.data[0].id)
            assert event == events.data[0]
            hooks = client.webhook_endpoints
            made = await hooks.create(url=WEBHOOK_URL, enabled_events=["*"])
            assert (await hooks.retrieve(made.id)).url == WEBHOOK_URL
            assert (await hooks.update(made.id, enabled_events=["*.deleted"])).enabled_events == [
                "*.deleted"
            ]
            assert (await hooks.list()).total == 1
            assert (await hooks.rotate_secret(made.id)).secret != made.secret
            assert (await hooks.attempts(made.id)).total == 0
            assert (await client.events.redeliver(event.id)).redelivered_to == []
            assert (await hooks.delete(made.id)).deleted is True
            assert (await namespace.delete(created.id)).deleted is True
            with pytest.raises(NotFoundError):
                await namespace.retrieve(created.id)
            with pytest.raises(InvalidRequestError) as invalid:
                await namespace.list(limit=0)
            assert invalid.value.param == "limit"

    asyncio.run(scenario())


# --- coverage of the API -----------------------------------------------------------------------


def test_both_clients_cover_every_operation_of_the_openapi_document(
    base_url: str, client: Client
) -> None:
    document = httpx.get(base_url + "/openapi.json").json()
    async_client = AsyncClient(api_key="sk_test_unused", base_url=base_url)
    namespaces = {
        name: (getattr(client, name), getattr(async_client, name))
        for name in vars(client)
        if not name.startswith("_")
    }
    operations = 0
    for template, item in document["paths"].items():
        if not template.startswith("/api/"):
            continue  # /healthz, /readyz: not operations of the API
        for method in item:
            if method not in ("get", "post", "patch", "delete", "put"):
                continue
            found = [
                (name, sync.OPERATIONS[(method.upper(), template.removeprefix(sync.path))])
                for name, (sync, _) in namespaces.items()
                if template.startswith(sync.path)
                and (method.upper(), template.removeprefix(sync.path)) in sync.OPERATIONS
            ]
            assert len(found) == 1, f"no client method for {method.upper()} {template}"
            name, method_name = found[0]
            sync, asynchronous = namespaces[name]
            assert callable(getattr(sync, method_name))
            assert asyncio.iscoroutinefunction(getattr(asynchronous, method_name))
            operations += 1
    assert operations == 5 * len(RESOURCES) + 3 + 7 + 4


def test_the_readme_client_example_runs(
    base_url: str, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README.md's five-line example, as pasted, against the real server."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## The Python client", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None
    code = found.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    monkeypatch.setenv("OVERPLANE_API_KEY", key)
    monkeypatch.setenv("OVERPLANE_BASE_URL", base_url)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (the page's own example)
    printed = capsys.readouterr().out.split()
    assert printed[0].startswith("appointment_")
    assert printed[1:] == ["Ada", "None"]


def test_every_declared_resource_has_a_namespace(client: Client) -> None:
    for resource in RESOURCES:
        namespace = namespace_of(client, resource)
        assert namespace.path == resource.path
        assert namespace.object_class is OBJECT_CLASSES[resource.path]


def test_the_generated_module_is_what_the_declarations_generate() -> None:
    """client/resources.py is up to date: run ``python -m overplane.client.generate``."""
    assert generate.TARGET.read_text() == generate.source()


# --- errors ------------------------------------------------------------------------------------


def test_errors_from_the_server(client: Client, base_url: str) -> None:
    with pytest.raises(AuthenticationError) as unauthenticated:
        Client(api_key="sk_test_nope", base_url=base_url).appointments.list()
    assert (unauthenticated.value.status, unauthenticated.value.code) == (401, "api_key_invalid")
    with pytest.raises(InvalidRequestError) as invalid:
        client.appointments.list(limit=0)
    assert (invalid.value.status, invalid.value.code, invalid.value.param) == (
        400,
        "parameter_invalid",
        "limit",
    )
    assert invalid.value.json_body["error"]["code"] == "parameter_invalid"
    assert b"parameter_invalid" in invalid.value.body
    assert invalid.value.request_id == invalid.value.headers["request-id"]
    assert "limit" in str(invalid.value)
    with pytest.raises(InvalidRequestError) as missing:
        client.appointments.create(**body(APPOINTMENT, customer_name=" "))
    assert (missing.value.code, missing.value.param) == ("parameter_invalid", "customer_name")
    with pytest.raises(NotFoundError) as not_found:
        client.appointments.retrieve("appointment_nope")
    assert not_found.value.code == "resource_missing"
    first = body(APPOINTMENT)
    client.appointments.create(idempotency_key="order-42", **first)
    with pytest.raises(IdempotencyError) as reused:
        client.appointments.create(idempotency_key="order-42", **{**first, "status": "other"})
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")
    replayed = client.appointments.create(idempotency_key="order-42", **first)
    assert client.appointments.list().total == 1
    assert client.appointments.list().data[0] == replayed


def test_errors_our_server_does_not_give_map_by_status_and_type() -> None:
    """A scripted server (not Overplane): 429, a 409 without an idempotency code, a proxy's
    HTML 502, and codes a newer server might add, each raises its status's class."""
    cases: list[tuple[Scripted, type[APIError]]] = [
        (Scripted(429, error_body("rate_limit_error", "rate_limited")), RateLimitError),
        (Scripted(409, error_body("invalid_request_error", "state_conflict")), ConflictError),
        (
            Scripted(409, error_body("idempotency_error", "idempotency_key_in_use")),
            IdempotencyError,
        ),
        (Scripted(404, error_body("invalid_request_error", "brand_new")), NotFoundError),
        (Scripted(418, error_body("invalid_request_error", "teapot")), InvalidRequestError),
        (Scripted(401, error_body("authentication_error", "key_expired")), AuthenticationError),
        (Scripted(412, error_body("invalid_request_error", "newer")), PreconditionFailedError),
        (Scripted(502, b"<html>bad gateway</html>", {"Request-Id": "req_proxy"}), APIError),
    ]
    for response, expected in cases:
        for server in scripted([response]):
            client = Client(api_key="sk_test_x", base_url=server.url, max_retries=0)
            with client, pytest.raises(APIError) as raised:
                client.appointments.retrieve("appointment_1")
            assert type(raised.value) is expected, (response, raised.value)
            assert raised.value.status == response.status
    assert error_class(500, "api_error", "whatever") is APIError
    assert issubclass(RateLimitError, APIError)
    assert issubclass(APIError, OverplaneError)
    assert issubclass(APIConnectionError, OverplaneError)


def test_unknown_fields_from_a_newer_server_are_kept() -> None:
    newer = {
        **APPOINTMENT.example,
        "id": "appointment_1",
        "reminder": {"minutes": 15},
        "tags": ["vip"],
    }
    for server in scripted([Scripted(200, newer)]):
        with Client(api_key="sk_test_x", base_url=server.url) as client:
            fetched = client.appointments.retrieve("appointment_1")
    assert fetched.reminder.minutes == 15  # nested objects are objects too
    assert fetched.tags == ["vip"]
    assert fetched["reminder"] == APIObject({"minutes": 15})
    assert fetched.to_dict() == newer
    assert "reminder" in dir(fetched)
    with pytest.raises(AttributeError):
        fetched.nothing_like_this  # noqa: B018
    with pytest.raises(AttributeError):
        fetched.status = "x"


def test_connection_errors_and_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket_that_refuses() as url:
        client = Client(api_key="sk_test_x", base_url=url, max_retries=1)
        started = time.monotonic()
        with pytest.raises(APIConnectionError) as refused:
            client.appointments.list()
        assert isinstance(refused.value.__cause__, httpx.ConnectError)
        assert time.monotonic() - started >= 0.25  # one backoff: at least half of 0.5 s
    monkeypatch.delenv("OVERPLANE_API_KEY", raising=False)
    with pytest.raises(OverplaneError, match="OVERPLANE_API_KEY"):
        Client()
    monkeypatch.setenv("OVERPLANE_API_KEY", "sk_test_env")
    monkeypatch.setenv("OVERPLANE_BASE_URL", "http://example.invalid:9/")
    from_env = Client()
    assert from_env.base_url == "http://example.invalid:9"
    assert from_env.max_retries == 2
    with pytest.raises(ValueError, match="id"):
        from_env.appointments.retrieve("")


class socket_that_refuses:
    """A URL of 127.0.0.1 on which nothing listens."""

    def __enter__(self) -> str:
        from tests.helpers import free_port

        return f"http://127.0.0.1:{free_port()}"

    def __exit__(self, *exc: object) -> None:
        pass


# --- auto-paging -------------------------------------------------------------------------------


def live_objects(cls: type) -> int:
    """How many instances of ``cls`` exist right now."""
    return sum(1 for obj in gc.get_objects() if type(obj) is cls)


def test_auto_paging_walks_every_object_one_page_at_a_time(client: Client) -> None:
    """250 objects, pages of 20: every one once, newest first, and no more than two pages'
    objects alive at any time (the walk keeps no list of what it yielded)."""
    made = [client.party_links.create(primary_role=f"r{n}").id for n in range(250)]
    first = client.party_links.list(limit=20)
    assert (first.total, first.has_more, len(first.data)) == (250, True, 20)
    cls = type(first.data[0])
    del first
    gc.collect()
    seen: list[str] = []
    peak = 0
    for index, link in enumerate(client.party_links.list(limit=20).auto_paging_iter()):
        seen.append(link.id)
        if index % 37 == 0:
            gc.collect()
            peak = max(peak, live_objects(cls))
    assert seen == made[::-1]
    assert 0 < peak <= 2 * 20, f"{peak} objects alive: the walk holds more than a page or two"


def test_auto_paging_from_an_offset_and_backwards(client: Client) -> None:
    ids = [client.party_links.create(primary_role="r").id for _ in range(7)]
    newest_first = ids[::-1]
    walked = [o.id for o in client.party_links.list(limit=2, offset=3).auto_paging_iter()]
    assert walked == newest_first[3:]
    oldest = ids[0]
    back = [o.id for o in client.party_links.list(limit=2, ending_before=oldest).auto_paging_iter()]
    assert back == ids[1:]  # oldest to newest, walking towards the newest


def test_async_auto_paging(base_url: str, key: str) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            await asyncio.gather(
                *(client.party_links.create(primary_role=f"r{n}") for n in range(45))
            )
            page = await client.party_links.list(limit=10)
            return [o.id async for o in page.auto_paging_iter()]

    walked = asyncio.run(scenario())
    assert len(walked) == len(set(walked)) == 45


# --- retries -----------------------------------------------------------------------------------


def first_create_dropped(request: ProxiedRequest, number: int) -> bool:
    return request.method == "POST" and number == 0


def test_a_create_whose_answer_is_lost_is_retried_and_happens_once(base_url: str, key: str) -> None:
    proxy = DroppingProxy(base_url, first_create_dropped)
    try:
        with Client(api_key=key, base_url=proxy.url) as client:
            created = client.appointments.create(**body(APPOINTMENT))
            total = client.appointments.list().total
    finally:
        proxy.close()
    posts = [r for r in proxy.requests if r.method == "POST"]
    assert [r.dropped for r in posts] == [True, False]
    keys = {r.headers["idempotency-key"] for r in posts}
    assert len(keys) == 1, "the retry must reuse the first attempt's key"
    assert posts[0].body == posts[1].body
    assert total == 1
    assert created.id.startswith("appointment_")


def test_an_update_whose_answer_is_lost_is_replayed_not_refused(base_url: str, key: str) -> None:
    """A PATCH with If-Match whose answer was lost: the retry gets the first answer back (the
    Idempotency-Key replays it) instead of a 412 for the version the first attempt moved on."""
    with Client(api_key=key, base_url=base_url) as direct:
        created = direct.appointments.create(**body(APPOINTMENT))
    version = f'"{int(datetime.fromisoformat(created.updated_at).timestamp() * 1000)}"'

    def first_patch(request: ProxiedRequest, number: int) -> bool:
        return request.method == "PATCH" and number == 0

    proxy = DroppingProxy(base_url, first_patch)
    try:
        with Client(api_key=key, base_url=proxy.url) as client:
            updated = client.appointments.update(created.id, if_match=version, status="done")
            deleted = client.appointments.delete(created.id)
    finally:
        proxy.close()
    assert updated.status == "done"
    assert deleted.deleted is True
    assert [r.dropped for r in proxy.requests] == [True, False, False]


def test_async_create_retried_after_a_lost_answer(base_url: str, key: str) -> None:
    proxy = DroppingProxy(base_url, first_create_dropped)

    async def scenario() -> int:
        async with AsyncClient(api_key=key, base_url=proxy.url) as client:
            await client.party_links.create(primary_role="once")
            return (await client.party_links.list()).total

    try:
        assert asyncio.run(scenario()) == 1
    finally:
        proxy.close()
    assert [r.dropped for r in proxy.requests if r.method == "POST"] == [True, False]


def retry_case(script: list[Scripted], **options: Any) -> tuple[ScriptedServer, Any]:
    server = ScriptedServer(script)
    try:
        with Client(api_key="sk_test_x", base_url=server.url, **options) as client:
            try:
                return server, client.party_links.create(primary_role="r")
            except APIError as error:
                return server, error
    finally:
        server.close()


def gaps(server: ScriptedServer) -> list[float]:
    return [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]


def test_rate_limits_are_waited_out_as_the_server_asks() -> None:
    ok = Scripted(201, {"id": "party-link_1", "primary_role": "r"})
    limited = Scripted(429, error_body("rate_limit_error", "rate_limited"), {"Retry-After": "1"})
    server, result = retry_case([limited, ok])
    assert result.id == "party-link_1"
    assert len(server.arrivals) == 2
    assert gaps(server)[0] >= 0.95
    sent_keys = {headers["Idempotency-Key"] for _, _, headers, _ in server.requests}
    assert len(sent_keys) == 1
    # The IETF RateLimit headers a later release adds are understood too.
    reset = Scripted(429, error_body("rate_limit_error", "rate_limited"), {"RateLimit-Reset": "1"})
    server, result = retry_case([reset, ok])
    assert result.id == "party-link_1"
    assert gaps(server)[0] >= 0.95
    # A wait longer than the client sleeps through is raised at once, with the wait.
    long = Scripted(429, error_body("rate_limit_error", "rate_limited"), {"Retry-After": "3600"})
    server, result = retry_case([long, ok])
    assert isinstance(result, RateLimitError)
    assert result.retry_after == 3600
    assert len(server.arrivals) == 1
    assert retry_after_seconds({"RateLimit": "limit=100, remaining=0, reset=7"}) == 7
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None


def test_a_429_is_waited_out_as_often_as_it_comes_within_a_total_wait() -> None:
    """A 429 is the server pacing its callers: five in a row do not use up ``max_retries``
    (2), and the call succeeds; only more waiting than ``max_retry_after`` in all raises."""
    ok = Scripted(201, {"id": "party-link_1", "primary_role": "r"})
    limited = Scripted(429, error_body("rate_limit_error", "rate_limited"), {"Retry-After": "0"})
    server, result = retry_case([limited] * 5 + [ok])
    assert result.id == "party-link_1"
    assert len(server.arrivals) == 6
    policy = RetryPolicy(max_retry_after=2.5)
    asked = httpx.Response(429, headers={"Retry-After": "1"})
    assert policy.wait_for_rate_limit(0.0, asked) == 1
    assert policy.wait_for_rate_limit(1.0, asked) == 1
    assert policy.wait_for_rate_limit(2.0, asked) is None  # 3 s in all would be too long
    assert RetryPolicy(max_retries=0).wait_for_rate_limit(0.0, asked) is None


def test_server_errors_are_retried_then_raised() -> None:
    unavailable = Scripted(503, error_body("api_error", "unavailable"), {"Retry-After": "1"})
    internal = Scripted(500, error_body("api_error", "internal_error"))
    ok = Scripted(201, {"id": "party-link_1", "primary_role": "r"})
    server, result = retry_case([unavailable, internal, ok])
    assert result.id == "party-link_1"
    assert len(server.arrivals) == 3
    first, second = gaps(server)
    assert first >= 0.95  # Retry-After
    assert second >= 0.45  # backoff after the second failure: 1 s less up to half, jittered
    server, result = retry_case([internal], max_retries=2)
    assert type(result) is APIError
    assert (result.status, result.code) == (500, "internal_error")
    assert len(server.arrivals) == 3
    server, result = retry_case([internal], max_retries=0)
    assert len(server.arrivals) == 1
    # A 4xx is never retried.
    server, result = retry_case([Scripted(400, error_body("invalid_request_error", "x"))])
    assert isinstance(result, InvalidRequestError)
    assert len(server.arrivals) == 1


def test_idempotency_key_in_use_is_retried() -> None:
    in_use = Scripted(409, error_body("idempotency_error", "idempotency_key_in_use"))
    ok = Scripted(201, {"id": "party-link_1", "primary_role": "r"})
    server, result = retry_case([in_use, ok])
    assert result.id == "party-link_1"
    assert len(server.arrivals) == 2
    conflict = Scripted(409, error_body("invalid_request_error", "something_else"))
    server, result = retry_case([conflict, ok])
    assert isinstance(result, ConflictError)
    assert len(server.arrivals) == 1


def test_events_from_the_wire_get_their_resources_class() -> None:
    event = Event.from_json(
        {
            "id": "evt_1",
            "type": "appointment.created",
            "created_at": "2024-01-15T09:30:00.000Z",
            "data": {"object": APPOINTMENT.example},
            "request": {"id": "req_1", "idempotency_key": None},
        }
    )
    assert isinstance(event.data.object, Appointment)
    assert event.request.idempotency_key is None
    unknown: Callable[[], Event] = lambda: Event.from_json(  # noqa: E731
        {"id": "evt_2", "type": "invoice.created", "data": {"object": {"id": "in_1"}}}
    )
    assert type(unknown().data.object) is APIObject


# --- bulk creates (overplane.client.bulk) ------------------------------------------------------


def bulk_fields(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "customer_name": f"Bulk «{number}»",  # not ASCII: sent as UTF-8, as the client does
        "scheduled_time": "2024-03-01T09:30:00Z",
        "status": "draft",
        "customer_email": f"b{number}@example.com",
    } | changes


def create_all(url: str, key: str, rows: list[tuple[dict[str, Any], str]], **options: Any) -> Any:
    """Each row's outcome (True, False, or the exception), sent all at once."""

    async def scenario() -> list[bool | BaseException]:
        async with BulkCreates(APPOINTMENT.path, api_key=key, base_url=url, **options) as bulk:
            sent = [bulk.create(row, idempotency_key) for row, idempotency_key in rows]
            return await asyncio.gather(*sent, return_exceptions=True)

    return asyncio.run(scenario())


def bulk_total(url: str, key: str) -> int:
    response = httpx.get(url + APPOINTMENT.path, headers={"Authorization": f"Bearer {key}"})
    count: int = response.json()["total"]
    return count


def test_bulk_creates_then_already_there(base_url: str, key: str) -> None:
    rows = [(bulk_fields(n), f"bulk-{key[-8:]}-{n}") for n in range(40)]
    assert create_all(base_url, key, rows, max_connections=8) == [True] * 40
    assert create_all(base_url, key, rows, max_connections=3) == [False] * 40
    assert bulk_total(base_url, key) == 40


def test_a_bulk_create_is_the_async_clients_byte_for_byte(base_url: str, key: str) -> None:
    """Sent with the key of the AsyncClient's create, a bulk create is replayed: the server
    compares bodies byte for byte, and would refuse another body (422)."""

    async def by_client() -> str:
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            made = await client.appointments.create(idempotency_key="same-key", **bulk_fields(1))
            return str(made.id)

    asyncio.run(by_client())
    assert create_all(base_url, key, [(bulk_fields(1), "same-key")]) == [False]
    [refused] = create_all(base_url, key, [(bulk_fields(2), "same-key")])
    assert isinstance(refused, APIError)
    assert (refused.status, refused.code) == (422, "idempotency_key_reused")
    assert bulk_total(base_url, key) == 1


def test_bulk_errors_are_the_async_clients(base_url: str, key: str) -> None:
    bad = bulk_fields(3, customer_email="x" * 1001)  # too long

    async def by_client() -> APIError:
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            try:
                await client.appointments.create(idempotency_key="bad-by-client", **bad)
            except APIError as error:
                return error
        raise AssertionError("the create was not refused")

    expected = asyncio.run(by_client())
    [error] = create_all(base_url, key, [(bad, "bad-by-bulk")])
    assert isinstance(error, InvalidRequestError)
    assert type(error) is type(expected)
    assert (error.status, error.code, error.param, error.message) == (
        expected.status,
        expected.code,
        expected.param,
        expected.message,
    )
    assert error.param == "customer_email"
    assert error.request_id is not None
    assert error.request_id != expected.request_id
    [unknown] = create_all(base_url, key, [({"nonsense": "x"}, "unknown-field")])
    assert isinstance(unknown, InvalidRequestError)
    [denied] = create_all(base_url, "sk_test_" + "0" * 32, [(bulk_fields(4), "no-key")])
    assert isinstance(denied, APIError)
    assert denied.status == 401


def test_a_bulk_create_whose_answer_is_lost_is_retried_and_counted_as_created(
    base_url: str, key: str
) -> None:
    """The server created the row but its answer was lost: on a new connection (the policy's
    retry, after a backoff) and on a kept-alive one (sent again at once on a new connection),
    the replay that answers the second sending is this call's own: created, not already there."""

    def drop(request: ProxiedRequest, number: int) -> bool:
        return number in (0, 3)  # the first POST, on a new connection; the third, on a kept one

    proxy = DroppingProxy(base_url, drop)
    try:
        rows = [(bulk_fields(n), f"lost-{key[-8:]}-{n}") for n in range(4)]
        outcomes = [create_all(proxy.url, key, [row], max_connections=1)[0] for row in rows[:1]]
        outcomes += create_all(proxy.url, key, rows[1:], max_connections=1)
    finally:
        proxy.close()
    assert outcomes == [True] * 4
    assert [r.dropped for r in proxy.requests] == [True, False, False, True, False, False]
    keys = [r.headers["idempotency-key"] for r in proxy.requests]
    assert keys[0] == keys[1]
    assert keys[3] == keys[4]
    assert bulk_total(base_url, key) == 4


def bulk_scripted(script: list[Scripted], **options: Any) -> tuple[ScriptedServer, Any]:
    server = ScriptedServer(script)
    try:
        [outcome] = create_all(server.url, "sk_test_x", [({"a": "b"}, "k")], **options)
    finally:
        server.close()
    return server, outcome


def test_bulk_creates_follow_the_clients_retry_policy() -> None:
    ok = Scripted(201, {"id": "appointment_1"})
    replayed = Scripted(201, {"id": "appointment_1"}, {"Idempotent-Replayed": "true"})
    error = {"error": {"type": "rate_limit_error", "code": "rate_limited", "message": "slow"}}
    limited = Scripted(429, error, {"Retry-After": "0"})
    server, outcome = bulk_scripted([limited, limited, limited, ok])
    assert outcome is True
    assert len(server.arrivals) == 4  # a 429 does not use up max_retries
    assert {headers["Idempotency-Key"] for _, _, headers, _ in server.requests} == {"k"}
    assert {body for _, _, _, body in server.requests} == {b'{"a":"b"}'}
    server, outcome = bulk_scripted([replayed])
    assert outcome is False  # already there
    server, outcome = bulk_scripted([limited, replayed])
    assert outcome is True  # the replay of its own retry: this call created it
    server, outcome = bulk_scripted([Scripted(429, error, {"Retry-After": "3600"})])
    assert isinstance(outcome, RateLimitError)
    failing = Scripted(503, b"<html>proxy</html>")
    server, outcome = bulk_scripted([failing], max_retries=1)
    assert type(outcome) is APIError
    assert (outcome.status, outcome.code, outcome.message) == (
        503,
        None,
        "HTTP 503 Service Unavailable",
    )
    assert len(server.arrivals) == 2


def test_bulk_creates_without_a_server_raise_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    [outcome] = create_all(url, "sk_test_x", [({"a": "b"}, "k")], max_retries=0)
    assert isinstance(outcome, APIConnectionError)
    assert isinstance(outcome.__cause__, httpx.ConnectError)


async def raw_server(answers: list[bytes]) -> tuple[asyncio.Server, str]:
    """A server that reads one request per answer and writes the answer as given, closing the
    connection after the last."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(answer)
            await writer.drain()
        writer.close()

    started = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = started.sockets[0].getsockname()[1]
    return started, f"http://127.0.0.1:{port}"


def test_bulk_responses_chunked_or_ended_by_the_connection() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        b'4;ext=1\r\n{"id\r\n6\r\n": 1}\n\r\n0\r\nTrailer: t\r\n\r\n'
    )
    to_the_end = b'HTTP/1.0 201 Created\r\n\r\n{"id": 2}'

    async def scenario() -> list[Any]:
        started, url = await raw_server([chunked, to_the_end])
        connections = Connections(httpx.URL(url), 1, 5.0)
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        try:
            first = await connections.send(request)
            second = await connections.send(request)  # the same connection, kept alive
            return [first, second, len(connections._idle)]
        finally:
            await connections.aclose()
            started.close()

    first, second, idle = asyncio.run(scenario())
    assert (first.status_code, first.reason_phrase, first.json()) == (201, "Created", {"id": 1})
    assert first.headers["x-a"] == "1, 2"
    assert first.is_success
    assert not first.resent
    assert second.json() == {"id": 2}
    assert idle == 0  # HTTP/1.0, ended by the connection: not kept


def test_a_bulk_header_cannot_be_forged() -> None:
    with pytest.raises(httpx.LocalProtocolError):
        encode_lines(["X-Ok: 1", "X-Bad: a\r\nInjected: b"])
    with pytest.raises(httpx.LocalProtocolError):
        BulkCreates(PARTY_LINK.path, api_key="sk_test_x", headers={"X-Name": "€"})
    assert encode_lines(["A: 1", "B: 2"]) == b"A: 1\r\nB: 2\r\n"
