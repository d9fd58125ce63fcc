"""Handler parameters every router shares: injected dependencies, the Idempotency-Key header, and the
type of every query and path parameter, each with its bounds.

Every handler takes its parameters from here, so that none reaches a service or a query unbounded:
litestar refuses a value out of bounds with a 400 `validation_error` before the handler runs.
Integers stay within the databases' 64-bit integers (a larger one cannot even be bound: it used to
answer 500), identifiers are printable ASCII (PostgreSQL refuses a NUL in text).
`tests/test_params.py` walks every route and checks both.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar.di import NamedDependency
from litestar.params import HeaderParameter, Parameter, QueryParameter

from api.bootstrap import Context
from api.http.auth import Principal
from api.http.schemas import CITY_PATTERN
from finance.schemas import PERIOD_PATTERN
from finance.schemas import ChangeStatus as ChangeStatusValue
from finance.service_layer.collections import InvoiceFormat as InvoiceFormatValue
from finance.service_layer.exports import ExportFormat as ExportFormatValue
from ledger.domain.errors import InvalidRequest
from marketplace.domain import search
from marketplace.service_layer import redemptions

MAX_PAGE = 200
BIGINT_MAX = 2**63 - 1  # PostgreSQL's BIGINT, SQLite's INTEGER
MAX_POINTS_FILTER = 10**9
MAX_ID_LENGTH = 128
_PRINTABLE = r"[\x21-\x7e]"

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False, max_length=128)]
AcceptLanguage = Annotated[str | None, HeaderParameter(name="Accept-Language", required=False, max_length=1_000)]
Ctx = NamedDependency[Context]
Who = NamedDependency[Principal]

# --- path parameters ------------------------------------------------------------------------------

City = Annotated[str, Parameter(pattern=CITY_PATTERN)]
# Any other identifier in a path (a resident, card, hold, item, key, merchant, period, redemption):
# the service decides whether it exists; here it is only kept printable and short.
Id = Annotated[str, Parameter(pattern=f"^{_PRINTABLE}{{1,{MAX_ID_LENGTH}}}$")]
Period = Annotated[str, Parameter(pattern=PERIOD_PATTERN, description="a calendar month, YYYY-MM")]
OptionalPeriod = Annotated[str | None, QueryParameter(pattern=PERIOD_PATTERN, description="a calendar month, YYYY-MM")]
SequencePath = Annotated[int, Parameter(ge=1, le=BIGINT_MAX, description="a position in a ledger's chain, from 1")]

# --- query parameters -----------------------------------------------------------------------------

PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
RedemptionPageLimit = Annotated[int, QueryParameter(ge=1, le=redemptions.MAX_REDEMPTION_PAGE)]
SearchPageLimit = Annotated[int, QueryParameter(ge=1, le=search.MAX_SEARCH_PAGE)]
SearchOffset = Annotated[int, QueryParameter(ge=0, le=search.MAX_OFFSET)]
TimeUs = Annotated[int, QueryParameter(ge=0, le=BIGINT_MAX)]  # µs since the epoch
OptionalTimeUs = Annotated[int | None, QueryParameter(ge=0, le=BIGINT_MAX)]
Sequence = Annotated[int, QueryParameter(ge=0, le=BIGINT_MAX)]  # a position in a chain
OptionalSequence = Annotated[int | None, QueryParameter(ge=0, le=BIGINT_MAX)]
PointsFilter = Annotated[int | None, QueryParameter(ge=0, le=MAX_POINTS_FILTER)]
RadiusM = Annotated[int | None, QueryParameter(ge=1, le=search.MAX_RADIUS_M)]
Latitude = Annotated[float | None, QueryParameter(ge=-90, le=90)]
Longitude = Annotated[float | None, QueryParameter(ge=-180, le=180)]
Cursor = Annotated[str, QueryParameter(pattern=f"^{_PRINTABLE}{{0,{MAX_ID_LENGTH}}}$")]  # the last id of a page
SearchText = Annotated[str, QueryParameter(max_length=search.MAX_QUERY_CHARS)]
Sort = Annotated[str, QueryParameter(pattern=r"^(relevance|price_asc|price_desc|distance)$")]
ListParam = Annotated[str, QueryParameter(max_length=1_000, pattern=r"^[a-z0-9,_-]*$")]  # comma-separated names
Flag = Annotated[bool, QueryParameter()]
OptionalRole = Annotated[str | None, QueryParameter(pattern=r"^[a-z]{1,16}$")]
OptionalSubject = Annotated[str | None, QueryParameter(pattern=f"^{_PRINTABLE}{{1,64}}$")]
ChangeStatus = Annotated[ChangeStatusValue | None, QueryParameter()]
Decision = Annotated[Literal["confirm", "reject"], Parameter()]  # a path segment
CorrectionDecision = Annotated[Literal["approve", "reject"], Parameter()]  # a path segment
CorrectionStatus = Annotated[Literal["pending", "posted", "rejected"] | None, QueryParameter()]
ExportFormat = Annotated[ExportFormatValue, QueryParameter()]
OpenDataFormat = Annotated[Literal["json", "csv"], QueryParameter()]
DocumentFormat = OpenDataFormat  # a file as json or csv (the inter-city settlement file)
InvoiceFormat = Annotated[InvoiceFormatValue, QueryParameter()]
OptionalCity = Annotated[str | None, QueryParameter(pattern=CITY_PATTERN)]
# A filter as typed (no control character); a date field's value (YYYY-MM-DD) or empty.
FilterText = Annotated[str, QueryParameter(pattern=r"^[^\x00-\x1f\x7f]{0,160}$")]
OptionalDay = Annotated[str, QueryParameter(pattern=r"^(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))?$")]
# What a page says after its form was sent (POST-redirect-GET), e.g. `?done=joined`: a word the page knows.
DoneNotice = Annotated[str | None, QueryParameter(pattern=r"^[a-z-]{1,32}$")]
# What a program officer typed to find a resident: a resident id or a card number, matched exactly.
ResidentLookup = Annotated[str, QueryParameter(max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$")]  # no NUL
# A terminal pairing code as shown (`7KQD-M2XA`) or typed (any case, spaces or dashes).
PairingCodeQuery = Annotated[str, QueryParameter(pattern=r"^[A-Za-z0-9 -]{1,32}$")]


def split_list(value: str) -> tuple[str, ...]:
    """A `ListParam`'s names."""
    return tuple(v for v in value.split(",") if v)


class IdempotencyKeyRequired(InvalidRequest):
    code = "idempotency_key_required"


def idempotency_key(value: str | None) -> str:
    """The header's value, required on every money-moving POST: printable, no spaces."""
    if not value or not value.isprintable() or " " in value:
        raise IdempotencyKeyRequired("an Idempotency-Key header is required")
    return value


# --- the public log (C2SP tlog-tiles) --------------------------------------------------------------

# No pattern: a path outside the tlog-tiles encoding names no tile, and answers 404 as a static log would.
MAX_TILE_PATH = 100
TilePath = Annotated[str, Parameter(max_length=MAX_TILE_PATH, description=(
    "`<L>/<N>[.p/<W>]`: level L (0-63), index N in 3-digit elements, all but the last prefixed with x "
    "(1234067 is x001/x234/067), and for a partial tile its width W (1-255)"))]  # fmt: skip
BundlePath = Annotated[str, Parameter(max_length=MAX_TILE_PATH, description=(
    "`<N>[.p/<W>]`: the bundle's index N, encoded as in tile paths, and for a partial bundle its width W"))]  # fmt: skip

# The pages' sign-in through a city's identity provider (web/routes/oidc.py): where to land after
# (a path of this site, else the wallet: web.pages.local_target), and the provider's answer.
NextPath = Annotated[str | None, QueryParameter(max_length=2_000)]
OAuthState = Annotated[str | None, QueryParameter(name="state", max_length=512)]
OAuthCode = Annotated[str | None, QueryParameter(max_length=2_048)]
OAuthError = Annotated[str | None, QueryParameter(pattern=r"^[\x20-\x7e]{1,128}$")]  # RFC 6749 §4.1.2.1
SignInProblem = Annotated[str, QueryParameter(pattern=r"^[a-z_]{0,64}$")]
