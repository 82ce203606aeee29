"""The layer rules of docs/architecture.md, checked over the source so they cannot rot.

- SQL lives only in ``storage/``: no other module holds a SQL statement in a string, or
  imports a database driver or SQLAlchemy.
- No upward imports: each layer imports only the layers listed for it.
- ``overplane listen`` (``cli/listen.py``) talks to the API over HTTP only: it imports
  neither storage nor anything else of the server but the signing helper.
- What receivers import (``overplane.webhooks`` and its ``signature``) needs only the
  standard library, so it works without the server's dependencies installed.
- The client (``client/``) imports only declarations, the signing helper and httpx: never
  storage, the HTTP app or a database driver, in its source and in a fresh interpreter.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "overplane"

#: What each part of the package may import of the project (besides itself). The top-level
#: modules clock, rfc3339, settings and errors (the API's error classes, which the pages and
#: the shared validation raise too) import nothing of the project, and anyone may use them.
BASE = {"clock", "rfc3339", "settings", "errors"}
ALLOWED: dict[str, set[str]] = {
    "declarations": set(),
    "clock": set(),
    "rfc3339": set(),
    "settings": set(),
    "errors": set(),
    # Operations: the one log format, and the metrics; anyone above storage may use them.
    "logs": {"clock", "rfc3339"},
    "metrics": set(),
    "storage": {"declarations", *BASE},
    # The checks of field values and list query strings, shared by the API (http/) and the
    # dashboard (web/), which may not import each other: moved below both.
    "validation": {"declarations", "storage", *BASE},
    "auth": {"storage", *BASE},
    # Objects and events as the API shows them: for the API, webhook bodies and the pages.
    "rendering": {"declarations", "storage", *BASE},
    # Token buckets, in process and in Redis: nothing of the project but the settings.
    "limits": {*BASE},
    "web": {"declarations", "storage", "auth", "rendering", "validation", *BASE},
    # http/ validates webhook URLs with webhooks/addresses.py when endpoints are written.
    "http": {
        "declarations",
        "storage",
        "auth",
        "rendering",
        "validation",
        "webhooks",
        "limits",
        "logs",
        "metrics",
        *BASE,
    },
    "webhooks": {"declarations", "storage", "rendering", "metrics", *BASE},
    # cli/: admin commands through storage; data commands through the client (checked below).
    "cli": {
        "declarations",
        "storage",
        "auth",
        "rendering",
        "validation",
        "http",
        "web",
        "webhooks",
        "limits",
        "logs",
        "metrics",
        "client",
        *BASE,
    },
    # A client of the API over HTTP: the declarations it is derived from, and the signing
    # helper (webhooks/signature.py only, checked below).
    "client": {"declarations", "webhooks"},
}
#: The one module that assembles the application may also import the pages of web/.
ASSEMBLERS = {"http/app.py": {"web"}}
#: Modules a receiver imports to verify signatures: the standard library only, for them and
#: for every module of the project they import (the package's own __init__ included).
STANDARD_LIBRARY_ONLY = {"__init__.py", "webhooks/__init__.py", "webhooks/signature.py"}
DRIVERS = {"sqlite3", "asyncpg", "sqlalchemy", "alembic", "psycopg", "psycopg2"}
SQL = re.compile(
    r"\b(SELECT\s.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|(CREATE|DROP|ALTER)\s+(TABLE|INDEX|TRIGGER|FUNCTION)\b|\bPRAGMA\s)",
    re.DOTALL,
)


def modules() -> list[Path]:
    """Every module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    """``storage`` for storage/objects.py, ``clock`` for clock.py."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """The nodes under ``if TYPE_CHECKING:``: imports for type checkers, never run."""
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            hidden |= {inner for child in node.body for inner in ast.walk(child)}
    return hidden


def imported(tree: ast.AST, *, at_run_time: bool = False) -> set[str]:
    """The dotted names of every module ``tree`` imports (``at_run_time``: leaving out the
    imports under ``if TYPE_CHECKING:``)."""
    names: set[str] = set()
    hidden = _type_checking_only(tree) if at_run_time else set()
    for node in ast.walk(tree):
        if node in hidden:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sql_strings(tree: ast.AST) -> list[str]:
    """String constants in ``tree`` that read like SQL statements."""
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
    ]


def test_the_rules_cover_every_part_of_the_package() -> None:
    parts = {layer_of(path) for path in modules()} - {"__init__", "__main__"}
    assert parts <= set(ALLOWED), f"add {parts - set(ALLOWED)} to ALLOWED"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if layer_of(p) != "storage"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_sql_and_drivers_stay_in_storage(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    drivers = {name for name in imported(tree) if name.split(".")[0] in DRIVERS}
    assert not drivers, f"{path.name} imports {drivers}: database access belongs in storage/"
    assert not sql_strings(tree), f"{path.name} holds SQL: move it to storage/"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_layer_imports_one_it_may_not(path: Path) -> None:
    layer = layer_of(path)
    if layer in {"__init__", "__main__"}:
        return
    relative = str(path.relative_to(PACKAGE))
    allowed = ALLOWED[layer] | ASSEMBLERS.get(relative, set()) | {layer}
    tree = ast.parse(path.read_text(), str(path))
    used = {
        name.split(".")[1]
        for name in imported(tree)
        if name.startswith("overplane.") and "." in name
    }
    assert used <= allowed, f"{relative} imports {used - allowed}"


def test_the_checks_see_sql_and_drivers() -> None:
    # The detectors themselves, on a statement of each kind and on prose that is not SQL.
    for statement in (
        "SELECT id FROM t",
        "INSERT INTO t (a) VALUES (?)",
        "UPDATE t SET a = ?",
        "DELETE FROM t WHERE id = ?",
        "CREATE INDEX ix ON t (a)",
    ):
        assert sql_strings(ast.parse(repr(statement))) == [statement]
    assert not sql_strings(ast.parse(repr("Select an item from the list, then update it.")))
    assert imported(ast.parse("import sqlite3\nfrom asyncpg import connect")) == {
        "sqlite3",
        "asyncpg",
    }


def module_path(name: str) -> str:
    """``webhooks/signature.py`` for overplane.webhooks.signature, ``webhooks/__init__.py``
    for overplane.webhooks."""
    parts = name.split(".")[1:]
    if (PACKAGE.joinpath(*parts) / "__init__.py").exists():
        return "/".join([*parts, "__init__.py"])
    return "/".join(parts) + ".py"


@pytest.mark.parametrize("relative", sorted(STANDARD_LIBRARY_ONLY))
def test_what_receivers_import_needs_only_the_standard_library(relative: str) -> None:
    tree = ast.parse((PACKAGE / relative).read_text(), relative)
    relative_imports = [
        node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative_imports, f"{relative}: import by absolute name, so this test sees it"
    for name in imported(tree, at_run_time=True):
        top = name.split(".")[0]
        if top == "overplane":
            assert module_path(name) in STANDARD_LIBRARY_ONLY, (
                f"{relative} imports {name}, which may import more than the standard library"
            )
        else:
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"{relative} imports {name}: receivers import this module, standard library only"
            )


#: ``overplane listen`` is a client of the HTTP API: besides the standard library, it may
#: import only these (never storage, nor anything that imports it).
LISTEN_MAY_IMPORT = {"httpx", "typer", "rich", "overplane", "overplane.webhooks.signature"}


def test_listen_is_a_client_of_the_api_not_of_storage() -> None:
    tree = ast.parse((PACKAGE / "cli/listen.py").read_text(), "cli/listen.py")
    relative_imports = [
        node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative_imports, "cli/listen.py: import by absolute name, so this test sees it"
    for name in imported(tree):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        allowed = name in LISTEN_MAY_IMPORT or (top in LISTEN_MAY_IMPORT and top != "overplane")
        assert allowed, f"cli/listen.py imports {name}: it may use only the API, over HTTP"


#: What the client may import besides the standard library and itself.
CLIENT_MAY_IMPORT = {"httpx", "overplane", "overplane.declarations", "overplane.webhooks.signature"}


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "client").glob("*.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_client_imports_nothing_of_the_server(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for name in imported(tree):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        allowed = name in CLIENT_MAY_IMPORT or name.startswith("overplane.client")
        allowed = allowed or (top in CLIENT_MAY_IMPORT and top != "overplane")
        assert allowed, f"client/{path.name} imports {name}: the client may use only the API"


def test_importing_the_client_loads_no_server_module_nor_driver() -> None:
    """In a fresh interpreter: ``import overplane`` loads neither httpx nor the client, and
    ``from overplane import Client`` loads no database driver, storage or HTTP app."""
    script = """
import sys
import overplane
assert "httpx" not in sys.modules and "overplane.client" not in sys.modules
from overplane import AsyncClient, Client
forbidden = ("sqlite3", "asyncpg", "sqlalchemy", "alembic", "starlette", "uvicorn", "granian",
             "msgspec", "overplane.storage", "overplane.http", "overplane.auth", "overplane.web",
             "overplane.rendering", "overplane.settings")
print(sorted(name for name in sys.modules if name.split(".")[0] in forbidden
             or any(name == f or name.startswith(f + ".") for f in forbidden)))
"""
    # Without the coverage measurement CI runs the tests under: coverage starts itself in
    # subprocesses too, and keeps its data with sqlite3, which the client never loads.
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COV_CORE_", "COVERAGE_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


#: The data commands (resources, export, import) talk to a server through the client only:
#: besides the standard library, they may import only these.
DATA_COMMANDS = ("cli/data.py", "cli/transfer.py", "cli/output.py")
DATA_COMMANDS_MAY_IMPORT = {
    "httpx",
    "typer",
    "rich",
    "overplane.client",
    "overplane.declarations",
    "overplane.cli.data",
    "overplane.cli.output",
}


@pytest.mark.parametrize("relative", DATA_COMMANDS)
def test_data_commands_use_the_client_not_storage(relative: str) -> None:
    tree = ast.parse((PACKAGE / relative).read_text(), relative)
    for name in imported(tree):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        allowed = any(name == m or name.startswith(m + ".") for m in DATA_COMMANDS_MAY_IMPORT)
        allowed = allowed or (top in DATA_COMMANDS_MAY_IMPORT and top != "overplane")
        assert allowed, f"{relative} imports {name}: data commands go through the client"
