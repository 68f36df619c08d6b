"""Real local servers standing in for the outer edge of notify: a case system's webhook
receiver (a FastAPI app under uvicorn on a loopback port, verifying Standard Webhooks
signatures) and a functional mailbox's SMTP server (aiosmtpd, optionally with STARTTLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.messaging.processes import free_port


class Served:
    """An ASGI app under uvicorn on a loopback port, in this event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Served:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn has no started event
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass
class Received:
    """One webhook request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    verified_with: list[str] = field(default_factory=list)  # secrets that verified it

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class WebhookReceiver:
    """A case system's endpoint. ``script`` lists answers for the next requests (a status
    code, or "timeout" to hang longer than the sender waits); then it answers 204."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secrets: list[str] = []
        self.received: list[Received] = []
        self.script: list[int | str] = []
        self.hang_s = 3.0
        self.delay_s = 0.0  # every answer waits this long (a slow case system)
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            item = Received(dict(request.headers), body, time.time())
            for secret in self.secrets:
                try:
                    Webhook(secret).verify(body, item.headers)
                except WebhookVerificationError:
                    continue
                item.verified_with.append(secret)
            self.received.append(item)
            answer = self.script.pop(0) if self.script else 204
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if answer == "timeout":
                await asyncio.sleep(self.hang_s)
                return Response(status_code=204)
            assert isinstance(answer, int)
            return Response(status_code=answer)

        self._serving = Served(app, self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified_with]

    async def start(self) -> WebhookReceiver:
        await self._serving.start()
        return self

    async def stop(self) -> None:
        await self._serving.stop()


class _Mailbox:
    def __init__(self, sink: list[tuple[Envelope, EmailMessage]], fail: list[int]) -> None:
        self.sink = sink
        self.fail = fail

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail:
            return f"{self.fail.pop(0)} try again later"
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.sink.append((envelope, message))
        return "250 OK"


class SmtpServer:
    """A functional mailbox's SMTP server (aiosmtpd in its own thread)."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.fail: list[int] = []
        self.controller = Controller(
            _Mailbox(self.messages, self.fail),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls_context,
            require_starttls=tls_context is not None,
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def to(self, mailbox: str) -> list[EmailMessage]:
        return [m for env, m in self.messages if mailbox in env.rcpt_tos]


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in ``directory``)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], **kw: Any) -> float:
    """``eventually`` for sync or async checks."""
    from tests.helpers.harness import eventually

    async def wrapped() -> bool:
        result = check()
        if asyncio.iscoroutine(result):
            return bool(await result)
        return bool(result)

    return await eventually(wrapped, **kw)
