"""Sharing decisions answered in batches: one unit of work for the decisions that wait.

A decision reads the person's terms and writes its audit record, and is answered only once
that record is committed (fail-closed, ADR 0010). Decisions that arrive while a batch is
being decided and written wait for the next batch, which reads the terms of all of their
people in one statement, decides each, keeps each stated legal basis, writes every audit
record in one statement and commits once. A lone decision is a batch of one and starts at
once; under load a batch shares its round trips (on SQLite each is a thread hop) and its
commit among its decisions, and only one connection of the process writes decisions, so
concurrent requests no longer wait on each other's SQLite write lock.

The batch owns the commit of the decisions it answers (for this one operation, in place of
the request's ``DbSession``, ADR 0004). Nothing is cached: each batch reads what is
committed when it starts, so a withdrawal (or a copy withdrawn by the worker, in another
process) committed before then is always seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.consent import decisions
from services.consent.decisions import Asked, Decided
from shared.identity.audit import AuditUnavailable, Outcome
from shared.identity.auth import Caller
from shared.service import ServiceContext
from shared.web.errors import ServiceUnavailable
from shared.web.observability import request_id_var

log = logging.getLogger("vardkedja.consent.decisions")

MAX_BATCH = 64
"""The most decisions one unit of work answers (the rest wait for the next); the read's
``IN`` list has as many keys."""
NOT_AUDITED = "the audit log could not be written"
NOT_READ = "the terms could not be read"


DecisionUnavailable = ServiceUnavailable.kind(
    "decision-unavailable", "The decision could not be made now; try again"
)


@dataclass
class _Waiting:
    asked: Asked
    caller: Caller
    request_id: str | None
    answer: asyncio.Future[Decided]


class DecisionBatcher:
    """Decides and audits the decisions of one API process, a batch at a time (requests
    are parsed and checked meanwhile: under load the process is busy either way)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._waiting: list[_Waiting] = []
        self._running: asyncio.Task[None] | None = None
        # One Core connection, kept while batches follow each other (a session and a pool
        # checkout per batch cost more than its statements), given back when none waits.
        self._connection: AsyncConnection | None = None

    async def decide(self, asked: Asked, caller: Caller) -> Decided:
        """Decides ``asked`` in the next batch; returns once its audit record is committed
        (AuditUnavailable if it could not be, DecisionUnavailable if the terms could not
        be read)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(asked, caller, request_id_var.get(), loop.create_future())
        self._waiting.append(waiting)
        if self._running is None:
            self._running = loop.create_task(self._run())
        return await waiting.answer

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                try:
                    await self._answer(batch)
                finally:  # cancelled (shutdown): nobody waits for ever
                    _fail(batch, lambda: DecisionUnavailable("the service is stopping"))
        finally:
            self._running = None
            await self._release()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _answer(self, batch: Sequence[_Waiting]) -> None:
        ctx = self.ctx
        try:
            if self._connection is None:
                self._connection = await ctx.db.engine.connect()
            connection = self._connection
            try:
                results = await decisions.decide_many(
                    connection=connection,
                    settings=ctx.settings,
                    asked=[(w.asked, w.caller) for w in batch],
                )
                pairs = zip(batch, results, strict=True)
                decided = [(w, r) for w, r in pairs if isinstance(r, Decided)]
                await ctx.auditor.record_accesses(
                    connection, [self._record(w, r) for w, r in decided]
                )
                try:
                    await connection.commit()
                except Exception as exc:
                    raise AuditUnavailable(NOT_AUDITED) from exc
            except BaseException:
                await self._release()  # rolled back as it goes back to the pool
                raise
        except AuditUnavailable as exc:
            audit_error = exc
            _fail(batch, lambda: _caused(AuditUnavailable(NOT_AUDITED), audit_error))
            return
        except Exception as exc:
            log.error("decisions failed", extra={"error_type": type(exc).__name__})
            read_error = exc
            _fail(batch, lambda: _caused(DecisionUnavailable(NOT_READ), read_error))
            return
        for w, r in zip(batch, results, strict=True):
            if w.answer.done():
                continue
            if isinstance(r, Decided):
                w.answer.set_result(r)
            else:
                w.answer.set_exception(r)

    def _record(self, waiting: _Waiting, decided: Decided) -> dict[str, object]:
        use = decided.legal_basis_use_id
        return self.ctx.auditor.access_record(
            waiting.caller,
            action="consent.decision",
            person_id=decided.asked.personnummer,
            purpose=decided.asked.question.purpose,
            outcome=Outcome.ALLOWED if decided.decision.allowed else Outcome.DENIED,
            resource_type="legal_basis_use" if use is not None else "consent",
            resource_id=use if use is not None else decided.decision.consent_id,
            request_id=waiting.request_id,
        )


def _caused(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


def _fail(batch: Sequence[_Waiting], error: Callable[[], Exception]) -> None:
    """Fails every decision of ``batch`` not yet answered (each with its own exception)."""
    for w in batch:
        if not w.answer.done():
            w.answer.set_exception(error())


def batcher_of(ctx: ServiceContext) -> DecisionBatcher:
    """The process's decision batcher for ``ctx`` (made on first use)."""
    batcher = ctx.extras.get("consent.decisions")
    if not isinstance(batcher, DecisionBatcher):
        batcher = ctx.extras["consent.decisions"] = DecisionBatcher(ctx)
    return batcher
