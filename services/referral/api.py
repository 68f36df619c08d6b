"""What the referral service's HTTP routers share: the scopes and parameters, the unit of
work of a request, the audit record of a read or a step, and how referrals and tasks are
rendered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query

from services.referral import attachments, children, discharge_receiving, handover
from services.referral.access import (
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
    require_unit,
)
from services.referral.codes import Actor, Overdue, Status, allowed_from
from services.referral.models import (
    Attachment,
    Incoming,
    ReceivedAttachment,
    ReceivedDischarge,
    Recipient,
    Referral,
)
from services.referral.schemas import (
    BasisOut,
    DocumentOut,
    IncomingOut,
    RecipientOut,
    ReferralOut,
)
from services.referral.worklists import Sent, is_overdue, today
from shared.data.work import Work
from shared.domain.content import ReferralContent
from shared.domain.kinds import spec
from shared.identity.auth import Caller, require_scopes
from shared.web.app import Ctx, DbSession
from shared.web.errors import Forbidden, PreconditionRequired
from shared.web.fields import IsoAwareDatetime

Writer = Annotated[Caller, Depends(require_scopes("referral:write"))]
Reader = Annotated[Caller, Depends(require_scopes("referral:read"))]
PersonReader = Annotated[Caller, Depends(require_scopes("referral:person"))]
TaskId = Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="task id")]
Cursor = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=200)]
UpdatedSince = Annotated[
    IsoAwareDatetime | None,
    Query(
        description="only what changed after this instant (with its UTC offset): polling "
        "for changes without a webhook — keep the newest `updated_at` you saw and ask again",
        examples=["2026-12-07T10:00:00+01:00"],
    ),
]
OverdueFilter = Annotated[
    Overdue | None,
    Query(
        description="only tasks past a deadline: `acknowledge` (not acknowledged by "
        "`acknowledge_by`; a kind acknowledged within hours, an orosanmälan, once its "
        "`acknowledge_due_at` has passed), `answer` (acknowledged, and not accepted or declined by "
        "`answer_by`), `information` (the sending unit's own: asked for more information and "
        "not answered by `information_by`; never a task in an inbox) or `any` (any of them; "
        "a task waiting for information is past no other); the day is today in Sweden",
        examples=["answer"],
        openapi_examples={
            "answer": {"summary": "acknowledged, not answered in time", "value": "answer"},
            "acknowledge": {"summary": "not acknowledged in time", "value": "acknowledge"},
            "information": {
                "summary": "a question to your unit not answered in time",
                "value": "information",
            },
            "any": {"summary": "past either deadline", "value": "any"},
        },
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="required: the `ETag` of the version you read (412 if it has changed "
        "since, 428 if missing)",
    ),
]

STEP_PROBLEMS = (
    Forbidden,
    ReferralNotFound,
    TransitionNotAllowed,
    StaleVersion,
    PreconditionRequired,
)
"""What a step on a task (If-Match required) may answer instead of its result."""


def work_of(ctx: Ctx, session: DbSession, caller: Caller, *, needs_unit: bool = True) -> Work:
    """The request's unit of work on behalf of ``caller`` (``needs_unit``: a caller whose
    token names its unit, else 403 ``no-unit`` before anything is read)."""
    if needs_unit:
        require_unit(caller)
    return Work(session, ctx.outbox, ctx.settings, caller)


async def audit(
    ctx: Ctx,
    work: Work,
    action: str,
    row: Referral | Incoming,
    rid: str,
    *,
    resource_type: str = "referral",
) -> None:
    """An audit record of the caller's ``action`` on a referral or task ``rid`` (or on
    another ``resource_type`` of it: one of its documents)."""
    assert work.caller is not None
    await ctx.auditor.record_access(
        work.session,
        work.caller,
        action=action,
        person_id=row.personnummer,
        purpose=row.kind,
        resource_type=resource_type,
        resource_id=rid,
    )


def _person(row: Referral | Incoming) -> dict[str, object]:
    return {"personnummer": row.personnummer, "protected_identity": row.protected_identity}


def _basis(basis: dict[str, object]) -> BasisOut:
    return BasisOut.model_validate({k: basis.get(k) for k in ("kind", "consent_id", "legal_basis")})


def recipient_out(
    work: Work, r: Recipient, referral: Referral, names: dict[str, str]
) -> RecipientOut:
    due_at = spec(referral.kind).acknowledge_due_at(referral.urgency, r.created_at)
    return RecipientOut(
        task_id=r.id,
        orgnr=r.orgnr,
        unit_id=r.unit_id,
        unit_name=names.get(r.unit_id),
        status=Status(r.status),
        basis=_basis(r.basis),
        acknowledge_by=r.acknowledge_by,
        acknowledge_due_at=due_at,
        answer_by=r.answer_by,
        overdue=is_overdue(r, today(work), acknowledge_due_at=due_at, now=work.now),
        routed=r.routed,
        route_reason=r.route_reason,
        reason=r.reason,
        outcome=r.outcome,
        case_reference=r.case_reference,
        proposed_at=r.proposed_at,
        forwarded_to=r.forwarded_to,
        result=r.result,
        komplettering=r.komplettering or [],
        information_by=r.information_by,
        updated_at=r.updated_at,
        version=r.version,
    )


def document_out(row: Attachment | ReceivedAttachment, href: str) -> DocumentOut:
    """A document as a referral's or task's view lists it (no bytes)."""
    if isinstance(row, ReceivedAttachment):
        rid, at = row.attachment_id, row.received_at
    else:
        rid, at = row.id, row.created_at
    return DocumentOut(
        id=rid,
        title=row.title,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        received_at=at,
        href=f"{href}/attachments/{rid}",
    )


async def sent_documents(work: Work, referral: Referral) -> list[DocumentOut]:
    """The documents of a referral the caller's unit sent."""
    href = f"/v1/referrals/{referral.id}"
    return [document_out(d, href) for d in await attachments.of_referral(work, referral)]


async def task_documents(work: Work, incoming: Incoming) -> list[DocumentOut]:
    """The documents of a task in the caller's unit's inbox."""
    href = f"/v1/incoming/{incoming.id}"
    return [document_out(d, href) for d in await attachments.of_task(work, incoming)]


async def sent_views(work: Work, sents: list[Sent]) -> dict[str, handover.Handover]:
    """What :func:`referral_out` shows of the referrals ``sents`` beyond their rows: the SIP
    linked to an HVB notification or discharge planning, and a recorded discharge."""
    return await handover.handovers(work, [s.referral for s in sents])


def referral_out(
    work: Work,
    sent: Sent,
    names: dict[str, str],
    documents: list[DocumentOut] | None = None,
    *,
    views: dict[str, handover.Handover],
) -> ReferralOut:
    """A referral as its sender sees it (``views``: from :func:`sent_views`)."""
    ref, recipients = sent.referral, sent.recipients
    view = views.get(ref.id)
    return ReferralOut(
        id=ref.id,
        sender_unit_id=ref.sender_unit_id,
        person=_person(ref),
        **ReferralContent.of(ref).columns(),
        recipients=[recipient_out(work, r, ref, names) for r in recipients],
        created_at=ref.created_at,
        discharge=handover.discharge_status(work, ref, recipients, view),
        hvb=handover.hvb_status(work, ref, view),
        linked_sip=handover.linked_sip_out(view),
        children_prompts=children.prompts(ref.kind, ref.children_in_household),
        documents=documents,
    )


def incoming_out(
    work: Work,
    row: Incoming,
    suggested: dict[str, list[dict[str, Any]]] | None = None,
    documents: list[DocumentOut] | None = None,
    *,
    discharges: dict[str, ReceivedDischarge] | None = None,
) -> IncomingOut:
    """A task in a unit's inbox, as it stands (``suggested``: the units the sender of a
    vårdkedjeremiss suggests, by task id, from :func:`.meetings.suggestions`; ``documents``:
    its attached documents, in a view of the one task; ``discharges``: the discharges told
    of discharge plannings, by task id, from :func:`.discharge_receiving.received`)."""
    current = Status(row.status)
    due_at = spec(row.kind).acknowledge_due_at(row.urgency, row.received_at)
    return IncomingOut(
        task_id=row.id,
        referral_id=row.referral_id,
        sender_orgnr=row.sender_orgnr,
        sender_unit_id=row.sender_unit_id,
        unit_id=row.unit_id,
        status=current,
        allowed_transitions=allowed_from(
            current, Actor.HOLDER, invitation=bool(row.details.get("invitation"))
        ),
        person=_person(row),
        **ReferralContent.of(row).columns(),
        basis=_basis(row.basis),
        acknowledge_by=row.acknowledge_by,
        acknowledge_due_at=due_at,
        answer_by=row.answer_by,
        overdue=is_overdue(row, today(work), acknowledge_due_at=due_at, now=work.now),
        received_at=row.received_at,
        updated_at=row.updated_at,
        reason=row.reason,
        outcome=row.outcome,
        case_reference=row.case_reference,
        result=row.result,
        komplettering=row.komplettering or [],
        version=row.version,
        suggested_participants=(suggested or {}).get(row.id),
        children_prompts=children.prompts(row.kind, row.children_in_household),
        discharge=discharge_receiving.task_discharge_out(row, (discharges or {}).get(row.id)),
        documents=documents,
    )
