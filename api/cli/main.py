"""The `entraide` command line (typer + rich). Every command calls the service layer; errors are one line."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from api.bootstrap import Context, Settings
from api.cli.admin import admin_app
from api.cli.audit import audit_app
from api.cli.finance import expiry_app, opendata_app, settlement_app
from api.cli.jobs import CheckpointOption, jobs_app
from api.cli.search import search_app
from api.cli.support import DataDirOption, DbOption, context, err, errors, fail, out
from api.demo import seed as demo_seed
from api.demo.catalog import seed_catalog
from finance.domain.settlement import cents_text
from ledger.adapters.database import DatabaseMissing, display_url, schema_revision
from ledger.domain import accounts
from ledger.domain.checkpoint import NoteError
from ledger.service_layer import audit, keys, simulation
from ledger.service_layer.keys import now_us
from ledger.simulate import DAY_US, Simulator
from operations.service_layer.jobs import CHECKPOINT_SECONDS, scheduler

app = typer.Typer(help="Entraide: the community rewards ledger.", no_args_is_help=True, pretty_exceptions_enable=False)
ledger_app = typer.Typer(help="The signed ledger: simulate, verify, export, checkpoint, prove.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")
app.add_typer(search_app, name="search")
app.add_typer(settlement_app, name="settlement")
app.add_typer(expiry_app, name="expiry")
app.add_typer(opendata_app, name="opendata")
app.add_typer(jobs_app, name="jobs")


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _report_verification(report: dict, source: str) -> None:
    if not report["ok"]:
        e = report["error"]
        raise fail(f"{source}: ledger {e['ledger']}, sequence {e['sequence']}: {e['code']}: {e['detail']}", code=1)
    table = Table(title=f"{source}: intact", show_lines=False)
    for column in ("ledger", "entries", "head", "open holds"):
        table.add_column(column, justify="right" if column != "ledger" else "left")
    for name, chain in sorted(report["ledgers"].items()):
        table.add_row(name, f"{chain['entries']:,}", chain["head_hash"][:16], str(chain["open_holds"]))
    out.print(table)
    out.print(f"{report['entries']:,} entries verified: hashes, chain, signatures, two-phase and refund rules, balances, zero sum.")


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
    with errors():
        start_us = now_us() - days * DAY_US
        sim = Simulator(seed, start_us, days)
        ctx = context(db, data_dir, clock=sim.clock, key_from_us=start_us)
        started = time.perf_counter()
        with _progress("simulating", transfers) as advance:
            stats = simulation.run(ctx.ledger, sim, transfers, batch_size, advance, ctx.keystore)
        seconds = time.perf_counter() - started
    refused = ", ".join(f"{code} {n:,}" for code, n in stats.rejected.most_common()) or "none"
    out.print(f"{stats.transfers:,} transfers in {seconds:.1f} s ({stats.transfers / seconds:,.0f}/s): "
              f"{stats.committed:,} committed, refused: {refused}; {stats.expired_holds:,} holds expired at the end; "
              f"keys rotated to {', '.join(stats.rotated_keys) or '-'}")  # fmt: skip


@ledger_app.command()
def verify(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    export: Annotated[Path | None, typer.Option("--export", help="Verify a JSONL export instead of a database")] = None,
    keys_file: Annotated[Path | None, typer.Option("--keys", help="Public keys file (with --export)")] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Accept a ledger with no entries at all")] = False,
) -> None:
    """Verify hashes, chain, signatures and balances; exit 1 naming the first bad entry, or if there is nothing to verify."""
    with errors():
        if export is not None:
            if keys_file is None:
                raise ValueError("--export needs --keys (the public keys file)")
            report = audit.verify_export(export, keys_file)
            source = str(export)
        else:
            ctx = context(db, data_dir)
            with _progress("verifying", audit.entry_count(ctx.engine)) as advance:
                report = audit.verify_database(ctx.engine, advance)
            source = f"database {display_url(ctx.settings.database_url)}"
    if report["ok"] and report["entries"] == 0 and not allow_empty:
        # An empty ledger proves nothing: it is what a wrong --db or a lost restore looks like.
        raise fail(f"{source}: no entries, nothing to verify (--allow-empty accepts an empty ledger)", code=1)
    _report_verification(report, source)


@ledger_app.command("export")
def export_(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
    keys_out: Annotated[Path | None, typer.Option("--keys-out", help="Write the public keys file here")] = None,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export every ledger as JSON Lines (ledger, then sequence) with the public keys."""
    with errors():
        ctx = context(db, data_dir)
        with _progress("exporting", audit.entry_count(ctx.engine)) as advance:
            written = audit.export(ctx.engine, out_file, keys_out, advance)
    out.print(f"{written:,} entries written to {out_file}" + (f", keys to {keys_out}" if keys_out else ""))


@ledger_app.command()
def checkpoint(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the signed notes to this file")] = None,
) -> None:
    """Sign a checkpoint (tree size, Merkle root, time) of every ledger."""
    with errors():
        ctx = context(db, data_dir)
        made = audit.make_checkpoints(ctx.engine, ctx.signer)
        if out_file is not None:
            out_file.write_text(json.dumps({"checkpoints": [c["note"] for c in made]}, indent=2) + "\n", encoding="utf-8")
    for cp in made:
        out.print(f"{cp['ledger']}: size {cp['tree_size']:,}, root {cp['root_hash'][:16]}…")


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
    with errors():
        ctx = context(db, data_dir)
        if sequence is not None and from_size is None and to_size is None:
            proof = audit.prove_inclusion(ctx.engine, ledger, sequence)
        elif sequence is None and from_size is not None and to_size is not None:
            proof = audit.prove_consistency(ctx.engine, ledger, from_size, to_size)
        else:
            raise ValueError("give either --sequence, or both --from and --to")
        out_file.write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(f"{proof['type']} proof written to {out_file}")


@ledger_app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="Proof file from `entraide ledger prove`")],
    keys_file: Annotated[Path, typer.Option("--keys", help="Public keys file")],
) -> None:
    """Check a proof offline, with public keys only."""
    with errors():
        if proof_file.stat().st_size > audit.MAX_PROOF_BYTES:
            raise ValueError("proof file is too large")
        try:
            proof = json.loads(proof_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{proof_file} is not JSON: {exc}") from None
        keys_doc = audit.load_keys_document(keys_file)
        try:
            summary = audit.verify_proof(proof, keys_doc)
        except (ValueError, NoteError) as exc:
            raise fail(f"proof does not verify: {exc}", code=1) from None
    out.print(f"[green]valid:[/] {summary}")


@ledger_app.command("keys")
def keys_(
    rotate: Annotated[bool, typer.Option("--rotate", help="Retire the active key and start a new one")] = False,
    db: DbOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the signing keys (and rotate them with --rotate)."""
    with errors():
        ctx = context(db, data_dir)
        if rotate:
            old, new = keys.rotate(ctx.engine, ctx.keystore)
            out.print(f"rotated: {old} retired, {new} active")
        listed = keys.list_keys(ctx.engine)
    table = Table(title="signing keys")
    for column in ("key id", "public key", "valid from (µs)", "valid until (µs)"):
        table.add_column(column)
    for k in listed:
        table.add_row(k["key_id"], k["public_key"][:16] + "…", str(k["valid_from_us"]), str(k["valid_until_us"] or "active"))
    out.print(table)


@ledger_app.command("expire-holds")
def expire_holds(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Release every hold past its expiry (an `expire` entry each)."""
    with errors():
        ctx = context(db, data_dir)
        count = ctx.ledger.expire_holds()
    out.print(f"{count:,} holds expired")


# --- creating a database, serving, and the demo -------------------------------------------------


@app.command()
def init(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    history_days: Annotated[int, typer.Option(min=0, max=3650, help="Date the first signing key this many days back, "
                                              "for `ledger simulate --days N` of past activity")] = 0,
) -> None:  # fmt: skip
    """Create the database (schema and first signing key); on an existing one, only bring the schema up to date."""
    with errors():
        settings = Settings.load(db, data_dir)
        try:
            before = schema_revision(settings.database_url)
        except DatabaseMissing:
            before = None
        ctx = context(db, data_dir, create=True, key_from_us=now_us() - history_days * DAY_US)
        after = schema_revision(settings.database_url)
        key_id = keys.ensure_key(ctx.engine, ctx.keystore)
        ctx.engine.dispose()
    where = display_url(settings.database_url)
    if before is None:
        out.print(f"created {where}: schema revision {after}, signing key {key_id}")
    elif before != after:
        out.print(f"{where} upgraded from schema revision {before} to {after}; signing key {key_id}")
    else:
        out.print(f"{where} is already initialised (schema revision {after}, signing key {key_id}): nothing to do")


HostOption = Annotated[str, typer.Option(help="Address to listen on")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")]


def _serve(ctx: Context, host: str, port: int, checkpoint_seconds: int = CHECKPOINT_SECONDS) -> None:
    import uvicorn

    from api.http.app import create_app

    schedule = scheduler(ctx, checkpoint_seconds)
    out.print(f"serving on http://{host}:{port}  (OpenAPI: http://{host}:{port}/schema/openapi.json); "
              f"running {len(schedule.jobs)} recurring jobs (`entraide jobs`)")  # fmt: skip
    uvicorn.run(create_app(ctx, jobs=schedule), host=host, port=port, log_level="warning")


@app.command()
def serve(db: DbOption = None, data_dir: DataDirOption = None, host: HostOption = "127.0.0.1", port: PortOption = 8000,
          checkpoint_seconds: CheckpointOption = CHECKPOINT_SECONDS) -> None:  # fmt: skip
    """Serve the HTTP API (POS, wallet, organizations, admin) and run the recurring jobs (once across servers)."""
    with errors():
        ctx = context(db, data_dir)
    _serve(ctx, host, port, checkpoint_seconds)


@app.command()
def demo(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    transfers: Annotated[int, typer.Option(min=100, max=5_000_000, help="Transfers of simulated activity")] = 30_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 2026,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Months of activity, in days, up to today")] = 120,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API once seeded")] = True,
    credentials_out: Annotated[Path | None, typer.Option("--credentials-out", help="Write the demo accounts' credentials here")] = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Seed the eleven communities (programs, merchants, residents, months of activity), verify, then serve."""
    with errors():
        start_us = now_us() - days * DAY_US
        # Members join at the start of the simulated months, activity follows the simulator's clock,
        # and closing last month happens today.
        clock = {"now": lambda: start_us}
        ctx = context(db, data_dir, clock=lambda: clock["now"](), key_from_us=start_us, create=True)
        out.print(f"[bold]Entraide demo[/] — database {ctx.settings.database_url}")
        stats = simulation.SimulationStats()
        creds_file = demo_seed.credentials_path(ctx)
        if audit.entry_count(ctx.engine):
            if not creds_file.exists():
                raise ValueError(f"this database was seeded elsewhere: {creds_file} is missing")
            creds = json.loads(creds_file.read_text(encoding="utf-8"))
            out.print("already seeded: verifying and summarizing what is there")
        else:
            with _progress("enrolling members", demo_seed.member_count()) as advance:
                creds = demo_seed.seed_members(ctx, advance, random.Random(seed))
            demo_seed.write_credentials(creds, creds_file)  # before the long part: a rerun finds the members
            items = seed_catalog(ctx, creds, random.Random(seed))
            out.print(f"catalog: {items} offers, municipal services and events, indexed for search")
            sim = demo_seed.new_simulator(seed, days, creds, start_us + days * DAY_US)
            clock["now"] = sim.clock
            with _progress("seeding activity", transfers) as advance:
                stats = simulation.run(ctx.ledger, sim, transfers, 1000, advance, ctx.keystore, fund=False)
            clock["now"] = now_us
            closed = demo_seed.close_last_month(ctx)
            net = sum(c["statement"]["totals"]["net_cents"] for c in closed)
            out.print(f"closed {closed[0]['period']} in {len(closed)} cities: merchants net {cents_text(net)} $")
        clock["now"] = now_us
        demo_seed.write_credentials(demo_seed.grant_tokens(ctx, creds), creds_file)
        made = audit.make_checkpoints(ctx.engine, ctx.signer)
        with _progress("verifying", audit.entry_count(ctx.engine)) as advance:
            report = audit.verify_database(ctx.engine, advance)
        _report_verification(report, "database")
        _summary(ctx, report, len(made), stats)
        if credentials_out is not None:
            demo_seed.write_credentials(creds, credentials_out)
            out.print(f"credentials of {len(creds['merchants'])} terminals, {len(creds['residents'])} residents, "
                      f"{len(creds['organizations'])} organizations and {len(creds['staff'])} city staff: {credentials_out}")  # fmt: skip
        ctx.engine.dispose()
    if serve_api:
        _serve(context(db, data_dir), host, port)


def _summary(ctx: Context, report: dict, checkpoints: int, stats: simulation.SimulationStats) -> None:
    table = Table(title="communities")
    for column in ("ledger", "entries", "budget used", "wallets hold", "redeemed at merchants", "services paid"):
        table.add_column(column, justify="right" if column != "ledger" else "left")
    for name, chain in sorted(report["ledgers"].items()):
        balances = chain["balances"]
        posted = {a: c[1] - c[0] for a, c in balances.items()}
        budget = balances.get(accounts.PROGRAM_BUDGET, (0, 0, 0, 0))
        wallets = sum(v for a, v in posted.items() if accounts.is_wallet(a))
        redeemed = sum(v for a, v in posted.items() if accounts.is_redeemed(a))
        table.add_row(name, f"{chain['entries']:,}", f"{budget[0]:,}", f"{wallets:,}", f"{redeemed:,}", f"{posted.get(accounts.SERVICES_REVENUE, 0):,}")
    out.print(table)
    if stats.transfers:
        refused = ", ".join(f"{c} {n:,}" for c, n in stats.rejected.most_common()) or "none"
        out.print(f"simulated {stats.transfers:,} transfers: {stats.committed:,} committed, refused as the ledger "
                  f"should: {refused}")  # fmt: skip
    out.print(f"{report['entries']:,} entries in {len(report['ledgers'])} ledgers, {checkpoints} checkpoints signed, "
              f"{len(keys.list_keys(ctx.engine))} signing keys.")  # fmt: skip


if __name__ == "__main__":
    app()
