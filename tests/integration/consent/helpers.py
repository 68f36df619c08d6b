"""Helpers of the consent tests (fixtures are in conftest.py): apps, tokens, bodies, people."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from shared.config import Settings
from shared.data.db import Database
from shared.identity.auth import mint_token
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, make_settings

SPEC = load_spec("consent")
AUDIT = SPEC.infra.audit
OUTBOX = SPEC.infra.outbox
FEDERATION = [ORG_REGION, ORG_VAXJO, ORG_ALVESTA]
ALL = ["consent:read", "consent:write", "consent:person"]


def settings_for(db_url: str, orgnr: str = ORG_VAXJO, **kafka: object) -> Settings:
    """Consent settings of one member, with the demo federation listed."""
    settings = make_settings(service="consent", orgnr=orgnr, db_url=db_url, **kafka)
    return settings.model_copy(update={"federation_members": list(FEDERATION)})


def build(db_url: str, orgnr: str = ORG_VAXJO) -> FastAPI:
    """The consent app of ``orgnr`` on ``db_url`` (already migrated)."""
    return create_app(SPEC, settings_for(db_url, orgnr))


def auth(
    org: str = ORG_VAXJO,
    scopes: list[str] | None = None,
    sub: str = "handlaggare-1",
    unit: str | None = "mottagning-vuxna",
) -> dict[str, str]:
    token = mint_token(sub=sub, org=org, scopes=ALL if scopes is None else scopes, unit=unit)
    return {"Authorization": f"Bearer {token}"}


def luhn_digit(nine: str) -> int:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def personnummer(born: dt.date, serial: int) -> str:
    """A valid personnummer (YYYYMMDDNNNN) for a birth date and a birth number 0-999."""
    nine = born.strftime("%y%m%d") + f"{serial % 1000:03d}"
    return born.strftime("%Y") + nine[2:] + str(luhn_digit(nine))


_serials = itertools.count(1)


def new_person(born: dt.date = dt.date(1980, 5, 17)) -> str:
    """A personnummer no other test uses (audit records are append-only and shared)."""
    n = next(_serials)
    return personnummer(born + dt.timedelta(days=n // 1000), n)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def consent_body(pnr: str, **overrides: Any) -> dict[str, Any]:
    """A written SIP consent covering Region Kronoberg and Växjö kommun for 180 days."""
    body: dict[str, Any] = {
        "person": {"personnummer": pnr},
        "given_by": {"kind": "person"},
        "form": "written",
        "signed_form_reference": "Treserva dok 4711",
        "purposes": ["sip"],
        "parties": [{"orgnr": ORG_VAXJO}, {"orgnr": ORG_REGION}],
        "categories": ["contact_details", "needs_summary", "plan"],
        "valid_from": today().isoformat(),
        "valid_to": (today() + dt.timedelta(days=180)).isoformat(),
        "person_informed": True,
    }
    body.update(overrides)
    return body


def question(pnr: str, **overrides: Any) -> dict[str, Any]:
    """A decision request: Växjö shares needs and plan with the region for a SIP."""
    body: dict[str, Any] = {
        "person": {"personnummer": pnr},
        "sender": {"orgnr": ORG_VAXJO},
        "recipient": {"orgnr": ORG_REGION},
        "purpose": "sip",
        "categories": ["needs_summary", "plan"],
    }
    body.update(overrides)
    return body


async def count(db: Database, what: Any, *where: Any) -> int:
    async with db.transaction() as session:
        stmt = select(func.count()).select_from(what)
        for w in where:
            stmt = stmt.where(w)
        return int((await session.execute(stmt)).scalar_one())


async def audit_of(db: Database, pnr: str) -> list[Any]:
    """The audit records about one person, oldest first."""
    async with db.transaction() as session:
        stmt = select(AUDIT).where(AUDIT.c.person_id == pnr).order_by(AUDIT.c.id)
        return list((await session.execute(stmt)).all())
