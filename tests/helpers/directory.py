"""Helpers for the directory's API tests (the fixtures are in tests/integration/directory/)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI

from shared.identity.auth import mint_token
from shared.messaging.events.payloads import MemberChangedV1
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import (
    ORG_VAXJO,
    make_settings,
)

SPEC = load_spec("directory")
UNIT = {
    "name": "Socialtjänstens mottagning vuxna",
    "kind": "socialtjanstens_mottagning",
    "kommunkoder": ["0780"],
}
RW = ["directory:read", "directory:write"]


def token(org: str = ORG_VAXJO, scopes: list[str] | None = None, sub: str = "tester") -> str:
    return mint_token(sub=sub, org=org, scopes=RW if scopes is None else scopes)


def auth(
    org: str = ORG_VAXJO, scopes: list[str] | None = None, sub: str = "tester"
) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(org, scopes, sub)}"}


def build(db_url: str, **settings: Any) -> FastAPI:
    """The directory app of Växjö on ``db_url`` (already migrated by ``migrated_url``)."""
    return create_app(
        SPEC, make_settings(service="directory", orgnr=ORG_VAXJO, db_url=db_url, **settings)
    )


def member_record(
    orgnr: str, kind: str, kommunkoder: tuple[str, ...], *, at: dt.datetime
) -> MemberChangedV1:
    """A member record in Kronoberg (county 07) serving ``kommunkoder``, version 1."""
    return MemberChangedV1(
        orgnr=orgnr,
        name=f"Member {orgnr}",
        kind=kind,
        county_code="07",
        kommunkoder=list(kommunkoder),
        version=1,
        changed_at=at,
    )
