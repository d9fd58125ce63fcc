"""/v1/orgs: community organizations attest civic activity."""

from __future__ import annotations

from litestar import Router, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import bearer_principal
from api.http.params import Ctx, IdempotencyKey, Who, idempotency_key
from community.domain.errors import Forbidden


@post("/attestations", sync_to_thread=True, status_code=201)
def attest(data: JSONBody[schemas.AttestationBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Attest a civic activity: city-funded points, gated by the resident's level, within the budget."""
    principal.require("org")
    if principal.org_id is None:
        raise Forbidden("the token names no organization")
    return ctx.attestations.attest(principal.org_id, idempotency_key(key), data.card, data.activity, data.units)


orgs = Router("/v1/orgs", route_handlers=[attest], dependencies={"principal": Provide(bearer_principal)}, tags=["orgs"])


ROUTERS = [orgs]
