"""Routing: which units should receive a referral of this kind, for this person?

Used by the referral service. Ranks the replica's active units that receive the kind and
cover the person's kommun: first by how many of the needed interventions they offer, then
by whether the age fits their target groups, then by kind (the kind's natural receivers
first). Each result carries the contact path to use for that referral kind. Never empty for
a kommun the federation serves: without a match it falls back to the intake units
(remissport, socialtjänstens mottagning) covering the kommun and says so (as NHS DoS's
catch-all does) — except for a kind only some unit kinds may receive (an orosanmälan: the
kommun's children-and-family function or its out-of-hours service), which is routed to
those kinds only, or nowhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from services.directory.codes import Channel, UnitKind
from services.directory.search import Doc, SearchIndex, age_fits, fold
from shared.domain.kinds import KINDS, REFERRAL_KIND_LABELS, ReferralKind

# The kinds of unit that naturally receive each referral kind, most natural first, and the
# intake units to fall back on (the kinds registry: shared/domain/kinds.py).
NATURAL_RECEIVERS: dict[ReferralKind, tuple[UnitKind, ...]] = {
    kind: tuple(UnitKind(u) for u in spec.natural_receivers) for kind, spec in KINDS.items()
}
INTAKE_ORDER: dict[ReferralKind, tuple[UnitKind, ...]] = {
    kind: tuple(UnitKind(u) for u in spec.intake_order) for kind, spec in KINDS.items()
}


@dataclass(frozen=True)
class Route:
    doc: Doc
    rank: int
    matched_needs: tuple[str, ...]
    age_fits: bool
    fallback: bool
    reason: str
    contact_path: dict[str, Any] | None


def contact_path_for(paths: list[dict[str, Any]], kind: ReferralKind) -> dict[str, Any] | None:
    """The path whose reason names the referral kind; else the unit's inbox; else the first."""
    label = fold(REFERRAL_KIND_LABELS[kind])
    for path in paths:
        reason = fold(str(path.get("reason", "")))
        if label in reason or kind.value in reason.replace(" ", "").replace("ä", "a"):
            return path
    for path in paths:
        if path.get("channel") == Channel.INBOX:
            return path
    return paths[0] if paths else None


def resolve(
    index: SearchIndex,
    *,
    kind: ReferralKind,
    kommunkod: str,
    needs: list[str],
    age: int | None,
    limit: int = 10,
    members_serving: Collection[str] = (),
) -> list[Route]:
    """Ranked receiving units; see the module docstring. ``members_serving`` are the members
    whose record says they serve the kommun (its territory, ADR 0013): only their units are
    ever routed to, and when none of their units names the kommun, their active units stand
    in. Empty if no member serves the kommun."""
    members = set(members_serving)
    # A unit naming a kommun its member does not serve is never a route (nor one of a member
    # without a record): else a kommun could draw another's referrals to itself.
    serving = [d for d in index.serving(kommunkod) if d.owner_orgnr in members]
    named_by_unit = bool(serving)
    if not serving:
        serving = [d for m in sorted(members) for d in index.of_member(m)]
    natural = NATURAL_RECEIVERS[kind]
    only = KINDS[kind].receiver_unit_kinds
    if only:
        # A kind only some unit kinds may receive (an orosanmälan: a children's function)
        # never falls back on another kind of unit.
        serving = [d for d in serving if d.kind in only]
    matches = [d for d in serving if kind.value in d.referral_kinds]
    fallback = not matches or not named_by_unit
    if fallback:
        intake = INTAKE_ORDER[kind]
        matches = [d for d in serving if d.kind in intake] or serving

    def key(d: Doc) -> tuple[int, int, int, str, str]:
        matched = len(set(needs) & d.interventions)
        fits = age is None or age_fits(d, age)
        order = INTAKE_ORDER[kind] if fallback else natural
        kind_rank = order.index(UnitKind(d.kind)) if d.kind in order else len(order)
        return (-matched, 0 if fits else 1, kind_rank, fold(d.name), d.unit_id)

    routes = []
    for rank, d in enumerate(sorted(matches, key=key)[:limit], start=1):
        matched = tuple(sorted(set(needs) & d.interventions))
        fits = age is None or age_fits(d, age)
        if not named_by_unit:
            why = "fallback: no unit names this kommun; the intake of the member serving it"
        elif fallback:
            why = "fallback: no unit here receives this kind; the member's intake takes it"
        elif matched:
            why = f"receives {kind.value}; offers {len(matched)} of {len(needs)} needs"
        else:
            why = f"receives {kind.value} and covers the kommun"
        routes.append(
            Route(
                doc=d,
                rank=rank,
                matched_needs=matched,
                age_fits=fits,
                fallback=fallback,
                reason=why,
                contact_path=contact_path_for(list(d.contact_paths), kind),
            )
        )
    return routes
