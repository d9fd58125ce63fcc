"""/v1/admin: a city's program staff and administrators."""

from __future__ import annotations

from litestar import Request, Router, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import Principal, bearer_principal
from api.http.params import (
    City,
    CorrectionDecision,
    CorrectionStatus,
    Ctx,
    Cursor,
    Flag,
    Id,
    IdempotencyKey,
    ListParam,
    OptionalRole,
    OptionalSubject,
    OptionalTimeUs,
    PageLimit,
    Sequence,
    Who,
    idempotency_key,
    split_list,
)
from api.http.schemas import SuspensionBody
from community.domain.access import PRINCIPAL_ROLES
from community.domain.program import Program
from community.schemas import (
    ActivationCode,
    ActivationSent,
    BudgetFunding,
    Correction,
    Corrections,
    Credential,
    Credentials,
    Done,
    EnrolledResident,
    Erasure,
    IssuedToken,
    Member,
    Merchants,
    Organizations,
    PrincipalActivationCode,
    PrincipalRevocation,
    Principals,
    ProgramVersion,
    Resident,
    ResidentRecord,
    TerminalRegistration,
)
from ledger.domain.errors import InvalidRequest
from ledger.schemas import AuditPage
from ledger.service_layer import audit_trail
from marketplace.domain.catalog import ItemPatch, ItemSpec
from marketplace.schemas import Item, ItemPage
from marketplace.service_layer.catalog import Owner
from merchants.schemas import PairingCode


def _staff(principal: Principal, city: str) -> Principal:
    principal.require("staff").require_city(city)
    return principal


@get("/programs/{city:str}", sync_to_thread=True, summary="Read a city's program", operation_id="admin_get_program",
     problems=("unknown_program",))  # fmt: skip
def get_program(city: City, principal: Who, ctx: Ctx) -> Program:
    """The city's program (point value, earning rules, caps, campaigns, expiry, budget): its staff only."""
    _staff(principal, city)
    return ctx.programs.get(city)


@put("/programs/{city:str}", sync_to_thread=True, summary="Create or replace a city's program",
     operation_id="admin_put_program", problems=("invalid_program", "invalid_request", "unknown_ledger"))  # fmt: skip
def put_program(city: City, data: JSONBody[Program], principal: Who, ctx: Ctx) -> ProgramVersion:
    """Validate and save the program (its ledger too, the first time), audited with the state before
    and after. City staff only; the body's city must be the path's."""
    _staff(principal, city)
    if data.city != city:
        raise InvalidRequest("the program's city must be the one in the path", field="city", reason="must_match_path")
    return ctx.programs.configure(data, principal.actor)


@post("/programs/{city:str}/budget", sync_to_thread=True, status_code=201, summary="Fund the program budget",
      operation_id="admin_fund_budget", problems=("unknown_program", "invalid_request"))  # fmt: skip
def fund(
    city: City, data: JSONBody[schemas.FundingBody], principal: Who, ctx: Ctx, key: IdempotencyKey
) -> BudgetFunding:
    """Allocate city funds to the program budget (program:funding → program:budget), audited. City staff only."""
    _staff(principal, city)
    return ctx.programs.fund_budget(city, data.points, idempotency_key(key), principal.actor)


@get(
    "/audit/{city:str}",
    sync_to_thread=True,
    summary="Read the city's audit trail",
    operation_id="admin_list_audit_records",
)
def audit_log(city: City, principal: Who, ctx: Ctx, after_seq: Sequence = 0, limit: PageLimit = 100) -> AuditPage:
    """The city's audit trail in order, each record with its hash chain and signature: for its staff,
    finance officers, auditors and administrators."""
    principal.require("staff", "finance", "auditor", "admin").require_city(city)
    return audit_trail.page(ctx.engine, city, after_seq, limit)


@post("/residents/{city:str}", sync_to_thread=True, status_code=201, summary="Enrol a resident",
      operation_id="admin_enrol_resident", problems=("unknown_program", "conflict", "invalid_request"))  # fmt: skip
def enrol(
    city: City, data: JSONBody[schemas.EnrolBody], principal: Who, ctx: Ctx, key: IdempotencyKey
) -> EnrolledResident:
    """Enrol a resident of the city (valid one year) and issue their first card and their first
    activation code (to sign in on the web: give it to them, it works once, for 72 hours); their
    personal data is sealed with their own key. A retry with the same Idempotency-Key answers the
    same resident and code. City staff only."""
    _staff(principal, city)
    personal = {k: v for k, v in schemas.msgspec.structs.asdict(data.personal).items() if v is not None}
    resident = ctx.residents.enroll(city, personal, data.level, principal.actor, data.subject, key=idempotency_key(key))
    code = ctx.activation.issue(resident.id, city, principal.actor, key=idempotency_key(key))
    return EnrolledResident(**schemas.msgspec.structs.asdict(resident), activation_code=code.code,
                            activation_expires_at_us=code.expires_at_us)  # fmt: skip


@post("/residents/{city:str}/{resident_id:str}/activation", sync_to_thread=True, status_code=201,
      summary="Issue a new activation code", operation_id="admin_issue_activation_code",
      problems=("unknown_resident", "resident_erased", "wrong_tenant"))  # fmt: skip
def issue_activation(city: City, resident_id: Id, principal: Who, ctx: Ctx, key: IdempotencyKey) -> ActivationCode:
    """A new one-time activation code for the resident (a lost device, an expired code): the older
    one stops working. Give it to the resident; it works once, for 72 hours. City staff only."""
    return ctx.activation.issue(resident_id, city, _staff(principal, city).actor, key=idempotency_key(key))


@post("/residents/{city:str}/{resident_id:str}/activation/email", sync_to_thread=True, status_code=201,
      summary="E-mail a new activation code", operation_id="admin_email_activation_code",
      problems=("unknown_resident", "resident_erased", "wrong_tenant", "invalid_request", "mail_unavailable"))  # fmt: skip
def email_activation(request: Request, city: City, resident_id: Id, principal: Who, ctx: Ctx,
                     key: IdempotencyKey) -> ActivationSent:  # fmt: skip
    """A new activation code, sent to the resident's e-mail address in their language (the answer
    does not show it); the older code stops working. City staff only."""
    from web.mail import activation_message  # the pages' catalogs word it

    site = ctx.settings.web_origin or f"{request.url.scheme}://{request.url.netloc}"
    return ctx.activation.send(resident_id, city, _staff(principal, city).actor, activation_message(ctx, site),
                               key=idempotency_key(key))  # fmt: skip


@post("/residents/{city:str}/{resident_id:str}/renew", sync_to_thread=True, status_code=200, summary="Renew a resident",
      operation_id="admin_renew_resident", problems=("unknown_resident", "resident_erased"))  # fmt: skip
def renew(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> Resident:
    """Extend the resident's identifier by a year and issue a new card (the old ones are revoked). City staff only."""
    return ctx.residents.renew(resident_id, _staff(principal, city).actor, city)


@put("/residents/{city:str}/{resident_id:str}/level", sync_to_thread=True, summary="Set a resident's verification level",
     operation_id="admin_set_resident_level", problems=("unknown_resident", "resident_erased", "invalid_request"))  # fmt: skip
def set_level(city: City, resident_id: Id, data: JSONBody[schemas.LevelBody], principal: Who, ctx: Ctx) -> Resident:
    """Set the level that gates some civic activities (basic, verified, checked), audited with the
    `evidence` staff saw. City staff only."""
    return ctx.residents.set_level(resident_id, data.level, _staff(principal, city).actor, city, data.evidence)


@post("/residents/{city:str}/{resident_id:str}/erase", sync_to_thread=True, status_code=200,
      summary="Erase a resident's personal data", operation_id="admin_erase_resident",
      problems=("unknown_resident", "resident_erased", "erasure_blocked"))  # fmt: skip
def erase(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> Done:
    """Erase at once, without the delay a resident's own request waits: destroy the resident's key
    and sealed data, revoke their cards and move the points left in their wallet to breakage; the
    ledger keeps its opaque entries and still verifies. Refused (409) while points are held for a
    purchase. A resident's pending erasure shows in their record (`erasure_due_at_us`). City staff only."""
    ctx.residents.erase(resident_id, _staff(principal, city).actor, city)
    return Done(status="erased")


@post("/residents/{city:str}/{resident_id:str}/erasure", sync_to_thread=True, status_code=202,
      summary="Schedule a resident's erasure", operation_id="admin_schedule_erasure",
      problems=("unknown_resident", "resident_erased"))  # fmt: skip
def schedule_erasure(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> Erasure:
    """Erase the resident after the delay their own request waits (`due_at_us`; the `erasures` job
    carries it out), cancellable until then; asking again keeps the first date. Audited. City staff only."""
    return ctx.residents.request_erasure(resident_id, _staff(principal, city).actor, city)


@delete("/residents/{city:str}/{resident_id:str}/erasure", sync_to_thread=True, status_code=200,
        summary="Cancel a resident's pending erasure", operation_id="admin_cancel_erasure",
        problems=("unknown_resident", "resident_erased"))  # fmt: skip
def cancel_erasure(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> Erasure:
    """Undo a pending erasure, the resident's or staff's (none pending: nothing changes). Audited. City staff only."""
    return ctx.residents.cancel_erasure(resident_id, _staff(principal, city).actor, city)


@get("/cards/{city:str}/{card_id:str}", sync_to_thread=True, summary="Find a card's resident",
     operation_id="admin_get_card_holder", problems=("unknown_resident", "resident_erased"))  # fmt: skip
def card_holder(city: City, card_id: Id, principal: Who, ctx: Ctx) -> ResidentRecord:
    """The record of the resident a card number (or a resident id) of the city names, exactly: personal
    data is sealed with each resident's key and never searched. City staff only."""
    _staff(principal, city)
    return ctx.residents.find(card_id, city)


@post("/cards/{city:str}/{card_id:str}/revoke", sync_to_thread=True, status_code=200, summary="Revoke a citizen card",
      operation_id="admin_revoke_card", problems=("unknown_card",))  # fmt: skip
def revoke_card(city: City, card_id: Id, principal: Who, ctx: Ctx) -> Done:
    """Revoke one card of the city: terminals refuse it from their next revocation list. City staff only."""
    ctx.residents.revoke_card(card_id, _staff(principal, city).actor, city)
    return Done(status="revoked")


@get(
    "/merchants/{city:str}",
    sync_to_thread=True,
    summary="List the city's merchants",
    operation_id="admin_list_merchants",
)
def list_merchants(city: City, principal: Who, ctx: Ctx) -> Merchants:
    """The city's merchants with their status and terminal keys. City staff only."""
    _staff(principal, city)
    return ctx.terminals.merchants(city)


@get("/organizations/{city:str}", sync_to_thread=True, summary="List the city's community organizations",
     operation_id="admin_list_organizations")  # fmt: skip
def list_organizations(city: City, principal: Who, ctx: Ctx) -> Organizations:
    """The city's community organizations with their status. City staff only."""
    _staff(principal, city)
    return ctx.organizations.listing(city)


@get("/residents/{city:str}/{resident_id:str}", sync_to_thread=True, summary="Read a resident's record",
     operation_id="admin_get_resident", problems=("unknown_resident", "resident_erased"))  # fmt: skip
def get_resident(city: City, resident_id: Id, principal: Who, ctx: Ctx) -> ResidentRecord:
    """A resident's record and opt-ins (no personal data: that is the resident's own export). City staff only."""
    _staff(principal, city)
    return ctx.residents.record(resident_id, city)


@post("/merchants/{city:str}", sync_to_thread=True, status_code=201, summary="Add a merchant",
      operation_id="admin_add_merchant", problems=("conflict", "unknown_ledger", "invalid_request"))  # fmt: skip
def add_merchant(
    city: City, data: JSONBody[schemas.MerchantBody], principal: Who, ctx: Ctx, key: IdempotencyKey
) -> Member:
    """Add a merchant to the city, pending until approved, audited. City staff only."""
    actor = _staff(principal, city).actor
    return ctx.merchants.add(city, data.id, data.name, actor, key=idempotency_key(key), category=data.category)


@post("/organizations/{city:str}", sync_to_thread=True, status_code=201, summary="Add a community organization",
      operation_id="admin_add_organization", problems=("conflict", "unknown_ledger", "invalid_request"))  # fmt: skip
def add_organization(
    city: City, data: JSONBody[schemas.MemberBody], principal: Who, ctx: Ctx, key: IdempotencyKey
) -> Member:
    """Add a community organization to the city, pending until approved, audited. City staff only."""
    return ctx.organizations.add(city, data.id, data.name, _staff(principal, city).actor, key=idempotency_key(key))


@post("/merchants/{city:str}/{member_id:str}/status", sync_to_thread=True, status_code=200,
      summary="Approve, suspend or reinstate a merchant", operation_id="admin_set_merchant_status",
      problems=("unknown_merchant", "invalid_request"))  # fmt: skip
def merchant_status(city: City, member_id: Id, data: JSONBody[schemas.StatusBody], principal: Who, ctx: Ctx) -> Member:
    """Set a merchant's status (pending, approved, suspended), audited: only an approved merchant's
    terminals are served. City staff only."""
    return ctx.merchants.set_status(member_id, data.status, _staff(principal, city).actor, city)


@post("/organizations/{city:str}/{member_id:str}/status", sync_to_thread=True, status_code=200,
      summary="Approve, suspend or reinstate a community organization", operation_id="admin_set_organization_status",
      problems=("unknown_organization", "invalid_request"))  # fmt: skip
def organization_status(
    city: City, member_id: Id, data: JSONBody[schemas.StatusBody], principal: Who, ctx: Ctx
) -> Member:
    """Set an organization's status (pending, approved, suspended), audited: only an approved one
    attests civic activity. City staff only."""
    return ctx.organizations.set_status(member_id, data.status, _staff(principal, city).actor, city)


@post("/merchants/{city:str}/{merchant_id:str}/terminals", sync_to_thread=True, status_code=201,
      summary="Register a terminal key", operation_id="admin_add_terminal",
      problems=("unknown_merchant", "conflict", "invalid_request"))  # fmt: skip
def add_terminal(city: City, merchant_id: Id, data: JSONBody[schemas.TerminalBody], principal: Who, ctx: Ctx,
                 key: IdempotencyKey) -> TerminalRegistration:  # fmt: skip
    """Register a merchant terminal's Ed25519 public key, with which it signs its POS requests
    (RFC 9421); the server keeps only the public key. City staff only."""
    actor = _staff(principal, city).actor
    return ctx.terminals.register(merchant_id, data.public_key_pem, actor, city, key=idempotency_key(key))


@post("/merchants/{city:str}/{merchant_id:str}/pairing-codes", sync_to_thread=True, status_code=201,
      summary="Issue a terminal pairing code", operation_id="admin_issue_pairing_code",
      problems=("unknown_merchant", "invalid_request"))  # fmt: skip
def issue_pairing_code(city: City, merchant_id: Id, principal: Who, ctx: Ctx, key: IdempotencyKey,
                       data: JSONBody[schemas.PairingCodeBody | None] = None) -> PairingCode:  # fmt: skip
    """A one-time code (15 minutes) with which a device registers its own terminal key for the
    merchant (`/terminal/pair`, `POST /v1/pairing`). City staff only."""
    actor = _staff(principal, city).actor
    return ctx.pairing.issue(merchant_id, city, actor, data.name if data else None, key=idempotency_key(key))


@post("/terminals/{city:str}/{key_id:str}/revoke", sync_to_thread=True, status_code=200, summary="Revoke a terminal key",
      operation_id="admin_revoke_terminal", problems=("unknown_merchant",))  # fmt: skip
def revoke_terminal(city: City, key_id: Id, principal: Who, ctx: Ctx) -> Done:
    """Revoke a terminal key of the city: its next request is refused. City staff only."""
    ctx.terminals.revoke(key_id, _staff(principal, city).actor, city)
    return Done(status="revoked")


def _granting(principal: Principal) -> Principal:
    return principal.require(*PRINCIPAL_ROLES)  # every principal may at least renew its own token


@post("/tokens/{city:str}", sync_to_thread=True, status_code=201, summary="Issue a bearer token",
      operation_id="admin_issue_token",
      problems=("grant_not_allowed", "subject_taken", "conflict", "unknown_program", "unknown_organization",
                "unknown_merchant", "invalid_request"))  # fmt: skip
def issue_token(
    city: City, data: JSONBody[schemas.TokenBody], principal: Who, ctx: Ctx, key: IdempotencyKey
) -> IssuedToken:
    """Grant a token from the built-in issuer: a role may grant only the roles of the table in
    docs/security-model.md (finance and auditor: a city administrator), or renew its own. Audited;
    the token's text is answered only here (and to a retry with the same Idempotency-Key)."""
    grantor = _granting(principal).grantor
    return ctx.access.grant(
        grantor,
        city,
        data.role,
        data.subject,
        data.org_id,
        data.ttl_seconds,
        key=idempotency_key(key),
        merchant_id=data.merchant_id,
    )


@get("/tokens/{city:str}", sync_to_thread=True, summary="List tokens", operation_id="admin_list_tokens")
def list_tokens(city: City, principal: Who, ctx: Ctx, role: OptionalRole = None, subject: OptionalSubject = None,
                include_ended: Flag = False) -> Credentials:  # fmt: skip
    """The city's tokens (never their text) for its administrators and auditors; one's own for others."""
    return ctx.access.credentials(_granting(principal).grantor, city, role, subject, live_only=not include_ended)


@post("/tokens/{city:str}/{jti:str}/revoke", sync_to_thread=True, status_code=200, summary="Revoke a token",
      operation_id="admin_revoke_token", problems=("unknown_credential", "grant_not_allowed"))  # fmt: skip
def revoke_token(city: City, jti: Id, principal: Who, ctx: Ctx) -> Credential:
    """Revoke a token: its holder, whoever may grant its role, or the operator. Effective at once, audited."""
    return ctx.access.revoke(_granting(principal).grantor, city, jti)


@get("/principals/{city:str}", sync_to_thread=True, summary="List principals", operation_id="admin_list_principals")
def list_principals(city: City, principal: Who, ctx: Ctx) -> Principals:
    """The city's principals (staff, finance, auditors, administrators, organization coordinators):
    for its administrators and auditors."""
    return ctx.access.principals(_granting(principal).grantor, city)


@post("/principals/{city:str}/revoke", sync_to_thread=True, status_code=200, summary="Withdraw a principal's grant",
      operation_id="admin_revoke_principal", problems=("unknown_credential", "grant_not_allowed"))  # fmt: skip
def revoke_principal(
    city: City, data: JSONBody[schemas.PrincipalBody], principal: Who, ctx: Ctx
) -> PrincipalRevocation:
    """Withdraw a principal's grant: every token it holds is refused from the next request on. Audited."""
    return ctx.access.revoke_principal(_granting(principal).grantor, city, data.role, data.subject)


@post("/principals/{city:str}/activation", sync_to_thread=True, status_code=201,
      summary="Issue a principal's activation code", operation_id="admin_issue_principal_activation_code",
      problems=("grant_not_allowed", "subject_taken", "conflict", "unknown_program", "unknown_merchant",
                "invalid_request"))  # fmt: skip
def issue_principal_activation(city: City, data: JSONBody[schemas.PrincipalActivationBody], principal: Who, ctx: Ctx,
                               key: IdempotencyKey) -> PrincipalActivationCode:  # fmt: skip
    """A one-time code for a merchant's owner or a program officer to sign in on the web
    (`/portal/sign-in`, `/office/sign-in`) and register a passkey; made the principal on its first
    code. Issued by whoever may grant the role (docs/security-model.md); the older code stops working.
    Audited; it works once, for 72 hours."""
    return ctx.activation.issue_principal(_granting(principal).grantor, city, data.role, data.subject,
                                          key=idempotency_key(key), merchant_id=data.merchant_id)  # fmt: skip


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


@get(
    "/catalog/{city:str}/items",
    sync_to_thread=True,
    summary="List the city's items",
    operation_id="admin_list_city_items",
)
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


# --- corrections: compensating transfers, a second principal above the program's threshold -------


def _correction_staff(principal: Principal, city: str) -> Principal:
    principal.require("staff", "admin").require_city(city)
    return principal


@post("/corrections/{city:str}", sync_to_thread=True, status_code=201, summary="Propose a correction",
      operation_id="admin_propose_correction",
      problems=("unknown_correction_target", "exceeds_original", "insufficient_funds", "budget_exceeded"))  # fmt: skip
def propose_correction(city: City, data: JSONBody[schemas.CorrectionBody], principal: Who, ctx: Ctx,
                       key: IdempotencyKey) -> Correction:  # fmt: skip
    """Reverse an attestation, refund a municipal service or event redemption, or credit or debit a
    resident's wallet against the program budget, with a reason: a compensating transfer, audited. Above
    the program's `correction_approval_points` it stays pending until a second principal approves it.
    City staff only. A retry with the same Idempotency-Key writes nothing."""
    actor = _staff(principal, city).actor
    return ctx.corrections.propose(city, data.kind, data.target, data.points, data.reason, actor,
                                   key=idempotency_key(key), direction=data.direction)  # fmt: skip


@get("/corrections/{city:str}", sync_to_thread=True, summary="List corrections", operation_id="admin_list_corrections",
     problems=())  # fmt: skip
def list_corrections(city: City, principal: Who, ctx: Ctx, status: CorrectionStatus = "pending",
                     before_us: OptionalTimeUs = None, limit: PageLimit = 100) -> Corrections:  # fmt: skip
    """The city's corrections in a status (pending by default; none: all), newest first. Staff and
    administrators of the city."""
    _correction_staff(principal, city)
    return ctx.corrections.list(city, status, before_us, limit)


@get("/corrections/{city:str}/{correction_id:str}", sync_to_thread=True, summary="Get a correction",
     operation_id="admin_get_correction", problems=("unknown_correction",))  # fmt: skip
def get_correction(city: City, correction_id: Id, principal: Who, ctx: Ctx) -> Correction:
    """One correction of the city, with its transfers once posted. Staff and administrators of the city."""
    _correction_staff(principal, city)
    return ctx.corrections.get(city, correction_id)


@post("/corrections/{city:str}/{correction_id:str}/{decision:str}", sync_to_thread=True, status_code=200,
      summary="Approve or reject a pending correction", operation_id="admin_decide_correction",
      problems=("unknown_correction", "correction_not_pending", "second_principal_required", "exceeds_original",
                "insufficient_funds", "budget_exceeded"))  # fmt: skip
def decide_correction(city: City, correction_id: Id, decision: CorrectionDecision, principal: Who,
                      ctx: Ctx) -> Correction:  # fmt: skip
    """Approve (a staff officer other than the proposer, or a city administrator: its transfer is written
    then) or reject a pending correction."""
    return ctx.corrections.decide(city, correction_id, decision, _correction_staff(principal, city).actor)


admin = Router(
    "/v1/admin",
    route_handlers=[get_program, put_program, fund, audit_log, enrol, issue_activation, email_activation, get_resident, renew, set_level, erase, revoke_card,
                    schedule_erasure, cancel_erasure, card_holder,
                    list_merchants, add_merchant, merchant_status, add_terminal, issue_pairing_code, revoke_terminal, list_organizations,
                    add_organization, organization_status, issue_token, list_tokens, revoke_token, list_principals,
                    revoke_principal, issue_principal_activation, create_service, create_event, list_city_items,
                    update_city_item, suspend_item, propose_correction, list_corrections, get_correction, decide_correction],
    dependencies={"principal": Provide(bearer_principal)},
    tags=["admin"],
)  # fmt: skip


ROUTERS = [admin]
