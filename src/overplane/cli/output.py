"""What every ``overplane`` command shares about output.

People read standard error and rich tables; scripts read standard output, and with ``--json``
that is exactly one JSON document (an object or an array), nothing else. Failures print one
line on standard error and exit with status 1.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

#: People's messages: standard error, so that standard output stays the command's result.
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: The ``--json`` option every command that prints a result takes.
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on standard output (for scripts).")
]


#: Set by ``overplane serve`` in JSON log mode: failures are then log lines too, not
#: coloured text (docs/deployment.md, "Logs").
failures_as_log_lines = False


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on standard error and return the exit to raise."""
    if failures_as_log_lines:
        logging.getLogger("overplane").error(message)
    else:
        err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=code)


def print_json(value: Any) -> None:
    """Write ``value`` as one JSON document, then a newline, on standard output."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def table_console() -> Console:
    """A console for tables on standard output, wide enough that ids are never cut."""
    return Console(width=max(160, Console().width), highlight=False)
