"""The embedded search backend, on tantivy (a Rust full-text engine, through its Python bindings).

Text is analyzed by tantivy's own chain: simple tokenizer, long tokens dropped, lower case, ASCII
folding (so "crème" is "creme" on both sides). A query word matches a document by one of:

| match | tantivy query | weight | scored by |
| --- | --- | --- | --- |
| exact word | `TermQuery` | 1.0 | BM25 (tantivy's, k1 = 1.2, b = 0.75) |
| prefix, last word only | `FuzzyTermQuery(distance=0, prefix=True)` | 0.5 | constant |
| typos (1 from 5 letters, 2 from 9) | `FuzzyTermQuery(distance=n, prefix=last)` | 0.3 | constant |

titles weigh twice descriptions. Every word must match (a `Must` per word); a document's score is
the sum, so an exact, frequent-in-title word ranks first, a prefix next, a typo last.

The index lives in `<data_dir>/search/index-<n>`; `CURRENT` names the live one. A rebuild writes a
new directory and swaps `CURRENT` atomically (os.replace): searches never see a half-built index.
Writers are short-lived (one per batch), so another process (`entraide search deliver`) can write
between two batches; if it cannot get tantivy's writer lock, the delivery fails and is retried.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import msgspec
import tantivy
from tantivy import Filter, Occur, Order, Query, TextAnalyzerBuilder, Tokenizer

from marketplace.domain.catalog import FOREVER_US, LANGUAGES, distance_m
from marketplace.domain.search import FACETS, SearchQuery, SearchResult, typos_allowed

ANALYZER = "folded"
KEYWORDS = ("id", "kind", "city", "merchant_id", "category")
NUMBERS = ("version", "price_points", "valid_from_us", "valid_until_us", "in_stock", "is_open", "has_geo")
WRITER_HEAP_BYTES = 50_000_000
MAX_GEO_CANDIDATES = 10_000  # documents ranked in Python when distance is involved
MAX_BATCH = 1_000
FIELD_WEIGHTS = (("title", 2.0), ("description", 1.0))
EXACT, PREFIX, TYPO = 1.0, 0.5, 0.3


class _Geo(msgspec.Struct, frozen=True):
    lat: float
    lng: float


class _Candidate(msgspec.Struct, frozen=True):
    """What ranking a document near a point needs of it: read from its stored JSON without decoding
    the rest (titles, descriptions), which only the page's own hits need."""

    price_points: int
    category: str
    city: str
    kind: str
    geo: _Geo | None = msgspec.field(default=None, name="_geo")


_candidate = msgspec.json.Decoder(_Candidate)
_document = msgspec.json.Decoder(dict)


def _analyzer() -> tantivy.TextAnalyzer:
    return (TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.remove_long(40)).filter(Filter.lowercase())
            .filter(Filter.ascii_fold()).build())  # fmt: skip


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in KEYWORDS:
        builder.add_text_field(name, stored=name == "id", tokenizer_name="raw", fast=True)
    for name in NUMBERS:
        builder.add_integer_field(name, stored=name == "version", indexed=True, fast=True)
    for name in ("lat", "lng"):
        builder.add_float_field(name, indexed=True, fast=True)
    for name, _ in FIELD_WEIGHTS:
        builder.add_text_field(name, tokenizer_name=ANALYZER)
    builder.add_bytes_field("doc", stored=True)
    return builder.build()


class EmbeddedSearch:
    name = "embedded"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.schema = _schema()
        self.analyzer = _analyzer()
        self._lock = threading.Lock()
        self._current: str | None = None
        self._index: tantivy.Index | None = None

    # --- the live index -----------------------------------------------------------------------

    def _pointer(self) -> Path:
        return self.root / "CURRENT"

    def _open(self, name: str) -> tantivy.Index:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(self.schema, path=str(path), reuse=True)
        index.register_tokenizer(ANALYZER, self.analyzer)
        return index

    def _live(self) -> tantivy.Index:
        """The index `CURRENT` names, reopened when another process swapped it, reloaded to its last commit."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._pointer().exists():
            self._swap_pointer("index-0")
        name = self._pointer().read_text().strip()
        if name != self._current or self._index is None:
            self._index, self._current = self._open(name), name
        self._index.reload()
        return self._index

    def _swap_pointer(self, name: str) -> None:
        temporary = self.root / f"CURRENT.{os.getpid()}.tmp"
        temporary.write_text(name)
        os.replace(temporary, self._pointer())

    # --- writing ------------------------------------------------------------------------------

    def _document(self, source: dict) -> tantivy.Document:
        doc = tantivy.Document()
        for name in KEYWORDS:
            doc.add_text(name, source[name])
        doc.add_integer("version", source["version"])
        doc.add_integer("price_points", source["price_points"])
        doc.add_integer("valid_from_us", source["valid_from_us"])
        doc.add_integer("valid_until_us", min(source["valid_until_us"], FOREVER_US))
        doc.add_integer("in_stock", int(source["in_stock"]))
        doc.add_integer("is_open", int(source["is_open"]))
        geo = source.get("_geo")
        doc.add_integer("has_geo", int(geo is not None))
        if geo is not None:
            doc.add_float("lat", float(geo["lat"]))
            doc.add_float("lng", float(geo["lng"]))
        for field, _ in FIELD_WEIGHTS:
            for lang in LANGUAGES:
                if source.get(f"{field}_{lang}"):
                    doc.add_text(field, source[f"{field}_{lang}"])
        doc.add_bytes("doc", json.dumps(source, ensure_ascii=False, sort_keys=True).encode())
        return doc

    def _versions(self, index: tantivy.Index, ids: list[str]) -> dict[str, int]:
        searcher = index.searcher()
        hits = searcher.search(Query.term_set_query(self.schema, "id", ids), limit=max(1, 2 * len(ids))).hits
        versions: dict[str, int] = {}
        for _, address in hits:
            doc = searcher.doc(address)
            versions[doc["id"][0]] = max(versions.get(doc["id"][0], 0), doc["version"][0])
        return versions

    def apply(self, upserts: list[dict], deletes: list[tuple[str, int]]) -> None:
        assert len(upserts) + len(deletes) <= MAX_BATCH
        with self._lock:
            index = self._live()
            held = self._versions(index, [d["id"] for d in upserts] + [i for i, _ in deletes])
            fresh = [d for d in upserts if d["version"] > held.get(d["id"], 0)]
            gone = [i for i, version in deletes if version > held.get(i, 0) and i in held]
            if not fresh and not gone:
                return
            writer = index.writer(WRITER_HEAP_BYTES, 1)
            try:
                for item_id in gone + [d["id"] for d in fresh]:
                    writer.delete_documents_by_term("id", item_id)
                for source in fresh:
                    writer.add_document(self._document(source))
                writer.commit()
                writer.wait_merging_threads()
            except BaseException:
                writer.rollback()
                raise
            finally:
                del writer  # releases tantivy's writer lock for other processes

    def rebuild(self, batches: Iterable[list[dict]]) -> int:
        """Build a new index directory, then swap `CURRENT` to it and drop the old one."""
        with self._lock:
            self._live()
            old = self._current
            name = f"index-{time.time_ns()}"
            index = self._open(name)
            writer = index.writer(WRITER_HEAP_BYTES, 1)
            count = 0
            for batch in batches:
                for source in batch:
                    writer.add_document(self._document(source))
                count += len(batch)
            writer.commit()
            writer.wait_merging_threads()
            del writer
            self._swap_pointer(name)
            self._index, self._current = index, name
            if old and old != name:
                shutil.rmtree(self.root / old, ignore_errors=True)  # open readers keep their files (POSIX)
            return count

    # --- reading ------------------------------------------------------------------------------

    def count(self, item_id: str) -> int:
        with self._lock:
            searcher = self._live().searcher()
        found = searcher.search(Query.term_query(self.schema, "id", item_id), limit=10)
        return found.count  # type: ignore[attr-defined]  # tantivy's stub omits SearchResult.count (an int)

    def _words(self, words: list[str]) -> list[str]:
        return [token for word in words for token in self.analyzer.analyze(word)]

    def _text_query(self, words: list[str]) -> list[tuple[Occur, Query]]:
        clauses = []
        for position, word in enumerate(words):
            last = position == len(words) - 1
            ways: list[Query] = []
            for field, weight in FIELD_WEIGHTS:
                ways.append(Query.boost_query(Query.term_query(self.schema, field, word), EXACT * weight))
                if last:
                    prefix = Query.fuzzy_term_query(self.schema, field, word, distance=0, prefix=True)
                    ways.append(Query.boost_query(prefix, PREFIX * weight))
                if typos := typos_allowed(word):
                    fuzzy = Query.fuzzy_term_query(self.schema, field, word, distance=typos, prefix=last)
                    ways.append(Query.boost_query(fuzzy, TYPO * weight))
            clauses.append((Occur.Must, Query.boolean_query([(Occur.Should, q) for q in ways])))
        return clauses

    def _query(self, q: SearchQuery) -> Query:
        s = self.schema
        clauses = self._text_query(self._words(q.words))
        must = [Query.term_set_query(s, "city", list(q.cities)),
                Query.range_query(s, "valid_from_us", tantivy.FieldType.Integer, None, q.now_us),
                Query.range_query(s, "valid_until_us", tantivy.FieldType.Integer, q.now_us + 1, None)]  # fmt: skip
        for field, values in (("category", q.categories), ("kind", q.kinds), ("merchant_id", q.merchant_ids)):
            if values:
                must.append(Query.term_set_query(s, field, list(values)))
        if q.min_points is not None or q.max_points is not None:
            must.append(Query.range_query(s, "price_points", tantivy.FieldType.Integer, q.min_points, q.max_points))
        if q.available_now:
            must += [Query.term_query(s, "in_stock", 1), Query.term_query(s, "is_open", 1)]
        if q.radius_m is not None and q.origin is not None:
            must += self._bounding_box(q)
        clauses += [(Occur.Must, m) for m in must]
        if q.exclude_merchants:
            clauses.append((Occur.MustNot, Query.term_set_query(s, "merchant_id", list(q.exclude_merchants))))
        return Query.boolean_query(clauses)

    def _bounding_box(self, q: SearchQuery) -> list[Query]:
        """A coarse, indexed pre-filter; the exact great-circle distance is checked on the candidates."""
        assert q.origin is not None and q.radius_m is not None
        dlat = math.degrees(q.radius_m / 6_371_008.8) * 1.01
        dlng = dlat / max(math.cos(math.radians(q.origin.lat)), 0.01)
        box = [Query.term_query(self.schema, "has_geo", 1),
               Query.range_query(self.schema, "lat", tantivy.FieldType.Float, q.origin.lat - dlat, q.origin.lat + dlat)]  # fmt: skip
        if dlng < 180:
            box.append(
                Query.range_query(self.schema, "lng", tantivy.FieldType.Float, q.origin.lng - dlng, q.origin.lng + dlng)
            )
        return box

    def search(self, q: SearchQuery) -> SearchResult:
        with self._lock:
            searcher = self._live().searcher()
        query = self._query(q)
        if q.origin is not None:
            return self._search_near(searcher, query, q)
        if q.sort in ("price_asc", "price_desc"):
            order = Order.Asc if q.sort == "price_asc" else Order.Desc
            found = searcher.search(query, limit=q.limit, offset=q.offset, order_by_field="price_points", order=order)
        else:
            found = searcher.search(query, limit=q.limit, offset=q.offset)
        hits = [_document.decode(searcher.doc(address)["doc"][0]) for _, address in found.hits]
        facets = self._facets(searcher, query) if q.facets else {}
        total: int = found.count  # type: ignore[attr-defined]  # tantivy's stub omits SearchResult.count
        return SearchResult(hits, total, facets)

    @staticmethod
    def _facets(searcher: tantivy.Searcher, query: Query) -> dict[str, dict[str, int]]:
        spec = {name: {"terms": {"field": name, "size": 100}} for name in FACETS}
        found = searcher.aggregate(query, spec)
        return {name: {b["key"]: b["doc_count"] for b in found[name]["buckets"]} for name in FACETS}

    def _search_near(self, searcher: tantivy.Searcher, query: Query, q: SearchQuery) -> SearchResult:
        """Distance is computed here, on at most MAX_GEO_CANDIDATES matches: tantivy has no geo sort."""
        assert q.origin is not None
        found = searcher.search(query, limit=MAX_GEO_CANDIDATES)
        candidates = []
        for rank, (_score, address) in enumerate(found.hits):
            stored = searcher.doc(address)["doc"][0]
            candidate = _candidate.decode(stored)
            geo = candidate.geo
            meters = None if geo is None else distance_m(q.origin.lat, q.origin.lng, geo.lat, geo.lng)
            if q.radius_m is not None and (meters is None or meters > q.radius_m):
                continue
            candidates.append((rank, meters, candidate, stored))
        if q.sort == "distance":
            candidates.sort(key=lambda c: (c[1] is None, c[1] or 0.0, c[0]))
        elif q.sort in ("price_asc", "price_desc"):
            sign = 1 if q.sort == "price_asc" else -1
            candidates.sort(key=lambda c: (sign * c[2].price_points, c[0]))
        facets = (
            {name: dict(Counter(getattr(c[2], name) for c in candidates)) for name in FACETS} if q.facets else {}
        )
        page = []
        for _rank, meters, _, stored in candidates[q.offset : q.offset + q.limit]:
            source = _document.decode(stored)
            if meters is not None:
                source["distance_m"] = round(meters)
            page.append(source)
        return SearchResult(page, len(candidates), facets)
