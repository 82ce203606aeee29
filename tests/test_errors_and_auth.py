"""Contract tests for errors (shape, codes, Request-Id, 404/405/500), authentication, the
isolation of accounts and modes, and the endpoints served without a key.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from overplane.auth import keys
from overplane.declarations import PARTY_LINK, RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.ids import new_random_token
from tests.helpers import (
    NO_LIMITS,
    REQUEST_ID,
    Caller,
    Server,
    assert_error,
    in_process,
    object_path,
    sql,
    valid_body,
)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS", "TRACE", "DELETE")


def allow_set(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


# --- the error object -----------------------------------------------------------------------


def test_every_error_has_the_contract_shape(api: Caller, resource: Resource) -> None:
    """Errors of every layer are {"error": {type, code, message, param?, request_id}}."""
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    field = resource.required_fields[0].name
    no_key = api.client
    assert_error(api.get(resource.path, params={"limit": "0"}), 400, "parameter_invalid", "limit")
    body: dict[str, object] = {**valid_body(resource), field: 1}
    assert_error(api.post(resource.path, json=body), 400, "parameter_invalid", field)
    assert_error(api.post(resource.path, json={"nope": "x"}), 400, "parameter_unknown", "nope")
    assert_error(api.post(resource.path, json={}), 400, "parameter_missing", field)
    assert_error(
        api.post(resource.path, content=b"[", headers={"Content-Type": "application/json"}),
        400,
        "body_invalid",
    )
    assert_error(no_key.get(resource.path), 401, "api_key_missing")
    assert_error(
        no_key.get(resource.path, headers={"Authorization": "Bearer nope"}), 401, "api_key_invalid"
    )
    assert_error(api.get(path[:-3] + "zzz"), 404, "resource_missing", "id")
    assert_error(api.get("/api/no/such/route"), 404, "route_missing")
    assert_error(api.request("PUT", path), 405, "method_not_allowed")
    assert_error(
        api.post(
            resource.path,
            content=b" " * 1_048_577,
            headers={"Content-Type": "application/json"},
        ),
        413,
        "body_too_large",
    )
    assert_error(
        api.post(resource.path, content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
        "content_type_unsupported",
    )


def test_every_response_has_a_unique_request_id(server: Server, api: Caller) -> None:
    """Every response, success or error, /api or not, has its own Request-Id: req_<random>."""
    resource = RESOURCES[0]
    no_key = server.client
    created = api.post(resource.path, json=valid_body(resource))
    path = object_path(resource, created.json()["id"])
    responses = [
        created,
        api.get(resource.path),
        api.request("HEAD", resource.path),
        api.get(path),
        api.patch(path, json={}),
        api.delete(path),
        api.get(path),
        api.get(resource.path, params={"limit": "x"}),
        api.request("PUT", path),
        api.post(resource.path, content=b"x", headers={"Content-Type": "text/plain"}),
        api.get("/api/nope"),
        no_key.get(resource.path),
        no_key.get("/healthz"),
        no_key.get("/readyz"),
        no_key.get("/openapi.json"),
        no_key.get("/docs"),
        no_key.get("/nope"),
        no_key.post("/healthz"),
        *(api.get(resource.path) for _ in range(20)),
    ]
    ids = [response.headers["request-id"] for response in responses]
    for response, request_id in zip(responses, ids, strict=True):
        assert REQUEST_ID.match(request_id), (response.request.url, request_id)
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == request_id
    assert len(set(ids)) == len(ids)


# --- authentication -------------------------------------------------------------------------


def test_missing_key_is_401_with_www_authenticate(server: Server, resource: Resource) -> None:
    """No Authorization header: 401 api_key_missing with WWW-Authenticate: Bearer."""
    for method, path in (("GET", resource.path), ("POST", resource.path)):
        response = server.client.request(method, path, json=valid_body(resource))
        assert_error(response, 401, "api_key_missing")
        assert response.headers["www-authenticate"].split()[0] == "Bearer"


def _invalid_authorizations(valid_key: str) -> dict[str, str]:
    """Authorization headers that must not authenticate, built around a real ``valid_key``."""
    unknown_test = "sk_test_" + new_random_token(32)
    unknown_live = "sk_live_" + new_random_token(32)
    basic = base64.b64encode(f"{valid_key}:".encode()).decode()
    other_mode = valid_key.replace("sk_test_", "sk_live_", 1)
    return {
        "unknown-test-key": f"Bearer {unknown_test}",
        "unknown-live-key": f"Bearer {unknown_live}",
        "malformed": "Bearer not-a-key",
        "short": "Bearer sk_test_abc",
        "prefix-only": "Bearer sk_test_",
        "wrong-prefix": "Bearer " + valid_key.replace("sk_", "pk_", 1),
        "other-mode": f"Bearer {other_mode}",
        "extra-character": f"Bearer {valid_key}x",
        "truncated": f"Bearer {valid_key[:-1]}",
        "upper-cased": f"Bearer {valid_key.upper()}",
        "empty-bearer": "Bearer ",
        "bare-bearer": "Bearer",
        "basic-scheme": f"Basic {basic}",
        "token-scheme": f"Token {valid_key}",
        "no-scheme": valid_key,
        "empty": "",
    }


def test_invalid_keys_are_401_and_never_echoed(server: Server, resource: Resource) -> None:
    """Unknown, malformed or wrong-scheme keys: 401 api_key_invalid; the key is not echoed."""
    api = server.new_caller()
    assert api.get(resource.path).status_code == 200
    for name, authorization in _invalid_authorizations(api.key).items():
        response = server.client.get(resource.path, headers={"Authorization": authorization})
        assert response.status_code == 401, (name, response.text)
        assert_error(response, 401, "api_key_invalid")
        assert response.headers["www-authenticate"].split()[0] == "Bearer", name
        for part in authorization.split():
            if len(part) > 12:  # every key-like part; not the scheme name
                assert part not in response.text, name
        assert api.key not in response.text, name


def test_valid_key_is_accepted_with_any_scheme_case(server: Server, resource: Resource) -> None:
    """The scheme name is case-insensitive (RFC 9110); the valid key then authenticates."""
    api = server.new_caller()
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = server.client.get(
            resource.path, headers={"Authorization": f"{scheme} {api.key}"}
        )
        assert response.status_code == 200, (scheme, response.text)
        assert api.key not in response.text


def test_revoked_key_is_401(server: Server, resource: Resource) -> None:
    """A revoked key authenticates nothing; another key of the same account still works."""
    name = server.new_account()
    info, secret = server.run(keys.create_key, server.app.db, name, "test")
    revoked = server.caller(secret, name)
    other = server.new_caller(account_name=name)
    obj = revoked.create(resource)
    server.run(keys.revoke_key, server.app.db, info.id)
    assert_error(revoked.get(resource.path), 401, "api_key_invalid")
    assert_error(revoked.get(object_path(resource, obj["id"])), 401, "api_key_invalid")
    assert_error(revoked.post(resource.path, json=valid_body(resource)), 401, "api_key_invalid")
    assert other.get(object_path(resource, obj["id"])).json() == obj
    assert other.get(resource.path).json()["total"] == 1


def test_authentication_comes_before_routing(server: Server, resource: Resource) -> None:
    """Without a valid key, nothing is learned: unknown routes, 405s, bad bodies are all 401."""
    owner = server.new_caller()
    obj = owner.create(resource)
    path = object_path(resource, obj["id"])
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/no/such/route", {}),
        ("GET", "/api/crm", {}),
        ("GET", "/api", {}),
        ("GET", "/api/", {}),
        ("GET", resource.path + "/x/y", {}),
        ("GET", path, {}),
        ("GET", path[:-3] + "zzz", {}),
        ("GET", resource.path, {"params": {"limit": "0"}}),
        ("PUT", path, {}),
        ("POST", path, {}),
        ("PATCH", resource.path, {}),
        ("DELETE", path, {}),
        (
            "POST",
            resource.path,
            {"content": b" " * 2_000_000, "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", resource.path, {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", resource.path, {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
        ("POST", resource.path, {"json": {"nope": 1}}),
    ]
    for authorization, code in (
        (None, "api_key_missing"),
        ("Bearer sk_test_nope", "api_key_invalid"),
    ):
        for method, target, kwargs in requests:
            headers = dict(kwargs.get("headers", {}))
            if authorization:
                headers["Authorization"] = authorization
            options = {k: v for k, v in kwargs.items() if k != "headers"}
            response = server.client.request(method, target, headers=headers, **options)
            assert response.status_code == 401, (method, target, response.text)
            assert_error(response, 401, code)
            assert "allow" not in response.headers, (method, target)
    assert owner.get(path).json() == obj


# --- routing errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/api/no/such/route",
        "/api/crm",
        "/api/accounts",
        "/api",
        "/api/",
        "/api/crm/appointments",
        "/api/accounts/appointment",
        "/api/crm/party-link",
        "/api/crm/appointment/x/y",
        "/API/crm/appointment",
        "/nope",
        "/docs/nope",
        "/static",
    ],
)
def test_unknown_route_is_404_route_missing(api: Caller, target: str) -> None:
    """A path that is not a route is 404 route_missing (with a valid key on /api paths)."""
    for method in ("GET", "POST", "DELETE"):
        assert_error(api.request(method, target, json={}), 404, "route_missing")


def test_405_allow_lists_exactly_the_supported_methods(api: Caller, resource: Resource) -> None:
    """405 method_not_allowed; Allow names exactly the methods the path serves, no others."""
    for suffix in (None, "", "/"):
        path = resource.path
        if suffix is not None:
            path = object_path(resource, api.create(resource)["id"]) + suffix
        served: set[str] = set()
        allow_headers: list[set[str]] = []
        for method in METHODS:  # DELETE last: it removes the object
            response = api.request(method, path, json=valid_body(resource))
            if response.status_code == 405:
                assert_error(response, 405, "method_not_allowed")
                allow_headers.append(allow_set(response))
            else:
                assert response.status_code < 400, (method, path, response.text)
                served.add(method)
        assert allow_headers, path
        assert all(allowed == served for allowed in allow_headers), (path, allow_headers, served)
        assert {"GET", "HEAD"} <= served


def test_405_on_object_and_collection_paths(api: Caller, resource: Resource) -> None:
    """PUT and POST on an object path, PATCH, PUT and DELETE on a collection path are 405."""
    obj = api.create(resource)
    path = object_path(resource, obj["id"])
    for method in ("PUT", "POST"):
        response = api.request(method, path, json=valid_body(resource))
        assert_error(response, 405, "method_not_allowed")
        assert allow_set(response) == {"GET", "HEAD", "PATCH", "DELETE"}
    for method in ("PATCH", "PUT", "DELETE"):
        response = api.request(method, resource.path, json=valid_body(resource))
        assert_error(response, 405, "method_not_allowed")
        assert allow_set(response) == {"GET", "HEAD", "POST"}
    assert api.get(path).json() == obj
    assert api.get(resource.path).json()["total"] == 1


def test_405_outside_the_api(server: Server) -> None:
    """Non-API endpoints answer a wrong method with the same JSON 405 and Allow."""
    for target in ("/healthz", "/readyz", "/openapi.json"):
        response = server.client.post(target)
        assert_error(response, 405, "method_not_allowed")
        assert allow_set(response) == {"GET", "HEAD"}


# --- isolation ------------------------------------------------------------------------------


def test_accounts_and_modes_are_isolated(server: Server, resource: Resource) -> None:
    """No operation crosses accounts or test/live: foreign ids are 404, lists and totals apart."""
    a_test = server.new_caller()
    a_test_2 = server.new_caller(account_name=a_test.account_name)
    a_live = server.new_caller(mode="live", account_name=a_test.account_name)
    b_test = server.new_caller()
    b_live = server.new_caller(mode="live", account_name=b_test.account_name)
    owned = {
        "a_test": [a_test.create(resource) for _ in range(2)],
        "a_live": [a_live.create(resource)],
        "b_test": [b_test.create(resource) for _ in range(3)],
        "b_live": [],
    }
    callers = {"a_test": a_test, "a_live": a_live, "b_test": b_test, "b_live": b_live}
    field = resource.fields[-1].name

    for name, caller in callers.items():
        for owner, objects in owned.items():
            if owner == name:
                continue
            for obj in objects:
                path = object_path(resource, obj["id"])
                assert_error(caller.get(path), 404, "resource_missing", "id")
                assert_error(
                    caller.patch(path, json={field: "hijacked"}), 404, "resource_missing", "id"
                )
                assert_error(caller.delete(path), 404, "resource_missing", "id")

    for name, caller in callers.items():
        expected = [obj["id"] for obj in reversed(owned[name])]
        page = caller.get(resource.path, params={"limit": 100}).json()
        assert [obj["id"] for obj in page["data"]] == expected, name
        assert page["total"] == len(expected), name
        for obj in owned[name]:
            assert caller.get(object_path(resource, obj["id"])).json() == obj, name

    # A second key of the same account and mode sees, changes and deletes the same objects.
    page = a_test_2.get(resource.path).json()
    assert [obj["id"] for obj in page["data"]] == [o["id"] for o in reversed(owned["a_test"])]
    shared = owned["a_test"][0]
    updated = a_test_2.patch(object_path(resource, shared["id"]), json={field: "shared"}).json()
    assert a_test.get(object_path(resource, shared["id"])).json() == updated
    assert a_test_2.delete(object_path(resource, shared["id"])).status_code == 200
    assert_error(a_test.get(object_path(resource, shared["id"])), 404, "resource_missing", "id")


# --- 500 ------------------------------------------------------------------------------------


def test_internal_error_is_json_without_details(tmp_sqlite_url: str, resource: Resource) -> None:
    """A real server-side failure is 500 api_error internal_error: JSON, no stack trace, no SQL."""
    migrate.upgrade(tmp_sqlite_url)
    with in_process(tmp_sqlite_url) as server:
        api = server.new_caller()
        obj = api.create(resource)
        sql(tmp_sqlite_url, f"DROP TABLE {resource.table_name}")
        path = object_path(resource, obj["id"])
        for response in (
            api.get(resource.path),
            api.post(resource.path, json=valid_body(resource)),
            api.get(path),
            api.patch(path, json={}),
            api.delete(path),
        ):
            error = assert_error(response, 500, "internal_error")
            text = response.text
            for leak in (
                "Traceback",
                "File ",
                "sqlite",
                "SQL",
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "table",
                resource.table_name,
                "Error:",
            ):
                assert leak not in text, (leak, text)
            assert error["message"] != ""
        # The failure is confined to the broken table: the other resource is still served.
        other = next(r for r in RESOURCES if r is not resource)
        assert api.post(other.path, json=valid_body(other)).status_code == 201


# --- served without a key -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/healthz", "/readyz", "/healthz/", "/readyz/"])
def test_health_endpoints_need_no_key(server: Server, target: str) -> None:
    """/healthz and /readyz answer 200 {"status": "ok"} without (and despite a bad) key."""
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = server.client.get(target, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": "ok"}
        assert REQUEST_ID.match(response.headers["request-id"])


def test_openapi_and_docs_need_no_key(server: Server) -> None:
    """/openapi.json (an OpenAPI 3.1 document) and /docs are served without authentication."""
    response = server.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {r.path for r in RESOURCES} <= set(document["paths"])
    response = server.client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")


def test_auth_cache_forgets_a_revoked_key_within_its_lifetime(server: Server) -> None:
    """OVERPLANE_AUTH_CACHE_SECONDS: a new key works at once (no negative caching); a key
    revoked elsewhere keeps working here at most for the cache's lifetime, then gets 401."""
    lifetime = 0.5
    settings = Settings(
        database_url=server.database_url,
        access_log=False,
        auth_cache_seconds=lifetime,
        **NO_LIMITS,
    )
    caller = server.new_caller()
    with TestClient(OverplaneApp(settings)) as cached:
        auth = {"Authorization": f"Bearer {caller.key}"}
        assert cached.get(PARTY_LINK.path, headers=auth).status_code == 200
        key_id = next(k.id for k in server.run(keys.list_keys, server.app.db, caller.account_name))
        server.run(keys.revoke_key, server.app.db, key_id)
        assert server.client.get(PARTY_LINK.path, headers=auth).status_code == 401  # no cache
        revoked_at = time.monotonic()
        while cached.get(PARTY_LINK.path, headers=auth).status_code == 200:
            assert time.monotonic() - revoked_at < lifetime + 1.0, "revoked key still accepted"
            time.sleep(0.05)
        newcomer = server.new_caller()
        fresh = {"Authorization": f"Bearer {newcomer.key}"}
        assert cached.get(PARTY_LINK.path, headers=fresh).status_code == 200
