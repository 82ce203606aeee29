"""The documentation cannot silently fall behind the code.

Each test derives a list from the code (settings, error codes, commands, routes) and fails if
one item is missing from the page that documents it; the settings' table must match their
declarations exactly (variable, default, meaning).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer
from typer.core import TyperGroup

from overplane.cli.main import app as cli_app
from overplane.declarations import RESOURCES
from overplane.http.errors import ERROR_CODES
from overplane.http.openapi import document
from overplane.settings import SETTINGS, markdown_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def read(relative: str) -> str:
    return (ROOT / relative).read_text()


def test_configuration_page_shows_every_setting_as_declared() -> None:
    """docs/configuration.md's table is the settings' declarations rendered: every variable,
    its default and its meaning, in declaration order. On failure, paste the printed table."""
    page = read("docs/configuration.md")
    table = re.search(r"^\| variable \| default \| meaning \|\n(?:\|.*\n)+", page, re.MULTILINE)
    assert table is not None, "docs/configuration.md has no table of settings"
    expected = markdown_table()
    if table.group(0) != expected:
        print(f"docs/configuration.md's table should read:\n\n{expected}")
    assert table.group(0) == expected
    assert len(SETTINGS) >= 16


def test_every_error_code_is_documented() -> None:
    """docs/errors.md has a row for every (status, type, code) the server can return."""
    page = read("docs/errors.md")
    rows = set(re.findall(r"^\| (\d{3}) \| `(\w+)` \| `(\w+)` \|", page, flags=re.MULTILINE))
    missing = [c for c in ERROR_CODES if (str(c[0]), c[1], c[2]) not in rows]
    assert missing == []


def _command_paths(group: TyperGroup, prefix: str = "overplane") -> list[str]:
    paths: list[str] = []
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            paths += _command_paths(command, f"{prefix} {name}")
        else:
            paths.append(f"{prefix} {name}")
    return paths


def test_every_cli_command_is_documented() -> None:
    """docs/cli.md has a row for every ``overplane`` command."""
    page = read("docs/cli.md")
    group = typer.main.get_group(cli_app)
    assert isinstance(group, TyperGroup)
    commands = _command_paths(group)
    assert len(commands) >= 6
    missing = [c for c in commands if f"| `{c}" not in page]
    assert missing == []


def test_every_route_is_documented() -> None:
    """docs/api.md and README.md name every path of the OpenAPI document."""
    api_page = read("docs/api.md")
    paths = list(document()["paths"])
    named = [p for p in paths if p in api_page or p.replace("/{id}", "") in api_page]
    assert [p for p in paths if p not in named] == []
    readme = read("README.md")
    assert [r.path for r in RESOURCES if r.path not in readme] == []


def test_readme_quick_start_is_two_runnable_commands() -> None:
    """The quick start is exactly two commands, both executable scripts in the repository."""
    readme = read("README.md")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["scripts/run.sh", "scripts/test.sh"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), command


def test_documentation_links_resolve() -> None:
    """Every relative link in README.md and docs/ points at a file that exists."""
    broken = []
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []
