#!/usr/bin/env bash
# Quick start, part two: install and run the whole test suite.
# SQLite always; PostgreSQL too when OVERPLANE_TEST_POSTGRES_URL is set, e.g.
#   OVERPLANE_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres scripts/test.sh
# (each run creates a database of its own and drops it at the end).
# VENV=... (default .venv) and PYTHON=... choose the virtual environment, as for install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
exec "${VENV:-.venv}/bin/python" -m pytest "$@"
