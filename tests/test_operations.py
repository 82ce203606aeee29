"""What an operator reads: one log format for every line a server process writes, and the
Prometheus metrics (``docs/deployment.md``, "Logs" and "Metrics"), on real ``overplane serve``
processes (slow) and, for the parts that need no server, in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from overplane.declarations import APPOINTMENT
from overplane.storage.database import is_postgres
from tests.helpers import (
    Receiver,
    RunningServer,
    ServerLauncher,
    free_port,
    object_path,
    sql,
    valid_body,
)

JSON_KEYS = ["time", "level", "logger", "pid"]
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as one JSON object (fails on the first that is not)."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(value, dict), line
        assert list(value)[:4] == JSON_KEYS, line
        assert TIME.fullmatch(value["time"]), line
        parsed.append(value)
    return parsed


def test_warnings_and_uncaught_errors_are_json_lines() -> None:
    """In a fresh process configured by ``overplane.logs``: a Python warning, a logged error
    with its traceback, and an uncaught exception are each one JSON line."""
    program = (
        "import logging, warnings\n"
        "from overplane import logs\n"
        "logs.configure('json')\n"
        "warnings.warn('a deprecated thing', DeprecationWarning, stacklevel=1)\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('overplane.test').exception('it failed')\n"
        "raise RuntimeError('never caught')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = json_lines(result.stderr)
    by_logger = {line["logger"]: line for line in lines}
    assert "a deprecated thing" in by_logger["py.warnings"]["message"]
    assert by_logger["py.warnings"]["level"] == "warning"
    failed = by_logger["overplane.test"]
    assert failed["level"] == "error"
    assert failed["message"] == "it failed"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError" in failed["exception"]
    uncaught = by_logger["overplane"]
    assert uncaught["level"] == "critical"
    assert "RuntimeError: never caught" in uncaught["exception"]


def test_the_cli_module_does_not_import_prometheus_client() -> None:
    """``overplane serve`` must set the metrics directory up before prometheus_client is
    imported (it reads it once, at import): importing the command must not import it."""
    program = "import sys, overplane.cli.main; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def wait_for_lines(server: RunningServer, predicate: Any, timeout: float = 10) -> None:
    """Wait until some line of the server's log satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(line) for line in json_lines(server.log())):
            return
        time.sleep(0.1)
    raise AssertionError(f"no such line in {server.log()}")


@pytest.mark.slow
def test_every_line_a_server_writes_is_json(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """OVERPLANE_LOG_FORMAT=json, two workers: start-up, a logged warning (malformed HTTP), an
    error with its traceback (a table dropped behind the server's back: 500), access lines and
    shutdown are all JSON, line by line, from the parent and both workers."""
    server, key = start_server.with_new_key(
        fresh_database_url, "--workers", "2", OVERPLANE_LOG_FORMAT="json"
    )
    with server.client(key) as client:
        created = client.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
        assert created.status_code == 201
        with httpx.Client() as raw:
            assert raw.get(server.base_url + "/healthz").status_code == 200
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"NOT HTTP\r\n\r\n")
            sock.recv(4096)
        sql(fresh_database_url, f"DROP TABLE {APPOINTMENT.table_name}")
        failed = client.get(object_path(APPOINTMENT, created.json()["id"]))
        assert failed.status_code == 500
    wait_for_lines(server, lambda line: "exception" in line)
    assert server.stop() == 0
    lines = json_lines(server.log())
    messages = [line["message"] for line in lines if "message" in line]
    assert any(m.startswith("Started parent process") for m in messages)
    assert sum(m.startswith("Started server process") for m in messages) == 2
    assert any(m.startswith("Finished server process") for m in messages)
    assert len({line["pid"] for line in lines}) == 3
    assert any(
        line["level"] == "warning" and line["message"].startswith("Invalid HTTP request received")
        for line in lines
    )
    error = next(line for line in lines if "exception" in line)
    assert error["level"] == "error"
    assert error["message"].startswith("unhandled error while serving req_")
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert "no such table" in error["exception"] or "does not exist" in error["exception"]
    access = [line for line in lines if line["logger"] == "overplane.access"]
    assert {line["status"] for line in access} >= {201, 200, 500}
    assert key[8:] not in server.log()
    assert server.printed.count("\n") <= 2  # stdout: only the first-start key, if any


@pytest.mark.slow
def test_text_format_is_readable_lines(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """OVERPLANE_LOG_FORMAT=text: ``time LEVEL logger: message`` lines, the access log too."""
    server, key = start_server.with_new_key(fresh_database_url, OVERPLANE_LOG_FORMAT="text")
    with server.client(key) as client:
        request_id = client.get(APPOINTMENT.path).headers["request-id"]
    assert server.stop() == 0
    log = server.log()
    assert not any(line.startswith("{") for line in log.splitlines()), log
    assert re.search(r"^\S+Z INFO uvicorn.error: Started server process", log, re.M), log
    assert re.search(
        rf"^\S+Z INFO overplane.access: GET {APPOINTMENT.path} 200 [\d.]+ ms {request_id} acct_",
        log,
        re.M,
    ), log


# --- metrics ------------------------------------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    """The metrics on ``port``: ``name{labels}`` → value (labels as the exposition writes them)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    """The value of ``name`` with exactly ``labels`` (in any order), 0 if absent."""
    for key, value in samples.items():
        metric, _, rest = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if metric == name and found == labels:
            return value
    return 0.0


@pytest.mark.slow
def test_metrics_add_up_over_two_workers(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """``--workers 2``: requests counted by route template, method and status add up over both
    workers (whose pids the access log shows); latency counts match; the pool's gauges are
    there on PostgreSQL; webhook deliveries and their lag are counted; the API's port has no
    /metrics; the metrics directory is gone after the server stops."""
    metrics_port = free_port()
    receiver = Receiver()
    try:
        server, key = start_server.with_new_key(
            fresh_database_url,
            "--workers",
            "2",
            OVERPLANE_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
            OVERPLANE_LOG_FORMAT="json",
            OVERPLANE_WEBHOOK_ALLOW_PRIVATE="true",
            OVERPLANE_WEBHOOK_POLL_SECONDS="0.05",
        )
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            endpoint = {"url": receiver.url, "enabled_events": ["*"]}
            assert client.post("/api/webhook-endpoints", json=endpoint).status_code == 201
        missing = 200
        for _ in range(missing):  # a new connection each: the kernel spreads them over both
            response = httpx.get(
                server.base_url + object_path(APPOINTMENT, "appointment_missing"),
                headers={**headers, "Connection": "close"},
            )
            assert response.status_code == 404
        created = 5
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            for _ in range(created):
                assert (
                    client.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).status_code == 201
                )
            public = httpx.get(server.base_url + "/metrics")
            assert public.status_code == 404
            assert public.json()["error"]["code"] == "route_missing"
        receiver.wait_for(created)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.5)  # each worker writes its counts once a second
            samples = scrape(metrics_port)
            done = sample(samples, "overplane_webhook_deliveries_total", outcome="succeeded")
            route = "/api/crm/appointment/{id}"
            counted = sample(
                samples, "overplane_http_requests_total", route=route, method="GET", status="404"
            )
            # The creates and the /metrics 404 may have been served by the other worker,
            # whose counts can arrive a second after those of the retrieves: wait for all.
            posted = sample(
                samples,
                "overplane_http_requests_total",
                route="/api/crm/appointment",
                method="POST",
                status="201",
            )
            unmatched = sample(
                samples,
                "overplane_http_requests_total",
                route="unmatched",
                method="GET",
                status="404",
            )
            if counted == missing and done == created and posted == created and unmatched >= 1:
                break
        print(f"\nmetrics: {counted} of {missing} retrieves, {done} of {created} deliveries")
        assert counted == missing
        assert done == created
        assert (
            sample(
                samples,
                "overplane_http_request_duration_seconds_count",
                route="/api/crm/appointment/{id}",
                method="GET",
            )
            == missing
        )
        assert posted == created
        assert sample(samples, "overplane_webhook_delivery_lag_seconds_count") == created
        assert unmatched >= 1
        if is_postgres(fresh_database_url):
            assert sample(samples, "overplane_db_pool_max_size") == 20  # 2 workers × 10
            assert "overplane_db_pool_in_use" in samples
            assert "overplane_db_pool_waiting" in samples
        pids = {
            line["pid"]
            for line in json_lines(server.log())
            if line["logger"] == "overplane.access" and line["status"] == 404
        }
        assert len(pids) == 2, "one worker served every request: the sum proves nothing"
        directory = next(
            line["message"].rpartition(" ")[2]
            for line in json_lines(server.log())
            if line.get("message", "").startswith("metrics on")
        )
        assert os.path.isdir(directory)
        assert server.stop() == 0
        assert not os.path.exists(directory)
    finally:
        receiver.server.shutdown()
