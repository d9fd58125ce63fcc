"""Indexing that survives outages: the search outbox, its retries and backoff, and the reindex (CLI too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from ledger.adapters import journal
from marketplace.adapters import store
from marketplace.adapters.search_embedded import EmbeddedSearch
from marketplace.domain.catalog import ItemPatch, ItemSpec
from marketplace.domain.search import SearchQuery
from marketplace.service_layer.catalog import Owner
from marketplace.service_layer.indexing import MAX_RETRY_SECONDS, retry_delay_seconds
from tests.world import standard_world

BAKERY = Owner("brossard", "boulangerie", "merchant:boulangerie")
TART = ItemSpec(title={"fr": "Tarte au sucre", "en": "Sugar pie"}, category="food", price_points=80)


class Flaky:
    """A real backend behind a failing link: the first `failures` calls raise, optionally after applying."""

    name = "flaky"

    def __init__(self, inner: EmbeddedSearch, failures: int, apply_then_fail: bool = False) -> None:
        self.inner, self.failures, self.apply_then_fail = inner, failures, apply_then_fail
        self.calls: list[tuple[list[tuple[str, int]], list[tuple[str, int]]]] = []

    def apply(self, upserts: list[dict], deletes: list[tuple[str, int]]) -> None:
        self.calls.append(([(d["id"], d["version"]) for d in upserts], deletes))
        if self.failures > 0:
            self.failures -= 1
            if self.apply_then_fail:  # applied, but the acknowledgement is lost
                self.inner.apply(upserts, deletes)
            raise ConnectionError("search backend unreachable")
        self.inner.apply(upserts, deletes)

    def search(self, query):
        return self.inner.search(query)

    def rebuild(self, batches):
        return self.inner.rebuild(batches)

    def count(self, item_id: str) -> int:
        return self.inner.count(item_id)


def found(ctx, text: str) -> list[dict]:
    return ctx.search_backend.search(SearchQuery(cities=("brossard",), now_us=ctx.clock(), text=text)).hits


def outbox(ctx, item_id: str) -> list[dict]:
    with ctx.engine.connect() as conn:
        return store.outbox_rows(conn, item_id)


def heads(ctx) -> dict:
    with ctx.engine.connect() as conn:
        return journal.heads(conn)


def test_retry_delays_grow_and_are_bounded():
    assert [retry_delay_seconds(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert retry_delay_seconds(10_000) == MAX_RETRY_SECONDS


def test_a_document_arrives_exactly_once_after_an_outage(ctx, clock, tmp_path: Path) -> None:
    flaky = Flaky(EmbeddedSearch(tmp_path / "index"), failures=4)
    ctx.search_backend = flaky
    standard_world(ctx, None)
    ledger_before = heads(ctx)
    item = ctx.catalog.create(BAKERY, "offer", TART)  # committed; the inline delivery fails
    assert found(ctx, "tarte") == [] and ctx.search_backend.count(item.id) == 0
    waits = []
    while outbox(ctx, item.id)[0]["delivered_at_us"] is None:
        waits.append((outbox(ctx, item.id)[0]["next_attempt_at_us"] - clock()) / 1_000_000)
        clock.advance(waits[-1] - 0.001)
        assert ctx.search_indexer.deliver().batches == 0  # nothing is retried before its time
        clock.advance(0.001)
        ctx.search_indexer.deliver()
        assert len(waits) < 10
    assert waits == [1, 2, 4, 8]  # exponential backoff
    assert len(flaky.calls) == 5 and outbox(ctx, item.id)[0]["attempts"] == 4
    assert ctx.search_backend.count(item.id) == 1 and [h["id"] for h in found(ctx, "tarte")] == [item.id]
    assert heads(ctx) == ledger_before  # search never touches the ledger


def test_changes_during_an_outage_are_sent_once_at_their_newest(ctx, clock, tmp_path: Path) -> None:
    flaky = Flaky(EmbeddedSearch(tmp_path / "index"), failures=1_000)
    ctx.search_backend = flaky
    standard_world(ctx, None)
    item = ctx.catalog.create(BAKERY, "offer", TART)
    for points in (90, 95):
        clock.advance(1)
        ctx.catalog.update(BAKERY, item.id, ItemPatch(price_points=points))
    # Each attempt carries the item's newest version only, never an older pending one.
    assert [ids for ids, _ in flaky.calls] == [[(item.id, 1)], [(item.id, 2)], [(item.id, 3)]]
    flaky.failures, flaky.calls = 0, []
    clock.advance(MAX_RETRY_SECONDS)
    report = ctx.search_indexer.deliver()
    assert report.delivered == 3 and report.sent == 1 and flaky.calls == [([(item.id, 3)], [])]
    assert [h["price_points"] for h in found(ctx, "tarte")] == [95] and ctx.search_backend.count(item.id) == 1


def test_a_lost_acknowledgement_is_not_a_duplicate(ctx, clock, tmp_path: Path) -> None:
    flaky = Flaky(EmbeddedSearch(tmp_path / "index"), failures=1, apply_then_fail=True)
    ctx.search_backend = flaky
    standard_world(ctx, None)
    item = ctx.catalog.create(BAKERY, "offer", TART)
    assert outbox(ctx, item.id)[0]["delivered_at_us"] is None
    clock.advance(1)
    report = ctx.search_indexer.deliver()
    assert report.delivered == 1 and report.sent == 1
    assert len(flaky.calls) == 2 and ctx.search_backend.count(item.id) == 1
    assert len(found(ctx, "sugar")) == 1


def test_withdrawn_items_leave_the_index(ctx, tmp_path: Path) -> None:
    ctx.search_backend = EmbeddedSearch(tmp_path / "index")
    standard_world(ctx, None)
    item = ctx.catalog.create(BAKERY, "offer", TART)
    assert len(found(ctx, "tarte")) == 1
    ctx.catalog.update(BAKERY, item.id, ItemPatch(status="archived"))
    assert found(ctx, "tarte") == [] and ctx.search_backend.count(item.id) == 0
    assert ctx.search_indexer.status()["pending"] == 0


def test_reindex_rebuilds_from_the_database_and_replays_changes(ctx, clock, tmp_path: Path) -> None:
    flaky = Flaky(EmbeddedSearch(tmp_path / "index"), failures=100)  # search is down the whole time
    ctx.search_backend = flaky
    standard_world(ctx, None)
    items = [ctx.catalog.create(BAKERY, "offer", TART) for _ in range(3)]
    draft = ctx.catalog.create(BAKERY, "offer", TART.__class__(**{**_fields(TART), "status": "draft"}))
    assert ctx.search_indexer.status()["pending"] == 4
    flaky.failures = 0
    progress = []
    report = ctx.search_indexer.reindex(progress.append)
    assert report["indexed"] == 3 and sum(progress) == 4
    assert {h["id"] for h in found(ctx, "tarte")} == {i.id for i in items}
    assert ctx.search_backend.count(draft.id) == 0
    assert ctx.search_indexer.status()["pending"] == 0
    assert all(ctx.search_backend.count(i.id) == 1 for i in items)


def _fields(spec: ItemSpec) -> dict:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_reindex_and_deliver(ctx, settings, runner: CliRunner) -> None:
    standard_world(ctx, None)
    item = ctx.catalog.create(BAKERY, "offer", TART)
    options = ["--db", settings.database_url, "--data-dir", str(settings.data_dir)]
    rebuilt = runner.invoke(app, ["search", "reindex", *options])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "1 items indexed in embedded" in rebuilt.output
    assert [h["id"] for h in found(ctx, "tarte")] == [item.id]  # the swapped index, seen from this process
    delivered = runner.invoke(app, ["search", "deliver", *options])
    assert delivered.exit_code == 0 and "0 pending in the outbox" in delivered.output, delivered.output
    assert runner.invoke(app, ["search", "status", *options]).exit_code == 0
    swept = runner.invoke(app, ["search", "sweep", *options])
    assert swept.exit_code == 0 and "0 abandoned reservations" in swept.output
