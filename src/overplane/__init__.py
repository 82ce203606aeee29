"""Overplane: a self-hostable server for the Overplane business API, and its Python client.

``from overplane import Client, AsyncClient`` loads the client (``overplane.client``) on first
use: importing ``overplane`` itself needs only the standard library, because webhook receivers
import ``overplane.webhooks`` without httpx or the server's dependencies installed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    #: The installed distribution's version: pyproject.toml is its one source.
    __version__ = version("overplane")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from overplane.client import AsyncClient, Client

#: Names served lazily from the client package.
_CLIENT_NAMES = frozenset({"Client", "AsyncClient"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        import importlib

        client = importlib.import_module("overplane.client")
        return getattr(client, name)
    raise AttributeError(f"module 'overplane' has no attribute {name!r}")


__all__ = ["AsyncClient", "Client", "__version__"]
