"""Who did what at a merchant: the city's audit records about it, for its owner (`/portal/activity`,
`GET /v1/merchants/activity`): done to the merchant, its terminals, its offers or its owners'
principals, or done by its terminals or its owners (merchants.adapters.store.merchant_activity)."""

from __future__ import annotations

from sqlalchemy import Engine

from ledger.service_layer.audit_trail import record_view
from merchants.adapters import store
from merchants.schemas import MerchantActivity

MAX_ACTIVITY_PAGE = 200


def activity(engine: Engine, city: str, merchant_id: str, before_seq: int | None, limit: int) -> MerchantActivity:
    """A page of the merchant's records, newest first, before `before_seq` (None: the newest)."""
    assert 1 <= limit <= MAX_ACTIVITY_PAGE
    with engine.connect() as conn:
        entries = [record_view(r) for r in store.merchant_activity(conn, city, merchant_id, before_seq, limit)]
    return MerchantActivity(entries=entries, next_before_seq=entries[-1].seq if len(entries) == limit else None)
