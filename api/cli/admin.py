"""`entraide admin`: the city staff's commands, calling the same services as `/v1/admin`, audited as `cli:<user>`."""

from __future__ import annotations

import getpass
import json
import secrets
from pathlib import Path
from typing import Annotated, TypeVar

import msgspec
import typer

from api.cli.i18n import _
from api.cli.support import City, actor, errors, plain
from api.cli.support import DataDirOption as DataDir
from api.cli.support import DbOption as Db
from api.cli.support import context as _ctx
from community.domain.access import MAX_TTL_SECONDS, MIN_TTL_SECONDS, Grantor, operator

admin_app = typer.Typer(help="City program administration: programs, budgets, residents, merchants, tokens, audit.",
                        no_args_is_help=True)  # fmt: skip


T = TypeVar("T")


def _operator() -> Grantor:
    return operator(getpass.getuser())


def _once() -> str:
    """An idempotency key for one command: each run of a command is a new request."""
    return secrets.token_hex(8)


def decoded(file: Path, kind: type[T]) -> T:
    """A JSON file read strictly as the API reads its body; a bad one is one line naming the file."""
    try:
        return msgspec.json.decode(file.read_bytes(), type=kind, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{file}: {exc}") from None


def _print(value: object) -> None:
    typer.echo(json.dumps(plain(value), indent=2, ensure_ascii=False, sort_keys=True))


@admin_app.command("program-show")
def program_show(city: City, db: Db = None, data_dir: DataDir = None) -> None:
    """Print a city's program as JSON (the format program-set takes)."""
    with errors():
        _print(_ctx(db, data_dir).programs.get(city))


@admin_app.command("program-set")
def program_set(city: City, file: Annotated[Path, typer.Option("--file", help="Program JSON")], db: Db = None,
                data_dir: DataDir = None) -> None:  # fmt: skip
    """Create or replace a city's program from a JSON file (validated and audited)."""
    from community.domain.program import Program

    with errors():
        program = decoded(file, Program)
        if program.city != city:
            raise ValueError(_("{file} is the program of {program!r}, not {city!r}").format(file=file, program=program.city,
                                                                                            city=city))  # fmt: skip
        saved = _ctx(db, data_dir).programs.configure(program, actor())
    typer.echo(_("{city}: program version {version}").format(city=city, version=saved.version))


@admin_app.command("fund-budget")
def fund_budget(city: City, points: Annotated[int, typer.Option(min=1)], key: Annotated[str, typer.Option(help="Idempotency key")],
                db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Allocate points to the program budget (program:funding → program:budget)."""
    with errors():
        _print(_ctx(db, data_dir).programs.fund_budget(city, points, key, actor()))


@admin_app.command("resident-enrol")
@admin_app.command("enrol", hidden=True)  # the former name
def enrol(city: City, name: Annotated[str, typer.Option()], email: Annotated[str | None, typer.Option()] = None,
          level: Annotated[str, typer.Option(help="basic, verified or checked")] = "basic",
          subject: Annotated[str | None, typer.Option(help="Their identity provider's subject (`sub`), unique per city, "
                                                           "so they can sign in with it")] = None,
          db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Enrol a resident (valid one year) and print their id, card and web activation code (one use, 72 hours)."""
    with errors():
        ctx = _ctx(db, data_dir)
        personal = {"name": name} | ({"email": email} if email else {})
        key = _once()
        resident = plain(ctx.residents.enroll(city, personal, level, actor(), subject, key=key))
        code = ctx.activation.issue(resident["id"], city, actor(), key=key)
        _print(resident | {"card": plain(ctx.residents.current_card(resident["id"]))["token"],
                           "activation_code": code.code, "activation_expires_at_us": code.expires_at_us})  # fmt: skip


@admin_app.command("resident-activation")
def resident_activation(city: City, resident_id: Annotated[str, typer.Option("--resident")],
                        email: Annotated[bool, typer.Option("--email", help="Send it to the resident's e-mail address "
                                                            "(ENTRAIDE_SMTP_URL) instead of printing it")] = False,
                        db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """A new activation code for a resident (lost device, expired code): the older one stops working."""
    with errors():
        ctx = _ctx(db, data_dir)
        if email:
            from web.mail import activation_message

            site = ctx.settings.web_origin or "http://127.0.0.1:8000"
            _print(ctx.activation.send(resident_id, city, actor(), activation_message(ctx, site), key=_once()))
        else:
            _print(ctx.activation.issue(resident_id, city, actor(), key=_once()))


@admin_app.command("merchant-add")
def merchant_add(city: City, merchant_id: Annotated[str, typer.Option("--id")], name: Annotated[str, typer.Option()],
                 category: Annotated[str, typer.Option()], approve: bool = False, db: Db = None,
                 data_dir: DataDir = None) -> None:  # fmt: skip
    """Add a merchant (pending unless --approve)."""
    with errors():
        ctx = _ctx(db, data_dir)
        row = ctx.merchants.add(city, merchant_id, name, actor(), key=_once(), category=category)
        if approve:
            row = ctx.merchants.set_status(merchant_id, "approved", actor(), city)
        _print(row)


@admin_app.command("terminal-add")
def terminal_add(city: City, merchant_id: Annotated[str, typer.Option("--merchant")],
                 public_key: Annotated[Path, typer.Option("--public-key", help="Ed25519 public key, PEM")], db: Db = None,
                 data_dir: DataDir = None) -> None:  # fmt: skip
    """Register a terminal's public key; prints the key id it signs with."""
    with errors():
        registered = _ctx(db, data_dir).terminals.register(
            merchant_id, public_key.read_text(), actor(), city, key=_once()
        )
    typer.echo(registered.terminal_key_id)


@admin_app.command("terminal-pairing-code")
def terminal_pairing_code(city: City, merchant_id: Annotated[str, typer.Option("--merchant")],
                          name: Annotated[str | None, typer.Option("--name", help="the device's name")] = None,
                          db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Issue a one-time code (15 minutes) to pair a device at /terminal/pair; prints it as JSON."""
    with errors():
        _print(_ctx(db, data_dir).pairing.issue(merchant_id, city, actor(), name, key=_once()))


@admin_app.command("org-add")
def org_add(city: City, org_id: Annotated[str, typer.Option("--id")], name: Annotated[str, typer.Option()],
            approve: bool = False, db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Add a community organization (pending unless --approve)."""
    with errors():
        ctx = _ctx(db, data_dir)
        row = ctx.organizations.add(city, org_id, name, actor(), key=_once())
        if approve:
            row = ctx.organizations.set_status(org_id, "approved", actor(), city)
        _print(row)


@admin_app.command("grant")
def grant(city: City, role: Annotated[str, typer.Option(help="admin, staff, finance, auditor or org")],
          subject: Annotated[str, typer.Option(help="Who: an e-mail or an id, unique per city and role")],
          org: Annotated[str | None, typer.Option(help="The organization of an org token")] = None,
          ttl_seconds: Annotated[int, typer.Option(min=MIN_TTL_SECONDS, max=MAX_TTL_SECONDS)] = 3_600, db: Db = None,
          data_dir: DataDir = None) -> None:  # fmt: skip
    """Grant a bearer token from the built-in issuer (any role: the server's operator), audited; prints the token."""
    with errors():
        granted = _ctx(db, data_dir).access.grant(_operator(), city, role, subject, org, ttl_seconds, key=_once())
    typer.echo(granted.token)


@admin_app.command("principal-activation")
def principal_activation(city: City, role: Annotated[str, typer.Option(help="merchant, staff, finance, auditor or admin")],
                         subject: Annotated[str, typer.Option(help="Who: an e-mail or an id, unique per city and role")],
                         merchant: Annotated[str | None, typer.Option(help="The merchant a merchant owner owns")] = None,
                         db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """A web sign-in code for a merchant's owner or an officer (/portal, /office); the older one stops working."""
    with errors():
        _print(_ctx(db, data_dir).activation.issue_principal(_operator(), city, role, subject, key=_once(),
                                                             merchant_id=merchant))  # fmt: skip


@admin_app.command("principal-oidc-link")
def principal_oidc_link(city: City, role: Annotated[str, typer.Option(help="merchant, staff, finance, auditor or admin")],
                        subject: Annotated[str, typer.Option(help="The principal's subject in the city")],
                        account: Annotated[str, typer.Option(help="Its account's `sub` at the city's identity provider")],
                        unlink: Annotated[bool, typer.Option(help="Unlink the account instead")] = False, db: Db = None,
                        data_dir: DataDir = None) -> None:  # fmt: skip
    """Link (or --unlink) a principal's account at the city's identity provider: it then signs them in
    to /portal or /office. An account links one principal. Audited."""
    with errors():
        links = _ctx(db, data_dir).principal_links
        if unlink:
            _print(links.unlink(_operator(), city, role, subject, account))
        else:
            _print(links.link(_operator(), city, role, subject, account))


@admin_app.command("tokens")
def tokens(city: City, role: Annotated[str | None, typer.Option()] = None, subject: Annotated[str | None, typer.Option()] = None,
           include_ended: Annotated[bool, typer.Option(help="Also revoked and expired tokens")] = False, db: Db = None,
           data_dir: DataDir = None) -> None:  # fmt: skip
    """List a city's tokens (id, role, subject, who granted, expiry, revocation), never their text."""
    with errors():
        _print(
            _ctx(db, data_dir)
            .access.credentials(_operator(), city, role, subject, live_only=not include_ended)
            .credentials
        )


@admin_app.command("revoke")
def revoke(city: City, jti: Annotated[str | None, typer.Option(help="One token, by its id")] = None,
           role: Annotated[str | None, typer.Option(help="With --subject: a principal and all its tokens")] = None,
           subject: Annotated[str | None, typer.Option()] = None, db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """Revoke one token (--jti) or withdraw a principal's grant (--role, --subject); effective at once."""
    with errors():
        access = _ctx(db, data_dir).access
        if jti is not None and role is None and subject is None:
            _print(access.revoke(_operator(), city, jti))
        elif jti is None and role is not None and subject is not None:
            _print(access.revoke_principal(_operator(), city, role, subject))
        else:
            raise ValueError(_("give either --jti, or both --role and --subject"))


def _utc(time_s: int | None) -> str:
    from datetime import UTC, datetime

    return "-" if time_s is None else datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@admin_app.command("card-keys")
def card_keys(city: Annotated[str | None, typer.Option("--city", help="One city (default: every city with a program)")] = None,
              rotate: Annotated[bool, typer.Option("--rotate", help="Retire the active card key and sign new cards with a new one")] = False,
              db: Db = None, data_dir: DataDir = None) -> None:  # fmt: skip
    """List the card keys and their validity; --rotate rotates them first (audited)."""
    from rich.table import Table

    from api.cli.support import out

    with errors():
        ctx = _ctx(db, data_dir)
        cities = [ctx.programs.get(city).city] if city is not None else ctx.programs.cities()
        for name in cities if rotate else []:
            done = ctx.residents.card_keyring.rotate(name, actor())
            typer.echo(_("{city}: card key {old} retired (it verifies the cards it signed until {until}), {new} active")
                       .format(city=name, old=done.retired.kid, until=_utc(done.retired.accepted_until_s), new=done.active.kid))  # fmt: skip
        states = ctx.residents.card_keyring.states(cities)
    status = {"active": _("active"), "retiring": _("retiring"), "retired": _("retired")}
    table = Table(title=_("card keys"))
    for n, column in enumerate(
        (_("city"), _("key id"), _("status"), _("valid from"), _("retired at"), _("accepted until"))
    ):
        table.add_column(column, no_wrap=n < 3)  # whole ids and words; the dates may wrap
    for s in states:
        retired_at = None if s.retired_at_us is None else s.retired_at_us // 1_000_000
        table.add_row(s.city, s.kid, status[s.status], _utc(s.valid_from_us // 1_000_000) if s.valid_from_us else _("first key"),
                      _utc(retired_at), _utc(s.accepted_until_s))  # fmt: skip
    out.print(table)
