"""Webhook receivers for tests: real HTTP servers on 127.0.0.1 that record what they get."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from overplane.webhooks import SIGNATURE_HEADER

#: The longest a test waits for deliveries to arrive.
WAIT_SECONDS = 15.0


class Received(NamedTuple):
    """One request a receiver got."""

    body: bytes
    signature: str


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers what ``status`` says."""

    def __init__(
        self, status: Callable[[int], int] = lambda n: 200, delay_seconds: float = 0.0
    ) -> None:
        self.received: list[Received] = []
        self.status = status
        self.delay_seconds = delay_seconds
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay_seconds)  # a slow receiver: deliveries in flight
                with receiver._lock:
                    receiver.received.append(Received(body, self.headers[SIGNATURE_HEADER]))
                    code = receiver.status(len(receiver.received))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        """The bodies received so far, decoded."""
        with self._lock:
            return [json.loads(r.body) for r in self.received]

    def wait_for(self, count: int, seconds: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        """Wait (bounded) until ``count`` requests arrived; the events received."""
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
