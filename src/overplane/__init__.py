"""Overplane: a self-hostable server for the Overplane business API."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version: pyproject.toml is its one source.
    __version__ = version("overplane")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
