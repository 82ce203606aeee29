"""Where the server's time goes: py-spy samples of the server under load, sorted into layers.

``py-spy record --format raw`` writes one line per distinct stack (root first, leaf last) with
its sample count; idle samples (the event loop waiting in epoll) are left out, so the counted
samples over the expected ones is how busy the server's one thread was. Each sample is charged
to the layer of its innermost recognisable frame: a sample inside ``sqlite3`` (C, no Python
frame) is charged to the ``database.py`` frame that called it, and a sample whose innermost
Python frame is the event loop's entry point was spent in uvloop/httptools (C): socket reads,
HTTP parsing, callbacks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).with_name("py-spy")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")

#: Frames that only lead to the event loop (the CLI, uvicorn's start-up, asyncio's runner).
_ROOT_FILES = ("asyncio/runners.py", "uvicorn/server.py", "uvicorn/_compat.py", "uvicorn/main.py")
_REQUEST_FILES = {
    "overplane/http/bodies.py",
    "overplane/http/pagination.py",
    "overplane/http/list_query.py",
}
EVENT_LOOP = "event loop: socket reads, HTTP parsing, task switches (uvloop/httptools, C)"


@dataclass(frozen=True, slots=True)
class Profile:
    """The samples of one profile, per layer and per innermost function."""

    samples: int
    expected: int  # rate x duration: what a never-idle thread would have given
    layers: dict[str, int]
    functions: dict[str, int]  # innermost Python function (file) -> samples

    @property
    def busy(self) -> float:
        """The share of the time the server's thread was running, not waiting."""
        return self.samples / self.expected if self.expected else 0.0

    def share(self, layer: str) -> float:
        """The share of the busy samples spent in ``layer``."""
        return self.layers.get(layer, 0) / self.samples if self.samples else 0.0


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    return (match["function"], match["file"]) if match else (frame, "")


def layer_of(stack: list[str]) -> str:
    """The layer a sample belongs to: that of its innermost recognisable frame."""
    files = [_split(frame)[1] for frame in stack]
    in_auth = any(f.startswith("overplane/auth/") for f in files)
    for frame in reversed(stack):
        function, file = _split(frame)
        if file.startswith("uvicorn/protocols/"):
            if function.startswith("RequestResponseCycle.send"):
                return "HTTP server: response writes (uvicorn send, transport.write)"
            return "HTTP server: protocol, ASGI cycle (uvicorn)"
        if file.startswith("uvicorn/middleware/"):
            return "HTTP server: proxy-headers middleware (uvicorn)"
        if file.startswith("asyncpg/"):
            where = "API-key lookup" if in_auth else "object query"
            return f"SQL: {where} (asyncpg: pool acquire/release/reset, statement)"
        if file == "overplane/storage/database.py":
            return "SQL: API-key lookup" if in_auth else "SQL: object query"
        if file.startswith("starlette/routing"):
            return "framework: starlette routing"
        if file.startswith("starlette/"):
            return "framework: starlette Request/Response"
        if file == "overplane/http/access_log.py" or file.startswith("logging/"):
            return "access log"
        if file.startswith("overplane/auth/"):
            return "auth: key format check, SHA-256, compare"
        if file == "overplane/storage/ids.py":
            return "ids: request id, object id (CSPRNG, base 62)"
        if file.startswith("overplane/storage/"):
            return "store: statements, arguments, clock, rows"
        if file in {"overplane/http/rendering.py", "overplane/rfc3339.py"}:
            return "render: timestamps, dict, JSON encode"
        if file in _REQUEST_FILES:
            return "request: body decode, validation, query parsing"
        if file in {"overplane/http/idempotency.py", "overplane/http/preconditions.py"}:
            return "handler: idempotency keys, ETags"
        if file == "overplane/http/routes.py":
            return "handler glue (routes.py)"
        if file == "overplane/http/app.py":
            return "app.handle: request id, scope copy, send wrapper"
        if file.startswith("overplane/"):
            return f"other: {file}"
        if file in _ROOT_FILES:
            return EVENT_LOOP
    innermost = _split(stack[-1])[1] if stack else "?"
    return f"other: {innermost}"


def parse_raw(text: str, expected: int) -> Profile:
    """A profile from py-spy's raw (collapsed stacks) output."""
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        samples += count
        layers[layer_of(stack)] += count
        function, file = _split(stack[-1])
        functions[f"{function} ({file})"] += count
    return Profile(samples, expected, dict(layers), dict(functions))


def record(pid: int, seconds: int, output: Path, rate: int = 100) -> Profile:
    """Sample ``pid`` for ``seconds`` with py-spy; keep the raw stacks in ``output``."""
    command = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed: {completed.stderr.strip()}")
    return parse_raw(output.read_text(), expected=rate * seconds)
