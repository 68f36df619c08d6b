"""Full-text search over the federated replica: Swedish-aware, in memory, always fresh.

Each API process keeps an inverted index of the replica. Before a search it asks the
database for the replica's highest ``change_seq`` (one indexed lookup) and loads only the
rows changed since; so results are never staler than the replica itself, on SQLite and
PostgreSQL alike, and a search costs no full scan.

Text is folded for Swedish: lower case, diacritics removed (å, ä → a; ö → o; é → e), so
"boendestod" finds "Boendestöd" and "Vaxjo" finds "Växjö". Every query word matches as a
prefix ("beroende" finds "beroendemottagning"); all words must match (AND). Relevance is
BM25 over weighted fields: name ×3, kind and interventions ×2, contact reasons ×2,
mission ×1; ties are broken by name and id so paging is stable.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import unicodedata
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.directory.codes import INTERVENTION_LABELS, UNIT_KIND_LABELS, Intervention, UnitKind
from services.directory.models import ReplicaUnit
from services.directory.repository import ReplicaRepository

FIELD_WEIGHTS = {"name": 3.0, "kind": 2.0, "interventions": 2.0, "reasons": 2.0, "mission": 1.0}
_WORD = re.compile(r"[0-9a-z]+")
MAX_EXPANSIONS = 200  # prefix expansions per query word (a one-letter prefix could match all)
K1, B = 1.2, 0.75


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics (Swedish-aware: å/ä → a, ö → o)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    return _WORD.findall(fold(text))


def _kind_label(code: str) -> str:
    try:
        return UNIT_KIND_LABELS[UnitKind(code)]
    except ValueError:
        return code


def _intervention_label(code: str) -> str:
    try:
        return INTERVENTION_LABELS[Intervention(code)]
    except ValueError:
        return code


@dataclass
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
    sort_name: str = ""  # folded name, for ordering and paging without folding per request


def _field_texts(row: ReplicaUnit) -> dict[str, str]:
    return {
        "name": row.name,
        "kind": f"{row.kind} {_kind_label(row.kind)}",
        "interventions": " ".join(
            f"{code} {_intervention_label(code)}" for code in row.interventions
        ),
        "reasons": " ".join(str(p.get("reason", "")) for p in row.contact_paths),
        "mission": row.mission or "",
    }


@dataclass
class Hit:
    unit_id: str
    score: float


@dataclass
class SearchIndex:
    """An inverted index of the replica with BM25 scoring and prefix expansion."""

    docs: dict[str, Doc] = field(default_factory=dict)
    # word -> unit id -> weighted term frequency
    postings: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    _sorted_words: list[str] | None = None
    seq: int = 0
    _total_length: float = 0.0
    _bm25_cache: dict[str, dict[str, float]] = field(default_factory=dict)
    _doc_words: dict[str, set[str]] = field(default_factory=dict)

    def _remove(self, unit_id: str) -> None:
        doc = self.docs.pop(unit_id, None)
        if doc is None:
            return
        self._total_length -= doc.length
        for w in list(self._doc_words.pop(unit_id, ())):
            posting = self.postings.get(w)
            if posting is not None:
                posting.pop(unit_id, None)
                if not posting:
                    del self.postings[w]
                    self._sorted_words = None

    def upsert(self, row: ReplicaUnit) -> None:
        """Index (or re-index) one replica row."""
        self._bm25_cache.clear()
        self._remove(row.unit_id)
        tf: dict[str, float] = defaultdict(float)
        length = 0.0
        for name, text in _field_texts(row).items():
            weight = FIELD_WEIGHTS[name]
            for w in words(text):
                tf[w] += weight
                length += weight
        for w, value in tf.items():
            if w not in self.postings:
                self._sorted_words = None
            self.postings[w][row.unit_id] = value
        self._doc_words[row.unit_id] = set(tf)
        ages = tuple((g.get("age_min"), g.get("age_max")) for g in (row.target_groups or []))
        self.docs[row.unit_id] = Doc(
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
            sort_name=fold(row.name),
        )
        self._total_length += max(1.0, length)

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

    def _bm25(self, w: str) -> dict[str, float]:
        """BM25 weight of word ``w`` in every unit containing it (cached per generation)."""
        cached = self._bm25_cache.get(w)
        if cached is not None:
            return cached
        n = max(1, len(self.docs))
        avg = self._total_length / n if self._total_length else 1.0
        posting = self.postings[w]
        idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
        weights = {
            unit_id: idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * self.docs[unit_id].length / avg))
            for unit_id, tf in posting.items()
        }
        self._bm25_cache[w] = weights
        return weights

    def score(self, query: str, candidates: Iterable[str] | None = None) -> list[Hit]:
        """Units matching every word of ``query`` (as prefixes), best first."""
        q_words = words(query)
        allowed = set(candidates) if candidates is not None else None
        scores: dict[str, float] | None = None
        for qw in q_words:
            word_scores: dict[str, float] = {}
            for w in self._expand(qw):
                exact = 1.0 if w == qw else 0.7  # a whole-word match ranks above a prefix
                for unit_id, weight in self._bm25(w).items():
                    value = weight * exact
                    if value > word_scores.get(unit_id, 0.0):
                        word_scores[unit_id] = value
            if allowed is not None:
                word_scores = {u: s for u, s in word_scores.items() if u in allowed}
            if scores is None:
                scores = dict(word_scores)
            else:
                scores = {u: s + word_scores[u] for u, s in scores.items() if u in word_scores}
            if not scores:
                return []
        if scores is None:
            return []
        return [Hit(u, s) for u, s in scores.items()]


@dataclass(frozen=True)
class Filters:
    member: str | None = None
    kommunkod: str | None = None
    kind: str | None = None
    referral_kind: str | None = None
    intervention: str | None = None
    age: int | None = None
    statuses: frozenset[str] = frozenset({"active", "temporarily_closed"})

    def accepts(self, doc: Doc) -> bool:
        if doc.status not in self.statuses:
            return False
        if self.member and doc.owner_orgnr != self.member:
            return False
        if self.kommunkod and self.kommunkod not in doc.kommunkoder:
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


class ReplicaSearch:
    """The process's index of the replica, refreshed from the database before each use."""

    def __init__(self, cache_size: int = 512) -> None:
        self.index = SearchIndex()
        self._lock = asyncio.Lock()
        # (generation, query, filters) -> results; a replica change starts a new generation.
        self._cache: OrderedDict[tuple[Any, ...], list[tuple[Doc, float]]] = OrderedDict()
        self._cache_size = cache_size

    async def refresh(self, session: AsyncSession) -> SearchIndex:
        repo = ReplicaRepository(session)
        latest = await repo.max_change_seq()
        if latest != self.index.seq:
            async with self._lock:
                if latest < self.index.seq:  # the replica was rebuilt: start over
                    self.index = SearchIndex()
                rows = await repo.changed_since(self.index.seq)
                for row in rows:
                    self.index.upsert(row)
                self.index.seq = max([self.index.seq, *(r.change_seq for r in rows)])
        return self.index

    async def search(
        self, session: AsyncSession, query: str, filters: Filters
    ) -> list[tuple[Doc, float]]:
        """Matching units, best first (by name when there is no query)."""
        index = await self.refresh(session)
        key = (index.seq, len(index.docs), tuple(words(query)), filters)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if words(query):
            # Score first, then filter the hits: no pass over every unit per request.
            scored = [
                (index.docs[h.unit_id], round(h.score, 6))
                for h in index.score(query)
                if filters.accepts(index.docs[h.unit_id])
            ]
            result = sorted(scored, key=lambda ds: (-ds[1], ds[0].sort_name, ds[0].unit_id))
        else:
            docs = sorted(
                (d for d in index.docs.values() if filters.accepts(d)),
                key=lambda d: (d.sort_name, d.unit_id),
            )
            result = [(d, 0.0) for d in docs]
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result


def page_after(
    results: list[tuple[Doc, float]], cursor: dict[str, Any] | None, limit: int
) -> tuple[list[tuple[Doc, float]], dict[str, Any] | None]:
    """The page after ``cursor`` (the last item's score, folded name and id)."""
    start = 0
    if cursor is not None:
        key = (-float(cursor["s"]), str(cursor["n"]), str(cursor["i"]))
        keys = [(-s, d.sort_name, d.unit_id) for d, s in results]
        start = bisect.bisect_right(keys, key)
    page = results[start : start + limit]
    more = start + limit < len(results)
    if not more or not page:
        return page, None
    last, score = page[-1]
    return page, {"s": score, "n": last.sort_name, "i": last.unit_id}
