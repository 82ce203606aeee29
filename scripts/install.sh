#!/usr/bin/env bash
# Creates .venv (if needed) and installs Overplane into it, with the test tools when asked:
#   scripts/install.sh          the server (the `server` extra; the client alone is plain
#                               `pip install overplane`: docs/client.md)
#   scripts/install.sh test     the server and everything the tests, lint and types need
#                               (and Debian's chromium for the browser tests, as root)
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

extra="[server]"
[ "${1:-}" = "test" ] && extra="[server,test]"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".${extra}"

# The browser tests (tests/test_web.py) drive Debian's Chromium, never a downloaded browser:
# fetch it when we are allowed to, so that the README's test command works on a fresh machine.
if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ] && [ -z "${OVERPLANE_TEST_CHROMIUM:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "note: the browser tests need Chromium: apt-get install chromium (or run -m 'not slow')" >&2
    fi
fi
