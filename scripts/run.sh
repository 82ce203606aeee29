#!/usr/bin/env bash
# Quick start, part one: install and run the server on the embedded default (a SQLite file in
# ~/.local/share/overplane, the one every overplane command uses; `overplane config` prints it)
# at http://127.0.0.1:8000. On first start it prints a test key.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/overplane serve "$@"
