"""HTTP API of refusals and blocks: record, read, revoke a refusal; record, read, lift
for a while and remove a block."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from services.consent import refusals
from services.consent.api import Creating, ReadStep, RecordId, Step, WriteStep
from services.consent.models import Block
from services.consent.refusals import (
    BlockNotFound,
    ConsentInForce,
    RecordNotActive,
    RefusalNotFound,
)
from services.consent.schemas import (
    BlockCreate,
    BlockOut,
    LiftCreate,
    RefusalCreate,
    RefusalOut,
    RevokeRequest,
)
from services.consent.views import block_out, refusal_out
from shared.data.work import Work
from shared.identity.audit import AuditUnavailable
from shared.web.app import IdempotencyInProgress
from shared.web.errors import Forbidden, problem_responses

refusals_router = APIRouter(prefix="/v1", tags=["refusals and blocks"])


@refusals_router.post(
    "/refusals",
    status_code=status.HTTP_201_CREATED,
    response_model=RefusalOut,
    summary="Record a refusal",
    description=(
        "The person said no to sharing with these parties (for the listed purposes, or every "
        "purpose when none are listed). Decisions then answer `refused` and the referral "
        "service must not send. While an active consent of yours covers the same parties "
        "and purposes, this answers 409 (`consent-in-force`): withdraw the consent first, so "
        "its parties are told. Later, a consent covering the refusal answers 409 until the "
        "refusal is revoked. Refusing a SIP is not refusing the interventions: "
        "name the purposes. Send an `Idempotency-Key` to retry safely. Scope `consent:write`."
    ),
    responses=problem_responses(Forbidden, ConsentInForce, IdempotencyInProgress, AuditUnavailable),
)
async def record_refusal(body: RefusalCreate, creating: Creating) -> Any:
    async def make(work: Work) -> tuple[BaseModel, str]:
        refusal = await refusals.record_refusal(work, body)
        return refusal_out(refusal), refusal.id

    return await creating.once("POST /v1/refusals", "refusal.record", body, make)


@refusals_router.get(
    "/refusals/{refusal_id}",
    response_model=RefusalOut,
    summary="Read a refusal",
    description="A refusal your member recorded. Audited. Scope `consent:read`.",
    responses=problem_responses(Forbidden, RefusalNotFound, AuditUnavailable),
)
async def get_refusal(refusal_id: RecordId, step: ReadStep) -> RefusalOut:
    refusal = await refusals.get_own_refusal(step.work, refusal_id)
    await step.audited("refusal.read", refusal)
    return refusal_out(refusal)


@refusals_router.post(
    "/refusals/{refusal_id}/revoke",
    response_model=RefusalOut,
    summary="Revoke a refusal",
    description="The person changed their mind: the refusal no longer applies (a consent can "
    "then be recorded). Already revoked: 409. Scope `consent:write`.",
    responses=problem_responses(Forbidden, RefusalNotFound, RecordNotActive, AuditUnavailable),
)
async def revoke_refusal(refusal_id: RecordId, body: RevokeRequest, step: WriteStep) -> RefusalOut:
    refusal = await refusals.get_own_refusal(step.work, refusal_id)
    refusal = await refusals.revoke_refusal(step.work, refusal, body.reason)
    await step.audited("refusal.revoke", refusal)
    return refusal_out(refusal)


@refusals_router.post(
    "/blocks",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockOut,
    summary="Block a member or unit (spärr)",
    description=(
        "The person blocks a member, or one unit of it, from receiving anything about them, "
        "even where a consent exists. Reporting duties (LVM, orosanmälan) and emergencies "
        "still apply (`VK_CONSENT__BLOCK_OVERRIDDEN_BY`). Send an `Idempotency-Key` to retry "
        "safely. Scope `consent:write`."
    ),
    responses=problem_responses(Forbidden, IdempotencyInProgress, AuditUnavailable),
)
async def record_block(body: BlockCreate, creating: Creating) -> Any:
    async def make(work: Work) -> tuple[BaseModel, str]:
        block = await refusals.record_block(work, body)
        return block_out(block, []), block.id

    return await creating.once("POST /v1/blocks", "block.record", body, make)


async def _block_view(step: Step, block: Block, action: str) -> BlockOut:
    lifts = await refusals.block_lifts(step.work, [block.id])
    await step.audited(action, block)
    return block_out(block, lifts)


@refusals_router.get(
    "/blocks/{block_id}",
    response_model=BlockOut,
    summary="Read a block with its lifts",
    description="A block your member recorded, with every temporary lift. Audited. "
    "Scope `consent:read`.",
    responses=problem_responses(Forbidden, BlockNotFound, AuditUnavailable),
)
async def get_block(block_id: RecordId, step: ReadStep) -> BlockOut:
    block = await refusals.get_own_block(step.work, block_id)
    return await _block_view(step, block, "block.read")


@refusals_router.post(
    "/blocks/{block_id}/lifts",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockOut,
    summary="Lift a block temporarily",
    description="Lifts the block from `starts_at` (default now) until `ends_at`, at most "
    "`VK_CONSENT__BLOCK_LIFT_MAX_DAYS` (7) days, with a reason, as the national block service "
    "does. Decisions inside the window ignore the block. A removed block answers 409. "
    "Scope `consent:write`.",
    responses=problem_responses(Forbidden, BlockNotFound, RecordNotActive, AuditUnavailable),
)
async def lift_block(block_id: RecordId, body: LiftCreate, step: WriteStep) -> BlockOut:
    block = await refusals.get_own_block(step.work, block_id)
    await refusals.lift_block(step.work, block, body)
    return await _block_view(step, block, "block.lift")


@refusals_router.post(
    "/blocks/{block_id}/remove",
    response_model=BlockOut,
    summary="Remove a block",
    description="The person no longer wants the block. Already removed: 409. "
    "Scope `consent:write`.",
    responses=problem_responses(Forbidden, BlockNotFound, RecordNotActive, AuditUnavailable),
)
async def remove_block(block_id: RecordId, step: WriteStep) -> BlockOut:
    block = await refusals.get_own_block(step.work, block_id)
    block = await refusals.remove_block(step.work, block)
    return await _block_view(step, block, "block.remove")
