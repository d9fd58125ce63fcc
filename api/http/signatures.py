"""RFC 9421 HTTP Message Signatures for merchant POS terminals.

Each terminal signs its requests with its own Ed25519 key, over the method, the path, the query
string when the request target has one, and an RFC 9530 Content-Digest of the body, with a creation
time and a nonce. A captured request can then be neither altered (the signature or the digest
breaks) nor replayed (it goes stale after `max_age_seconds`, and the caller refuses a nonce it has
already stored). The server keeps only
public keys: a leak of its key table lets nobody sign.

Signing (terminals, tests, the bench's load) uses the `http-message-signatures` library. The server
reads the headers once (`http_sf`, structured fields), builds the signature base from what it read,
and checks the Ed25519 signature in the Rust core with the GIL released (`core.verify_signature`):
no second parse of the same headers, and a check that lets other requests run. The library's
signer and this verifier are two implementations of the RFC that every POS test holds together.
Covered components are parameterless: `@method`, `@path`, `@query` and header fields.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, cast

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier
from http_message_signatures.algorithms import ED25519

from ledger import core

LABEL = "pos"
COVERED_COMPONENTS = ("@method", "@path", "content-digest")
# Covered as well whenever the target has a query string: query parameters choose what a request
# reads (`since_us`, `limit`), so a query added or changed in transit must break the signature.
QUERY_COMPONENT = "@query"
MAX_FIELD_LENGTH = 4096
MAX_KEY_ID_LENGTH = 128  # ours are 22 characters; callers keep per-key state, so a bound matters
# The library parses absolute URLs; @authority and @scheme are not covered, so any host will do.
_ORIGIN = "https://pos.invalid"
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,128}")

Reason = Literal[
    "missing_signature",
    "malformed_signature",
    "missing_component",
    "digest_mismatch",
    "unknown_key",
    "expired",
    "missing_nonce",
    "bad_signature",
]


class SignatureRejected(Exception):
    """The request is refused; `reason` is stable, `key_id` is the claimed (unverified) key id."""

    def __init__(self, reason: Reason, key_id: str | None = None) -> None:
        super().__init__(reason, key_id)
        self.reason = reason
        self.key_id = key_id

    def __str__(self) -> str:
        return self.reason if self.key_id is None else f"{self.reason} (keyid {self.key_id!r})"


@dataclass(frozen=True)
class VerifiedSignature:
    key_id: str
    created: int
    nonce: str


@dataclass
class _Message:
    """The request shape the library's signer reads."""

    method: str
    url: str
    headers: dict[str, str]


def covered_components(path: str) -> tuple[str, ...]:
    """What a signature over this request target must cover (RFC 9421 derived components and fields)."""
    return (*COVERED_COMPONENTS, QUERY_COMPONENT) if "?" in path else COVERED_COMPONENTS


def _message(method: str, path: str, headers: dict[str, str]) -> _Message:
    # Without the leading slash the path would be read as part of the host, and @path would be "/".
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    return _Message(method, _ORIGIN + path, headers)


# --- client ---------------------------------------------------------------------------------------

# No key resolver: requests are signed with cached key objects, so PEM is parsed once per key.
_SIGNER = HTTPMessageSigner(signature_algorithm=ED25519)


@lru_cache(maxsize=256)
def _private_key(pem: bytes) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("POS request signing needs an Ed25519 private key")
    return key


def sign_request(
    method: str,
    path: str,
    body: bytes,
    key_id: str,
    private_key_pem: bytes | str,
    *,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return the Content-Digest, Signature-Input and Signature headers to add to the request.

    `path` is the request target as sent (percent-encoded), optionally with a query string, which
    is then covered too (`@query`, byte for byte: send it exactly as signed). `method` must be
    uppercase.
    """
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    message = _message(method, path, {})
    prepared = _SIGNER.prepare(
        message,
        key_id=key_id,
        created=None if created is None else datetime.fromtimestamp(created, tz=UTC),
        nonce=secrets.token_urlsafe(16) if nonce is None else nonce,
        label=LABEL,
        covered_component_ids=covered_components(path),
        body=body,  # adds Content-Digest, also for an empty body
    )
    signature = _private_key(pem).sign(prepared.signature_base)
    # Not _SIGNER.apply(): it resolves every component again, to catch a message changed during a
    # remote signing round trip, which cannot happen here; that doubled the cost of signing.
    message.headers["Signature-Input"] = f"{LABEL}={prepared.signature_params}"
    message.headers["Signature"] = http_sf.ser({LABEL: (signature, {})})
    return message.headers


# --- server ---------------------------------------------------------------------------------------


def _reject_duplicate(key: str, context: str) -> None:
    # http_sf keeps the last duplicate by default, which would hide a second signature.
    raise ValueError(f"duplicate {context} key {key!r}")


def _parse_dictionary(value: str, key_id: str | None = None) -> dict[str, Any]:
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate)
    except ValueError:  # also UnicodeEncodeError
        raise SignatureRejected("malformed_signature", key_id) from None
    return cast(dict[str, Any], parsed)


def _combined_fields(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lowercase names; repeated field lines joined as RFC 9110 combines them, so that a second
    Signature line counts as a second signature instead of being silently dropped. Give the raw
    (name, value) pairs of the request to see repeated lines; a mapping has already merged them."""
    fields: dict[str, str] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        key = name.lower()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


@dataclass(frozen=True)
class _SignatureInput:
    """The one signature of a request, as its headers were read: label, covered components,
    parameters and the signature's bytes."""

    label: str
    components: list[Any]
    params: dict[str, Any]
    signature: bytes


def _signature_input(fields: dict[str, str]) -> _SignatureInput:
    """The covered components and parameters of the one signature in the request."""
    sig_input, signature = fields.get("signature-input"), fields.get("signature")
    if not sig_input or not signature:
        raise SignatureRejected("missing_signature")
    # ASGI servers decode field values as Latin-1, so one character is one byte on the wire.
    if max(len(sig_input), len(signature), len(fields.get("content-digest", ""))) > MAX_FIELD_LENGTH:
        raise SignatureRejected("malformed_signature")
    inputs, signatures = _parse_dictionary(sig_input), _parse_dictionary(signature)
    if len(inputs) != 1 or inputs.keys() != signatures.keys():
        raise SignatureRejected("malformed_signature")
    label = next(iter(inputs))
    (components, params), (sig_value, _) = inputs[label], signatures[label]
    if not isinstance(components, list) or not isinstance(sig_value, bytes):
        raise SignatureRejected("malformed_signature")
    return _SignatureInput(label, components, params, sig_value)


def _claimed_key_id(params: dict[str, Any]) -> str:
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not 0 < len(key_id) <= MAX_KEY_ID_LENGTH:
        raise SignatureRejected("malformed_signature")
    return key_id


def _check_params(params: dict[str, Any], key_id: str) -> None:
    unknown = set(params) - HTTPMessageVerifier.signature_metadata_parameters
    # `type(...) is int`, since a Structured Field Boolean parses to a Python bool.
    bad_times = type(params.get("created")) is not int or type(params.get("expires", 0)) is not int
    if unknown or bad_times or params.get("alg", ED25519.algorithm_id) != ED25519.algorithm_id:
        raise SignatureRejected("malformed_signature", key_id)
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise SignatureRejected("missing_nonce", key_id)


def _check_coverage(components: list[Any], path: str, key_id: str) -> None:
    # Exact, parameterless items: "content-digest";sf or "@method";req would sign other values.
    if any((name, {}) not in components for name in covered_components(path)):
        raise SignatureRejected("missing_component", key_id)


def _check_freshness(params: dict[str, Any], now: int, max_age: int, max_skew: int, key_id: str) -> None:
    created, expires = params["created"], params.get("expires")
    if now - created > max_age or created - now > max_skew or (expires is not None and expires < now):
        raise SignatureRejected("expired", key_id)


def _check_digest(fields: dict[str, str], body: bytes, key_id: str) -> None:
    value = fields.get("content-digest")
    if value is None:
        raise SignatureRejected("missing_component", key_id)
    member = _parse_dictionary(value, key_id).get("sha-256")
    digest = member[0] if member is not None else None
    if not isinstance(digest, bytes) or not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
        raise SignatureRejected("digest_mismatch", key_id)


def _signature_base(method: str, path: str, fields: dict[str, str], signed: _SignatureInput, key_id: str) -> bytes:
    """RFC 9421 section 2.5: one line per covered component, in the signature's order, then the
    `@signature-params` line (the parameters as the header gave them, serialized again)."""
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    target_path, _, query = path.partition("?")
    lines, seen = [], set()
    for name, component_params in signed.components:
        if not isinstance(name, str) or component_params or name in seen or name != name.lower():
            raise SignatureRejected("malformed_signature", key_id)  # parameters (;sf, ;req…) are not supported
        seen.add(name)
        if name == "@method":
            value = method
        elif name == "@path":
            value = target_path
        elif name == "@query":
            value = f"?{query}"
        elif name.startswith("@"):  # @authority, @scheme, @target-uri…: not what a POS signs
            raise SignatureRejected("malformed_signature", key_id)
        elif (field := fields.get(name)) is None:
            raise SignatureRejected("missing_component", key_id)
        else:
            value = field.strip(" \t")
        if not value.replace("\t", " ").isprintable():  # no line breaks nor controls in the base
            raise SignatureRejected("malformed_signature", key_id)
        lines.append(f'"{name}": {value}')
    parameters = http_sf.ser({signed.label: (signed.components, signed.params)})[len(signed.label) + 1 :]
    lines.append(f'"@signature-params": {parameters}')
    base = "\n".join(lines)
    if not base.isascii():
        raise SignatureRejected("malformed_signature", key_id)
    return base.encode("ascii")


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    resolve_key: Callable[[str], bytes | None],
    now: int,
    max_age_seconds: int = 300,
    max_skew_seconds: int = 30,
    screen: Callable[[str], None] | None = None,
) -> VerifiedSignature:
    """Check the request's signature, or raise SignatureRejected.

    `path` is the raw request target (percent-encoded, query optional: when there is one, the
    signature must cover `@query`, else `missing_component`); `resolve_key` maps a key id
    to its raw 32-byte Ed25519 public key, or None if unknown or revoked. The caller must still
    refuse a nonce it has seen within `max_age_seconds + max_skew_seconds`. `screen(key_id)`, when
    given, sees the claimed key id as soon as it is read, before the digest, the key lookup and the
    signature: it may raise to refuse the request (a caller's failure budget for that key).
    """
    # Checks that need no key lookup nor Ed25519 verification come first: junk is cheap to refuse.
    fields = _combined_fields(headers)
    signed = _signature_input(fields)
    params = signed.params
    key_id = _claimed_key_id(params)
    if screen is not None:
        screen(key_id)
    _check_params(params, key_id)
    _check_coverage(signed.components, path, key_id)
    _check_freshness(params, now, max_age_seconds, max_skew_seconds, key_id)
    _check_digest(fields, body, key_id)
    base = _signature_base(method, path, fields, signed, key_id)
    public_key = resolve_key(key_id)
    if public_key is None:
        raise SignatureRejected("unknown_key", key_id)
    if not core.verify_signature(public_key, base, signed.signature):
        raise SignatureRejected("bad_signature", key_id)
    return VerifiedSignature(key_id, params["created"], params["nonce"])
