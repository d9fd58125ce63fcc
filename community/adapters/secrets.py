"""The community's keys and what they protect: citizen cards, bearer tokens and personal data.

- Each city has an Ed25519 card key; a terminal verifies a card offline with its public half. Card
  keys rotate (community/service_layer/card_keys.py): the first is `card-<city>.pem`, each later
  one `<kid>.pem`.
- The built-in token issuer (embedded default) has one Ed25519 key; production residents may come
  from the city's identity provider instead, whose tokens are checked against its JWKS
  (`community/adapters/jwks.py`), its issuer and its audience.
- Each city has an AES-256 key-encryption key that wraps every resident's own data key
  (AES-256-GCM). Erasing a resident deletes their wrapped key, so their data can no longer be read.

Files live in `<keys dir>/community`, mode 0600, created on first use, like the ledger's keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from community.adapters.jwks import RemoteJwks

__all__ = ["BUILTIN_ISSUER", "CLOCK_LEEWAY_SECONDS", "RemoteJwks", "TokenRejected", "TokenService", "verify_token"]

TOKEN_ALGORITHM = "Ed25519"  # RFC 9864's name for EdDSA over Ed25519
EXTERNAL_ALGORITHMS = ("Ed25519", "EdDSA", "ES256", "RS256")
BUILTIN_ISSUER = "entraide"
# Bearer tokens' `exp`, `nbf` and `iat` are compared with this much slack: the provider's clock, the
# API workers' and NTP drift differ by seconds, and a minute is what OIDC libraries commonly allow.
CLOCK_LEEWAY_SECONDS = 60
MAX_TOKEN_BYTES = 4_096
MAX_CLAIM_CHARS = 255  # a subject fits `residents.subject`; cities, roles, org ids and jtis are shorter


class TokenRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" or "expired"


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` (0600) holding `data`, whole or not at all: the bytes go to a temporary file of
    the same directory first, and a hard link publishes it, which fails with FileExistsError when
    another process or thread published the file first (a reader never sees it half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


class CommunityKeys:
    def __init__(self, keys_dir: Path) -> None:
        self.directory = Path(keys_dir) / "community"
        self._cache: dict[str, object] = {}

    def _load_or_create(self, name: str, make: Callable[[], bytes]) -> bytes:
        path = self.directory / name
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # another process created it first
                _write_private(path, make())
        return self._read_private(name)

    def _read_private(self, name: str) -> bytes:
        path = self.directory / name
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
        """The city's first card key, `card-<city>.pem`, made at first use."""
        return self.signing_key(f"card-{city}")

    def new_card_key(self, city: str) -> OKPKey:
        """A new card key for `city` (a rotation), stored as `<kid>.pem`; its kid has the first key's form."""
        pem = OKPKey.generate_key("Ed25519").as_pem(private=True)
        kid = f"card-{city}.{OKPKey.import_key(pem).thumbprint()[:8]}"
        _write_private(self.directory / f"{kid}.pem", pem)
        return self.card_key_by_kid(city, kid)

    def card_key_by_kid(self, city: str, kid: str) -> OKPKey:
        """The private card key `kid` of `city`: its first key, or one a rotation made."""
        first = self.card_key(city)
        if kid == first.kid:
            return first
        if kid not in self._cache:
            pem = self._read_private(f"{kid}.pem")  # a rotation wrote it; never made here
            self._cache[kid] = OKPKey.import_key(pem, parameters={"kid": kid})
        return self._cache[kid]  # type: ignore[return-value]

    def issuer_key(self) -> OKPKey:
        return self.signing_key("issuer")

    def kek(self, city: str) -> AESGCM:
        name = f"kek-{city}"
        if name not in self._cache:
            self._cache[name] = AESGCM(self.secret(name))
        return self._cache[name]  # type: ignore[return-value]

    def secret(self, name: str) -> bytes:
        """32 random bytes of this deployment, `<name>.key`, made at first use (every worker reads the same)."""
        return self._load_or_create(f"{name}.key", lambda: AESGCM.generate_key(256))


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
    return _seal(
        AESGCM(data_key), json.dumps(personal, sort_keys=True).encode(), f"entraide/pii/{resident_id}".encode()
    )


def open_personal(data_key: bytes, sealed: bytes, resident_id: str) -> dict:
    return json.loads(_open(AESGCM(data_key), sealed, f"entraide/pii/{resident_id}".encode()))


# --- signed tokens (citizen cards, bearer tokens) -----------------------------------------------


def sign_token(key: OKPKey, claims: dict) -> str:
    return jwt.encode({"alg": TOKEN_ALGORITHM, "kid": key.kid}, claims, key, algorithms=[TOKEN_ALGORITHM])


def verify_token(token: str, keys: KeySet, now_s: int, algorithms=(TOKEN_ALGORITHM,), leeway_seconds: int = 0,
                 **expected) -> dict:  # fmt: skip
    """The claims of a signed token, in date, whose claims equal `expected`; else TokenRejected.

    `exp` is required, `nbf` and `iat` optional, all three integers (a float or a bool is refused):
    valid while `nbf - leeway <= now < exp + leeway`, and never issued after `now + leeway`."""
    claims = _decoded(token, keys, algorithms)
    times = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
    if type(times["exp"]) is not int or any(v is not None and type(v) is not int for v in times.values()):
        raise TokenRejected("invalid")
    if any(claims.get(name) != value for name, value in expected.items()):
        raise TokenRejected("invalid")
    if any(t is not None and t > now_s + leeway_seconds for t in (times["nbf"], times["iat"])):
        raise TokenRejected("invalid")  # not valid yet, or from a clock ahead of ours by more than the leeway
    if times["exp"] + leeway_seconds <= now_s:
        raise TokenRejected("expired")
    return claims


def _decoded(token: str, keys: KeySet, algorithms) -> dict:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_BYTES:
        raise TokenRejected("invalid")
    try:
        return jwt.decode(token, keys, algorithms=list(algorithms)).claims
    except (JoseError, ValueError, TypeError):
        raise TokenRejected("invalid") from None


def token_key_id(token: str) -> str | None:
    """The `kid` of a token's header, unverified: it only chooses which keys check the signature."""
    try:
        kid = jws.extract_compact(token.encode()).protected.get("kid") if isinstance(token, str) else None
    except (JoseError, ValueError, TypeError, UnicodeError):
        return None
    return kid if isinstance(kid, str) and 0 < len(kid) <= MAX_CLAIM_CHARS else None


def _bounded_string(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS


def _check_claim_types(claims: dict, *optional: str) -> None:
    """`sub` a string and `iat` an integer, both present; each optional claim absent or a string.
    A city that is a list is a bad token (401), not a crash further down."""
    if type(claims.get("iat")) is not int or not _bounded_string(claims.get("sub")):
        raise TokenRejected("invalid")
    if any(name in claims and not _bounded_string(claims[name]) for name in optional):
        raise TokenRejected("invalid")


@dataclass
class TokenService:
    """Issues built-in bearer tokens and checks them, and the identity provider's when configured.

    `verify` returns the claims; `claims["iss"]` is `BUILTIN_ISSUER` for the built-in issuer's
    tokens and the provider's issuer for the provider's, whose claims are reduced to a resident's
    (`sub`, `city`): the provider vouches only for residents, staff roles come from the built-in issuer."""

    keys: CommunityKeys
    external: RemoteJwks | None = None
    external_issuer: str | None = None
    external_audience: str | None = None

    def __post_init__(self) -> None:
        assert self.external is None or (self.external_issuer and self.external_audience), (
            "issuer and audience are required"
        )
        assert self.external_issuer != BUILTIN_ISSUER

    @cached_property
    def builtin_keys(self) -> KeySet:
        return KeySet([self.keys.issuer_key()])

    def issue(self, claims: dict, ttl_seconds: int, now_s: int) -> str:
        registered = {"iss": BUILTIN_ISSUER, "iat": now_s, "nbf": now_s, "exp": now_s + ttl_seconds}
        return sign_token(self.keys.issuer_key(), registered | claims)

    def verify(self, token: str, now_s: int) -> dict:
        """Claims of a valid token: the built-in issuer's, or a resident token from the city's IdP.

        TokenRejected when it is not; IdentityProviderUnavailable (503) when it names a provider
        key and no provider key set was ever loaded."""
        kid = token_key_id(token)
        if kid is None:
            raise TokenRejected("invalid")
        if self.external is None or kid == self.keys.issuer_key().kid:
            claims = verify_token(
                token, self.builtin_keys, now_s, leeway_seconds=CLOCK_LEEWAY_SECONDS, iss=BUILTIN_ISSUER
            )
            _check_claim_types(claims, "role", "city", "org", "jti")
            return claims
        return self._verify_external(token, kid, now_s)

    def _verify_external(self, token: str, kid: str, now_s: int) -> dict:
        assert self.external is not None, "verify() sends a token here only with a provider configured"
        keys = self.external.key_set(kid)
        if keys is None:
            raise TokenRejected("invalid")  # a key the provider does not publish (the refresher was told)
        claims = verify_token(token, keys, now_s, EXTERNAL_ALGORITHMS, CLOCK_LEEWAY_SECONDS, iss=self.external_issuer)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.external_audience not in audiences:
            raise TokenRejected("invalid")
        _check_claim_types(claims, "city")
        return {"iss": self.external_issuer, "sub": claims["sub"], "role": "resident", "city": claims.get("city")}

    def start(self) -> None:
        """Start refreshing the provider's key set in the background (the app's startup does)."""
        if self.external is not None:
            self.external.start()

    def stop(self) -> None:
        if self.external is not None:
            self.external.stop()
