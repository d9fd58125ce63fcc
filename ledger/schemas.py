"""The base of every result a service returns: a msgspec struct, which the API encodes as it is and
documents field by field in the OpenAPI document, and which the web pages render.

Each package keeps its results in its own `schemas.py` (`ledger/`, `community/`, `merchants/`,
`marketplace/`, `finance/`, `operations/`). A field's unit is in its name (`points`, `amount_cents`,
`time_us` for microseconds since the epoch) and its meaning in `msgspec.Meta(description=...)`;
the struct's docstring becomes the schema's description.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class Result(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A service's answer: immutable, keyword-built, and strict when a client decodes it."""


# Units every package shares, each with its bounds and meaning.
Points = Annotated[int, msgspec.Meta(description="points (integer)")]
Cents = Annotated[int, msgspec.Meta(description="an amount of money in cents of the program's currency (integer)")]
TimeUs = Annotated[int, msgspec.Meta(ge=0, description="microseconds since the Unix epoch (UTC)")]
Sequence = Annotated[int, msgspec.Meta(ge=1, description="a position in a ledger's hash chain, from 1")]


# --- the audit trail --------------------------------------------------------------------------


class AuditEntry(Result):
    """One record of a city's audit trail: who did what to what, the state before and after, and
    the fields that chain and sign it (checkable with the keys of /v1/transparency)."""

    city: Annotated[str, msgspec.Meta(description="the city whose trail this is")]
    seq: Annotated[int, msgspec.Meta(ge=1, description="the record's position in the city's trail, from 1")]
    at_us: TimeUs
    actor: Annotated[str, msgspec.Meta(description="who acted (`role:subject/credential`, `cli:<user>`)")]
    action: Annotated[str, msgspec.Meta(description="what was done (`resident.enroll`, `program.configure`, …)")]
    target: Annotated[str, msgspec.Meta(description="what it was done to")]
    before: Annotated[Any, msgspec.Meta(description="the target's state before (JSON), or null")]
    after: Annotated[Any, msgspec.Meta(description="the target's state after (JSON), or null")]
    prev_hash: Annotated[str, msgspec.Meta(description="the previous record's hash (hex)")]
    hash: Annotated[str, msgspec.Meta(description="this record's hash (hex)")]
    key_id: Annotated[str | None, msgspec.Meta(description="the signing key's id (null on unsigned legacy records)")]
    signature: Annotated[str | None, msgspec.Meta(description="the hash's Ed25519 signature (hex), or null")]


class AuditPage(Result):
    """A page of a city's audit trail, in order."""

    entries: list[AuditEntry]
    next_after_seq: Annotated[int | None, msgspec.Meta(description="pass as `after_seq` for the next page; null at the end")]
