"""Search benchmark: catalog search latency on 100,000 offers, through the search service, vs the
search library's bare query on the same index, in the same run.

The catalog: 11 communities, each with its merchants (approved, and a few pending ones the service
must leave out) and their shops around the city's centre; offers in French, English and Spanish
over the six categories, with prices, stock and dates. The documents are the ones the indexer sends
(`marketplace.domain.catalog.search_document`), built into the embedded (tantivy) index with a
rebuild, as `entraide search reindex` does.

The queries are what residents type: one word, a word being typed (prefix), a typo, two words,
browsing with filters and no text, a category and a price range, available now, a 2 km radius
sorted by distance, a price sort, a second and a third page; facets on, as the pages ask. Each
goes through `CatalogSearch.search` (the resident's cities, the pending merchants left out by SQL,
the hits typed, the facets counted) and, right after it, the same text through tantivy alone: the
query our backend builds (`EmbeddedSearch._query`, the same words, typos and filters) run on the same
searcher for the same page, its stored documents read, no facets, no SQL, no typing. Alternating the
two on each query gives both the same machine state.

    python -m bench.search        (section 7 of `python -m bench`)

Environment: ENTRAIDE_BENCH_SEARCH_OFFERS (100,000), ENTRAIDE_BENCH_SEARCH_QUERIES (each kind is
run this many times, 200). With ENTRAIDE_MEILI_URL (and ENTRAIDE_MEILI_KEY) set, the same queries
also run on that Meilisearch server through the service, vs its bare `index.search`.
Goals (issue 18): p95 under 20 ms on the embedded backend, and within 2x of the bare query.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OFFERS = int(os.environ.get("ENTRAIDE_BENCH_SEARCH_OFFERS", "100000"))
QUERIES = int(os.environ.get("ENTRAIDE_BENCH_SEARCH_QUERIES", "200"))
T0 = 1_767_225_600_000_000
DAY_US = 86_400 * 1_000_000
MERCHANTS_PER_CITY = 60
PENDING_PER_CITY = 3
CITIES = {  # the centre of each community, for the shops and the radius queries
    "brossard": (45.4590, -73.4655), "longueuil": (45.5370, -73.5108), "boucherville": (45.5910, -73.4360),
    "saint-lambert": (45.4990, -73.5060), "saint-bruno": (45.5330, -73.3490), "chambly": (45.4490, -73.2880),
    "laprairie": (45.4160, -73.4990), "candiac": (45.3870, -73.5160), "varennes": (45.6830, -73.4300),
    "sainte-julie": (45.5850, -73.3270), "carignan": (45.4520, -73.3000),
}  # fmt: skip

# Words by category and language: a title is a noun, a qualifier and the shop's name.
NOUNS = {
    "food": (["pain", "croissant", "baguette", "fromage", "café", "gâteau", "tarte", "soupe", "muffin", "confiture"],
             ["bread", "croissant", "baguette", "cheese", "coffee", "cake", "pie", "soup", "muffin", "jam"],
             ["pan", "cruasán", "barra", "queso", "café", "pastel", "tarta", "sopa", "magdalena", "mermelada"]),
    "retail": (["marteau", "perceuse", "livre", "chandail", "lampe", "vélo", "tapis", "casquette", "montre", "sac"],
               ["hammer", "drill", "book", "sweater", "lamp", "bicycle", "rug", "cap", "watch", "bag"],
               ["martillo", "taladro", "libro", "suéter", "lámpara", "bicicleta", "alfombra", "gorra", "reloj", "bolso"]),
    "services": (["coupe", "réparation", "nettoyage", "massage", "cours", "lavage", "couture", "coiffure", "photo",
                  "entretien"],
                 ["haircut", "repair", "cleaning", "massage", "lesson", "wash", "sewing", "styling", "photo", "tune-up"],
                 ["corte", "reparación", "limpieza", "masaje", "clase", "lavado", "costura", "peinado", "foto",
                  "mantenimiento"]),
    "culture": (["billet", "concert", "théâtre", "exposition", "atelier", "cinéma", "spectacle", "musée", "conte",
                 "danse"],
                ["ticket", "concert", "theatre", "exhibition", "workshop", "cinema", "show", "museum", "story", "dance"],
                ["entrada", "concierto", "teatro", "exposición", "taller", "cine", "espectáculo", "museo", "cuento",
                 "baile"]),
    "sports": (["piscine", "patinoire", "yoga", "tennis", "escalade", "natation", "hockey", "soccer", "gym", "ski"],
               ["pool", "rink", "yoga", "tennis", "climbing", "swimming", "hockey", "soccer", "gym", "ski"],
               ["piscina", "pista", "yoga", "tenis", "escalada", "natación", "hockey", "fútbol", "gimnasio", "esquí"]),
    "tourism": (["visite", "croisière", "auberge", "randonnée", "excursion", "forfait", "balade", "pique-nique",
                 "circuit", "séjour"],
                ["tour", "cruise", "inn", "hike", "excursion", "package", "ride", "picnic", "circuit", "stay"],
                ["visita", "crucero", "posada", "senderismo", "excursión", "paquete", "paseo", "pícnic", "circuito",
                 "estancia"]),
}  # fmt: skip
QUALIFIERS = (["maison", "du matin", "artisanal", "bio", "familial", "géant", "du quartier", "classique"],
              ["homemade", "morning", "artisan", "organic", "family", "giant", "neighbourhood", "classic"],
              ["casero", "de la mañana", "artesanal", "orgánico", "familiar", "gigante", "del barrio", "clásico"])  # fmt: skip
SHOP_WORDS = ["Boulangerie", "Quincaillerie", "Café", "Atelier", "Librairie", "Épicerie", "Studio", "Marché"]


def build_catalog(rng: random.Random, n: int) -> tuple[list[dict], dict[str, list[str]]]:
    """The documents the indexer would send for n offers, and each city's pending merchants."""
    from typing import Any

    from marketplace.domain.catalog import LANGUAGES, MICRODEGREES, Item, search_document

    shops: list[dict[str, Any]] = []
    pending: dict[str, list[str]] = {}
    for city, (lat, lng) in CITIES.items():
        pending[city] = [f"{city}-m{m:03d}" for m in range(PENDING_PER_CITY)]
        for m in range(MERCHANTS_PER_CITY + PENDING_PER_CITY):
            shops.append({
                "city": city, "merchant_id": f"{city}-m{m:03d}", "name": f"{rng.choice(SHOP_WORDS)} {city.title()} {m}",
                "lat_e6": round((lat + rng.uniform(-0.04, 0.04)) * MICRODEGREES),
                "lng_e6": round((lng + rng.uniform(-0.06, 0.06)) * MICRODEGREES),
                "is_open": rng.random() < 0.85, "address": f"{m} rue Principale, {city.title()}",
                "category": rng.choice(list(NOUNS)),
            })  # fmt: skip
    documents = []
    for i in range(n):
        shop = shops[i % len(shops)]
        category: str = shop["category"] if rng.random() < 0.7 else rng.choice(list(NOUNS))
        noun, qualifier = rng.randrange(10), rng.randrange(len(QUALIFIERS[0]))
        title = {lang: f"{NOUNS[category][k][noun]} {QUALIFIERS[k][qualifier]}" for k, lang in enumerate(LANGUAGES)}
        description = {lang: f"{title[lang]} — {shop['name']}" for lang in LANGUAGES}
        quantity = rng.choice([None, None, 5, 20, 100])
        item = Item(
            id=f"offer-{i:06d}", city=shop["city"], kind="offer", merchant_id=shop["merchant_id"], category=category,
            title=title, description=description, price_points=rng.choice([50, 100, 150, 200, 300, 500, 1000, 2500]),
            cash_cents=0, quantity=quantity, remaining=None if quantity is None else rng.randrange(0, quantity + 1),
            per_resident_limit=None, valid_from_us=T0 - rng.randrange(1, 90) * DAY_US,
            valid_until_us=T0 + rng.randrange(-5, 180) * DAY_US, status="published", suspended=False,
            lat_e6=None, lng_e6=None, address="", starts_at_us=None, seats_total=None, version=1,
        )  # fmt: skip
        documents.append(search_document(item, shop))
    return documents, pending


def seed_database(ctx, pending: dict[str, list[str]]) -> dict[str, str]:
    """The cities, their merchants (approved, or left pending) and one resident each: what the
    service reads per query (the resident's cities, the merchants to leave out)."""
    from community.domain.program import Program

    residents = {}
    for city in CITIES:
        ctx.programs.configure(Program(city=city), "bench:setup")
        for m in range(MERCHANTS_PER_CITY + PENDING_PER_CITY):
            merchant = f"{city}-m{m:03d}"
            ctx.merchants.add(city, merchant, f"Merchant {merchant}", "bench:setup", key=merchant, category="food")
            if merchant not in pending[city]:
                ctx.merchants.set_status(merchant, "approved", "bench:setup", city)
        residents[city] = ctx.residents.enroll(city, {"name": f"Resident of {city}"}, "basic", "bench:setup",
                                               key=f"r-{city}").id  # fmt: skip
    names = list(CITIES)
    for i, city in enumerate(names):  # each resident also shops in the next two communities
        for other in (names[(i + 1) % len(names)], names[(i + 2) % len(names)]):
            ctx.residents.opt_in(residents[city], other, "bench:setup")
    return residents


def query_kinds(rng: random.Random) -> dict[str, Callable[[str], object]]:
    """Each kind of query: a function of the city giving a SearchRequest (made fresh, so each run
    varies its words)."""
    from marketplace.service_layer.search import SearchRequest

    def word(category: str | None = None, lang: int = 0) -> str:
        return rng.choice(NOUNS[category or rng.choice(list(NOUNS))][lang])

    def typo(text: str) -> str:
        longest = max(text.split(), key=len)
        if len(longest) < 5:
            return text
        at = rng.randrange(1, len(longest) - 1)
        return text.replace(longest, longest[:at] + longest[at + 1 :], 1)  # one letter dropped

    def near(city: str, **kw) -> SearchRequest:
        lat, lng = CITIES[city]
        return SearchRequest(lat=lat, lng=lng, radius_m=2_000, **kw)

    return {
        "one word": lambda city: SearchRequest(q=word()),
        "prefix (typing)": lambda city: SearchRequest(q=word()[:3]),
        "typo": lambda city: SearchRequest(q=typo(word(lang=rng.randrange(3)))),
        "two words": lambda city: SearchRequest(q=f"{word('food')} {rng.choice(QUALIFIERS[0]).split()[0]}"),
        "browse, no text": lambda city: SearchRequest(),
        "category + price range": lambda city: SearchRequest(
            q=word("retail"), categories=("retail",), min_points=100, max_points=500
        ),
        "available now": lambda city: SearchRequest(q=word("food"), available_now=True),
        "2 km radius by distance": lambda city: near(city, q=word(), sort="distance"),
        "2 km radius, no text": near,
        "price sort": lambda city: SearchRequest(q=word(), sort="price_asc"),
        "page 2": lambda city: SearchRequest(q=word(), offset=20),
        "page 3": lambda city: SearchRequest(q=word(), offset=40),
    }


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return at(0.50), at(0.95), at(0.99)


def run(label: str, service, bare: Callable, residents: dict[str, str], rng: random.Random) -> dict[str, float]:
    """Each kind QUERIES times, the service then the bare query each time; a table of p50/p95/p99."""
    kinds = query_kinds(rng)
    cities = list(CITIES)
    print(f"  {label}: {QUERIES} runs of each kind, in milliseconds (service | bare query)")
    print(f"    {'kind':<26} {'p50':>7} {'p95':>7} {'p99':>7}   | {'p50':>6} {'p95':>6} {'p99':>6}   hits")
    everything: tuple[list[float], list[float]] = ([], [])
    for kind, make in kinds.items():
        ours, theirs, hits = [], [], 0
        for _ in range(QUERIES):
            city = rng.choice(cities)
            request = make(city)
            resident = residents[city]
            started = time.perf_counter()
            result = service.search(resident, request)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            bare(resident, request)
            theirs.append(time.perf_counter() - started)
            hits += result.total
        everything[0].extend(ours)
        everything[1].extend(theirs)
        o, t = percentiles(ours), percentiles(theirs)
        print(f"    {kind:<26} {o[0]:7.2f} {o[1]:7.2f} {o[2]:7.2f}   | {t[0]:6.2f} {t[1]:6.2f} {t[2]:6.2f}"
              f"   {hits / QUERIES:,.0f}")  # fmt: skip
    o, t = percentiles(everything[0]), percentiles(everything[1])
    print(f"    {'all kinds':<26} {o[0]:7.2f} {o[1]:7.2f} {o[2]:7.2f}   | {t[0]:6.2f} {t[1]:6.2f} {t[2]:6.2f}")
    print(f"    p95 {o[1]:.2f} ms (goal < 20 ms), {o[1] / t[1]:.2f}x the bare query's p95 (goal <= 2x)")
    return {"p95_ms": o[1], "ratio": o[1] / t[1]}


def embedded_bare(ctx, backend, residents: dict[str, str]):
    """The same query our embedded backend builds, run on tantivy alone: the page and its stored
    documents, no facets, no SQL (each resident's cities and the merchants to leave out are read
    once, before), no typed hits."""
    import json

    from marketplace.adapters import store
    from marketplace.domain.search import MAX_EXCLUDED, GeoPoint, SearchQuery

    scopes = {}
    for resident in residents.values():
        cities = ctx.catalog_search.cities_of(resident)
        with ctx.engine.connect() as conn:
            scopes[resident] = cities, tuple(store.unapproved_merchants(conn, cities, MAX_EXCLUDED))

    def bare(resident: str, request) -> object:
        cities, excluded = scopes[resident]
        origin = GeoPoint(request.lat, request.lng) if request.lat is not None else None
        query = SearchQuery(cities=cities, now_us=ctx.clock(), text=request.q, categories=request.categories,
                            exclude_merchants=excluded, min_points=request.min_points, max_points=request.max_points,
                            available_now=request.available_now, sort=request.sort, origin=origin,
                            radius_m=request.radius_m, offset=request.offset, limit=request.limit, facets=False)  # fmt: skip
        searcher = backend._live().searcher()
        found = searcher.search(backend._query(query), limit=request.limit, offset=request.offset)
        return [json.loads(searcher.doc(address)["doc"][0]) for _, address in found.hits]

    return bare


def meili_bare(backend):
    def bare(resident: str, request) -> object:
        return backend._index().search(request.q, {"limit": request.limit, "offset": request.offset})

    return bare


def bench_search() -> dict[str, float]:
    from api.bootstrap import Settings, open_context
    from marketplace.adapters.search_embedded import EmbeddedSearch
    from marketplace.adapters.search_meilisearch import MeilisearchBackend
    from marketplace.service_layer.search import CatalogSearch

    rng = random.Random(7)
    print(f"\n7. Search: {OFFERS:,} offers over {len(CITIES)} communities, service vs the library's bare query")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        started = time.perf_counter()
        documents, pending = build_catalog(rng, OFFERS)
        ctx = open_context(Settings(data_dir=data, database_url=str(data / "bench.db"), keys_dir=data / "keys"),
                           clock=lambda: T0, create=True)  # fmt: skip
        try:
            residents = seed_database(ctx, pending)
            built = time.perf_counter()
            embedded = EmbeddedSearch(data / "search")
            embedded.rebuild(documents[i : i + 1_000] for i in range(0, len(documents), 1_000))
            indexed = time.perf_counter()
            print(f"  (catalog made in {built - started:.1f} s; indexed {len(documents):,} documents in "
                  f"{indexed - built:.1f} s, {len(documents) / (indexed - built):,.0f}/s; not timed below)")  # fmt: skip
            service = CatalogSearch(ctx.engine, embedded, ctx.residents, ctx.clock)
            figures = run("embedded (tantivy)", service, embedded_bare(ctx, embedded, residents), residents, rng)
            meili_url = os.environ.get("ENTRAIDE_MEILI_URL")
            if meili_url:
                meili = MeilisearchBackend(meili_url, os.environ.get("ENTRAIDE_MEILI_KEY"),
                                           index_uid=f"bench_{int(time.time())}")  # fmt: skip
                meili.rebuild(documents[i : i + 10_000] for i in range(0, len(documents), 10_000))
                run("Meilisearch", replace_backend(service, meili), meili_bare(meili), residents, rng)
            else:
                print("  Meilisearch: skipped (set ENTRAIDE_MEILI_URL to run the same queries on a server)")
            return figures
        finally:
            ctx.engine.dispose()


def replace_backend(service, backend):
    from marketplace.service_layer.search import CatalogSearch

    return CatalogSearch(service.engine, backend, service.residents, service.clock)


if __name__ == "__main__":
    bench_search()
