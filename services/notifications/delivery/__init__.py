"""E-mail and webhook deliveries: a retry queue in Redis, worked by a background task.

The consumer only *enqueues* a delivery (idempotently, keyed by its notification id) and commits; so a slow or
unreachable mail server or webhook never holds up a partition, and a delivery that is pending when the process
stops is still in Redis when it starts again. The worker claims due deliveries with a lease (a crashed worker's
claims come back), sends them, and on success writes the ``delivered`` key: the exactly-once mark, written only
when the delivery succeeded. A failed try is rescheduled with exponential backoff and jitter; after the last try
the delivery is recorded on ``notifications.dlq`` with the reason and reported as failed. Every outcome is
published as ``NotificationSent``.

- ``model``: what one delivery is (``Delivery``), and a refusal no retry can help (``DeliveryRejected``);
- ``queue``: the retry queue in Redis (``DeliveryQueue``);
- ``senders``: how a delivery leaves (``Mailer`` over SMTP, ``WebhookPoster`` over HTTP);
- ``outcomes``: how outcomes are told (``Reporter``: ``NotificationSent``, counters, ``notifications.dlq``);
- ``worker``: the background task that works the queue (``DeliveryWorker``).
"""
