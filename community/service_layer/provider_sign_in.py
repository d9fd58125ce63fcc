"""Signing in on the pages through the city's identity provider (OpenID Connect, authorization code
with PKCE), in each area: a resident in the wallet, a merchant owner in the portal, an officer in the
office. `start` says where to send the browser and what it must keep (the sealed flow, for its
HttpOnly cookie, naming the area it started in); `finish` takes the provider's answer back to the
holder it names, only through an explicit enrolment or link: a resident enrolled with the ID token's
subject (`Residents.for_provider_subject`), or a principal linked to the account
(`PrincipalLinks.principal_for`). A signed-in principal may also start a flow to link its own
account (`link_to`): then `finish` links it, for that same principal only. The session itself is
the pages' (`web.auth.open_session`). Nothing is written before `finish` has a holder: a refused
answer changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from community.adapters import oidc_client
from community.adapters.oidc_client import ProviderClient
from community.domain.access import RESIDENT, Grantor
from community.domain.errors import ProviderSignInRefused, SignInStateMismatch
from community.service_layer.principal_links import PrincipalLinks
from community.service_layer.residents import Residents

MAX_CODE_CHARS = 2_048


@dataclass
class SignedIn:
    holder_id: str  # the resident's id, or the principal's
    city: str  # the holder's city
    next: str  # the page of this site to land on
    linked: bool = False  # the answer linked the signed-in principal's account (no new session)


def linker_key(principal: Grantor) -> str:
    """How a linking flow names the principal whose session started it."""
    return f"{principal.city}:{principal.role}:{principal.subject}"


@dataclass
class ProviderSignIn:
    client: ProviderClient
    residents: Residents
    flow_key: AESGCM  # seals the flow the browser keeps: a secret of this deployment
    clock: Callable[[], int]
    links: PrincipalLinks

    def start(self, redirect_uri: str, next_path: str, area: str = "wallet",
              linker: Grantor | None = None) -> tuple[str, str]:  # fmt: skip
        """The provider's authorization URL, and the sealed flow for the browser's cookie; with
        `linker` (a signed-in principal), a flow that links its account instead of signing in."""
        link_to = "" if linker is None else linker_key(linker)
        url, flow = self.client.authorization(redirect_uri, next_path, self.clock() // 1_000_000, area, link_to)
        return url, oidc_client.seal(self.flow_key, flow)

    def finish(self, sealed_flow: str | None, redirect_uri: str, state: str | None, code: str | None,
               error: str | None, *, area: str = "wallet", roles: tuple[str, ...] = (RESIDENT,),
               session: Grantor | None = None) -> SignedIn:  # fmt: skip
        """The holder, of one of `roles`, the provider's answer names (or, for a linking flow, the
        `session` principal whose account it linked). SignInStateMismatch: not the answer to a
        sign-in this browser started in this area (checked first, whatever the answer says), or a
        link whose session has changed; ProviderSignInRefused: the provider said no, or its ID token
        did not verify; SubjectNotEnrolled, ProviderAccountNotLinked; IdentityProviderUnavailable."""
        now_s = self.clock() // 1_000_000
        flow = oidc_client.unseal(self.flow_key, sealed_flow, now_s)
        if error is not None and state is None:
            # A refusal that dropped the state (RFC 6749 §4.1.2.1 asks for it; some providers, the
            # test's among them, omit it): it signs nobody in, so it is only said, to this browser.
            raise ProviderSignInRefused("the provider did not sign the resident in")
        oidc_client.check_state(flow, state)
        if flow.area != area:
            raise SignInStateMismatch("this sign-in started in another area")
        if flow.link_to and (session is None or linker_key(session) != flow.link_to):
            raise SignInStateMismatch("the session that asked for this link has ended")
        if error is not None or not code or len(code) > MAX_CODE_CHARS:
            raise ProviderSignInRefused("the provider did not sign the resident in")
        claims = self.client.identity(code, redirect_uri, flow, now_s)
        subject = claims["sub"]
        if session is not None and flow.link_to:
            assert session.city is not None
            link = self.links.link(session, session.city, session.role, session.subject, subject)
            return SignedIn(link.principal_id, link.city, flow.next, linked=True)
        if RESIDENT in roles:
            resident = self.residents.for_provider_subject(self.client.issuer, subject, claims.get("city"))
            return SignedIn(resident["id"], resident["city"], flow.next)
        principal_id, city = self.links.principal_for(subject, roles)
        return SignedIn(principal_id, city, flow.next)
