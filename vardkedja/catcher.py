"""The demo's outer edge: a mail catcher and a webhook receiver on loopback.

``vardkedja run`` points every member's notify service at :class:`Catcher`: its SMTP
server (aiosmtpd, in its own thread) keeps the e-mails notify sends to functional mailboxes,
and its small read-only web page (``http.server``, in another thread) lists them newest
first, with the webhooks case systems would get. ``POST /webhook`` is such a case system:
it checks the Standard Webhooks signature with the secrets the demo subscribed with, as a
real receiver would, and shows each webhook verified or not. Nothing leaves the machine;
notifications carry no personal data (kind, title, link), so neither does the page.
``GET /caught.json`` gives the same as JSON.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

KEEP = 200  # the newest e-mails and webhooks the page holds (each)
MAX_WEBHOOK_BODY = 64 * 1024
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class CaughtMail:
    """One e-mail as the catcher received it."""

    at: str  # ISO 8601, UTC
    sender: str
    to: list[str]
    subject: str
    body: str


@dataclass(frozen=True)
class CaughtWebhook:
    """One webhook as the receiver received it, and whether its signature verified."""

    at: str
    headers: dict[str, str]  # the three Standard Webhooks headers
    body: str
    verified: bool


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return "" if part is None else str(part.get_content())


class _Mailbox:
    """aiosmtpd's handler: every message accepted and kept."""

    def __init__(self, catcher: Catcher) -> None:
        self.catcher = catcher

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        mail = CaughtMail(
            at=_now(),
            sender=str(envelope.mail_from),
            to=list(envelope.rcpt_tos),
            subject=str(message.get("subject", "")),
            body=_text_of(message),
        )
        with self.catcher.lock:
            self.catcher.mails.appendleft(mail)
        return "250 OK"


class Catcher:
    """The SMTP server and the web page (with the webhook receiver), both on ``host``."""

    def __init__(self, *, smtp_port: int, http_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.lock = threading.Lock()
        self.mails: deque[CaughtMail] = deque(maxlen=KEEP)
        self.webhooks: deque[CaughtWebhook] = deque(maxlen=KEEP)
        self.secrets: list[str] = []  # the demo's subscriptions' signing secrets
        self._smtp = Controller(_Mailbox(self), hostname=host, port=smtp_port)
        self._http = ThreadingHTTPServer((host, http_port), _handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def page_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/webhook"

    def start(self) -> Catcher:
        self._smtp.start()
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="catcher-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._smtp.stop()

    def trust(self, secret: str) -> None:
        """Verify webhooks with ``secret`` too (a demo subscription's)."""
        with self.lock:
            self.secrets.append(secret)

    def receive_webhook(self, headers: dict[str, str], body: bytes) -> CaughtWebhook:
        """Checks the signature against every known secret and keeps the webhook."""
        with self.lock:
            secrets = list(self.secrets)
        caught = CaughtWebhook(
            at=_now(),
            headers={k: headers.get(k, "") for k in SIGNATURE_HEADERS},
            body=body.decode("utf-8", errors="replace"),
            verified=any(_verifies(s, headers, body) for s in secrets),
        )
        with self.lock:
            self.webhooks.appendleft(caught)
        return caught

    def caught(self) -> dict[str, Any]:
        """What the page shows, newest first: ``{"mails": [...], "webhooks": [...]}``."""
        with self.lock:
            return {
                "mails": [asdict(m) for m in self.mails],
                "webhooks": [asdict(w) for w in self.webhooks],
            }


def _verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _handler(catcher: Catcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vardkedja-catcher"

        def do_GET(self) -> None:
            if self.path == "/caught.json":
                self._answer(200, "application/json", json.dumps(catcher.caught()).encode())
            elif self.path == "/":
                self._answer(200, "text/html; charset=utf-8", render(catcher.caught()).encode())
            else:
                self._answer(404, "text/plain", b"not found")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/webhook" or not 0 < length <= MAX_WEBHOOK_BODY:
                self._answer(404 if self.path != "/webhook" else 413, "text/plain", b"")
                return
            body = self.rfile.read(length)
            catcher.receive_webhook({k.lower(): v for k, v in self.headers.items()}, body)
            self._answer(204, "text/plain", b"")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the launcher's terminal shows the banner, not every request

    return Handler


def render(caught: dict[str, Any]) -> str:
    """The page: the caught e-mails, then the webhooks, newest first (reloads itself)."""

    def rows(items: Iterable[dict[str, Any]], cells: Iterable[str]) -> str:
        names = list(cells)
        head = "".join(f"<th>{n}</th>" for n in names)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(item[n])}</td>" for n in names) + "</tr>"
            for item in items
        )
        return f"<table><tr>{head}</tr>{body or '<tr><td>none yet</td></tr>'}</table>"

    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5"><title>vardkedja demo: mail and webhooks'
        "</title><style>body{font-family:sans-serif}td,th{border:1px solid #ccc;"
        "padding:4px;vertical-align:top;text-align:left}table{border-collapse:collapse}"
        "pre{white-space:pre-wrap;margin:0}</style></head><body>"
        "<h1>Caught by the demo</h1>"
        f"<h2>E-mail ({len(caught['mails'])})</h2>"
        + rows(caught["mails"], ("at", "sender", "to", "subject", "body"))
        + f"<h2>Webhooks ({len(caught['webhooks'])})</h2>"
        + rows(caught["webhooks"], ("at", "verified", "headers", "body"))
        + "</body></html>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "verified" if value else "<b>NOT verified</b>"
    if isinstance(value, list):
        value = ", ".join(value)
    elif isinstance(value, dict):
        value = "\n".join(f"{k}: {v}" for k, v in value.items())
    elif isinstance(value, str) and value.startswith("{"):
        with contextlib.suppress(ValueError):  # a webhook's JSON body, indented to be read
            value = json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    return f"<pre>{html.escape(str(value))}</pre>"
