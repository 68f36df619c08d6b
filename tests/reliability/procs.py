"""Processes the reliability scenarios start and kill (each is a real OS process).

python -m tests.reliability.procs relay DB_URL BOOTSTRAP TOPIC
    The harness's outbox relay (``shared.messaging.outbox.OutboxRelay``, unchanged) on its own:
    prints ``ready``; on SIGTERM stops between batches and prints how many it published.
    Scenario 2 SIGKILLs it between the broker's acknowledgement and the mark.
python -m tests.reliability.procs lock SQLITE_PATH
    Holds SQLite's write lock on a database (``BEGIN EXCLUSIVE``) until SIGTERM: the
    database is unavailable for writing to every other process (scenario 4).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import threading

from tests.conftest import make_settings
from tests.helpers.harness import Harness


def say(line: str) -> None:
    """One line to the parent (which reads this process's stdout)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def relay(db_url: str, bootstrap: str, topic: str) -> None:
    async def run() -> None:
        harness = await Harness(make_settings(db_url=db_url, bootstrap=bootstrap), topic).setup()
        outbox_relay = harness.relay(max_backoff=1.0)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, outbox_relay.stop)
        say("ready")
        await outbox_relay.run()
        say(json.dumps({"published": outbox_relay.published}))

    asyncio.run(run())


def lock(path: str) -> None:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    say("locked")
    done.wait()
    conn.execute("ROLLBACK")
    conn.close()
    say("released")


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "relay":
        relay(*args)
    elif mode == "lock":
        lock(*args)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
