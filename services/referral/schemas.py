"""API contracts of the referral service."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.referral.codes import Decision, Status, Tristate, Urgency
from services.referral.details import DETAILS, DETAILS_FIELDS, Attachment, UnitRef, _In
from shared.domain import documents
from shared.domain.calendar import to_local
from shared.domain.codes import Intervention
from shared.domain.contact import SwedishPhone
from shared.domain.content import ReferralContent
from shared.domain.kinds import KINDS, ReferralKind
from shared.domain.legal_basis import LegalBasisIn
from shared.identity.identifiers import Kommunkod, Personnummer
from shared.web.fields import (
    JSON_INT,
    Age,
    IsoAwareDatetime,
    IsoDate,
    JsonBool,
    request_config,
)

UnitId = str
_UNIT = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
Text = Field("", max_length=4000)
AttachmentId = Annotated[str, Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9-]+$")]
"""An uploaded document's id (``POST /v1/attachments``)."""


class PersonIn(_In):
    personnummer: Personnummer
    protected_identity: JsonBool = Field(
        False,
        description="skyddad identitet: the referral then carries no contact data, is shown "
        "only to the receiving unit's authorised role, and its notifications are marked",
    )


class ViaWard(_In):
    """Reach the person through the ward they are at, until a day."""

    ward: str = Field(min_length=2, max_length=200, description="the ward's name")
    phone: SwedishPhone
    until: IsoDate = Field(description="the last day the person is expected there")


class Reachability(_In):
    """How the receiving unit reaches the person (personal data)."""

    phone: SwedishPhone | None = Field(None, description="the person's own phone")
    via_ward: ViaWard | None = None
    best_time: str | None = Field(None, max_length=200, description="e.g. förmiddagar")
    no_fixed_address: JsonBool = Field(False, description="the person has no fixed address")
    note: str | None = Field(None, max_length=500, description="anything else that helps")

    @model_validator(mode="after")
    def _some_way(self) -> Self:
        if not (self.phone or self.via_ward or self.best_time or self.no_fixed_address):
            raise PydanticCustomError(
                "no_way_to_reach", "give a phone, a ward, a best time or no_fixed_address"
            )
        return self


class Resolve(_In):
    """Ask the directory for the receiving unit (the best route for the kind and needs)."""

    kommunkod: Kommunkod = Field(description="the person's kommun of residence")
    age: Age | None = None


_EXAMPLE: dict[str, Any] = {
    "kind": "kontaktbegaran",
    "person": {"personnummer": "19121212-1212"},
    "needs": ["boendestod"],
    "summary": "Utskrivs från beroendeavdelningen inom två veckor, saknar bostad.",
    "urgency": "urgent",
    "children_in_household": "no",
    "persons_wish": "Jag vill ha hjälp med boende nära min mamma i Alvesta.",
    "resolve": {"kommunkod": "0764"},
    "kontaktbegaran": {"kommunkod": "0764"},
}


class ReferralCreateBase(_In):
    """A referral or invitation. Name the recipients or let the directory resolve one;
    give the block of details that belongs to the kind (one optional field per kind,
    added from the kinds registry: ``shared/domain/kinds.py`` and ``details.py``)."""

    model_config = request_config(_EXAMPLE)

    kind: ReferralKind
    person: PersonIn
    needs: list[Intervention] = Field(default_factory=list, max_length=30, validate_default=True)
    summary: str = Text
    urgency: Urgency = Urgency.NORMAL
    children_in_household: Tristate = Field(
        description="children in the household or close to the person — asked every time: "
        "`yes` (the sending and the receiving unit are prompted: support for children as "
        "relatives, and the orosanmälan path), `no`, or `unknown` with "
        "`children_unknown_reason`"
    )
    children_unknown_reason: str | None = Field(
        None, max_length=300, validate_default=True, description="required with `unknown`"
    )
    reachability: Reachability | None = Field(
        None,
        validate_default=True,
        description="how to reach the person (above all on a kontaktbegäran): personal data "
        "for the holding unit only; never with protected identity",
    )
    persons_wish: str = Field("", max_length=2000, description="in the person's own words")
    drug_free: Tristate | None = Field(
        None, description="required for some kinds (a vårdkedjeremiss)", validate_default=True
    )
    attachments: list[Attachment] = Field(
        default_factory=list,
        max_length=20,
        description="documents by reference (a title and where both members can reach "
        "it); to send a document itself, upload it and name it in `attachment_ids`",
    )
    attachment_ids: list[AttachmentId] = Field(
        default_factory=list,
        max_length=50,
        description="documents your unit uploaded (`POST /v1/attachments`) and not yet "
        "attached, to go with the referral to every recipient; at most "
        "`VK_REFERRAL__ATTACHMENT_MAX_COUNT` (default 10) and "
        "`VK_REFERRAL__ATTACHMENT_MAX_REFERRAL_BYTES` (25 MiB) together, else 413",
    )
    recipients: list[UnitRef] = Field(default_factory=list, max_length=20)
    resolve: Resolve | None = Field(None, validate_default=True)
    legal_basis: LegalBasisIn | None = Field(
        None,
        validate_default=True,
        description="instead of consent; required for a report made under a duty to report "
        "(`lvm_anmalan`, `orosanmalan`: their own basis)",
    )

    # The rules are field validators (not one model validator) so that a problem names
    # the field it is about; each runs also when the field is left out.
    @field_validator("needs")
    @classmethod
    def _needs(cls, value: list[Intervention], info: ValidationInfo) -> list[Intervention]:
        kind = info.data.get("kind")
        if kind is not None and KINDS[kind].needs_required and not value:
            raise PydanticCustomError(
                "needs_required", "a {label} names the needs", {"label": _label(kind)}
            )
        return value

    @field_validator("children_unknown_reason")
    @classmethod
    def _children_reason(cls, value: str | None, info: ValidationInfo) -> str | None:
        answer = info.data.get("children_in_household")
        if answer is Tristate.UNKNOWN and not (value or "").strip():
            raise PydanticCustomError(
                "reason_required", "say why it is not known whether there are children"
            )
        if answer in (Tristate.YES, Tristate.NO) and value:
            raise PydanticCustomError("only_when_unknown", "a reason goes with `unknown` only")
        return value

    @field_validator("reachability")
    @classmethod
    def _reachable(cls, value: Reachability | None, info: ValidationInfo) -> Any:
        person, kind = info.data.get("person"), info.data.get("kind")
        if value is not None and kind is not None and "contact_details" not in _categories_of(kind):
            raise PydanticCustomError(
                "not_carried_by_kind",
                "a {label} carries no contact details",
                {"label": _label(kind)},
            )
        if value is not None and person is not None and person.protected_identity:
            raise PydanticCustomError(
                "reachability_with_protected_identity",
                "a person with protected identity is reached through the receiving unit's "
                "own routines: no contact details travel",
            )
        return value

    @field_validator("drug_free")
    @classmethod
    def _drug_free(cls, value: Tristate | None, info: ValidationInfo) -> Tristate | None:
        kind = info.data.get("kind")
        if kind is not None and KINDS[kind].drug_free_required and value is None:
            raise PydanticCustomError(
                "drug_free_required", "a {label} states drug_free", {"label": _label(kind)}
            )
        return value

    @field_validator("attachment_ids")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("unique", "a document is named twice")
        return value

    @field_validator("recipients")
    @classmethod
    def _unique(cls, value: list[UnitRef]) -> list[UnitRef]:
        if len({(r.orgnr, r.unit_id) for r in value}) != len(value):
            raise PydanticCustomError("unique", "a recipient is named twice")
        return value

    @field_validator("resolve")
    @classmethod
    def _one_way(cls, value: Resolve | None, info: ValidationInfo) -> Resolve | None:
        if "recipients" in info.data and bool(info.data["recipients"]) == bool(value):
            raise PydanticCustomError(
                "recipients_or_resolve", "name recipients or ask to resolve one, not both"
            )
        return value

    @field_validator("legal_basis")
    @classmethod
    def _basis_of_kind(cls, value: LegalBasisIn | None, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None or KINDS[kind].consent_allowed:
            return value
        allowed = KINDS[kind].legal_bases
        if value is None:
            raise PydanticCustomError(
                "legal_basis_required",
                "{label} travels on its legal basis ({allowed}), never on a consent",
                {"label": KINDS[kind].label, "allowed": ", ".join(allowed)},
            )
        if value.basis.value not in allowed:
            raise PydanticCustomError(
                "legal_basis_not_for_kind",
                "{label} travels on {allowed}",
                {"label": KINDS[kind].label, "allowed": ", ".join(allowed)},
            )
        return value

    @field_validator(*DETAILS_FIELDS, check_fields=False)
    @classmethod
    def _block_of_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:
            return value
        spec = KINDS[kind]
        mine = spec.details_field == info.field_name
        if mine and value is None and spec.details_required:
            raise PydanticCustomError("details_required", "the kind needs this block")
        if not mine and value is not None:
            raise PydanticCustomError("details_of_other_kind", "this block is for another kind")
        return value

    def details(self) -> dict[str, Any]:
        """The kind's block as stored and sent."""
        block = getattr(self, KINDS[self.kind].details_field)
        return block.model_dump(mode="json") if block is not None else {}

    def content(self, **changes: Any) -> ReferralContent:
        """What the referral says, as it is stored and sent (``changes``: e.g. the details
        with a meeting's invitation)."""
        data = self.model_dump(mode="json", include=set(ReferralContent.FIELDS))
        data["children_unknown_reason"] = data.get("children_unknown_reason") or ""
        return ReferralContent.model_validate({**data, "details": self.details(), **changes})


def _categories_of(kind: ReferralKind) -> tuple[str, ...]:
    """The information categories a kind carries."""
    return KINDS[kind].categories


def _label(kind: ReferralKind) -> str:
    return (
        KINDS[kind].label.lower() if kind is not ReferralKind.VARDKEDJEREMISS else "vårdkedjeremiss"
    )


if TYPE_CHECKING:
    ReferralCreate = ReferralCreateBase
else:
    ReferralCreate = create_model(
        "ReferralCreate",
        __base__=ReferralCreateBase,
        __module__=__name__,
        __doc__=ReferralCreateBase.__doc__,
        **{
            KINDS[kind].details_field: (
                model | None,
                Field(None, validate_default=True, description=f"for a {KINDS[kind].label}"),
            )
            for kind, model in DETAILS.items()
        },
    )


ANSWER_BY = Field(
    description="the last day to accept or decline (answer an invitation), set once the task "
    "is acknowledged"
)
OVERDUE = Field(
    description="past a deadline: not acknowledged by `acknowledge_by`, or acknowledged and not "
    "accepted or declined by `answer_by`"
)


# --- attached documents (ADR 0023) -----------------------------------------------------

_PDF_EXAMPLE = "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCiUlRU9GCg=="


class AttachmentIn(_In):
    """A document to attach: its title, its type and its bytes (base64). The type is told
    from the bytes — a PDF, PNG, JPEG or UTF-8 text — and must be the one declared."""

    model_config = request_config(
        {"title": "Epikris 2026-11-20", "content_type": "application/pdf", "content": _PDF_EXAMPLE},
        {
            "title": "Läkemedelslista.txt",
            "content_type": "text/plain; charset=utf-8",
            "content": "QWxhbHBlbmlsIDIwMCBtZyB2aWQgYmVob3YK",
        },
    )

    title: str = Field(
        min_length=1,
        max_length=documents.TITLE_MAX,
        pattern=documents.TITLE_PATTERN,
        description="what the document is, shown to the receiving unit and used as its "
        "file name (with the extension of its type added): no `/` or `\\`, no control "
        "or formatting character, no space at either end; may be personal data",
    )
    content_type: str = Field(
        min_length=3,
        max_length=100,
        pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;.*)?$",
        description="`application/pdf`, `image/png`, `image/jpeg` or `text/plain` (with "
        "`charset=utf-8` if any); another type, or bytes of another type, is refused with "
        "415",
        examples=["application/pdf"],
    )
    content: str = Field(
        min_length=4,
        pattern=documents.BASE64_PATTERN,
        description="the document, base64 (standard alphabet, padded, no line breaks); at "
        "most `VK_REFERRAL__ATTACHMENT_MAX_BYTES` (default 10 MiB) decoded, else 413",
        json_schema_extra={"contentEncoding": "base64"},
    )

    @field_validator("title")
    @classmethod
    def _a_file_name(cls, value: str) -> str:
        rule = documents.title_problem(value)
        if rule is not None:
            why = rule.removeprefix("title_").replace("_", " ")
            raise PydanticCustomError(rule, "the title cannot be a file name: {why}", {"why": why})
        return value


class AttachmentIdsIn(_In):
    """Documents your unit uploaded, to add to a referral it sent."""

    model_config = request_config({"attachment_ids": ["6f1c2b9e-0d4a-4e8b-9a51-2c7d3e4f5a60"]})

    attachment_ids: list[AttachmentId] = Field(min_length=1, max_length=50)

    @field_validator("attachment_ids")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("unique", "a document is named twice")
        return value


class DocumentFields(BaseModel):
    """What is shown of a document (never its bytes)."""

    id: str
    title: str
    content_type: str = Field(description="as told from its bytes")
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex digest of the bytes")
    received_at: dt.datetime = Field(
        description="when this member stored it: the upload (sender), or when the last "
        "piece arrived and the document was checked (receiver)"
    )


class DocumentOut(DocumentFields):
    """A document of a referral or task, without its bytes (download them at ``href``)."""

    href: str = Field(description="where your unit downloads it")


class DraftOut(DocumentFields):
    """An uploaded document of your unit, waiting to be attached to a referral."""

    hold_until: dt.datetime = Field(
        description="deleted then unless a referral names it in `attachment_ids` first"
    )


class DraftPage(BaseModel):
    """Your unit's uploads still waiting for a referral."""

    items: list[DraftOut]
    next_cursor: str | None = None


class AttachedOut(BaseModel):
    """A sent referral's documents after adding some, and the tasks they went to."""

    referral_id: str
    documents: list[DocumentOut]
    sent_to: list[str] = Field(
        description="the task ids of the recipients still open, to which the added documents "
        "were sent (a closed task gets none)"
    )


DOCUMENTS = Field(
    None,
    description="the attached documents (ADR 0023), in this view of one referral; absent "
    "in worklists",
)


class BasisOut(BaseModel):
    kind: str
    consent_id: str | None = None
    legal_basis: str | None = None


# --- komplettering and structured results ------------------------------------------------


class KompletteringOut(BaseModel):
    """One round of komplettering: the holder's question and the sender's answer."""

    round: int = Field(description="1 for the first question on the task")
    question: str | None = Field(None, description="what the holding unit asked")
    asked_at: dt.datetime
    answer: str | None = Field(None, description="the sending unit's answer (free text)")
    answered_at: dt.datetime | None = Field(None, description="none while it waits")
    attachment_ids: list[str] = Field(
        default_factory=list,
        description="documents that came with the answer (listed with the task's `documents`)",
    )


KOMPLETTERING: Any = Field(
    default_factory=list,
    description="komplettering: every request for more information on the task, oldest "
    "first, with the answer once it came",
)


class ResultFields(BaseModel):
    """A completed or declined referral's structured result."""

    decision: Decision = Field(
        description="granted (beviljat), refused (avslag), referred_on (hänvisat) or "
        "person_declined (the person did not want it); declining: never granted"
    )
    intervention: Intervention | None = Field(
        None, description="the intervention (insats) given or decided on"
    )
    started_on: IsoDate | None = Field(
        None, description="the day the intervention started (only with `intervention`)"
    )
    text: str | None = Field(
        None,
        min_length=2,
        max_length=2000,
        description="a note on the decision (its scope, why), read by the sending unit",
    )


class ResultIn(ResultFields):
    """The structured result of completing or declining a referral."""

    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        # The day an intervention started is given with that intervention only.
        json_schema_extra={
            "if": {"required": ["started_on"], "properties": {"started_on": {"type": "string"}}},
            "then": {
                "required": ["intervention"],
                "properties": {"intervention": {"type": "string"}},
            },
        },
    )

    @model_validator(mode="after")
    def _started_with_intervention(self) -> Self:
        if self.started_on is not None and self.intervention is None:
            raise PydanticCustomError(
                "started_on_needs_intervention", "started_on is the day an intervention started"
            )
        return self


class ResultOut(ResultFields):
    """A completed or declined referral's structured result, as the holder gave it."""


RESULT: Any = Field(
    None,
    description="completed or declined: the holder's structured result (decision, "
    "intervention and when it started, a note)",
)


class InformationIn(_In):
    """The sending unit's answer to the holder's request for more information: text,
    documents your unit uploaded (`POST /v1/attachments`), or both."""

    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {"text": "Personen har sedan i höstas eget kontrakt på Storgatan i Växjö."},
                {
                    "text": "Epikrisen bifogas.",
                    "attachment_ids": ["6f1c2b9e-0d4a-4e8b-9a51-2c7d3e4f5a60"],
                },
            ],
            # Text, documents, or both: never neither.
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["attachment_ids"], "properties": {"attachment_ids": {"minItems": 1}}},
            ],
        },
    )

    text: str | None = Field(
        None, min_length=2, max_length=4000, description="the answer (free text)"
    )
    attachment_ids: list[AttachmentId] = Field(
        default_factory=list,
        max_length=50,
        description="documents your unit uploaded, sent with the answer to this recipient "
        "only (they join the referral's documents)",
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.text is None and not self.attachment_ids:
            raise PydanticCustomError(
                "answer_required", "answer with a text, documents (attachment_ids) or both"
            )
        if len(set(self.attachment_ids)) != len(self.attachment_ids):
            raise PydanticCustomError("unique", "a document is named twice")
        return self


def _listed(description: str, **properties: dict[str, Any]) -> WithJsonSchema:
    """The documented shape of a list of JSON objects kept as stored (the wire unchanged)."""
    item = {"type": "object", "properties": properties, "additionalProperties": True}
    return WithJsonSchema({"type": "array", "items": item, "description": description})


_TEXT: dict[str, Any] = {"type": "string"}
_OPT_TEXT: dict[str, Any] = {"type": ["string", "null"]}
AttachmentsOut = Annotated[
    list[dict[str, Any]],
    _listed("documents the receiver fetches elsewhere", title=_TEXT, reference=_TEXT),
]
UnitsOut = Annotated[
    list[dict[str, Any]],
    _listed(
        "units of members (orgnr: organisationsnummer, 10 digits; unit_id: the unit there)",
        orgnr=_TEXT,
        unit_id=_TEXT,
    ),
]
RelativesOut = Annotated[
    list[dict[str, Any]],
    _listed(
        "relatives the person chose to invite (personal data; only the convener keeps it)",
        name=_TEXT,
        phone=_OPT_TEXT,
        email=_OPT_TEXT,
    ),
]


ForwardedTo = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "orgnr": {"type": "string", "description": "its member's orgnr"},
                        "unit_id": {"type": "string", "description": "the unit there"},
                        "task_id": {"type": "string", "description": "its task there"},
                    },
                    "additionalProperties": True,
                },
                {"type": "null"},
            ]
        }
    ),
]


ACKNOWLEDGE_BY = Field(
    description="the last day (in Sweden) for the receiving unit to acknowledge it: the "
    "kind's working days by urgency after the day it was sent (docs/kinds.md; the member's "
    "own table, `VK_REFERRAL__ACKNOWLEDGE_WORKING_DAYS`), Swedish public holidays, weekends "
    "and midsommar-, jul- and nyårsafton not counted; see `GET /v1/deadlines/count`"
)
STATUS = Field(
    description="where the task stands (sent → delivered → acknowledged → accepted or "
    "declined, …); `allowed_transitions` lists the moves allowed from it"
)


class RecipientOut(BaseModel):
    """One receiving unit of a sent referral and where it is."""

    task_id: str
    orgnr: str
    unit_id: str
    unit_name: str | None
    status: Status = STATUS
    basis: BasisOut
    acknowledge_by: dt.date = ACKNOWLEDGE_BY
    acknowledge_due_at: dt.datetime | None = Field(
        None,
        description="a kind acknowledged within hours (an orosanmälan): the instant it is due, "
        "day and night; notify reminds and escalates by it",
    )
    answer_by: dt.date | None = ANSWER_BY
    overdue: bool = OVERDUE
    routed: bool
    route_reason: str | None
    reason: str | None
    outcome: str | None
    case_reference: str | None
    proposed_at: dt.datetime | None
    forwarded_to: ForwardedTo = Field(
        None, description="forwarded: the unit it went on to, and its task id there"
    )
    result: ResultOut | None = RESULT
    komplettering: list[KompletteringOut] = KOMPLETTERING
    information_by: dt.date | None = Field(
        None,
        description="information_requested: your unit's last day to answer the question "
        "(`POST .../information`); the receiver's `answer_by` stands still meanwhile",
    )
    updated_at: dt.datetime
    version: int = Field(description="send it as If-Match to withdraw or answer a question")


class LinkedSipOut(BaseModel):
    """The SIP a unit of this member convened for a referral it sent (its `for_referral_id`):
    the one held most recently, else the one convened last."""

    meeting_id: str
    convener_unit_id: str
    at: dt.datetime
    status: str = Field(description="`planned`, or `held` once its plan is recorded")
    plan_recorded: bool
    convened_at: dt.datetime


class HvbStatus(BaseModel):
    """An HVB notification at a glance: the placement, and the SIP the kommun owes."""

    placement_form: str | None = Field(
        description="`sol_bistand`, `lvm_27`, `kontraktsvard`, `annan` or `ej_angiven`"
    )
    placement_form_label: str | None
    placement_date: dt.date | None
    expected_end_date: dt.date | None
    open_ended: bool
    sip_by: dt.date | None = Field(
        description="the last day to convene the SIP: `VK_REFERRAL__SIP_WORKING_DAYS` working "
        "days after sending, or the placement day if that comes first"
    )
    sip_convened: bool
    sip_overdue: bool = Field(description="no SIP convened and `sip_by` has passed")


class DischargeMissing(BaseModel):
    """What keeps a discharge planning from being ready: no SIP linked (`sip`), its plan not
    recorded (`plan`), no recipient taking part (`recipient`), a recipient whose huvudman
    owns no action in the plan (`action`), or whose actions have not started
    (`not_started`, with their ids)."""

    what: str = Field(pattern=r"^(sip|plan|recipient|action|not_started)$")
    orgnr: str | None = None
    unit_id: str | None = Field(None, description="the recipient unit")
    action_ids: list[str] = Field(default_factory=list)


class RecordedDischargeOut(BaseModel):
    """The discharge the ward recorded."""

    discharged_on: dt.date
    unplanned: bool
    note: str | None
    actions_started: bool = Field(
        description="every recipient's actions in the linked SIP's plan had started by the "
        "discharge day (as the plan stood when it was recorded)"
    )
    recorded_at: dt.datetime


class DischargeStatus(BaseModel):
    """A discharge planning at a glance: the date, a SIP, who has confirmed, whether the home
    kommun's and out-patient care's actions have started, and the discharge once recorded."""

    expected_discharge_date: dt.date
    sip_exists: Tristate
    confirmed_by: list[dict[str, str]] = Field(
        description="recipients (home kommun, out-patient care) that acknowledged or accepted"
    )
    all_confirmed: bool
    ready_for_discharge: bool = Field(
        False,
        description="the linked SIP's plan is recorded and, for every recipient still taking "
        "part, its huvudman owns at least one action in it (besides the sending ward's own) "
        "and every such action not cancelled has started or ended",
    )
    missing: list[DischargeMissing] = Field(
        default_factory=list, description="what keeps it from being ready"
    )
    discharged: RecordedDischargeOut | None = Field(
        None, description="recorded with `POST /v1/referrals/{id}/discharge`"
    )


class TaskDischargeOut(BaseModel):
    """A discharge planning's dates as the receiving unit sees them."""

    expected_discharge_date: dt.date | None
    discharged_on: dt.date | None = Field(None, description="once the ward has recorded it")
    unplanned: bool | None = None
    told_at: dt.datetime | None = Field(None, description="when this member heard of it")


class DischargeIn(_In):
    """The person's actual discharge from the ward."""

    model_config = request_config(
        {"discharged_on": "2026-12-18", "unplanned": False},
        {
            "discharged_on": "2026-12-14",
            "unplanned": True,
            "note": "Skrevs ut på egen begäran före planerat datum.",
        },
    )

    discharged_on: IsoDate = Field(
        description="the day the person left: not in the future, not before the planning was sent"
    )
    unplanned: JsonBool = Field(
        description="not the discharge planned (earlier, on the person's own request, ...)"
    )
    note: str | None = Field(
        None,
        min_length=2,
        max_length=500,
        description="for the ward's own record: never sent to the other units",
    )


class ChildrenPrompt(BaseModel):
    """What a `yes` on children brings to the unit (a fixed text, no personal data)."""

    code: str = Field(description="`barn_som_anhoriga` or `orosanmalan`")
    text: str


CHILDREN_PROMPTS: Any = Field(
    default_factory=list,
    description="with children in the household or close to the person: support for "
    "children as relatives (5 kap. 7 § HSL), and the orosanmälan path",
)


class PersonOut(BaseModel):
    """The person a referral, meeting or plan is about (personal data)."""

    personnummer: str | None = Field(
        description="personnummer or samordningsnummer, 12 digits with a hyphen "
        "(`YYYYMMDD-NNNN`; a samordningsnummer's day is 60 more); Luhn-checked when it came "
        "in; null in a copy withdrawn because its basis ended"
    )
    protected_identity: bool | None = Field(
        description="skyddad identitet: no contact data travels, only the receiving unit's "
        "authorised role sees it"
    )


def _details_schema() -> dict[str, Any]:
    """The documented shape of a referral's ``details``: the block of its kind (as sent in
    ``ReferralCreate``), kept as JSON; an invitation may carry its meeting's fields too."""
    shapes = []
    for kind, model in DETAILS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        shapes.append(
            {
                "title": f"{kind.value} details",
                "type": "object",
                "properties": schema["properties"],
                "additionalProperties": True,
            }
        )
    return {
        "description": "the block of details of the referral's kind, as the sender wrote it "
        "(`ReferralCreate`'s block named for the kind: "
        + ", ".join(f"`{KINDS[k].details_field}`" for k in DETAILS)
        + "); `{}` for a kind sent without one",
        "anyOf": shapes,
    }


DetailsOut = Annotated[dict[str, Any], WithJsonSchema(_details_schema())]
"""A referral's details in a response: the JSON as stored, documented by kind."""

ReachabilityOut = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [{"$ref": "#/components/schemas/Reachability"}, {"type": "null"}],
            "description": "how the receiving unit reaches the person (personal data; "
            "null under skyddad identitet or when not given)",
        }
    ),
]


class ReferralOut(ReferralContent):
    """A referral as its sender sees it — its content (``needs``, ``summary``, ``urgency``,
    ``children_in_household`` and ``children_unknown_reason``, ``reachability``,
    ``persons_wish``, ``drug_free``, ``attachments``, ``details``) — with every recipient's
    status."""

    id: str
    kind: ReferralKind
    sender_unit_id: str
    person: PersonOut
    details: DetailsOut = Field(default_factory=dict)
    reachability: ReachabilityOut = None
    attachments: AttachmentsOut = Field(default_factory=list)
    recipients: list[RecipientOut]
    created_at: dt.datetime
    discharge: DischargeStatus | None = Field(None, description="utskrivningsplanering only")
    hvb: HvbStatus | None = Field(None, description="hvb_underrattelse only")
    linked_sip: LinkedSipOut | None = Field(
        None,
        description="an HVB notification or discharge planning: the SIP a unit of this member "
        "convened for it (`for_referral_id`), if any",
    )
    children_prompts: list[ChildrenPrompt] = CHILDREN_PROMPTS
    documents: list[DocumentOut] | None = DOCUMENTS


class SuggestedParticipant(BaseModel):
    """A unit the sender of a vårdkedjeremiss suggests for its remissmöte."""

    orgnr: str
    unit_id: str
    name: str | None = Field(description="as this member's copy of the directory names it")
    invitable: bool = Field(description="an active unit of that member, known here")
    problem: str | None = Field(
        None, description="why it cannot be invited: `unknown_unit` or `inactive_unit`"
    )


class IncomingOut(ReferralContent):
    """A referral in one of this member's unit inboxes: its content (as in
    :class:`ReferralOut`) and where this unit's task stands."""

    task_id: str
    referral_id: str
    kind: ReferralKind
    sender_orgnr: str
    sender_unit_id: str
    unit_id: str
    status: Status
    allowed_transitions: list[Status] = Field(
        description="the statuses this unit may move the task to next (`POST "
        ".../transitions`), from its status now"
    )
    person: PersonOut
    details: DetailsOut = Field(default_factory=dict)
    reachability: ReachabilityOut = None
    attachments: AttachmentsOut = Field(default_factory=list)
    basis: BasisOut
    acknowledge_by: dt.date = ACKNOWLEDGE_BY
    acknowledge_due_at: dt.datetime | None = Field(
        None,
        description="a kind acknowledged within hours (an orosanmälan): the instant it is due, "
        "day and night; notify reminds and escalates by it",
    )
    answer_by: dt.date | None = ANSWER_BY
    overdue: bool = OVERDUE
    received_at: dt.datetime
    updated_at: dt.datetime = Field(
        description="the task's last change at this member (a step, a withdrawal, an answer)"
    )
    reason: str | None
    outcome: str | None
    case_reference: str | None
    result: ResultOut | None = RESULT
    komplettering: list[KompletteringOut] = KOMPLETTERING
    version: int = Field(
        description='the task\'s version: send it as `If-Match: "<version>"` to move it '
        "(412 when another change came first: read it again)"
    )
    children_prompts: list[ChildrenPrompt] = CHILDREN_PROMPTS
    suggested_participants: list[SuggestedParticipant] | None = Field(
        None,
        description="a vårdkedjeremiss: the units its sender suggests for the remissmöte, "
        "with their names; convening the remissmöte without `participants` (or with "
        "`invite_suggested`) invites them",
    )
    discharge: TaskDischargeOut | None = Field(
        None, description="utskrivningsplanering only: the expected and the actual discharge"
    )
    documents: list[DocumentOut] | None = DOCUMENTS


class TransitionIn(_In):
    """Move an incoming referral on (you hold it) — the allowed steps are listed on it."""

    model_config = request_config(
        {"to": "acknowledged", "case_reference": "SOC-2026-1234"},
        {
            "to": "information_requested",
            "question": "Har personen en egen bostad i dag, eller var bor hen?",
        },
        {
            "to": "declined",
            "reason": "Personen bor inte i kommunen.",
            "result": {"decision": "referred_on", "text": "Hänvisad till hemkommunen."},
        },
        {
            "to": "completed",
            "outcome": "Boendestöd beviljat från 1 december.",
            "result": {
                "decision": "granted",
                "intervention": "boendestod",
                "started_on": "2026-12-01",
            },
        },
    )

    to: Status
    forward_to: UnitRef | None = Field(None, description="with `forwarded`: the next unit")
    proposed_at: IsoAwareDatetime | None = Field(
        None, description="declining a meeting invitation: another time you propose"
    )
    reason: str | None = Field(None, min_length=2, max_length=2000)
    outcome: str | None = Field(None, min_length=2, max_length=4000)
    case_reference: str | None = Field(None, min_length=1, max_length=100)
    question: str | None = Field(
        None,
        min_length=2,
        max_length=2000,
        description="with `information_requested`: what you ask the sending unit (required)",
    )
    result: ResultIn | None = Field(
        None,
        description="with `completed` or `declined` (a referral, not an invitation): the "
        "structured result, required; `outcome` and `reason` stay the words the sending unit "
        "reads",
    )


class WithdrawIn(_In):
    model_config = request_config({"reason": "Personen har tackat nej."})

    reason: str = Field(min_length=2, max_length=2000)
    by_person: JsonBool = Field(False, description="the person declined (a kontaktbegäran)")


class TransitionOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    by_orgnr: str
    by_unit_id: str | None
    reason: str | None
    at: dt.datetime


class PersonSearch(_In):
    """A person, in a body: a personnummer never goes in a URL."""

    model_config = request_config({"personnummer": "19121212-1212"})

    personnummer: Personnummer


class IncomingPage(BaseModel):
    items: list[IncomingOut]
    next_cursor: str | None = None


class OutgoingPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None = None


# --- meetings and plans -------------------------------------------------------------


class Relative(_In):
    """A relative the person chose to invite: only the convener keeps the contact."""

    name: str = Field(min_length=2, max_length=200)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=200)


_MEETING_CONFIG = request_config(
    {
        "kind": "remissmote",
        "origin_task_id": "5b0c2f7e-4a53-4f4e-9d53-0f1f6f4b8a10",
        "at": "2026-12-03T13:00:00+01:00",
        "video_link": "https://mote.example/remissmote-4711",
        "participants": [
            {"orgnr": "232100-0065", "unit_id": "beroendemottagningen-vaxjo"},
            {"orgnr": "212000-0647", "unit_id": "socialtjanstens-mottagning"},
        ],
    },
    {
        # The units the vårdkedjeremiss's sender suggests (no participants named).
        "kind": "remissmote",
        "origin_task_id": "5b0c2f7e-4a53-4f4e-9d53-0f1f6f4b8a10",
        "at": "2026-12-03T13:00:00+01:00",
        "video_link": "https://mote.example/remissmote-4711",
    },
    {
        # The suggested units and one more (e.g. for the drug-free rule).
        "kind": "remissmote",
        "origin_task_id": "5b0c2f7e-4a53-4f4e-9d53-0f1f6f4b8a10",
        "at": "2026-12-03T13:00:00+01:00",
        "video_link": "https://mote.example/remissmote-4711",
        "participants": [{"orgnr": "232100-0065", "unit_id": "beroendemottagningen-vaxjo"}],
        "invite_suggested": True,
    },
    {
        "kind": "sip",
        "person": {"personnummer": "19121212-1212"},
        "at": "2026-12-10T10:00:00+01:00",
        "place": "Avdelning 12, Centrallasarettet Växjö",
        "participants": [{"orgnr": "212000-0647", "unit_id": "socialtjanstens-mottagning"}],
        "relatives": [{"name": "Mamma", "phone": "070-123 45 67"}],
        "needs": ["boendestod"],
        "summary": "SIP inför utskrivning.",
    },
    {
        # The SIP the kommun convenes for the HVB notification it sent the region.
        "kind": "sip",
        "for_referral_id": "7d2e4b1a-6c3f-4e8d-9a20-5b1c0d3e4f70",
        "person": {"personnummer": "19121212-1212"},
        "children_in_household": "no",
        "at": "2026-12-16T13:00:00+01:00",
        "place": "Socialtjänsten, Västra Esplanaden 18, Växjö",
        "participants": [{"orgnr": "232100-0065", "unit_id": "beroendemottagningen-vaxjo"}],
        "summary": "SIP inför placering på HVB.",
    },
    {
        "kind": "samordningsmote",
        "follow_up_of": "0b6f1c7e-2d43-4e55-8a11-3c9e5b7d2f60",
        "at": "2027-01-20T14:00:00+01:00",
        "video_link": "https://mote.example/samordning-17",
        "participants": [{"orgnr": "232100-0065", "unit_id": "beroendemottagningen-vaxjo"}],
        "person_invited": False,
        "summary": "Insatserna har inte kommit igång; vi stämmer av utan den enskilde.",
    },
)
# Every meeting but a remissmöte names its participants (a remissmöte may take the units
# its vårdkedjeremiss suggests): in the schema too.
_MEETING_CONFIG["json_schema_extra"] = {
    **dict(_MEETING_CONFIG.get("json_schema_extra") or {}),  # type: ignore[arg-type]
    "if": {"properties": {"kind": {"const": "remissmote"}}, "required": ["kind"]},
    "else": {"properties": {"participants": {"type": "array"}}, "required": ["participants"]},
}


class MeetingCreate(_In):
    """Convene a remissmöte (from a vårdkedjeremiss your unit holds), a SIP meeting, or a
    professional meeting without the person (samordningsmöte) about a plan your unit
    coordinates."""

    model_config = _MEETING_CONFIG

    kind: str = Field(
        pattern=r"^(remissmote|sip|samordningsmote)$",
        description="`samordningsmote`: a professional meeting without the person, convened "
        "by a coordinating unit about its plan (`follow_up_of`)",
    )
    origin_task_id: str | None = Field(
        None, max_length=36, description="remissmöte: the incoming vårdkedjeremiss"
    )
    person: PersonIn | None = Field(
        None,
        description="SIP: the person (remissmöte: from the origin; samordningsmöte: from the plan)",
    )
    at: IsoAwareDatetime
    place: str | None = Field(None, max_length=300)
    video_link: str | None = Field(None, max_length=500, pattern=r"^https://")
    participants: list[UnitRef] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="the units to invite; required but for a remissmöte, which without it "
        "invites the units the vårdkedjeremiss's sender suggests",
    )
    invite_suggested: JsonBool | None = Field(
        None,
        description="remissmöte: also invite the units the vårdkedjeremiss's sender suggests "
        "(its `vardkedjeremiss.participants`, shown as `suggested_participants` on the "
        "incoming referral); default: true when no `participants` are named",
    )
    follow_up_of: str | None = Field(
        None,
        max_length=36,
        description="a follow-up of this earlier meeting your unit held, or of this plan "
        "(its id) your unit coordinates; a samordningsmöte always names its plan",
    )
    for_referral_id: str | None = Field(
        None,
        max_length=36,
        pattern=r"^[A-Za-z0-9-]+$",
        description="SIP: the HVB notification or discharge planning a unit of your member "
        "sent about the same person that this SIP answers; its sender then sees the SIP "
        "(`linked_sip`), and an HVB notification's SIP deadline is met",
    )
    person_invited: JsonBool | None = Field(
        None, description="default true; a samordningsmöte is held without the person (false)"
    )
    answer_by: IsoDate | None = Field(
        None,
        description="the last day for the participants to answer (at the latest the "
        "meeting's day); default: the kind's working days after each acknowledges",
    )
    children_in_household: Tristate | None = Field(
        None,
        description="children in the household or close to the person, asked every time: "
        "required but for a remissmöte (which takes its vårdkedjeremiss's answer); `unknown` "
        "with `children_unknown_reason`",
    )
    children_unknown_reason: str | None = Field(None, max_length=300)
    relatives: list[Relative] = Field(default_factory=list, max_length=10)
    needs: list[Intervention] = Field(default_factory=list, max_length=30)
    summary: str = Text
    treatment_requires_drug_free: JsonBool = Field(
        False, description="remissmöte: a planned treatment requires the person drug-free"
    )
    legal_basis: LegalBasisIn | None = None

    @field_validator("for_referral_id")
    @classmethod
    def _a_first_sip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (info.data.get("kind") != "sip" or info.data.get("follow_up_of")):
            raise PydanticCustomError(
                "only_for_a_first_sip",
                "only a SIP (not a follow-up) answers an HVB notification or discharge planning",
            )
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if not self.place and not self.video_link:
            raise PydanticCustomError("place_or_link", "give a place or a video link")
        if self.answer_by is not None and self.answer_by > to_local(self.at).date():
            raise PydanticCustomError("answer_by_after_meeting", "answer before the meeting")
        if self.kind == "remissmote" and not self.origin_task_id:
            raise PydanticCustomError(
                "origin_required", "a remissmöte is convened from an incoming vårdkedjeremiss"
            )
        if self.kind == "sip" and self.person is None:
            raise PydanticCustomError("person_required", "a SIP names the person")
        if self.kind == "samordningsmote":
            if not self.follow_up_of:
                raise PydanticCustomError(
                    "plan_required", "a samordningsmöte is about a plan: name it in follow_up_of"
                )
            if self.person_invited or self.relatives or self.person is not None:
                raise PydanticCustomError(
                    "without_the_person",
                    "a samordningsmöte is held without the person: no person_invited, "
                    "relatives or person (the plan names the person)",
                )
        if self.kind != "remissmote" and self.children_in_household is None:
            raise PydanticCustomError(
                "children_required",
                "say whether there are children in the household or close to the person",
            )
        if (
            self.children_in_household is Tristate.UNKNOWN
            and not (self.children_unknown_reason or "").strip()
        ):
            raise PydanticCustomError(
                "reason_required", "say why it is not known whether there are children"
            )
        if self.kind != "remissmote" and not self.participants:
            raise PydanticCustomError("participants_required", "the meeting names its participants")
        if self.kind != "remissmote" and self.invite_suggested:
            raise PydanticCustomError(
                "suggested_only_for_remissmote", "only a vårdkedjeremiss suggests participants"
            )
        if self.kind == "remissmote" and not self.participants and self.invite_suggested is False:
            raise PydanticCustomError(
                "participants_required", "name participants or invite the suggested units"
            )
        named = self.participants or []
        if len({(p.orgnr, p.unit_id) for p in named}) != len(named):
            raise PydanticCustomError("unique", "a participant is named twice")
        return self


class ParticipantOut(BaseModel):
    """An invited unit, its invitation task and its answer (its task's status, as its member
    last reported)."""

    orgnr: str
    unit_id: str
    task_id: str
    status: Status
    reason: str | None
    proposed_at: dt.datetime | None
    acknowledge_by: dt.date = ACKNOWLEDGE_BY
    answer_by: dt.date | None = ANSWER_BY
    overdue: bool = OVERDUE
    forwarded_to: dict[str, str] | None = Field(
        None,
        description="the unit forwarded its invitation: the unit the meeting invited in its "
        "place (`orgnr`, `unit_id`) and that unit's invitation task (`task_id`, a "
        "participant below), or why the meeting could not invite it (`refused`: "
        "`no_basis`, `unknown_unit`, `inactive_unit` or `invalid_target`)",
        examples=[
            {
                "orgnr": "212000-0647",
                "unit_id": "boendestod",
                "task_id": "3f2b6c1e-8d4a-4c2e-9b7f-1a2b3c4d5e6f",
            }
        ],
    )
    forwarded_from: str | None = Field(
        None,
        description="invited because a participant forwarded its invitation: that "
        "participant's task id",
    )


class MeetingOut(BaseModel):
    id: str
    kind: str
    convener_unit_id: str
    origin_task_id: str | None
    follow_up_of: str | None
    for_referral_id: str | None = Field(
        None, description="the HVB notification or discharge planning this SIP answers"
    )
    person: PersonOut
    at: dt.datetime
    place: str | None
    video_link: str | None
    person_invited: bool
    relatives: RelativesOut
    participants: list[ParticipantOut]
    status: str
    version: int


class ActionIn(_In):
    """One planned action (insats): who carries it out — a unit of any member, or an actor
    outside the federation named in words — and by when it starts and ends. The list's
    order is the plan's."""

    intervention: Intervention
    owner: UnitRef | None = Field(
        None, description="the unit that carries it out (of any member; it sees the action)"
    )
    outside_actor: str | None = Field(
        None,
        min_length=2,
        max_length=200,
        description="instead of `owner`: an actor outside the federation, in words "
        "(Försäkringskassan, the person, a relative); the coordinator records its steps",
    )
    start_by: IsoDate | None = Field(None, description="the last day for it to start")
    end_by: IsoDate | None = Field(None, description="the last day for it to end")
    description: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _owner_and_dates(self) -> Self:
        if (self.owner is None) == (self.outside_actor is None):
            raise PydanticCustomError(
                "owner_or_outside_actor", "give either an owner unit or an outside actor"
            )
        if self.start_by and self.end_by and self.end_by < self.start_by:
            raise PydanticCustomError("start_before_end", "end_by is before start_by")
        return self


class AttendanceIn(_In):
    """Who took part in the meeting."""

    units: list[UnitRef] = Field(default_factory=list, max_length=30)
    person: JsonBool = Field(False, description="the person took part")
    relatives: Annotated[int, Field(ge=0, le=10), JSON_INT] = Field(
        0, description="how many relatives took part"
    )


class PlanIn(_In):
    """The meeting's plan: the person's own goals and the others, the ordered actions, the
    coordinating function (one unit per huvudman taking part), the follow-up."""

    model_config = request_config(
        {
            "own_goals": ["Jag vill ha ett eget boende före sommaren."],
            "goals": ["Drogfrihet"],
            "actions": [
                {
                    "intervention": "abstinensbehandling",
                    "owner": {"orgnr": "232100-0065", "unit_id": "beroende"},
                    "start_by": "2026-12-14",
                    "end_by": "2026-12-28",
                },
                {
                    "intervention": "boendestod",
                    "owner": {"orgnr": "212000-0647", "unit_id": "boendestod"},
                    "start_by": "2027-01-11",
                },
                {
                    "intervention": "sysselsattning",
                    "outside_actor": "Försäkringskassan",
                    "description": "Utreda rätt till aktivitetsersättning.",
                },
            ],
            "coordinators": [
                {"orgnr": "212000-0647", "unit_id": "soc-vuxna"},
                {"orgnr": "232100-0065", "unit_id": "beroende"},
            ],
            "follow_up_date": "2027-02-01",
            "attendance": {
                "units": [
                    {"orgnr": "232100-0065", "unit_id": "beroende"},
                    {"orgnr": "212000-0647", "unit_id": "soc-vuxna"},
                ],
                "person": True,
                "relatives": 1,
            },
            "person_agrees": True,
        }
    )

    own_goals: list[str] = Field(
        default_factory=list, max_length=10, description="goals in the person's own words"
    )
    goals: list[str] = Field(default_factory=list, max_length=20)
    actions: list[ActionIn] = Field(min_length=1, max_length=50)
    coordinators: list[UnitRef] = Field(
        min_length=1,
        max_length=2,
        description="the coordinating function: one unit per huvudman (a region's and a "
        "kommun's where both take part); each reads the plan, revises it and gets its "
        "escalations",
    )
    follow_up_date: IsoDate = Field(description="not in the past")
    attendance: AttendanceIn | None = Field(None, description="who took part in the meeting")
    person_agrees: JsonBool | None = Field(
        None, description="whether the person agrees to the plan (absent: not asked)"
    )

    @field_validator("own_goals", "goals")
    @classmethod
    def _goal_texts(cls, goals: list[str]) -> list[str]:
        if any(not 2 <= len(g.strip()) <= 500 for g in goals):
            raise PydanticCustomError("goal_text", "each goal is 2 to 500 characters")
        return [g.strip() for g in goals]

    @field_validator("coordinators")
    @classmethod
    def _one_per_member(cls, units: list[UnitRef]) -> list[UnitRef]:
        if len({u.orgnr for u in units}) != len(units):
            raise PydanticCustomError(
                "one_coordinator_per_member", "at most one coordinating unit per huvudman"
            )
        return units


class ActionStep(enum.StrEnum):
    """The steps of a planned action: planned → started → ended, or cancelled."""

    STARTED = "started"
    ENDED = "ended"
    CANCELLED = "cancelled"


class ActionStepIn(_In):
    """Move an action on: start it, end it with an outcome, or cancel it with a reason."""

    model_config = request_config(
        {"to": "started"},
        {"to": "ended", "outcome": "completed", "note": "Fullföljd behandling."},
        {"to": "cancelled", "reason": "Personen flyttade till annan kommun."},
    )

    to: ActionStep
    outcome: str | None = Field(
        None,
        pattern=r"^(completed|replaced|interrupted)$",
        description="with `ended`: completed, replaced (by another action) or interrupted",
    )
    note: str | None = Field(None, min_length=2, max_length=500)
    reason: str | None = Field(None, min_length=2, max_length=500, description="with `cancelled`")

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.to is ActionStep.ENDED and self.outcome is None:
            raise PydanticCustomError("outcome_required", "ending an action needs its outcome")
        if self.to is ActionStep.CANCELLED and self.reason is None:
            raise PydanticCustomError("reason_required", "cancelling an action needs a reason")
        return self


class ActionOut(BaseModel):
    """A planned action as the plan holds it."""

    id: str
    position: int
    intervention: str
    description: str = ""
    orgnr: str | None = Field(None, description="the owner unit's member (none: outside actor)")
    unit_id: str | None = Field(None, description="the owner unit")
    outside_actor: str | None = None
    start_by: dt.date | None = None
    end_by: dt.date | None = None
    status: str = Field(description="planned, started, ended or cancelled")
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    outcome: str | None = Field(None, description="ended: completed, replaced or interrupted")
    note: str | None = None
    reason: str | None = Field(None, description="cancelled: why")
    allowed_steps: list[str] = Field(
        default_factory=list, description="the steps your unit may take on it now"
    )


class AttendanceOut(BaseModel):
    units: list[dict[str, str]] = Field(default_factory=list)
    person: bool = False
    relatives: int = 0


class PlanOut(BaseModel):
    id: str
    owner_orgnr: str
    owner_unit_id: str
    kind: str
    person: PersonOut
    own_goals: list[str] = Field(default_factory=list, description="in the person's own words")
    goals: list[str]
    actions: list[ActionOut]
    coordinators: list[dict[str, str]]
    follow_up_date: dt.date
    attendance: AttendanceOut | None = None
    person_agrees: bool | None = None
    viewers: UnitsOut = Field(description="the units that may read this copy of the plan")
    version: int
    status: str = Field(
        "active",
        description="`withdrawn`: a party's copy whose basis ended; nothing about the person "
        "is left in it",
    )


class ActionItem(BaseModel):
    """An action in a unit's worklist: the plan it belongs to and where it stands."""

    plan_id: str
    plan_kind: str
    plan_owner_orgnr: str
    plan_version: int = Field(description='send it as `If-Match` (`"<version>"`) to take a step')
    person: PersonOut
    action: ActionOut
    overdue: str | None = Field(
        None, description="`start` or `end`: the date to start or to end it has passed"
    )


class CoordinatedPlan(BaseModel):
    id: str
    kind: str
    owner_orgnr: str
    person: PersonOut
    follow_up_date: dt.date
    version: int
    open_actions: int


class UnansweredInvitation(BaseModel):
    """An invited unit that has not answered its invitation to a plan's follow-up meeting."""

    plan_id: str
    meeting_id: str
    meeting_kind: str
    at: dt.datetime
    orgnr: str
    unit_id: str
    task_id: str
    status: Status = Field(description="`sent`, `delivered` or `acknowledged`")
    acknowledge_by: dt.date = ACKNOWLEDGE_BY
    answer_by: dt.date | None = ANSWER_BY
    overdue: bool = OVERDUE


class CoordinationOut(BaseModel):
    """A coordinating unit's worklist."""

    plans: list[CoordinatedPlan] = Field(description="the plans the unit coordinates")
    actions_overdue: list[ActionItem]
    follow_ups_due: list[CoordinatedPlan] = Field(
        description="plans whose follow-up date has come while an action is still open"
    )
    invitations_unanswered: list[UnansweredInvitation] = Field(
        default_factory=list,
        description="invited units that have not answered their invitation to a coming "
        "follow-up meeting of these plans convened at this member (`overdue`: past "
        "`acknowledge_by`, or acknowledged and past `answer_by`)",
    )


class SkippedDayOut(BaseModel):
    """A day a deadline's count passed over, and why."""

    date: dt.date
    reason: str = Field(
        description="`weekend` (a Saturday or Sunday), `public_holiday` (allmän helgdag, "
        "lag 1989:253) or `eve` (midsommarafton, julafton, nyårsafton: not working days)",
        pattern="^(weekend|public_holiday|eve)$",
    )
    name: str = Field(description="the day's Swedish name: `lördag`, `Juldagen`, `Julafton`")


class DeadlineCountOut(BaseModel):
    """A deadline counted as the referral service counts its own."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-12-23T10:00:00+01:00",
                    "kind": None,
                    "urgency": None,
                    "working_days": 2,
                    "hours": None,
                    "due_on": "2026-12-29",
                    "due_at": "2026-12-29T23:59:00+01:00",
                    "skipped": [
                        {"date": "2026-12-24", "reason": "eve", "name": "Julafton"},
                        {"date": "2026-12-25", "reason": "public_holiday", "name": "Juldagen"},
                        {"date": "2026-12-26", "reason": "public_holiday",
                         "name": "Annandag jul"},
                        {"date": "2026-12-27", "reason": "weekend", "name": "söndag"},
                    ],
                }
            ]
        },
    )  # fmt: skip

    from_: dt.datetime = Field(alias="from", description="the instant counted from")
    kind: ReferralKind | None = Field(
        description="the kind whose acknowledgement deadline this is (when asked by kind)"
    )
    urgency: Urgency | None = Field(description="its urgency (when asked by kind)")
    working_days: int | None = Field(
        description="Swedish working days counted after the day of `from` (0: that day "
        "itself); null when counted in hours"
    )
    hours: int | None = Field(
        description="hours counted after `from`, day and night; null when counted in days"
    )
    due_on: dt.date = Field(description="the last day, in Sweden")
    due_at: dt.datetime = Field(
        description="the instant it is due: 23:59 Swedish time on `due_on` for working days, "
        "`from` plus the hours otherwise (Swedish time, with its offset)"
    )
    skipped: list[SkippedDayOut] = Field(
        description="the days after the day of `from` up to `due_on` that were not counted, "
        "in order (none for hours)"
    )
