"""/v1/orgs: community organizations attest civic activity."""

from __future__ import annotations

from litestar import Router, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import bearer_principal
from api.http.params import Ctx, IdempotencyKey, Who, idempotency_key
from community.domain.errors import Forbidden
from merchants.schemas import AwardResult


@post("/attestations", sync_to_thread=True, status_code=201, summary="Attest a civic activity",
      operation_id="orgs_attest_activity",
      problems=("organization_not_approved", "unknown_organization", "unknown_card", "card_revoked", "card_expired",
                "card_key_retired", "resident_expired", "resident_erased", "not_opted_in", "level_required", "invalid_program",
                "invalid_request", "budget_exceeded", "unknown_program"))  # fmt: skip
def attest(data: JSONBody[schemas.AttestationBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> AwardResult:
    """Attest a civic activity of the resident whose card is presented: city-funded points (from the
    program budget, which cannot be exceeded), gated by the resident's level, within the caps. An
    approved organization's coordinator only; a retry with the same Idempotency-Key answers the first award."""
    principal.require("org")
    if principal.org_id is None:
        raise Forbidden("the token names no organization")
    return ctx.attestations.attest(principal.org_id, idempotency_key(key), data.card, data.activity, data.units)


orgs = Router("/v1/orgs", route_handlers=[attest], dependencies={"principal": Provide(bearer_principal)}, tags=["orgs"])


ROUTERS = [orgs]
