"""API contracts of the directory service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.directory.codes import Channel, Intervention, UnitKind, UnitStatus
from shared.config import MemberKind
from shared.domain.contact import FunctionalEmail, PostalAddress, SecureMailAddress, SwedishPhone
from shared.domain.hours import OpeningHours
from shared.domain.kinds import KINDS, ReferralKind
from shared.identity.identifiers import HsaId, Kommunkod
from shared.web.fields import JSON_INT, Age, IsoAwareDatetime, IsoDate, JsonInt

__all__ = [
    "Capacity",
    "Channel",
    "CloseRequest",
    "ContactPath",
    "MemberIn",
    "MemberOut",
    "ReplicaPage",
    "ReplicaUnitOut",
    "ReviewRequest",
    "TargetGroup",
    "UnitCreate",
    "UnitKind",
    "UnitOut",
    "UnitPage",
    "UnitStatus",
    "UnitUpdate",
]


class TargetGroup(BaseModel):
    """Who the unit is for, e.g. "Unga vuxna 18–25 med skadligt bruk"."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=2, max_length=200)
    age_min: Age | None = None
    age_max: Age | None = None

    @model_validator(mode="after")
    def _age_order(self) -> Self:
        if self.age_min is not None and self.age_max is not None and self.age_max < self.age_min:
            raise PydanticCustomError("age_range", "age_max is below age_min")
        return self


class ContactPath(BaseModel):
    """One reason to contact the function (kontaktorsak) and the channel to use for it.

    Exactly the field that belongs to ``channel`` is set: ``phone``, ``email``,
    ``secure_mail`` or ``postal``; channel ``inbox`` (the unit's own inbox in vårdkedjan)
    needs none. Functional addresses only — never a named person.
    """

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=200, description="kontaktorsak")
    channel: Channel
    phone: SwedishPhone | None = None
    email: FunctionalEmail | None = None
    secure_mail: SecureMailAddress | None = None
    postal: PostalAddress | None = None
    note: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _one_value_for_the_channel(self) -> Self:
        wanted = {
            Channel.PHONE: "phone",
            Channel.FUNCTIONAL_EMAIL: "email",
            Channel.SECURE_MAIL: "secure_mail",
            Channel.POSTAL_ADDRESS: "postal",
            Channel.INBOX: None,
        }[self.channel]
        present = [f for f in ("phone", "email", "secure_mail", "postal") if getattr(self, f)]
        if present != ([wanted] if wanted else []):
            raise PydanticCustomError(
                "channel_value",
                "set exactly the value of the chosen channel ({field})",
                {"field": wanted or "none"},
            )
        return self


class Capacity(BaseModel):
    """Free places, as of a time (e.g. beds at a treatment home)."""

    model_config = ConfigDict(extra="forbid")

    free_places: JsonInt = Field(ge=0, le=100_000)
    total_places: Annotated[int, Field(ge=0, le=100_000), JSON_INT] | None = None
    as_of: IsoAwareDatetime


class UnitFields(BaseModel):
    """The owner-maintained description of a unit/function. Never a named person."""

    # Nested models' input (free-text notes) must not reach a log via str(ValidationError).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=2, max_length=200, description="the function's name")
    kind: UnitKind
    mission: str = Field("", max_length=2000, description="uppdrag: what the function does")
    target_groups: list[TargetGroup] = Field(default_factory=list, max_length=10)
    interventions: list[Intervention] = Field(default_factory=list, max_length=100)
    kommunkoder: list[Kommunkod] = Field(
        min_length=1, max_length=290, description="SCB kommunkoder the unit covers"
    )
    contact_paths: list[ContactPath] = Field(default_factory=list, max_length=50)
    opening_hours: OpeningHours | None = None
    referral_kinds: list[ReferralKind] = Field(
        default_factory=list, description="which referral kinds the unit receives"
    )
    parent_unit_id: str | None = Field(None, max_length=64)
    valid_from: IsoDate | None = None
    valid_to: IsoDate | None = None
    capacity: Capacity | None = None
    hsa_id: HsaId | None = Field(
        None,
        description="the unit's HSA-id, unique among your member's units; its prefix "
        "names the issuing organisation (often the region), not necessarily your member. "
        "A token's `unit` claim may name the unit by it",
    )

    @field_validator("valid_to")
    @classmethod
    def _after_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise PydanticCustomError("validity_order", "valid_to is before valid_from")
        return value

    @field_validator("interventions", "kommunkoder", "referral_kinds")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        if len(set(values)) != len(values):
            raise PydanticCustomError("unique", "the list has repeated values")
        return values

    @field_validator("referral_kinds")
    @classmethod
    def _received_by_its_kind(
        cls, values: list[ReferralKind], info: ValidationInfo
    ) -> list[ReferralKind]:
        """A kind only some unit kinds may receive (an orosanmälan: the children's function
        or the out-of-hours service) is not received by a unit of another kind."""
        unit_kind = info.data.get("kind")
        for kind in values:
            only = KINDS[kind].receiver_unit_kinds
            if only and unit_kind is not None and unit_kind not in only:
                raise PydanticCustomError(
                    "not_received_by_this_unit_kind",
                    "{referral_kind} is received only by units of kind {allowed}",
                    {"referral_kind": kind.value, "allowed": ", ".join(only)},
                )
        return values


_EXAMPLE: dict[str, JsonValue] = {
    "name": "Socialtjänstens mottagning vuxna",
    "kind": "socialtjanstens_mottagning",
    "mission": "Tar emot ansökningar och anmälningar om vuxna med skadligt bruk eller "
    "beroende, utreder behov och beslutar om insatser enligt SoL.",
    "target_groups": [{"description": "Vuxna med skadligt bruk eller beroende", "age_min": 18}],
    "interventions": ["utredning_sol", "boendestod", "motivationssamtal"],
    "kommunkoder": ["0780"],
    "contact_paths": [
        {"reason": "Ansökan om boendestöd", "channel": "inbox"},
        {"reason": "Rådgivning till professionella", "channel": "phone", "phone": "070-174 06 10"},
        {
            "reason": "Handlingar per post",
            "channel": "postal_address",
            "postal": {"street": "Box 99", "postcode": "351 99", "city": "Växjö"},
        },
    ],
    "opening_hours": {
        "weekly": [
            {"day": d, "opens": "08:00", "closes": "16:30"}
            for d in ("mon", "tue", "wed", "thu", "fri")
        ]
    },
    "referral_kinds": ["kontaktbegaran", "sip_kallelse", "utskrivningsplanering"],
    "hsa_id": "SE2120000647-E000000000201",
}


class UnitCreate(UnitFields):
    """A new unit of the caller's own member."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})


class UnitUpdate(UnitFields):
    """The whole new description of a unit (replaces the old; send ``If-Match``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})


class CloseRequest(BaseModel):
    """Close a unit temporarily; the message tells others where to turn meanwhile."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"message": "Stängt v. 28–31. Vänd er till Beroendemottagningen."}]
        },
    )

    message: str = Field(min_length=2, max_length=500)


class ReviewRequest(BaseModel):
    """Confirm that the entry is correct. ``reviewed_by`` is a function, not a person."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reviewed_by": "Vårdkedjekoordinator"}]}
    )

    reviewed_by: str = Field(min_length=2, max_length=100)


class _PublicOut(BaseModel):
    owner_orgnr: str
    name: str
    kind: str
    mission: str
    target_groups: list[TargetGroup]
    interventions: list[str]
    kommunkoder: list[str]
    contact_paths: list[ContactPath]
    opening_hours: OpeningHours | None
    referral_kinds: list[str]
    status: UnitStatus
    status_message: str | None
    parent_unit_id: str | None
    valid_from: dt.date | None
    valid_to: dt.date | None
    reviewed_at: dt.datetime | None
    reviewed_by: str | None
    capacity: Capacity | None
    hsa_id: str | None = None
    version: int


class UnitOut(_PublicOut):
    """A unit as stored by its owner."""

    id: str
    created_at: dt.datetime
    updated_at: dt.datetime


class UnitPage(BaseModel):
    """One page of the member's own units; pass ``next_cursor`` to continue."""

    items: list[UnitOut]
    next_cursor: str | None = None


class ReplicaUnitOut(_PublicOut):
    """A unit of any member as held in this member's read replica."""

    unit_id: str
    changed_at: dt.datetime
    received_at: dt.datetime


class ReplicaPage(BaseModel):
    """One page of the replica, ordered by unit id; pass ``next_cursor`` to continue."""

    items: list[ReplicaUnitOut]
    next_cursor: str | None = None


class MemberIn(BaseModel):
    """How this member (huvudman) describes itself to the federation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Alvesta kommun",
                    "kind": "kommun",
                    "county_code": "07",
                    "kommunkoder": ["0764"],
                },
                {"name": "Region Kronoberg", "kind": "region", "county_code": "07"},
            ]
        },
    )

    name: str = Field(min_length=2, max_length=200)
    kind: MemberKind
    county_code: str = Field(
        pattern=r"^[0-9]{2}$", description="the county (län), SCB's code, e.g. 07 Kronoberg"
    )
    kommunkoder: list[Kommunkod] = Field(
        default_factory=list,
        validate_default=True,
        max_length=290,
        description="the kommuner served, all in the county: a kommun its own kommunkod "
        "(exactly one); a region those it serves, or none for every kommun of its county. "
        "Your units may cover only these kommuner",
    )

    @field_validator("county_code")
    @classmethod
    def _known_county(cls, value: str) -> str:
        from shared.identity.identifiers.kommun import counties

        if value not in {c.code for c in counties()}:
            raise PydanticCustomError("unknown_county", "no Swedish county has this code")
        return value

    @field_validator("kommunkoder")
    @classmethod
    def _in_county(cls, values: list[str], info: ValidationInfo) -> list[str]:
        from shared.identity.identifiers.kommun import all_kommuner

        county = info.data.get("county_code")
        if county is None:  # the county itself was refused
            return values
        if not values:
            if info.data.get("kind") is not MemberKind.REGION:
                raise PydanticCustomError(
                    "kommunkoder_required", "a kommun names the kommuner it serves"
                )
            return [k.code for k in all_kommuner() if k.county_code == county]
        outside = [k for k in values if not k.startswith(county)]
        if outside:
            raise PydanticCustomError(
                "kommun_outside_county",
                "kommunkoder {outside} are not in county {county}",
                {"outside": ",".join(outside), "county": county},
            )
        if info.data.get("kind") is MemberKind.KOMMUN and len(set(values)) != 1:
            # A kommun serves its own kommunkod only; its units may cover no other (ADR 0013).
            raise PydanticCustomError("one_kommunkod", "a kommun serves exactly its own kommunkod")
        return sorted(set(values))


class MemberOut(BaseModel):
    """A member of the federation as it describes itself."""

    orgnr: str
    name: str
    kind: str
    county_code: str
    county_name: str
    kommunkoder: list[str]
    version: int
    changed_at: dt.datetime
