"""/v1/admin: a city's program staff and administrators."""

from __future__ import annotations

from litestar import Router, get, patch, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import Principal, bearer_principal
from api.http.params import (
    City,
    Ctx,
    Cursor,
    Flag,
    Id,
    IdempotencyKey,
    ListParam,
    OptionalRole,
    OptionalSubject,
    PageLimit,
    Sequence,
    Who,
    idempotency_key,
    split_list,
)
from api.http.schemas import SuspensionBody
from community.domain.program import Program
from ledger.domain.errors import InvalidRequest
from ledger.service_layer import audit_trail
from marketplace.domain.catalog import ItemPatch, ItemSpec
from marketplace.schemas import Item, ItemPage
from marketplace.service_layer.catalog import Owner


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
        raise InvalidRequest("the program's city must be the one in the path", field="city", reason="must_match_path")
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









def _city_owner(principal: Principal, city: str) -> Owner:
    principal.require("staff").require_city(city)
    return Owner(city, None, principal.actor)


@post("/catalog/{city:str}/services", sync_to_thread=True, status_code=201, summary="Publish a municipal service",
      operation_id="admin_create_service", problems=("invalid_item", "unknown_ledger"))  # fmt: skip
def create_service(city: City, data: JSONBody[ItemSpec], principal: Who, ctx: Ctx, key: IdempotencyKey) -> Item:
    """Publish a municipal service of the city (a pool pass, a library fee, a registration), or save it
    as a draft: a price in points plus a cash part paid by card, at its venue. The city's staff only.
    Audited. A retry with the same Idempotency-Key returns the service first made and adds none."""
    return ctx.catalog.create(_city_owner(principal, city), "service", data, idempotency_key(key))


@post("/catalog/{city:str}/events", sync_to_thread=True, status_code=201, summary="Publish an event",
      operation_id="admin_create_event", problems=("invalid_item", "unknown_ledger"))  # fmt: skip
def create_event(city: City, data: JSONBody[ItemSpec], principal: Who, ctx: Ctx, key: IdempotencyKey) -> Item:
    """Publish a cultural or tourist event of the city: `starts_at_us`, and `quantity` seats reserved
    (VIP) for points out of the venue's `seats_total`. The city's staff only. Audited. A retry with the
    same Idempotency-Key returns the event first made and adds none."""
    return ctx.catalog.create(_city_owner(principal, city), "event", data, idempotency_key(key))


@get("/catalog/{city:str}/items", sync_to_thread=True, summary="List the city's items", operation_id="admin_list_city_items")
def list_city_items(city: City, principal: Who, ctx: Ctx, kind: ListParam = "", after_id: Cursor = "",
                    limit: PageLimit = 50) -> ItemPage:  # fmt: skip
    """Every item of the city in every status, by id: its own services and events and the offers of its
    merchants (`kind` narrows, comma-separated). The city's staff only. Changes nothing."""
    return ctx.catalog.list(_city_owner(principal, city), split_list(kind), after_id, limit)


@patch("/catalog/{city:str}/items/{item_id:str}", sync_to_thread=True, summary="Change a service or an event",
       operation_id="admin_update_city_item", problems=("unknown_item", "invalid_item", "unknown_ledger"))  # fmt: skip
def update_city_item(city: City, item_id: Id, data: JSONBody[ItemPatch], principal: Who, ctx: Ctx) -> Item:
    """Change some fields of one of the city's own services or events (a merchant's offer is its
    merchant's: 403); absent fields keep their value, `status: archived` withdraws it. The city's staff
    only. Audited, and search follows at once."""
    return ctx.catalog.update(_city_owner(principal, city), item_id, data)


@post("/catalog/{city:str}/items/{item_id:str}/suspension", sync_to_thread=True, status_code=200,
      summary="Suspend an item or lift its suspension", operation_id="admin_suspend_item",
      problems=("unknown_item", "invalid_request"))  # fmt: skip
def suspend_item(city: City, item_id: Id, data: JSONBody[SuspensionBody], principal: Who, ctx: Ctx) -> Item:
    """Suspend any item of the city (a merchant's offer too), with a reason, or lift the suspension: a
    suspended item leaves search and cannot be redeemed, and only the city's staff can lift it. Audited."""
    owner = _city_owner(principal, city)
    return ctx.catalog.suspend(city, item_id, data.suspended, data.reason, owner.actor)


admin = Router(
    "/v1/admin",
    route_handlers=[get_program, put_program, fund, audit_log, enrol, get_resident, renew, set_level, erase, revoke_card,
                    list_merchants, add_merchant, merchant_status, add_terminal, revoke_terminal, list_organizations,
                    add_organization, organization_status, issue_token, list_tokens, revoke_token, list_principals,
                    revoke_principal, create_service, create_event, list_city_items, update_city_item, suspend_item],
    dependencies={"principal": Provide(bearer_principal)},
    tags=["admin"],
)  # fmt: skip


ROUTERS = [admin]
