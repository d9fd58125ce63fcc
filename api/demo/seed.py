"""Seeding the demo: the eleven communities with programs, merchants and their terminals, organizations,
residents with cards, and months of activity up to today; plus the credentials to act as any of them.

Everything goes through the same services the API uses. Terminal private keys exist only in the
credentials file (the server keeps public keys); the file is written 0600 into the data directory,
so that a second `entraide demo` on the same data serves the same accounts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from api.bootstrap import Context
from community.domain.access import operator
from community.domain.program import CATEGORIES, Campaign, Program, Treasury
from finance.schemas import PeriodClose
from ledger.simulate import COMMUNITIES, DAY_US, Members, Simulator

ACTOR = "staff:demo-seeder"
SEEDER = operator("demo-seeder")  # grants the demo's tokens, as `entraide admin grant` would
TREASURER = "finance:demo-treasurer"  # proposes the merchants' payout accounts …
ADMINISTRATOR = "admin:demo-administrator"  # … and a second person confirms them
PRINCIPALS = (
    ("admin", "admins"),
    ("staff", "staff"),
    ("finance", "finance"),
    ("auditor", "auditors"),
)  # role, creds key
TOKEN_TTL_SECONDS = 30 * 86_400
SHOPS = {
    "food": ("Boulangerie", "Épicerie", "Fromagerie", "Café"),
    "retail": ("Librairie", "Quincaillerie", "Boutique"),
    "services": ("Cordonnerie", "Salon"),
    "culture": ("Théâtre", "Galerie"),
    "sports": ("Vélo", "Centre sportif"),
    "tourism": ("Auberge", "Croisières"),
}
FIRST_NAMES = ("Léa", "Noah", "Emma", "Liam", "Alice", "William", "Chloé", "Thomas", "Zoé", "Félix", "Maya", "Jacob")
LAST_NAMES = ("Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Sioui")
Progress = Callable[[int], None]


def credentials_path(ctx: Context) -> Path:
    return ctx.settings.data_dir / "demo-credentials.json"


def plan_sizes() -> dict[str, tuple[int, int, int]]:
    """(residents, merchants, organizations) per community, in proportion to its population."""
    return {c.id: (max(8, c.population // 1_500), max(3, c.population // 6_000), 2) for c in COMMUNITIES}


def seed_members(ctx: Context, progress: Progress, rng: random.Random) -> dict:
    """Programs, budgets, merchants with terminals, organizations, residents with cards; returns the
    credentials file's content without tokens (`grant_tokens` adds them). Members join at the
    context's clock: the start of the simulated months."""
    today = dt.date.fromtimestamp(time.time())
    creds: dict = {
        role: [] for role in ("admins", "staff", "finance", "auditors", "organizations", "merchants", "residents")
    }
    campaign = Campaign(id="achat-local", starts_on=today - dt.timedelta(days=30), ends_on=today + dt.timedelta(days=30),
                        multiplier_percent=200, category="food")  # fmt: skip
    for n, community in enumerate(COMMUNITIES):  # every city first: residents opt in to their neighbours
        treasury = Treasury(name=f"Ville de {community.name}"[:140], institution="815", transit=f"{30000 + n:05d}",
                            account_number=f"{4400000 + n:07d}")  # fmt: skip
        ctx.programs.configure(
            Program(city=community.id, name=community.name, campaigns=(campaign,), treasury=treasury), ACTOR
        )
        ctx.programs.fund_budget(community.id, community.population * 400, f"demo-{today.year}", ACTOR)
    for community in COMMUNITIES:
        city = community.id
        for role, key in PRINCIPALS:
            creds[key].append({"city": city, "subject": f"{role}-{city}"})
        residents, merchants, orgs = plan_sizes()[city]
        for n in range(merchants):
            category = CATEGORIES[n % len(CATEGORIES)]
            merchant_id = f"{city}-{category}-{n}"[:48]
            shop = SHOPS[category][n % len(SHOPS[category])]
            ctx.merchants.add(
                city, merchant_id, f"{shop} {community.name} {n}", ACTOR, key=merchant_id, category=category
            )
            ctx.merchants.set_status(merchant_id, "approved", ACTOR, city)
            private = Ed25519PrivateKey.generate()
            public_pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            key_id = ctx.terminals.register(merchant_id, public_pem, ACTOR, city, key=merchant_id).terminal_key_id
            private_pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
            account = {"holder_name": shop, "institution": "006", "transit": f"{10000 + n:05d}",
                       "account_number": f"{5500000 + n:07d}", "stripe_account_id": f"acct_demo{city.replace('-', '')}{n}"}  # fmt: skip
            change = ctx.payouts.propose_account(
                city, merchant_id, account, TREASURER, key=f"demo-account-{merchant_id}"
            )
            ctx.payouts.decide_account(city, change.id, "confirm", ADMINISTRATOR)
            creds["merchants"].append({"city": city, "merchant_id": merchant_id, "category": category,
                                       "terminal_key_id": key_id, "private_key_pem": private_pem})  # fmt: skip
            progress(1)
        for n in range(orgs):
            org_id = f"{city}-org-{n}"
            ctx.organizations.add(city, org_id, f"Centre communautaire {community.name} {n}", ACTOR, key=org_id)
            ctx.organizations.set_status(org_id, "approved", ACTOR, city)
            creds["organizations"].append({"city": city, "org_id": org_id, "subject": f"coordo-{org_id}"})
            progress(1)
        for n in range(residents):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            level = rng.choice(("basic", "basic", "verified", "checked"))
            personal = {"name": name, "language": rng.choice(("fr", "fr", "en"))}
            resident = ctx.residents.enroll(city, personal, level, ACTOR, key=f"resident-{n}")
            if rng.random() < 0.15:
                ctx.residents.opt_in(resident.id, rng.choice([c.id for c in COMMUNITIES if c.id != city]), ACTOR)
            card = ctx.residents.current_card(resident.id)
            creds["residents"].append({"city": city, "resident_id": resident.id, "level": level, "card": card["token"],
                                       "card_id": card["id"]})  # fmt: skip
            progress(1)
    return creds


def grant_tokens(ctx: Context, creds: dict) -> dict:
    """Fresh tokens for every demo account, at each start of the demo and from the real clock (they
    last TOKEN_TTL_SECONDS): granted by the operator, as `entraide admin grant` does."""
    for role, key in PRINCIPALS:
        for entry in creds[key]:
            entry["token"] = ctx.access.grant(
                SEEDER, entry["city"], role, entry["subject"], None, TOKEN_TTL_SECONDS, key=secrets.token_hex(8)
            ).token
    for entry in creds["organizations"]:
        granted = ctx.access.grant(
            SEEDER, entry["city"], "org", entry["subject"], entry["org_id"], TOKEN_TTL_SECONDS, key=secrets.token_hex(8)
        )
        entry["token"] = granted.token
    for entry in creds["residents"]:
        entry["token"] = ctx.access.issue_resident(entry["resident_id"], entry["city"], TOKEN_TTL_SECONDS, SEEDER.actor)
        # To sign in on the web (/wallet/sign-in): a fresh one-time code at each start, valid 72 hours.
        entry["activation_code"] = ctx.activation.issue(entry["resident_id"], entry["city"], ACTOR,
                                                        key=secrets.token_hex(8)).code  # fmt: skip
    creds["principals"] = web_principals(ctx, creds)
    creds["terminal_pairing"] = terminal_pairing(ctx, creds)
    return creds


def terminal_pairing(ctx: Context, creds: dict) -> dict:
    """A code that pairs a browser as a web terminal (/terminal/pair) of the portal's demo merchant, as
    `entraide admin terminal-pairing-code` issues it: one use, for 15 minutes from the demo's start."""
    owner = next(p for p in creds["principals"] if p["role"] == "merchant")
    code = ctx.pairing.issue(owner["merchant_id"], owner["city"], ACTOR, "demo till", key=secrets.token_hex(8))
    return {"city": code.city, "merchant_id": code.merchant_id, "code": code.code, "expires_at_us": code.expires_at_us}


def web_principals(ctx: Context, creds: dict) -> list[dict]:
    """Who signs in to the portal and the office in the demo: the owner of the first city's first
    merchant and the first city's first principal of each office role, each with a fresh activation
    code (/portal/sign-in, /office/sign-in), as `entraide admin principal-activation` issues it."""
    city = COMMUNITIES[0].id
    merchant = next(m for m in creds["merchants"] if m["city"] == city)
    wanted = [("merchant", f"owner-{merchant['merchant_id']}", merchant["merchant_id"])]
    for role, key in PRINCIPALS:
        wanted += [(role, e["subject"], None) for e in creds[key] if e["city"] == city][:1]
    principals = []
    for role, subject, merchant_id in wanted:
        code = ctx.activation.issue_principal(
            SEEDER, city, role, subject, key=secrets.token_hex(8), merchant_id=merchant_id
        )
        principals.append({"city": city, "role": role, "subject": subject, "principal_id": code.principal_id,
                           "merchant_id": merchant_id, "activation_code": code.code})  # fmt: skip
    return principals


def member_count() -> int:
    return sum(sum(sizes) for sizes in plan_sizes().values())


def members_by_city(creds: dict) -> dict[str, Members]:
    by_city = {}
    for community in COMMUNITIES:
        city = community.id
        by_city[city] = Members(
            residents=tuple(r["resident_id"] for r in creds["residents"] if r["city"] == city),
            merchants=tuple(m["merchant_id"] for m in creds["merchants"] if m["city"] == city),
            orgs=tuple(o["org_id"] for o in creds["organizations"] if o["city"] == city),
        )
    return by_city


def write_credentials(creds: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(creds, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def new_simulator(seed: int, days: int, creds: dict, end_us: int) -> Simulator:
    return Simulator(seed, end_us - days * DAY_US, days, members=members_by_city(creds))


def close_last_month(ctx: Context) -> list[PeriodClose]:
    """Close the last complete month in every city, as finance would on the first of the month."""
    today = dt.date.fromtimestamp(time.time())
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return [ctx.settlement.close(c.id, last_month, ACTOR) for c in COMMUNITIES]
