"""The resident's wallet as they read it: the balance, and a history in business terms.

A journal entry names accounts (`merchant:boulangerie:issued`, `interop:delson`) and a kind
(`earn_purchase`, `service`); a history line says what it was (a purchase, a municipal service),
with whom (the merchant's or organization's name, the item's title) and what it did to the wallet,
with the raw entry beside it. Names come from the members' and the catalog's tables, read once per
page for each distinct id.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection, Engine

from community.adapters import store
from community.adapters.tables import OrganizationRow
from community.schemas import Balance, Counterparty, JournalEntry, WalletHistory, WalletHold, WalletHolds, WalletLine
from ledger.adapters import journal
from ledger.domain import accounts
from ledger.service_layer.transfers import LedgerService
from marketplace.adapters import store as catalog_store
from merchants.adapters.tables import MerchantRow

# What each kind of transfer is, for the resident.
WHAT = {"earn_purchase": "purchase", "earn_civic": "civic_activity", "earn_volunteer": "volunteering",
        "redeem": "redemption", "interop_redeem": "redemption", "service": "municipal_service", "refund": "refund",
        "expiry": "expiry", "donation": "donation"}  # fmt: skip
STATUS = {"single": "posted", "post": "posted", "pending": "held", "void": "released", "expire": "released"}
MARKETPLACE_KINDS = ("redeem", "service")  # a marketplace redemption's hold is of one of these
# The resident's redemptions searched for the page's holds: a hold is made within minutes of its
# redemption, and a page holds at most MAX_PAGE entries.
MAX_REDEMPTIONS_MATCHED = 1_000


class Wallet:
    def __init__(self, engine: Engine, ledger: LedgerService) -> None:
        self.engine, self.ledger = engine, ledger

    def balance(self, resident_id: str, city: str) -> Balance:
        """What the resident may spend now, what is posted, and what open holds reserve."""
        b = self.ledger.balance(city, accounts.wallet(resident_id))
        return Balance(available=b.available, posted=b.posted, pending=-b.pending, city=city)

    def history(self, resident_id: str, city: str, before_sequence: int | None, limit: int,
                after_sequence: int | None = None) -> WalletHistory:  # fmt: skip
        """A page of the wallet's movements, newest first; `before_sequence` is the previous page's
        cursor, `after_sequence` (instead) the newer page's, to page back."""
        assert before_sequence is None or after_sequence is None
        if after_sequence is not None:
            page = self._page(resident_id, city, None, after_sequence, limit)
            if page is not None:
                return page
        found = self._page(resident_id, city, before_sequence, None, limit)
        assert found is not None
        return found

    def _page(self, resident_id: str, city: str, before_sequence: int | None, after_sequence: int | None,
              limit: int) -> WalletHistory | None:  # fmt: skip
        """The page older than `before_sequence`, or newer than `after_sequence` (None if that one
        would be the newest: paging back reads one more to know), or else the newest."""
        account = accounts.wallet(resident_id)
        newest_page = before_sequence is None and after_sequence is None
        extra = 0 if after_sequence is None else 1
        with self.engine.connect() as conn:
            posted = _posted(conn, city, account) if newest_page else None
            rows = journal.account_entries(conn, city, [account], before_sequence=before_sequence,
                                           after_sequence=after_sequence, limit=limit + extra)  # fmt: skip
            if extra and len(rows) <= limit:
                return None
            rows = rows[extra:]
            if posted is not None and _posted(conn, city, account) != posted:
                posted = None  # a transfer landed between the reads: no balance rather than a wrong one
            entries = lines(conn, city, resident_id, rows, posted)
        older = rows[-1]["sequence"] if rows and (len(rows) == limit or after_sequence is not None) else None
        newer = rows[0]["sequence"] if rows and not newest_page else None
        return WalletHistory(entries=entries, next_before_sequence=older, newer_after_sequence=newer)

    def holds(self, resident_id: str, city: str) -> WalletHolds:
        """The wallet's open holds, each with what it is for, where, and when it lapses."""
        with self.engine.connect() as conn:
            rows = journal.hold_entries(conn, city, accounts.wallet(resident_id))
            held = lines(conn, city, resident_id, rows, None)
        return WalletHolds(holds=[WalletHold(line=line, expires_at_us=row["expires_at_us"])
                                  for line, row in zip(held, rows, strict=True)])  # fmt: skip


def _posted(conn: Connection, city: str, account: str) -> int:
    found = journal.balances(conn, [(city, account)]).get((city, account))
    return 0 if found is None else found.posted


def lines(
    conn: Connection, city: str, resident_id: str, rows: list[dict[str, Any]], posted_after: int | None
) -> list[WalletLine]:
    """History lines of `rows` (wallet entries, newest first). With `posted_after`, the wallet's
    posted points after the newest row, each line gets the balance after it."""
    account = accounts.wallet(resident_id)
    names = _Names(conn, resident_id, rows)
    result = []
    for row in rows:
        credited = row["credit_account"] == account
        assert credited or row["debit_account"] == account
        points = row["amount"] if credited else -row["amount"]
        status = STATUS[row["phase"]]
        other = row["debit_account"] if credited else row["credit_account"]
        result.append(WalletLine(
            what=WHAT.get(row["kind"], "other"), status=status, points=points, balance_after_points=posted_after,  # type: ignore[arg-type]
            time_us=row["time_us"], counterparty=names.counterparty(city, other, row), item_title=names.title(row),
            entry=JournalEntry(**{k: row[k] for k in journal.PAGE_FIELDS}),
        ))  # fmt: skip
        if posted_after is not None and status == "posted":
            posted_after -= points
    return result


class _Names:
    """Display names of one page's counterparties, each read once."""

    def __init__(self, conn: Connection, resident_id: str, rows: list[dict[str, Any]]) -> None:
        self.conn = conn
        self.members: dict[tuple[str, str], Counterparty | None] = {}
        self.items = self._redeemed_items(resident_id, rows)
        self.titles: dict[str, dict[str, str] | None] = {}

    def counterparty(self, ledger: str, account: str, row: dict[str, Any]) -> Counterparty | None:
        kind, _, rest = account.partition(":")
        if kind == "merchant":
            return self._member("merchant", rest.rsplit(":", 1)[0])
        if kind == "org":
            return self._member("organization", rest)
        if kind == "interop" and row["group_id"] is not None:
            return self._across(rest, row) or Counterparty(kind="city", id=rest, name=rest)
        if account == "program:budget":  # city-funded: an organization attested it, or the city itself
            award = store.award(self.conn, ledger, row["transfer_id"])
            if award is not None and award["source"] == "civic":
                return self._member("organization", award["actor_id"])
            return Counterparty(kind="city", id=ledger, name=ledger)
        if account == "services:revenue":
            return Counterparty(kind="city", id=ledger, name=ledger)
        return None

    def _across(self, other_city: str, row: dict[str, Any]) -> Counterparty | None:
        """Who stood on the other city's half of a linked transfer (cross-city earning or redemption)."""
        for half in journal.linked_entries(self.conn, row["group_id"]):
            if half["ledger"] == other_city:
                far = half["credit_account"] if half["debit_account"].startswith("interop:") else half["debit_account"]
                return self.counterparty(other_city, far, half)
        return None

    def _member(self, kind: Literal["merchant", "organization"], member_id: str) -> Counterparty | None:
        if (kind, member_id) not in self.members:
            table = MerchantRow.__table__ if kind == "merchant" else OrganizationRow.__table__
            row = store.member(self.conn, table, member_id)
            self.members[kind, member_id] = (
                None if row is None else Counterparty(kind=kind, id=member_id, name=row["name"])
            )
        return self.members[kind, member_id]

    def _redeemed_items(self, resident_id: str, rows: list[dict[str, Any]]) -> dict[str, str]:
        """The catalog item behind each marketplace hold of the page, by the hold's transfer id."""
        if not any(r["kind"] in MARKETPLACE_KINDS for r in rows):
            return {}
        newest_us = max(r["time_us"] for r in rows)
        found = catalog_store.redemptions_of(self.conn, resident_id, newest_us + 1, MAX_REDEMPTIONS_MATCHED)
        return {transfer_id: r["item_id"] for r in found for _, transfer_id in r["hold"]}

    def title(self, row: dict[str, Any]) -> dict[str, str] | None:
        hold_id = row["transfer_id"] if row["phase"] == "pending" else row["ref"]
        item_id = self.items.get(hold_id) if row["kind"] in MARKETPLACE_KINDS else None
        if item_id is None:
            return None
        if item_id not in self.titles:
            item = catalog_store.item(self.conn, item_id)
            self.titles[item_id] = None if item is None else item["title"]
        return self.titles[item_id]
