"""Webhook endpoints and deliveries, against real receivers on 127.0.0.1, on each backend.

The endpoint API (secrets shown once, validation, rotation); every event an endpoint is
subscribed to arrives, signed so that ``overplane.webhooks.verify`` accepts it and rejects a
changed body, time or secret; a receiver that is down for a while gets everything once it
answers; deliveries are retried, logged attempt by attempt, given up after the retry window,
and sent again on request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from overplane.declarations import APPOINTMENT, PARTY_LINK
from overplane.storage import migrate
from overplane.webhooks import SignatureVerificationError, verify
from tests.helpers import WAIT_SECONDS, Caller, Receiver, Server, in_process, valid_body

ENDPOINTS = "/api/webhook-endpoints"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that answers 200."""
    found = Receiver()
    yield found
    found.close()


def worker_app(database_url: str, **settings: Any) -> Iterator[Server]:
    """The application with a webhook worker that may deliver to 127.0.0.1, polling often and
    retrying after a fraction of a second, on a database of the test's own (a worker sends
    every due delivery of its database: other tests' endpoints would queue before ours)."""
    migrate.upgrade(database_url)
    defaults: dict[str, Any] = {
        "webhook_worker": True,
        "webhook_allow_private": True,
        "webhook_poll_seconds": 0.05,
        "webhook_retry_base_seconds": 0.1,
        "webhook_retry_for_seconds": 30.0,
    }
    with in_process(database_url, **(defaults | settings)) as app:
        yield app


@pytest.fixture
def delivering(fresh_database_url: str) -> Iterator[Server]:
    """An application delivering webhooks, on a fresh database (see :func:`worker_app`)."""
    yield from worker_app(fresh_database_url)


def subscribe(api: Caller, url: str, *events: str) -> dict[str, Any]:
    """A new endpoint of the caller's account; returned with its secret."""
    response = api.post(ENDPOINTS, json={"url": url, "enabled_events": list(events) or ["*"]})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_an_endpoint_shows_its_secret_once(api: Caller) -> None:
    created = api.post(
        ENDPOINTS,
        json={
            "url": "https://hooks.example.com/overplane",
            "enabled_events": ["appointment.*", "party_link.deleted"],
            "description": "CRM sync",
        },
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert created.headers["location"] == f"{ENDPOINTS}/{endpoint['id']}"
    assert endpoint["disabled"] is False
    shown = api.get(f"{ENDPOINTS}/{endpoint['id']}").json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in endpoint.items() if k != "secret"}
    listed = api.get(ENDPOINTS).json()
    assert listed["total"] == 1
    assert listed["data"] == [shown]

    changed = api.patch(
        f"{ENDPOINTS}/{endpoint['id']}",
        json={"disabled": True, "enabled_events": ["*"], "description": None},
    ).json()
    assert (changed["disabled"], changed["enabled_events"], changed["description"]) == (
        True,
        ["*"],
        None,
    )
    assert "secret" not in changed
    rotated = api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != endpoint["secret"]
    assert api.delete(f"{ENDPOINTS}/{endpoint['id']}").json() == {
        "id": endpoint["id"],
        "deleted": True,
    }
    assert api.get(f"{ENDPOINTS}/{endpoint['id']}").status_code == 404
    assert api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret").status_code == 404


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"enabled_events": ["*"]}, "url", "parameter_missing"),
        ({"url": "https://x.example.com"}, "enabled_events", "parameter_missing"),
        ({"url": "ftp://x.example.com", "enabled_events": ["*"]}, "url", "parameter_invalid"),
        ({"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]}, "url", "parameter_invalid"),
        ({"url": "http://10.0.0.1/x", "enabled_events": ["*"]}, "url", "parameter_invalid"),
        ({"url": "http://localhost/x", "enabled_events": ["*"]}, "url", "parameter_invalid"),
        (
            {"url": "https://x.example.com", "enabled_events": []},
            "enabled_events",
            "parameter_invalid",
        ),
        (
            {"url": "https://x.example.com", "enabled_events": ["invoice.paid"]},
            "enabled_events",
            "parameter_invalid",
        ),
        (
            {"url": "https://x.example.com", "enabled_events": "*"},
            "enabled_events",
            "parameter_invalid",
        ),
        (
            {"url": "https://x.example.com", "enabled_events": ["*"], "secret": "whsec_x"},
            "secret",
            "parameter_unknown",
        ),
        (
            {"url": "https://x.example.com", "enabled_events": ["*"], "description": 5},
            "description",
            "parameter_invalid",
        ),
    ],
)
def test_bad_endpoints_are_refused_by_name(
    api: Caller, body: dict[str, Any], param: str, code: str
) -> None:
    """Private, loopback and link-local URLs are refused without OVERPLANE_WEBHOOK_ALLOW_PRIVATE
    (the run's shared server has it off)."""
    response = api.post(ENDPOINTS, json=body)
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
    assert api.get(ENDPOINTS).json()["total"] == 0


@pytest.mark.slow
def test_subscribed_events_arrive_signed(delivering: Server, receiver: Receiver) -> None:
    api = delivering.new_caller()
    endpoint = subscribe(api, receiver.url, "appointment.*")
    made = api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).json()
    api.patch(f"{APPOINTMENT.path}/{made['id']}", json={"status": "confirmed"})
    api.post(PARTY_LINK.path, json=valid_body(PARTY_LINK))  # not subscribed
    api.delete(f"{APPOINTMENT.path}/{made['id']}")

    arrived = receiver.wait_for(3)
    time.sleep(0.3)  # nothing more arrives: the party link's event was not subscribed
    assert len(receiver.received) == 3
    assert sorted(e["type"] for e in arrived) == [
        "appointment.created",
        "appointment.deleted",
        "appointment.updated",
    ]
    for received in receiver.received:
        event = json.loads(received.body)
        assert api.get(f"/api/events/{event['id']}").json() == event
        verify(received.body, received.signature, endpoint["secret"])
        for forged in (
            (received.body + b" ", received.signature, endpoint["secret"]),
            (received.body, received.signature, "whsec_wrong"),
        ):
            with pytest.raises(SignatureVerificationError):
                verify(*forged)
        with pytest.raises(SignatureVerificationError):
            verify(received.body, received.signature, endpoint["secret"], now=time.time() + 3600)

    attempts = api.get(f"{ENDPOINTS}/{endpoint['id']}/attempts").json()
    assert attempts["total"] == 3
    assert {a["status_code"] for a in attempts["data"]} == {200}
    assert all(a["next_retry_at"] is None and a["error"] is None for a in attempts["data"])


@pytest.mark.slow
def test_a_receiver_down_for_a_while_gets_every_event(delivering: Server) -> None:
    down_for = 6  # the first six requests get 503, then it answers
    receiver = Receiver(status=lambda n: 503 if n <= down_for else 200)
    try:
        api = delivering.new_caller()
        endpoint = subscribe(api, receiver.url)
        made = [api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).json() for _ in range(4)]
        deadline = time.monotonic() + WAIT_SECONDS
        delivered: set[str] = set()
        while len(delivered) < 4 and time.monotonic() < deadline:
            accepted = receiver.received[down_for:]
            delivered = {json.loads(r.body)["data"]["object"]["id"] for r in accepted}
            time.sleep(0.05)
        assert delivered == {m["id"] for m in made}
        attempts = api.get(f"{ENDPOINTS}/{endpoint['id']}/attempts", params={"limit": 100}).json()
        failures = [a for a in attempts["data"] if a["status_code"] == 503]
        assert len(failures) == down_for
        assert all(a["next_retry_at"] is not None for a in failures)
    finally:
        receiver.close()


@pytest.mark.slow
def test_a_delivery_is_given_up_after_its_retry_window(fresh_database_url: str) -> None:
    receiver = Receiver(status=lambda n: 500)
    try:
        for app in worker_app(fresh_database_url, webhook_retry_for_seconds=0.5):
            api = app.new_caller()
            endpoint = subscribe(api, receiver.url)
            api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
            deadline = time.monotonic() + WAIT_SECONDS
            log: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                log = api.get(f"{ENDPOINTS}/{endpoint['id']}/attempts").json()["data"]
                if log and log[0]["next_retry_at"] is None:
                    break
                time.sleep(0.05)
            assert log, "no attempt was made"
            assert log[0]["next_retry_at"] is None  # given up
            assert all(a["status_code"] == 500 for a in log)
            count = len(receiver.received)
            time.sleep(0.5)
            assert len(receiver.received) == count  # and not tried again
    finally:
        receiver.close()


@pytest.mark.slow
def test_redeliver_sends_an_event_again(delivering: Server, receiver: Receiver) -> None:
    api = delivering.new_caller()
    endpoint = subscribe(api, receiver.url, "party_link.created")
    api.post(PARTY_LINK.path, json=valid_body(PARTY_LINK))
    (first,) = receiver.wait_for(1)
    again = api.post(f"/api/events/{first['id']}/redeliver")
    assert again.json() == {"id": first["id"], "redelivered_to": [endpoint["id"]]}
    assert receiver.wait_for(2)[1] == first
    one = api.post(f"/api/events/{first['id']}/redeliver", json={"endpoint": endpoint["id"]})
    assert one.status_code == 200
    assert receiver.wait_for(3)[2] == first
    assert api.post("/api/events/evt_nope/redeliver").status_code == 404
    missing = api.post(f"/api/events/{first['id']}/redeliver", json={"endpoint": "we_nope"})
    assert missing.status_code == 404


@pytest.mark.slow
def test_a_disabled_endpoint_receives_nothing_and_rotation_signs_with_both(
    delivering: Server, receiver: Receiver
) -> None:
    api = delivering.new_caller()
    endpoint = subscribe(api, receiver.url)
    api.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"disabled": True})
    api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
    time.sleep(0.5)
    assert receiver.received == []
    api.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"disabled": False})
    rotated = api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret").json()
    api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
    receiver.wait_for(1)
    (received,) = receiver.received
    verify(received.body, received.signature, rotated["secret"])
    verify(received.body, received.signature, endpoint["secret"])  # still, for 24 hours
