"""Change notification in FHIR's terms: the HL7 Subscriptions R5 Backport (R4 profile
``backport-subscription``) over notify's signed webhooks.

``POST Subscription`` (topic :data:`TOPIC`, a referral task's status changed; channel
``rest-hook``, payload ``application/fhir+json`` with content ``id-only``) becomes
``POST /v1/webhook-subscriptions`` with ``format: fhir-backport-id-only`` at the member's
notify service, which sends the handshake, the heartbeats and one notification Bundle per
status change of the unit's tasks, each naming the Task by its full URL and nothing more.
The subscription is the unit's: the filter ``Task?owner=Organization/<unit id>`` (extension
``backport-filter-criteria`` on ``criteria``) must name the caller's unit, and without it
the token's unit claim is the owner.

Every notification is signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) like every webhook of notify. The signing secret is answered once,
on creation, in the extension :data:`SECRET_EXT` of the created Subscription (``valueString``,
``whsec_...``); it is never read again (``GET`` leaves it out). Scopes are notify's:
``notify:write`` to create and delete, ``notify:read`` to read and for ``$status``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from pydantic import ValidationError

from services.fhir.common import base_of, fhir, upstream_of
from services.fhir.mapping import validated
from services.fhir.outcome import FhirError
from services.fhir.upstream import UpstreamAnswer
from services.notify.fhir_backport import FHIR_KINDS, FORMAT_FHIR, TOPIC, status_parameters

router = APIRouter()

BACKPORT: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
PROFILE: Final = BACKPORT + "backport-subscription"
FILTER_EXT: Final = BACKPORT + "backport-filter-criteria"
CONTENT_EXT: Final = BACKPORT + "backport-payload-content"
HEARTBEAT_EXT: Final = BACKPORT + "backport-heartbeat-period"
MAX_COUNT_EXT: Final = BACKPORT + "backport-max-count"
SECRET_EXT: Final = "https://vardkedja.se/fhir/StructureDefinition/webhook-secret"  # noqa: S105
FHIR_JSON: Final = "application/fhir+json"
# A fixed reason: the caller's words are free text, which notify never keeps.
REASON: Final = "vardkedja: status changes of the referral tasks of a unit"
OWNER: Final = re.compile(r"^Task\?owner=Organization/([A-Za-z0-9._:-]{1,64})$")
SUBSCRIPTIONS: Final = "/v1/webhook-subscriptions"
SubscriptionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$")]

SUBSCRIPTION_EXAMPLE: Final = {
    "resourceType": "Subscription",
    "meta": {"profile": [PROFILE]},
    "status": "requested",
    "reason": "Treserva: status changes of our inbox",
    "criteria": TOPIC,
    "_criteria": {
        "extension": [{"url": FILTER_EXT, "valueString": "Task?owner=Organization/vaxjo-soc"}]
    },
    "channel": {
        "extension": [{"url": HEARTBEAT_EXT, "valueUnsignedInt": 3600}],
        "type": "rest-hook",
        "endpoint": "https://treserva.vaxjo.se/hooks/fhir",
        "payload": FHIR_JSON,
        "_payload": {"extension": [{"url": CONTENT_EXT, "valueCode": "id-only"}]},
    },
}


def _bad(element: str, rule: str, words: str, status: int = 422) -> FhirError:
    return FhirError(status, f"{element}: {words}", expression=element, rule=rule, code="invalid")


def _extensions(element: dict[str, Any] | None, url: str) -> list[dict[str, Any]]:
    return [e for e in (element or {}).get("extension") or [] if e.get("url") == url]


def _parsed(body: Any) -> dict[str, Any]:
    """The body as an R4 Subscription (400 naming the first invalid element)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise _bad("Subscription", "resource_type", "a Subscription resource", 400)
    try:
        Subscription.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["Subscription", *(str(p) for p in err.get("loc", ()))])
        raise _bad(where, "invalid", str(err.get("msg", "invalid")), 400) from None
    return body


def _heartbeat(channel: dict[str, Any]) -> int | None:
    found = _extensions(channel, HEARTBEAT_EXT)
    if not found:
        return None
    value = found[0].get("valueUnsignedInt")
    if not isinstance(value, int) or not 10 <= value <= 86400:
        raise _bad(
            f"Subscription.channel.extension('{HEARTBEAT_EXT}')",
            "heartbeat_period",
            "valueUnsignedInt: seconds, 10 to 86400",
        )
    return value


def _owner(resource: dict[str, Any]) -> str | None:
    """The unit the filter names, or None (the token's unit)."""
    filters = _extensions(resource.get("_criteria"), FILTER_EXT)
    if not filters:
        return None
    where = f"Subscription.criteria.extension('{FILTER_EXT}')"
    if len(filters) > 1:
        raise _bad(where, "one_filter", "one filter: Task?owner=Organization/<your unit id>")
    match = OWNER.match(str(filters[0].get("valueString") or ""))
    if match is None:
        raise _bad(where, "filter", "must be Task?owner=Organization/<your unit id>")
    return match.group(1)


def notify_body(resource: dict[str, Any], base: str) -> dict[str, Any]:
    """The notify subscription a backport ``Subscription`` asks for (422 naming the element)."""
    if resource.get("status") not in ("requested", "active"):
        raise _bad("Subscription.status", "status", "a new subscription is requested")
    if resource.get("criteria") != TOPIC:
        raise _bad("Subscription.criteria", "topic", f"the topic canonical {TOPIC}")
    channel = resource["channel"]
    if channel.get("type") != "rest-hook":
        raise _bad("Subscription.channel.type", "channel_type", "rest-hook only")
    if not channel.get("endpoint"):
        raise _bad("Subscription.channel.endpoint", "required", "the receiver's https URL")
    if channel.get("payload") != FHIR_JSON:
        raise _bad("Subscription.channel.payload", "payload", FHIR_JSON + " only")
    content = _extensions(channel.get("_payload"), CONTENT_EXT)
    if any(c.get("valueCode") != "id-only" for c in content):
        raise _bad(
            f"Subscription.channel.payload.extension('{CONTENT_EXT}')", "content", "id-only only"
        )
    if channel.get("header"):
        # Notify signs every notification instead: there is nowhere to keep the caller's.
        raise _bad("Subscription.channel.header", "header", "not supported: verify the signature")
    for n in _extensions(channel, MAX_COUNT_EXT):
        if not isinstance(n.get("valuePositiveInt"), int) or n["valuePositiveInt"] < 1:
            raise _bad(
                f"Subscription.channel.extension('{MAX_COUNT_EXT}')", "max_count", "at least 1"
            )
    body: dict[str, Any] = {
        "url": channel["endpoint"],
        "event_types": list(FHIR_KINDS),
        "format": FORMAT_FHIR,
        "fhir_base_url": base,
    }
    if (heartbeat := _heartbeat(channel)) is not None:
        body["heartbeat_period_s"] = heartbeat
    if (owner := _owner(resource)) is not None:
        body["unit_id"] = owner
    return body


# Where a field of notify's API is in the Subscription (the problems' expressions).
ELEMENT_OF: Final = {
    "url": "Subscription.channel.endpoint",
    "unit_id": "Subscription.criteria",
    "heartbeat_period_s": f"Subscription.channel.extension('{HEARTBEAT_EXT}')",
    "fhir_base_url": "Subscription",
    "event_types": "Subscription.criteria",
}


def subscription_of(sub: dict[str, Any], *, secret: str | None = None) -> dict[str, Any]:
    """Notify's subscription as a backport ``Subscription`` (the secret only on creation)."""
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": sub["url"],
        "payload": FHIR_JSON,
        "_payload": {"extension": [{"url": CONTENT_EXT, "valueCode": "id-only"}]},
    }
    extensions = [{"url": MAX_COUNT_EXT, "valuePositiveInt": 1}]
    if sub.get("heartbeat_period_s") is not None:
        extensions.insert(0, {"url": HEARTBEAT_EXT, "valueUnsignedInt": sub["heartbeat_period_s"]})
    channel["extension"] = extensions
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": sub["id"],
        "meta": {"versionId": str(sub["version"]), "profile": [PROFILE]},
        "status": (sub.get("fhir_status") or "requested") if sub["enabled"] else "off",
        "reason": REASON,
        "criteria": TOPIC,
        "_criteria": {
            "extension": [
                {"url": FILTER_EXT, "valueString": f"Task?owner=Organization/{sub['unit_id']}"}
            ]
        },
        "channel": channel,
    }
    if secret is not None:
        resource["extension"] = [{"url": SECRET_EXT, "valueString": secret}]
    return validated(Subscription, resource)


async def _notify_subscription(request: Request, subscription_id: str) -> dict[str, Any]:
    """Notify's subscription ``subscription_id``, if it is a FHIR one (else 404)."""
    answer = await upstream_of(request).call(
        request, "notify", "GET", f"{SUBSCRIPTIONS}/{subscription_id}"
    )
    sub: dict[str, Any] = answer.json()
    if sub.get("format") != FORMAT_FHIR:
        raise FhirError(404, "no such Subscription for your unit", code="not-found")
    return sub


@router.post(
    "/Subscription",
    status_code=201,
    summary="Subscribe to a unit's task status changes (Subscriptions R5 Backport)",
    description=(
        f"An R4 `Subscription` with the backport profile: `criteria` the topic `{TOPIC}`, "
        "optionally the filter `Task?owner=Organization/<your unit id>` "
        "(`backport-filter-criteria` on `criteria`; without it, the token's unit), channel "
        "`rest-hook` to an https `endpoint`, `payload` `application/fhir+json` with content "
        "`id-only`, optionally `backport-heartbeat-period` (seconds, 10-86400). Answers the "
        "Subscription (`requested`; `active` once the handshake was answered 2xx, `error` "
        "while it fails) with the signing secret, once, in the extension "
        f"`{SECRET_EXT}` (Standard Webhooks: verify `webhook-signature` with it). "
        "Notifications are `history` Bundles: the `SubscriptionStatus` Parameters, then the "
        "Task's full URL (no content, no personal data). Bad input: 400 (not a Subscription) "
        "or 422, naming the element. Scope `notify:write`."
    ),
)
async def create_subscription(
    request: Request,
    resource: Annotated[dict[str, Any], Body(examples=[SUBSCRIPTION_EXAMPLE])],
) -> JSONResponse:
    body = notify_body(_parsed(resource), base_of(request))
    up = upstream_of(request)  # passes the caller's Idempotency-Key on
    try:
        answer = await up.call(request, "notify", "POST", SUBSCRIPTIONS, json=body)
    except UpstreamAnswer as exc:
        exc.paths = ELEMENT_OF
        raise
    sub = answer.json()
    out = subscription_of(sub, secret=sub["secret"])
    location = f"{base_of(request)}/Subscription/{sub['id']}"
    return fhir(out, status=201, version=sub["version"], location=location)


@router.get(
    "/Subscription/{subscription_id}",
    summary="Read a Subscription",
    description="Its status (`requested`, `active`, `error`, `off`); never the secret. "
    "Scope `notify:read`.",
)
async def read_subscription(request: Request, subscription_id: SubscriptionId) -> JSONResponse:
    sub = await _notify_subscription(request, subscription_id)
    return fhir(subscription_of(sub), version=sub["version"])


@router.delete(
    "/Subscription/{subscription_id}",
    status_code=204,
    summary="Delete a Subscription",
    description="No more notifications (pending ones end undelivered). Scope `notify:write`.",
)
async def delete_subscription(request: Request, subscription_id: SubscriptionId) -> Response:
    await _notify_subscription(request, subscription_id)
    await upstream_of(request).call(
        request, "notify", "DELETE", f"{SUBSCRIPTIONS}/{subscription_id}"
    )
    return Response(status_code=204)


@router.get(
    "/Subscription/{subscription_id}/$status",
    summary="A Subscription's status ($status)",
    description="A `searchset` Bundle of the `SubscriptionStatus` Parameters "
    "(backport-subscription-status-r4): status, type `query-status`, "
    "`events-since-subscription-start`. Scope `notify:read`.",
)
async def subscription_status(request: Request, subscription_id: SubscriptionId) -> JSONResponse:
    sub = await _notify_subscription(request, subscription_id)
    base = base_of(request)
    status = (sub.get("fhir_status") or "requested") if sub["enabled"] else "off"
    parameters = status_parameters(
        base=base,
        subscription_id=sub["id"],
        status=status,
        type_="query-status",
        events_since_start=int(sub.get("events_since_start") or 0),
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [{"relation": "self", "url": f"{base}/Subscription/{sub['id']}/$status"}],
        "entry": [
            {
                "fullUrl": f"{base}/Subscription/{sub['id']}/$status",
                "resource": parameters,
                "search": {"mode": "match"},
            }
        ],
    }
    return fhir(validated(Bundle, bundle))


def subscription_capabilities() -> dict[str, Any]:
    """The ``CapabilityStatement.rest.resource`` entry of Subscription (for capability.py)."""
    return {
        "type": "Subscription",
        "supportedProfile": [PROFILE],
        "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}],
        "operation": [
            {
                "name": "status",
                "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                "OperationDefinition/backport-subscription-status",
            }
        ],
        "documentation": f"Topic {TOPIC} (a referral task's status changed), rest-hook, "
        "application/fhir+json, id-only; signed per Standard Webhooks with the secret in "
        f"{SECRET_EXT} (answered on creation). Scopes notify:read / notify:write.",
    }
