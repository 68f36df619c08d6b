"""A harness consumer in a process of its own, which can crash at an exact point.

Usage: python -m tests.helpers.consumer_proc DB_URL BOOTSTRAP TOPIC GROUP CRASH
CRASH is ``none``, ``after_commit:N`` (exit after the N-th effect's transaction committed,
before its offset is committed) or ``in_handler:N`` (exit inside the N-th handler, before
its transaction commits). ``os._exit`` is used: no cleanup, as with SIGKILL.
On SIGTERM it prints its counts as JSON and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging.inbox import Delivery
from tests.conftest import make_settings
from tests.helpers.harness import Harness, record_effect

CRASH_EXIT = 77


def main() -> None:
    db_url, bootstrap, topic, group, crash = sys.argv[1:6]
    mode, _, n = crash.partition(":")
    limit = int(n or 0)
    seen = {"handled": 0, "applied": 0}

    async def handler(session: AsyncSession, delivery: Delivery) -> None:
        seen["handled"] += 1
        if mode == "in_handler" and seen["handled"] == limit:
            os._exit(CRASH_EXIT)
        await record_effect(session, delivery)

    def after_commit(delivery: Delivery) -> None:
        seen["applied"] += 1
        if mode == "after_commit" and seen["applied"] == limit:
            os._exit(CRASH_EXIT)

    async def run() -> None:
        settings = make_settings(db_url=db_url, bootstrap=bootstrap)
        harness = Harness(settings, topic)
        consumer = harness.consumer(group, handler=handler, on_applied=after_commit)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, consumer.stop)
        print("ready", flush=True)
        await consumer.run()
        print(json.dumps(consumer.counts), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
