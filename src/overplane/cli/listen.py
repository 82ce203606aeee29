"""``overplane listen``: follow an account's events through the API and forward each one,
signed, to a local URL, so that a receiver on a laptop gets events without a public URL.

It is a client of the HTTP API like any other (a key, ``GET /api/events``), and imports
nothing of the server's storage: it works against a server anywhere.

How it follows: it keeps an *anchor*, an event it has already forwarded (or the newest at
start), and every poll reads all events after it (``ending_before=<anchor>``, page by page)
and forwards the ones it has not forwarded yet, oldest first. Why not simply "after the
newest seen": list order is ``created_at`` (stamped just before the write) then insertion
order, so a write that commits a moment after a later-stamped one becomes visible *behind*
an event already seen. So the anchor trails behind: it moves past an event only once that
event was seen :data:`LOOKBACK_SECONDS` ago, or was stamped that long before the newest
event seen; a write that becomes visible later than that after its stamp is missed. Such a
late event is forwarded when it appears, so after newer ones. Each event is forwarded once
per run; nothing is retried (a receiver that is down misses what happens meanwhile).

Each forwarded body is the event exactly as ``GET /api/events/{id}`` returns it, byte for
byte, which is the body a webhook delivery of that event carries, signed with
:func:`overplane.webhooks.signature.sign` and a secret made at start (or given).
"""

from __future__ import annotations

import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Annotated, Any, NamedTuple

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from overplane import __version__
from overplane.webhooks.signature import SIGNATURE_HEADER, sign

#: How long an event must have been visible before the anchor may move past it.
LOOKBACK_SECONDS = 5.0
#: The largest page ``GET /api/events`` serves.
PAGE_SIZE = 100
#: A receiver gets as long as a webhook delivery gives it.
FORWARD_TIMEOUT_SECONDS = 10.0
USER_AGENT = f"Overplane-Listen/{__version__}"
_PATTERN = re.compile(r"[a-z0-9_.*]{1,100}", re.ASCII)

err = Console(stderr=True, highlight=False, soft_wrap=True)


class ListenError(Exception):
    """Something that ends ``overplane listen`` with a message (bad key, bad filter...)."""


class ApiUnavailable(Exception):
    """The API could not be reached, or answered 5xx: worth trying again at the next poll."""


class AnchorGone(Exception):
    """The event listen reads after no longer exists (swept after the retention period)."""


def new_secret() -> str:
    """A fresh signing secret, shaped like a webhook endpoint's."""
    return "whsec_" + secrets.token_urlsafe(32)


def type_patterns(values: Sequence[str]) -> list[str]:
    """The event type patterns of ``--events`` (repeated, or comma-separated), checked."""
    patterns = [p.strip() for value in values for p in value.split(",") if p.strip()]
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ListenError(
                f"--events: '{pattern}' is not an event type such as appointment.created, "
                "with * matching any run of characters (appointment.*)"
            )
    return patterns


def matches(event_type: str, patterns: Sequence[str]) -> bool:
    """Whether ``event_type`` matches one of ``patterns`` (``*``: any run of characters),
    as the API's ``type`` filter matches; no patterns match everything."""
    if not patterns:
        return True
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), event_type)
        for pattern in patterns
    )


def api_error(response: httpx.Response) -> str:
    """The message of an API error response, or its status if it has none."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}: {message}"


class Seen(NamedTuple):
    """An event in the window: its id, its ``created_at`` (ms) and when it was first seen
    here (monotonic seconds)."""

    id: str
    created_at_ms: int
    first_seen: float


def created_at_ms(event: dict[str, Any]) -> int:
    """An event's ``created_at`` (RFC 3339) in milliseconds since the epoch."""
    return round(datetime.fromisoformat(event["created_at"]).timestamp() * 1000)


@dataclass
class Follower:
    """Reads the events that are new since the last poll, through the API.

    ``window`` is the anchor followed by every event after it that has been handled, in list
    order (oldest first); an event after the anchor and not in the window is new.
    """

    api: httpx.Client
    type_filter: str | None
    lookback_seconds: float = LOOKBACK_SECONDS
    window: list[Seen] = field(default_factory=list)

    def get(self, path: str, params: dict[str, str | int] | None = None) -> httpx.Response:
        """``GET path`` on the API; ApiUnavailable if unreachable or 5xx, ListenError on a
        refused key."""
        try:
            response = self.api.get(path, params=params)
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise ApiUnavailable(api_error(response))
        if response.status_code in (401, 403):
            raise ListenError(f"the API refused the key ({api_error(response)})")
        return response

    def list_events(self, **params: str | int) -> dict[str, Any]:
        """One page of ``GET /api/events``."""
        if self.type_filter is not None:
            params["type"] = self.type_filter
        response = self.get("/api/events", {"limit": PAGE_SIZE, **params})
        if response.status_code == 400 and "ending_before" in params:
            raise AnchorGone(api_error(response))
        if response.status_code != 200:
            raise ListenError(f"GET /api/events: {api_error(response)}")
        page: dict[str, Any] = response.json()
        return page

    def start(self, from_start: bool) -> None:
        """Begin after the newest event there is now, or (``from_start``) before every one."""
        self.window = []
        if not from_start:
            newest = self.list_events(limit=1)["data"]
            if newest:
                event = newest[0]
                self.window = [Seen(event["id"], created_at_ms(event), time.monotonic())]

    def events_after_anchor(self) -> list[dict[str, Any]]:
        """Every event after the anchor (every event, without one), oldest first."""
        found: list[dict[str, Any]] = []
        if not self.window:
            # Walk back from the newest; events created meanwhile are read next poll.
            cursor: dict[str, str | int] = {}
            while True:
                page = self.list_events(**cursor)
                found.extend(page["data"])
                if not page["has_more"] or not page["data"]:
                    return found[::-1]
                cursor = {"starting_after": page["data"][-1]["id"]}
        anchor = self.window[0].id
        while True:
            page = self.list_events(ending_before=anchor)
            found.extend(reversed(page["data"]))  # each page is newest first
            if not page["has_more"] or not page["data"]:
                return found
            anchor = page["data"][0]["id"]

    def poll(self, handle: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handle`` on each event not handled before, oldest first (list order).

        An event counts as handled once ``handle`` returns: if it raises (the API went
        away while an event was fetched), that event and the ones after it are new again
        at the next poll.
        """
        after = self.events_after_anchor()
        known = {seen.id: seen for seen in self.window}
        handled: dict[str, Seen] = {}
        try:
            for event in after:
                if event["id"] not in known:
                    handle(event)
                    handled[event["id"]] = Seen(event["id"], created_at_ms(event), time.monotonic())
        finally:
            known |= handled
            self.window = self.window[:1] + [known[e["id"]] for e in after if e["id"] in known]
            self._advance_anchor()

    def _advance_anchor(self) -> None:
        """Move the anchor past events that a late write can no longer precede: seen
        ``lookback_seconds`` ago, or stamped that long before the newest event seen."""
        if not self.window:
            return
        now = time.monotonic()
        newest_ms = max(seen.created_at_ms for seen in self.window)
        lookback_ms = self.lookback_seconds * 1000
        while len(self.window) > 1 and (
            now - self.window[1].first_seen >= self.lookback_seconds
            or newest_ms - self.window[1].created_at_ms >= lookback_ms
        ):
            self.window.pop(0)


@dataclass
class Forwarder:
    """Fetches each event's JSON from the API and POSTs it, signed, to the receiver."""

    follower: Follower
    receiver: httpx.Client
    url: str
    secret: str

    def forward(self, event_id: str) -> str:
        """Forward one event; what happened, for the log line ("200", "error: ...")."""
        response = self.follower.get(f"/api/events/{event_id}")
        if response.status_code == 404:
            return "skipped: the event is gone"
        if response.status_code != 200:
            return f"skipped: {api_error(response)}"
        body = response.content  # the API's bytes, as a webhook delivery would carry them
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(body, [self.secret], int(time.time())),
        }
        try:
            answer = self.receiver.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            return f"error: {type(exc).__name__}: {exc or 'no answer'}"
        return str(answer.status_code)


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops ``overplane listen`` as Ctrl-C does (exit 0)."""
    raise KeyboardInterrupt


def follow(
    forwarder: Forwarder, patterns: Sequence[str], interval: float, report: Callable[[str], None]
) -> None:
    """Poll and forward forever, reporting one line per forwarded event."""
    follower = forwarder.follower

    def forward(event: dict[str, Any]) -> None:
        if matches(event["type"], patterns):
            outcome = forwarder.forward(event["id"])
            stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            report(f"{stamp}  {event['type']}  {event['id']}  -> [{outcome}] POST {forwarder.url}")

    unavailable = lost = False
    while True:
        try:
            if lost:
                follower.start(from_start=False)
                lost = False
            follower.poll(forward)
            if unavailable:
                err.print("The API answers again.")
                unavailable = False
        except ApiUnavailable as exc:
            if not unavailable:
                err.print(f"The API is unavailable ({escape(str(exc))}); still trying.")
                unavailable = True
        except AnchorGone as exc:
            # Only after days without a poll (events are swept): carry on from now.
            err.print(f"Lost track of the events ({escape(str(exc))}); following from now.")
            lost = True
        time.sleep(interval)


def listen(
    forward_to: Annotated[
        str, typer.Option(help="The URL each event is POSTed to, e.g. http://localhost:3000/hooks.")
    ],
    api_key: Annotated[
        str, typer.Option(envvar="OVERPLANE_API_KEY", help="A secret key of the account.")
    ],
    api_base: Annotated[
        str, typer.Option(envvar="OVERPLANE_BASE_URL", help="Where the API is served.")
    ] = "http://127.0.0.1:8000",
    events: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these event types (repeat, or separate with commas; * matches any run "
            "of characters: appointment.*). Default: all."
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between two polls of the API.")
    ] = 1.0,
    from_start: Annotated[
        bool, typer.Option(help="Forward the events that already exist too, oldest first.")
    ] = False,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Sign with this whsec_… secret instead of a new one (keeps a "
            "receiver's configuration across restarts)."
        ),
    ] = None,
) -> None:
    """Forward the account's events, signed, to a local URL (like `stripe listen`)."""
    try:
        patterns = type_patterns(events or [])
    except ListenError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if secret is not None and not secret.startswith("whsec_"):
        err.print("[red]error:[/red] --secret must start with whsec_")
        raise typer.Exit(1)
    signing_secret = secret or new_secret()
    # One pattern is filtered by the API; several are matched here, on every event.
    type_filter = patterns[0] if len(patterns) == 1 else None
    signal.signal(signal.SIGTERM, interrupt)
    api = httpx.Client(
        base_url=api_base.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
        timeout=30,
    )
    # The receiver is local: no proxy, no redirects (a delivery follows none either), and
    # never the API key.
    receiver = httpx.Client(timeout=FORWARD_TIMEOUT_SECONDS, trust_env=False)
    try:
        follower = Follower(api, type_filter)
        try:
            follower.start(from_start)
        except ApiUnavailable as exc:
            err.print(f"[red]error:[/red] cannot reach the API at {api_base} ({escape(str(exc))})")
            raise typer.Exit(1) from None
        err.print(
            f"Ready! Your webhook signing secret is {signing_secret} "
            f"(forwarding {', '.join(patterns) or 'all events'} to {forward_to}; ^C to quit)"
        )
        forwarder = Forwarder(follower, receiver, forward_to, signing_secret)
        follow(forwarder, patterns, interval, lambda line: print(line, flush=True))
    except ListenError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Stopped.")
    finally:
        api.close()
        receiver.close()
    sys.stdout.flush()
