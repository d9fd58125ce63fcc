"""The HTTP endpoints, grouped as the product names them: /pos, /wallet, /orgs, /admin, /transparency.

Handlers are thin: they check role and tenant on the Principal, call one service, and shape the
answer. Blocking service calls run in litestar's thread pool (`sync_to_thread=True`).
"""

from __future__ import annotations

import segno
from anyio import to_thread
from litestar import Response, Router, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api import schemas
from api.auth import Principal, bearer_principal, terminal_principal
from api.bootstrap import Context
from api.params import (
    City,
    Ctx,
    Flag,
    Id,
    IdempotencyKey,
    OptionalRole,
    OptionalSequence,
    OptionalSubject,
    PageLimit,
    Sequence,
    TimeUs,
    Who,
    idempotency_key,
)
from community.adapters.secrets import public_jwks
from community.domain.errors import Forbidden
from community.domain.program import Program
from community.service_layer.residents import wallet_account
from ledger.adapters import journal
from ledger.domain.errors import InvalidRequest
from ledger.service_layer import audit, audit_trail
from merchants.service_layer.pos import Terminal
from operations.service_layer.scheduler import Scheduler

# --- /v1/pos: signed terminal requests ----------------------------------------------------------


def _terminal(principal: Principal) -> Terminal:
    assert principal.terminal is not None
    return principal.terminal


@post("/identify", sync_to_thread=True, status_code=200)
def identify(data: JSONBody[schemas.CardBody], principal: Who, ctx: Ctx) -> dict:
    """Who holds this card, and how many points they can spend here."""
    return ctx.pos.identify(_terminal(principal), data.card)


@post("/awards", sync_to_thread=True, status_code=201)
def award(data: JSONBody[schemas.AwardBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Award merchant-funded points for a purchase; the answer explains the computation."""
    return ctx.pos.award(_terminal(principal), idempotency_key(key), data.card, data.purchase_cents)


async def _committed(ctx: Context, prepare, *args) -> dict:
    """Prepare on a thread (lookups), then await the group commit without holding one: concurrent
    terminals then share batches instead of queueing for threads."""
    group, view = await to_thread.run_sync(prepare, *args)
    return view(await ctx.committer.transfer_async(*group))


@post("/holds", status_code=201)
async def hold(data: JSONBody[schemas.HoldBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Reserve points for a redemption; capture or void it, or it expires."""
    return await _committed(ctx, ctx.pos.hold_operation, _terminal(principal), idempotency_key(key), data.card, data.points)


@post("/holds/{hold_id:str}/capture", status_code=200)
async def capture(hold_id: Id, data: JSONBody[schemas.CaptureBody], principal: Who, ctx: Ctx,
                  key: IdempotencyKey) -> dict:  # fmt: skip
    return await _committed(ctx, ctx.pos.resolve_operation, _terminal(principal), idempotency_key(key), hold_id, "post",
                            data.points)  # fmt: skip


@post("/holds/{hold_id:str}/void", status_code=200)
async def void(hold_id: Id, principal: Who, ctx: Ctx, key: IdempotencyKey,
               data: JSONBody[schemas.VoidBody | None] = None) -> dict:  # fmt: skip
    return await _committed(ctx, ctx.pos.resolve_operation, _terminal(principal), idempotency_key(key), hold_id, "void", None)


@post("/refunds", sync_to_thread=True, status_code=201)
def refund(data: JSONBody[schemas.RefundBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Refund a purchase's points or a captured redemption, never more than is left of it."""
    return ctx.pos.refund(_terminal(principal), idempotency_key(key), data.transfer_id, data.points)


@post("/offline", sync_to_thread=True, status_code=200)
def offline(data: JSONBody[schemas.OfflineBatch], principal: Who, ctx: Ctx) -> dict:
    """Redemptions and purchases recorded offline; each item is idempotent and gets its own result."""
    items = [schemas.msgspec.structs.asdict(item) for item in data.items]
    return {"results": ctx.pos.offline(_terminal(principal), items)}


@get("/statement", sync_to_thread=True)
def statement(principal: Who, ctx: Ctx, since_us: TimeUs = 0, until_us: TimeUs = 2**62, before_sequence: OptionalSequence = None,
              limit: PageLimit = 100) -> dict:  # fmt: skip
    terminal = _terminal(principal)
    return ctx.pos.statement(terminal.merchant_id, terminal.city, since_us, until_us, before_sequence, limit)


@get("/cards/keys", sync_to_thread=True)
def card_keys(principal: Who, ctx: Ctx) -> dict:
    """The card public keys of every city, for checking cards offline."""
    return ctx.residents.card_keys(ctx.programs.cities())


@get("/cards/revocations", sync_to_thread=True)
def revocations(principal: Who, ctx: Ctx, since_us: TimeUs = 0) -> dict:
    """Cards of the terminal's city revoked since `since_us`: what an offline terminal must refuse."""
    rows = ctx.residents.revocations(_terminal(principal).city, since_us)
    return {"city": principal.city, "revoked": rows}


pos = Router("/v1/pos", route_handlers=[identify, award, hold, capture, void, refund, offline, statement, card_keys, revocations],
             dependencies={"principal": Provide(terminal_principal)}, tags=["pos"])  # fmt: skip


# --- /v1/wallet: the resident -------------------------------------------------------------------


def _resident(principal: Principal) -> str:
    return principal.require("resident").subject


@get("/balance", sync_to_thread=True)
def balance(principal: Who, ctx: Ctx) -> dict:
    b = ctx.ledger.balance(principal.city, wallet_account(_resident(principal)))
    return {"available": b.available, "posted": b.posted, "pending": -b.pending, "city": principal.city}


@get("/history", sync_to_thread=True)
def history(principal: Who, ctx: Ctx, before_sequence: OptionalSequence = None, limit: PageLimit = 50) -> dict:
    with ctx.engine.connect() as conn:
        rows = journal.account_entries(conn, principal.city, [wallet_account(_resident(principal))],
                                       before_sequence=before_sequence, limit=limit)  # fmt: skip
    return journal.entry_page(rows, limit)


@get("/card", sync_to_thread=True)
def card(principal: Who, ctx: Ctx) -> dict:
    found = ctx.residents.current_card(_resident(principal))
    return {"card_id": found["id"], "city": found["city"], "expires_at_us": found["expires_at_us"], "token": found["token"]}


@get("/card/qr.svg", sync_to_thread=True, media_type="image/svg+xml")
def card_qr(principal: Who, ctx: Ctx) -> Response[bytes]:
    """The card as a QR code (SVG) to show at the till."""
    token = ctx.residents.current_card(_resident(principal))["token"]
    return Response(segno.make(token, error="m").svg_inline(scale=4).encode(), media_type="image/svg+xml")


@post("/card/replace", sync_to_thread=True, status_code=201)
def replace_card(principal: Who, ctx: Ctx) -> dict:
    """Report the card lost: every card of the resident is revoked and a new one issued."""
    found = ctx.residents.replace_card(_resident(principal), principal.actor)
    return {"card_id": found["id"], "city": found["city"], "expires_at_us": found["expires_at_us"], "token": found["token"]}


@get("/opt-ins", sync_to_thread=True)
def list_opt_ins(principal: Who, ctx: Ctx) -> dict:
    return {"home": principal.city, "opt_ins": ctx.residents.opt_ins(_resident(principal))}


@post("/opt-ins", sync_to_thread=True, status_code=200)
def opt_in(data: JSONBody[schemas.OptInBody], principal: Who, ctx: Ctx) -> dict:
    return {"home": principal.city, "opt_ins": ctx.residents.opt_in(_resident(principal), data.city)}


@get("/export", sync_to_thread=True)
def export(principal: Who, ctx: Ctx) -> dict:
    """Everything held about the resident, in JSON."""
    return ctx.residents.export(_resident(principal))


@post("/erasure", sync_to_thread=True, status_code=202)
def erasure(principal: Who, ctx: Ctx) -> dict:
    """Erase the resident's personal data (their key is destroyed); the ledger keeps opaque entries."""
    ctx.residents.erase(_resident(principal), principal.actor)
    return {"status": "erased"}


wallet = Router("/v1/wallet", route_handlers=[balance, history, card, card_qr, replace_card, list_opt_ins, opt_in, export, erasure],
                dependencies={"principal": Provide(bearer_principal)}, tags=["wallet"])  # fmt: skip


# --- /v1/orgs: community organizations ------------------------------------------------------------


@post("/attestations", sync_to_thread=True, status_code=201)
def attest(data: JSONBody[schemas.AttestationBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Attest a civic activity: city-funded points, gated by the resident's level, within the budget."""
    principal.require("org")
    if principal.org_id is None:
        raise Forbidden("the token names no organization")
    return ctx.attestations.attest(principal.org_id, idempotency_key(key), data.card, data.activity, data.units)


orgs = Router("/v1/orgs", route_handlers=[attest], dependencies={"principal": Provide(bearer_principal)}, tags=["orgs"])


# --- /v1/admin: city program staff ----------------------------------------------------------------


def _staff(principal: Principal, city: str) -> Principal:
    principal.require("staff").require_city(city)
    return principal


@get("/programs/{city:str}", sync_to_thread=True)
def get_program(city: City, principal: Who, ctx: Ctx) -> Program:
    _staff(principal, city)
    return ctx.programs.get(city)


@put("/programs/{city:str}", sync_to_thread=True)
def put_program(city: City, data: JSONBody[Program], principal: Who, ctx: Ctx) -> dict:
    _staff(principal, city)
    if data.city != city:
        raise InvalidRequest("the program's city must be the one in the path", message="city")
    program, version = ctx.programs.configure(data, principal.actor)
    return {"version": version, "program": program}


@post("/programs/{city:str}/budget", sync_to_thread=True, status_code=201)
def fund(city: City, data: JSONBody[schemas.FundingBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    _staff(principal, city)
    return ctx.programs.fund_budget(city, data.points, idempotency_key(key), principal.actor)


@get("/audit/{city:str}", sync_to_thread=True)
def audit_log(city: City, principal: Who, ctx: Ctx, after_seq: Sequence = 0, limit: PageLimit = 100) -> dict:
    """The city's audit trail in order, each record with its hash chain and signature."""
    principal.require("staff", "finance", "auditor", "admin").require_city(city)
    rows = audit_trail.page(ctx.engine, city, after_seq, limit)
    return {"entries": rows, "next_after_seq": rows[-1]["seq"] if len(rows) == limit else None}


@post("/residents/{city:str}", sync_to_thread=True, status_code=201)
def enrol(city: City, data: JSONBody[schemas.EnrolBody], principal: Who, ctx: Ctx) -> dict:
    _staff(principal, city)
    personal = {k: v for k, v in schemas.msgspec.structs.asdict(data.personal).items() if v is not None}
    return ctx.residents.enroll(city, personal, data.level, principal.actor, data.subject)


@post("/residents/{city:str}/{resident_id:str}/renew", sync_to_thread=True, status_code=200)
def renew(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.residents.renew(resident_id, _staff(principal, city).actor, city)


@put("/residents/{city:str}/{resident_id:str}/level", sync_to_thread=True)
def set_level(city: City, resident_id: Id, data: JSONBody[schemas.LevelBody], principal: Who, ctx: Ctx) -> dict:
    return ctx.residents.set_level(resident_id, data.level, _staff(principal, city).actor, city)


@post("/residents/{city:str}/{resident_id:str}/erase", sync_to_thread=True, status_code=200)
def erase(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> dict:
    ctx.residents.erase(resident_id, _staff(principal, city).actor, city)
    return {"status": "erased"}


@post("/cards/{city:str}/{card_id:str}/revoke", sync_to_thread=True, status_code=200)
def revoke_card(city: City, card_id: Id, principal: Who, ctx: Ctx) -> dict:
    ctx.residents.revoke_card(card_id, _staff(principal, city).actor, city)
    return {"status": "revoked"}


@get("/merchants/{city:str}", sync_to_thread=True)
def list_merchants(city: City, principal: Who, ctx: Ctx) -> dict:
    _staff(principal, city)
    return {"merchants": [m | {"terminals": ctx.terminals.list(m["id"])} for m in ctx.merchants.list(city)]}


@get("/organizations/{city:str}", sync_to_thread=True)
def list_organizations(city: City, principal: Who, ctx: Ctx) -> dict:
    _staff(principal, city)
    return {"organizations": ctx.organizations.list(city)}


@get("/residents/{city:str}/{resident_id:str}", sync_to_thread=True)
def get_resident(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> dict:
    """A resident's record (no personal data: that is the resident's own export)."""
    _staff(principal, city)
    return ctx.residents.get(resident_id, city) | {"opt_ins": ctx.residents.opt_ins(resident_id)}


@post("/merchants/{city:str}", sync_to_thread=True, status_code=201)
def add_merchant(city: City, data: JSONBody[schemas.MerchantBody], principal: Who, ctx: Ctx) -> dict:
    return ctx.merchants.add(city, data.id, data.name, _staff(principal, city).actor, category=data.category)


@post("/organizations/{city:str}", sync_to_thread=True, status_code=201)
def add_organization(city: City, data: JSONBody[schemas.MemberBody], principal: Who, ctx: Ctx) -> dict:
    return ctx.organizations.add(city, data.id, data.name, _staff(principal, city).actor)


@post("/merchants/{city:str}/{member_id:str}/status", sync_to_thread=True, status_code=200)
def merchant_status(city: City, member_id: Id, data: JSONBody[schemas.StatusBody], principal: Who, ctx: Ctx) -> dict:
    """Approve, suspend or reinstate a merchant."""
    return ctx.merchants.set_status(member_id, data.status, _staff(principal, city).actor, city)


@post("/organizations/{city:str}/{member_id:str}/status", sync_to_thread=True, status_code=200)
def organization_status(city: City, member_id: Id, data: JSONBody[schemas.StatusBody], principal: Who, ctx: Ctx) -> dict:
    """Approve, suspend or reinstate a community organization."""
    return ctx.organizations.set_status(member_id, data.status, _staff(principal, city).actor, city)


@post("/merchants/{city:str}/{merchant_id:str}/terminals", sync_to_thread=True, status_code=201)
def add_terminal(city: City, merchant_id: Id, data: JSONBody[schemas.TerminalBody], principal: Who, ctx: Ctx) -> dict:
    key_id = ctx.terminals.register(merchant_id, data.public_key_pem, _staff(principal, city).actor, city)
    return {"terminal_key_id": key_id, "merchant_id": merchant_id}


@post("/terminals/{city:str}/{key_id:str}/revoke", sync_to_thread=True, status_code=200)
def revoke_terminal(city: City, key_id: Id, principal: Who, ctx: Ctx) -> dict:
    ctx.terminals.revoke(key_id, _staff(principal, city).actor, city)
    return {"status": "revoked"}


def _granting(principal: Principal) -> Principal:
    return principal.require("org", "staff", "finance", "auditor", "admin")


@post("/tokens/{city:str}", sync_to_thread=True, status_code=201)
def issue_token(city: City, data: JSONBody[schemas.TokenBody], principal: Who, ctx: Ctx) -> dict:
    """Grant a token from the built-in issuer: a role may grant only the roles of the table in
    docs/security-model.md (finance and auditor: a city administrator), or renew its own."""
    grantor = _granting(principal).grantor
    return ctx.access.grant(grantor, city, data.role, data.subject, data.org_id, data.ttl_seconds)


@get("/tokens/{city:str}", sync_to_thread=True)
def list_tokens(city: City, principal: Who, ctx: Ctx, role: OptionalRole = None, subject: OptionalSubject = None,
                include_ended: Flag = False) -> dict:  # fmt: skip
    """The city's tokens (never their text) for its administrators and auditors; one's own for others."""
    rows = ctx.access.credentials(_granting(principal).grantor, city, role, subject, live_only=not include_ended)
    return {"credentials": rows}


@post("/tokens/{city:str}/{jti:str}/revoke", sync_to_thread=True, status_code=200)
def revoke_token(city: City, jti: Id, principal: Who, ctx: Ctx) -> dict:
    """Revoke a token: its holder, whoever may grant its role, or the operator. Effective at once."""
    return ctx.access.revoke(_granting(principal).grantor, city, jti)


@get("/principals/{city:str}", sync_to_thread=True)
def list_principals(city: City, principal: Who, ctx: Ctx) -> dict:
    return {"principals": ctx.access.principals(_granting(principal).grantor, city)}


@post("/principals/{city:str}/revoke", sync_to_thread=True, status_code=200)
def revoke_principal(city: City, data: JSONBody[schemas.PrincipalBody], principal: Who, ctx: Ctx) -> dict:
    """Withdraw a principal's grant: every token it holds is refused from the next request on."""
    return ctx.access.revoke_principal(_granting(principal).grantor, city, data.role, data.subject)


admin = Router(
    "/v1/admin",
    route_handlers=[get_program, put_program, fund, audit_log, enrol, get_resident, renew, set_level, erase, revoke_card,
                    list_merchants, add_merchant, merchant_status, add_terminal, revoke_terminal, list_organizations,
                    add_organization, organization_status, issue_token, list_tokens, revoke_token, list_principals,
                    revoke_principal],
    dependencies={"principal": Provide(bearer_principal)},
    tags=["admin"],
)  # fmt: skip


# --- /v1/transparency: what anyone needs to check the ledger and the cards ---------------------


@get("/keys", sync_to_thread=True)
def public_keys(ctx: Ctx) -> dict:
    """Ledger signing keys (current and retired), city card keys and the token issuer's key."""
    return {
        "ledger": audit.keys_document(ctx.engine),
        "cards": ctx.residents.card_keys(ctx.programs.cities()),
        "token_issuer": public_jwks([ctx.keys.issuer_key()]),
    }


@get("/checkpoints", sync_to_thread=True)
def checkpoints(ctx: Ctx) -> dict:
    """The latest signed checkpoint of every ledger (C2SP signed notes), to check history only grows."""
    with ctx.engine.connect() as conn:
        latest = journal.latest_checkpoints(conn)
    return {"checkpoints": [{k: c[k] for k in ("ledger", "tree_size", "root_hash", "time_us", "note")} for c in latest]}


transparency = Router("/v1/transparency", route_handlers=[public_keys, checkpoints], tags=["transparency"])


# --- public ---------------------------------------------------------------------------------------


@get("/v1/health", sync_to_thread=False, tags=["meta"])
def health() -> dict:
    """Liveness; also the trivial endpoint that benchmarks compare against."""
    return {"status": "ok"}


HEALTH_DETAIL_ROLES = ("staff", "finance", "auditor", "admin")


@get("/v1/health/jobs", sync_to_thread=True, tags=["meta"], dependencies={"principal": Provide(bearer_principal)})
def health_jobs(principal: Who, jobs: NamedDependency[Scheduler]) -> dict:
    """The recurring jobs, for the city's staff: last run, next run, last outcome or error, and
    `degraded` while any job's last run failed. The schedule is the whole program's, not one city's."""
    principal.require(*HEALTH_DETAIL_ROLES)
    listed = jobs.status()
    failing = any(job.last_outcome == "error" for job in listed)
    return {"status": "degraded" if failing else "ok", "jobs": listed}


ROUTERS = [pos, wallet, orgs, admin, transparency, health, health_jobs]
