"""API contracts of the directory service."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, ConfigDict, Field

from shared.identifiers import Kommunkod


class UnitKind(enum.StrEnum):
    """Kinds of unit/function (a code list that can grow; domain.md's glossary)."""

    REMISSPORT = "remissport"
    BEROENDEMOTTAGNING = "beroendemottagning"
    VUXENPSYKIATRI = "vuxenpsykiatri"
    PSYKOSENHET = "psykosenhet"
    AKUTPSYKIATRI = "akutpsykiatri"
    PRIMARVARD = "primarvard"
    SOCIALTJANSTENS_MOTTAGNING = "socialtjanstens_mottagning"
    MYNDIGHETSUTOVNING_VUXNA = "myndighetsutovning_vuxna"
    BOENDESTOD = "boendestod"
    SYSSELSATTNING = "sysselsattning"
    BEHANDLINGSHEM_HVB = "behandlingshem_hvb"
    HELDYGNSVARD = "heldygnsvard"
    INTEGRERAD_BEROENDEMOTTAGNING = "integrerad_beroendemottagning"
    ANHORIGSTOD = "anhorigstod"
    VARDKEDJEKOORDINATOR = "vardkedjekoordinator"


class UnitStatus(enum.StrEnum):
    ACTIVE = "active"
    TEMPORARILY_CLOSED = "temporarily_closed"
    INACTIVE = "inactive"


class UnitCreate(BaseModel):
    """A new unit/function of the caller's own member. Never a named person."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Socialtjänstens mottagning vuxna",
                    "kind": "socialtjanstens_mottagning",
                    "kommunkoder": ["0780"],
                }
            ]
        },
    )

    name: str = Field(min_length=2, max_length=200, description="the function's name")
    kind: UnitKind
    kommunkoder: list[Kommunkod] = Field(
        min_length=1, max_length=290, description="SCB kommunkoder the unit covers"
    )
    status: UnitStatus = UnitStatus.ACTIVE


class UnitOut(BaseModel):
    """A unit as stored by its owner."""

    id: str
    owner_orgnr: str
    name: str
    kind: str
    kommunkoder: list[str]
    status: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ReplicaUnitOut(BaseModel):
    """A unit of any member as held in this member's read replica."""

    unit_id: str
    owner_orgnr: str
    name: str
    kind: str
    kommunkoder: list[str]
    status: str
    version: int
    changed_at: dt.datetime
    received_at: dt.datetime


class ReplicaPage(BaseModel):
    """One page of the replica, ordered by unit id; pass ``next_cursor`` to continue."""

    items: list[ReplicaUnitOut]
    next_cursor: str | None = None
