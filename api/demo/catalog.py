"""Seeding the demo catalog: shops and offers for every merchant, municipal services and events for every
city, in French and English, then one indexing pass. Through the same services as the API.

`seed_catalog(ctx, creds, rng)` takes the credentials `api.demo.seed_members` returned (merchants with
their city and category) and returns how many items it created.
"""

from __future__ import annotations

import random
import time

from api.bootstrap import Context
from marketplace.domain.catalog import Category, ItemSpec, Location
from marketplace.service_layer.catalog import Owner

ACTOR = "staff:demo-seeder"
DAY_US = 86_400_000_000
# Approximate town centres (WGS 84), so that "near me" means something in the demo.
CENTRES = {
    "brossard": (45.4584, -73.4646), "chateauguay": (45.3800, -73.7500), "saint-constant": (45.3700, -73.5700),
    "saint-lambert": (45.5000, -73.5100), "delson": (45.3700, -73.5500), "sainte-catherine": (45.4000, -73.5800),
    "saint-basile-le-grand": (45.5300, -73.2800), "beaconsfield": (45.4300, -73.8600), "magog": (45.2667, -72.1500),
    "la-prairie": (45.4167, -73.5000), "wendake": (46.8700, -71.3600),
}  # fmt: skip
# (title fr, title en, description fr, description en, points, cash cents paid at the till)
OFFERS = {
    "food": [("Croissant au beurre", "Butter croissant", "Pur beurre, cuit chaque matin.", "All butter, baked every morning.", 150, 0),
             ("Café et viennoiserie", "Coffee and pastry", "Un café filtre et la viennoiserie du jour.", "A filter coffee and the pastry of the day.", 300, 0),
             ("Panier de produits locaux", "Local produce basket", "Fromages, miel et pain de la région.", "Cheese, honey and bread from the region.", 1_500, 1_000)],
    "retail": [("Livre d’un auteur québécois", "Book by a Québec author", "Au choix sur la table des nouveautés.", "Your pick from the new releases table.", 1_200, 500),
               ("Bon d’achat de 10 $", "$10 gift voucher", "Valable sur tout le magasin.", "Valid storewide.", 1_000, 0)],
    "services": [("Réparation de chaussures", "Shoe repair", "Talons et semelles, en 48 heures.", "Heels and soles, within 48 hours.", 800, 0),
                 ("Coupe de cheveux", "Haircut", "Coupe et coiffage.", "Cut and style.", 1_800, 1_000)],
    "culture": [("Billet de spectacle", "Show ticket", "Un billet pour la programmation de la saison.", "One ticket for this season's shows.", 2_000, 0),
                ("Atelier de peinture", "Painting workshop", "Deux heures avec un artiste de la région.", "Two hours with a local artist.", 1_500, 0)],
    "sports": [("Mise au point de vélo", "Bicycle tune-up", "Freins, vitesses et pneus vérifiés.", "Brakes, gears and tires checked.", 1_200, 0),
               ("Séance d’escalade", "Climbing session", "Accès et location d’équipement.", "Entry and gear rental.", 1_000, 500)],
    "tourism": [("Nuitée en auberge", "Night at the inn", "Petit déjeuner compris.", "Breakfast included.", 6_000, 4_000),
                ("Croisière sur le lac", "Lake cruise", "Une heure commentée sur l’eau.", "A guided hour on the water.", 2_500, 0)],
}  # fmt: skip
# (title fr, title en, category, price points, cash cents)
SERVICES: list[tuple[str, str, Category, int, int]] = [
    ("Abonnement à la piscine (10 entrées)", "Pool pass (10 visits)", "sports", 2_000, 1_500),
    ("Frais de retard de la bibliothèque", "Library late fees", "culture", 300, 0),
    ("Inscription au soccer récréatif", "Recreational soccer registration", "sports", 3_000, 4_500),
]
# (title fr, title en, category, price points, seats, capacity)
EVENTS: list[tuple[str, str, Category, int, int, int]] = [
    ("Concert symphonique au parc", "Symphony concert in the park", "culture", 800, 40, 600),
    ("Visite guidée du patrimoine", "Heritage guided tour", "tourism", 500, 20, 30),
]


def _near(city: str, rng: random.Random) -> Location:
    lat, lng = CENTRES.get(city, (45.5, -73.6))
    return Location(lat=round(lat + rng.uniform(-0.02, 0.02), 6), lng=round(lng + rng.uniform(-0.03, 0.03), 6))


def seed_catalog(ctx: Context, creds: dict, rng: random.Random) -> int:
    """Shops and offers per merchant, services and events per city; indexed in one pass at the end."""
    now_us = int(time.time() * 1_000_000)
    created = 0
    for merchant in creds["merchants"]:
        owner = Owner(merchant["city"], merchant["merchant_id"], f"merchant:{merchant['merchant_id']}")
        ctx.catalog.set_shop(owner, _near(merchant["city"], rng), is_open=rng.random() > 0.1, deliver_now=False)
        for fr, en, desc_fr, desc_en, points, cash in OFFERS[merchant["category"]]:
            quantity = rng.choice((None, 20, 50))
            spec = ItemSpec(title={"fr": fr, "en": en}, description={"fr": desc_fr, "en": desc_en}, category=merchant["category"],
                            price_points=points, cash_cents=cash, quantity=quantity,
                            per_resident_limit=2 if quantity else None)  # fmt: skip
            ctx.catalog.create(owner, "offer", spec, deliver_now=False)
            created += 1
    for city in sorted({m["city"] for m in creds["merchants"]} | {s["city"] for s in creds.get("staff", [])}):
        owner = Owner(city, None, ACTOR)
        for fr, en, category, points, cash in SERVICES:
            spec = ItemSpec(title={"fr": fr, "en": en}, category=category, price_points=points, cash_cents=cash,
                            location=_near(city, rng))  # fmt: skip
            ctx.catalog.create(owner, "service", spec, deliver_now=False)
            created += 1
        for n, (fr, en, category, points, seats, capacity) in enumerate(EVENTS):
            spec = ItemSpec(title={"fr": fr, "en": en}, category=category, price_points=points, quantity=seats,
                            seats_total=capacity, starts_at_us=now_us + (7 + 14 * n) * DAY_US, location=_near(city, rng))  # fmt: skip
            ctx.catalog.create(owner, "event", spec, deliver_now=False)
            created += 1
    ctx.search_indexer.deliver()
    return created
