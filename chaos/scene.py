"""One scenario's world while it runs: its platform (services on their own topics, Redis keys and groups), the
infrastructure it may break, the load, and the phase the progress line shows."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from chaos.load import LoadState
from chaos.stack import Cluster, MailSink, Platform, Redis, SingleKafka
from shared.settings import KafkaSettings


@dataclass
class Options:
    ideas: int = 2000
    rate: float = 40.0
    service_down_s: float = 3.0
    kafka_down_s: float = 5.0
    redis_down_s: float = 3.0
    smtp_down_s: float = 60.0
    stall_s: float = 16.0
    """Longer than the consumers' session timeout: aiokafka's default session_timeout_ms, 10 s (shared/kafka.py's
    subscriber_options sets none), plus its 3 s heartbeat."""
    fault_at: float = 0.3
    """The fault comes when this share of the ideas has been sent."""
    quiescence_s: float = 300.0
    retry_cap_s: float = 2.0
    patience_s: float = 180.0


@dataclass
class Scene:
    name: str
    options: Options
    kafka: SingleKafka | Cluster
    kafka_settings: KafkaSettings
    redis: Redis
    sink: MailSink
    platform: Platform
    load: LoadState
    phase: str = "starting"
    restored_at: float | None = None
    notes: list[str] = field(default_factory=list)
    """Figures of the fault itself for the report (503s while Kafka was down, which broker was the leader...)."""
    _last_said: float = 0.0

    def progress(self, phase: str | None = None) -> None:
        """A progress line on stderr: on every change of phase, and when the runner's ticker asks."""
        if phase is not None:
            self.phase = phase
        s = self.load
        print(
            f"chaos: scenario {self.name}: {s.sent}/{s.total} submitted, {s.accepted} accepted, "
            f"{s.unavailable} x 503, {s.connection_errors} refused connections | {self.phase}",
            file=sys.stderr,
            flush=True,
        )
        self._last_said = time.monotonic()

    def restored(self, what: str) -> None:
        self.restored_at = time.monotonic()
        self.progress(f"{what}; waiting for recovery")
