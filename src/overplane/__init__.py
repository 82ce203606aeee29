"""Overplane: a self-hostable server for the Overplane business API."""

__version__ = "0.1.0"
