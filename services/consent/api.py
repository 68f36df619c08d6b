"""What the consent service's routers share: the scopes, the path and header parameters,
a request's unit of work, and the audit of every access to a person's record.

Every response that shows a person's data, and every decision, writes an audit record in
the request's transaction (fail-closed). A personnummer only ever travels in a body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Response, status
from pydantic import BaseModel

from services.consent.models import Block, Consent, Refusal
from services.consent.schemas import BlockCreate, ConsentCreate, RefusalCreate
from shared.data.work import Work
from shared.identity.auth import Caller, require_scopes
from shared.service import ServiceContext
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader

PERSON_SCOPE = "consent:person"
Reader = Annotated[Caller, Depends(require_scopes("consent:read"))]
Writer = Annotated[Caller, Depends(require_scopes("consent:write"))]
PersonStaff = Annotated[Caller, Depends(require_scopes(PERSON_SCOPE))]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="the consent's `ETag`; when given, the change is refused (412) if the "
        "consent has changed since",
    ),
]
RecordId = Annotated[
    str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="the record's id")
]


@dataclass(frozen=True)
class Step:
    """One request: its unit of work (the caller's), and the service it runs in."""

    work: Work
    caller: Caller
    ctx: ServiceContext

    async def accessed(
        self,
        action: str,
        person_id: str | None,
        resource: tuple[str, str] | None = None,
    ) -> None:
        """Audits an access (``resource``: its type and id), in the request's transaction."""
        resource_type, resource_id = resource or (None, None)
        await self.ctx.auditor.record_access(
            self.work.session,
            self.caller,
            action=action,
            person_id=person_id,
            resource_type=resource_type,
            resource_id=resource_id,
        )

    async def audited(self, action: str, row: Consent | Refusal | Block) -> None:
        """Audits an access to one record (``action`` is ``<record type>.<what>``)."""
        await self.accessed(action, row.personnummer, (action.split(".")[0], row.id))


def _step(caller: Caller, session: DbSession, ctx: Ctx) -> Step:
    return Step(Work(session, ctx.outbox, ctx.settings, caller), caller, ctx)


async def _reading(caller: Reader, session: DbSession, ctx: Ctx) -> Step:
    return _step(caller, session, ctx)


async def _writing(caller: Writer, session: DbSession, ctx: Ctx) -> Step:
    return _step(caller, session, ctx)


async def _searching(caller: PersonStaff, session: DbSession, ctx: Ctx) -> Step:
    return _step(caller, session, ctx)


ReadStep = Annotated[Step, Depends(_reading)]
"""A request with scope ``consent:read``."""
WriteStep = Annotated[Step, Depends(_writing)]
"""A request with scope ``consent:write``."""
PersonStep = Annotated[Step, Depends(_searching)]
"""A request with scope ``consent:person``."""

NewRecord = ConsentCreate | RefusalCreate | BlockCreate


@dataclass(frozen=True)
class Creation:
    """A request that records something new about a person, once per Idempotency-Key."""

    step: Step
    response: Response
    idempotency_key: str | None

    async def once(
        self,
        route: str,
        action: str,
        body: NewRecord,
        make: Callable[[Work], Awaitable[tuple[BaseModel, str]]],
    ) -> Any:
        """Creates once per Idempotency-Key and audits the creation (or its replay) as
        ``action`` (``<record type>.record``). ``make`` returns the body and the new
        record's id; its Location is the route's path and the id."""
        step, personnummer = self.step, body.person.personnummer
        idem = Idempotency(step.ctx, step.work.session, step.caller)
        fingerprint = Idempotency.fingerprint(route, body)
        replay = await idem.replay(self.idempotency_key, fingerprint)
        if replay is not None:
            await step.accessed(f"{action}.replay", personnummer)
            return replay
        out, record_id = await make(step.work)
        await step.accessed(action, personnummer, (action.split(".")[0], record_id))
        headers = {"Location": f"{route.split(' ', 1)[1]}/{record_id}"}
        await idem.remember(
            self.idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers
        )
        self.response.headers.update(headers)
        return out


async def _creation(
    step: WriteStep, response: Response, idempotency_key: IdempotencyKeyHeader = None
) -> Creation:
    return Creation(step, response, idempotency_key)


Creating = Annotated[Creation, Depends(_creation)]
"""A creating POST with scope ``consent:write`` and an optional ``Idempotency-Key``."""
