"""The README's and docs/api.md's shell examples run as pasted, against a real server.

Every ```sh block of those pages runs, in page order, in one ``bash`` with
``set -euo pipefail``, with ``KEY`` and ``API`` exported for a server this test started (and
``OVERPLANE_DATABASE_URL`` for the ``overplane`` commands), from the repository's root.

The rule for what does not run: a block is skipped only when the line just above its fence is
``<!-- tests/test_readme.py: not run, <reason> -->`` (invisible on the rendered page), and
:data:`NOT_RUN` below names each such block by page and heading, so a new exclusion needs a
change here too. They are the blocks that install, serve in the foreground or run the suite,
and the one that sets ``KEY`` and ``API`` to placeholders.

Statuses: ``curl`` is a shell function that fails the block on any status but 2xx, unless
the command is followed by a comment stating a status (``# 400 …``, ``# 412 …``): that
command must answer exactly that status.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ServerLauncher

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/api.md"]
MARKER = re.compile(r"<!-- tests/test_readme\.py: not run, (.+?) -->")

#: The blocks that do not run, by (page, heading): keep this list short.
NOT_RUN = {
    ("README.md", "Quick start"),  # two blocks: serving, and the whole suite on PostgreSQL
    ("README.md", "Using the API"),  # KEY and API placeholders: the test exports real ones
    ("README.md", "Keys and accounts"),  # scripts/run.sh with a bootstrap key: serves
    ("README.md", "PostgreSQL"),  # createdb, then serving in the foreground
}

#: ``curl`` for the blocks: checks each response's status, prints its body as curl would.
CURL_WRAPPER = r"""
curl() {
    local body status
    body=$(mktemp)
    status=$(command curl -sS -o "$body" -w '%{http_code}' "$@")
    cat "$body"
    echo
    rm -f "$body"
    if [[ -n "${EXPECT:-}" ]]; then
        [[ "$status" == "$EXPECT" ]] && return 0
        echo "curl $*: answered $status, the page says $EXPECT" >&2
        return 1
    fi
    [[ "$status" == 2?? ]] && return 0
    echo "curl $*: answered $status" >&2
    return 1
}
"""


@dataclass(frozen=True)
class Block:
    """One ```sh block of a page."""

    page: str
    heading: str
    text: str
    skip_reason: str | None


def blocks(page: str) -> list[Block]:
    """Every ```sh block of ``page``, with the heading it is under and any skip marker."""
    found: list[Block] = []
    heading = ""
    lines = (ROOT / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):  # any fenced block: its lines are not headings
            end = lines.index("```", index + 1)
            if line.strip() == "```sh":
                marker = MARKER.fullmatch(lines[index - 1].strip()) if index else None
                reason = marker.group(1) if marker else None
                found.append(Block(page, heading, "\n".join(lines[index + 1 : end]), reason))
            index = end
        index += 1
    return found


def expect_statuses(text: str) -> str:
    """``text`` with ``EXPECT=NNN`` before each command that a ``# NNN …`` comment follows."""
    lines = text.splitlines()
    start = 0  # first line of the command being read
    previous: int | None = None  # first line of the command just before, if nothing between
    for index, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            status = re.match(r"#\s*(\d{3})\b", line.strip())
            if status and previous is not None:
                command = lines[previous]
                assert command.startswith("curl "), f"a status after a non-curl line: {command}"
                lines[previous] = f"EXPECT={status.group(1)} {command}"
            previous = None
            start = index + 1
        elif not line.rstrip().endswith("\\"):
            previous, start = start, index + 1
    return "\n".join(lines)


def all_blocks() -> list[Block]:
    """Every ```sh block of the pages, in order."""
    return [block for page in PAGES for block in blocks(page)]


def test_only_the_named_blocks_are_not_run() -> None:
    """The exclusions are few, each has a reason, and each is named in NOT_RUN."""
    skipped = [block for block in all_blocks() if block.skip_reason is not None]
    assert {(block.page, block.heading) for block in skipped} == NOT_RUN
    assert len(skipped) <= 5
    assert len([block for block in all_blocks() if block.skip_reason is None]) >= 4


def test_statuses_stated_in_comments_are_expected() -> None:
    """A ``# 400 …`` comment applies to the whole (continued) command before it, only."""
    text = 'curl a \\\n  -d x\n# 412 stale\ncurl b\n# a comment\ncurl "c"\n# 400 {"error"\n#   …}'
    assert expect_statuses(text).splitlines() == [
        "EXPECT=412 curl a \\",
        "  -d x",
        "# 412 stale",
        "curl b",
        "# a comment",
        'EXPECT=400 curl "c"',
        '# 400 {"error"',
        "#   …}",
    ]


@pytest.mark.slow
def test_the_pages_shell_examples_run_as_pasted(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """Every runnable block, in order, in one shell, against a real server."""
    assert (ROOT / ".venv/bin/overplane").exists(), "the README's commands use .venv/bin"
    server, key = start_server.with_new_key(fresh_database_url)
    script = "\n".join(
        [
            "set -euo pipefail",
            CURL_WRAPPER,
            *(
                f"# {block.page}: {block.heading}\n{expect_statuses(block.text)}"
                for block in all_blocks()
                if block.skip_reason is None
            ),
        ]
    )
    environ = {
        **os.environ,
        "KEY": key,
        "API": server.base_url,
        "OVERPLANE_DATABASE_URL": fresh_database_url,
    }
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert '"deleted":true' in result.stdout.replace(" ", "")
    assert "precondition_failed" in result.stdout
