"""Request bodies (msgspec structs): types and bounds are checked before any handler runs.

Unknown fields are refused, so a typo in a field name is an error rather than a silent default.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, ValidationException

from community.domain.program import CATEGORIES
from marketplace.domain.catalog import MAX_UNITS_PER_REDEMPTION, Location

Points = Annotated[int, msgspec.Meta(ge=1, le=10**12)]
Cents = Annotated[int, msgspec.Meta(ge=1, le=10**9)]
Card = Annotated[str, msgspec.Meta(min_length=16, max_length=4096)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
TransferId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
CITY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
CityName = Annotated[str, msgspec.Meta(pattern=CITY_PATTERN)]
MemberId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Level = Annotated[str, msgspec.Meta(pattern=r"^(basic|verified|checked)$")]
Status = Annotated[str, msgspec.Meta(pattern=r"^(pending|approved|suspended)$")]
Category = Annotated[str, msgspec.Meta(pattern="^(" + "|".join(CATEGORIES) + ")$")]


class Struct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class CardBody(Struct, frozen=True):
    card: Card


class AwardBody(Struct, frozen=True):
    card: Card
    purchase_cents: Cents


class HoldBody(Struct, frozen=True):
    card: Card
    points: Points


class CaptureBody(Struct, frozen=True):
    points: Points | None = None  # None captures the whole hold


class VoidBody(Struct, frozen=True):
    pass


class RefundBody(Struct, frozen=True):
    transfer_id: TransferId
    points: Points | None = None  # None refunds all that is left


class OfflineItem(Struct, frozen=True):
    """A redemption (`points`) or a purchase to award (`purchase_cents`) recorded while offline."""

    idempotency_key: Key
    card: Card
    points: Points | None = None
    purchase_cents: Cents | None = None
    # When the sale happened at the till (microseconds since the epoch), covered by the batch's signature.
    occurred_at_us: Annotated[int, msgspec.Meta(ge=0, le=2**62)] | None = None


class OfflineBatch(Struct, frozen=True):
    items: Annotated[list[OfflineItem], msgspec.Meta(min_length=1, max_length=500)]


class AttestationBody(Struct, frozen=True):
    card: Card
    activity: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    units: Annotated[int, msgspec.Meta(ge=1, le=1_000)]


class OptInBody(Struct, frozen=True):
    city: CityName


class PersonalData(Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=400)] | None = None
    language: Annotated[str, msgspec.Meta(pattern=r"^(fr|en|es)$")] | None = None


class EnrolBody(Struct, frozen=True):
    personal: PersonalData
    level: Level = "basic"
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None


class LevelBody(Struct, frozen=True):
    level: Level
    evidence: Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="what staff saw (a document, a visit), kept in the audit trail")] | None = None  # fmt: skip


class MemberBody(Struct, frozen=True):
    id: MemberId
    name: Name


class MerchantBody(Struct, frozen=True):
    id: MemberId
    name: Name
    category: Category


class StatusBody(Struct, frozen=True):
    status: Status


class TerminalBody(Struct, frozen=True):
    public_key_pem: Annotated[str, msgspec.Meta(min_length=40, max_length=1_000)]


DeviceName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class PairingCodeBody(Struct, frozen=True):
    name: DeviceName | None = None


class TerminalNameBody(Struct, frozen=True):
    """A terminal's new name (null: no name)."""

    name: DeviceName | None


class PairingBody(Struct, frozen=True):
    """A device pairing itself as a terminal: the one-time code, its raw Ed25519 public key (base64)."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    public_key: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9+/]{43}=$", description="the raw 32-byte key, base64")]
    name: DeviceName | None = None


class FundingBody(Struct, frozen=True):
    points: Points


Role = Annotated[str, msgspec.Meta(pattern=r"^(org|merchant|staff|finance|auditor|admin)$")]
Subject = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")]


class TokenBody(Struct, frozen=True):
    role: Role
    subject: Subject
    org_id: MemberId | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=90 * 86_400)] = 3_600
    merchant_id: MemberId | None = None


class PrincipalBody(Struct, frozen=True):
    role: Role
    subject: Subject


class PrincipalActivationBody(Struct, frozen=True):
    """Who is to sign in on the web: a merchant's owner (naming its merchant) or a program officer."""

    role: Annotated[str, msgspec.Meta(pattern=r"^(merchant|staff|finance|auditor|admin)$")]
    subject: Subject
    merchant_id: MemberId | None = None


class ProviderLinkBody(Struct, frozen=True):
    """A principal and its account at the city's identity provider (the ID token's `sub`)."""

    role: Annotated[str, msgspec.Meta(pattern=r"^(merchant|staff|finance|auditor|admin)$")]
    subject: Subject
    provider_subject: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


ItemId = Annotated[str, msgspec.Meta(pattern=r"^i[0-9a-f]{24}$")]


class ShopBody(Struct, frozen=True):
    is_open: bool
    location: Location | None = None


class RedeemBody(Struct, frozen=True):
    item_id: ItemId
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_UNITS_PER_REDEMPTION)] = 1


class SuspensionBody(Struct, frozen=True):
    suspended: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


async def check_body_strictly(request: Request) -> None:
    """Decode the JSON body strictly against the handler's `data` type.

    litestar converts loosely (it must, for query strings), which would take `"10"` for 10; a money
    endpoint must refuse a string where an integer belongs. Called by the authentication
    dependencies, once the caller is known, so a stranger learns nothing about the schema.
    """
    check_body(request, await request.body())


def check_body(request: Request, raw: bytes) -> None:
    """`check_body_strictly` on a body already read (a signed request checks it before claiming its nonce)."""
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return
    if not raw and parameter.is_optional:
        return
    try:
        msgspec.json.decode(raw, type=parameter.annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationException(str(exc), extra=[{"message": str(exc)}]) from None
    except msgspec.DecodeError:
        raise ClientException("malformed JSON") from None


class CorrectionBody(Struct, frozen=True):
    """A staff correction: what it corrects (`target`: an attestation's transfer id, a service or event
    redemption's id, or a resident's id for `wallet`), how many points, why; `direction` for `wallet` only."""

    kind: Annotated[str, msgspec.Meta(pattern=r"^(attestation|redemption|wallet)$")]
    target: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    points: Points
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    direction: Annotated[str, msgspec.Meta(pattern=r"^(credit|debit)$")] | None = None
