"""The search contract: one query type, one result type, one behaviour for every backend.

- Full text over titles and descriptions (French, English, Spanish), accent- and case-insensitive.
- Every word of the query must match (stop words aside), each word either exactly, as a prefix when
  it is the last word (search as you type), or with typos: one for a word of 5 letters or more, two
  from 9 letters (Meilisearch's defaults).
- Filters: cities (always: the resident's), categories, kinds, merchants, points range, available
  now (in stock and open), dates (only items valid at `now_us`), merchants excluded (not approved).
- Facet counts for category, city and kind; sort by relevance, price or distance; a geo radius;
  offset paging.
`tests/test_search_contract.py` holds every backend to this.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 10
MAX_SEARCH_PAGE = 50
MAX_OFFSET = 1_000
MAX_RADIUS_M = 500_000
MAX_FILTER_VALUES = 50
MAX_EXCLUDED = 5_000
FACETS = ("category", "city", "kind")
SORTS = ("relevance", "price_asc", "price_desc", "distance")
ONE_TYPO_FROM = 5
TWO_TYPOS_FROM = 9
# Dropped from a query of several words, in both backends (Meilisearch gets them as stop words).
STOP_WORDS = frozenset(
    [
        "a",
        "au",
        "aux",
        "de",
        "des",
        "du",
        "en",
        "et",
        "l",
        "la",
        "le",
        "les",
        "d",
        "un",
        "une",
        "the",
        "an",
        "and",
        "of",
        "for",
        "to",
        "in",
        "at",
        "with",
        "y",
        "el",
        "los",
        "las",
        "del",
        "para",
        "con",
    ]
)


def fold(text: str) -> str:
    """Lower case, accents removed, ligatures split: what both backends compare."""
    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def query_words(text: str) -> list[str]:
    """The folded words of a query, stop words dropped unless nothing else is left, at most 10."""
    words = "".join(c if c.isalnum() else " " for c in fold(text)).split()[:MAX_QUERY_WORDS]
    kept = [w for w in words if w not in STOP_WORDS]
    return kept or words


def typos_allowed(word: str) -> int:
    return 2 if len(word) >= TWO_TYPOS_FROM else 1 if len(word) >= ONE_TYPO_FROM else 0


@dataclass(frozen=True)
class GeoPoint:
    lat: float
    lng: float


@dataclass(frozen=True)
class SearchQuery:
    cities: tuple[str, ...]
    now_us: int
    text: str = ""
    categories: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    merchant_ids: tuple[str, ...] = ()
    exclude_merchants: tuple[str, ...] = ()
    min_points: int | None = None
    max_points: int | None = None
    available_now: bool = False
    sort: str = "relevance"
    origin: GeoPoint | None = None
    radius_m: int | None = None
    offset: int = 0
    limit: int = 20
    facets: bool = True

    def __post_init__(self) -> None:
        # The service layer has refused bad input with problems already; these guard the backends.
        assert self.cities and len(self.cities) <= MAX_FILTER_VALUES
        assert len(self.text) <= MAX_QUERY_CHARS and self.sort in SORTS
        assert 1 <= self.limit <= MAX_SEARCH_PAGE and 0 <= self.offset <= MAX_OFFSET
        assert (self.sort != "distance" and self.radius_m is None) or self.origin is not None
        assert len(self.exclude_merchants) <= MAX_EXCLUDED

    @property
    def words(self) -> list[str]:
        return query_words(self.text)


@dataclass
class SearchResult:
    hits: list[dict[str, Any]]  # the indexed documents, with `distance_m` when an origin was given
    total: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


class SearchBackend(Protocol):
    """What the outbox worker, the reindexer and the search service need from a backend."""

    name: str

    def apply(self, upserts: list[dict[str, Any]], deletes: list[tuple[str, int]]) -> None:
        """Upsert documents and delete ids, each skipped when the index holds a newer `version`. Idempotent."""

    def search(self, query: SearchQuery) -> SearchResult: ...

    def rebuild(self, batches: Iterable[list[dict[str, Any]]]) -> int:
        """Replace the whole index with these documents without a moment of empty results (index swap)."""

    def count(self, item_id: str) -> int:
        """How many documents carry this id (0 or 1 when idempotency holds); for tests and checks."""
