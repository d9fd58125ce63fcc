"""Account names and their balance rules (docs/ledger-format.md, "Ledgers and accounts")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger.domain.errors import InvalidAccount, InvalidRequest

LEDGER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
ACCOUNT_NAME = re.compile(
    rf"program:funding|program:budget|services:revenue|breakage|settlement:clearing"
    rf"|merchant:{_ID}:(?:issued|redeemed)|citizen:{_ID}:wallet|org:{_ID}|interop:[a-z0-9][a-z0-9-]{{0,62}}"
)


def check_ledger_name(name: str) -> str:
    if not isinstance(name, str) or not LEDGER_NAME.fullmatch(name):
        raise InvalidRequest(f"invalid ledger name {name!r}", field="ledger", reason="invalid_value")
    return name


def check_account_name(name: str) -> str:
    if not isinstance(name, str) or not ACCOUNT_NAME.fullmatch(name):
        raise InvalidAccount(f"invalid account name {name!r}", account=name)
    return name


def is_non_negative(name: str) -> bool:
    """Wallets, organizations and the budget may never be overdrawn; other accounts are unbounded."""
    return name == "program:budget" or name.startswith("org:") or (name.startswith("citizen:") and name.endswith(":wallet"))


@dataclass
class Balance:
    """The four counters of an account, as stored and as replayed (TigerBeetle's model)."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def pending(self) -> int:
        return self.credits_pending - self.debits_pending

    @property
    def available(self) -> int:
        """What can be spent: posted credits minus posted and reserved debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending)

    def copy(self) -> Balance:
        return Balance(*self.as_tuple())
