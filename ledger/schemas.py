"""The base of every result a service returns: a msgspec struct, which the API encodes as it is and
documents field by field in the OpenAPI document, and which the web pages render.

Each package keeps its results in its own `schemas.py` (`ledger/`, `community/`, `merchants/`,
`marketplace/`, `finance/`, `operations/`). A field's unit is in its name (`points`, `amount_cents`,
`time_us` for microseconds since the epoch) and its meaning in `msgspec.Meta(description=...)`;
the struct's docstring becomes the schema's description.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class Result(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A service's answer: immutable, keyword-built, and strict when a client decodes it."""


# Units every package shares, each with its bounds and meaning.
Points = Annotated[int, msgspec.Meta(description="points (integer)")]
Cents = Annotated[int, msgspec.Meta(description="an amount of money in cents of the program's currency (integer)")]
TimeUs = Annotated[int, msgspec.Meta(ge=0, description="microseconds since the Unix epoch (UTC)")]
Sequence = Annotated[int, msgspec.Meta(ge=1, description="a position in a ledger's hash chain, from 1")]
