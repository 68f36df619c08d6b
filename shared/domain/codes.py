"""Code lists shared by several services: interventions and legal bases (the kinds of
referral have a registry of their own: ``shared/domain/kinds.py``)."""

from __future__ import annotations

import enum


class Intervention(enum.StrEnum):
    """Interventions (insatser) a unit offers, from the seed reports."""

    ABSTINENSBEDOMNING = "abstinensbedomning"
    ABSTINENSBEHANDLING = "abstinensbehandling"
    LAKEMEDELSASSISTERAD_BEHANDLING = "lakemedelsassisterad_behandling"
    NEDTRAPPNING = "nedtrappning"
    MOTIVATIONSSAMTAL = "motivationssamtal"
    PRIMARBEHANDLING = "primarbehandling"
    EFTERVARD = "eftervard"
    ATERFALLSPREVENTION = "aterfallsprevention"
    PROVTAGNING = "provtagning"
    KBT = "kbt"
    SPEL_OM_PENGAR = "spel_om_pengar"
    ANHORIGSTOD = "anhorigstod"
    VALD_I_NARA_RELATION = "vald_i_nara_relation"
    BOSTAD_FORST = "bostad_forst"
    BOENDESTOD = "boendestod"
    SYSSELSATTNING = "sysselsattning"
    SPRUTUTBYTE = "sprututbyte"
    NALOXON = "naloxon"
    TILLNYKTRING = "tillnyktring"
    TOLVSTEGSBEHANDLING = "tolvstegsbehandling"
    PSYKIATRISK_BEDOMNING = "psykiatrisk_bedomning"
    UTREDNING_SOL = "utredning_sol"
    HVB_PLACERING = "hvb_placering"
    FAMILJEBEHANDLING = "familjebehandling"
    BARN_SOM_ANHORIGA = "barn_som_anhoriga"
    SIP_SAMORDNING = "sip_samordning"
    HELDYGNSVARD = "heldygnsvard"


INTERVENTION_LABELS: dict[Intervention, str] = {
    Intervention.ABSTINENSBEDOMNING: "Abstinensbedömning",
    Intervention.ABSTINENSBEHANDLING: "Abstinensbehandling",
    Intervention.LAKEMEDELSASSISTERAD_BEHANDLING: "Läkemedelsassisterad behandling (LARO)",
    Intervention.NEDTRAPPNING: "Nedtrappning",
    Intervention.MOTIVATIONSSAMTAL: "Motivationssamtal (MI)",
    Intervention.PRIMARBEHANDLING: "Primärbehandling",
    Intervention.EFTERVARD: "Eftervård",
    Intervention.ATERFALLSPREVENTION: "Återfallsprevention",
    Intervention.PROVTAGNING: "Provtagning",
    Intervention.KBT: "KBT",
    Intervention.SPEL_OM_PENGAR: "Spel om pengar",
    Intervention.ANHORIGSTOD: "Anhörigstöd",
    Intervention.VALD_I_NARA_RELATION: "Våld i nära relation",
    Intervention.BOSTAD_FORST: "Bostad först",
    Intervention.BOENDESTOD: "Boendestöd",
    Intervention.SYSSELSATTNING: "Sysselsättning",
    Intervention.SPRUTUTBYTE: "Sprututbyte",
    Intervention.NALOXON: "Naloxonutdelning",
    Intervention.TILLNYKTRING: "Tillnyktring",
    Intervention.TOLVSTEGSBEHANDLING: "12-stegsbehandling",
    Intervention.PSYKIATRISK_BEDOMNING: "Psykiatrisk bedömning",
    Intervention.UTREDNING_SOL: "Utredning enligt SoL",
    Intervention.HVB_PLACERING: "Placering på HVB",
    Intervention.FAMILJEBEHANDLING: "Familjebehandling",
    Intervention.BARN_SOM_ANHORIGA: "Stöd till barn som anhöriga",
    Intervention.SIP_SAMORDNING: "Samordning av SIP",
    Intervention.HELDYGNSVARD: "Heldygnsvård",
}


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
