"""Whose data a statement may touch: one account, in one mode.

Called a tenant rather than a scope, since ASGI already uses "scope" for the request's
connection details and both meet in the HTTP layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tenant:
    """One account's data in one mode (test or live); every object statement is scoped by it."""

    account_id: str
    livemode: bool

    @property
    def args(self) -> tuple[str, bool]:
        """The SQL arguments of ``account_id = ? AND livemode = ?``, in that order."""
        return self.account_id, self.livemode
