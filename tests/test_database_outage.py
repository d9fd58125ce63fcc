"""PostgreSQL becoming unreachable, then coming back: requests meanwhile are 503 with Retry-After and
write nothing, the outage is logged once with its recovery (no traceback, nothing per request), and
requests succeed again once it is back.

Against the real PostgreSQL server, through a local TCP proxy that the test cuts (every open
connection reset, new ones refused) and restores. PostgreSQL only: SQLite has no server to lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from api.bootstrap import open_context
from api.http.app import create_app, database_unreachable
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit import verify_database
from ledger.service_layer.committer import GroupCommitter, Overloaded
from tests.conftest import BACKENDS
from tests.test_api import assert_problem
from tests.world import World, free_port, standard_world

pytestmark = pytest.mark.parametrize("db_url", [b for b in BACKENDS if b == "postgresql"], indirect=True)


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the database server until `cut()`: then every connection
    through it is reset and new ones are refused, as when the server goes away; `restore()`
    listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        self._close(self._listener)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            self._close(sock, reset=True)

    @staticmethod
    def _close(sock: socket.socket, reset: bool = False) -> None:
        with contextlib.suppress(OSError):  # its pump thread may have closed it already
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a FIN
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
        sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65_536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._sockets.discard(sock)
                self._close(sock)


@pytest.fixture
def proxy(db_url: str) -> Iterator[CuttableProxy]:
    url = make_url(db_url)
    found = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    yield found
    found.cut()


@pytest.fixture
def world(db_url: str, settings, clock, proxy: CuttableProxy, migrated_database) -> Iterator[World]:
    through_proxy = make_url(db_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    ctx = open_context(
        dataclasses.replace(settings, database_url=through_proxy), clock=clock, key_from_us=clock(), create=True
    )
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)
    ctx.engine.dispose()


def entries(world: World) -> int:
    with world.ctx.engine.connect() as conn:
        return sum(h.sequence for h in journal.heads(conn).values())


def requests_of_every_kind(world: World, n: int) -> list:
    """A resident, staff, public and signed POS calls (reads, and a hold that would write)."""
    card = world.residents["alice"].card
    return [
        world.bearer("alice", "GET", "/v1/wallet/balance"),
        world.bearer("alice", "GET", "/v1/wallet/history"),
        world.bearer("staff-brossard", "GET", "/v1/admin/merchants/brossard"),
        world.client.get("/v1/transparency/checkpoints"),
        world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": card}),
        world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 10}, key=f"outage-{n}"),
    ]


def test_an_outage_is_503_logged_once_with_its_recovery(world: World, proxy: CuttableProxy, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert all(r.status_code < 300 for r in requests_of_every_kind(world, 0))
    before = entries(world)

    proxy.cut()
    refused = [r for n in range(1, 4) for r in requests_of_every_kind(world, n)]
    for response in refused:
        assert_problem(response, 503, "database_unavailable")
        assert int(response.headers["retry-after"]) >= 1
    proxy.restore()

    after = requests_of_every_kind(world, 9)
    assert [r.status_code for r in after] == [200, 200, 200, 200, 200, 201]
    assert entries(world) == before + 1  # the one hold after the outage; nothing from during it
    assert verify_database(world.ctx.engine)["ok"]

    assert [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info] == []
    outage = [r.getMessage() for r in caplog.records if r.name == "entraide.api"]
    assert len(outage) == 2, outage
    assert outage[0].startswith("database unavailable (") and outage[0].endswith("): answering 503 until it is back")
    recovered = re.fullmatch(
        r"database available again after [0-9.]+ s; (\d+) requests answered 503 meanwhile", outage[1]
    )
    assert recovered is not None and int(recovered[1]) == len(refused)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == outage[:1]


def test_the_group_committer_gives_each_caller_the_database_error(world: World, proxy: CuttableProxy) -> None:
    committer = GroupCommitter(world.ctx.ledger)
    try:
        funding = TransferRequest("brossard", "seed-outage", "earn_civic", "single", "program:budget",
                                  world.residents["bob"].wallet, 1)  # fmt: skip
        committer.transfer(funding)  # a connection in the pool, which the cut will break
        proxy.cut()
        requests = [TransferRequest("brossard", f"outage-{n}", "earn_civic", "single", "program:budget",
                                    world.residents["bob"].wallet, 1) for n in range(20)]  # fmt: skip
        with ThreadPoolExecutor(20) as pool:
            errors = list(pool.map(lambda r: _error_of(committer, r), requests))
        assert all(isinstance(e, DBAPIError) and database_unreachable(e) for e in errors), errors
        assert len({id(e) for e in errors}) == len(errors)  # one exception object per caller
        proxy.restore()
        assert committer.transfer(requests[0])[0].amount == 1
    finally:
        committer.close()
    assert world.available("bob") == 50 + 2


def _error_of(committer: GroupCommitter, request: TransferRequest) -> BaseException | None:
    try:
        committer.transfer(request)
    except Exception as exc:  # noqa: BLE001  (what the caller gets is the point)
        return exc
    return None


def test_a_signed_hold_during_an_outage_is_503_and_its_retry_succeeds(world: World, proxy: CuttableProxy) -> None:
    body = json.dumps({"card": world.residents["alice"].card, "points": 30}).encode()
    proxy.cut()
    headers = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", body, key="till-7")
    assert_problem(world.client.post("/v1/pos/holds", content=body, headers=headers), 503, "database_unavailable")
    proxy.restore()
    # Nothing was written, not even the nonce: the very same request goes through now.
    assert world.client.post("/v1/pos/holds", content=body, headers=headers).status_code == 201
    assert world.available("alice") == 1_000 - 30


def test_only_errors_of_reaching_the_server_count_as_an_outage(world: World) -> None:
    def error_of(*statements: str) -> DBAPIError:
        with pytest.raises(DBAPIError) as caught, world.ctx.engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
        return caught.value

    # The server ends this very session (as in a shutdown, or an administrator's kill).
    assert database_unreachable(error_of("SELECT pg_terminate_backend(pg_backend_pid())", "SELECT 1"))
    # A request's own failures are not the database being away: they stay 500s, with their traceback.
    assert not database_unreachable(error_of("SET statement_timeout = 1", "SELECT pg_sleep(1)"))
    assert not database_unreachable(error_of("SELECT * FROM no_such_table"))
    assert not database_unreachable(error_of("SELECT 1/0"))


def test_a_commit_that_outlasts_its_callers_is_503_and_the_committer_carries_on(world: World) -> None:
    def award(n: int) -> TransferRequest:
        return TransferRequest(
            "brossard", f"late-{n}", "earn_civic", "single", "program:budget", world.residents["bob"].wallet, 1
        )

    async def both_give_up() -> list[BaseException]:
        first = asyncio.ensure_future(committer.transfer_async(award(1), timeout_seconds=1))
        await asyncio.sleep(0.3)  # the writer has taken the first, and waits on the lock with it
        second = asyncio.ensure_future(committer.transfer_async(award(2), timeout_seconds=0.5))
        return await asyncio.gather(first, second, return_exceptions=True)

    committer = GroupCommitter(world.ctx.ledger)
    try:
        with world.ctx.engine.begin() as blocker:
            journal.lock_ledgers(blocker, ["brossard"])  # the chain's head row, held meanwhile
            outcomes = asyncio.run(both_give_up())
            assert [type(o) for o in outcomes] == [Overloaded, Overloaded]
        # Released: the batch in progress commits, the caller who gave up while queued is skipped,
        # and the writer goes on.
        assert committer.transfer(award(3), timeout_seconds=30)[0].amount == 1
    finally:
        committer.close()
    assert world.available("bob") == 50 + 2
