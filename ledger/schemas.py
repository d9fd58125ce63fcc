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


# --- what anyone needs to check the ledger: its keys and checkpoints ------------------------------


class SigningKey(Result, frozen=True):
    """A ledger signing key, current or retired: entries signed with it verify with `public_key`."""

    key_id: Annotated[str, msgspec.Meta(description="the key id entries and checkpoints name")]
    algorithm: Annotated[str, msgspec.Meta(description="the signature algorithm (ed25519)")]
    public_key: Annotated[str, msgspec.Meta(description="the raw public key, hex")]
    valid_from_us: TimeUs
    valid_until_us: Annotated[TimeUs | None, msgspec.Meta(description="when it was retired; null while current")] = None


class KeysDocument(Result, frozen=True):
    """The ledger's public keys (the `entraide.keys/1` file that `entraide ledger verify` reads)."""

    format: Annotated[str, msgspec.Meta(description="the document's format, entraide.keys/1")]
    keys: list[SigningKey]


class Jwk(Result, kw_only=True, frozen=True):
    """An Ed25519 public key as a JSON Web Key (RFC 8037)."""

    kty: Annotated[str, msgspec.Meta(description="key type: OKP")]
    crv: Annotated[str, msgspec.Meta(description="curve: Ed25519")]
    x: Annotated[str, msgspec.Meta(description="the public key, base64url")]
    kid: Annotated[str | None, msgspec.Meta(description="key id, as tokens name it in their header")] = None
    alg: Annotated[str, msgspec.Meta(description="algorithm the key signs with")]
    use: Annotated[str, msgspec.Meta(description="sig: it verifies signatures")]


class Jwks(Result, frozen=True):
    """A JSON Web Key Set (RFC 7517)."""

    keys: list[Jwk]


class PublicKeys(Result, frozen=True):
    """Every public key a verifier needs: the ledger's signing keys, the cities' card keys (to check a
    citizen card offline) and the token issuer's key (to check bearer tokens)."""

    ledger: KeysDocument
    cards: Jwks
    token_issuer: Jwks


class Checkpoint(Result, frozen=True):
    """A ledger's signed checkpoint: its size and Merkle root at a time, as a C2SP signed note."""

    ledger: Annotated[str, msgspec.Meta(description="the ledger (city)")]
    tree_size: Annotated[int, msgspec.Meta(ge=0, description="entries covered: the checkpoint's last sequence")]
    root_hash: Annotated[str, msgspec.Meta(description="Merkle tree root of the entries' hashes, hex")]
    time_us: TimeUs
    note: Annotated[str, msgspec.Meta(description="the signed note (C2SP checkpoint format)")]


class Checkpoints(Result, frozen=True):
    """The latest signed checkpoint of every ledger, to check later that history was only appended to."""

    checkpoints: list[Checkpoint]


# --- a city's public log (C2SP tlog-tiles, ledger/service_layer/public_log.py) ---------------------


class CheckpointPage(Result, frozen=True):
    """A page of one ledger's signed checkpoints, smallest tree size first."""

    checkpoints: list[Checkpoint]
    next_after_size: Annotated[
        int | None, msgspec.Meta(description="pass as `after_size` for the next page; null at the end")
    ]


class LogKey(Result, frozen=True):
    """A key that signs a city's log, with the signed-note verifier key a generic client takes."""

    key_id: Annotated[str, msgspec.Meta(description="the key id entries name")]
    public_key: Annotated[str, msgspec.Meta(description="the raw Ed25519 public key, hex")]
    vkey: Annotated[str, msgspec.Meta(description="C2SP signed-note verifier key: `<origin>+<key hash, 8 hex>+base64(0x01 || public key)`")]  # fmt: skip
    valid_from_us: TimeUs
    valid_until_us: Annotated[TimeUs | None, msgspec.Meta(description="when it was retired; null while current")] = None


class LogKeys(Result, frozen=True):
    """The public keys of a city's log and when each was valid."""

    origin: Annotated[str, msgspec.Meta(description="the checkpoints' origin line, `entraide/<city>`")]
    keys: list[LogKey]


# --- the audit trail --------------------------------------------------------------------------


class AuditEntry(Result, frozen=True):
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


class AuditPage(Result, frozen=True):
    """A page of a city's audit trail, in order."""

    entries: list[AuditEntry]
    next_after_seq: Annotated[
        int | None, msgspec.Meta(description="pass as `after_seq` for the next page; null at the end")
    ]
