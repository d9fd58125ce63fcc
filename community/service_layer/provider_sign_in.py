"""A resident signs in on the pages through their city's identity provider (OpenID Connect,
authorization code with PKCE): `start` says where to send the browser and what it must keep (the
sealed flow, for its HttpOnly cookie); `finish` takes the provider's answer back to the resident it
names, only through an explicit enrolment with the ID token's subject (`Residents.for_provider_subject`).
The session itself is the pages' (`web.auth.open_session`). Nothing is written before `finish` has a
resident: a refused answer changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from community.adapters import oidc_client
from community.adapters.oidc_client import ProviderClient
from community.domain.errors import ProviderSignInRefused
from community.service_layer.residents import Residents

MAX_CODE_CHARS = 2_048


@dataclass
class SignedIn:
    resident: dict[str, Any]  # Residents' public fields: id, city, level, status …
    next: str  # the page of this site to land on


@dataclass
class ProviderSignIn:
    client: ProviderClient
    residents: Residents
    flow_key: AESGCM  # seals the flow the browser keeps: a secret of this deployment
    clock: Callable[[], int]

    def start(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The provider's authorization URL, and the sealed flow for the browser's cookie."""
        url, flow = self.client.authorization(redirect_uri, next_path, self.clock() // 1_000_000)
        return url, oidc_client.seal(self.flow_key, flow)

    def finish(self, sealed_flow: str | None, redirect_uri: str, state: str | None, code: str | None,
               error: str | None) -> SignedIn:  # fmt: skip
        """The resident the provider's answer names. SignInStateMismatch: not the answer to a sign-in
        this browser started (checked first, whatever the answer says); ProviderSignInRefused: the
        provider said no, or its ID token did not verify; SubjectNotEnrolled; IdentityProviderUnavailable."""
        now_s = self.clock() // 1_000_000
        flow = oidc_client.unseal(self.flow_key, sealed_flow, now_s)
        if error is not None and state is None:
            # A refusal that dropped the state (RFC 6749 §4.1.2.1 asks for it; some providers, the
            # test's among them, omit it): it signs nobody in, so it is only said, to this browser.
            raise ProviderSignInRefused("the provider did not sign the resident in")
        oidc_client.check_state(flow, state)
        if error is not None or not code or len(code) > MAX_CODE_CHARS:
            raise ProviderSignInRefused("the provider did not sign the resident in")
        claims = self.client.identity(code, redirect_uri, flow, now_s)
        resident = self.residents.for_provider_subject(self.client.issuer, claims["sub"], claims.get("city"))
        return SignedIn(resident, flow.next)
