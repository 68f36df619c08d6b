"""The webhook sender's HTTP client against real loopback servers: connections kept alive
and bounded per receiver, a connection the receiver closed while idle, answers with a body,
chunked or closing answers, timeouts, refused connections and addresses, and a proxy
configured in the environment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest

from services.notify.webhook_http import RefusedAddress, WebhookClient, WebhookConnectError
from shared.messaging.processes import free_port
from tests.integration.notify.servers import WebhookReceiver
from tests.integration.rawhttp import RawServer

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
BODY = b'{"type":"referral.received"}'


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    c = WebhookClient(timeout_s=1.0, per_receiver=4, overall=asyncio.Semaphore(8))
    yield c
    await c.aclose()


def post(client: WebhookClient, url: str) -> Awaitable[int]:
    return client.post(url, BODY, lambda: HEADERS)


class TestKeepAlive:
    async def test_webhooks_to_one_receiver_reuse_at_most_its_share_of_connections(
        self, client: WebhookClient
    ) -> None:
        receiver = await WebhookReceiver().start()
        try:
            for _ in range(3):
                statuses = await asyncio.gather(*(post(client, receiver.url) for _ in range(20)))
                assert statuses == [204] * 20
        finally:
            await receiver.stop()
        assert len(receiver.received) == 60
        assert [r.body for r in receiver.received] == [BODY] * 60
        assert receiver.received[0].headers["webhook-id"] == "msg_1"
        assert client.connections_opened <= 4

    async def test_a_connection_the_receiver_closed_while_idle_is_not_reused(
        self, client: WebhookClient
    ) -> None:
        ok = b"HTTP/1.1 204 No Content\r\n\r\n"
        async with RawServer(lambda n: ok, close_after=1) as server:
            assert await post(client, server.url) == 204
            await asyncio.sleep(0.1)  # the receiver's close has arrived
            assert await post(client, server.url) == 204
        assert (server.connections, len(server.requests)) == (2, 2)

    async def test_a_connection_closed_just_as_it_is_reused_is_replaced(
        self, client: WebhookClient
    ) -> None:
        # The second request on a connection is read, then the connection closed unanswered.
        def answer(n: int) -> bytes | None:
            return b"HTTP/1.1 204 No Content\r\n\r\n" if n == 1 else None

        async with RawServer(answer) as server:
            assert await post(client, server.url) == 204
            assert await post(client, server.url) == 204
        # Sent once more on a new connection (receivers dedupe by webhook-id).
        assert (server.connections, len(server.requests)) == (2, 3)
        assert all(r.endswith(BODY) for r in server.requests)


class TestAnswers:
    async def test_a_body_is_read_and_the_connection_reused(self, client: WebhookClient) -> None:
        async with RawServer(
            lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nthanks"
        ) as server:
            assert [await post(client, server.url) for _ in range(3)] == [200, 200, 200]
        assert server.connections == 1

    async def test_chunked_closing_and_informational_answers(self, client: WebhookClient) -> None:
        answers = {
            1: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
            2: b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfail\r\n0\r\n\r\n",
            3: b"HTTP/1.1 410 Gone\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            4: b"HTTP/1.0 204 No Content\r\n\r\n",
        }
        seen: list[int] = []

        def answer(n: int) -> bytes:
            seen.append(n)
            return answers[len(seen)]  # by request, whichever connection it came on

        async with RawServer(answer) as server:
            got = [await post(client, server.url) for _ in range(4)]
        assert got == [202, 500, 410, 204]
        # Reused after the 202; a chunked, a closing and an HTTP/1.0 answer end theirs.
        assert server.connections == 3


class TestFailures:
    async def test_a_receiver_that_does_not_answer_in_time_times_out(
        self, client: WebhookClient
    ) -> None:
        client.timeout_s = 0.2
        async with RawServer(lambda n: b"") as server:
            with pytest.raises(TimeoutError):
                await post(client, server.url)

    async def test_a_refused_connection_and_a_broken_answer_are_connect_errors(
        self, client: WebhookClient
    ) -> None:
        with pytest.raises(WebhookConnectError):
            await post(client, f"http://127.0.0.1:{free_port()}/hook")
        async with RawServer(lambda n: b"SMTP ready\r\n\r\n") as server:
            with pytest.raises(WebhookConnectError):
                await post(client, server.url)

    async def test_the_address_check_runs_before_each_new_connection(self) -> None:
        checked: list[str] = []

        async def check(host: str) -> list[str]:
            checked.append(host)
            if host == "localhost":
                raise ValueError("private address")
            return [host]

        c = WebhookClient(
            timeout_s=1.0, per_receiver=2, overall=asyncio.Semaphore(2), check_host=check
        )
        try:
            async with RawServer(lambda n: b"HTTP/1.1 204 No Content\r\n\r\n") as server:
                assert [await post(c, server.url) for _ in range(3)] == [204] * 3
                with pytest.raises(RefusedAddress):
                    await post(c, f"http://localhost:{server.port}/hook")
        finally:
            await c.aclose()
        assert checked == ["127.0.0.1", "localhost"]


class TestProxy:
    async def test_a_proxy_in_the_environment_carries_the_webhook(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        proxy = await WebhookReceiver().start()  # answers the proxied request itself
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = WebhookClient(timeout_s=1.0, per_receiver=2, overall=asyncio.Semaphore(2))
        try:
            assert await post(client, "http://case-system.invalid/hook") == 204
        finally:
            await client.aclose()
            await proxy.stop()
        assert [r.body for r in proxy.received] == [BODY]
