"""Webhook signatures: ``sign`` on the server, ``overplane.webhooks.verify`` on the receiver.

The format is pinned by recomputing the HMAC here with the standard library; verification
fails when the body, the time or the secret differs; rotation (two secrets) verifies with
either; the tolerance holds in both directions up to its edge; and no header, however
malformed, makes ``verify`` raise anything but SignatureVerificationError.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import overplane.webhooks
from overplane.webhooks import (
    SIGNATURE_HEADER,
    SignatureVerificationError,
    sign,
    verify,
)

SECRET = "whsec_7d1e4f0a9b2c48e6a5f3d1c0b9e8a7f6"
OTHER = "whsec_0123456789abcdef0123456789abcdef"
BODY = b'{"id":"evt_1","type":"appointment.created","data":{"object":{"id":"apt_1"}}}'
T = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_the_header_is_t_then_one_v1_per_secret_over_t_dot_body() -> None:
    header = sign(BODY, [SECRET, OTHER], T)
    expected = [
        hmac.new(secret.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        for secret in (SECRET, OTHER)
    ]
    assert header == f"t={T},v1={expected[0]},v1={expected[1]}"
    assert SIGNATURE_HEADER == "Overplane-Signature"


def test_a_signed_payload_verifies_as_bytes_and_as_text() -> None:
    header = sign(BODY, [SECRET], T)
    verify(BODY, header, SECRET, now=T)
    verify(BODY.decode(), header, SECRET, now=T + 10)
    # the package-level name is the one receivers are told to call
    overplane.webhooks.verify(BODY, header, SECRET, tolerance=300, now=T)


def test_verification_fails_when_the_body_differs() -> None:
    header = sign(BODY, [SECRET], T)
    reencoded = json.dumps(json.loads(BODY)).encode()  # same JSON, other whitespace
    for body in (BODY + b" ", BODY[:-1], reencoded, b""):
        with pytest.raises(SignatureVerificationError, match=r"no v1 signature .* matches"):
            verify(body, header, SECRET, now=T)


def test_verification_fails_when_the_secret_differs() -> None:
    header = sign(BODY, [SECRET], T)
    for secret in (OTHER, SECRET + "x", SECRET.upper(), "whsec_"):
        with pytest.raises(SignatureVerificationError, match="matches"):
            verify(BODY, header, secret, now=T)


def test_verification_fails_when_the_signed_time_differs() -> None:
    # Moving t in the header (to make an old delivery look fresh) breaks the signature.
    header = sign(BODY, [SECRET], T)
    forged = header.replace(f"t={T}", f"t={T + 600}")
    with pytest.raises(SignatureVerificationError, match="matches"):
        verify(BODY, forged, SECRET, now=T + 600)


def test_during_a_rotation_either_secret_verifies() -> None:
    header = sign(BODY, [OTHER, SECRET], T)  # new secret first, old one still live
    verify(BODY, header, SECRET, now=T)
    verify(BODY, header, OTHER, now=T)
    with pytest.raises(SignatureVerificationError):
        verify(BODY, header, "whsec_neither", now=T)


def test_unknown_schemes_and_spaces_are_ignored_and_any_v1_may_match() -> None:
    genuine = sign(BODY, [SECRET], T).split(",")[1]
    header = f"t={T}, v0=abc, v1={'0' * 64}, v2=future, {genuine}"
    verify(BODY, header, SECRET, now=T)


@pytest.mark.parametrize(
    ("offset", "tolerance", "passes"),
    [
        (0, 300, True),
        (300, 300, True),  # exactly as old as allowed
        (-300, 300, True),  # exactly as far ahead as allowed
        (300.5, 300, False),
        (301, 300, False),
        (-301, 300, False),  # from the future: a sender clock far ahead, or a forged t
        (86_400, 300, False),
        (0, 0, True),
        (1, 0, False),
        (3_000, 3_600, True),
    ],
)
def test_the_tolerance_holds_both_ways_up_to_its_edge(
    offset: float, tolerance: int, passes: bool
) -> None:
    header = sign(BODY, [SECRET], T)
    if passes:
        verify(BODY, header, SECRET, tolerance=tolerance, now=T + offset)
    else:
        with pytest.raises(SignatureVerificationError, match="outside the tolerance"):
            verify(BODY, header, SECRET, tolerance=tolerance, now=T + offset)


def test_the_default_clock_is_the_current_time() -> None:
    with pytest.raises(SignatureVerificationError, match="s old"):
        verify(BODY, sign(BODY, [SECRET], T), SECRET)  # signed in 2026-01-01, checked now


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no Overplane-Signature header"),
        ("", "malformed"),
        ("garbage", "malformed"),
        (",", "malformed"),
        ("=", "malformed"),
        ("t", "malformed"),
        (f"t={T}", "no v1 signature"),
        (f"t={T},v0={'a' * 64}", "no v1 signature"),
        (f"v1={'a' * 64}", "no timestamp"),
        (f"t=,v1={'a' * 64}", "not Unix seconds"),
        (f"t=abc,v1={'a' * 64}", "not Unix seconds"),
        (f"t=-5,v1={'a' * 64}", "not Unix seconds"),
        (f"t=+5,v1={'a' * 64}", "not Unix seconds"),
        (f"t=1.5,v1={'a' * 64}", "not Unix seconds"),
        (f"t=１２３,v1={'a' * 64}", "not Unix seconds"),  # fullwidth digits
        (f"t={'9' * 5000},v1={'a' * 64}", "not Unix seconds"),  # past int()'s digit limit
        (f"t={T},t={T},v1={'a' * 64}", "more than one timestamp"),
        (f"t={T},,v1={'a' * 64}", "malformed"),
        (f"t={T},v1=", "matches"),
        (f"t={T},v1=xyz", "matches"),
        (f"t={T},v1={'é' * 64}", "matches"),
        (f"t={T},v1={'A' * 64}", "matches"),
    ],
)
def test_malformed_headers_say_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        verify(BODY, header, SECRET, now=T)


_KEYS = st.sampled_from(["t", "v1", "v0", " t", "v1 ", "T", "", "t=", "v1="])
_VALUES = st.one_of(
    st.text(max_size=80),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68),
)
_ENTRIES = st.one_of(st.tuples(_KEYS, _VALUES).map("=".join), st.text(max_size=20))


@given(header=st.one_of(st.text(), st.lists(_ENTRIES, max_size=6).map(",".join)))
def test_no_header_raises_anything_but_a_verification_error(header: str) -> None:
    with pytest.raises(SignatureVerificationError):
        verify(BODY, header, SECRET, now=T)


@given(
    payload=st.binary(max_size=2_000),
    secrets=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3),
    timestamp=st.integers(min_value=0, max_value=10**11),
)
def test_every_signature_round_trips_with_each_of_its_secrets(
    payload: bytes, secrets: list[str], timestamp: int
) -> None:
    header = sign(payload, secrets, timestamp)
    for secret in secrets:
        verify(payload, header, secret, now=timestamp)


def test_sign_refuses_what_would_produce_an_unverifiable_header() -> None:
    with pytest.raises(TypeError):
        sign(BODY, SECRET, T)  # one string, not a list of secrets
    with pytest.raises(ValueError, match="at least one"):
        sign(BODY, [], T)
    with pytest.raises(ValueError, match="empty"):
        sign(BODY, [""], T)
    with pytest.raises(ValueError, match="timestamp"):
        sign(BODY, [SECRET], -1)
    with pytest.raises(ValueError, match="empty"):
        verify(BODY, sign(BODY, [SECRET], T), "", now=T)


def test_importing_the_verifier_loads_only_the_standard_library() -> None:
    # A fresh interpreter: what `import overplane.webhooks` adds to sys.modules must be the
    # standard library and overplane itself, so receivers need none of the server's packages.
    script = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import overplane.webhooks\n"
        "added = sorted(set(sys.modules) - before)\n"
        "print(json.dumps(added))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    added: list[str] = json.loads(result.stdout)
    tops = {name.split(".")[0] for name in added}
    assert "overplane.webhooks.signature" in added
    assert not tops & {"starlette", "sqlalchemy", "asyncpg", "httpx", "msgspec", "alembic"}
    assert tops - {"overplane"} <= sys.stdlib_module_names, tops - sys.stdlib_module_names
    assert "overplane.webhooks.sender" not in added
