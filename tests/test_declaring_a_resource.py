"""A declaration is all a new resource takes: declare it, run one command, and it is served.

A third resource, declared only here (a required field, a long one, a time range), lives in a
throwaway module named by ``OVERPLANE_EXTRA_RESOURCES``. ``overplane migrations new`` writes its
migration into a temporary directory; then the resource-parametrised contract tests run, in a
child pytest with the same environment, against that resource on every backend under test
(SQLite, and PostgreSQL when ``OVERPLANE_TEST_POSTGRES_URL`` is set: an unreachable server
fails them, as everywhere). Every process of that run (the tests' server, the
``overplane serve`` processes some tests start) imports the module, so all serve the resource
and apply its migration.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from overplane.declarations.extra import ENV
from overplane.storage import migrate

ROOT = Path(__file__).resolve().parent.parent
MODULE = "synthetic_widget"
NAME = "synthetic-widget"

DECLARATION = '''"""A resource declared outside the package, for tests/test_declaring_a_resource.py."""

from pathlib import Path

from overplane.declarations import Field, Resource

WIDGET = Resource(
    name="synthetic-widget",
    module="lab",
    id_prefix="widget_",
    title="Synthetic Widget",
    plural="synthetic widgets",
    description="A widget that exists only in a test.",
    fields=(
        Field("label", "The widget's label.", "label_example", required=True),
        Field("notes", "Free-form notes.", "notes_example", max_length=5000, indexed=True),
        Field(
            "due_time",
            "When the widget is due; RFC 3339 values can be filtered by range.",
            "due_time_example",
            time_range=True,
        ),
        Field("colour", "The widget's colour.", "blue"),
    ),
)

RESOURCES = (WIDGET,)
MIGRATIONS = Path(__file__).with_name("synthetic_migrations")
'''

#: The contract tests parametrised by resource (objects, lists, filters, cursors, totals,
#: idempotency, ETags, OpenAPI).
CONTRACT_TESTS = [
    "tests/test_objects.py",
    "tests/test_lists.py",
    "tests/test_idempotency.py",
    "tests/test_concurrency.py",
    "tests/test_openapi.py",
]
#: The synthetic resource's cases, less the two that compare with the published reference
#: pages, which document only the shipped resources.
SELECTION = "synthetic and not published"


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow  # a whole pytest run of the contract tests, in a subprocess
def test_a_declaration_and_one_command_make_a_served_resource(tmp_path: Path) -> None:
    """Step 1: the declaration. Step 2: ``overplane migrations new``. Then the contract holds."""
    (tmp_path / f"{MODULE}.py").write_text(DECLARATION)
    migrations = tmp_path / "synthetic_migrations"
    migrations.mkdir()
    path = os.pathsep.join(p for p in [str(tmp_path), os.environ.get("PYTHONPATH", "")] if p)
    env = {**os.environ, "PYTHONPATH": path, ENV: MODULE}
    command = [sys.executable, "-m", "overplane.cli.main", "migrations", "new"]
    config = migrate.alembic_config(f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None

    written = run([*command, "-m", "add synthetic widget", "--directory", str(migrations)], env, 60)
    again = run([*command, "-m", "again", "--directory", str(migrations)], env, 60)

    assert written.returncode == 0, written.stdout + written.stderr
    files = sorted(p.name for p in migrations.glob("*.py"))
    assert files == [f"{int(head) + 1:04d}_add_synthetic_widget.py"]
    source = (migrations / files[0]).read_text()
    imports = {
        (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    assert imports == {"collections.abc", "sqlalchemy", "alembic"}
    assert "substr(notes, 1, 100)" in source
    assert "lab_synthetic_widget_written" in source  # PostgreSQL trigger
    assert "lab_synthetic_widget_inserted" in source  # SQLite trigger
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == "no changes"

    options = ["-q", "-rA", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "pytest")]
    tests = run(
        [sys.executable, "-m", "pytest", *CONTRACT_TESTS, "-k", SELECTION, *options], env, 1200
    )

    output = tests.stdout + tests.stderr
    assert tests.returncode == 0, output[-5000:]
    passed = re.findall(rf"^PASSED (\S*\b{NAME}\b\S*)", tests.stdout, flags=re.MULTILINE)
    assert len(passed) >= 50, output[-5000:]
    assert not re.search(r"\b(failed|error|errors)\b", tests.stdout.splitlines()[-1])
    backends = (
        ["sqlite", "postgres"] if os.environ.get("OVERPLANE_TEST_POSTGRES_URL") else ["sqlite"]
    )
    for backend in backends:
        assert any(f"[{backend}-" in case for case in passed), backend
    for contract in CONTRACT_TESTS:
        assert any(case.startswith(contract) for case in passed), contract
