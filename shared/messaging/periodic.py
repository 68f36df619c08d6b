"""Periodic jobs of a worker (housekeeping, the directory's review-due check, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("vardkedja.periodic")


@dataclass(frozen=True)
class PeriodicJob:
    """``run`` is awaited every ``interval_s`` seconds; its errors are logged, never fatal."""

    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]


async def run_periodic(job: PeriodicJob, stop: asyncio.Event) -> None:
    """Run ``job`` now and then every interval until ``stop`` is set."""
    while not stop.is_set():
        try:
            await job.run()
        except Exception as exc:
            log.warning(
                "periodic job failed",
                extra={"consumer": job.name, "error_type": type(exc).__name__},
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.interval_s)
