"""Code lists shared by several services: interventions and legal bases (the kinds of
referral have a registry of their own: ``shared/domain/kinds.py``)."""

from __future__ import annotations

import enum

from shared.domain.labelled import LabelledEnum, labels


class Intervention(LabelledEnum):
    """Interventions (insatser) a unit offers, from the seed reports."""

    ABSTINENSBEDOMNING = "abstinensbedomning", "Abstinensbedömning"
    ABSTINENSBEHANDLING = "abstinensbehandling", "Abstinensbehandling"
    LAKEMEDELSASSISTERAD_BEHANDLING = (
        "lakemedelsassisterad_behandling",
        "Läkemedelsassisterad behandling (LARO)",
    )
    NEDTRAPPNING = "nedtrappning", "Nedtrappning"
    MOTIVATIONSSAMTAL = "motivationssamtal", "Motivationssamtal (MI)"
    PRIMARBEHANDLING = "primarbehandling", "Primärbehandling"
    EFTERVARD = "eftervard", "Eftervård"
    ATERFALLSPREVENTION = "aterfallsprevention", "Återfallsprevention"
    PROVTAGNING = "provtagning", "Provtagning"
    KBT = "kbt", "KBT"
    SPEL_OM_PENGAR = "spel_om_pengar", "Spel om pengar"
    ANHORIGSTOD = "anhorigstod", "Anhörigstöd"
    VALD_I_NARA_RELATION = "vald_i_nara_relation", "Våld i nära relation"
    BOSTAD_FORST = "bostad_forst", "Bostad först"
    BOENDESTOD = "boendestod", "Boendestöd"
    SYSSELSATTNING = "sysselsattning", "Sysselsättning"
    SPRUTUTBYTE = "sprututbyte", "Sprututbyte"
    NALOXON = "naloxon", "Naloxonutdelning"
    TILLNYKTRING = "tillnyktring", "Tillnyktring"
    TOLVSTEGSBEHANDLING = "tolvstegsbehandling", "12-stegsbehandling"
    PSYKIATRISK_BEDOMNING = "psykiatrisk_bedomning", "Psykiatrisk bedömning"
    UTREDNING_SOL = "utredning_sol", "Utredning enligt SoL"
    HVB_PLACERING = "hvb_placering", "Placering på HVB"
    FAMILJEBEHANDLING = "familjebehandling", "Familjebehandling"
    BARN_SOM_ANHORIGA = "barn_som_anhoriga", "Stöd till barn som anhöriga"
    SIP_SAMORDNING = "sip_samordning", "Samordning av SIP"
    HELDYGNSVARD = "heldygnsvard", "Heldygnsvård"
    LAKARBEDOMNING = "lakarbedomning", "Läkarkontakt – medicinsk bedömning och diagnos"
    MOTIVATIONSGRUPP = "motivationsgrupp", "Motivationsgrupp"
    UTREDNING_BEROENDE = "utredning_beroende", "Utredning av riskbruk, missbruk och beroende"
    CANNABISPROGRAM = "cannabisprogram", "Cannabisprogram (HAP, CPU)"
    EFTERVARDSGRUPP = "eftervardsgrupp", "Eftervårdsgrupp"
    ANHORIGGRUPP = "anhoriggrupp", "Anhöriggrupp (vuxna och barn)"
    FOREBYGGANDE_ARBETE = "forebyggande_arbete", "Förebyggande arbete"
    INTERNETBASERAD_BEHANDLING = "internetbaserad_behandling", "Behandling via internet"
    VACCINATION_HEPATIT = "vaccination_hepatit", "Vaccination mot hepatit"
    IPS = "ips", "Arbetslivsinriktad rehabilitering (IPS)"
    CASE_MANAGEMENT = "case_management", "Case management"
    PERSONLIGT_OMBUD = "personligt_ombud", "Personligt ombud"
    VRAKNINGSFOREBYGGANDE = "vrakningsforebyggande", "Vräkningsförebyggande arbete"
    ANDRAHANDSKONTRAKT = "andrahandskontrakt", "Bostad med andrahandskontrakt"
    STODBOENDE = "stodboende", "Stödboende"
    SKYDDSBEDOMNING = "skyddsbedomning", "Skyddsbedömning (barn)"


INTERVENTION_LABELS: dict[Intervention, str] = labels(Intervention)


class LegalBasis(enum.StrEnum):
    """Legal bases that let a message cross without consent (domain.md)."""

    OSL_25_12 = "osl_25_12"  # hälso- och sjukvård -> socialtjänst
    OSL_26_9 = "osl_26_9"  # socialtjänst -> hälso- och sjukvård
    LVM_ANMALAN = "lvm_anmalan"  # healthcare's duty to report under LVM 6 §
    OROSANMALAN = "orosanmalan"  # report of concern for a child
    NODSITUATION = "nodsituation"  # an acute emergency


class OslGround(enum.StrEnum):
    """Why OSL 25:12 / 26:9 applies (one is required with those bases)."""

    UNDER_18 = "under_18"
    PERSISTENT_MISUSE = "persistent_misuse"
    COMPULSORY_PSYCHIATRIC_CARE = "compulsory_psychiatric_care"


OSL_BASES = frozenset({LegalBasis.OSL_25_12, LegalBasis.OSL_26_9})
"""The bases that need an :class:`OslGround`."""
