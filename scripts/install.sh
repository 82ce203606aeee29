#!/usr/bin/env bash
# Creates .venv (if needed) and installs Overplane into it, with the test tools when asked:
#   scripts/install.sh          the server
#   scripts/install.sh test     the server and everything the tests, lint and types need
# Versions are pinned by constraints.txt, so every machine installs what CI tested.
# PYTHON=... chooses the interpreter and VENV=... the folder (default .venv), e.g. CI's
#   PYTHON=python3.13 VENV=.venv313 scripts/install.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Overplane needs Python 3.11 or newer as '$python' (set PYTHON=... to choose another)." >&2
    exit 1
fi
venv=${VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian splits venv out of python3; fetch it when we are allowed to.
        rm -rf "$venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt-get update -qq && apt-get install -y -qq "python${version}-venv" >/dev/null
            "$python" -m venv "$venv"
        else
            echo "'$python -m venv' failed: install your distribution's venv package (Debian: python3-venv)." >&2
            exit 1
        fi
    fi
fi

extra=""
[ "${1:-}" = "test" ] && extra="[test]"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".${extra}"
