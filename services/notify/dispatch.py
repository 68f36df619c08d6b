"""The notify worker's dispatcher: sends pending webhook and e-mail deliveries.

Deliveries are rows written in the same transaction as their notification. The dispatcher
leases a batch of due rows (so two workers never send the same row at once), sends them
concurrently outside any transaction, and records each attempt in the delivery log. A
failure (4xx, 5xx, timeout, refused connection, SMTP error) schedules the next attempt with
exponential backoff and jitter; after the configured number of attempts the delivery is dead
(listed by the admin API, which can send it again under the same id). A receiver never stops
the worker.

The consumer wakes the dispatcher right after its transaction commits, so a webhook leaves
within milliseconds of the event; a slower poll picks up retries and API redeliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from prometheus_client import Counter
from sqlalchemy import Row as SqlRow
from standardwebhooks.webhooks import Webhook

from services.notify.content import EmailContent, email_content, email_message, webhook_body
from services.notify.fanout import LEASE, FanOut, data_of
from services.notify.fhir_backport import (
    FHIR_JSON,
    FORMAT_FHIR,
    HANDSHAKE,
    SIGNALS,
    notification_body,
)
from services.notify.repository import (
    DeliveryRepository,
    NotificationRepository,
    SubscriptionRepository,
    UnitChannelRepository,
)
from services.notify.subscriptions import resolve_public
from services.notify.webhook_http import RefusedAddress, WebhookClient, WebhookConnectError
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow

log = logging.getLogger("vardkedja.notify.dispatch")

DELIVERIES = Counter(
    "vardkedja_notify_delivery_attempts_total",
    "Webhook and e-mail delivery attempts by channel and outcome",
    ["channel", "outcome"],
)

RECORD_BATCH = 200
RECORD_INTERVAL_S = 0.25
# One receiver's share of the sends at once is 1/RECEIVER_SHARE of ``send_concurrency``
# (VK_NOTIFY__SEND_CONCURRENCY): a slow case system holds at most half of them, the rest go
# on to the others; half keeps a fast one busy while the worker's loop is slow to read the
# answers (on SQLite every statement runs on that loop).
RECEIVER_SHARE = 2

# httpx (the proxy path) looks for sniffio on every request; where it is not installed each
# look is a failed import that searches sys.path (about a millisecond). Record it once.
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Job:
    """One leased delivery and everything needed to send it (read in the claim)."""

    delivery_id: str
    channel: str
    attempt: int
    url: str | None = None
    secrets: tuple[str, ...] = ()
    body: bytes = b""
    mailbox: str | None = None
    subject: str = ""
    text: str = ""
    gone: bool = False
    content_type: str = "application/json"
    # A FHIR subscription's handshake: its outcome sets the subscription's status.
    handshake_of: str | None = None


@dataclass(frozen=True)
class Result:
    job: Job
    started_at: dt.datetime
    duration_ms: int
    # ok | http_error | timeout | connect_error | refused_address | smtp_error | gone | error
    outcome: str
    status_code: int | None = None
    error_type: str | None = None


ResultFn = Callable[..., Result]


def backoff(attempt: int, *, base: float, maximum: float) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, capped, with equal jitter."""
    delay: float = min(maximum, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not secrecy


@functools.lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)  # decodes the secret once, not per webhook


def signatures(secrets: tuple[str, ...], msg_id: str, at: dt.datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,`` signature per valid secret."""
    return " ".join(_signer(s).sign(msg_id, at, body.decode()) for s in secrets)


class Dispatcher:
    """Sends the webhook and e-mail deliveries of one member's notify service.

    Two ways in: :meth:`submit` takes the jobs of deliveries the consumer has just committed
    (leased to this dispatcher's ``token`` in that same transaction) and sends them at once,
    without reading them back; :meth:`run_once` records those results and leases and sends
    whatever else is due (retries, redeliveries, deliveries of a crashed worker whose lease
    ran out).
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.cfg = settings.notify
        self.token = new_id()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(settings.notify.send_concurrency)
        self._http: WebhookClient | None = None
        self._done: list[Result] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self.sent = 0

    def wake(self) -> None:
        """Look now (results to record, or deliveries that may be due)."""
        self._wake.set()

    async def close(self) -> None:
        """Finish what is in flight, record it, and close the HTTP client."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.record_done()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> WebhookClient:
        if self._http is None:
            cfg = self.cfg

            async def check_host(host: str) -> list[str]:
                # Checked again at sending time: a host may resolve elsewhere than when
                # stored (before each new connection; a kept one goes where it was checked).
                # The connection goes to these very addresses (pinned: DNS rebinding).
                return await resolve_public(host=host, allow_loopback=cfg.webhook_allow_loopback)

            self._http = WebhookClient(
                timeout_s=cfg.webhook_timeout_s,
                per_receiver=max(1, cfg.send_concurrency // RECEIVER_SHARE),
                overall=self._limit,
                check_host=None if cfg.webhook_allow_private else check_host,
            )
        return self._http

    # --- hand-off from the consumer ------------------------------------------------------

    def jobs_for(self, fanout: FanOut) -> list[Job]:
        """The jobs of the pending deliveries in ``fanout`` (rendered now, in the handler)."""
        now = utcnow()
        by_id = {n["id"]: n for n in fanout.notifications}
        return [
            self._job(
                d,
                by_id.get(d["notification_id"]),
                fanout.subscriptions.get(d["target"]),
                fanout.units,
                now,
            )
            for d in fanout.deliveries
            if d["status"] == "pending"
        ]

    def submit(self, jobs: list[Job]) -> None:
        """Send ``jobs`` now (called once their transaction has committed)."""
        loop = asyncio.get_running_loop()
        for job in jobs:
            task = loop.create_task(self._send_and_keep(job))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send_and_keep(self, job: Job) -> None:
        # Send first, then look up the list: record_done swaps it while sends are in flight.
        result = await self._send(job)
        self._done.append(result)
        if len(self._done) >= RECORD_BATCH:
            self.wake()

    async def record_done(self) -> int:
        """Record the results of submitted jobs in one transaction."""
        if not self._done:
            return 0
        results, self._done = self._done, []
        try:
            await self._record(results)
        except BaseException:
            self._done[:0] = results  # the database is away: keep them for the next round
            raise
        return len(results)

    # --- polling --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Wait for a wake-up (or the poll interval), record results, send what is due."""
        # Results of sent jobs are recorded in batches (a write per batch, not per delivery:
        # on SQLite every write competes with the consumer's); their leases protect them.
        wait = self.cfg.dispatch_poll_interval_s
        if self._done or self._inflight:
            wait = min(wait, RECORD_INTERVAL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)
        self._wake.clear()
        total = await self.record_done()
        while True:
            n = await self.dispatch_batch()
            total += n
            if n == 0:
                return total

    async def dispatch_batch(self, limit: int = 200) -> int:
        """Lease, send and record one batch of due deliveries; how many were attempted."""
        await self.record_done()
        jobs = await self._claim(limit)
        if not jobs:
            return 0
        results = await asyncio.gather(*(self._send(job) for job in jobs))
        await self._record(list(results))
        return len(jobs)

    async def _claim(self, limit: int) -> list[Job]:
        now = utcnow()
        token = new_id()
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            ids = await repo.due_ids(now=now, limit=limit)
            if not ids:
                return []
            claimed = await repo.claim(ids, token=token, lease_until=now + LEASE, now=now)
            by_id = {
                n["id"]: n
                for n in await NotificationRepository(session).rows_by_ids(
                    sorted({d["notification_id"] for d in claimed})
                )
            }
            subs = {
                s.id: s
                for s in await SubscriptionRepository(session).rows_by_ids(
                    sorted({d["target"] for d in claimed if d["channel"] == "webhook"})
                )
            }
            units = await UnitChannelRepository(session).rows_by_ids(
                sorted({n["recipient"] for n in by_id.values() if n["recipient_kind"] == "unit"})
            )
            return [
                self._job(d, by_id.get(d["notification_id"]), subs.get(d["target"]), units, now)
                for d in claimed
            ]

    def _job(
        self,
        d: Mapping[str, Any],
        n: Mapping[str, Any] | None,
        sub: SqlRow[Any] | None,
        units: Mapping[str, SqlRow[Any]],
        now: dt.datetime,
    ) -> Job:
        """The job of delivery row ``d`` of notification row ``n`` (rendered now)."""
        attempt = d["attempts"] + 1
        if n is None and d.get("fhir_type") not in SIGNALS:
            return Job(d["id"], d["channel"], attempt, gone=True)
        if d["channel"] == "webhook":
            if sub is None or not sub.enabled:
                return Job(d["id"], d["channel"], attempt, gone=True)
            keys = [sub.secret]
            if sub.previous_secret and (
                sub.previous_secret_until is None or sub.previous_secret_until > now
            ):
                keys.append(sub.previous_secret)
            if sub.format == FORMAT_FHIR:
                body = notification_body(d, sub, n)
            else:
                assert n is not None
                body = webhook_body(data_of(notification=n, settings=self.cfg))
            fhir = sub.format == FORMAT_FHIR
            return Job(
                d["id"],
                "webhook",
                attempt,
                url=sub.url,
                secrets=tuple(keys),
                body=body,
                content_type=FHIR_JSON if fhir else "application/json",
                handshake_of=sub.id if d.get("fhir_type") == HANDSHAKE else None,
            )
        assert n is not None
        data = data_of(notification=n, settings=self.cfg)
        unit = units.get(n["recipient"])
        content = email_content(data, unit_name=unit.name if unit else None)
        return Job(
            d["id"],
            "email",
            attempt,
            mailbox=d["target"],
            subject=content.subject,
            text=content.text,
        )

    async def _send(self, job: Job) -> Result:
        started = utcnow()
        t0 = time.perf_counter()

        def result(outcome: str, code: int | None = None, error: str | None = None) -> Result:
            ms = int((time.perf_counter() - t0) * 1000)
            return Result(job, started, ms, outcome, code, error)

        if job.gone:
            return result("gone")
        if job.channel == "webhook":
            # The webhook client takes the receiver's share first, then the overall limit.
            return await self._post(job, result)
        async with self._limit:
            try:
                await self._mail(job)
                return result("ok")
            except aiosmtplib.SMTPResponseException as exc:
                return result("smtp_error", exc.code, type(exc).__name__)
            except (aiosmtplib.SMTPException, OSError) as exc:
                return result("smtp_error", None, type(exc).__name__)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever a receiver or a library does, it is a failed attempt, never a
                # stopped dispatcher.
                return result("error", None, type(exc).__name__)

    async def _post(self, job: Job, result: ResultFn) -> Result:
        assert job.url is not None

        def headers() -> dict[str, str]:
            at = utcnow()  # signed when the send may start, not while it waits its turn
            return {
                "content-type": job.content_type,
                "user-agent": "vardkedja-notify/1",
                "webhook-id": job.delivery_id,
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": signatures(job.secrets, job.delivery_id, at, job.body),
            }

        try:
            status = await self._client().post(job.url, job.body, headers)
        except RefusedAddress as exc:
            return result("refused_address", None, type(exc.cause).__name__)
        except TimeoutError as exc:
            return result("timeout", None, type(exc).__name__)
        except WebhookConnectError as exc:
            return result("connect_error", None, str(exc) or type(exc).__name__)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever a receiver does, it is a failed attempt, never a stopped dispatcher.
            return result("error", None, type(exc).__name__)
        if 200 <= status < 300:
            return result("ok", status)
        return result("http_error", status)

    async def _mail(self, job: Job) -> None:
        smtp = self.cfg.smtp
        assert job.mailbox is not None
        assert smtp.host is not None
        message = email_message(
            EmailContent(subject=job.subject, text=job.text),
            sender=smtp.sender,
            to=job.mailbox,
            delivery_id=job.delivery_id,
        )
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            use_tls=smtp.tls == "tls",
            start_tls=smtp.tls == "starttls",
            validate_certs=smtp.validate_certs,
            cert_bundle=smtp.cafile,
            timeout=smtp.timeout_s,
        )

    async def _record(self, results: list[Result]) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            known = await repo.existing_ids(r.job.delivery_id for r in results)
            outcomes: list[dict[str, Any]] = []
            attempts: list[dict[str, Any]] = []
            handshakes: dict[str, list[str]] = {"active": [], "error": []}
            for r in results:
                job = r.job
                if job.delivery_id not in known:
                    continue  # purged meanwhile
                if job.handshake_of is not None:
                    handshakes["active" if r.outcome == "ok" else "error"].append(job.handshake_of)
                DELIVERIES.labels(job.channel, r.outcome).inc()
                row: dict[str, Any] = {
                    "id": job.delivery_id,
                    "attempts": job.attempt,
                    "last_status_code": r.status_code,
                    "last_outcome": r.outcome,
                    "lease_until": None,
                    "lease_token": None,
                    "next_attempt_at": None,
                }
                outcomes.append(row)
                attempts.append(
                    {
                        "delivery_id": job.delivery_id,
                        "attempt": job.attempt,
                        "started_at": r.started_at,
                        "duration_ms": r.duration_ms,
                        "outcome": r.outcome,
                        "status_code": r.status_code,
                        "error_type": r.error_type,
                    }
                )
                if r.outcome == "ok":
                    row.update(status="delivered", delivered_at=now)
                    self.sent += 1
                    continue
                limit = (
                    self.cfg.webhook_max_attempts
                    if job.channel == "webhook"
                    else self.cfg.email_max_attempts
                )
                if r.outcome == "gone" or job.attempt >= limit:
                    row.update(status="dead", dead_at=now)
                else:
                    delay = backoff(
                        job.attempt,
                        base=self.cfg.webhook_backoff_base_s,
                        maximum=self.cfg.webhook_backoff_max_s,
                    )
                    row["next_attempt_at"] = now + dt.timedelta(seconds=delay)
                log.warning(
                    "delivery failed",
                    extra={
                        "resource_id": job.delivery_id,
                        "outcome": r.outcome,
                        "status": r.status_code,
                        "attempt": job.attempt,
                        "reason": row.get("status", "pending"),
                        "error_type": r.error_type,
                    },
                )
            # One executemany per kind of outcome, one for the log: no ORM objects.
            await repo.set_outcomes(outcomes)
            await repo.add_attempt_rows(attempts)
            subs = SubscriptionRepository(session)
            for fhir_status, ids in handshakes.items():
                await subs.set_fhir_status(ids, fhir_status)
