"""The block of details each kind of referral carries, beside the kinds registry.

``shared/domain/kinds.py`` says what each kind means (its purpose, categories, deadlines,
receivers, the name of its block); this module holds the block's model, one per kind, in
:data:`DETAILS`. The API's ``ReferralCreate`` gains one optional field per entry
(``KindSpec.details_field``), and a unit test fails when a kind has no model here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from services.referral.codes import Tristate
from shared.domain.calendar import to_local
from shared.domain.kinds import KINDS, ReferralKind
from shared.domain.labelled import LabelledEnum
from shared.identity.identifiers import Kommunkod, Organisationsnummer
from shared.web.fields import IsoAwareDatetime, IsoDate, JsonBool, request_config

UnitId = str
_UNIT = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class _In(BaseModel):
    model_config = request_config()


class UnitRef(_In):
    """A unit of a member."""

    orgnr: Organisationsnummer
    unit_id: UnitId = _UNIT


class Attachment(_In):
    """A document by reference (never the document itself): where the receiver finds it,
    which must be somewhere both members reach. A document itself is uploaded and named in
    ``attachment_ids`` (ADR 0023)."""

    title: str = Field(min_length=2, max_length=200)
    reference: str = Field(min_length=2, max_length=500, description="where the receiver gets it")


class VardkedjeremissDetails(_In):
    """The units that should take part in the joint referral meeting, and whether a
    planned treatment requires the person to be drug-free."""

    participants: list[UnitRef] = Field(default_factory=list, max_length=20)
    treatment_requires_drug_free: JsonBool = False


class KontaktbegaranDetails(_In):
    kommunkod: Kommunkod = Field(description="the person's kommun of residence")


class SipDetails(_In):
    meeting_at: IsoAwareDatetime
    place: str | None = Field(None, max_length=300)
    video_link: str | None = Field(None, max_length=500, pattern=r"^https://")
    answer_by: IsoDate | None = Field(
        None,
        description="the last day to answer (at the latest the meeting's day); default: the "
        "kind's working days after the invited unit acknowledges",
    )

    @model_validator(mode="after")
    def _where(self) -> Self:
        if not self.place and not self.video_link:
            raise PydanticCustomError("place_or_link", "give a place or a video link")
        if self.answer_by is not None and self.answer_by > to_local(self.meeting_at).date():
            raise PydanticCustomError("answer_by_after_meeting", "answer before the meeting")
        return self


class DischargeDetails(_In):
    expected_discharge_date: IsoDate
    sip_exists: Tristate = Tristate.UNKNOWN


class PlacementForm(LabelledEnum):
    """The legal form of an adult's placement at an HVB (hem för vård eller boende) for
    harmful use or dependence."""

    SOL_BISTAND = "sol_bistand", "Bistånd enligt socialtjänstlagen (frivillig placering)"
    LVM_27 = "lvm_27", "Vård enligt LVM i annan form än LVM-hem (27 § LVM)"
    KONTRAKTSVARD = "kontraktsvard", "Kontraktsvård (30 kap. 9 § brottsbalken)"
    ANNAN = "annan", "Annan placeringsform"
    EJ_ANGIVEN = "ej_angiven", "Ej angiven"


LEGACY_HVB_FLAG = "individual_plan_invited"
"""The HVB block's boolean before issue 22 (the region "invited" without a meeting): a block
that has it and no ``placement_form`` is read as :meth:`HvbDetails._before_issue_22` says."""


class HvbDetails(_In):
    """A kommun places a person at an HVB and tells the region: the legal form, the home,
    and the period (from ``placement_date`` to ``expected_end_date``, or ``open_ended``).
    The region is invited to the SIP the kommun convenes for it (a SIP meeting naming this
    referral in ``for_referral_id``), by the deadline the sender's view shows (``sip_by``)."""

    model_config = request_config(
        {
            "placement_form": "sol_bistand",
            "placement_date": "2026-12-21",
            "expected_end_date": "2027-03-21",
            "hvb_name": "Behandlingshemmet Gläntan",
        },
        {
            "placement_form": "lvm_27",
            "placement_date": "2026-12-21",
            "open_ended": True,
            "hvb_name": "Behandlingshemmet Gläntan",
        },
    )

    placement_form: PlacementForm = Field(
        description="the legal form of the placement (`ej_angiven`: not stated, as in a "
        "notification from before the form was asked)"
    )
    placement_date: IsoDate = Field(description="the day the placement starts")
    expected_end_date: IsoDate | None = Field(
        None, description="the day the placement is expected to end (or `open_ended`)"
    )
    open_ended: JsonBool = Field(
        False,
        validate_default=True,
        description="tills vidare: no end day is set (then no `expected_end_date`)",
    )
    hvb_name: str = Field(min_length=2, max_length=200, description="the treatment home")

    @model_validator(mode="before")
    @classmethod
    def _before_issue_22(cls, data: Any) -> Any:
        """A block in the shape before issue 22 — stored, sent by a member not yet upgraded,
        or from an old client — is still accepted: its ``individual_plan_invited`` said
        nothing (the linked SIP says it now) and is dropped, its form is ``ej_angiven`` and,
        with no end given, its period open-ended."""
        if not isinstance(data, dict) or LEGACY_HVB_FLAG not in data:
            return data
        upgraded = {k: v for k, v in data.items() if k != LEGACY_HVB_FLAG}
        if "placement_form" not in upgraded:
            upgraded["placement_form"] = PlacementForm.EJ_ANGIVEN.value
            if upgraded.get("expected_end_date") is None:
                upgraded["open_ended"] = True
        return upgraded

    @field_validator("expected_end_date")
    @classmethod
    def _after_placement(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("placement_date")
        if value is not None and start is not None and value <= start:
            raise PydanticCustomError("end_after_placement", "the end is after the placement day")
        return value

    @field_validator("open_ended")
    @classmethod
    def _one_period(cls, value: bool, info: ValidationInfo) -> bool:
        end = info.data.get("expected_end_date")
        if value and end is not None:
            raise PydanticCustomError(
                "end_date_or_open_ended", "give an expected end date or open_ended, not both"
            )
        if not value and end is None and "expected_end_date" in info.data:
            raise PydanticCustomError(
                "period_required", "give the expected end date, or open_ended: true"
            )
        return value


class LvmGround(LabelledEnum):
    """Why care under LVM may be needed (4 § LVM): the report names at least one."""

    HALSA_I_FARA = "halsa_i_fara", "Utsätter sin fysiska eller psykiska hälsa för allvarlig fara"
    FORSTORA_LIVET = "forstora_livet", "Löper en uppenbar risk att förstöra sitt liv"
    SKADA_SIG_ELLER_NARSTAENDE = (
        "skada_sig_eller_narstaende",
        "Kan befaras komma att allvarligt skada sig själv eller någon närstående",
    )


class LvmDetails(_In):
    """A report under 6 § LVM: the kommun where the person lives starts an investigation
    (no consent is asked; the sender states the legal basis ``lvm_anmalan``)."""

    kommunkod: Kommunkod = Field(description="the person's kommun of residence")
    grounds: list[LvmGround] = Field(min_length=1, max_length=len(LvmGround))
    reporter_role: str = Field(
        min_length=2, max_length=100, description="the reporting function, e.g. läkare"
    )

    @field_validator("grounds")
    @classmethod
    def _unique(cls, value: list[LvmGround]) -> list[LvmGround]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("unique", "a ground is named twice")
        return value


class Concern(LabelledEnum):
    """What the concern for the child is about."""

    FORALDERS_BRUK = "foralders_bruk", "En förälders skadliga bruk eller beroende"
    VALD_I_NARA_RELATION = "vald_i_nara_relation", "Våld i nära relation"
    BRISTER_I_OMSORGEN = "brister_i_omsorgen", "Brister i omsorgen"
    EGET_BRUK = "eget_bruk", "Barnets eget bruk av alkohol eller droger"
    ANNAT = "annat", "Annat"


class OrosanmalanDetails(_In):
    """A report of concern for a child (the person is the child): to the kommun's
    children-and-family function, or its out-of-hours service when the child may need
    protection now. No consent is asked; the sender states the legal basis
    ``orosanmalan``."""

    kommunkod: Kommunkod = Field(description="the child's kommun of residence")
    concerns: list[Concern] = Field(min_length=1, max_length=len(Concern))
    immediate_danger: JsonBool = Field(
        description="the child may need protection now (send it `acute`)"
    )
    guardians_informed: Tristate = Field(
        description="whether the child's guardians know of the report"
    )

    @field_validator("concerns")
    @classmethod
    def _unique(cls, value: list[Concern]) -> list[Concern]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("unique", "a concern is named twice")
        return value


DETAILS: dict[ReferralKind, type[BaseModel]] = {
    ReferralKind.VARDKEDJEREMISS: VardkedjeremissDetails,
    ReferralKind.KONTAKTBEGARAN: KontaktbegaranDetails,
    ReferralKind.SIP_KALLELSE: SipDetails,
    ReferralKind.UTSKRIVNINGSPLANERING: DischargeDetails,
    ReferralKind.HVB_UNDERRATTELSE: HvbDetails,
    # A professional meeting (without the person) is convened like a SIP meeting.
    ReferralKind.SAMORDNINGSMOTE: SipDetails,
    ReferralKind.LVM_ANMALAN: LvmDetails,
    ReferralKind.OROSANMALAN: OrosanmalanDetails,
}
"""Each kind's block of details (the field it is given in is ``KINDS[kind].details_field``)."""

DETAILS_FIELDS = tuple(KINDS[kind].details_field for kind in DETAILS)
