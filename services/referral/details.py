"""The block of details each kind of referral carries, beside the kinds registry.

``shared/domain/kinds.py`` says what each kind means (its purpose, categories, deadlines,
receivers, the name of its block); this module holds the block's model, one per kind, in
:data:`DETAILS`. The API's ``ReferralCreate`` gains one optional field per entry
(``KindSpec.details_field``), and a unit test fails when a kind has no model here.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, field_validator, model_validator
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


class HvbDetails(_In):
    placement_date: IsoDate
    hvb_name: str = Field(min_length=2, max_length=200, description="the treatment home")
    individual_plan_invited: JsonBool = True


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
