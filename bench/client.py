"""What the Python client costs per call, over raw httpx (docs/performance.md, "The client").

Two measurements, each the median of several alternating runs:

- against a real ``overplane serve`` (SQLite, one worker): a retrieve, a list of 20 and a
  create, through ``httpx.Client`` with hand-built requests and through ``overplane.Client``;
  the difference is the client's overhead inside a real round trip;
- against ``httpx.MockTransport`` answering canned bytes: no network and no server, so the
  difference is the client's own work alone (building the call, the retry loop, parsing into
  typed objects), with less noise than the round trip's.

``python -m bench.client`` (``BENCH_CALLS``: calls per run, default 1000; ``BENCH_RUNS``: runs,
default 5). Prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.servers import free_port, overplane_command, serving
from overplane import Client
from overplane.declarations import APPOINTMENT

CALLS = int(os.environ.get("BENCH_CALLS", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
BODY = {f.name: f.example for f in APPOINTMENT.required_fields}


def per_call_us(work: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``work`` over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def compare(
    label: str, raw: Callable[[], object], client: Callable[[], object], calls: int
) -> tuple[str, float, float]:
    """Median µs per call of each, alternating runs so that drift hits both alike."""
    raw_runs: list[float] = []
    client_runs: list[float] = []
    raw()  # warm both (connections, caches)
    client()
    for _ in range(RUNS):
        raw_runs.append(per_call_us(raw, calls))
        client_runs.append(per_call_us(client, calls))
    return label, statistics.median(raw_runs), statistics.median(client_runs)


def against_server() -> list[tuple[str, float, float]]:
    """Retrieve, list and create against a real server on a temporary SQLite file."""
    key = "sk_test_" + secrets.token_hex(16)
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        env = {
            "OVERPLANE_DATABASE_URL": f"sqlite:///{Path(directory) / 'bench.sqlite3'}",
            "OVERPLANE_BOOTSTRAP_KEY": key,
            "OVERPLANE_ACCESS_LOG": "false",
        }
        log = (Path(directory) / "server.log").open("wb")
        with serving(overplane_command(port), port, env=env, cpus=None, log=log):
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            with (
                httpx.Client(base_url=base, headers=headers) as http,
                Client(api_key=key, base_url=base) as client,
            ):
                made = client.appointments.create(**BODY)
                for _ in range(19):
                    client.appointments.create(**BODY)
                path = f"{APPOINTMENT.path}/{made.id}"
                content = json.dumps(BODY).encode()
                write_headers = {"Content-Type": "application/json"}

                def raw_create() -> object:
                    return http.post(
                        APPOINTMENT.path,
                        content=content,
                        headers={**write_headers, "Idempotency-Key": secrets.token_hex(16)},
                    ).json()

                return [
                    compare(
                        "retrieve",
                        lambda: http.get(path).json(),
                        lambda: client.appointments.retrieve(made.id),
                        CALLS,
                    ),
                    compare(
                        "list of 20",
                        lambda: http.get(APPOINTMENT.path, params={"limit": "20"}).json(),
                        lambda: client.appointments.list(limit=20),
                        CALLS // 2,
                    ),
                    compare(
                        "create",
                        raw_create,
                        lambda: client.appointments.create(**BODY),
                        CALLS // 4,
                    ),
                ]


def against_mock() -> list[tuple[str, float, float]]:
    """The client's own work: both sides get canned bytes from httpx.MockTransport."""
    obj = {**APPOINTMENT.example}
    one = json.dumps(obj).encode()
    page = json.dumps({"data": [obj] * 20, "has_more": True, "total": 1000}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        content = page if request.url.path == APPOINTMENT.path else one
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    transport = httpx.MockTransport(answer)
    with (
        httpx.Client(transport=transport, base_url="http://mock") as http,
        httpx.Client(transport=transport) as lent,
        Client(api_key="sk_test_x", base_url="http://mock", http_client=lent) as client,
    ):
        path = f"{APPOINTMENT.path}/appointment_abc123"
        return [
            compare(
                "retrieve (mock)",
                lambda: http.get(path).json(),
                lambda: client.appointments.retrieve("appointment_abc123"),
                CALLS * 5,
            ),
            compare(
                "list of 20 (mock)",
                lambda: http.get(APPOINTMENT.path, params={"limit": "20"}).json(),
                lambda: client.appointments.list(limit=20),
                CALLS * 2,
            ),
        ]


def main() -> None:
    """Measure and print the table."""
    rows = against_server() + against_mock()
    print(f"{CALLS} calls per run (lists: half, creates: a quarter; mock: ×5, ×2), {RUNS} runs")
    print()
    print("| call | raw httpx (µs) | overplane.Client (µs) | overhead (µs) | overhead |")
    print("|---|---:|---:|---:|---:|")
    for label, raw, client in rows:
        extra = client - raw
        print(f"| {label} | {raw:.0f} | {client:.0f} | {extra:+.0f} | {extra / raw:+.0%} |")


if __name__ == "__main__":
    main()
