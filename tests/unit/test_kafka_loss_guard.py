"""The loss guard's rule for which closed connections count as lost (``shared.messaging.kafka``).

The guard wraps two methods of an aiokafka client; here the client is a stand-in that
records what the guard lets through (its real use is in
``tests/integration/test_kafka_connection_lost.py``, against a restarted broker).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.conn import CloseReason

from shared.messaging.kafka import ConnectionLost, _LossGuard


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
