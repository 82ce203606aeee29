"""``overplane config``: every effective setting, where it came from, secrets masked.

The answer to "which database will this command use?" before running one: the same
:class:`~overplane.settings.Settings` every other command reads, with the machine-dependent
defaults (``OVERPLANE_HOME``, the SQLite file in it) resolved.
"""

from __future__ import annotations

import os
from typing import Any

from rich.table import Table

from overplane.cli.output import JsonOption, err, fail, print_json, table_console
from overplane.declarations.extra import ENV as EXTRA_RESOURCES_ENV
from overplane.settings import SETTINGS, Settings, SettingsError, redacted


def masked(value: Any) -> Any:
    """A secret as it may be shown: a URL without its password, a key as ``sk_test_…a1b2``."""
    if not isinstance(value, str) or not value:
        return value
    if "://" in value:
        return redacted(value)
    return f"{value[:8]}…{value[-4:]}" if len(value) > 16 else "…"


def effective(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each variable's effective value (masked if secret) and its source, in page order."""
    rows: dict[str, dict[str, Any]] = {}
    for attribute, spec in SETTINGS.items():
        value = getattr(settings, attribute)
        rows[spec.env] = {
            "value": masked(value) if spec.secret else value,
            "source": "environment" if spec.env in os.environ else "default",
        }
    extra = os.environ.get(EXTRA_RESOURCES_ENV)
    rows[EXTRA_RESOURCES_ENV] = {
        "value": extra,
        "source": "environment" if extra is not None else "default",
    }
    return rows


def config(json_output: JsonOption = False) -> None:
    """Print every effective setting and where it came from (secrets masked)."""
    try:
        settings = Settings.from_environ()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    rows = effective(settings)
    if json_output:
        print_json(rows)
        return
    table = Table("variable", "value", "source")
    for variable, row in rows.items():
        value = row["value"]
        shown = (
            "unset"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        table.add_row(variable, shown, row["source"])
    table_console().print(table)
    if settings.database_is_default:
        err.print(f"The database is the default SQLite file in OVERPLANE_HOME ({settings.home}).")
