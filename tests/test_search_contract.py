"""The search contract (marketplace/domain/search.py), one suite for every backend.

The embedded backend (tantivy) is always tested. The Meilisearch backend is tested by the very same
functions when `ENTRAIDE_MEILI_URL` (and `ENTRAIDE_MEILI_KEY` if the server has one) is set; without
it, that backend is not collected at all (the test ids name the backends that ran).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from marketplace.adapters.search_embedded import EmbeddedSearch
from marketplace.adapters.search_meilisearch import MeilisearchBackend
from marketplace.domain.catalog import FOREVER_US, Item, search_document
from marketplace.domain.search import GeoPoint, SearchQuery, fold, query_words

MEILI_URL = os.environ.get("ENTRAIDE_MEILI_URL")
BACKENDS = ["embedded"] + (["meilisearch"] if MEILI_URL else [])
NOW = 1_767_225_600_000_000
DAY = 86_400_000_000
HERE = GeoPoint(45.4500, -73.4600)  # a resident in Brossard


def doc(item_id: str, fr: str, en: str, *, city: str = "brossard", kind: str = "offer", category: str = "food",
        points: int = 100, merchant: str | None = "m1", geo: tuple[float, float] | None = None, desc_fr: str = "",
        desc_en: str = "", in_stock: bool = True, is_open: bool = True, valid: tuple[int, int] = (0, FOREVER_US),
        version: int = 1) -> dict:  # fmt: skip
    """A document built the way the catalog builds it (search_document), so the contract covers the real shape."""
    item = Item(
        id=item_id, city=city, kind=kind, merchant_id=merchant if kind == "offer" else None, category=category,
        title={"fr": fr, "en": en}, description={k: v for k, v in (("fr", desc_fr), ("en", desc_en)) if v},
        price_points=points, cash_cents=0, quantity=10, remaining=10 if in_stock else 0, per_resident_limit=None,
        valid_from_us=valid[0], valid_until_us=valid[1], status="published", suspended=False,
        lat_e6=None if geo is None else round(geo[0] * 1e6), lng_e6=None if geo is None else round(geo[1] * 1e6),
        address="", starts_at_us=None, seats_total=None, version=version,
    )  # fmt: skip
    shop = (
        None if kind != "offer" else {"lat_e6": item.lat_e6, "lng_e6": item.lng_e6, "address": "", "is_open": is_open}
    )
    return search_document(item, shop)


CORPUS = [
    doc(
        "croissant",
        "Croissant au beurre",
        "Butter croissant",
        points=120,
        merchant="boulangerie",
        geo=(45.4501, -73.4601),
    ),
    doc("creme", "Crème brûlée à l’érable", "Maple crème brûlée", points=300, merchant="cafe", geo=(45.4600, -73.4700)),
    doc(
        "dejeuner",
        "Petit déjeuner",
        "Breakfast",
        points=700,
        merchant="cafe",
        geo=(45.4700, -73.4800),
        desc_fr="Café, jus et croissant",
        desc_en="Coffee, juice and a croissant",
    ),
    doc(
        "livre",
        "Livre de poésie québécoise",
        "Quebec poetry book",
        category="retail",
        points=900,
        merchant="librairie",
        geo=(45.5200, -73.5200),
    ),
    doc(
        "piscine",
        "Abonnement à la piscine municipale",
        "Municipal pool pass",
        kind="service",
        category="sports",
        points=1_500,
        geo=(45.4420, -73.4520),
    ),
    doc(
        "velo",
        "Réparation de vélo",
        "Bicycle repair",
        category="services",
        points=500,
        merchant="velo",
        in_stock=False,
        geo=(45.4550, -73.4650),
    ),
    doc("glace", "Café glacé", "Iced coffee", points=250, merchant="cafe2", is_open=False, geo=(45.4520, -73.4620)),
    doc(
        "concert",
        "Concert symphonique au parc",
        "Symphony concert in the park",
        city="delson",
        kind="event",
        category="culture",
        points=2_000,
        geo=(45.3700, -73.5400),
    ),
    doc(
        "visite",
        "Visite guidée du vieux port",
        "Guided tour of the old port",
        city="delson",
        kind="event",
        category="tourism",
        points=800,
    ),
    # Never to be found by a Brossard + Delson resident at NOW:
    doc("futur", "Croissant aux amandes", "Almond croissant", valid=(NOW + DAY, FOREVER_US)),
    doc("hier", "Croissant d’hier", "Yesterday’s croissant", valid=(0, NOW - DAY)),
    doc("magog", "Croissant de Magog", "Magog croissant", city="magog"),
    doc("suspendu", "Croissant du commerce suspendu", "Suspended shop croissant", merchant="suspendu"),
]


def query(text: str = "", **kw) -> SearchQuery:
    kw.setdefault("cities", ("brossard", "delson"))
    kw.setdefault("exclude_merchants", ("suspendu",))
    return SearchQuery(now_us=NOW, text=text, **kw)


def make_backend(name: str, tmp_path) -> tuple[object, callable]:
    if name == "embedded":
        return EmbeddedSearch(tmp_path / "search"), lambda: None
    backend = MeilisearchBackend(
        MEILI_URL, os.environ.get("ENTRAIDE_MEILI_KEY"), index_uid=f"test_{uuid.uuid4().hex[:12]}"
    )
    return backend, lambda: backend.client.delete_index(backend.uid)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory) -> Iterator[object]:
    """One backend holding the corpus, shared by the read-only tests."""
    backend, cleanup = make_backend(request.param, tmp_path_factory.mktemp(request.param))
    backend.apply(CORPUS, [])
    yield backend
    cleanup()


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path) -> Iterator[object]:
    backend, cleanup = make_backend(request.param, tmp_path)
    yield backend
    cleanup()


def ids(backend, text: str = "", **kw) -> list[str]:
    return [hit["id"] for hit in backend.search(query(text, **kw)).hits]


# --- full text ----------------------------------------------------------------------------------


def test_query_words_are_folded_and_stop_words_dropped():
    assert fold("Crème BRÛLÉE Œuvre") == "creme brulee oeuvre"
    assert query_words("le croissant à l’érable") == ["croissant", "erable"]
    assert query_words("le la") == ["le", "la"]  # nothing but stop words: keep them


@pytest.mark.parametrize(("text", "expected"), [
    ("crème brûlée", "creme"), ("creme brulee", "creme"), ("CRÈME", "creme"), ("erable", "creme"),
    ("quebecoise", "livre"), ("québécoise", "livre"), ("poésie", "livre"),
    ("maple", "creme"), ("poetry book", "livre"), ("pool pass", "piscine"), ("symphony", "concert"),
])  # fmt: skip
def test_full_text_in_french_and_english_without_accents(loaded, text, expected):
    assert expected in ids(loaded, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("croisant", "croissant"),  # a letter missing (8 letters: one typo allowed)
    ("piscene", "piscine"),  # a letter wrong
    ("consert", "concert"),
    ("bicycel repair", "velo"),  # a typo in the first word, exact second
    ("symphonyque", "concert"),  # 11 letters: two typos allowed
])  # fmt: skip
def test_one_typo_in_a_word_of_five_letters_or_more_still_finds_it(loaded, text, expected):
    assert expected in ids(loaded, text)


def test_short_words_allow_no_typo(loaded):
    assert "velo" not in ids(loaded, "vela")  # 4 letters: must be exact (or a prefix)
    assert ids(loaded, "pairs") == []  # not "parc" + typos: too far


@pytest.mark.parametrize(("text", "expected"), [("crois", "croissant"), ("abonn", "piscine"), ("symph", "concert"),
                                                 ("butter crois", "croissant"), ("vel", "velo")])  # fmt: skip
def test_prefix_matching_as_you_type(loaded, text, expected):
    assert expected in ids(loaded, text)


def test_every_word_must_match(loaded):
    assert ids(loaded, "croissant poésie") == []
    assert ids(loaded, "le croissant") != []  # stop words do not count


def test_title_matches_rank_before_description_matches(loaded):
    found = ids(loaded, "croissant")
    assert found[0] == "croissant" and "dejeuner" in found
    assert found.index("croissant") < found.index("dejeuner")


# --- scope: cities, dates, merchants ------------------------------------------------------------


def test_only_the_residents_cities_in_date_and_approved_merchants(loaded):
    everything = ids(loaded, "croissant", limit=50)
    assert set(everything) == {"croissant", "dejeuner"}
    assert set(ids(loaded, "", limit=50)) == {d["id"] for d in CORPUS[:9]}
    only_brossard = set(ids(loaded, "", cities=("brossard",), limit=50))
    assert "concert" not in only_brossard and "magog" not in only_brossard and "creme" in only_brossard
    with_magog = ids(loaded, "croissant magog", cities=("brossard", "magog"))
    assert with_magog == ["magog"]
    assert "suspendu" in ids(loaded, "suspendu", exclude_merchants=())
    assert ids(loaded, "suspendu") == []


def test_dates_are_checked_against_now(loaded):
    later = SearchQuery(cities=("brossard",), now_us=NOW + 2 * DAY, text="amandes")
    assert [h["id"] for h in loaded.search(later).hits] == ["futur"]
    earlier = SearchQuery(cities=("brossard",), now_us=NOW - 2 * DAY, text="hier")
    assert [h["id"] for h in loaded.search(earlier).hits] == ["hier"]


# --- filters, facets, sorting, paging -----------------------------------------------------------


def test_filters(loaded):
    assert set(ids(loaded, categories=("retail", "sports"), limit=50)) == {"livre", "piscine"}
    assert set(ids(loaded, kinds=("event",), limit=50)) == {"concert", "visite"}
    assert set(ids(loaded, merchant_ids=("cafe",), limit=50)) == {"creme", "dejeuner"}
    assert set(ids(loaded, min_points=250, max_points=900, limit=50)) == {
        "creme",
        "dejeuner",
        "livre",
        "velo",
        "glace",
        "visite",
    }
    assert set(ids(loaded, max_points=120, limit=50)) == {"croissant"}
    available = set(ids(loaded, available_now=True, limit=50))
    assert "velo" not in available and "glace" not in available and "croissant" in available


def test_facet_counts(loaded):
    result = loaded.search(query("", cities=("brossard", "delson")))
    assert result.total == 9
    assert result.facets["category"] == {"food": 4, "retail": 1, "sports": 1, "services": 1, "culture": 1, "tourism": 1}
    assert result.facets["kind"] == {"offer": 6, "service": 1, "event": 2}
    assert result.facets["city"] == {"brossard": 7, "delson": 2}
    narrowed = loaded.search(query("croissant"))
    assert narrowed.facets["category"] == {"food": 2} and narrowed.total == 2


def test_sort_by_price(loaded):
    up = loaded.search(query("", sort="price_asc", limit=50)).hits
    assert [h["price_points"] for h in up] == sorted(h["price_points"] for h in up) and len(up) == 9
    down = loaded.search(query("", sort="price_desc", limit=3)).hits
    assert [h["id"] for h in down] == ["concert", "piscine", "livre"]


def test_sort_by_distance_and_geo_radius(loaded):
    near = loaded.search(query("", sort="distance", origin=HERE, limit=50)).hits
    assert near[0]["id"] == "croissant" and near[0]["distance_m"] < 50
    located = [h for h in near if "distance_m" in h]
    assert [h["distance_m"] for h in located] == sorted(h["distance_m"] for h in located)
    assert near[-1]["id"] == "visite"  # no location: last
    inside = loaded.search(query("", origin=HERE, radius_m=2_000, sort="distance", limit=50))
    assert [h["id"] for h in inside.hits] == ["croissant", "glace", "velo", "piscine", "creme"]
    assert inside.total == 5 and inside.facets["category"] == {"food": 3, "services": 1, "sports": 1}


def test_offset_paging_covers_every_hit_once(loaded):
    pages = [loaded.search(query("", sort="price_asc", offset=o, limit=4)) for o in (0, 4, 8)]
    seen = [h["id"] for p in pages for h in p.hits]
    assert len(seen) == len(set(seen)) == 9 and all(p.total == 9 for p in pages)
    assert [len(p.hits) for p in pages] == [4, 4, 1]


# --- writes: idempotent by (id, version), and the rebuild swap ----------------------------------


def test_apply_is_idempotent_and_refuses_older_versions(fresh):
    v1 = doc("x", "Tarte au sucre", "Sugar pie", version=1)
    v2 = doc("x", "Tarte au sucre géante", "Giant sugar pie", version=2)
    fresh.apply([v1], [])
    fresh.apply([v1], [])  # redelivered: nothing changes
    assert fresh.count("x") == 1
    fresh.apply([v2], [])
    fresh.apply([v1], [])  # late, older: ignored
    assert fresh.count("x") == 1 and ids(fresh, "geante") == ["x"]
    fresh.apply([], [("x", 2)])  # a deletion no newer than what is held: ignored
    assert fresh.count("x") == 1
    fresh.apply([], [("x", 3)])
    fresh.apply([], [("x", 3)])
    assert fresh.count("x") == 0 and ids(fresh, "tarte") == []


def test_rebuild_swaps_in_a_complete_index(fresh):
    fresh.apply(CORPUS, [])
    assert fresh.rebuild([CORPUS[:2], CORPUS[2:4]]) == 4
    assert set(ids(fresh, "", limit=50)) == {"croissant", "creme", "dejeuner", "livre"}
    assert fresh.count("piscine") == 0 and fresh.count("croissant") == 1
