"""The ``Dockerfile`` and ``compose.yaml`` name only what the repository has and tests.

No image is built here (these machines cannot pull base images: docs/deployment.md,
"Containers"), so this checks what can be checked without one: the base image runs a Python
the package supports; what is copied exists; the one build step is the README's install
(``scripts/install.sh``, no extra, as ``scripts/run.sh`` runs it); the user is not root; the
entry point and default command are ``overplane serve`` with options ``serve`` takes; the health
check's own command, run against the real application, passes on ``/healthz`` and fails when
nothing answers; compose's services and variables are ones the server reads.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML, pinned in constraints.txt
from typer.testing import CliRunner

from overplane.cli import main as cli
from overplane.settings import SETTINGS
from overplane.storage import migrate
from tests.helpers import free_port, served_over_tcp

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def only(keyword: str) -> str:
    (value,) = [rest for key, rest in instructions() if key == keyword]
    return value


def test_base_image_is_a_slim_supported_python() -> None:
    image = only("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", image)
    assert match, image
    minimum = re.search(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_what_it_copies_exists() -> None:
    for key, rest in instructions():
        if key == "COPY":
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_the_build_step_is_the_readmes_install() -> None:
    """One RUN: scripts/install.sh as scripts/run.sh (the README's quick start) runs it, then
    only the unprivileged user and its data directory."""
    (run,) = [rest for key, rest in instructions() if key == "RUN"]
    steps = [step.strip() for step in run.split("&&")]
    assert steps[0] == "scripts/install.sh"
    assert "scripts/install.sh\n" in (ROOT / "scripts" / "run.sh").read_text()
    assert (ROOT / "scripts" / "install.sh").stat().st_mode & 0o111
    assert [shlex.split(step)[0] for step in steps[1:]] == ["useradd", "mkdir", "chown"]
    assert "pip" not in run, "install through scripts/install.sh only"


def test_it_runs_as_a_user_that_is_not_root() -> None:
    user = only("USER")
    assert user not in {"root", "0"}
    (run,) = [rest for key, rest in instructions() if key == "RUN"]
    assert f" {user}" in run.split("useradd", 1)[1].split("&&")[0]


def test_entry_point_is_overplane_serve_with_options_it_takes() -> None:
    assert json.loads(only("ENTRYPOINT")) == ["overplane"]
    assert PYPROJECT["project"]["scripts"]["overplane"] == "overplane.cli.main:main"
    command = json.loads(only("CMD"))
    assert command[0] == "serve"
    help_text = CliRunner().invoke(cli.app, ["serve", "--help"]).output
    for option in (arg for arg in command if arg.startswith("--")):
        assert option in help_text, option
    # A container must listen beyond its own loopback for its published port to reach it.
    assert "0.0.0.0" in command  # noqa: S104
    environment = only("ENV")
    assert "PATH=/app/.venv/bin:$PATH" in environment  # where scripts/install.sh puts it


def health_check_command() -> list[str]:
    rest = only("HEALTHCHECK")
    command: list[str] = json.loads(rest.split("CMD", 1)[1])
    return command


def test_health_check_passes_on_healthz_and_fails_without_a_server(tmp_path: Path) -> None:
    """The health check's exact command: exit 0 against the real application's /healthz,
    non-zero when nothing listens."""
    program, flag, code = health_check_command()
    assert (program, flag) == ("python", "-c")
    assert "http://127.0.0.1:8000/healthz" in code
    assert "curl" not in code
    url = f"sqlite:///{tmp_path / 'health.sqlite3'}"
    migrate.upgrade(url)
    with served_over_tcp(url) as base_url:
        port = base_url.rsplit(":", 1)[1]
        answered = subprocess.run(
            [sys.executable, flag, code.replace(":8000/", f":{port}/")], timeout=30, check=False
        )
        assert answered.returncode == 0
    nobody = code.replace(":8000/", f":{free_port()}/")
    refused = subprocess.run(
        [sys.executable, flag, nobody], capture_output=True, timeout=30, check=False
    )
    assert refused.returncode != 0


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_runs_the_server_on_postgres_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "overplane"}
    server = services["overplane"]
    assert server["build"] == "."
    assert server["command"][0] == "serve"
    assert set(server["depends_on"]) == {"postgres", "redis"}
    environment: dict[str, str] = server["environment"]
    declared = {spec.env for spec in SETTINGS.values()}
    assert set(environment) <= declared
    database = services["postgres"]["environment"]
    url = environment["OVERPLANE_DATABASE_URL"]
    assert url == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{database['POSTGRES_DB']}"
    )
    assert environment["OVERPLANE_REDIS_URL"].startswith("redis://redis:6379")
