"""Handler parameters every router shares: injected dependencies, the Idempotency-Key header, page limits."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter

from api.auth import Principal
from api.bootstrap import Context
from ledger.domain.errors import InvalidRequest

MAX_PAGE = 200
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False, max_length=128)]
PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
Ctx = NamedDependency[Context]
Who = NamedDependency[Principal]


class IdempotencyKeyRequired(InvalidRequest):
    code = "idempotency_key_required"


def idempotency_key(value: str | None) -> str:
    """The header's value, required on every money-moving POST: printable, no spaces."""
    if not value or not value.isprintable() or " " in value:
        raise IdempotencyKeyRequired("an Idempotency-Key header is required")
    return value
