"""The production search backend: a Meilisearch server, through the official `meilisearch` client.

The index (`catalog`, primary key `id`) is configured for the search contract:

- searchable: titles then descriptions, in fr, en and es (attribute order is a ranking rule);
- filterable: id, city, category, kind, merchant_id, price_points, valid_from_us, valid_until_us,
  in_stock, is_open and `_geo`; sortable: price_points and `_geo`;
- ranking rules: sort first (so a price or distance sort is strict, as in the embedded backend),
  then words, typo, proximity, attribute, exactness;
- typo tolerance: one typo from 5 letters, two from 9; the contract's stop words;
- queries run with `matchingStrategy: all` (every word must match, the last one as a prefix).

Every write waits for its task and fails loudly if the task failed, so the outbox worker retries
it. Writes are idempotent by (id, version): before sending, the versions the index holds are read
back and older updates are dropped. A reindex builds a fresh index and swaps it in atomically
(`swap_indexes`): searches see the old index until the new one is complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import meilisearch
from meilisearch.errors import MeilisearchApiError

from marketplace.domain.catalog import distance_m
from marketplace.domain.search import FACETS, MAX_OFFSET, MAX_SEARCH_PAGE, STOP_WORDS, SearchQuery, SearchResult

INDEX_UID = "catalog"
TIMEOUT_SECONDS = 5
TASK_TIMEOUT_MS = 30_000
SEARCHABLE = [f"{field}_{lang}" for field in ("title", "description") for lang in ("fr", "en", "es")]
SETTINGS = {
    "searchableAttributes": SEARCHABLE,
    "filterableAttributes": [
        "id",
        "city",
        "category",
        "kind",
        "merchant_id",
        "price_points",
        "valid_from_us",
        "valid_until_us",
        "in_stock",
        "is_open",
        "_geo",
    ],
    "sortableAttributes": ["price_points", "_geo"],
    "rankingRules": ["sort", "words", "typo", "proximity", "attribute", "exactness"],
    "typoTolerance": {"enabled": True, "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9}},
    "stopWords": sorted(STOP_WORDS),
    "pagination": {"maxTotalHits": MAX_OFFSET + MAX_SEARCH_PAGE},
    "faceting": {"maxValuesPerFacet": 100},
}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _in(field: str, values: Iterable[str], negate: bool = False) -> str:
    return f"{field} {'NOT IN' if negate else 'IN'} [{', '.join(_quoted(v) for v in values)}]"


class MeilisearchBackend:
    name = "meilisearch"

    def __init__(self, url: str, api_key: str | None = None, index_uid: str = INDEX_UID) -> None:
        self.client = meilisearch.Client(url, api_key, timeout=TIMEOUT_SECONDS)
        self.uid = index_uid
        self._configured = False

    # --- index and tasks ----------------------------------------------------------------------

    def _wait(self, task_uid: int) -> None:
        task = self.client.wait_for_task(task_uid, timeout_in_ms=TASK_TIMEOUT_MS, interval_in_ms=25)
        if task.status != "succeeded":
            raise RuntimeError(f"Meilisearch task {task_uid} {task.status}: {task.error}")

    def _configure(self, uid: str) -> None:
        """Create the index if needed and apply the settings (both idempotent)."""
        try:
            self.client.get_index(uid)
        except MeilisearchApiError as exc:
            if exc.code != "index_not_found":
                raise
            self._wait(self.client.create_index(uid, {"primaryKey": "id"}).task_uid)
        self._wait(self.client.index(uid).update_settings(SETTINGS).task_uid)

    def _index(self) -> meilisearch.index.Index:
        if not self._configured:
            self._configure(self.uid)
            self._configured = True
        return self.client.index(self.uid)

    # --- writing ------------------------------------------------------------------------------

    def _versions(self, index: meilisearch.index.Index, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        found = index.get_documents({"filter": _in("id", ids), "fields": ["id", "version"], "limit": len(ids)})
        return {doc.id: doc.version for doc in found.results}

    def apply(self, upserts: list[dict], deletes: list[tuple[str, int]]) -> None:
        index = self._index()
        held = self._versions(index, [d["id"] for d in upserts] + [i for i, _ in deletes])
        fresh = [d for d in upserts if d["version"] > held.get(d["id"], 0)]
        gone = [i for i, version in deletes if i in held and version > held[i]]
        if fresh:
            self._wait(index.add_documents(fresh, primary_key="id").task_uid)
        if gone:
            self._wait(index.delete_documents(filter=_in("id", gone)).task_uid)

    def rebuild(self, batches: Iterable[list[dict]]) -> int:
        """Fill a new index, then swap it with the live one in one task: zero downtime."""
        live = self._index()
        building = f"{self.uid}_build_{time.time_ns()}"
        self._configure(building)
        count = 0
        for batch in batches:
            if batch:
                self._wait(self.client.index(building).add_documents(batch, primary_key="id").task_uid)
                count += len(batch)
        self._wait(self.client.swap_indexes([{"indexes": [live.uid, building]}]).task_uid)
        self._wait(self.client.delete_index(building).task_uid)  # now holds the old documents
        return count

    def count(self, item_id: str) -> int:
        return self._index().get_documents({"filter": _in("id", [item_id]), "fields": ["id"], "limit": 10}).total

    # --- reading ------------------------------------------------------------------------------

    def _filter(self, q: SearchQuery) -> list[str]:
        filters = [_in("city", q.cities), f"valid_from_us <= {q.now_us}", f"valid_until_us > {q.now_us}"]
        for field, values in (("category", q.categories), ("kind", q.kinds), ("merchant_id", q.merchant_ids)):
            if values:
                filters.append(_in(field, values))
        if q.exclude_merchants:
            filters.append(_in("merchant_id", q.exclude_merchants, negate=True))
        if q.min_points is not None:
            filters.append(f"price_points >= {int(q.min_points)}")
        if q.max_points is not None:
            filters.append(f"price_points <= {int(q.max_points)}")
        if q.available_now:
            filters += ["in_stock = true", "is_open = true"]
        if q.radius_m is not None and q.origin is not None:
            filters.append(f"_geoRadius({float(q.origin.lat)}, {float(q.origin.lng)}, {int(q.radius_m)})")
        return filters

    def search(self, q: SearchQuery) -> SearchResult:
        params: dict = {"filter": " AND ".join(self._filter(q)), "offset": q.offset, "limit": q.limit,
                        "matchingStrategy": "all"}  # fmt: skip
        if q.facets:
            params["facets"] = list(FACETS)
        if q.sort in ("price_asc", "price_desc"):
            params["sort"] = [f"price_points:{'asc' if q.sort == 'price_asc' else 'desc'}"]
        elif q.sort == "distance" and q.origin is not None:
            params["sort"] = [f"_geoPoint({float(q.origin.lat)}, {float(q.origin.lng)}):asc"]
        found = self._index().search(" ".join(q.words), params)
        hits = []
        for document in found["hits"]:
            document.pop("_geoDistance", None)
            geo = document.get("_geo")
            if q.origin is not None and geo is not None:
                document["distance_m"] = round(distance_m(q.origin.lat, q.origin.lng, geo["lat"], geo["lng"]))
            hits.append(document)
        total = found.get("totalHits", found.get("estimatedTotalHits", len(hits)))
        facets = {name: dict(found.get("facetDistribution", {}).get(name, {})) for name in FACETS} if q.facets else {}
        return SearchResult(hits, total, facets)
