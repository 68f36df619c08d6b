"""What consents and refusals have in common: the parties they name — checked as given,
stored, compared — and finding a record this member made by its id.

A consent names members (optionally units), never a blanket "everyone"; a refusal may name
a single member. An active refusal and an active consent of the same person must never
cover the same parties and purposes at once (a refusal's empty list of purposes is every
purpose).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from services.consent import decision as rules
from services.consent.models import Block, Consent, Refusal
from services.consent.repository import BlockRepository, ConsentRepository, RefusalRepository
from services.consent.schemas import PartyIn
from shared.data.work import Work
from shared.messaging.events.payloads import ConsentPartyRef
from shared.web.errors import FieldProblem, InvalidInput, NotFound

OwnedT = TypeVar("OwnedT", Consent, Refusal, Block)
HeldT = TypeVar("HeldT", Consent, Refusal)
_REPOSITORIES: dict[type[Any], Any] = {
    Consent: ConsentRepository,
    Refusal: RefusalRepository,
    Block: BlockRepository,
}


def invalid(problems: Sequence[FieldProblem]) -> InvalidInput:
    """The 422 naming every field problem found."""
    n = len(problems)
    return InvalidInput(f"{n} field{'s' * (n != 1)} invalid", errors=problems)


def party_dicts(parties: Iterable[PartyIn]) -> list[dict[str, Any]]:
    """Parties as stored (JSON)."""
    return [{"orgnr": p.orgnr, "unit_id": p.unit_id} for p in parties]


def parties_of(stored: Iterable[dict[str, Any]]) -> tuple[rules.Party, ...]:
    """Stored parties as the decision rules see them."""
    return tuple(rules.Party(p["orgnr"], p.get("unit_id")) for p in stored)


def party_refs(stored: Iterable[dict[str, Any]]) -> list[ConsentPartyRef]:
    """Stored parties as a consent's events carry them."""
    return [ConsentPartyRef(orgnr=p["orgnr"], unit_id=p.get("unit_id")) for p in stored]


def check_parties(
    parties: Sequence[PartyIn], *, owner_orgnr: str, federation: Sequence[str], field: str
) -> list[FieldProblem]:
    """Named members only: known to the federation, no duplicates, the owner included, and
    at least one other member (a consent is never a blanket "everyone")."""
    problems: list[FieldProblem] = []
    seen: set[tuple[str, str | None]] = set()
    for i, party in enumerate(parties):
        if federation and party.orgnr not in federation:
            problems.append(
                FieldProblem(
                    field=f"{field}.{i}.orgnr",
                    rule="unknown_party",
                    message="not a member of the federation",
                )
            )
        if (party.orgnr, party.unit_id) in seen:
            problems.append(
                FieldProblem(field=f"{field}.{i}", rule="duplicate_party", message="named twice")
            )
        seen.add((party.orgnr, party.unit_id))
    members = {p.orgnr for p in parties}
    if parties and owner_orgnr not in members:
        problems.append(
            FieldProblem(
                field=field, rule="owner_not_party", message="your own member must be a party"
            )
        )
    elif parties and len(members) < 2:
        problems.append(
            FieldProblem(
                field=field,
                rule="no_other_member",
                message="name at least one other member to share with",
            )
        )
    return problems


def overlaps(a: Sequence[rules.Party], b: Sequence[rules.Party]) -> bool:
    """Whether the two lists name a party in common (a whole member covers its units)."""
    return any(
        x.orgnr == y.orgnr and (x.unit_id is None or y.unit_id is None or x.unit_id == y.unit_id)
        for x in a
        for y in b
    )


def in_force(
    held: Iterable[HeldT], parties: list[dict[str, Any]], purposes: list[str]
) -> HeldT | None:
    """The first active consent or refusal of ``held`` that a new record of the other kind
    naming ``parties`` for ``purposes`` would meet (None: none)."""
    for row in held:
        refused, given = (
            (row.purposes, purposes) if isinstance(row, Refusal) else (purposes, row.purposes)
        )
        if (
            row.status == "active"
            and overlaps(parties_of(row.parties), parties_of(parties))
            and (not refused or set(refused) & set(given))
        ):
            return row
    return None


async def owned(work: Work, model: type[OwnedT], id_: str, missing: type[NotFound]) -> OwnedT:
    """The consent, refusal or block ``id_`` if this member recorded it (``missing``, a
    404, otherwise)."""
    row: OwnedT | None = await _REPOSITORIES[model](work.session).get_owned(id_, work.member)
    if row is None:
        raise missing()
    return row
