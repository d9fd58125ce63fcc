"""The city's back office on the command line: every `/v1/admin` and `/v1/finance` action the older
commands (api/cli/admin.py, api/cli/finance.py) lacked, each calling the service call its route calls,
audited as `cli:<user>`. `ROUTE_COMMANDS` says which command does each route's job; a test holds it
to the app's routes both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.admin import _once, _operator, _print, admin_app, decoded
from api.cli.finance import Period, settlement_app
from api.cli.i18n import _
from api.cli.support import City, actor, errors
from api.cli.support import DataDirOption as DataDir
from api.cli.support import DbOption as Db
from api.cli.support import context as _ctx

# operation_id of every /v1/admin and /v1/finance route → the command that does the same job.
ROUTE_COMMANDS: dict[str, str] = {
    "admin_get_program": "admin program-show",
    "admin_put_program": "admin program-set",
    "admin_fund_budget": "admin fund-budget",
    "admin_list_audit_records": "audit export",
    "admin_enrol_resident": "admin resident-enrol",
    "admin_issue_activation_code": "admin resident-activation",
    "admin_email_activation_code": "admin resident-activation",  # --email
    "admin_get_resident": "admin resident-show",
    "admin_renew_resident": "admin resident-renew",
    "admin_set_resident_level": "admin resident-level",
    "admin_erase_resident": "admin resident-erase",  # --now
    "admin_revoke_card": "admin card-revoke",
    "admin_schedule_erasure": "admin resident-erase",
    "admin_cancel_erasure": "admin resident-erase",  # --cancel
    "admin_get_card_holder": "admin card-show",
    "admin_list_merchants": "admin merchant-list",
    "admin_add_merchant": "admin merchant-add",
    "admin_set_merchant_status": "admin merchant-status",
    "admin_add_terminal": "admin terminal-add",
    "admin_revoke_terminal": "admin terminal-revoke",
    "admin_list_organizations": "admin org-list",
    "admin_add_organization": "admin org-add",
    "admin_set_organization_status": "admin org-status",
    "admin_issue_token": "admin grant",
    "admin_list_tokens": "admin tokens",
    "admin_revoke_token": "admin revoke",  # --jti
    "admin_list_principals": "admin principals",
    "admin_revoke_principal": "admin revoke",  # --role --subject
    "admin_create_service": "admin service-create",
    "admin_create_event": "admin event-create",
    "admin_list_city_items": "admin item-list",
    "admin_update_city_item": "admin item-update",
    "admin_suspend_item": "admin item-suspend",
    "finance_close_period": "settlement close",
    "finance_get_statement": "settlement statement",
    "finance_preview_statement": "settlement preview",
    "finance_export_period": "settlement export",
    "finance_create_adjustment": "settlement adjust",
    "finance_propose_payout_account": "settlement payout-account",
    "finance_list_payout_account_changes": "settlement payout-account-changes",
    "finance_decide_payout_account": "settlement payout-account-decide",
    "finance_queue_payouts": "settlement payouts",
    "finance_list_payouts": "settlement payout-list",
    "finance_reconcile_period": "settlement reconcile",
    "finance_get_budget": "settlement budget",
    "finance_get_redemptions_report": "settlement redemptions",
    "admin_issue_pairing_code": "admin terminal-pairing-code",
    "admin_issue_principal_activation_code": "admin principal-activation",
    "admin_propose_correction": "admin correction propose",
    "admin_list_corrections": "admin correction list",
    "admin_get_correction": "admin correction show",
    "admin_decide_correction": "admin correction approve",
    "finance_list_collections": "settlement collections",
    "finance_collect_direct_debits": "settlement pain008",
    "finance_issue_invoices": "settlement invoices",
    "finance_get_invoice": "settlement invoices",
    "finance_get_intercity_settlement": "settlement intercity",
    "finance_import_bank_statement": "settlement bank-import",
    "finance_list_bank_statements": "settlement bank-results",
    "finance_get_bank_statement_results": "settlement bank-results",
    "finance_export_bank_statement_results": "settlement bank-results",
    "finance_list_disputes": "settlement disputes",
}
# Routes no person calls, so no command does their job.
NOT_COMMANDS: dict[str, str] = {"finance_stripe_connect_webhook": "Stripe calls it, signed with the webhook secret"}

Resident = Annotated[str, typer.Option("--resident", help="The resident's id")]
Item = Annotated[str, typer.Option("--item", help="The item's id")]
ItemFile = Annotated[Path, typer.Option("--file", help="The item as JSON (the API's body)")]
MemberStatus = Annotated[str, typer.Option("--status", help="pending, approved or suspended")]


# --- residents and cards ---------------------------------------------------------------------


@admin_app.command("resident-show")
def resident_show(city: City, resident_id: Resident, db: Db = None, data_dir: DataDir = None) -> None:
    """A resident's record and opt-ins, with a pending erasure's date (no personal data)."""
    with errors():
        _print(_ctx(db, data_dir).residents.record(resident_id, city))


@admin_app.command("resident-renew")
def resident_renew(city: City, resident_id: Resident, db: Db = None, data_dir: DataDir = None) -> None:
    """Extend a resident's identifier by a year and issue a new card (the old ones are revoked)."""
    with errors():
        _print(_ctx(db, data_dir).residents.renew(resident_id, actor(), city))


@admin_app.command("resident-level")
def resident_level(city: City, resident_id: Resident,
                   level: Annotated[str, typer.Option(help="basic, verified or checked")],
                   evidence: Annotated[str, typer.Option(help="What you saw (a document, a visit), kept in the audit trail")],
                   db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Set a resident's verification level, audited with its evidence."""
    with errors():
        _print(_ctx(db, data_dir).residents.set_level(resident_id, level, actor(), city, evidence))


@admin_app.command("resident-erase")
def resident_erase(city: City, resident_id: Resident,
                   now: Annotated[bool, typer.Option("--now", help="Erase at once, without the delay")] = False,
                   cancel: Annotated[bool, typer.Option("--cancel", help="Undo a pending erasure")] = False,
                   db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Erase a resident after the delay their own request waits (then the `erasures` job), --now at once, --cancel undoes."""
    with errors():
        residents = _ctx(db, data_dir).residents
        if now and cancel:
            raise ValueError(_("give --now or --cancel, not both"))
        if now:
            residents.erase(resident_id, actor(), city)
            typer.echo(_("{resident}: erased").format(resident=resident_id))
        elif cancel:
            _print(residents.cancel_erasure(resident_id, actor(), city))
        else:
            _print(residents.request_erasure(resident_id, actor(), city))


@admin_app.command("card-show")
def card_show(city: City, card_id: Annotated[str, typer.Option("--card", help="The card's number (or a resident id)")],
              db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """The record of the resident a card belongs to, found exactly by its number (no personal data)."""
    with errors():
        _print(_ctx(db, data_dir).residents.find(card_id, city))


@admin_app.command("card-revoke")
def card_revoke(city: City, card_id: Annotated[str, typer.Option("--card", help="The card's id")], db: Db = None,
                data_dir: DataDir = None) -> None:  # fmt: skip
    """Revoke one card: terminals refuse it from their next revocation list."""
    with errors():
        _ctx(db, data_dir).residents.revoke_card(card_id, actor(), city)
    typer.echo(_("card {card}: revoked").format(card=card_id))


# --- merchants, terminals, organizations, principals ----------------------------------------


@admin_app.command("merchant-list")
def merchant_list(city: City, db: Db = None, data_dir: DataDir = None) -> None:
    """The city's merchants with their status and terminal keys."""
    with errors():
        _print(_ctx(db, data_dir).terminals.merchants(city).merchants)


@admin_app.command("merchant-status")
def merchant_status(city: City, member_id: Annotated[str, typer.Option("--id", help="The merchant's id")],
                    status: MemberStatus, db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Approve, suspend or reinstate a merchant: only an approved merchant's terminals are served."""
    with errors():
        _print(_ctx(db, data_dir).merchants.set_status(member_id, status, actor(), city))


@admin_app.command("terminal-revoke")
def terminal_revoke(city: City, key_id: Annotated[str, typer.Option("--key-id", help="The terminal's key id (t-…)")],
                    db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Revoke a terminal key: its next request is refused."""
    with errors():
        _ctx(db, data_dir).terminals.revoke(key_id, actor(), city)
    typer.echo(_("terminal {key}: revoked").format(key=key_id))


@admin_app.command("org-list")
def org_list(city: City, db: Db = None, data_dir: DataDir = None) -> None:
    """The city's community organizations with their status."""
    with errors():
        _print(_ctx(db, data_dir).organizations.listing(city).organizations)


@admin_app.command("org-status")
def org_status(city: City, member_id: Annotated[str, typer.Option("--id", help="The organization's id")],
               status: MemberStatus, db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Approve, suspend or reinstate a community organization: only an approved one attests civic activity."""
    with errors():
        _print(_ctx(db, data_dir).organizations.set_status(member_id, status, actor(), city))


@admin_app.command("principals")
def principals(city: City, db: Db = None, data_dir: DataDir = None) -> None:
    """The city's principals (staff, finance, auditors, administrators, organization coordinators)."""
    with errors():
        _print(_ctx(db, data_dir).access.principals(_operator(), city).principals)


# --- municipal services and events -----------------------------------------------------------


def _owner(city: str) -> Any:
    from marketplace.service_layer.catalog import Owner

    return Owner(city, None, actor())


@admin_app.command("service-create")
def service_create(city: City, file: ItemFile, db: Db = None, data_dir: DataDir = None) -> None:
    """Publish a municipal service (or save it as a draft) from a JSON file: a price in points plus a cash part."""
    from marketplace.domain.catalog import ItemSpec

    with errors():
        _print(_ctx(db, data_dir).catalog.create(_owner(city), "service", decoded(file, ItemSpec), _once()))


@admin_app.command("event-create")
def event_create(city: City, file: ItemFile, db: Db = None, data_dir: DataDir = None) -> None:
    """Publish an event from a JSON file: its start, and the seats reserved for points out of the venue's."""
    from marketplace.domain.catalog import ItemSpec

    with errors():
        _print(_ctx(db, data_dir).catalog.create(_owner(city), "event", decoded(file, ItemSpec), _once()))


@admin_app.command("item-list")
def item_list(city: City, kind: Annotated[list[str] | None, typer.Option("--kind", help="service, event or offer")] = None,
              after_id: Annotated[str, typer.Option("--after", help="The last id of the previous page")] = "",
              limit: Annotated[int, typer.Option(help="Items per page")] = 50, db: Db = None,
              data_dir: DataDir = None) -> None:  # fmt: skip
    """Every item of the city in every status, by id: its services and events and its merchants' offers."""
    with errors():
        _print(_ctx(db, data_dir).catalog.list(_owner(city), tuple(kind or ()), after_id, limit))


@admin_app.command("item-update")
def item_update(city: City, item_id: Item,
                file: Annotated[Path, typer.Option("--file", help="The fields to change, as JSON")],
                db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Change some fields of one of the city's services or events (`"status": "archived"` withdraws it)."""
    from marketplace.domain.catalog import ItemPatch

    with errors():
        _print(_ctx(db, data_dir).catalog.update(_owner(city), item_id, decoded(file, ItemPatch)))


@admin_app.command("item-suspend")
def item_suspend(city: City, item_id: Item, reason: Annotated[str | None, typer.Option(help="Why, for its owner")] = None,
                 lift: Annotated[bool, typer.Option("--lift", help="Lift the suspension instead")] = False,
                 db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Suspend any item of the city (a merchant's offer too): it leaves search and cannot be redeemed."""
    with errors():
        _print(_ctx(db, data_dir).catalog.suspend(city, item_id, not lift, reason, actor()))


# --- finance ---------------------------------------------------------------------------------


@settlement_app.command("statement")
def statement(city: City, period: Period, db: Db = None, data_dir: DataDir = None) -> None:
    """A closed period's stored statement, with its hash, as JSON."""
    with errors():
        _print(_ctx(db, data_dir).settlement.closed(city, period))


@settlement_app.command("preview")
def preview(city: City, period: Period, db: Db = None, data_dir: DataDir = None) -> None:
    """A period's statement as the ledger stands now, as JSON; writes nothing."""
    with errors():
        _print(_ctx(db, data_dir).settlement.preview(city, period))


@settlement_app.command("adjust")
def adjust(city: City, merchant_id: Annotated[str, typer.Option("--merchant")],
           amount_cents: Annotated[int, typer.Option("--amount-cents", help="Cents, negative for the city's benefit")],
           reason: Annotated[str, typer.Option()], ref_period: Annotated[str, typer.Option("--ref-period", help="The closed month it corrects, YYYY-MM")],
           db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Record a correction of a merchant's closed period; the next close applies it."""
    with errors():
        _print(_ctx(db, data_dir).settlement.adjust(city, merchant_id, amount_cents, reason, ref_period, actor(),
                                                    key=_once()))  # fmt: skip


@settlement_app.command("payout-account")
def payout_account(city: City, merchant_id: Annotated[str, typer.Option("--merchant")],
                   institution: Annotated[str, typer.Option(help="3 digits")], transit: Annotated[str, typer.Option(help="5 digits")],
                   account_number: Annotated[str, typer.Option("--account-number", help="7 to 12 digits")],
                   holder_name: Annotated[str | None, typer.Option("--holder-name", help="[default: the merchant's name]")] = None,
                   stripe_account_id: Annotated[str | None, typer.Option("--stripe-account", help="acct_…")] = None,
                   db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Propose a merchant's payout account; it pays nothing until a second principal confirms it."""
    account = {"holder_name": holder_name, "institution": institution, "transit": transit,
               "account_number": account_number, "stripe_account_id": stripe_account_id}  # fmt: skip
    with errors():
        _print(_ctx(db, data_dir).payouts.propose_account(city, merchant_id, account, actor(), key=_once()))


@settlement_app.command("payout-account-changes")
def payout_account_changes(city: City, status: Annotated[str, typer.Option(help="pending, confirmed or rejected")] = "pending",
                           db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """The city's payout account changes in a status, newest first, account numbers masked."""
    with errors():
        _print(_ctx(db, data_dir).payouts.account_changes(city, status).changes)


@settlement_app.command("payout-account-decide")
def payout_account_decide(city: City, change_id: Annotated[str, typer.Option("--change")],
                          decision: Annotated[str, typer.Option(help="confirm or reject")], db: Db = None,
                          data_dir: DataDir = None) -> None:  # fmt: skip
    """Confirm (someone other than the proposer) or reject a proposed payout account."""
    with errors():
        if decision not in ("confirm", "reject"):
            raise ValueError(_("--decision is confirm or reject"))
        _print(_ctx(db, data_dir).payouts.decide_account(city, change_id, decision, actor()))


@settlement_app.command("payout-list")
def payout_list(city: City, period: Period, db: Db = None, data_dir: DataDir = None) -> None:
    """A period's payouts and their state, by merchant."""
    with errors():
        _print(_ctx(db, data_dir).payouts.list(city, period).payouts)


@settlement_app.command("budget")
def budget(city: City, db: Db = None, data_dir: DataDir = None) -> None:
    """The program's budget: funded, consumed, remaining; points outstanding, reserved and expired."""
    with errors():
        _print(_ctx(db, data_dir).reports.budget(city))


@settlement_app.command("redemptions")
def redemptions(city: City, period: Period, db: Db = None, data_dir: DataDir = None) -> None:
    """Points redeemed in a period, net of refunds, by merchant and by category."""
    with errors():
        _print(_ctx(db, data_dir).reports.redemptions(city, period))
