"""The directory's code lists, with Swedish labels for people and exports.

Codes are stable ASCII identifiers stored and sent; labels may change. A list grows by
adding a member here (and a label); codes are never reused for another meaning.
"""

from __future__ import annotations

import enum


class UnitKind(enum.StrEnum):
    """What kind of unit/function this is."""

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
    BARN_OCH_UNGDOM = "barn_och_ungdom"
    MOTTAGNING_UNGA_VUXNA = "mottagning_unga_vuxna"


UNIT_KIND_LABELS: dict[UnitKind, str] = {
    UnitKind.REMISSPORT: "Remissport",
    UnitKind.BEROENDEMOTTAGNING: "Beroendemottagning",
    UnitKind.VUXENPSYKIATRI: "Vuxenpsykiatri",
    UnitKind.PSYKOSENHET: "Psykosenhet",
    UnitKind.AKUTPSYKIATRI: "Akutpsykiatri",
    UnitKind.PRIMARVARD: "Primärvård",
    UnitKind.SOCIALTJANSTENS_MOTTAGNING: "Socialtjänstens mottagning",
    UnitKind.MYNDIGHETSUTOVNING_VUXNA: "Myndighetsutövning vuxna",
    UnitKind.BOENDESTOD: "Boendestöd",
    UnitKind.SYSSELSATTNING: "Sysselsättning",
    UnitKind.BEHANDLINGSHEM_HVB: "Behandlingshem/HVB",
    UnitKind.HELDYGNSVARD: "Heldygnsvård",
    UnitKind.INTEGRERAD_BEROENDEMOTTAGNING: "Integrerad beroendemottagning",
    UnitKind.ANHORIGSTOD: "Anhörigstöd",
    UnitKind.VARDKEDJEKOORDINATOR: "Vårdkedjekoordinator",
    UnitKind.BARN_OCH_UNGDOM: "Barn och ungdom",
    UnitKind.MOTTAGNING_UNGA_VUXNA: "Mottagning för unga vuxna",
}

# Kinds that take in new cases for a member: the routing fallback (issue 3, point 5).
INTAKE_KINDS: frozenset[UnitKind] = frozenset(
    {UnitKind.REMISSPORT, UnitKind.SOCIALTJANSTENS_MOTTAGNING}
)


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


class Channel(enum.StrEnum):
    """How a contact path reaches the function."""

    PHONE = "phone"
    FUNCTIONAL_EMAIL = "functional_email"
    SECURE_MAIL = "secure_mail"
    POSTAL_ADDRESS = "postal_address"
    INBOX = "inbox"


CHANNEL_LABELS: dict[Channel, str] = {
    Channel.PHONE: "Telefon",
    Channel.FUNCTIONAL_EMAIL: "Funktionsbrevlåda (e-post)",
    Channel.SECURE_MAIL: "Säker e-post",
    Channel.POSTAL_ADDRESS: "Postadress",
    Channel.INBOX: "Enhetens inkorg i vårdkedjan",
}


class UnitStatus(enum.StrEnum):
    ACTIVE = "active"
    TEMPORARILY_CLOSED = "temporarily_closed"
    INACTIVE = "inactive"
