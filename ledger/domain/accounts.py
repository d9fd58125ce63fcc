"""The ledger's vocabulary: account names, built and read in one place (docs/ledger-format.md,
"Ledgers and accounts"), and their balance rules.

Every name the program writes comes from a constructor here and every name it reads is taken apart
by `parse_account` (or, in loops over a whole journal, by the cheap predicates below it); the Rust
core and the verifier keep their own copy of the rules, which is the format's definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ledger.domain.errors import InvalidAccount, InvalidRequest

LEDGER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
_CITY = r"[a-z0-9][a-z0-9-]{0,62}"

# The program's own accounts, one per ledger.
PROGRAM_FUNDING = "program:funding"  # where the city's budget funding comes from
PROGRAM_BUDGET = "program:budget"  # city-funded issuance; never overdrawn
SERVICES_REVENUE = "services:revenue"  # municipal services paid in points
BREAKAGE = "breakage"  # expired points
SETTLEMENT_CLEARING = "settlement:clearing"  # where a period's close moves merchant and interop positions

# Prefixes, for the SQL that filters a journal by kind of account (`LIKE 'citizen:%'`).
WALLET_PREFIX = "citizen:"
MERCHANT_PREFIX = "merchant:"
ORG_PREFIX = "org:"
INTEROP_PREFIX = "interop:"

AccountKind = Literal["program_funding", "program_budget", "services_revenue", "breakage", "settlement_clearing",
                      "wallet", "merchant_issued", "merchant_redeemed", "org", "interop"]  # fmt: skip
_FIXED: dict[str, AccountKind] = {PROGRAM_FUNDING: "program_funding", PROGRAM_BUDGET: "program_budget",
                                  SERVICES_REVENUE: "services_revenue", BREAKAGE: "breakage",
                                  SETTLEMENT_CLEARING: "settlement_clearing"}  # fmt: skip
ACCOUNT_NAME = re.compile(
    "|".join(re.escape(name) for name in _FIXED)
    + rf"|merchant:(?P<merchant>{_ID}):(?P<side>issued|redeemed)|citizen:(?P<resident>{_ID}):wallet"
    + rf"|org:(?P<org>{_ID})|interop:(?P<city>{_CITY})"
)


def wallet(resident_id: str) -> str:
    """A resident's wallet in their home city's ledger."""
    return f"{WALLET_PREFIX}{resident_id}:wallet"


def merchant_issued(merchant_id: str) -> str:
    """The points a merchant funded (debited when it awards a purchase)."""
    return f"{MERCHANT_PREFIX}{merchant_id}:issued"


def merchant_redeemed(merchant_id: str) -> str:
    """The points redeemed at a merchant, which the program reimburses."""
    return f"{MERCHANT_PREFIX}{merchant_id}:redeemed"


def org(org_id: str) -> str:
    """A community organization, which may receive donated points; never overdrawn."""
    return f"{ORG_PREFIX}{org_id}"


def interop(city: str) -> str:
    """The clearing account, in one city's ledger, of what it owes or is owed by `city`."""
    return f"{INTEROP_PREFIX}{city}"


class Account(NamedTuple):
    """An account name taken apart: its kind and, for the kinds that have one, whose it is (the
    resident, merchant or organization id, or the other city)."""

    kind: AccountKind
    owner: str | None = None


def parse_account(name: str) -> Account:
    """The kind and owner of a valid account name; InvalidAccount for any other string."""
    match = ACCOUNT_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise InvalidAccount(f"invalid account name {name!r}", account=name)
    if name in _FIXED:
        return Account(_FIXED[name])
    if match["merchant"] is not None:
        return Account("merchant_issued" if match["side"] == "issued" else "merchant_redeemed", match["merchant"])
    if match["resident"] is not None:
        return Account("wallet", match["resident"])
    if match["org"] is not None:
        return Account("org", match["org"])
    return Account("interop", match["city"])


# Cheap predicates for loops over a period's or a whole ledger's entries, on names the journal
# holds (valid by construction: every appended name passed `check_account_name`).


def is_wallet(name: str) -> bool:
    return name.startswith(WALLET_PREFIX)


def is_interop(name: str) -> bool:
    return name.startswith(INTEROP_PREFIX)


def is_redeemed(name: str) -> bool:
    """A merchant's redeemed account."""
    return name.endswith(":redeemed") and name.startswith(MERCHANT_PREFIX)


def is_issued(name: str) -> bool:
    """A merchant's issued account."""
    return name.endswith(":issued") and name.startswith(MERCHANT_PREFIX)


def merchant_of(name: str) -> str | None:
    """The merchant id of a merchant account, None for any other account."""
    if not name.startswith(MERCHANT_PREFIX):
        return None
    parts = name.split(":")
    return parts[1] if len(parts) == 3 else None


def interop_city(name: str) -> str:
    """The other city of an `interop:<city>` account."""
    return name[len(INTEROP_PREFIX) :]


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
    return (
        name == PROGRAM_BUDGET
        or name.startswith(ORG_PREFIX)
        or (name.startswith(WALLET_PREFIX) and name.endswith(":wallet"))
    )


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
