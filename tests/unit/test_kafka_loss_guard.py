"""The loss guard's rule for which closed connections count as lost (``shared.messaging.kafka``).

The guard wraps two methods of an aiokafka client; here the client is a stand-in that
records what the guard lets through (its real use is in
``tests/integration/test_kafka_connection_lost.py``, against a restarted broker).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka.conn import CloseReason

from shared.config import KafkaSettings
from shared.messaging.kafka import ConnectionLost, Consumer, Producer, _LossGuard


class _Client:
    """What the guard needs of an aiokafka client: its close callback and connection getter."""

    def __init__(self) -> None:
        self.closed: list[object] = []
        self.asked: list[object] = []

    def _on_connection_closed(self, conn: object, reason: object) -> None:
        self.closed.append(reason)

    async def _get_conn(self, node_id: object, **kwargs: Any) -> object:
        self.asked.append(node_id)
        return f"conn-{node_id}"


class TestWhatCountsAsALostConnection:
    @pytest.mark.parametrize(
        "reason",
        [CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT, CloseReason.OUT_OF_SYNC],
    )
    async def test_a_broken_connection_stops_every_new_one(self, reason: CloseReason) -> None:
        client = _Client()
        guard = _LossGuard(client)
        assert await client._get_conn(1) == "conn-1"
        client._on_connection_closed("conn-1", reason)
        assert guard.lost.is_set()
        assert await client._get_conn(1) is None
        assert client.asked == [1], "the client was asked for a connection after the loss"
        assert client.closed == [reason], "aiokafka's own callback must still run"

    async def test_a_connection_the_client_dropped_for_being_idle_is_not_a_loss(self) -> None:
        client = _Client()
        guard = _LossGuard(client)
        client._on_connection_closed("conn-1", CloseReason.IDLE_DROP)
        assert not guard.lost.is_set()
        assert await client._get_conn(1) == "conn-1"

    async def test_unless_lost_gives_the_result_or_raises_once_lost(self) -> None:
        client = _Client()
        guard = _LossGuard(client)

        async def answer() -> int:
            return 42

        assert await guard.unless_lost(answer()) == 42
        client._on_connection_closed("conn-1", CloseReason.CONNECTION_BROKEN)

        async def never() -> int:
            await asyncio.Event().wait()
            return 0

        with pytest.raises(ConnectionLost):
            await guard.unless_lost(never())


class TestAClientThatLosesAConnectionWhileItStarts:
    """A broker that restarts while a worker starts its consumer (or its relay its producer)
    closes a connection the client had just opened. From then on the guard refuses every
    new one, so aiokafka's start would wait for ever (a consumer for its group assignment);
    our start gives up with ConnectionLost and the owner starts a new client."""

    @staticmethod
    def _stalled_start(started: asyncio.Event) -> Any:
        async def start() -> None:
            started.set()
            await asyncio.Event().wait()  # aiokafka waiting for an assignment

        return start

    @pytest.mark.parametrize("kind", ["consumer", "producer"])
    async def test_start_raises_connection_lost_instead_of_waiting_for_ever(
        self, kind: str
    ) -> None:
        settings = KafkaSettings(bootstrap_servers="127.0.0.1:9")
        started = asyncio.Event()
        wrapper: Consumer | Producer
        if kind == "consumer":
            wrapper = Consumer(settings, topics=["t"], group_id="g", client_id="c")
            inner, client = wrapper._consumer, wrapper._consumer._client
        else:
            wrapper = Producer(settings, "p")
            inner, client = wrapper._producer, wrapper._producer.client
        inner.start = self._stalled_start(started)
        starting = asyncio.ensure_future(wrapper.start())
        await started.wait()
        client._on_connection_closed(object(), CloseReason.CONNECTION_BROKEN)
        try:
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(starting, timeout=30)  # bounds a failure, times nothing
            assert wrapper.connection_lost
        finally:
            with contextlib.suppress(Exception):
                await wrapper.stop()
