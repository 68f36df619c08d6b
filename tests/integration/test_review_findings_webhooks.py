"""Issue 19: the webhook sender connects to the address its check approved (a name that
answers differently on the second lookup, DNS rebinding, never reaches the second answer),
and a webhook through a proxy is checked too."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest

from services.notify.subscriptions import resolve_public
from services.notify.webhook_http import RefusedAddress, WebhookClient, WebhookConnectError
from shared.messaging.processes import free_port
from tests.integration.notify.servers import WebhookReceiver

HOST = "hooks.example"
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
BODY = b'{"type":"referral.received"}'
PUBLIC = "192.0.0.9"  # a global address (IANA's PCP anycast): nothing of this test is there


class Resolver:
    """The outer edge, faked: ``HOST`` resolves to ``answers`` in turn (the last one
    repeating); every other name as the system resolves it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *answers: str) -> None:
        self.real = loop.getaddrinfo
        self.answers = list(answers)
        self.asked = 0

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != HOST:
            return await self.real(host, port, *args, **kwargs)
        address = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]


class Listener:
    """A loopback server at ``host``:``port`` recording the heads it receives."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self.serve, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def fake_resolver(monkeypatch: pytest.MonkeyPatch, *answers: str) -> Resolver:
    loop = asyncio.get_running_loop()
    resolver = Resolver(loop, *answers)
    monkeypatch.setattr(loop, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.fixture
def port() -> int:
    return free_port()


class TestTheConnectionGoesToTheCheckedAddress:
    async def test_a_second_lookup_answering_elsewhere_is_not_followed(
        self, monkeypatch: pytest.MonkeyPatch, port: int
    ) -> None:
        # The check approves 127.0.0.1 (standing in for a public address); a second lookup
        # would answer 127.0.0.2, where another listener waits.
        resolver = fake_resolver(monkeypatch, "127.0.0.1", "127.0.0.2")

        async def check(host: str) -> list[str]:
            addresses = sorted(
                {i[4][0] for i in await asyncio.get_running_loop().getaddrinfo(host, None)}
            )
            if addresses != ["127.0.0.1"]:
                raise ValueError("not approved")
            return addresses

        client = WebhookClient(
            timeout_s=2.0, per_receiver=1, overall=asyncio.Semaphore(1), check_host=check
        )
        try:
            async with Listener("127.0.0.1", port) as checked, Listener("127.0.0.2", port) as other:
                assert await client.post(f"http://{HOST}:{port}/hook", BODY, lambda: HEADERS) == 204
        finally:
            await client.aclose()
        assert resolver.asked == 1
        assert other.heads == []
        [head] = checked.heads
        assert f"host: {HOST}:{port}".encode() in head  # the name, not the address

    async def test_the_notify_check_pins_the_public_answer_not_the_private_one(
        self, monkeypatch: pytest.MonkeyPatch, port: int
    ) -> None:
        # resolve_public approves a public address; the name then rebinds to loopback.
        fake_resolver(monkeypatch, PUBLIC, "127.0.0.1")

        async def check(host: str) -> list[str]:
            return await resolve_public(host=host)

        client = WebhookClient(
            timeout_s=1.0, per_receiver=1, overall=asyncio.Semaphore(1), check_host=check
        )
        try:
            async with Listener("127.0.0.1", port) as private:
                # Whether anything answers at the public address depends on the network.
                with contextlib.suppress(TimeoutError, WebhookConnectError):
                    await client.post(f"http://{HOST}:{port}/hook", BODY, lambda: HEADERS)
        finally:
            await client.aclose()
        assert private.heads == []


class TestTheProxyPathIsChecked:
    async def test_a_private_host_is_refused_before_the_proxy_sees_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_resolver(monkeypatch, "10.1.2.3")
        proxy = await WebhookReceiver().start()
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def check(host: str) -> list[str]:
            return await resolve_public(host=host)

        client = WebhookClient(
            timeout_s=1.0, per_receiver=1, overall=asyncio.Semaphore(1), check_host=check
        )
        try:
            with pytest.raises(RefusedAddress):
                await client.post(f"http://{HOST}/hook", BODY, lambda: HEADERS)
        finally:
            await client.aclose()
            await proxy.stop()
        assert proxy.received == []
