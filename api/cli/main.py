"""The `entraide` command line (typer + rich). Every command calls the service layer; errors are one line.

Each command imports the services it needs when it runs, so that `entraide --help` answers at once;
text a person reads goes through `api.cli.i18n` (French unless `--lang` or the environment says).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from api.cli import collections as _collections  # noqa: F401  (adds `settlement collections|pain008|…`)
from api.cli import i18n, office  # noqa: F401  (office: its commands join `admin` and `settlement`)
from api.cli.admin import admin_app
from api.cli.audit import audit_app
from api.cli.corrections import correction_app
from api.cli.finance import expiry_app, opendata_app, settlement_app
from api.cli.i18n import _
from api.cli.jobs import CheckpointOption, checkpoint_interval, jobs_app
from api.cli.monitor import monitor as monitor_command
from api.cli.search import search_app
from api.cli.support import DataDirOption, DbOption, check_port_free, context, errors, fail, out, progress
from api.cli.witness import witness_app

if TYPE_CHECKING:
    from api.bootstrap import Context
    from ledger._core import Report
    from ledger.service_layer.simulation import SimulationStats


class EntraideGroup(TyperGroup):
    """The root command: settles the language (`--lang`, anywhere, or the environment) and translates
    the whole tree's help before click parses anything."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        flag, args = i18n.split_lang(sys.argv[1:] if args is None else args)
        i18n.use(i18n.resolve(flag, os.environ))
        i18n.localize(self, typer.Context)
        return super().main(args, *rest, **kwargs)


app = typer.Typer(cls=EntraideGroup, help="Entraide: the community rewards ledger.", no_args_is_help=True,
                  pretty_exceptions_enable=False)  # fmt: skip
ledger_app = typer.Typer(help="The signed ledger: simulate, verify, export, checkpoint, prove.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(correction_app, name="correction")
app.add_typer(audit_app, name="audit")
app.add_typer(search_app, name="search")
app.add_typer(settlement_app, name="settlement")
app.add_typer(expiry_app, name="expiry")
app.add_typer(opendata_app, name="opendata")
app.add_typer(jobs_app, name="jobs")
app.add_typer(witness_app, name="witness")
app.command("monitor")(monitor_command)


@app.callback()
def _root(
    lang: Annotated[str | None, typer.Option("--lang", metavar="fr|en",
                                             help="Language of the output (default: from LANG, else French)")] = None,
) -> None:  # fmt: skip
    """Entraide: the community rewards ledger."""
    # `--lang` is read (and removed) by EntraideGroup.main, anywhere on the line; declared here for --help.


def _report_verification(report: Report, source: str) -> None:
    if not report["ok"]:
        e = report["error"]
        assert e is not None  # a report that is not ok names its error
        raise fail(
            _("{source}: ledger {ledger}, sequence {sequence}: {code}: {detail}").format(source=source, **e), code=1
        )
    table = Table(title=_("{source}: intact").format(source=source), show_lines=False)
    for column in (_("ledger"), _("entries"), _("head"), _("open holds")):
        table.add_column(column, justify="left" if column == _("ledger") else "right")
    for name, chain in sorted(report["ledgers"].items()):
        table.add_row(name, f"{chain['entries']:,}", chain["head_hash"][:16], str(chain["open_holds"]))
    out.print(table)
    out.print(_("{entries:,} entries verified: formats, hashes, chain, signatures, time order, two-phase and refund rules, "
                "balances, linked groups.").format(entries=report["entries"]))  # fmt: skip


# --- ledger commands ----------------------------------------------------------------------------


@ledger_app.command()
def simulate(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    transfers: Annotated[int, typer.Option(min=1, max=50_000_000, help="How many transfers to simulate")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same activity")] = 1,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of activity, ending now")] = 120,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Transfers per database transaction")] = 1000,
) -> None:
    """Simulate realistic multi-city activity (deterministic for a seed)."""
    from ledger.service_layer import simulation
    from ledger.service_layer.keys import now_us
    from ledger.simulate import DAY_US, Simulator

    with errors():
        start_us = now_us() - days * DAY_US
        sim = Simulator(seed, start_us, days)
        ctx = context(db, data_dir, clock=sim.clock, key_from_us=start_us)
        started = time.perf_counter()
        with progress(_("simulating"), transfers) as advance:
            stats = simulation.run(ctx.ledger, sim, transfers, batch_size, advance, ctx.keystore)
        seconds = time.perf_counter() - started
    out.print(_("{transfers:,} transfers in {seconds:.1f} s ({rate:,.0f}/s): {committed:,} committed, refused: {refused}; "
                "{expired:,} holds expired at the end; keys rotated to {keys}")
              .format(transfers=stats.transfers, seconds=seconds, rate=stats.transfers / seconds, committed=stats.committed,
                      refused=_refusals(stats), expired=stats.expired_holds, keys=", ".join(stats.rotated_keys) or "-"))  # fmt: skip


def _refusals(stats: SimulationStats) -> str:
    return ", ".join(f"{code} {n:,}" for code, n in stats.rejected.most_common()) or _("none")


@ledger_app.command()
def verify(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    export: Annotated[Path | None, typer.Option("--export", help="Verify a JSONL export instead of a database")] = None,
    keys_file: Annotated[Path | None, typer.Option("--keys", help="Public keys file (with --export)")] = None,
    checkpoints_file: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="Signed checkpoints the export must reach and agree with (with --export)"),
    ] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Accept a ledger with no entries at all")] = False,
) -> None:
    """Verify hashes, chain, signatures and balances; exit 1 naming the first bad entry, or if there is nothing to verify."""
    from ledger.adapters.database import display_url
    from ledger.service_layer import audit

    with errors():
        if export is not None:
            if keys_file is None:
                raise ValueError(_("--export needs --keys (the public keys file)"))
            report = audit.verify_export(export, keys_file, checkpoints_file)
            source = str(export)
        else:
            if checkpoints_file is not None:
                raise ValueError(_("--checkpoints needs --export"))
            ctx = context(db, data_dir)
            with progress(_("verifying"), audit.entry_count(ctx.engine)) as advance:
                report = audit.verify_database(ctx.engine, advance)
            source = _("database {url}").format(url=display_url(ctx.settings.database_url))
    if report["ok"] and report["entries"] == 0 and not allow_empty:
        # An empty ledger proves nothing: it is what a wrong --db or a lost restore looks like.
        raise fail(_("{source}: no entries, nothing to verify (--allow-empty accepts an empty ledger)").format(source=source),
                   code=1)  # fmt: skip
    _report_verification(report, source)


@ledger_app.command("export")
def export_(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
    keys_out: Annotated[Path | None, typer.Option("--keys-out", help="Write the public keys file here")] = None,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export every ledger as JSON Lines (ledger, then sequence) with the public keys."""
    from ledger.service_layer import audit

    with errors():
        ctx = context(db, data_dir)
        with progress(_("exporting"), audit.entry_count(ctx.engine)) as advance:
            written = audit.export(ctx.engine, out_file, keys_out, advance)
    message = (
        _("{written:,} entries written to {file}, keys to {keys}")
        if keys_out
        else _("{written:,} entries written to {file}")
    )
    out.print(message.format(written=written, file=out_file, keys=keys_out))


@ledger_app.command()
def checkpoint(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the signed notes to this file")] = None,
) -> None:
    """Sign a checkpoint (tree size, Merkle root, time) of every ledger."""
    from ledger.service_layer import audit

    with errors():
        ctx = context(db, data_dir)
        made = audit.make_checkpoints(ctx.engine, ctx.signer)
        if out_file is not None:
            out_file.write_text(
                json.dumps({"checkpoints": [c["note"] for c in made]}, indent=2) + "\n", encoding="utf-8"
            )
    for cp in made:
        out.print(_("{ledger}: size {size:,}, root {root}…").format(ledger=cp["ledger"], size=cp["tree_size"],
                                                                     root=cp["root_hash"][:16]))  # fmt: skip


@ledger_app.command()
def prove(
    ledger: Annotated[str, typer.Option(help="Ledger (city id)")],
    out_file: Annotated[Path, typer.Option("--out", help="Proof file to write")],
    sequence: Annotated[int | None, typer.Option(help="Entry to prove included in the latest checkpoint")] = None,
    from_size: Annotated[int | None, typer.Option("--from", help="Older checkpoint's tree size")] = None,
    to_size: Annotated[int | None, typer.Option("--to", help="Newer checkpoint's tree size")] = None,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write an inclusion proof (--sequence) or a consistency proof (--from/--to)."""
    from ledger.service_layer import audit

    with errors():
        ctx = context(db, data_dir)
        if sequence is not None and from_size is None and to_size is None:
            proof = audit.prove_inclusion(ctx.engine, ledger, sequence)
        elif sequence is None and from_size is not None and to_size is not None:
            proof = audit.prove_consistency(ctx.engine, ledger, from_size, to_size)
        else:
            raise ValueError(_("give either --sequence, or both --from and --to"))
        out_file.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(_("{kind} proof written to {file}").format(kind=proof["type"], file=out_file))


def _json_file(path: Path, max_bytes: int) -> Any:
    """A proof or receipt file, refused when larger than `max_bytes` (read whole, it is bounded)."""
    if path.stat().st_size > max_bytes:
        raise ValueError(_("{file} is too large").format(file=path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(_("{file} is not JSON: {reason}").format(file=path, reason=exc)) from None


@ledger_app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="Proof file from `entraide ledger prove`")],
    keys_file: Annotated[Path, typer.Option("--keys", help="Public keys file")],
) -> None:
    """Check a proof offline, with public keys only."""
    from ledger.domain.checkpoint import NoteError
    from ledger.service_layer import audit

    with errors():
        proof = _json_file(proof_file, audit.MAX_PROOF_BYTES)
        keys_doc = audit.load_keys_document(keys_file)
        try:
            summary = audit.verify_proof(proof, keys_doc)
        except (ValueError, NoteError) as exc:
            raise fail(_("proof does not verify: {reason}").format(reason=exc), code=1) from None
    out.print(_("[green]valid:[/] {summary}").format(summary=summary))


def _receipt_failure(code: str, params: dict[str, object]) -> str:
    """What a receipt's failed check (`receipts.ReceiptRejected.code`) says, in the CLI's language."""
    words = {
        "format": _("not an entraide.receipt/1 receipt"),
        "malformed": _("the receipt is malformed ({detail})"),
        "hash_mismatch": _("entry {entry}: its hash does not match its content"),
        "unknown_key": _("entry {entry}: key {key_id} is not in the keys file"),
        "key_not_valid": _("entry {entry}: key {key_id} was not valid at {time_us}"),
        "bad_signature": _("entry {entry}: its signature does not verify"),
        "not_one_group": _("the entries do not form one linked group ({detail})"),
        "bad_checkpoint": _("the checkpoint given for {ledger} does not verify: {reason}"),
        "checkpoint_mismatch": _("the checkpoint given for {ledger} (size {tree_size}) is the checkpoint of {note_ledger} at size {note_size}"),
        "inclusion_mismatch": _("the proof does not match the entries ({detail})"),
        "bad_path": _("entry {entry}: the inclusion path does not lead to the root of the checkpoint of size {tree_size}"),
    }  # fmt: skip
    return words[code].format_map(params)


@ledger_app.command("verify-receipt")
def verify_receipt(
    receipt_file: Annotated[Path, typer.Argument(help="Receipt file (a POS or wallet answer's `receipt`)")],
    keys_file: Annotated[Path, typer.Option("--keys", help="Public keys file")],
) -> None:
    """Check a resident's receipt offline, with public keys only."""
    from ledger.service_layer import audit, receipts

    with errors():
        document = _json_file(receipt_file, receipts.MAX_RECEIPT_BYTES)
        keys_doc = audit.load_keys_document(keys_file)
        try:
            check = receipts.verify(document, keys_doc)
        except receipts.ReceiptRejected as exc:
            reason = _receipt_failure(exc.code, {"detail": str(exc), **exc.params})
            raise fail(_("receipt does not verify: {reason}").format(reason=reason), code=1) from None
    entries = ", ".join(check.entries)
    if check.checkpoints is None:
        out.print(_("[green]valid:[/] entries {entries} hashed and signed by valid keys; "
                    "[yellow]inclusion not checked[/] (the receipt has no proof)").format(entries=entries))  # fmt: skip
        return
    signed = ", ".join(f"{ledger}@{size} ({key_id})" for ledger, size, key_id in check.checkpoints)
    out.print(_("[green]valid:[/] entries {entries} hashed, signed by valid keys and included in checkpoints {checkpoints}")
              .format(entries=entries, checkpoints=signed))  # fmt: skip


@ledger_app.command("keys")
def keys_(
    rotate: Annotated[bool, typer.Option("--rotate", help="Retire the active key and start a new one")] = False,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the signing keys (and rotate them with --rotate)."""
    from ledger.service_layer import keys

    with errors():
        ctx = context(db, data_dir)
        if rotate:
            old, new = keys.rotate(ctx.engine, ctx.keystore)
            out.print(_("rotated: {old} retired, {new} active").format(old=old, new=new))
        listed = keys.list_keys(ctx.engine)
    table = Table(title=_("signing keys"))
    for column in (_("key id"), _("public key"), _("valid from (µs)"), _("valid until (µs)")):
        table.add_column(column)
    for k in listed:
        table.add_row(
            k["key_id"], k["public_key"][:16] + "…", str(k["valid_from_us"]), str(k["valid_until_us"] or _("active"))
        )
    out.print(table)


@ledger_app.command("expire-holds")
def expire_holds(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Release every hold past its expiry (an `expire` entry each)."""
    with errors():
        count = context(db, data_dir).ledger.expire_holds()
    out.print(_("{count:,} holds expired").format(count=count))


# --- creating a database, serving, and the demo -------------------------------------------------


@app.command()
def init(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    history_days: Annotated[int, typer.Option(min=0, max=3650, help="Date the first signing key this many days back, "
                                              "for `ledger simulate --days N` of past activity")] = 0,
) -> None:  # fmt: skip
    """Create the database (schema and first signing key); on an existing one, only bring the schema up to date."""
    from api.bootstrap import Settings
    from ledger.adapters.database import DatabaseMissing, display_url, schema_revision
    from ledger.service_layer import keys
    from ledger.simulate import DAY_US

    with errors():
        settings = Settings.load(db, data_dir)
        try:
            before = schema_revision(settings.database_url)
        except DatabaseMissing:
            before = None
        ctx = context(db, data_dir, create=True, key_from_us=keys.now_us() - history_days * DAY_US)
        after = schema_revision(settings.database_url)
        key_id = keys.ensure_key(ctx.engine, ctx.keystore)
        ctx.engine.dispose()
    where = display_url(settings.database_url)
    if before is None:
        message = _("created {where}: schema revision {after}, signing key {key}")
    elif before != after:
        message = _("{where} upgraded from schema revision {before} to {after}; signing key {key}")
    else:
        message = _("{where} is already initialised (schema revision {after}, signing key {key}): nothing to do")
    out.print(message.format(where=where, before=before, after=after, key=key_id))


HostOption = Annotated[str, typer.Option(help="Address to listen on")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")]


def _serve(ctx: Context, host: str, port: int, checkpoint_seconds: int | None = None) -> None:
    import uvicorn

    from api.http.app import create_app
    from operations.service_layer.jobs import scheduler

    schedule = scheduler(ctx, checkpoint_interval(checkpoint_seconds))
    check_port_free(host, port)  # the demo checked before seeding too: it may have been taken since
    out.print(_("serving on {root}  (OpenAPI: {root}/schema/openapi.json); running {jobs} recurring jobs (`entraide jobs`)")
              .format(root=f"http://{host}:{port}", jobs=len(schedule.jobs)))  # fmt: skip
    uvicorn.run(create_app(ctx, jobs=schedule), host=host, port=port, log_level="warning")


@app.command()
def serve(db: DbOption = None, data_dir: DataDirOption = None, host: HostOption = "127.0.0.1", port: PortOption = 8000,
          checkpoint_seconds: CheckpointOption = None) -> None:  # fmt: skip
    """Serve the HTTP API (POS, wallet, organizations, admin) and run the recurring jobs (once across servers)."""
    with errors():
        ctx = context(db, data_dir)  # a wrong database or configuration is told first, then a busy port
    _serve(ctx, host, port, checkpoint_seconds)


@app.command()
def demo(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    transfers: Annotated[int, typer.Option(min=100, max=5_000_000, help="Transfers of simulated activity")] = 30_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 2026,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Months of activity, in days, up to today")] = 120,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API once seeded")] = True,
    credentials_out: Annotated[
        Path | None, typer.Option("--credentials-out", help="Write the demo accounts' credentials here")
    ] = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Seed the eleven communities (programs, merchants, residents, months of activity), verify, then serve."""
    from api.demo import seed as demo_seed
    from api.demo.catalog import seed_catalog
    from finance.domain.settlement import cents_text
    from ledger.service_layer import audit, simulation
    from ledger.service_layer.keys import now_us
    from ledger.simulate import DAY_US

    if serve_api:
        check_port_free(host, port)  # before minutes of seeding, not after
    with errors():
        start_us = now_us() - days * DAY_US
        # Members join at the start of the simulated months, activity follows the simulator's clock,
        # and closing last month happens today.
        clock = {"now": lambda: start_us}

        def demo_now_us() -> int:  # looked up at each call: the demo moves time on by replacing clock["now"]
            return clock["now"]()

        ctx = context(db, data_dir, clock=demo_now_us, key_from_us=start_us, create=True)
        out.print(_("[bold]Entraide demo[/] — database {url}").format(url=ctx.settings.database_url))
        stats = simulation.SimulationStats()
        creds_file = demo_seed.credentials_path(ctx)
        if audit.entry_count(ctx.engine):
            if not creds_file.exists():
                raise ValueError(_("this database was seeded elsewhere: {file} is missing").format(file=creds_file))
            creds = json.loads(creds_file.read_text(encoding="utf-8"))
            out.print(_("already seeded: verifying and summarizing what is there"))
        else:
            with progress(_("enrolling members"), demo_seed.member_count()) as advance:
                creds = demo_seed.seed_members(ctx, advance, random.Random(seed))
            demo_seed.write_credentials(creds, creds_file)  # before the long part: a rerun finds the members
            items = seed_catalog(ctx, creds, random.Random(seed))
            out.print(
                _("catalog: {items} offers, municipal services and events, indexed for search").format(items=items)
            )
            sim = demo_seed.new_simulator(seed, days, creds, start_us + days * DAY_US)
            clock["now"] = sim.clock
            with progress(_("seeding activity"), transfers) as advance:
                stats = simulation.run(ctx.ledger, sim, transfers, 1000, advance, ctx.keystore, fund=False)
            clock["now"] = now_us
            closed = demo_seed.close_last_month(ctx)
            net = sum(c.statement.totals.net_cents for c in closed)
            out.print(_("closed {period} in {cities} cities: merchants net {net} $")
                      .format(period=closed[0].statement.period, cities=len(closed), net=cents_text(net)))  # fmt: skip
        clock["now"] = now_us
        demo_seed.write_credentials(demo_seed.grant_tokens(ctx, creds), creds_file)
        made = audit.make_checkpoints(ctx.engine, ctx.signer)
        with progress(_("verifying"), audit.entry_count(ctx.engine)) as advance:
            report = audit.verify_database(ctx.engine, advance)
        _report_verification(report, _("database"))
        _summary(ctx, report, len(made), stats)
        if credentials_out is not None:
            demo_seed.write_credentials(creds, credentials_out)
        _how_to_use(
            creds_file if credentials_out is None else credentials_out, creds, f"http://{host}:{port}", serve_api
        )
        ctx.engine.dispose()
    if serve_api:
        _serve(_demo_context(db, data_dir), host, port)


def _demo_context(db: str | None, data_dir: Path | None) -> Context:
    """The served demo's context: its sign-in page lists demo residents, its mail stays in /dev/mailbox."""
    import dataclasses

    from api.bootstrap import Settings, open_context

    return open_context(dataclasses.replace(Settings.load(db, data_dir), demo=True))


def _how_to_use(creds_file: Path, creds: dict, root: str, serving: bool) -> None:
    """Where the demo's accounts are, what to open, and one signed-in request to copy."""
    token = f'$(python3 -c \'import json; print(json.load(open("{creds_file}"))["residents"][0]["token"])\')'
    out.print(_("credentials of {merchants} terminals, {residents} residents, {orgs} organizations and {staff} city staff: {file}")
              .format(merchants=len(creds["merchants"]), residents=len(creds["residents"]), orgs=len(creds["organizations"]),
                      staff=len(creds["staff"]), file=creds_file), highlight=False)  # fmt: skip
    if serving:
        out.print(_("open {root}/ (the site), {root}/schema/openapi.json (the OpenAPI document), {root}/schema/swagger (its pages)")
                  .format(root=root), highlight=False)  # fmt: skip
        out.print(_("the public ledger, no sign-in: {root}/public (every city's checkpoints, the program in numbers; "
                    "check a receipt at {root}/public/check)").format(root=root), highlight=False)  # fmt: skip
        resident = creds["residents"][0]
        out.print(_("sign in as a demo resident at {root}/wallet/sign-in: pick one in the demo's list, or type an activation "
                    "code from the credentials file (e.g. {code}); passkeys need http://localhost:{port}, not an IP address")
                  .format(root=root, code=resident.get("activation_code", "-"), port=root.rsplit(":", 1)[-1]),
                  highlight=False)  # fmt: skip
        owner = next((p for p in creds.get("principals", []) if p["role"] == "merchant"), None)
        if owner is not None:
            out.print(_("a merchant's owner: {root}/portal/sign-in, the city's back office (staff, finance, auditor, admin): "
                        "{root}/office/sign-in; pick a demo user in the list, or type an activation code from the credentials "
                        "file's \"principals\" (e.g. {code})").format(root=root, code=owner["activation_code"]),
                      highlight=False)  # fmt: skip
        pairing = creds.get("terminal_pairing")
        if pairing is not None:
            out.print(_("the merchant's till: open {root}/terminal/pair on a tablet or phone and type the pairing code {code} "
                        "(one use, 15 minutes; another: entraide admin terminal-pairing-code --city {city} --merchant "
                        "{merchant} --data-dir {data_dir})").format(root=root, code=pairing["code"], city=pairing["city"],
                                                                  merchant=pairing["merchant_id"], data_dir=creds_file.parent),
                      highlight=False)  # fmt: skip
        out.print(_("sign in as a resident with their bearer token, e.g.:"))
        out.print(f'  curl -H "Authorization: Bearer {token}" {root}/v1/wallet/balance', highlight=False, markup=False,
                  soft_wrap=True)  # fmt: skip


def _summary(ctx: Context, report: Report, checkpoints: int, stats: SimulationStats) -> None:
    from ledger.domain import accounts
    from ledger.service_layer import keys

    table = Table(title=_("communities"))
    columns = (
        _("ledger"),
        _("entries"),
        _("budget used"),
        _("wallets hold"),
        _("redeemed at merchants"),
        _("services paid"),
    )
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for name, chain in sorted(report["ledgers"].items()):
        balances = chain["balances"]
        posted = {a: c[1] - c[0] for a, c in balances.items()}
        budget = balances.get(accounts.PROGRAM_BUDGET, (0, 0, 0, 0))
        wallets = sum(v for a, v in posted.items() if accounts.is_wallet(a))
        redeemed = sum(v for a, v in posted.items() if accounts.is_redeemed(a))
        table.add_row(
            name,
            f"{chain['entries']:,}",
            f"{budget[0]:,}",
            f"{wallets:,}",
            f"{redeemed:,}",
            f"{posted.get(accounts.SERVICES_REVENUE, 0):,}",
        )
    out.print(table)
    if stats.transfers:
        out.print(_("simulated {transfers:,} transfers: {committed:,} committed, refused as the ledger should: {refused}")
                  .format(transfers=stats.transfers, committed=stats.committed, refused=_refusals(stats)))  # fmt: skip
    out.print(_("{entries:,} entries in {ledgers} ledgers, {checkpoints} checkpoints signed, {keys} signing keys.")
              .format(entries=report["entries"], ledgers=len(report["ledgers"]), checkpoints=checkpoints,
                      keys=len(keys.list_keys(ctx.engine))))  # fmt: skip


if __name__ == "__main__":
    app()
