"""Structured JSON logs with request and trace ids, and Prometheus metrics.

Log lines and metric labels carry route *templates*, ids, kinds and counts — never a
URL with its query string, a request body or an exception's text (they may hold personal
data). The JSON formatter only emits an allow-list of ``extra`` keys for the same reason.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
span_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("span_id", default=None)

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Keys a log call may pass in ``extra``; anything else is dropped by the formatter.
SAFE_EXTRA = frozenset(
    {
        "service",
        "member",
        "method",
        "route",
        "path_template",
        "status",
        "duration_ms",
        "event_id",
        "event_type",
        "topic",
        "partition",
        "offset",
        "consumer",
        "count",
        "attempt",
        "attempts",
        "reason",
        "rule",
        "error_type",
        "unit_id",
        "resource_id",
        "topics",
        "backoff_s",
        "pid",
        "port",
        "outcome",
    }
)

HTTP_REQUESTS = Counter(
    "vk_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "vk_http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("vk_outbox_published_total", "Events published", ["service", "topic"])
OUTBOX_PENDING = Gauge("vk_outbox_pending", "Events written but not yet published", ["service"])
OUTBOX_REPLAYS = Counter(
    "vk_outbox_broker_loss_replays_total", "Replays after the broker lost its log", ["service"]
)
RELAY_ERRORS = Counter("vk_outbox_relay_errors_total", "Relay publish failures", ["service"])
EVENTS_CONSUMED = Counter(
    "vk_events_consumed_total", "Events consumed", ["service", "consumer", "outcome"]
)
EVENT_LAG = Histogram(
    "vk_event_handling_lag_seconds",
    "Time from an event's creation to its handling",
    ["service", "consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter(
    "vk_dead_letters_total",
    "Events sent to the dead-letter topic",
    ["service", "consumer", "reason"],
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids and safe extras."""

    def __init__(self, service: str = "", member: str = "") -> None:
        super().__init__()
        self.service = service
        self.member = member

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            out["service"] = self.service
        if self.member:
            out["member"] = self.member
        for key, var in (
            ("request_id", request_id_var),
            ("trace_id", trace_id_var),
            ("span_id", span_id_var),
        ):
            value = var.get()
            if value:
                out[key] = value
        for key, value in record.__dict__.items():
            if key in SAFE_EXTRA:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where, not its text (which may carry personal data).
            out["error_type"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(
    *, service: str = "", member: str = "", level: str = "INFO", json_lines: bool = True
) -> None:
    """Send every log line to stderr, as JSON unless told otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service, member))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (aiokafka logs connection errors with addresses only) at warning.
    # aiosqlite logs every statement with its parameters (personal data) at debug.
    for noisy in ("aiokafka", "uvicorn.access", "sqlalchemy.engine", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def new_trace() -> tuple[str, str]:
    """A fresh (trace id, span id) pair."""
    return secrets.token_hex(16), secrets.token_hex(8)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current request or message, if any."""
    trace, span = trace_id_var.get(), span_id_var.get()
    return f"00-{trace}-{span}-01" if trace and span else None


def adopt_traceparent(value: str | None) -> str:
    """Continue the trace in ``value`` (or start one); returns the trace id."""
    m = _TRACEPARENT.match(value or "")
    trace = m.group(1) if m else secrets.token_hex(16)
    trace_id_var.set(trace)
    span_id_var.set(secrets.token_hex(8))
    return trace


class RequestContextMiddleware:
    """Sets request and trace ids, echoes ``X-Request-ID``, logs and measures each request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.log = logging.getLogger("vardkedja.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")
        if not _REQUEST_ID.match(rid):
            rid = secrets.token_hex(8)
        request_id_var.set(rid)
        trace = adopt_traceparent(headers.get("traceparent"))
        scope.setdefault("state", {})
        scope["state"]["request_id"] = rid
        scope["state"]["trace_id"] = trace
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", rid.encode()),
                    (b"x-trace-id", trace.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            if route not in ("/metrics", "/healthz", "/readyz"):
                HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
                HTTP_LATENCY.labels(self.service, method, route).observe(elapsed)
                self.log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
