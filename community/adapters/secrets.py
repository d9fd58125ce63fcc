"""The community's keys and what they protect: citizen cards, bearer tokens and personal data.

- Each city has an Ed25519 card key; a terminal verifies a card offline with its public half.
- The built-in token issuer (embedded default) has one Ed25519 key; production residents may come
  from the city's identity provider instead, whose tokens are checked against its JWKS.
- Each city has an AES-256 key-encryption key that wraps every resident's own data key
  (AES-256-GCM). Erasing a resident deletes their wrapped key, so their data can no longer be read.

Files live in `<keys dir>/community`, mode 0600, created on first use, like the ledger's keys.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

TOKEN_ALGORITHM = "Ed25519"  # RFC 9864's name for EdDSA over Ed25519
EXTERNAL_ALGORITHMS = ("Ed25519", "EdDSA", "ES256", "RS256")
BUILTIN_ISSUER = "entraide"
JWKS_CACHE_SECONDS = 300
MAX_TOKEN_BYTES = 4_096


class TokenRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" or "expired"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class CommunityKeys:
    def __init__(self, keys_dir: Path) -> None:
        self.directory = Path(keys_dir) / "community"
        self._cache: dict[str, object] = {}

    def _load_or_create(self, name: str, make: callable) -> bytes:
        path = self.directory / name
        if not path.exists():
            try:
                _write_private(path, make())
            except FileExistsError:  # another process created it first
                pass
        if path.stat().st_mode & 0o077:
            raise PermissionError(f"{path} is readable by others; chmod 600 it")
        return path.read_bytes()

    def signing_key(self, name: str) -> OKPKey:
        """An Ed25519 key (JWK), its kid `<name>.<start of its RFC 7638 thumbprint>` (names have no dot)."""
        if name not in self._cache:
            pem = self._load_or_create(f"{name}.pem", lambda: OKPKey.generate_key("Ed25519").as_pem(private=True))
            key = OKPKey.import_key(pem)
            self._cache[name] = OKPKey.import_key(pem, parameters={"kid": f"{name}.{key.thumbprint()[:8]}"})
        return self._cache[name]  # type: ignore[return-value]

    def card_key(self, city: str) -> OKPKey:
        return self.signing_key(f"card-{city}")

    def issuer_key(self) -> OKPKey:
        return self.signing_key("issuer")

    def kek(self, city: str) -> AESGCM:
        name = f"kek-{city}"
        if name not in self._cache:
            self._cache[name] = AESGCM(self._load_or_create(f"{name}.key", lambda: AESGCM.generate_key(256)))
        return self._cache[name]  # type: ignore[return-value]


def public_jwks(keys: list[OKPKey]) -> dict:
    return {"keys": [key.as_dict(private=False) | {"alg": TOKEN_ALGORITHM, "use": "sig"} for key in keys]}


# --- personal data: envelope encryption --------------------------------------------------------


def new_data_key() -> bytes:
    return AESGCM.generate_key(256)


def _seal(aead: AESGCM, plaintext: bytes, context: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + aead.encrypt(nonce, plaintext, context)


def _open(aead: AESGCM, sealed: bytes, context: bytes) -> bytes:
    return aead.decrypt(sealed[:12], sealed[12:], context)


def wrap_key(kek: AESGCM, data_key: bytes, resident_id: str) -> bytes:
    # The resident id is authenticated data: a wrapped key copied onto another row does not open.
    return _seal(kek, data_key, f"entraide/dek/{resident_id}".encode())


def unwrap_key(kek: AESGCM, wrapped: bytes, resident_id: str) -> bytes:
    return _open(kek, wrapped, f"entraide/dek/{resident_id}".encode())


def seal_personal(data_key: bytes, personal: dict, resident_id: str) -> bytes:
    return _seal(AESGCM(data_key), json.dumps(personal, sort_keys=True).encode(), f"entraide/pii/{resident_id}".encode())


def open_personal(data_key: bytes, sealed: bytes, resident_id: str) -> dict:
    return json.loads(_open(AESGCM(data_key), sealed, f"entraide/pii/{resident_id}".encode()))


# --- signed tokens (citizen cards, bearer tokens) -----------------------------------------------


def sign_token(key: OKPKey, claims: dict) -> str:
    return jwt.encode({"alg": TOKEN_ALGORITHM, "kid": key.kid}, claims, key, algorithms=[TOKEN_ALGORITHM])


def verify_token(token: str, keys: KeySet, now_s: int, algorithms=(TOKEN_ALGORITHM,), **expected) -> dict:
    """The claims of a signed, unexpired token whose claims equal `expected`; else TokenRejected."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_BYTES:
        raise TokenRejected("invalid")
    try:
        claims = jwt.decode(token, keys, algorithms=list(algorithms)).claims
    except (JoseError, ValueError, TypeError):
        raise TokenRejected("invalid") from None
    exp = claims.get("exp")
    if type(exp) is not int:
        raise TokenRejected("invalid")
    if any(claims.get(name) != value for name, value in expected.items()):
        raise TokenRejected("invalid")
    if exp <= now_s:
        raise TokenRejected("expired")
    return claims


@dataclass
class RemoteJwks:
    """An identity provider's published keys, fetched over HTTP and cached for a few minutes."""

    url: str
    fetched_at_s: float = 0.0
    _keys: KeySet | None = field(default=None, repr=False)

    def keys(self) -> KeySet:
        if self._keys is None or time.monotonic() - self.fetched_at_s > JWKS_CACHE_SECONDS:
            with urllib.request.urlopen(self.url, timeout=5) as response:  # noqa: S310 (configured URL)
                document = json.loads(response.read(1_000_000))
            self._keys = KeySet.import_key_set(document)
            self.fetched_at_s = time.monotonic()
        return self._keys


@dataclass
class TokenService:
    """Issues built-in bearer tokens and checks them, and the identity provider's when configured."""

    keys: CommunityKeys
    external: RemoteJwks | None = None
    external_issuer: str | None = None
    external_audience: str | None = None

    @cached_property
    def builtin_keys(self) -> KeySet:
        return KeySet([self.keys.issuer_key()])

    def issue(self, claims: dict, ttl_seconds: int, now_s: int) -> str:
        return sign_token(self.keys.issuer_key(), {"iss": BUILTIN_ISSUER, "iat": now_s, "exp": now_s + ttl_seconds} | claims)

    def verify(self, token: str, now_s: int) -> dict:
        """Claims of a valid token: the built-in issuer's, or a resident token from the city's IdP."""
        try:
            return verify_token(token, self.builtin_keys, now_s, iss=BUILTIN_ISSUER)
        except TokenRejected as builtin_error:
            if self.external is None or builtin_error.reason == "expired":
                raise
        expected = {"iss": self.external_issuer} if self.external_issuer else {}
        claims = verify_token(token, self.external.keys(), now_s, EXTERNAL_ALGORITHMS, **expected)
        audience = claims.get("aud")
        if self.external_audience and self.external_audience not in (audience if isinstance(audience, list) else [audience]):
            raise TokenRejected("invalid")
        # The identity provider vouches only for residents; staff roles come from the built-in issuer.
        return {"sub": claims.get("sub"), "role": "resident", "city": claims.get("city")}
