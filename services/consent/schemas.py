"""API contracts of the consent service (Pydantic, with examples for the docs console).

Request models holding personal data set ``hide_input_in_errors`` so a validation error
never echoes what was sent; identifiers use the redacting ``Personnummer`` and
``Organisationsnummer`` types.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field, JsonValue, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from services.consent.codes import (
    Category,
    ConsentForm,
    ConsentStatus,
    GiverKind,
    Purpose,
    RecordStatus,
    Verdict,
    WithdrawerKind,
)
from shared.domain.kinds import legal_basis_only_purposes
from shared.domain.legal_basis import LegalBasisIn
from shared.identity.identifiers import Organisationsnummer, Personnummer
from shared.web.fields import IsoAwareDatetime, IsoDate, JsonBool, request_config

UnitIdField = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="unit id")
]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Reference = Annotated[str, Field(min_length=1, max_length=200)]

PERSON_EXAMPLE: dict[str, JsonValue] = {
    "personnummer": "19121212-1212",
    "protected_identity": False,
}
REGION = "232100-0065"
VAXJO = "212000-0647"


class _Request(BaseModel):
    model_config = request_config()


class PartyIn(_Request):
    """A member, or one unit of it. Never a blanket "everyone"."""

    orgnr: Organisationsnummer
    unit_id: UnitIdField | None = Field(
        None, description="a unit of the member; omitted: the whole member"
    )


class Party(BaseModel):
    orgnr: str = Field(examples=[REGION])
    unit_id: str | None = None


class PersonIn(_Request):
    """The person the record is about."""

    personnummer: Personnummer
    protected_identity: JsonBool = Field(
        False,
        description="skyddad identitet: contact details are then never shared, whatever "
        "the consent says",
    )


class PersonOut(BaseModel):
    personnummer: str = Field(description="YYYYMMDDNNNN")
    protected_identity: bool


class GivenBy(_Request):
    """Who gave the consent: the person, or a legal representative with a reference."""

    kind: GiverKind = GiverKind.PERSON
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="the representative's name"
    )
    reference: Reference | None = Field(
        None,
        description="required for a representative: e.g. the guardianship or "
        "tingsrätt decision it rests on",
    )


class RecordedByIn(_Request):
    """For system integrations (a case system's token): the user and unit that recorded.
    Omitted, they come from the token."""

    user: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    unit_id: UnitIdField | None = None


class RecordedBy(BaseModel):
    org: str
    unit_id: str | None
    user: str


LEGAL_BASIS_ONLY = legal_basis_only_purposes()


class ConsentCreate(_Request):
    """A consent as recorded by a case system or EHR."""

    model_config = request_config(
        {
            "person": PERSON_EXAMPLE,
            "given_by": {"kind": "person"},
            "form": "written",
            "signed_form_reference": "Treserva dok 2026-4711",
            "purposes": ["sip"],
            "parties": [{"orgnr": VAXJO}, {"orgnr": REGION}],
            "categories": ["contact_details", "needs_summary", "plan"],
            "valid_from": "2026-12-01",
            "valid_to": "2027-05-31",
            "person_informed": True,
        }
    )

    person: PersonIn
    given_by: GivenBy = Field(default_factory=GivenBy)
    recorded_by: RecordedByIn | None = None
    form: ConsentForm
    form_note: Text | None = Field(None, description="required for an oral consent")
    signed_form_reference: Reference | None = Field(
        None, description="where the signed form is kept; required for a written consent"
    )
    purposes: list[Purpose] = Field(min_length=1, max_length=len(Purpose))
    parties: list[PartyIn] = Field(
        min_length=1,
        max_length=50,
        description="the members (optionally units) allowed to exchange with each other; "
        "your own member must be one of them",
    )
    categories: list[Category] = Field(min_length=1, max_length=len(Category))
    valid_from: IsoDate
    valid_to: IsoDate = Field(
        description="required; at most `VK_CONSENT__MAX_VALIDITY_DAYS` after `valid_from`"
    )
    person_informed: JsonBool = Field(
        description="confirms the person was told the purpose and what refusing means; must be true"
    )
    supersedes: str | None = Field(
        None, max_length=36, description="id of an active consent of the same person it replaces"
    )

    @field_validator("purposes")
    @classmethod
    def _consentable(cls, value: list[Purpose]) -> list[Purpose]:
        """A report made under a duty to report (an LVM report, an orosanmälan) travels on
        its legal basis: no consent is asked for it, so none is recorded."""
        refused = sorted(p.value for p in value if p.value in LEGAL_BASIS_ONLY)
        if refused:
            raise PydanticCustomError(
                "legal_basis_only",
                "{purposes}: reported under a duty to report, on a legal basis, never a consent",
                {"purposes": ", ".join(refused)},
            )
        return value


class Withdrawal(BaseModel):
    at: dt.datetime
    by_kind: str
    by_reference: str | None
    reason: str
    recorded_by_user: str | None


class PurposeWithdrawal(Withdrawal):
    """A withdrawal of some of the consent's purposes: it stayed in force for the rest."""

    purposes: list[str] = Field(description="the purposes withdrawn then")
    recorded_by_unit: str | None


class ConsentOut(BaseModel):
    """A consent recorded by this member."""

    id: str
    owner_orgnr: str
    person: PersonOut
    given_by: GivenBy
    recorded_by: RecordedBy
    form: ConsentForm
    form_note: str | None
    signed_form_reference: str | None
    purposes: list[str] = Field(description="the purposes in force (withdrawn ones left out)")
    withdrawn_purposes: list[str] = Field(
        description="purposes the person withdrew while the consent stays in force for the rest"
    )
    parties: list[Party]
    categories: list[str]
    valid_from: dt.date
    valid_to: dt.date
    status: ConsentStatus
    person_informed: bool
    supersedes: str | None
    superseded_by: str | None
    withdrawal: Withdrawal | None = Field(description="the whole consent's withdrawal")
    purpose_withdrawals: list[PurposeWithdrawal] = Field(
        description="each withdrawal of some purposes, oldest first"
    )
    ended_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class WithdrawnBy(_Request):
    kind: WithdrawerKind = WithdrawerKind.PERSON
    reference: Reference | None = Field(
        None, description="required for a representative, as when giving consent"
    )


class WithdrawRequest(_Request):
    """Withdraw a consent, or some of its purposes: effective at once; every party is told."""

    model_config = request_config(
        {
            "reason": "Personen vill inte längre att uppgifter delas inför SIP.",
            "withdrawn_by": {"kind": "person"},
        },
        {
            "reason": "Personen avstår från SIP men vill att kontaktbegäran om boendestöd "
            "fortsätter.",
            "withdrawn_by": {"kind": "person"},
            "purposes": ["sip"],
        },
    )

    reason: Text
    withdrawn_by: WithdrawnBy = Field(default_factory=WithdrawnBy)
    purposes: list[Purpose] | None = Field(
        None,
        min_length=1,
        max_length=len(Purpose),
        description="withdraw only these purposes (each one the consent has in force); it "
        "stays in force for the rest. Omitted: the whole consent. Naming every purpose still "
        "in force withdraws the whole consent.",
    )


class CopyOut(BaseModel):
    """This member's copy of a consent another member recorded and named it in."""

    consent_id: str
    owner_orgnr: str
    protected_identity: bool
    parties: list[Party]
    purposes: list[str]
    withdrawn_purposes: list[str]
    categories: list[str]
    valid_from: dt.date
    valid_to: dt.date
    status: ConsentStatus
    end_reason: str | None
    ended_at: dt.datetime | None
    recorded_by_unit: str | None
    recorded_at: dt.datetime
    received_at: dt.datetime
    version: int


class RefusalCreate(_Request):
    """The person said no to sharing with these parties."""

    model_config = request_config(
        {
            "person": PERSON_EXAMPLE,
            "refused_on": "2026-12-01",
            "parties": [{"orgnr": REGION}],
            "purposes": ["sip"],
            "note": "Vill inte ha SIP nu; tackar ja till boendestöd.",
        }
    )

    person: PersonIn
    refused_on: IsoDate
    parties: list[PartyIn] = Field(min_length=1, max_length=50)
    purposes: list[Purpose] = Field(
        default_factory=list,
        max_length=len(Purpose),
        description="the purposes refused; empty: every purpose",
    )
    note: Text | None = None
    recorded_by: RecordedByIn | None = None


class RefusalOut(BaseModel):
    id: str
    owner_orgnr: str
    person: PersonOut
    refused_on: dt.date
    parties: list[Party]
    purposes: list[str]
    note: str | None
    recorded_by: RecordedBy
    status: RecordStatus
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    created_at: dt.datetime


class RevokeRequest(_Request):
    model_config = request_config({"reason": "Personen har nu lämnat samtycke till SIP."})

    reason: Text


class BlockCreate(_Request):
    """Block a member or unit from receiving anything about the person."""

    model_config = request_config(
        {
            "person": PERSON_EXAMPLE,
            "blocked": {"orgnr": REGION, "unit_id": "psykiatrimottagning-vaxjo"},
            "reason": "Personens begäran.",
        }
    )

    person: PersonIn
    blocked: PartyIn
    reason: Text | None = None
    recorded_by: RecordedByIn | None = None


class LiftCreate(_Request):
    """Lift a block for a while (at most `VK_CONSENT__BLOCK_LIFT_MAX_DAYS`), with a reason."""

    model_config = request_config(
        {
            "ends_at": "2026-12-08T00:00:00Z",
            "reason": "Personen samtycker till att psykiatrin får underlaget inför remissmötet.",
        }
    )

    starts_at: IsoAwareDatetime | None = Field(None, description="default: now")
    ends_at: IsoAwareDatetime
    reason: Text


class LiftOut(BaseModel):
    id: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str
    lifted_by_user: str
    lifted_by_unit: str | None


class BlockOut(BaseModel):
    id: str
    owner_orgnr: str
    person: PersonOut
    blocked: Party
    reason: str | None
    recorded_by: RecordedBy
    status: RecordStatus
    removed_at: dt.datetime | None
    lifts: list[LiftOut]
    created_at: dt.datetime


class DecisionRequest(_Request):
    """May ``sender`` share these categories about the person with ``recipient`` for this
    purpose, now (or at ``at``)?"""

    model_config = request_config(
        {
            "person": {"personnummer": "19121212-1212"},
            "sender": {"orgnr": VAXJO},
            "recipient": {"orgnr": REGION},
            "purpose": "sip",
            "categories": ["needs_summary", "plan"],
        },
        {
            "person": {"personnummer": "19121212-1212"},
            "sender": {"orgnr": REGION, "unit_id": "beroendemottagningen"},
            "recipient": {"orgnr": VAXJO},
            "purpose": "lvm_anmalan",
            "categories": ["needs_summary"],
            "legal_basis": {
                "basis": "lvm_anmalan",
                "justification": "Anmälan enligt 6 § LVM efter akut intag.",
            },
        },
    )

    person: PersonIn
    sender: PartyIn
    recipient: PartyIn
    purpose: Purpose
    categories: list[Category] = Field(min_length=1, max_length=len(Category))
    at: IsoAwareDatetime | None = Field(None, description="default: now (with a time zone)")
    legal_basis: LegalBasisIn | None = None


class Basis(BaseModel):
    kind: Literal["consent", "legal_basis", "none"]
    consent_id: str | None = None
    legal_basis: str | None = None
    legal_basis_use_id: str | None = Field(
        None, description="the kept record of the stated basis and its justification"
    )


class Obligations(BaseModel):
    categories: list[str] = Field(description="share only these")
    valid_until: dt.date = Field(description="the allowance holds through this day")


class ReasonOut(BaseModel):
    code: str = Field(examples=["purpose_not_covered"])
    text: str = Field(description="for the person to read (Swedish)")


class DecisionOut(BaseModel):
    """The answer; deny by default."""

    verdict: Verdict
    allowed: bool
    basis: Basis
    obligations: Obligations | None
    reasons: list[ReasonOut]
    decided_at: dt.datetime


class PersonQuery(_Request):
    """A person, in a body: a personnummer never goes in a URL."""

    model_config = request_config({"personnummer": "19121212-1212"})

    personnummer: Personnummer


class LegalBasisUseOut(BaseModel):
    id: str
    basis: str
    ground: str | None
    justification: str
    purpose: str
    categories: list[str]
    sender: Party
    recipient: Party
    verdict: str
    decided_by_user: str
    decided_by_unit: str | None
    decided_at: dt.datetime


class HistoryEntry(BaseModel):
    subject_type: str
    subject_id: str
    action: str
    occurred_at: dt.datetime
    actor_org: str
    actor_user: str | None
    actor_unit: str | None
    details: Annotated[
        dict[str, object],
        WithJsonSchema(
            {
                "type": "object",
                "description": "what the step changed: the record's `version` after it, "
                "the record that replaced it (`superseded_by`), the purposes withdrawn",
                "properties": {
                    "version": {"type": "integer"},
                    "superseded_by": {"type": ["string", "null"]},
                    "withdrawn_purposes": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": True,
            }
        ),
    ]


class PersonRecords(BaseModel):
    """Everything this member holds on the person's consents, with its history."""

    consents: list[ConsentOut]
    copies: list[CopyOut]
    refusals: list[RefusalOut]
    blocks: list[BlockOut]
    legal_basis_uses: list[LegalBasisUseOut]
    history: list[HistoryEntry]


class AuditExtractRequest(_Request):
    """A person's audit extract (loggutdrag) over this member's four services."""

    model_config = request_config(
        {"personnummer": "19121212-1212", "format": "json"},
        {
            "personnummer": "19121212-1212",
            "since": "2026-01-01T00:00:00Z",
            "format": "html",
        },
    )

    personnummer: Personnummer
    since: IsoAwareDatetime | None = None
    until: IsoAwareDatetime | None = None
    format: Literal["json", "html"] = "json"


class AuditEntry(BaseModel):
    """One access to the person's data: the machine fields as recorded, and the same in
    words for the person (``*_text``, names, local time)."""

    occurred_at: dt.datetime = Field(description="when, in UTC")
    occurred_at_local: str = Field(
        description="when, in Swedish local time (Europe/Stockholm) as running text",
        examples=["7 december 2026 kl. 14.05"],
    )
    service: str = Field(description="the service that recorded it", examples=["referral"])
    service_text: str = Field(description="the service, in Swedish", examples=["Remisser"])
    action: str = Field(
        description="the action code (`docs/audit-actions.md`; a refused request: its "
        "operation's name)",
        examples=["referral.read"],
    )
    action_text: str = Field(
        description="what was done, in Swedish (from the audit action registry)",
        examples=["läste en skickad remiss"],
    )
    actor_sub: str = Field(description="who: the user's id in the token")
    actor_org: str = Field(description="the organisationsnummer of the caller's huvudman")
    org_name: str | None = Field(
        description="the huvudman's name, when the directory has named it",
        examples=["Växjö kommun"],
    )
    actor_unit: str | None = Field(description="the id of the caller's unit, if any")
    unit_name: str | None = Field(
        description="the unit's name, when the directory knows the unit",
        examples=["Hemtjänst Norr"],
    )
    purpose: str | None = Field(description="the purpose or referral kind stated, as a code")
    purpose_text: str | None = Field(description="the purpose, in Swedish")
    outcome: str = Field(description="`allowed`, `denied` or `not_found`")
    outcome_text: str = Field(
        description="the outcome, in Swedish: tillåten, nekad or hittades inte",
        examples=["tillåten"],
    )
    resource_type: str | None
    resource_id: str | None


class AuditExtract(BaseModel):
    """Who accessed the person's data, in which unit, when and how."""

    person: str = Field(description="the personnummer, birth date only (YYYYMMDD-****)")
    member_orgnr: str
    member_name: str
    generated_at: dt.datetime
    generated_at_local: str = Field(
        description="when the extract was made, in Swedish local time as running text"
    )
    since: dt.datetime | None
    until: dt.datetime | None
    services: list[str] = Field(description="the services whose records are included")
    entries: list[AuditEntry]


class LegalBasisInfo(BaseModel):
    basis: str
    label: str
    purposes: list[str]
    needs_ground: bool
    overrides_block: bool
