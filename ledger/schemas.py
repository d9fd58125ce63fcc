"""The base of every result a service returns: a msgspec struct, which the API encodes as it is and
documents field by field in the OpenAPI document, and which the web pages render.

Each package keeps its results in its own `schemas.py` (`ledger/`, `community/`, `merchants/`,
`marketplace/`, `finance/`, `operations/`). A field's unit is in its name (`points`, `amount_cents`,
`time_us` for microseconds since the epoch) and its meaning in `msgspec.Meta(description=...)`;
the struct's docstring becomes the schema's description.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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


class Jwk(Result, kw_only=True, frozen=True, omit_defaults=True):
    """An Ed25519 public key as a JSON Web Key (RFC 8037); a card key also says when it verifies."""

    kty: Annotated[str, msgspec.Meta(description="key type: OKP")]
    crv: Annotated[str, msgspec.Meta(description="curve: Ed25519")]
    x: Annotated[str, msgspec.Meta(description="the public key, base64url")]
    kid: Annotated[str | None, msgspec.Meta(description="key id, as tokens name it in their header")] = None
    alg: Annotated[str, msgspec.Meta(description="algorithm the key signs with")]
    use: Annotated[str, msgspec.Meta(description="sig: it verifies signatures")]
    nbf: Annotated[
        int | None, msgspec.Meta(description="card keys: when the key began signing cards (s since the epoch)")
    ] = None
    exp: Annotated[int | None, msgspec.Meta(description="card keys, once retired: cards it signed verify while now < exp "
                                                        "(s since the epoch); absent on the active key")] = None  # fmt: skip


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
    note: Annotated[
        str,
        msgspec.Meta(
            description="the signed note (C2SP checkpoint format): the log's signature, then the witnesses' cosignatures"
        ),
    ]
    witnessed: Annotated[
        bool,
        msgspec.Meta(
            description="whether the configured quorum of witnesses has cosigned it; false when witnessing is off"
        ),
    ] = False
    cosigners: Annotated[
        list[str], msgspec.Meta(description="names of the witnesses whose verified cosignatures the note carries")
    ] = msgspec.field(default_factory=list)


class Checkpoints(Result, frozen=True):
    """The latest signed checkpoint of every ledger, to check later that history was only appended to."""

    checkpoints: list[Checkpoint]


class WitnessState(Result, frozen=True):
    """How the last submission of a ledger's checkpoint to one witness went."""

    ledger: Annotated[str, msgspec.Meta(description="the ledger (city)")]
    witness: Annotated[str, msgspec.Meta(description="the witness's name (its key name)")]
    size: Annotated[int, msgspec.Meta(ge=0, description="the latest size the witness cosigned, as it last told us")]
    state: Annotated[
        Literal["ok", "failed", "fork"],
        msgspec.Meta(
            description="`ok`: it cosigned the checkpoint last submitted; `failed`: unreachable or refused, retried at the "
            "next run; `fork`: it reported a size larger than ours or an inconsistent history (422)"
        ),
    ]
    tried_size: Annotated[int, msgspec.Meta(ge=0, description="the size of the checkpoint last submitted to it")]
    detail: Annotated[str | None, msgspec.Meta(description="why it failed or reported a fork, or null")]
    updated_us: TimeUs


class WitnessingStatus(Result, frozen=True):
    """Whether checkpoints are submitted to witnesses, and how each witness answered."""

    enabled: Annotated[bool, msgspec.Meta(description="false when no witness is configured: witnessing is off")]
    quorum: Annotated[int, msgspec.Meta(ge=0, description="cosignatures needed for a checkpoint to be witnessed")]
    witnesses: Annotated[list[str], msgspec.Meta(description="the configured witnesses' names")]
    forks: Annotated[int, msgspec.Meta(ge=0, description="witnesses reporting a fork or rollback of a ledger now")]
    failing: Annotated[int, msgspec.Meta(ge=0, description="witnesses whose last submission failed (retried)")]
    states: list[WitnessState]


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


class AuditSearch(Result, frozen=True):
    """A page of a city's audit trail narrowed by filters, newest first."""

    entries: list[AuditEntry]
    next_before_seq: Annotated[
        int | None, msgspec.Meta(description="pass as `before_seq` for the next (older) page; null at the end")
    ]
    families: Annotated[list[str], msgspec.Meta(description="the kinds of action the city's trail holds")]


# --- receipts: a resident's own entries, checkable offline (docs/ledger-format.md "Receipts") ------

RECEIPT_FORMAT = "entraide.receipt/1"
Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]*$", description="lowercase hex")]


class SealedEntry(Result, frozen=True):
    """A sealed journal entry, the 17 members of a line of `entraide ledger export`, in its order."""

    ledger: Annotated[str, msgspec.Meta(description="the ledger (city) whose chain holds the entry")]
    sequence: Sequence
    transfer_id: Annotated[str, msgspec.Meta(description="the transfer's id in its ledger (32 lowercase hex)")]
    kind: Annotated[str, msgspec.Meta(description="the business purpose (earn_purchase, redeem, refund, …)")]
    phase: Annotated[str, msgspec.Meta(description="single, pending, post, void or expire")]
    debit_account: Annotated[str, msgspec.Meta(description="the account debited")]
    credit_account: Annotated[str, msgspec.Meta(description="the account credited")]
    amount: Annotated[int, msgspec.Meta(ge=1, description="points moved")]
    ref: Annotated[str | None, msgspec.Meta(description="the transfer this one posts, voids, expires or refunds")]
    group: Annotated[
        str | None, msgspec.Meta(description="the linked group's id, shared by entries committed together")
    ]
    expires_at_us: Annotated[int | None, msgspec.Meta(description="a pending hold's expiry (µs since the epoch)")]
    time_us: TimeUs
    prev_hash: Annotated[Hex, msgspec.Meta(description="the previous entry's hash in the same ledger (hex)")]
    hash: Annotated[Hex, msgspec.Meta(description="SHA-256 of the entry's canonical encoding (hex)")]
    key_id: Annotated[str, msgspec.Meta(description="the signing key's id (see the keys of /v1/transparency)")]
    signature: Annotated[Hex, msgspec.Meta(description="Ed25519 signature of the 32 raw bytes of `hash` (hex)")]
    v: Annotated[int, msgspec.Meta(description="the entry format's version, 1")]


class Inclusion(Result, frozen=True):
    """One entry's RFC 9162 audit path to its ledger's checkpoint root."""

    sequence: Sequence
    index: Annotated[int, msgspec.Meta(ge=0, description="the leaf's index in the tree: sequence − 1")]
    path: Annotated[list[Hex], msgspec.Meta(description="the audit path, leaf to root, each node 32 bytes in hex")]


class LedgerInclusion(Result, frozen=True):
    """A ledger's signed checkpoint and the paths of the receipt's entries of that ledger to its root."""

    ledger: Annotated[str, msgspec.Meta(description="the ledger (city)")]
    checkpoint: Annotated[str, msgspec.Meta(description="the checkpoint's signed note text (C2SP tlog-checkpoint)")]
    tree_size: Annotated[int, msgspec.Meta(ge=1, description="entries the checkpoint covers")]
    inclusions: list[Inclusion]


class ReceiptProof(Result, frozen=True):
    """Inclusion proofs of every entry of a receipt, one checkpoint per ledger."""

    ledgers: list[LedgerInclusion]


class Receipt(Result, frozen=True):
    """A resident's receipt: the sealed entries of one linked group (possibly in several ledgers),
    each with its hash and signature, and, once a checkpoint covers them, their inclusion proofs.
    `entraide ledger verify-receipt` checks it offline with the public keys."""

    format: Annotated[str, msgspec.Meta(description="the document's format, entraide.receipt/1")]
    entries: Annotated[
        list[SealedEntry], msgspec.Meta(min_length=1, description="the group's entries, by ledger then sequence")
    ]
    proof: Annotated[
        ReceiptProof | None,
        msgspec.Meta(description="inclusion proofs against the latest checkpoints; null when not yet checkpointed"),
    ] = None
