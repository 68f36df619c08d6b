"""The search index against a brute-force reference: same matches, same order, and paging
by cursor yields every match exactly once — for random units, queries and filters, and
after units change (the caches of a generation must not outlive it)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from services.directory.models import ReplicaUnit
from services.directory.search import Filters, SearchIndex, fold, words

NAMES = ["Boendestöd", "Beroendemottagning", "Psykiatri", "Mottagning", "Växjö", "Anhörigstöd"]
MISSION = ["stöd i boendet", "beroende och spel", "unga vuxna", "abstinens", "motivation"]
KINDS = ["boendestod", "beroendemottagning", "vuxenpsykiatri", "remissport"]
INTERVENTIONS = ["boendestod", "motivationssamtal", "abstinensbehandling", "spel_om_pengar"]
KOMMUNER = ["0764", "0780", "0760", "0767"]
MEMBERS = ["232100-0065", "212000-0647", "212000-0613"]
STATUSES = ["active", "temporarily_closed", "inactive"]
QUERIES = ["", "stod", "Boendestöd", "bero", "mottagning vaxjo", "spel", "a", "zzz", "stöd unga"]


def unit(rng: random.Random, i: int) -> ReplicaUnit:
    lo = rng.choice([None, 13, 18, 26])
    return ReplicaUnit(
        unit_id=f"u{i:04d}",
        owner_orgnr=rng.choice(MEMBERS),
        name=f"{rng.choice(NAMES)} {rng.choice(NAMES)} {i}",
        kind=rng.choice(KINDS),
        mission=" ".join(rng.sample(MISSION, 2)),
        target_groups=[{"age_min": lo, "age_max": None if lo is None else lo + 20}]
        if rng.random() < 0.5
        else [],
        interventions=rng.sample(INTERVENTIONS, rng.randint(0, 3)),
        kommunkoder=rng.sample(KOMMUNER, rng.randint(1, 3)),
        contact_paths=[{"reason": "kontaktbegaran", "channel": "phone", "phone": "0470-1000"}],
        referral_kinds=rng.sample(["kontaktbegaran", "vardkedjeremiss"], rng.randint(0, 2)),
        status=rng.choice(STATUSES),
    )


def texts(row: ReplicaUnit) -> set[str]:
    from services.directory.search import _field_texts

    return {w for text in _field_texts(row).values() for w in words(text)}


def reference(
    rows: dict[str, ReplicaUnit], index: SearchIndex, query: str, filters: Filters
) -> list[str]:
    q = words(query)
    hits = []
    for uid, row in rows.items():
        if not filters.accepts(index.docs[uid]):
            continue
        if q and not all(any(w.startswith(qw) for w in texts(row)) for qw in q):
            continue
        hits.append(uid)
    if not q:
        return sorted(hits, key=lambda u: (fold(rows[u].name), u))
    scores = index.score(query)
    return sorted(hits, key=lambda u: (-scores[u], fold(rows[u].name), u))


def random_filters(rng: random.Random) -> Filters:
    kw: dict[str, Any] = {}
    if rng.random() < 0.4:
        kw["kommunkod"] = rng.choice(KOMMUNER)
    if rng.random() < 0.3:
        kw["member"] = rng.choice(MEMBERS)
    if rng.random() < 0.2:
        kw["kind"] = rng.choice(KINDS)
    if rng.random() < 0.2:
        kw["intervention"] = rng.choice(INTERVENTIONS)
    if rng.random() < 0.2:
        kw["referral_kind"] = "kontaktbegaran"
    if rng.random() < 0.3:
        kw["age"] = rng.choice([10, 15, 20, 30, 50])
    if rng.random() < 0.3:
        kw["statuses"] = frozenset(rng.sample(STATUSES, rng.randint(1, 3)))
    return Filters(**kw)


def all_pages(index: SearchIndex, query: str, filters: Filters, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = index.search(query, filters, cursor, limit)
        assert page.total >= len(seen) + len(page.items)
        seen += [d.unit_id for d, _ in page.items]
        if page.next_cursor is None:
            assert len(seen) == page.total
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("seed", range(6))
def test_pages_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    rows = {r.unit_id: r for r in (unit(rng, i) for i in range(rng.choice([30, 400, 900])))}
    index = SearchIndex()
    for row in rows.values():
        index.upsert(row)
    for _ in range(40):
        query, filters = rng.choice(QUERIES), random_filters(rng)
        expected = reference(rows, index, query, filters)
        assert all_pages(index, query, filters, rng.choice([1, 7, 20, 100])) == expected
        first = index.search(query, filters, None, 5)
        assert first.total == len(expected)
        assert [d.unit_id for d, _ in first.items] == expected[:5]


def test_changes_start_a_new_generation() -> None:
    rng = random.Random(99)
    rows = {r.unit_id: r for r in (unit(rng, i) for i in range(300))}
    index = SearchIndex()
    for row in rows.values():
        index.upsert(row)
    filters = Filters(kommunkod="0764")
    before = all_pages(index, "stod", filters, 20)  # fills the caches
    for uid in list(rows)[:60]:
        changed = unit(rng, int(uid[1:]))
        rows[uid] = changed
        index.upsert(changed)
    after = all_pages(index, "stod", filters, 20)
    assert after == reference(rows, index, "stod", filters)
    assert after != before or not before


def test_routing_candidates_come_from_the_kommun_and_status_sets() -> None:
    rng = random.Random(5)
    rows = [unit(rng, i) for i in range(200)]
    index = SearchIndex()
    for row in rows:
        index.upsert(row)
    got = {d.unit_id for d in index.serving("0764")}
    assert got == {r.unit_id for r in rows if r.status == "active" and "0764" in r.kommunkoder}
