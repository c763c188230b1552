"""The background task that works the retry queue: claims due deliveries with a lease, sends them (up to
``delivery_concurrency`` at once), and settles each: delivered, rescheduled with backoff, given up, or skipped
because its recipient was erased (never a failure, never a dead letter). Every error text it logs, keeps or
reports has its addresses masked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from services.notifications.delivery.model import (
    Delivery,
    DeliveryMetrics,
    DeliveryRejected,
    RecipientErased,
    ServerAway,
    without_address,
)
from services.notifications.delivery.outcomes import Reporter, describe
from services.notifications.delivery.queue import DeliveryQueue
from services.notifications.delivery.senders import Sender
from services.notifications.domain import ERASED_DETAIL
from services.notifications.settings import NotificationsSettings
from services.notifications.tasks import stop
from shared.deadletter import OUTAGE_MAX_BACKOFF_S, dependency_away
from shared.events import DeliveryOutcome

STOP_GRACE_S = 5.0
"""How long a stopping worker lets the deliveries in flight finish."""
SERVER_AWAY_MAX_S = 6 * OUTAGE_MAX_BACKOFF_S
"""Longest wait of one delivery between two looks at a mail server that is away (a minute)."""


@dataclass
class DeliveryWorker:
    queue: DeliveryQueue
    senders: dict[str, Sender]
    reporter: Reporter
    settings: NotificationsSettings
    metrics: DeliveryMetrics
    logger: logging.Logger
    pseudonym: Callable[[str], str] | None = None
    """A person's pseudonym from their address (the keyring's), for deliveries queued before there were any."""
    dependency_waits: Counter | None = None
    """``kiruna_dependency_waits_total`` (the service's): a delivery that found the mail server away."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[asyncio.Task] = field(default_factory=set)
    _sending: set[str] = field(default_factory=set)
    """Ids of the deliveries being tried here: one claimed again (its lease ran out while Redis was away) is not
    tried a second time at once."""

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter: base * 2^(tries-1), at most retry_max_s, times 0.5-1.5."""
        delay = min(self.settings.retry_base_s * 2 ** (attempts - 1), self.settings.retry_max_s)
        return delay * (0.5 + random.random())

    @contextlib.asynccontextmanager
    async def running(self, ready: asyncio.Event) -> AsyncIterator[None]:
        """The worker as a background task of the app: works the queue once ``ready`` (Kafka connected); on the
        way out stops claiming, lets what is in flight finish (``STOP_GRACE_S``; what is cut off after that comes
        back when its lease runs out) and closes the senders."""
        task = asyncio.create_task(self.run(ready), name="notifications-deliveries")
        try:
            yield
        finally:
            self.stopping.set()
            await asyncio.wait({task}, timeout=STOP_GRACE_S + 1)  # the loop ends by itself, its deliveries done
            await stop([task])
            await self.stop()

    async def run(self, ready: asyncio.Event) -> None:
        """Work the queue until cancelled: up to ``delivery_concurrency`` deliveries at once."""
        await ready.wait()  # outcomes go to Kafka: wait until it is there
        try:
            while not self.stopping.is_set():
                try:
                    await self.fill()
                except Exception as exc:  # Redis away for a moment: say so, and try again
                    self.logger.warning("delivery queue unavailable", extra={"error": repr(exc)})
                waiters: set[asyncio.Future] = {
                    asyncio.ensure_future(self.queue.wakeup.wait()),
                    asyncio.ensure_future(self.stopping.wait()),
                    *self._in_flight,
                }
                await asyncio.wait(waiters, timeout=self.settings.delivery_poll_s, return_when=asyncio.FIRST_COMPLETED)
                self.queue.wakeup.clear()
                for waiter in waiters - self._in_flight:
                    waiter.cancel()
        finally:
            # A delivery in flight is finished (sent, remembered, reported) rather than cut off: one cut off after
            # its mail went out comes back when its lease runs out and, were Redis emptied and rebuilt meanwhile,
            # would go out again (make chaos, redis-flush: an officer's mail twice, 54 s apart).
            if self._in_flight and self.stopping.is_set():
                await asyncio.wait(list(self._in_flight), timeout=STOP_GRACE_S)
            for task in list(self._in_flight):
                task.cancel()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight), timeout=5)

    async def fill(self) -> int:
        free = self.settings.delivery_concurrency - len(self._in_flight)
        claimed = await self.queue.claim(time.time(), free, self.settings.delivery_lease_s) if free > 0 else []
        for delivery in claimed:
            if delivery.id in self._sending:
                continue
            task = asyncio.create_task(self.attempt(delivery), name=f"deliver-{delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        self.metrics.pending.set(await self.queue.size())
        return len(claimed)

    async def attempt(self, delivery: Delivery) -> None:
        """One try of one delivery. Whatever goes wrong here, the delivery stays in Redis until settled."""
        if self.pseudonym is not None:  # one queued before people were pseudonyms: made as one queued now
            secret = self.settings.unsubscribe_secret.get_secret_value()
            delivery = without_address(delivery, self.pseudonym, secret) or delivery
        self._sending.add(delivery.id)
        try:
            if not await self.queue.is_delivered(delivery.id):  # else: sent before a crash, only its report is missing
                try:
                    await self.senders[delivery.channel].send(delivery)
                except RecipientErased:
                    await self.skip_erased(delivery)
                    return
                except DeliveryRejected as exc:
                    delivery.attempts += 1
                    await self.give_up(delivery, exc)
                    return
                except ServerAway as exc:
                    await self.wait_for_server(delivery, exc)
                    return
                except Exception as exc:
                    await self.failed_try(delivery, exc)
                    return
                await self.remember_sent(delivery)
            await self.reporter.delivery(delivery, DeliveryOutcome.DELIVERED)
            await self.queue.complete(delivery.id)
            self.logger.info(
                "notification delivered",
                extra={"idea_id": delivery.idea_id, "event_id": delivery.cause_event_id, "channel": delivery.channel},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka or Redis failed mid-way: the lease expires and the delivery comes back
            self.logger.warning("delivery not settled, will come back", extra={"error": describe(exc)})
        finally:
            self._sending.discard(delivery.id)

    async def remember_sent(self, delivery: Delivery) -> None:
        """The mail is out: remember that before anything else, waiting for Redis while it is away. Forgotten,
        the delivery's lease would bring it back and it would go out a second time (make chaos, redis-kill: five
        mails twice, 120 s apart)."""
        delay = 0.1
        while True:
            try:
                await self.queue.mark_delivered(delivery.id)
                return
            except Exception as exc:
                if dependency_away(exc) != "redis" or self.stopping.is_set():
                    raise
                if self.dependency_waits is not None:
                    self.dependency_waits.labels("notifications", "deliveries", "redis").inc()
                self.logger.warning(
                    "sent, but redis is away: waiting to remember it",
                    extra={"idea_id": delivery.idea_id, "error": describe(exc), "retry_in_s": round(delay, 2)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_BACKOFF_S)

    async def skip_erased(self, delivery: Delivery) -> None:
        """The recipient was erased while their delivery waited: reported skipped, and forgotten."""
        await self.reporter.delivery(delivery, DeliveryOutcome.SKIPPED, ERASED_DETAIL)
        await self.queue.complete(delivery.id)
        self.logger.info(
            "notification skipped: its recipient was erased",
            extra={"idea_id": delivery.idea_id, "event_id": delivery.cause_event_id, "channel": delivery.channel},
        )

    async def wait_for_server(self, delivery: Delivery, exc: ServerAway) -> None:
        """The mail server is away: not this mail's fault. It is looked at again with backoff (at most
        ``SERVER_AWAY_MAX_S`` apart) for as long as the outage lasts; its tries are kept for its own failures."""
        delivery.waits += 1
        delivery.last_error = describe(exc)
        delay = min(self.settings.retry_base_s * 2 ** min(delivery.waits - 1, 20), self.settings.retry_max_s)
        delay = min(delay, SERVER_AWAY_MAX_S) * (0.5 + random.random())
        await self.queue.reschedule(delivery, time.time() + delay)
        self.metrics.retries.labels(delivery.channel).inc()
        if self.dependency_waits is not None:
            self.dependency_waits.labels("notifications", "deliveries", "smtp").inc()
        if delivery.waits == 1 or delivery.waits % 10 == 0:
            self.logger.warning(
                "mail server away; the delivery waits for it",
                extra={
                    "idea_id": delivery.idea_id,
                    "event_id": delivery.cause_event_id,
                    "channel": delivery.channel,
                    "waits": delivery.waits,
                    "retry_in_s": round(delay, 2),
                    "error": delivery.last_error,
                },
            )

    async def failed_try(self, delivery: Delivery, exc: Exception) -> None:
        delivery.attempts += 1
        delivery.last_error = describe(exc)
        if delivery.attempts >= self.settings.delivery_attempts:
            await self.give_up(delivery, exc)
            return
        delay = self.backoff(delivery.attempts)
        await self.queue.reschedule(delivery, time.time() + delay)
        self.metrics.retries.labels(delivery.channel).inc()
        self.logger.warning(
            "delivery failed, retrying",
            extra={
                "idea_id": delivery.idea_id,
                "event_id": delivery.cause_event_id,
                "channel": delivery.channel,
                "attempt": delivery.attempts,
                "retry_in_s": round(delay, 2),
                "error": delivery.last_error,
            },
        )

    async def give_up(self, delivery: Delivery, error: BaseException) -> None:
        await self.reporter.dead_letter(delivery, error)
        await self.queue.mark_given_up(delivery.id)
        await self.reporter.delivery(delivery, DeliveryOutcome.FAILED, describe(error))
        await self.queue.complete(delivery.id)
        self.logger.error(
            "delivery given up",
            extra={"idea_id": delivery.idea_id, "event_id": delivery.cause_event_id, "channel": delivery.channel},
        )

    async def stop(self) -> None:
        for sender in self.senders.values():
            if close := getattr(sender, "aclose", None):
                with contextlib.suppress(Exception):
                    await close()
