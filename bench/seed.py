"""Seeding objects through the API: many concurrent keep-alive connections, raw HTTP/1.1.

A general-purpose client would spend more time per request than the server; this one writes a
pre-built request and reads back status, headers and a Content-Length body, which is all the
API ever sends. It runs on the load generator's core.
"""

from __future__ import annotations

import asyncio
import json


class SeedError(RuntimeError):
    """The server refused a create while seeding."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _create_many(
    port: int, key: str, path: str, body: bytes, count: int, connections: int
) -> list[str]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    ids: list[str] = []
    remaining = count

    async def connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                writer.write(request)
                status, payload = await _read_response(reader)
                if status != 201:
                    raise SeedError(f"POST {path} answered {status}: {payload[:200]!r}")
                ids.append(json.loads(payload)["id"])
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(min(connections, count))))
    return ids


def create_objects(
    port: int, key: str, path: str, body: bytes, count: int, connections: int = 64
) -> list[str]:
    """Create ``count`` objects with ``body`` through ``POST path``; return their ids."""
    return asyncio.run(_create_many(port, key, path, body, count, connections))
