"""The worker process of a service: its outbox relay and its consumers.

Started by ``vardkedja worker SERVICE``. Stops cleanly on SIGTERM/SIGINT: consumers finish
the record in hand (its transaction commits, then its offset), the relay stops between
batches. A broker or database outage never ends the process; it waits and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from shared.config import Settings, check_production
from shared.data import migrations
from shared.data.housekeeping import housekeeping_job
from shared.messaging.events import topics
from shared.messaging.inbox import EventConsumer
from shared.messaging.kafka import KafkaError, ensure_topics
from shared.messaging.outbox import OutboxRelay
from shared.messaging.periodic import run_periodic
from shared.service import ServiceContext, ServiceSpec, build_context, freeze_startup_objects
from shared.web.observability import configure_logging

log = logging.getLogger("vardkedja.worker")


class Worker:
    """The relay and consumers of one service of one member."""

    def __init__(self, spec: ServiceSpec, settings: Settings) -> None:
        check_production(settings)
        self.spec = spec
        self.settings = settings
        self.ctx: ServiceContext = build_context(spec, settings)
        self.relay = OutboxRelay(settings, self.ctx.db, spec.infra)
        self.ctx.relay = self.relay
        self.consumers = [
            EventConsumer(settings, self.ctx.db, spec.infra, c) for c in spec.consumers(self.ctx)
        ]
        self._stop = asyncio.Event()

    def topics(self) -> list[str]:
        """Every topic this worker reads or writes."""
        own = topics.member_topics(self.settings.member.orgnr)
        read = [t for c in self.consumers for t in c.spec.topics]
        return sorted({*own, *read, topics.DIRECTORY})

    async def _ensure_topics(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                await ensure_topics(
                    self.settings.kafka,
                    self.topics(),
                    client_id=f"{self.settings.member.digits}-{self.spec.name}-admin",
                )
                return
            except (KafkaError, OSError) as exc:
                log.warning(
                    "broker not reachable yet",
                    extra={"error_type": type(exc).__name__, "backoff_s": backoff},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=backoff)
                backoff = min(5.0, backoff * 2)

    def stop(self) -> None:
        self._stop.set()
        self.relay.stop()
        for c in self.consumers:
            c.stop()

    async def run(self) -> None:
        """Run until :meth:`stop`."""
        if self.settings.auto_migrate:
            await migrations.upgrade(self.spec.migrations_dir, self.settings.db_url)
        if self.settings.kafka.create_topics:
            await self._ensure_topics()
        if self.spec.on_worker_start is not None:
            await self.spec.on_worker_start(self.ctx)
        freeze_startup_objects()
        log.info(
            "worker started",
            extra={"consumer": ",".join(c.spec.name for c in self.consumers) or "-"},
        )
        jobs = [
            housekeeping_job(self.settings, self.ctx.db, self.spec.infra),
            *self.spec.periodic(self.ctx),
        ]
        tasks = [asyncio.create_task(self.relay.run(), name="relay")]
        tasks += [asyncio.create_task(run_periodic(job, self._stop), name=job.name) for job in jobs]
        tasks += [asyncio.create_task(c.run(), name=c.spec.name) for c in self.consumers]
        try:
            await self._stop.wait()
        finally:
            self.stop()
            __done, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self.spec.on_worker_stop is not None:
                try:
                    await asyncio.wait_for(self.spec.on_worker_stop(self.ctx), timeout=30)
                except Exception as exc:
                    log.warning("worker stop hook failed", extra={"error_type": type(exc).__name__})
            await self.ctx.db.dispose()
            log.info("worker stopped")


def run_worker(spec: ServiceSpec, settings: Settings) -> None:
    """Run a worker in the foreground until SIGTERM or SIGINT."""
    configure_logging(
        service=spec.name,
        member=settings.member.orgnr,
        level=settings.log_level,
        json_lines=settings.log_json,
    )

    async def main() -> None:
        worker = Worker(spec, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (as uvicorn uses for the APIs): a cheaper event loop."""
    try:
        import uvloop
    except ImportError:  # e.g. on Windows
        return None
    return uvloop.new_event_loop
