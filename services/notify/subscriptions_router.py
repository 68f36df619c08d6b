"""HTTP API of webhook subscriptions: create, list, read, change, rotate the secret, delete
(thin: parse, the unit of work, :mod:`subscriptions`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from services.notify import subscriptions
from services.notify.access import caller_of
from services.notify.api import Cursor, Limit, ObjectId, ReadWork, WriteWork
from services.notify.fhir_backport import FORMAT_FHIR, FhirChannel
from services.notify.models import WebhookSubscription
from services.notify.schemas import (
    SecretRotation,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)
from services.notify.subscriptions import SubscriptionNotFound, VersionMismatch
from shared.web.app import Ctx, Idempotency, IdempotencyKeyHeader
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import etag, if_match_version
from shared.web.pagination import decode_cursor, next_cursor

subscription_router = APIRouter(prefix="/v1/webhook-subscriptions", tags=["webhooks"])


def _out(sub: WebhookSubscription, response: Response) -> SubscriptionOut:
    """The subscription's view, with its version as the response's ``ETag``."""
    response.headers["ETag"] = etag(sub.version)
    return SubscriptionOut.model_validate(sub, from_attributes=True)


def _with_secret(sub: WebhookSubscription) -> SubscriptionWithSecret:
    return SubscriptionWithSecret.model_validate(sub, from_attributes=True)


@subscription_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionWithSecret,
    summary="Subscribe a case system or EHR to a unit's notifications",
    description="Creates a webhook subscription for a unit (the unit itself or `member_admin`) "
    "or, without `unit_id`, for the whole member (`member_admin`). Deliveries are signed per "
    "Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the "
    "secret returned here (once). Refused (422, nothing stored): a URL that is not https in "
    "production (`https_required`) or reaches a private address unless allowed "
    "(`private_address`), unknown `event_types` (`unknown_event_type`), a secret that is "
    "not `whsec_` + base64 of 24-64 bytes (`secret_too_short`, `secret_format`). Send an "
    "`Idempotency-Key` to retry safely. Scope `notify:write`. With `format` "
    "`fhir-backport-id-only` (a unit's, with `fhir_base_url`; `event_types` "
    "`referral.status_changed` only: `fhir_event_type`) the bodies are FHIR Subscriptions R5 "
    "Backport notification Bundles (`application/fhir+json`, id-only); a handshake is sent "
    "at once (`fhir_status` `requested`, then `active` on a 2xx, `error` otherwise) and a "
    "heartbeat after `heartbeat_period_s` without one.",
    responses=problem_responses(Forbidden),
)
async def create_subscription(
    body: SubscriptionCreate,
    work: WriteWork,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SubscriptionWithSecret | Response:
    idem = Idempotency(ctx, work.session, caller_of(work))
    fingerprint = Idempotency.fingerprint("POST /v1/webhook-subscriptions", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    fhir = None
    if body.format == FORMAT_FHIR:
        if body.fhir_base_url is None:
            raise InvalidInput.field("fhir_base_url", "required", "fhir-backport-id-only needs it")
        fhir = FhirChannel(body.fhir_base_url, body.heartbeat_period_s)
    sub = await subscriptions.create_subscription(
        work,
        unit_id=body.unit_id,
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        fhir=fhir,
    )
    out = _with_secret(sub)
    headers = {"ETag": etag(sub.version), "Location": f"/v1/webhook-subscriptions/{sub.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@subscription_router.get(
    "",
    response_model=SubscriptionPage,
    summary="List webhook subscriptions",
    description="The subscriptions of `unit_id` (default: the token's unit); `member_admin` "
    "without `unit_id` sees all of the member's. Secrets are never listed. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def list_subscriptions(
    work: ReadWork,
    unit_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> SubscriptionPage:
    rows = await subscriptions.list_subscriptions(
        work, unit_id=unit_id, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return SubscriptionPage(
        items=[SubscriptionOut.model_validate(s, from_attributes=True) for s in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda s: s.id),
    )


@subscription_router.get(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Read a webhook subscription",
    description="With its `ETag` for a later update. Scope `notify:read`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def get_subscription(
    subscription_id: ObjectId, work: ReadWork, response: Response
) -> SubscriptionOut:
    return _out(await subscriptions.get_subscription(work, subscription_id), response)


@subscription_router.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a webhook subscription",
    description="Changes the URL, the kinds or `enabled` (same checks as on creation). With "
    "`If-Match` the change is refused (412) if the subscription changed since. "
    "Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound, VersionMismatch),
)
async def update_subscription(
    subscription_id: ObjectId,
    body: SubscriptionUpdate,
    work: WriteWork,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=40)] = None,
) -> SubscriptionOut:
    sub = await subscriptions.update_subscription(
        work,
        subscription_id,
        expected_version=if_match_version(if_match),
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
    )
    return _out(sub, response)


@subscription_router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SubscriptionWithSecret,
    summary="Rotate a subscription's signing secret",
    description="Sets a new secret (given, or generated) and returns it once. For "
    "`VK_NOTIFY__SECRET_ROTATION_GRACE_S` (default a day) every delivery carries two "
    "signatures, with the new and the previous secret, so the receiver can switch without "
    "losing a delivery. Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def rotate_secret(
    subscription_id: ObjectId, body: SecretRotation, work: WriteWork
) -> SubscriptionWithSecret:
    sub = await subscriptions.rotate_secret(work, subscription_id, secret=body.secret)
    return _with_secret(sub)


@subscription_router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook subscription",
    description="Deliveries still pending for it end as dead (`gone`). Scope `notify:write`.",
    responses=problem_responses(Forbidden, SubscriptionNotFound),
)
async def delete_subscription(subscription_id: ObjectId, work: WriteWork) -> Response:
    await subscriptions.delete_subscription(work, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
