"""The audit log: one append-only record for every access to personal data.

:func:`record_access` writes in the caller's transaction and flushes at once: if the record
cannot be written the access fails (fail-closed) and its transaction rolls back. A denied
access is audited too, in a transaction of its own, since the request's will roll back.
The table refuses UPDATE and DELETE by trigger (see :func:`shared.data.infra.append_only_ddl`).
Every action code is registered in :mod:`shared.identity.audit_actions` (with its Swedish
wording, ``docs/audit-actions.md``); the auditor refuses another at the call.

Given an outbox, the auditor of every service but consent also writes the record as an
``se.vardkedja.audit.recorded.v1`` event to its member's internal topic, in the same
transaction, so the consent service can build the person's audit extract (ADR 0011).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import itertools
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.data.db import Database, utcnow
from shared.data.infra import InfraTables
from shared.identity.audit_actions import check_action
from shared.identity.auth import Caller
from shared.messaging.events import topics
from shared.messaging.events.payloads import AUDIT_RECORDED_V1, AuditRecordedV1
from shared.web.errors import PROBLEM_JSON, ServiceUnavailable
from shared.web.observability import request_id_var

if TYPE_CHECKING:
    from shared.messaging.outbox import Outbox

log = logging.getLogger("vardkedja.audit")


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    NOT_FOUND = "not_found"


class AuditUnavailable(ServiceUnavailable):
    slug = "audit-unavailable"
    title = "The access could not be audited, so it was refused"


class Auditor:
    """Writes audit records for one service."""

    def __init__(
        self,
        service: str,
        infra: InfraTables,
        *,
        outbox: Outbox | None = None,
        orgnr: str | None = None,
    ) -> None:
        self.service = service
        self.infra = infra
        # The consent service reads its own table for the extract; the others send copies.
        self.outbox = outbox if service != "consent" and orgnr else None
        self.orgnr = orgnr

    async def _write(self, session: AsyncSession, values: dict[str, Any]) -> None:
        """The record, and (with an outbox, for a person) its copy for the audit extract."""
        await session.execute(self.infra.audit.insert().values(**values))
        if self.outbox is None or self.orgnr is None or values["person_id"] is None:
            return
        fields = {k: v for k, v in values.items() if k != "request_id"}
        await self.outbox.publish(
            session,
            topics.internal(self.orgnr),
            AUDIT_RECORDED_V1,
            AuditRecordedV1.model_validate(fields),
            subject=values["resource_id"],
            key=self._audit_key(values["person_id"]),
        )

    def _audit_key(self, person_id: str) -> str:
        """The Kafka key of a person's audit copies: pseudonymous (ADR 0020), the member's
        person key (an HMAC under its own secret), so every copy about one person keeps its
        order in one partition and nobody without the secret can tell whose it is."""
        from shared.identity.identifiers import IdentifierError
        from shared.identity.person import member_secret, person_key

        assert self.outbox is not None
        secret = member_secret(self.outbox.settings)
        try:
            return "person:" + person_key(secret, person_id)
        except IdentifierError:
            digest = hmac.new(secret, person_id.encode(), hashlib.sha256).hexdigest()
            return "person:" + digest

    def _values(
        self,
        caller: Caller,
        action: str,
        person_id: str | None,
        purpose: str | None,
        outcome: Outcome,
        resource_type: str | None,
        resource_id: str | None,
        *,
        registered: bool = True,
    ) -> dict[str, object]:
        """The record's values; an ``action`` not in the registry is a programming error
        (ValueError) unless it is a refused request's operation (``registered=False``)."""
        if registered:
            check_action(action)
        return {
            "occurred_at": utcnow(),
            "service": self.service,
            "actor_sub": caller.sub,
            "actor_org": caller.org,
            "actor_unit": caller.unit,
            "action": action,
            "person_id": person_id,
            "purpose": purpose,
            "outcome": str(outcome),
            "resource_type": resource_type,
            "resource_id": resource_id,
            "request_id": request_id_var.get(),
        }

    async def record_access(
        self,
        session: AsyncSession,
        caller: Caller,
        *,
        action: str,
        person_id: str | None,
        purpose: str | None = None,
        outcome: Outcome = Outcome.ALLOWED,
        resource_type: str | None = None,
        resource_id: str | None = None,
    ) -> None:
        """Audit an access inside ``session``'s transaction; raise AuditUnavailable if not
        written (the caller's transaction then rolls back and the access fails)."""
        values = self._values(
            caller, action, person_id, purpose, outcome, resource_type, resource_id
        )
        await self.record_accesses(session, [values])

    def access_record(
        self,
        caller: Caller,
        *,
        action: str,
        person_id: str | None,
        purpose: str | None = None,
        outcome: Outcome = Outcome.ALLOWED,
        resource_type: str | None = None,
        resource_id: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, object]:
        """The record :meth:`record_access` would write, for :meth:`record_accesses`
        (``request_id``: of the request the access belongs to, if not the current one)."""
        values = self._values(
            caller, action, person_id, purpose, outcome, resource_type, resource_id
        )
        if request_id is not None:
            values["request_id"] = request_id
        return values

    async def record_accesses(
        self, session: AsyncSession | AsyncConnection, records: Sequence[dict[str, Any]]
    ) -> None:
        """Audit several accesses (:meth:`access_record`) in one statement inside
        ``session``'s transaction; fail-closed like :meth:`record_access`."""
        if not records:
            return
        try:
            # No SAVEPOINT here: with SQLite (pysqlite/aiosqlite) a SAVEPOINT that opens the
            # transaction is committed by its RELEASE, so the record would outlive a rolled-
            # back access. A plain statement always joins the caller's transaction.
            if self.outbox is None:
                await session.execute(self.infra.audit.insert(), list(records))
            else:
                assert isinstance(session, AsyncSession), "the outbox writes through a session"
                for values in records:
                    await self._write(session, values)
        except Exception as exc:
            log.error("audit write failed", extra={"error_type": type(exc).__name__})
            raise AuditUnavailable("the audit log could not be written") from exc

    async def record_denied(
        self,
        db: Database,
        caller: Caller,
        *,
        action: str,
        person_id: str | None,
        purpose: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: Outcome = Outcome.DENIED,
    ) -> None:
        """Audit a refused access in its own transaction (the request's rolls back)."""
        values = self._values(
            caller, action, person_id, purpose, outcome, resource_type, resource_id
        )
        await self._write_alone(db, values)

    async def record_refused_request(
        self,
        db: Database,
        caller: Caller,
        *,
        operation: str,
        resource_type: str,
        resource_id: str | None,
        outcome: Outcome,
    ) -> None:
        """Audit a refused request (:class:`RefusalAuditMiddleware`) in its own transaction,
        under its operation's name rather than a registered action; it names no person."""
        values = self._values(
            caller,
            operation[:100],
            None,
            None,
            outcome,
            resource_type,
            resource_id,
            registered=False,
        )
        await self._write_alone(db, values)

    async def _write_alone(self, db: Database, values: dict[str, Any]) -> None:
        try:
            async with db.transaction() as session:
                await self._write(session, values)
        except Exception as exc:
            log.error("audit write failed", extra={"error_type": type(exc).__name__})
            raise AuditUnavailable("the audit log could not be written") from exc


REFUSALS = {403: Outcome.DENIED, 404: Outcome.NOT_FOUND}


class RefusalAuditMiddleware:
    """Audits every request of an authenticated caller that is refused (403, outcome
    ``denied``) or asks for what it cannot see (404, ``not_found``): who, which unit, which
    operation and ids — so that a unit probing another unit's referrals, or a token without
    the role trying, leaves a trace (ADR 0010).

    The record is written in a transaction of its own before the answer goes out. Like every
    audit write it is fail-closed: if it cannot be written the answer becomes a 503
    ``audit-unavailable`` instead. Requests refused before the caller is known (no or an
    invalid token, another member's token) carry no identity to record; they are counted in
    the request metrics. The person is not looked up: ``person_id`` stays empty, and the
    resource's ids are those of the path (personal data never is in a path).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def audited_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the original answer's body, swallowed after a 503
            if message["type"] == "http.response.start" and message["status"] in REFUSALS:
                caller = scope.get("state", {}).get("caller")
                if caller is not None and not await _audit_refusal(
                    scope, caller, REFUSALS[message["status"]]
                ):
                    replaced = True
                    await _send_problem(
                        scope, send, AuditUnavailable("the refusal could not be audited")
                    )
                    return
            await send(message)

        await self.app(scope, receive, audited_send)


async def _audit_refusal(scope: Scope, caller: Caller, outcome: Outcome) -> bool:
    """Writes the refusal's record; False when it could not be written."""
    ctx = scope["app"].state.ctx
    route = scope.get("route")
    resource_type, resource_id = refused_resource(
        getattr(route, "path", None) or "unmatched", scope.get("path_params") or {}
    )
    try:
        await ctx.auditor.record_refused_request(
            ctx.db,
            caller,
            operation=getattr(route, "name", None) or "unmatched",
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
        )
    except AuditUnavailable:
        return False
    return True


def refused_resource(path: str, params: dict[str, Any]) -> tuple[str, str | None]:
    """(resource type, id) of a refused request: the innermost id of its path and the
    segment before it (``/v1/plans/{plan_id}/actions/{action_id}/end`` → ``actions`` and
    the action's id), or the path template when it has none."""
    parts = path.strip("/").split("/")
    found: tuple[str, str | None] = (path[:50], None)
    for before, part in itertools.pairwise(parts):
        if part.startswith("{") and part.endswith("}") and part[1:-1] in params:
            found = (before[:50], str(params[part[1:-1]])[:64])
    return found


async def _send_problem(scope: Scope, send: Send, error: AuditUnavailable) -> None:
    state = scope.get("state", {})
    problem = error.problem(scope.get("path"), state.get("trace_id"))
    body = json.dumps(problem.model_dump(exclude_none=True)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
