"""The journal in the database: append-only triggers, projections equal to the replay, determinism."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.bootstrap import Settings, open_context
from ledger import oracle
from ledger.adapters import journal
from ledger.adapters.database import text_array
from ledger.service_layer import audit, simulation
from ledger.simulate import Simulator
from tests.conftest import BACKENDS

START_US = 1_767_225_600_000_000


def simulated(ctx, clock, transfers: int = 1500, seed: int = 7):
    sim = Simulator(seed, START_US, days=30)
    ctx.ledger.clock = sim.clock
    return simulation.run(ctx.ledger, sim, transfers, batch_size=250, keystore=ctx.keystore)


HISTORY_CHANGES = [
    "UPDATE journal SET amount = amount + 1 WHERE sequence = 1",
    "UPDATE journal SET signature = 'x'",
    "DELETE FROM journal WHERE sequence = 2",
    "DELETE FROM journal",
    "UPDATE checkpoints SET root_hash = 'x'",
    "DELETE FROM checkpoints",
]
# SQLite has no TRUNCATE. A plain TRUNCATE of checkpoints is refused already by the cosignatures'
# foreign key (below); with CASCADE it reaches the append-only trigger.
POSTGRES_ONLY = ["TRUNCATE journal", "TRUNCATE checkpoints CASCADE"]


def test_database_refuses_to_change_history(ctx, clock):
    simulated(ctx, clock, transfers=50)
    audit.make_checkpoints(ctx.engine, ctx.signer, clock)
    before = audit.entry_count(ctx.engine)
    statements = HISTORY_CHANGES + (POSTGRES_ONLY if ctx.engine.dialect.name == "postgresql" else [])
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), ctx.engine.begin() as conn:
            conn.execute(text(statement))
    if ctx.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="cosignatures"), ctx.engine.begin() as conn:
            conn.execute(text("TRUNCATE checkpoints"))
    assert audit.entry_count(ctx.engine) == before
    assert audit.verify_database(ctx.engine)["ok"]


def test_projection_equals_the_oracle_replay_of_the_journal(ctx, clock):
    stats = simulated(ctx, clock)
    assert stats.committed > 1000 and stats.rotated_keys
    with ctx.engine.begin() as conn:
        rows = [row for chunk in journal.stream_entries(conn) for row in chunk]
        replayed = oracle.replay(row[:13] for row in rows)
        for ledger, accounts in replayed.items():
            stored = {name: b.as_tuple() for name, b in journal.all_balances(conn, ledger).items()}
            assert stored == accounts
            posted = sum(c[1] - c[0] for c in accounts.values())
            pending = sum(c[3] - c[2] for c in accounts.values())
            assert posted == 0 and pending == 0
            for name, (dp, cp, dpend, _) in accounts.items():
                if oracle.is_non_negative(name):
                    assert dp + dpend <= cp, name
    verifier = oracle.ChainVerifier(audit.verifier_keys(audit.keys_document(ctx.engine)))
    verifier.feed(rows)
    assert verifier.finish()["ok"]


def behind_the_triggers(ctx, table: str, statement: str) -> None:
    """What someone with database superpowers can do: the append-only triggers of `table` set aside,
    one statement run."""
    with ctx.engine.begin() as conn:
        if ctx.engine.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        conn.execute(text(statement))


def test_tampering_in_the_database_is_found(ctx, clock, tmp_path):
    """Someone with database superpowers drops the trigger and edits an amount."""
    simulated(ctx, clock, transfers=200)
    assert audit.verify_database(ctx.engine)["ok"]
    behind_the_triggers(
        ctx, "journal", "UPDATE journal SET amount = amount + 1 WHERE ledger = 'magog' AND sequence = 5"
    )
    report = audit.verify_database(ctx.engine)
    assert not report["ok"]
    assert (report["error"]["ledger"], report["error"]["sequence"], report["error"]["code"]) == (
        "magog",
        5,
        "hash_mismatch",
    )


def test_projection_tampering_is_found(ctx, clock):
    simulated(ctx, clock, transfers=200)
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE accounts SET credits_posted = credits_posted + 5 WHERE name = 'program:funding' AND ledger = 'brossard'"
            )
        )
    report = audit.verify_database(ctx.engine)
    assert report["error"]["code"] == "projection_mismatch" and report["error"]["ledger"] == "brossard"


def test_same_seed_gives_the_same_journal(clock, tmp_path):
    heads = []
    for run in range(2):
        run_settings = Settings(tmp_path / f"run{run}", str(tmp_path / f"run{run}.db"), tmp_path / "shared-keys")
        ctx = open_context(run_settings, clock=clock, key_from_us=START_US, create=True)
        sim = Simulator(11, START_US, days=10)
        ctx.ledger.clock = sim.clock
        simulation.run(ctx.ledger, sim, 400, batch_size=100)
        with ctx.engine.begin() as conn:
            heads.append({name: (h.sequence, h.hash) for name, h in journal.heads(conn).items()})
        ctx.engine.dispose()
    assert heads[0] == heads[1] and sum(seq for seq, _ in heads[0].values()) > 400


@pytest.mark.parametrize("db_url", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_array_literals_round_trip_through_postgresql(ctx):
    """Batches send their keys to PostgreSQL as array literals (`text_array`): quotes, backslashes,
    commas, braces, spaces, the word NULL and non-ASCII text come back exactly. (SQLite takes the
    keys as bound parameters: this runs on PostgreSQL only.)"""

    cases = [
        (["plain", 'a"b', "c\\d", "x,y", "{z}", " pad ", "NULL", "", "é€"], "text[]"),
        ([0, -1, 2**62], "bigint[]"),
        ([True, False], "boolean[]"),
        ([], "text[]"),
    ]
    with ctx.engine.connect() as conn:
        for values, sql_type in cases:
            assert conn.execute(text(f"SELECT CAST(:v AS {sql_type})"), {"v": text_array(values)}).scalar() == values


def test_pair_lookups_find_every_pair_across_ledgers_and_chunks(ctx, clock, monkeypatch):
    """The batch lookups by (ledger, id) return exactly the stored pairs, also past one chunk."""
    monkeypatch.setattr(journal, "IN_CHUNK", 7)
    monkeypatch.setattr(journal, "ARRAY_CHUNK", 7)
    simulated(ctx, clock, transfers=120)
    with ctx.engine.connect() as conn:
        stored = [(r[0], r[2]) for chunk in journal.stream_entries(conn) for r in chunk]
        wanted = stored[::3] + [("nowhere", "0" * 32), (stored[0][0], "f" * 32)]
        found = journal.transfers(conn, wanted)
    assert set(found) == set(stored[::3])
    assert all(found[key]["transfer_id"] == key[1] for key in found)


def test_batch_reads_sent_together_equal_the_lookups_one_by_one(ctx, clock, monkeypatch):
    """The lookups an append sends together (pipelined on PostgreSQL) read what each reads alone,
    past one chunk too, and the connection goes on working after the pipeline."""
    monkeypatch.setattr(journal, "IN_CHUNK", 7)
    monkeypatch.setattr(journal, "ARRAY_CHUNK", 7)
    simulated(ctx, clock, transfers=400)
    with ctx.engine.begin() as conn:
        rows = [row for chunk in journal.stream_entries(conn) for row in chunk]
        ids = [(r[0], r[2]) for r in rows[::5]] + [("nowhere", "0" * 32)]
        holds = [(r[0], r[2]) for r in rows if r[4] == "pending"] + [(r[0], r[8]) for r in rows if r[4] == "post"][:5]
        refunds = [(r[0], r[2]) for r in rows if r[4] in ("post", "single")][::4] + [
            (r[0], r[8]) for r in rows if r[8]
        ][:5]
        accounts = {(r[0], a) for r in rows[::3] for a in (r[5], r[6])} | {("brossard", "citizen:nobody:wallet")}
        read = journal.batch_reads(conn, ids, holds, refunds, accounts)
        assert read.transfers == journal.transfers(conn, ids) and len(read.transfers) == len(ids) - 1
        assert read.holds == journal.holds(conn, holds) and read.holds
        assert read.resolutions == journal.resolutions(conn, holds) and read.resolutions
        assert read.originals == journal.originals(conn, refunds) and read.originals
        amounts = {(r[0], r[2]): r[7] for r in rows}
        assert any(o.remaining < amounts[key] for key, o in read.originals.items())  # some were partly refunded
        assert read.balances == journal.balances(conn, accounts) and len(read.balances) == len(accounts) - 1
        assert conn.execute(text("SELECT count(*) FROM journal")).scalar() == len(rows)
        # Where libpq has no pipeline mode, the same lookups simply run one after the other.
        monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
        assert journal.batch_reads(conn, ids, holds, refunds, accounts) == read
