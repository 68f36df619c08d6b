"""Webhook subscriptions: a unit's (or the member's) case systems and EHRs, their signing
secrets, and the address guard that keeps a subscription's URL off private addresses."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import ipaddress
import secrets
from urllib.parse import urlsplit

from services.notify.access import ADMIN_ROLE, caller_of
from services.notify.content import KINDS
from services.notify.fhir_backport import (
    FHIR_KINDS,
    FORMAT_FHIR,
    FORMAT_VARDKEDJA,
    FhirChannel,
    queue_handshake,
)
from services.notify.models import WebhookSubscription
from services.notify.repository import SubscriptionRepository
from shared.config import Settings
from shared.data.db import new_id
from shared.data.work import Work
from shared.identity.auth import Caller
from shared.web.errors import Conflict, Forbidden, InvalidInput, NotFound

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme prefix, not a secret


SubscriptionNotFound = NotFound.kind("subscription-not-found", "No such webhook subscription")


class VersionMismatch(Conflict):
    status = 412
    slug = "precondition-failed"
    title = "The subscription has changed (If-Match does not match)"


# --- secrets ------------------------------------------------------------------------------


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(*, secret: str, min_bytes: int) -> None:
    """Refuse a secret that is not ``whsec_<base64>`` of ``min_bytes``..64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput.field("secret", "secret_format", "must start with whsec_")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput.field(
            "secret", "secret_format", "whsec_ must be followed by base64"
        ) from None
    if len(raw) < min_bytes:
        raise InvalidInput.field(
            "secret", "secret_too_short", f"must decode to at least {min_bytes} bytes"
        )
    if len(raw) > 64:
        raise InvalidInput.field("secret", "secret_too_long", "must decode to at most 64 bytes")


def _new_secret(work: Work, secret: str | None) -> str:
    """The secret given (once checked), or a new one."""
    if secret is None:
        return generate_secret()
    check_secret(secret=secret, min_bytes=work.settings.notify.webhook_secret_min_bytes)
    return secret


# --- the address guard --------------------------------------------------------------------


def _private(address: str, *, loopback_ok: bool = False) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global and not (loopback_ok and ip.is_loopback)


async def resolve_public(*, host: str, allow_loopback: bool = False) -> list[str]:
    """The addresses of ``host``; raises ValueError when one of them is not public (or,
    with ``allow_loopback``, loopback: the demo's receiver)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as exc:
        raise LookupError(host) from exc
    addresses = sorted({str(i[4][0]) for i in infos})
    if any(_private(a, loopback_ok=allow_loopback) for a in addresses):
        raise ValueError("private address")
    return addresses


async def check_webhook_url(*, url: str, settings: Settings) -> None:
    """Refuses a non-https URL in production and private addresses unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput.field("url", "url_format", "must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidInput.field("url", "url_credentials", "must not carry credentials")
    if settings.env == "production" and parts.scheme != "https":
        raise InvalidInput.field("url", "https_required", "must use https in production")
    if settings.notify.webhook_allow_private:
        return
    try:
        await resolve_public(
            host=parts.hostname, allow_loopback=settings.notify.webhook_allow_loopback
        )
    except LookupError:
        raise InvalidInput.field(
            "url", "unresolvable_host", "the host name does not resolve"
        ) from None
    except ValueError:
        raise InvalidInput.field(
            "url",
            "private_address",
            "points at a private, loopback or link-local address "
            "(VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE allows it)",
        ) from None


# --- subscriptions ------------------------------------------------------------------------


def check_event_types(*, event_types: list[str]) -> None:
    """Refuse an unknown notification kind."""
    for i, kind in enumerate(event_types):
        if kind not in KINDS:
            raise InvalidInput.field(
                f"event_types.{i}", "unknown_event_type", "not a notification kind of this API"
            )


def ensure_subscription_scope(*, caller: Caller, unit_id: str | None) -> None:
    """A unit's subscriptions: that unit or the member's admins; member-wide: admins only."""
    if caller.has_role(ADMIN_ROLE):
        return
    if unit_id is not None and caller.unit == unit_id:
        return
    raise Forbidden("subscriptions of another unit, or member-wide, need the member_admin role")


def check_fhir_kinds(*, event_types: list[str]) -> None:
    """Refuse a kind a FHIR subscription is not told of (only a task's status change)."""
    for i, kind in enumerate(event_types):
        if kind not in FHIR_KINDS:
            raise InvalidInput.field(
                f"event_types.{i}",
                "fhir_event_type",
                "a fhir-backport-id-only subscription takes referral.status_changed only",
            )


async def _check_fhir(work: Work, *, unit_id: str | None, fhir: FhirChannel) -> None:
    """A FHIR subscription is a unit's, with an http(s) base URL of the member's facade."""
    if unit_id is None:
        raise InvalidInput.field(
            "unit_id", "unit_required", "a fhir-backport-id-only subscription is a unit's"
        )
    parts = urlsplit(fhir.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise InvalidInput.field(
            "fhir_base_url", "url_format", "must be an absolute http(s) URL without a query"
        )


async def create_subscription(
    work: Work,
    *,
    unit_id: str | None,
    url: str,
    event_types: list[str],
    secret: str | None,
    fhir: FhirChannel | None = None,
) -> WebhookSubscription:
    """Creates a webhook subscription (checking URL, kinds and secret before storing); a
    FHIR one (``fhir``) with its handshake queued."""
    caller = caller_of(work)
    if fhir is not None and unit_id is None:
        unit_id = caller.unit  # a FHIR subscription is a unit's: the token's by default
    ensure_subscription_scope(caller=caller, unit_id=unit_id)
    check_event_types(event_types=event_types)
    if fhir is not None:
        check_fhir_kinds(event_types=event_types)
        await _check_fhir(work, unit_id=unit_id, fhir=fhir)
    secret = _new_secret(work, secret)
    await check_webhook_url(url=url, settings=work.settings)
    sub = WebhookSubscription(
        id=new_id(),
        unit_id=unit_id,
        url=url,
        event_types=list(dict.fromkeys(event_types)),
        secret=secret,
        enabled=True,
        version=1,
        created_by=caller.sub,
        created_at=work.now,
        updated_at=work.now,
        format=FORMAT_VARDKEDJA if fhir is None else FORMAT_FHIR,
        events_since_start=0,
    )
    if fhir is not None:
        sub.fhir_status = "requested"
        sub.fhir_base_url = fhir.base_url.rstrip("/")
        sub.heartbeat_period_s = fhir.heartbeat_period_s
        sub.last_sent_at = work.now
    sub = await SubscriptionRepository(work.session).add(sub)
    if fhir is not None:
        await queue_handshake(work, sub.id)
    return sub


async def get_subscription(work: Work, subscription_id: str) -> WebhookSubscription:
    """Gets a subscription the caller may manage (404 for any other)."""
    sub = await SubscriptionRepository(work.session).get(subscription_id)
    if sub is None:
        raise SubscriptionNotFound()
    try:
        ensure_subscription_scope(caller=caller_of(work), unit_id=sub.unit_id)
    except Forbidden:
        raise SubscriptionNotFound() from None
    return sub


async def list_subscriptions(
    work: Work, *, unit_id: str | None, after_id: str | None, limit: int
) -> list[WebhookSubscription]:
    """Lists the subscriptions of a unit (or, for admins without a unit, all)."""
    caller = caller_of(work)
    all_units = unit_id is None and caller.has_role(ADMIN_ROLE)
    scope = unit_id if unit_id is not None else caller.unit
    if not all_units:
        if scope is None:
            raise Forbidden("name a unit, or hold the member_admin role")
        ensure_subscription_scope(caller=caller, unit_id=scope)
    return await SubscriptionRepository(work.session).page(
        unit_id=scope, all_units=all_units, after_id=after_id, limit=limit
    )


async def _changed(work: Work, sub: WebhookSubscription) -> WebhookSubscription:
    """A new version of the subscription, stored."""
    sub.version += 1
    sub.updated_at = work.now
    await work.session.flush()
    return sub


async def update_subscription(
    work: Work,
    subscription_id: str,
    *,
    expected_version: int | None,
    url: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
) -> WebhookSubscription:
    """Changes a subscription's URL, kinds or enabled flag (If-Match on its version)."""
    sub = await get_subscription(work, subscription_id)
    if expected_version is not None and expected_version != sub.version:
        raise VersionMismatch()
    if event_types is not None:
        check_event_types(event_types=event_types)
        if sub.format == FORMAT_FHIR:
            check_fhir_kinds(event_types=event_types)
    if url is not None:
        await check_webhook_url(url=url, settings=work.settings)
        sub.url = url
    if event_types is not None:
        sub.event_types = list(dict.fromkeys(event_types))
    if enabled is not None:
        sub.enabled = enabled
    return await _changed(work, sub)


async def rotate_secret(
    work: Work, subscription_id: str, *, secret: str | None
) -> WebhookSubscription:
    """Replaces the signing secret; the old one keeps signing alongside for the grace period."""
    sub = await get_subscription(work, subscription_id)
    grace = dt.timedelta(seconds=work.settings.notify.secret_rotation_grace_s)
    sub.secret, sub.previous_secret = _new_secret(work, secret), sub.secret
    sub.previous_secret_until = work.now + grace
    return await _changed(work, sub)


async def delete_subscription(work: Work, subscription_id: str) -> None:
    """Deletes a subscription (pending deliveries to it end as dead)."""
    sub = await get_subscription(work, subscription_id)
    await SubscriptionRepository(work.session).delete(sub)
