"""A loopback HTTP/1.1 server writing scripted answer bytes, for clients' framing and
connection handling (tests of :mod:`shared.web.http1` and its users)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.messaging.processes import free_port

Answer = Callable[[int], bytes | None]  # the n-th request on a connection -> bytes to write


class RawServer:
    """A loopback HTTP/1.1 server writing scripted answer bytes; counts connections and
    requests. ``None`` as an answer closes the connection without answering."""

    def __init__(self, answer: Answer, *, close_after: int | None = None) -> None:
        self.answer = answer
        self.close_after = close_after  # answers per connection, then close unannounced
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                n += 1
                out = self.answer(n)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if n == self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
