"""The delivery worker: claims due deliveries, signs, sends, records, and retries.

It runs inside every ``overplane serve`` process (``OVERPLANE_WEBHOOK_WORKER``) and as
``overplane worker`` on its own; any number of them share one database. A delivery is claimed
under a lease (``storage/webhooks.py``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two
workers do not send it at the same time, and it is marked done only after a 2xx: a worker that
dies mid-delivery leaves a lease that expires seconds later, and the delivery is sent again
(at least once; a receiver may see an event twice and should deduplicate by its id).
Deliveries are not ordered: a retried event arrives after newer ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterable

import httpx

from overplane import metrics
from overplane.clock import now_ms
from overplane.declarations import Resource
from overplane.rendering import EventRenderer
from overplane.settings import Settings
from overplane.storage.database import Database, DatabaseUnavailable
from overplane.storage.events import EventStore
from overplane.storage.webhooks import DeliveryStore, DueDelivery, EndpointStore
from overplane.webhooks.addresses import DestinationError, resolve_public
from overplane.webhooks.sender import Attempt, deliver, new_client
from overplane.webhooks.signature import SIGNATURE_HEADER, sign

logger = logging.getLogger("overplane.webhooks")

#: The longest wait between two retries, however many came before.
MAX_RETRY_SECONDS = 6 * 3600
#: How long a name may take to resolve before the attempt fails (and is retried): at most this,
#: and at most half the delivery timeout.
DNS_TIMEOUT_SECONDS = 5.0
#: A lease outlasts the longest attempt (DNS, then the delivery timeout) by this much.
LEASE_MARGIN_SECONDS = 2.0


def retry_delay_seconds(attempts: int, base: float) -> float:
    """The wait after the ``attempts``-th failed attempt: doubling from ``base``, capped,
    with ±20% jitter so that a receiver back from an outage is not hit by everything at once."""
    delay = min(base * 2.0 ** max(attempts - 1, 0), float(MAX_RETRY_SECONDS))
    jitter: float = random.uniform(0.8, 1.2)
    return delay * jitter


class DeliveryWorker:
    """Sends due deliveries with bounded concurrency, overall and per endpoint."""

    def __init__(self, db: Database, settings: Settings, resources: Iterable[Resource]) -> None:
        self.db = db
        self.settings = settings
        self.renderer = EventRenderer(resources)
        self.events = EventStore()
        self.endpoints = EndpointStore()
        self.deliveries = DeliveryStore()
        timeout = settings.webhook_timeout_seconds
        self.dns_timeout = min(DNS_TIMEOUT_SECONDS, timeout / 2)
        #: A delivery whose worker died is claimed again this long after (17 s by default).
        self.lease_ms = int((timeout + self.dns_timeout + LEASE_MARGIN_SECONDS) * 1000)
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._per_endpoint: dict[str, asyncio.Semaphore] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def run_forever(self) -> None:
        """Claim and send until cancelled; an unavailable database waits for the next turn."""
        self._client = new_client()
        try:
            while True:
                try:
                    busy = await self.run_once()
                except DatabaseUnavailable as exc:
                    logger.warning("webhook worker: the database is unavailable (%s)", exc)
                    busy = False
                if not busy:
                    await asyncio.sleep(self.settings.webhook_poll_seconds)
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._client.aclose()
            self._client = None

    async def run_once(self) -> bool:
        """Relay a batch of new events (their deliveries), then claim as many due deliveries
        as there are free slots and start sending them. Whether to go again at once: the
        batch was full (more events wait) or deliveries were claimed.

        A batch that was not full waits for the next poll, so that under a steady write load
        each relay takes what a poll interval brought rather than the one or two events
        committed since the last statement. Measured (docs/performance.md, "Where an event's
        cost is"): relaying whatever was there, again and again, cost more database CPU per
        event than the counter and the fan-out it replaces.
        """
        batch = self.settings.webhook_relay_batch
        relayed = await self.deliveries.relay(self.db, batch)
        claimed = await self._claim()
        return relayed >= batch or claimed > 0

    async def _claim(self) -> int:
        free = self.settings.webhook_concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        now = now_ms()
        due = await self.deliveries.claim(self.db, now, now + self.lease_ms, free)
        for delivery in due:
            task = asyncio.create_task(self._send(delivery, now + self.lease_ms))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(due)

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests and one-shot runs)."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    def _endpoint_slots(self, endpoint_id: str) -> asyncio.Semaphore:
        slots = self._per_endpoint.get(endpoint_id)
        if slots is None:
            slots = self._per_endpoint[endpoint_id] = asyncio.Semaphore(
                self.settings.webhook_endpoint_concurrency
            )
        return slots

    async def _send(self, delivery: DueDelivery, lease_until: int) -> None:
        try:
            async with self._endpoint_slots(delivery.endpoint_id):
                if now_ms() >= lease_until - self.lease_ms // 2:
                    # Waited for a slot so long that the lease may lapse mid-send; leave it
                    # to the next claim rather than race another worker.
                    await self.deliveries.release(self.db, delivery)
                    return
                await self._attempt(delivery)
        except DatabaseUnavailable as exc:
            # The lease expires and the delivery is claimed again: nothing is lost.
            logger.warning("webhook worker: could not record a delivery (%s)", exc)
        except Exception:
            logger.exception("webhook worker: delivery of %s failed", delivery.event_id)

    async def _attempt(self, delivery: DueDelivery) -> None:
        event = await self.events.retrieve(self.db, delivery.tenant, delivery.event_id)
        endpoint = await self.endpoints.retrieve(self.db, delivery.tenant, delivery.endpoint_id)
        recorder = metrics.recorder()
        if event is None or endpoint is None or endpoint.disabled:
            await self.deliveries.give_up(self.db, delivery)
            if recorder is not None:
                recorder.delivery("dropped", None)
            return
        body = self.renderer.event(event)
        now = now_ms()
        # The lag of a first attempt: how far behind its events the worker runs (a retry's
        # wait is by design, and would drown it).
        lag = (now - delivery.created_at) / 1000 if delivery.attempts == 0 else None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, endpoint.signing_secrets(now), now // 1000),
        }
        assert self._client is not None
        try:
            target = await resolve_public(
                endpoint.url,
                self.settings.webhook_allow_private,
                dns_timeout=self.dns_timeout,
            )
        except DestinationError as exc:
            attempt = Attempt(None, str(exc), 0.0, "")
        else:
            attempt = await deliver(
                self._client,
                target,
                body,
                headers,
                timeout=self.settings.webhook_timeout_seconds,
                max_response_bytes=self.settings.webhook_max_response_bytes,
            )
        finished = now_ms()
        succeeded = attempt.status_code is not None and 200 <= attempt.status_code < 300
        next_attempt_at = None
        if not succeeded:
            base = self.settings.webhook_retry_base_seconds
            delay = retry_delay_seconds(delivery.attempts + 1, base)
            retry_at = finished + int(delay * 1000)
            deadline = delivery.created_at + int(self.settings.webhook_retry_for_seconds * 1000)
            next_attempt_at = retry_at if retry_at <= deadline else None
        await self.deliveries.record(
            self.db,
            delivery,
            now_ms=finished,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=round(attempt.duration_ms),
            next_attempt_at=next_attempt_at,
            succeeded=succeeded,
        )
        if recorder is not None:
            outcome = "succeeded" if succeeded else "retrying" if next_attempt_at else "failed"
            recorder.delivery(outcome, lag)


@contextlib.asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[DeliveryWorker]:
    """Run ``worker`` in the background for the duration of the block."""
    task = asyncio.create_task(worker.run_forever())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
