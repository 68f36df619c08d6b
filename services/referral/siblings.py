"""This member's own consent and directory services, as the referral service asks them.

Before anything about a person crosses to another member, this member's consent service
decides (its consent records or the stated legal basis); when the sender lets the
directory choose the receiver, this member's directory answers with the candidate units.
Both are HTTP calls within one member's instance (ADR 0001), signed with the referral
service's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.referral.details import UnitRef
from services.referral.schemas import ReferralCreate
from shared.config import Settings
from shared.domain.kinds import ReferralKind, spec
from shared.service import ServiceContext
from shared.web.clients import ServiceClient
from shared.web.errors import InvalidInput


@dataclass
class Clients:
    """This member's consent and directory services, as the referral service calls them."""

    consent: ServiceClient
    directory: ServiceClient


def make_clients(settings: Settings) -> Clients:
    """The clients of one process (tokens signed with the referral service's key)."""
    r = settings.referral
    common: dict[str, Any] = {
        "service": "referral",
        "org": settings.member.orgnr,
        "private_key_pem": r.service_private_key,
        "ttl_seconds": r.service_token_ttl_seconds,
        "timeout": r.call_timeout_seconds,
    }
    return Clients(
        consent=ServiceClient(base_url=r.consent_url, scopes=["consent:read"], **common),
        directory=ServiceClient(base_url=r.directory_url, scopes=["directory:read"], **common),
    )


def clients_of(ctx: ServiceContext) -> Clients:
    """The process's clients (made once; a test may put its own in ``ctx.extras``)."""
    existing = ctx.extras.get("clients")
    if existing is None:
        existing = ctx.extras["clients"] = make_clients(ctx.settings)
    assert isinstance(existing, Clients)
    return existing


@dataclass(frozen=True)
class Question:
    """What the consent service is asked: may this person's ``categories`` go from
    ``sender`` to ``recipient`` for the purpose of ``kind`` (on ``legal_basis``, if stated)?
    ``arrived_from`` (the sender's orgnr digits) marks a question about what arrived in an
    event of a member."""

    personnummer: str
    kind: ReferralKind
    categories: list[str]
    sender: dict[str, Any]
    recipient: dict[str, Any]
    legal_basis: dict[str, Any] | None = None
    arrived_from: str | None = None


@dataclass(frozen=True)
class Decision:
    """The consent service's answer: allowed or not, on which basis, and its reason codes."""

    allowed: bool
    basis: dict[str, Any] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)


def claim(basis: dict[str, Any] | None) -> dict[str, Any] | None:
    """The legal basis a basis record went on, to be stated again (None: not a legal basis)."""
    if not basis or basis.get("kind") != "legal_basis":
        return None
    fields = {
        "basis": basis.get("legal_basis"),
        "ground": basis.get("ground"),
        "justification": basis.get("justification"),
    }
    return {k: v for k, v in fields.items() if v}


async def decide(clients: Clients, settings: Settings, question: Question) -> Decision:
    """Asks this member's consent service. Between two units of the same member nothing
    crosses to another huvudman: no consent decision is needed (the consent service refuses
    the question) and the basis is ``same_member`` — but never for what arrived in an event
    of another member (``arrived_from``), whatever its payload says: that is always
    decided."""
    q = question
    crossed = q.arrived_from is not None and q.arrived_from != settings.member.digits
    if q.sender["orgnr"] == q.recipient["orgnr"] and not crossed:
        return Decision(True, {"kind": "same_member"})
    body: dict[str, Any] = {
        "person": {"personnummer": q.personnummer},
        "sender": q.sender,
        "recipient": q.recipient,
        "purpose": spec(q.kind).purpose,
        "categories": q.categories,
    }
    if q.legal_basis:
        body["legal_basis"] = q.legal_basis
    response = await clients.consent.post("/v1/decisions", body, what="consent decision")
    if response.status_code != 200:
        # The consent service refused the question itself (e.g. a legal basis that cannot
        # cover the purpose): no basis.
        return Decision(False, codes=[f"decision_{response.status_code}"])
    answer = response.json()
    codes = [str(r["code"]) for r in answer.get("reasons", [])]
    if not answer.get("allowed"):
        return Decision(False, codes=codes or [str(answer.get("verdict", "denied"))])
    basis = answer["basis"]
    out: dict[str, Any] = {"kind": basis["kind"]}
    if basis.get("consent_id"):
        out["consent_id"] = basis["consent_id"]
    if basis.get("legal_basis") and q.legal_basis:
        out.update(
            legal_basis=basis["legal_basis"],
            ground=q.legal_basis.get("ground"),
            justification=q.legal_basis.get("justification"),
        )
    return Decision(True, out, codes)


async def routes(clients: Clients, data: ReferralCreate) -> list[tuple[UnitRef, str]]:
    """The receiving units this member's directory proposes for ``data.resolve``, best
    first, each with why it was chosen (422 ``no_receiver`` when it knows none)."""
    assert data.resolve is not None
    body = {
        "referral_kind": data.kind.value,
        "kommunkod": data.resolve.kommunkod,
        "needs": [n.value for n in data.needs],
        "age": data.resolve.age,
        "limit": 5,
    }
    response = await clients.directory.post("/v1/routing/resolve", body, what="routing")
    if response.status_code != 200:
        raise InvalidInput.field(
            "resolve.kommunkod", "no_receiver", "the directory knows no receiver in this kommun"
        )
    return [
        (
            UnitRef(orgnr=route["unit"]["owner_orgnr"], unit_id=route["unit"]["unit_id"]),
            str(route["reason"])[:300],
        )
        for route in response.json()["routes"]
    ]
