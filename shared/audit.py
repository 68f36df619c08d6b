"""The audit log: one append-only record for every access to personal data.

:func:`record_access` writes in the caller's transaction and flushes at once: if the record
cannot be written the access fails (fail-closed) and its transaction rolls back. A denied
access is audited too, in a transaction of its own, since the request's will roll back.
The table refuses UPDATE and DELETE by trigger (see :func:`shared.infra.append_only_ddl`).
"""

from __future__ import annotations

import enum
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Caller
from shared.db import Database, utcnow
from shared.errors import ServiceUnavailable
from shared.infra import InfraTables
from shared.observability import request_id_var

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

    def __init__(self, service: str, infra: InfraTables) -> None:
        self.service = service
        self.infra = infra

    def _values(
        self,
        caller: Caller,
        action: str,
        person_id: str | None,
        purpose: str | None,
        outcome: Outcome,
        resource_type: str | None,
        resource_id: str | None,
    ) -> dict[str, object]:
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
        try:
            # No SAVEPOINT here: with SQLite (pysqlite/aiosqlite) a SAVEPOINT that opens the
            # transaction is committed by its RELEASE, so the record would outlive a rolled-
            # back access. A plain statement always joins the caller's transaction.
            await session.execute(self.infra.audit.insert().values(**values))
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
    ) -> None:
        """Audit a refused access in its own transaction (the request's rolls back)."""
        values = self._values(
            caller, action, person_id, purpose, Outcome.DENIED, resource_type, resource_id
        )
        try:
            async with db.transaction() as session:
                await session.execute(self.infra.audit.insert().values(**values))
        except Exception as exc:
            log.error("audit write failed", extra={"error_type": type(exc).__name__})
            raise AuditUnavailable("the audit log could not be written") from exc
