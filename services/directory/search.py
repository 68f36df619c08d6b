"""Full-text search over the federated replica: Swedish-aware, in memory, always fresh.

Each API process keeps an inverted index of the replica. Before a search it checks whether
the replica may have changed (on SQLite a ``stat`` of the WAL file, elsewhere one indexed
``max(change_seq)`` lookup) and loads only the rows changed since; so results are never
staler than the replica itself, and a search costs no full scan.

Text is folded for Swedish: lower case, diacritics removed (å, ä → a; ö → o; é → e), so
"boendestod" finds "Boendestöd" and "Vaxjo" finds "Växjö". Every query word matches as a
prefix ("beroende" finds "beroendemottagning"); all words must match (AND). Relevance is
BM25 over weighted fields: name ×3, kind and interventions ×2, contact reasons ×2,
mission ×1; ties are broken by name and id so paging is stable.

How a search stays fast (issue 3: p99 ≤ 20 ms at 200 requests/s over 20,000 units): the
index keeps, per filterable value (status, member, kommun, HSA-id, kind, referral kind,
intervention), the set of units having it, so a filter is a few C-level set
intersections; per query (its folded words) it keeps the matching units in ranked order,
computed once per *generation* (a generation ends when a replica change is indexed). A
page is then the first ``limit`` ranked units inside the filter set, found by a scan from
the cursor or, for a small intersection, by sorting just that intersection.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import re
import sys
import unicodedata
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from services.directory.codes import INTERVENTION_LABELS, UNIT_KIND_LABELS, label
from services.directory.models import ReplicaUnit
from services.directory.repository import ReplicaRepository
from shared.data.db import ChangeWatch, Database
from shared.service import ServiceContext

log = logging.getLogger("vardkedja.directory.search")
FIELD_WEIGHTS = {"name": 3.0, "kind": 2.0, "interventions": 2.0, "reasons": 2.0, "mission": 1.0}
_WORD = re.compile(r"[0-9a-z]+")
MAX_EXPANSIONS = 200  # prefix expansions per query word (a one-letter prefix could match all)
MAX_QUERY_WORDS = 12
K1, B = 1.2, 0.75
SMALL_INTERSECTION = 256  # up to this many matches a page is sorted directly
_LOAD_PAGE = 1000  # replica rows read at a time when the index is built
DEFAULT_STATUSES = frozenset({"active", "temporarily_closed"})


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics (Swedish-aware: å/ä → a, ö → o)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    return _WORD.findall(fold(text))


@dataclass(slots=True)
class Doc:
    """What the index keeps of one replica unit."""

    unit_id: str
    name: str
    owner_orgnr: str
    kind: str
    status: str
    kommunkoder: frozenset[str]
    interventions: frozenset[str]
    referral_kinds: frozenset[str]
    age_ranges: tuple[tuple[int | None, int | None], ...]
    contact_paths: tuple[dict[str, Any], ...]
    length: float  # weighted number of words, for BM25's length normalisation
    hsa_id: str | None = None
    sort_name: str = ""  # folded name, for ordering and paging without folding per request
    rendered: dict[str, Any] | None = None  # the API's item for this unit, built on first use


def _field_texts(row: ReplicaUnit) -> dict[str, str]:
    return {
        "name": row.name,
        "kind": f"{row.kind} {label(UNIT_KIND_LABELS, row.kind)}",
        "interventions": " ".join(
            f"{code} {label(INTERVENTION_LABELS, code)}" for code in row.interventions
        ),
        "reasons": " ".join(str(p.get("reason", "")) for p in row.contact_paths),
        "mission": row.mission or "",
    }


@dataclass(frozen=True)
class Filters:
    """What a search is narrowed to (hashable: it keys the filter-set cache)."""

    member: str | None = None
    kommunkod: str | None = None
    hsa_id: str | None = None
    kind: str | None = None
    referral_kind: str | None = None
    intervention: str | None = None
    age: int | None = None
    statuses: frozenset[str] = DEFAULT_STATUSES

    def accepts(self, doc: Doc) -> bool:
        """The reference definition of the filter for one unit (the index uses sets)."""
        if doc.status not in self.statuses:
            return False
        if self.member and doc.owner_orgnr != self.member:
            return False
        if self.kommunkod and self.kommunkod not in doc.kommunkoder:
            return False
        if self.hsa_id and doc.hsa_id != self.hsa_id:
            return False
        if self.kind and doc.kind != self.kind:
            return False
        if self.referral_kind and self.referral_kind not in doc.referral_kinds:
            return False
        if self.intervention and self.intervention not in doc.interventions:
            return False
        return self.age is None or age_fits(doc, self.age)


def age_fits(doc: Doc, age: int) -> bool:
    """No target groups means any age; else the age must fall in one group's range."""
    if not doc.age_ranges:
        return True
    return any((lo is None or age >= lo) and (hi is None or age <= hi) for lo, hi in doc.age_ranges)


@dataclass
class Ranked:
    """The units matching one query in result order, with their scores."""

    order: list[str]  # unit ids, best first (by name when there is no query)
    scores: dict[str, float]
    position: dict[str, int]
    ids: frozenset[str]


@dataclass
class Page:
    """One page of a search: the units with their scores, the total and the next cursor."""

    items: list[tuple[Doc, float]]
    total: int
    next_cursor: dict[str, Any] | None


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass
class SearchIndex:
    """An inverted index of the replica with BM25 scoring, prefix expansion and filter sets."""

    docs: dict[str, Doc] = field(default_factory=dict)
    # word -> unit id -> weighted term frequency
    postings: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    # filterable attribute -> value -> unit ids having it
    facets: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    seq: int = 0
    generation: int = 0
    _sorted_words: list[str] | None = None
    _total_length: float = 0.0
    _doc_words: dict[str, tuple[str, ...]] = field(default_factory=dict)  # a tuple is small
    # Per generation (cleared by any change):
    _bm25: dict[str, dict[str, float]] = field(default_factory=dict)
    _prefix: dict[str, dict[str, float]] = field(default_factory=dict)
    _length_norm: dict[str, float] | None = None
    _by_name: list[str] | None = None  # every unit id ordered by folded name, then id
    _name_rank: dict[str, int] | None = None
    _ranked: _Lru = field(default_factory=lambda: _Lru(256))
    _allowed: _Lru = field(default_factory=lambda: _Lru(256))

    # --- maintenance -----------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        self._bm25.clear()
        self._prefix.clear()
        self._length_norm = self._by_name = self._name_rank = None
        self._ranked.clear()
        self._allowed.clear()

    @staticmethod
    def _facet_values(doc: Doc) -> dict[str, Any]:
        return {
            "status": (doc.status,),
            "member": (doc.owner_orgnr,),
            "kind": (doc.kind,),
            "kommun": doc.kommunkoder,
            "hsa_id": (doc.hsa_id,) if doc.hsa_id else (),
            "referral_kind": doc.referral_kinds,
            "intervention": doc.interventions,
        }

    def _remove(self, unit_id: str) -> None:
        doc = self.docs.pop(unit_id, None)
        if doc is None:
            return
        self._total_length -= doc.length
        for w in self._doc_words.pop(unit_id, ()):
            posting = self.postings.get(w)
            if posting is not None:
                posting.pop(unit_id, None)
                if not posting:
                    del self.postings[w]
                    self._sorted_words = None
        for facet, values in self._facet_values(doc).items():
            for value in values:
                members = self.facets[facet].get(value)
                if members is not None:
                    members.discard(unit_id)
                    if not members:
                        del self.facets[facet][value]

    def upsert(self, row: ReplicaUnit) -> None:
        """Index (or re-index) one replica row."""
        self._changed()
        self._remove(row.unit_id)
        tf: dict[str, float] = defaultdict(float)
        length = 0.0
        for name, text in _field_texts(row).items():
            weight = FIELD_WEIGHTS[name]
            for w in words(text):
                tf[sys.intern(w)] += weight  # one string per word, however many units
                length += weight
        for w, value in tf.items():
            if w not in self.postings:
                self._sorted_words = None
            self.postings[w][row.unit_id] = value
        self._doc_words[row.unit_id] = tuple(tf)
        ages = tuple((g.get("age_min"), g.get("age_max")) for g in (row.target_groups or []))
        doc = Doc(
            unit_id=row.unit_id,
            name=row.name,
            owner_orgnr=row.owner_orgnr,
            kind=row.kind,
            status=row.status,
            kommunkoder=frozenset(row.kommunkoder),
            interventions=frozenset(row.interventions),
            referral_kinds=frozenset(row.referral_kinds),
            age_ranges=ages,
            contact_paths=tuple(row.contact_paths or ()),
            length=max(1.0, length),
            hsa_id=row.hsa_id,
            sort_name=fold(row.name),
        )
        self.docs[row.unit_id] = doc
        self._total_length += doc.length
        for facet, values in self._facet_values(doc).items():
            for value in values:
                self.facets[facet][value].add(row.unit_id)

    # --- scoring ---------------------------------------------------------------------

    def _expand(self, prefix: str) -> list[str]:
        if self._sorted_words is None:
            self._sorted_words = sorted(self.postings)
        start = bisect.bisect_left(self._sorted_words, prefix)
        out = []
        for w in self._sorted_words[start : start + MAX_EXPANSIONS]:
            if not w.startswith(prefix):
                break
            out.append(w)
        return out

    def _bm25_of(self, w: str) -> dict[str, float]:
        """BM25 weight of word ``w`` in every unit containing it."""
        cached = self._bm25.get(w)
        if cached is not None:
            return cached
        if self._length_norm is None:
            # BM25's length normalisation per unit, once per generation.
            avg = self._total_length / max(1, len(self.docs)) or 1.0
            base, slope = K1 * (1 - B), K1 * B / avg
            self._length_norm = {u: base + slope * d.length for u, d in self.docs.items()}
        norm = self._length_norm
        posting = self.postings[w]
        n = max(1, len(self.docs))
        idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
        factor = idf * (K1 + 1)
        weights = {unit_id: factor * tf / (tf + norm[unit_id]) for unit_id, tf in posting.items()}
        self._bm25[w] = weights
        return weights

    def _word_scores(self, qw: str) -> dict[str, float]:
        """Each unit's best score for query word ``qw`` over the words it prefixes (a
        whole-word match ranks above a prefix match)."""
        cached = self._prefix.get(qw)
        if cached is not None:
            return cached
        scores: dict[str, float] = {}
        for w in self._expand(qw):
            factor = 1.0 if w == qw else 0.7
            for unit_id, weight in self._bm25_of(w).items():
                value = weight * factor
                if value > scores.get(unit_id, 0.0):
                    scores[unit_id] = value
        self._prefix[qw] = scores
        return scores

    def score(self, query: str) -> dict[str, float]:
        """The units matching every word of ``query`` (as prefixes) with their scores."""
        per_word = sorted((self._word_scores(qw) for qw in dict.fromkeys(words(query))), key=len)
        if not per_word:
            return {}
        first, rest = per_word[0], per_word[1:]
        scores = {}
        for unit_id, value in first.items():
            total = value
            for other in rest:
                more = other.get(unit_id)
                if more is None:
                    break
                total += more
            else:
                scores[unit_id] = total
        return scores

    def _names(self) -> tuple[list[str], dict[str, int]]:
        if self._by_name is None or self._name_rank is None:
            docs = self.docs
            self._by_name = sorted(docs, key=lambda u: (docs[u].sort_name, u))
            self._name_rank = {u: i for i, u in enumerate(self._by_name)}
        return self._by_name, self._name_rank

    def ranked(self, query_words: tuple[str, ...]) -> Ranked:
        """The matching units of a query in result order (cached for the generation)."""
        cached: Ranked | None = self._ranked.get_fresh(query_words)
        if cached is not None:
            return cached
        by_name, name_rank = self._names()
        if query_words:
            scores = self.score(" ".join(query_words))
            # Two stable sorts with plain keys (faster than one with tuple keys): by name
            # and id, then by score, best first.
            order = sorted(scores, key=name_rank.__getitem__)
            order.sort(key=scores.__getitem__, reverse=True)
        else:
            scores = dict.fromkeys(by_name, 0.0)
            order = by_name
        ranked = Ranked(
            order=order,
            scores=scores,
            position={u: i for i, u in enumerate(order)},
            ids=frozenset(order),
        )
        return self._ranked.put(query_words, ranked)  # type: ignore[no-any-return]

    # --- filtering -------------------------------------------------------------------

    def allowed(self, filters: Filters) -> frozenset[str] | set[str]:
        """The units passing ``filters`` (cached for the generation)."""
        cached: frozenset[str] | None = self._allowed.get_fresh(filters)
        if cached is not None:
            return cached
        facets = self.facets
        status_sets = [facets["status"].get(s, set()) for s in filters.statuses]
        narrowing = [
            facets[facet].get(value, set())
            for facet, value in (
                ("member", filters.member),
                ("kommun", filters.kommunkod),
                ("hsa_id", filters.hsa_id),
                ("kind", filters.kind),
                ("referral_kind", filters.referral_kind),
                ("intervention", filters.intervention),
            )
            if value
        ]
        narrowing.sort(key=len)
        if narrowing:
            base = self.allowed(Filters(statuses=filters.statuses))
            result = base.intersection(*narrowing)
        else:
            result = set().union(*status_sets)
        if filters.age is not None:
            docs, age = self.docs, filters.age
            result = {u for u in result if age_fits(docs[u], age)}
        return self._allowed.put(filters, frozenset(result))  # type: ignore[no-any-return]

    # --- searching -------------------------------------------------------------------

    def search(
        self, query: str, filters: Filters, cursor: dict[str, Any] | None, limit: int
    ) -> Page:
        """One page of the units matching ``query`` and ``filters``, after ``cursor``."""
        ranked = self.ranked(tuple(words(query))[:MAX_QUERY_WORDS])
        allowed = self.allowed(filters)
        docs, scores, order = self.docs, ranked.scores, ranked.order
        start = 0
        if cursor is not None:
            after = (-float(cursor["s"]), str(cursor["n"]), str(cursor["i"]))
            start = bisect.bisect_right(
                order, after, key=lambda u: (-scores[u], docs[u].sort_name, u)
            )
        matching = ranked.ids & allowed if len(allowed) <= SMALL_INTERSECTION else None
        total = len(matching) if matching is not None else len(ranked.ids & allowed)
        picked: list[str] = []
        if matching is not None or total <= SMALL_INTERSECTION:
            pool = matching if matching is not None else ranked.ids & allowed
            position = ranked.position
            picked = sorted((u for u in pool if position[u] >= start), key=position.__getitem__)
            picked = picked[: limit + 1]
        else:
            for unit_id in order[start:]:
                if unit_id in allowed:
                    picked.append(unit_id)
                    if len(picked) > limit:
                        break
        items = [(docs[u], scores[u]) for u in picked[:limit]]
        next_cursor = None
        if len(picked) > limit and items:
            last, score = items[-1]
            next_cursor = {"s": score, "n": last.sort_name, "i": last.unit_id}
        return Page(items=items, total=total, next_cursor=next_cursor)

    def of_member(self, orgnr: str, status: str = "active") -> list[Doc]:
        """The units of member ``orgnr`` with ``status``."""
        ids = self.facets["member"].get(orgnr, set()) & self.facets["status"].get(status, set())
        return [self.docs[u] for u in ids]

    def serving(self, kommunkod: str, status: str = "active") -> list[Doc]:
        """The units with ``status`` that cover ``kommunkod`` (for routing)."""
        ids = self.facets["kommun"].get(kommunkod, set()) & self.facets["status"].get(status, set())
        return [self.docs[u] for u in ids]


def replica_search(ctx: ServiceContext) -> ReplicaSearch:
    """The API process's search index (one per process, created on first use)."""
    search = ctx.extras.get("search")
    if search is None:
        search = ctx.extras["search"] = ReplicaSearch(ctx.db)
    assert isinstance(search, ReplicaSearch)
    return search


async def warm_search(ctx: ServiceContext) -> None:
    """Builds the search index when the API starts, so the first search need not (on a
    failure the first search tries again)."""
    try:
        await replica_search(ctx).refresh()
    except Exception as exc:
        log.warning("search index not built at start", extra={"error_type": type(exc).__name__})


class ReplicaSearch:
    """The process's index of the replica, refreshed from the database before each use."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.index = SearchIndex()
        self._lock = asyncio.Lock()
        self._watch = ChangeWatch(db.url)

    async def refresh(self) -> SearchIndex:
        """The index, first brought up to the replica's latest change (a search arriving
        while the index is being built waits for it rather than see part of it)."""
        if not self._watch.changed() and not self._lock.locked():
            return self.index
        try:
            await self._load()
        except BaseException:
            self._watch.forget()  # look again next time
            raise
        return self.index

    async def _load(self) -> None:
        async with self._lock, self.db.sessionmaker() as session:
            repo = ReplicaRepository(session)
            latest = await repo.max_change_seq()
            if latest == self.index.seq:
                return
            if latest > self.index.seq > 0:
                # A few changes: applied without yielding, so no search sees half of them.
                rows = await repo.changed_since(self.index.seq)
                for row in rows:
                    self.index.upsert(row)
                self.index.seq = max([self.index.seq, *(r.change_seq for r in rows)])
                return
            # The first load, or the replica was rebuilt: build a new index aside, page by
            # page (a bounded number of rows in memory), yielding to the event loop between
            # pages so other requests go on, and swap it in whole.
            fresh = SearchIndex()
            while True:
                rows = await repo.changed_since(fresh.seq, limit=_LOAD_PAGE)
                for row in rows:
                    fresh.upsert(row)
                    fresh.seq = row.change_seq
                session.expunge_all()
                if len(rows) < _LOAD_PAGE:
                    break
                await asyncio.sleep(0)
            self.index = fresh

    async def search(
        self, query: str, filters: Filters, cursor: dict[str, Any] | None = None, limit: int = 20
    ) -> Page:
        """One page of matching units, best first (by name when there is no query)."""
        index = await self.refresh()
        return index.search(query, filters, cursor, limit)
