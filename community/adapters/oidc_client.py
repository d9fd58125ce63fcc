"""The pages' OpenID Connect client of a city's identity provider: authorization code with PKCE.

- `authorization(redirect_uri, next_path, now_s, area, link_to)`: where to send the browser (the provider's
  authorization endpoint with a fresh `state`, `nonce` and S256 `code_challenge`), and the `Flow`
  holding those secrets, which the browser keeps sealed (AES-GCM) in a short-lived HttpOnly cookie
  (`seal` / `unseal`): the callback accepts only the answer to a sign-in this browser started.
- `identity(code, redirect_uri, flow, now_s)`: the code exchanged at the token endpoint (Authlib,
  with the PKCE verifier and, for a confidential client, the client's secret), and the ID token's
  claims once checked: signature against the provider's key set (the same cache the API checks the
  provider's bearer tokens with, community/adapters/jwks.py), issuer, audience (our client id; `azp`
  when there are several), nonce, `exp`/`iat` with the tokens' one-minute leeway, a bounded `sub`.

The provider's metadata comes from `<issuer>/.well-known/openid-configuration`, kept an hour; its
issuer must be ours and its endpoints HTTPS (plain HTTP only to this machine).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import KeySet

from community.adapters.jwks import IdentityProviderUnavailable, RemoteJwks, secure_url
from community.adapters.secrets import (
    CLOCK_LEEWAY_SECONDS,
    EXTERNAL_ALGORITHMS,
    MAX_CLAIM_CHARS,
    TokenRejected,
    token_key_id,
    verify_token,
)
from community.domain.errors import ProviderSignInRefused, SignInStateMismatch

FLOW_SECONDS = 600  # from leaving for the provider to coming back: ten minutes to sign in there
METADATA_SECONDS = 3600
HTTP_TIMEOUT_SECONDS = 5
RETRY_AFTER_SECONDS = 5
MAX_FLOW_CHARS = 2_048
_FLOW_CONTEXT = b"entraide/oidc-flow"


class Flow(msgspec.Struct, frozen=True):
    """One sign-in in progress: what the callback must find again (and `next`, where to land)."""

    state: str
    nonce: str
    verifier: str
    next: str
    expires_s: int
    area: str = "wallet"  # where it started (wallet, portal, office): only that area's callback finishes it
    link_to: str = ""  # linking, not signing in: the principal (`city:role:subject`) whose session asked


class Metadata(msgspec.Struct, frozen=True):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str


def seal(aead: AESGCM, flow: Flow) -> str:
    nonce = secrets.token_bytes(12)
    sealed = nonce + aead.encrypt(nonce, msgspec.json.encode(flow), _FLOW_CONTEXT)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(aead: AESGCM, value: str | None, now_s: int) -> Flow:
    """The flow the browser kept, if it is ours and in date; else SignInStateMismatch."""
    if not value or len(value) > MAX_FLOW_CHARS:
        raise SignInStateMismatch("no sign-in in progress in this browser")
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        flow = msgspec.json.decode(aead.decrypt(sealed[:12], sealed[12:], _FLOW_CONTEXT), type=Flow)
    except (ValueError, InvalidTag, msgspec.DecodeError):
        raise SignInStateMismatch("the sign-in cookie is not ours") from None
    if flow.expires_s <= now_s:
        raise SignInStateMismatch("the sign-in took too long")
    return flow


def check_state(flow: Flow, state: str | None) -> None:
    """The provider's answer carries the state of this browser's flow; else SignInStateMismatch."""
    if not state or not hmac.compare_digest(flow.state.encode(), state.encode()):
        raise SignInStateMismatch("the state is not this browser's")


def checked_id_token(claims: dict[str, Any], client_id: str) -> dict[str, Any]:
    """The audience is us (and, among several, the authorized party too); `sub` and `city` are
    bounded strings. The signature, issuer, nonce and times were checked by `verify_token`."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != client_id):
        raise ProviderSignInRefused("the ID token is for another client")
    subject, city = claims.get("sub"), claims.get("city")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_CLAIM_CHARS:
        raise ProviderSignInRefused("the ID token names no subject")
    if city is not None and (not isinstance(city, str) or not 0 < len(city) <= MAX_CLAIM_CHARS):
        raise ProviderSignInRefused("the ID token's city is not a name")
    return claims


@dataclass
class ProviderClient:
    issuer: str
    client_id: str
    client_secret: str | None
    keys: RemoteJwks
    timeout_seconds: float = HTTP_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        self._metadata: tuple[Metadata, float] | None = None
        self._lock = threading.Lock()

    # --- the provider's metadata ----------------------------------------------------------------

    def metadata(self) -> Metadata:
        with self._lock:
            if self._metadata is None or self._metadata[1] <= time.monotonic():
                self._metadata = (self._discover(), time.monotonic() + METADATA_SECONDS)
            return self._metadata[0]

    def _discover(self) -> Metadata:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            answer = requests.get(url, timeout=self.timeout_seconds, allow_redirects=False)
            answer.raise_for_status()
            found = msgspec.json.decode(answer.content, type=Metadata)
        except (requests.RequestException, msgspec.DecodeError) as exc:
            raise IdentityProviderUnavailable(f"the provider's metadata: {exc}",
                                              retry_after_seconds=RETRY_AFTER_SECONDS) from None  # fmt: skip
        endpoints = (found.authorization_endpoint, found.token_endpoint)
        if found.issuer != self.issuer or not all(secure_url(endpoint) for endpoint in endpoints):
            # OpenID Connect Discovery §4.3: the metadata must name the issuer it was fetched from.
            raise IdentityProviderUnavailable("the provider's metadata names another issuer or an insecure endpoint",
                                              retry_after_seconds=RETRY_AFTER_SECONDS)  # fmt: skip
        return found

    # --- the flow -------------------------------------------------------------------------------

    def _client(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="openid", redirect_uri=redirect_uri,
                             code_challenge_method="S256")  # fmt: skip

    def authorization(self, redirect_uri: str, next_path: str, now_s: int, area: str = "wallet",
                      link_to: str = "") -> tuple[str, Flow]:  # fmt: skip
        flow = Flow(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                    verifier=secrets.token_urlsafe(48), next=next_path, expires_s=now_s + FLOW_SECONDS, area=area,
                    link_to=link_to)  # fmt: skip
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(self.metadata().authorization_endpoint, state=flow.state,
                                                     code_verifier=flow.verifier, nonce=flow.nonce)  # fmt: skip
        return url, flow

    def identity(self, code: str, redirect_uri: str, flow: Flow, now_s: int) -> dict[str, Any]:
        """The checked claims of the ID token the code is exchanged for."""
        endpoint = self.metadata().token_endpoint
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(endpoint, code=code, code_verifier=flow.verifier,
                                           timeout=self.timeout_seconds, allow_redirects=False)  # fmt: skip
        except OAuthError:
            raise ProviderSignInRefused("the provider refused the code") from None
        except (requests.RequestException, ValueError) as exc:  # unreachable, or an answer that is not a token response
            raise IdentityProviderUnavailable(f"the provider's token endpoint: {exc}",
                                              retry_after_seconds=RETRY_AFTER_SECONDS) from None  # fmt: skip
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderSignInRefused("the provider sent no ID token")
        kid = token_key_id(id_token)
        keys = self.keys.current() if kid is None else self.keys.key_set(kid)
        return id_token_claims(id_token, keys, self.issuer, self.client_id, flow.nonce, now_s)


def id_token_claims(
    id_token: str, keys: KeySet | None, issuer: str, client_id: str, nonce: str, now_s: int
) -> dict[str, Any]:
    """An ID token's claims if it verifies: signed by one of `keys` (None: the provider does not
    publish its key), from `issuer`, for `client_id`, with our `nonce`, in date; else ProviderSignInRefused."""
    if keys is None:
        raise ProviderSignInRefused("the ID token names a key the provider does not publish")
    try:
        claims = verify_token(id_token, keys, now_s, EXTERNAL_ALGORITHMS, CLOCK_LEEWAY_SECONDS, iss=issuer, nonce=nonce)
    except TokenRejected:
        raise ProviderSignInRefused("the ID token does not verify") from None
    return checked_id_token(claims, client_id)
