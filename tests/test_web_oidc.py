"""Residents sign in on the pages through their city's identity provider (OpenID Connect,
authorization code with PKCE), on SQLite and PostgreSQL, against a real provider on loopback:
`oidc-provider-mock` (Authlib's server, in werkzeug's threaded server), whose authorization form
lets the test choose the subject. The mock issues codes without looking at the PKCE challenge, so
`PkceProvider` wraps it (a WSGI middleware) to check RFC 7636 as a real provider does: each code
remembers its S256 challenge, and a token request whose verifier does not hash to it is refused.

A merchant owner or an officer signs in there too, in the portal or the office, once their account
is explicitly linked to their principal (by themselves from the security page, or by an admin through
the API or the CLI); an account nobody linked opens nothing and makes nothing.

The provider's subject names a resident only through an explicit enrolment with it; every refusal
(provider said no, state not this browser's, subject not enrolled, provider unreachable) is a page
in the visitor's language, without a session, with nothing changed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from litestar.testing import TestClient
from werkzeug.serving import make_server

from api.bootstrap import Context, Settings, open_context
from api.http.app import create_app
from api.http.auth import principal_from_token
from api.problems import problem_document
from community.adapters import oidc_client
from community.adapters.oidc_client import Flow, id_token_claims
from community.domain.access import Grantor, operator
from community.domain.errors import ProviderSignInRefused, SignInStateMismatch
from ledger.service_layer.audit_trail import page as audit_page
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.conftest import Clock
from tests.test_bad_input import ODD_VALUES
from tests.test_cli import run
from tests.world import World
from web.auth import OFFICE, PORTAL
from web.i18n import translations
from web.pages import SESSION_COOKIE
from web.routes.oidc import CALLBACK_PATH, FLOW_COOKIE, REFUSED_PATH, START_PATH, start_path

oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

__all__ = ["browser"]  # the fixture, imported for its module

CLIENT_ID = "entraide-web"
CLIENT_SECRET = "a-secret-of-the-city"
SITE = "https://entraide.test"  # the TestClient's base: the cookies are Secure
ALICE = "alice@brossard"  # the subject Brossard enrolled Alice with


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict, claims: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


class PkceProvider:
    """oidc-provider-mock on loopback, with PKCE (S256) enforced and counted."""

    def __init__(self) -> None:
        self.app = oidc_provider_mock.app(require_nonce=True)
        self.challenges: dict[str, str] = {}  # code → the S256 challenge of its authorization request
        self.verified = 0  # token requests whose verifier matched
        self.refused = 0  # token requests refused for PKCE
        self.server = make_server("localhost", 0, self, threaded=True)
        self.issuer = f"http://localhost:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()

    def __call__(self, environ, start_response):
        path, query = environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/oauth2/authorize":
            challenge = query.get("code_challenge", [""])[0]
            if query.get("code_challenge_method") != ["S256"] or len(challenge) != 43:
                return self._refuse(start_response, "invalid_request", "PKCE with S256 is required")

            def remembering(status, headers, exc_info=None):
                location = dict(headers).get("Location", "")
                for code in parse_qs(urlsplit(location).query).get("code", []):
                    self.challenges[code] = challenge
                return start_response(status, headers, exc_info)

            return self.app(environ, remembering)
        if path == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            form = parse_qs(body.decode())
            code, verifier = form.get("code", [""])[0], form.get("code_verifier", [""])[0]
            if self.challenges.pop(code, None) != _s256(verifier):
                self.refused += 1
                return self._refuse(start_response, "invalid_grant", "the code verifier does not match")
            self.verified += 1
        return self.app(environ, start_response)

    @staticmethod
    def _refuse(start_response, error: str, description: str):
        body = f'{{"error": "{error}", "error_description": "{description}"}}'.encode()
        start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def authorize(self, authorization_url: str, subject: str) -> str:
        """What a resident does on the provider's form: sign in as `subject`; where it sends them back."""
        answer = httpx.post(authorization_url, data={"sub": subject})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


@dataclass
class City:
    ctx: Context
    world: World
    provider: PkceProvider
    alice: str  # her resident id


def _configured(settings: Settings, provider: PkceProvider) -> Settings:
    return replace(settings, oidc_jwks_url=f"{provider.issuer}/jwks", oidc_issuer=provider.issuer,
                   oidc_audience="entraide", oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET)  # fmt: skip


@pytest.fixture
def city(settings: Settings) -> Iterator[City]:
    """Brossard, whose identity provider is the local one: Alice enrolled with her subject there,
    Bob without one (as the demo's residents are: the provider's e-mail for him names nobody)."""
    with PkceProvider() as provider:
        clock = Clock(time.time_ns() // 1_000)  # the provider's tokens carry the real time
        ctx = open_context(_configured(settings, provider), clock=clock, key_from_us=clock(), create=True)
        world = World(ctx, client=None)  # type: ignore[arg-type]
        world.city("brossard", name="Brossard")
        alice = ctx.residents.enroll(
            "brossard", {"name": "Alice"}, "basic", "staff:test", subject=ALICE, key="enrol-alice"
        )
        world.resident("bob", "brossard")
        try:
            yield City(ctx, world, provider, alice.id)
        finally:
            ctx.tokens.stop()
            ctx.engine.dispose()


def _signed_in_as(ctx: Context, token: str) -> str:
    """The resident a session cookie's token names, checked as every page checks it."""
    principal = principal_from_token(ctx, token)
    assert principal.role == "resident"
    return principal.subject


def _sessions(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM credentials WHERE issued_by = 'web:oidc'").scalar_one()


# --- in the browser ---------------------------------------------------------------------------------


def _allow_provider(seen, provider: PkceProvider) -> None:
    """The visitor's browser may go to the provider (tests.browser aborts other hosts); the provider's
    page asks a CDN for its stylesheet, answered empty here (the tests load nothing from the Internet)."""
    seen.console = []
    seen.page.on("console", lambda message: seen.console.append(message) if message.type == "error" else None)
    provider_host = urlsplit(provider.issuer).netloc
    seen.page.route(lambda url: urlsplit(url).netloc == provider_host, lambda route: route.continue_())
    seen.page.route(
        "https://cdn.jsdelivr.net/**", lambda route: route.fulfill(status=200, content_type="text/css", body="")
    )


def _refusal_shown(seen) -> None:
    """A refusal is a page with a 4xx status, which Chromium logs as a resource that failed to load:
    that message is the document's own (its location is the page's URL), not a problem of the page.
    Any other message (a stylesheet or script that failed) stays and fails `check`."""
    url = seen.page.url
    own = [m.text for m in seen.console if m.location.get("url") == url and "Failed to load resource" in m.text]
    assert len(own) <= 1, own
    for text in own:
        seen.problems.remove(text)
    seen.console.clear()


def _sign_in_at_provider(seen, subject: str) -> None:
    page = seen.page
    page.get_by_role("heading", name="Authorize Client").wait_for()
    page.get_by_placeholder("sub").fill(subject)
    page.get_by_role("button", name="Authorize").click()


def _session_cookie(seen) -> dict | None:
    return next((c for c in seen.page.context.cookies() if c["name"] == SESSION_COOKIE), None)


@needs_chromium
def test_a_resident_signs_in_through_the_citys_provider_and_refusals_say_what_to_do(browser, city) -> None:
    ctx, provider = city.ctx, city.provider
    with site(ctx) as base:
        # French: Bob is known to the provider (his e-mail as subject), but enrolled with no subject.
        with visitor(browser, base, locale="fr-CA") as french:
            _allow_provider(french, provider)
            french.open("/wallet/sign-in?next=/wallet")  # the sign-in page offers the city's account
            french.page.get_by_role("link", name="Me connecter avec le compte de ma ville").click()
            _sign_in_at_provider(french, "bob@example.org")
            french.page.wait_for_url(f"{base}{REFUSED_PATH}?**")
            page = french.page
            assert (
                page.get_by_role("heading", level=1).inner_text()
                == "Inscription manquante\u00a0: adressez-vous à votre ville"
            )
            assert "aucun résident n’est inscrit" in page.locator("main").inner_text()
            assert _session_cookie(french) is None and provider.verified == 1  # the provider did sign him in
            _refusal_shown(french)
            french.check("oidc-not-enrolled-fr")

            # The keyboard reaches "try again" and follows it; Alice signs in, pressing Enter on the form.
            french.tab_to(page.get_by_role("link", name="Me reconnecter avec le compte de ma ville"))
            page.keyboard.press("Enter")
            page.get_by_placeholder("sub").fill(ALICE)
            with page.expect_response(lambda r: urlsplit(r.url).path == CALLBACK_PATH) as answer:
                page.get_by_placeholder("sub").press("Enter")
            assert answer.value.status == 303 and answer.value.headers["location"] == "/wallet"  # the default `next`
            page.wait_for_url(f"{base}/wallet")
            cookie = _session_cookie(french)
            assert cookie is not None and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
            assert _signed_in_as(ctx, cookie["value"]) == city.alice
            assert not [c for c in page.context.cookies() if c["name"] == FLOW_COOKIE]  # one use only

        # English: a tampered `state` is refused before the code is ever exchanged; then a real sign-in.
        with visitor(browser, base, locale="en-CA") as english:
            _allow_provider(english, provider)
            page = english.page
            english.open(f"{START_PATH}?next=/wallet")
            parts = urlsplit(page.url)
            query = parse_qs(parts.query)
            query["state"] = ["forged-" + query["state"][0]]
            page.goto(urlunsplit(parts._replace(query=urlencode(query, doseq=True))))
            exchanged = provider.verified
            _sign_in_at_provider(english, ALICE)
            page.wait_for_url(f"{base}{REFUSED_PATH}?**")
            assert page.get_by_role("heading", level=1).inner_text() == "Sign-in expired"
            assert _session_cookie(english) is None and provider.verified == exchanged
            _refusal_shown(english)
            english.check("oidc-state-en")
            # The refusal has its own address: switching the language shows the same refusal again.
            page.get_by_role("button", name="Español").click()
            page.wait_for_url(f"{base}{REFUSED_PATH}?problem=sign_in_state_mismatch")
            assert page.get_by_role("heading", level=1).inner_text() == "Inicio de sesión caducado"
            _refusal_shown(english)

            english.open(f"{START_PATH}?next=/wallet")
            with page.expect_response(lambda r: urlsplit(r.url).path == CALLBACK_PATH) as answer:
                _sign_in_at_provider(english, ALICE)
            assert answer.value.status == 303 and answer.value.headers["location"] == "/wallet"
            cookie = _session_cookie(english)
            assert cookie is not None and _signed_in_as(ctx, cookie["value"]) == city.alice

    assert _sessions(ctx) == 2  # Alice's two sign-ins, nobody else's


def _links(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM principal_oidc_links").scalar_one()


def _principals(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM principals").scalar_one()


@needs_chromium
def test_a_finance_officer_links_the_city_account_signs_in_with_it_unlinks_it_and_is_then_refused(
    browser, city
) -> None:
    ctx, provider = city.ctx, city.provider
    locale = locale_of(ctx)
    lang = locale[:2]
    _ = translations(lang).gettext
    fiona = ctx.activation.issue_principal(operator("test"), "brossard", "finance", "fiona", key="k-fiona").principal_id
    with site(ctx) as base, visitor(browser, base, locale=locale) as seen:
        _allow_provider(seen, provider)
        page = seen.page
        signed_in(seen, ctx, fiona, "brossard", OFFICE)  # with her passkey, say: the office's own sign-in
        seen.open("/office")
        page.get_by_role("link", name=_("Signing in")).click()
        page.wait_for_url(f"{base}/office/security")
        page.get_by_role("link", name=_("Link my city account")).click()
        _sign_in_at_provider(seen, "fiona@brossard")
        page.wait_for_url(f"{base}/office/security?done=linked")
        assert page.locator("code.provider-subject").inner_text() == "fiona@brossard"
        assert page.get_by_role("status").inner_text() == _("Your city account is linked: use it to sign in next time.")
        seen.check(f"office-security-{lang}")
        (linked,) = [
            r for r in audit_page(ctx.engine, "brossard", 0, 1_000).entries if r.action == "principal.oidc_link"
        ]
        assert linked.actor.startswith("finance:fiona") and linked.target == "finance:fiona"

        # Signed out, she signs in with the city's account, from the office's sign-in page, and lands on /office.
        page.get_by_role("button", name=_("Sign out"), exact=True).click()
        page.wait_for_url(f"{base}/office/sign-in?signed_out=1")
        page.get_by_role("link", name=_("Sign in with my city's account")).click()
        with page.expect_response(lambda r: urlsplit(r.url).path == start_path(OFFICE) + "/callback") as answer:
            _sign_in_at_provider(seen, "fiona@brossard")
        assert answer.value.status == 303 and answer.value.headers["location"] == "/office"
        page.wait_for_url(f"{base}/office")
        cookie = _session_cookie(seen)
        assert cookie is not None and cookie["httpOnly"] and cookie["secure"]
        assert principal_from_token(ctx, cookie["value"]).identity == "finance:fiona"

        # She unlinks it; then the account is one nobody linked: refused, what to do said, no session, nothing made.
        page.get_by_role("link", name=_("Signing in")).click()
        page.get_by_role("button", name=_("Unlink the account %(account)s") % {"account": "fiona@brossard"}).click()
        page.wait_for_url(f"{base}/office/security?done=unlinked")
        assert page.get_by_role("status").inner_text() == _("The account was unlinked: it can no longer sign you in.")
        page.get_by_role("button", name=_("Sign out"), exact=True).click()
        page.wait_for_url(f"{base}/office/sign-in?signed_out=1")
        made = _principals(ctx)
        page.get_by_role("link", name=_("Sign in with my city's account")).click()
        _sign_in_at_provider(seen, "fiona@brossard")
        page.wait_for_url(f"{base}{start_path(OFFICE)}/refused?problem=provider_account_not_linked")
        refusal = problem_document("provider_account_not_linked", lang, {})
        assert page.get_by_role("heading", level=1).inner_text() == refusal["title"]
        assert _session_cookie(seen) is None and _principals(ctx) == made and _links(ctx) == 0
        _refusal_shown(seen)
        seen.check(f"office-oidc-not-linked-{lang}")
    assert _sessions(ctx) == 1  # Fiona's one sign-in with the provider


# --- over HTTP (cheaper than a browser) -------------------------------------------------------------


def _local(url: str) -> str:
    """The path and query of where the provider sends the browser back (our site's callback)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _start(client: TestClient, next_path: str = "/wallet") -> tuple[str, dict[str, list[str]]]:
    answer = client.get(START_PATH, params={"next": next_path}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    return location, parse_qs(urlsplit(location).query)


def test_the_start_binds_state_nonce_and_pkce_to_this_browser_and_the_callback_lands_on_a_local_page(city) -> None:
    ctx, provider = city.ctx, city.provider
    with TestClient(create_app(ctx), base_url=SITE) as client:
        answer = client.get(START_PATH, params={"next": "https://evil.example/"}, follow_redirects=False)
        location = answer.headers["location"]
        assert location.startswith(f"{provider.issuer}/oauth2/authorize?")
        query = parse_qs(urlsplit(location).query)
        assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
        assert query["scope"] == ["openid"] and query["redirect_uri"] == [SITE + CALLBACK_PATH]
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
        assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32 and query["state"] != query["nonce"]
        flow = answer.headers["set-cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=lax", f"Path={START_PATH}", "Max-Age=600"):
            assert attribute in flow, flow
        sealed = client.cookies[FLOW_COOKIE]
        assert query["state"][0] not in sealed and query["nonce"][0] not in sealed  # sealed, not merely encoded

        back = provider.authorize(location, ALICE)
        signed_in = client.get(_local(back), follow_redirects=False)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/wallet"  # never another site
        assert provider.verified == 1  # the provider checked the verifier against the challenge
        assert _signed_in_as(ctx, client.cookies[SESSION_COOKIE]) == city.alice
        assert FLOW_COOKIE not in client.cookies

        # The same answer again (its flow cookie is gone): refused, and no second session.
        replayed = client.get(_local(back), headers={"Accept-Language": "en"})
        assert replayed.status_code == 400 and "sign_in_state_mismatch" in replayed.text
        assert _sessions(ctx) == 1


def test_refused_answers_are_pages_that_open_no_session(city) -> None:
    ctx, provider = city.ctx, city.provider
    sign_in = ctx.provider_sign_in
    assert sign_in is not None
    with TestClient(create_app(ctx), base_url=SITE) as client:
        location, query = _start(client)
        back = parse_qs(urlsplit(provider.authorize(location, ALICE)).query)
        code, state = back["code"][0], back["state"][0]
        sealed = client.cookies[FLOW_COOKIE]
        # Not the answer to this browser's sign-in: no flow, a garbled or forged one, another state,
        # none. Refused before the code is ever sent to the provider; the flow cookie is cleared.
        for cookie, params in ((None, {"state": state, "code": code}), ("garbage", {"state": state, "code": code}),
                               (sealed[:-4] + "AAAA", {"state": state, "code": code}),
                               (sealed, {"state": state[::-1], "code": code}), (sealed, {"code": code})):  # fmt: skip
            client.cookies.clear()
            if cookie is not None:
                client.cookies.set(FLOW_COOKIE, cookie, domain="entraide.test")
            answer = client.get(CALLBACK_PATH, params=params, follow_redirects=False)
            assert answer.status_code == 303, (cookie, params)
            assert answer.headers["location"] == f"{REFUSED_PATH}?problem=sign_in_state_mismatch"
            assert "Max-Age=0" in answer.headers["set-cookie"]
        assert provider.verified == provider.refused == 0
        shown = client.get(f"{REFUSED_PATH}?problem=sign_in_state_mismatch", headers={"Accept-Language": "fr"})
        assert shown.status_code == 400 and "Connexion expirée" in shown.text
        for problem in ("identity_provider_unavailable", "insufficient_funds", ""):  # its three refusals only
            assert client.get(REFUSED_PATH, params={"problem": problem}).status_code == 404
        for value in ODD_VALUES:  # whatever a query holds: refused or harmless, never a 500 or a session
            for path, name in ((START_PATH, "next"), (CALLBACK_PATH, "state"), (CALLBACK_PATH, "code"),
                               (CALLBACK_PATH, "error"), (REFUSED_PATH, "problem")):  # fmt: skip
                answer = client.get(f"{path}?{name}={value}", follow_redirects=False)
                assert answer.status_code < 500 and SESSION_COOKIE not in answer.cookies, (path, name, value)

        # A flow with this state and nonce but another verifier (only a holder of the deployment's
        # secret could seal one): the provider checks PKCE and refuses the exchange.
        forged = Flow(state, query["nonce"][0], "x" * 64, "/wallet", int(time.time()) + 600)
        client.cookies.set(FLOW_COOKIE, oidc_client.seal(sign_in.flow_key, forged), domain="entraide.test")
        answer = client.get(CALLBACK_PATH, params={"state": state, "code": code}, headers={"Accept-Language": "en"})
        assert answer.status_code == 403 and "provider_sign_in_refused" in answer.text
        assert "Sign-in not confirmed" in answer.text
        assert provider.refused == 1 and provider.verified == 0

        # The resident declines at the provider (whose refusal, unlike RFC 6749's, drops the state).
        location, _ = _start(client)
        declined = httpx.post(location, data={"action": "deny"})
        assert declined.status_code == 302 and "error=access_denied" in declined.headers["location"]
        answer = client.get(_local(declined.headers["location"]), headers={"Accept-Language": "es"})
        assert answer.status_code == 403 and "Inicio de sesión no confirmado" in answer.text
        assert "Otras maneras de iniciar sesión" in answer.text
        assert SESSION_COOKIE not in client.cookies and _sessions(ctx) == 0


def test_a_provider_down_or_not_configured_is_a_page(city) -> None:
    city.provider.close()  # before its metadata was ever fetched
    with TestClient(create_app(city.ctx), base_url=SITE) as client:
        answer = client.get(START_PATH, headers={"Accept-Language": "en"}, follow_redirects=False)
        assert answer.status_code == 503 and "identity_provider_unavailable" in answer.text
        assert "Identity provider unavailable" in answer.text and "Try again in" in answer.text
        assert answer.headers["retry-after"].isdigit()
    # The same deployment without a client id (the API may still accept the provider's tokens).
    unconfigured = replace(city.ctx.settings, oidc_client_id=None, oidc_client_secret=None)
    ctx = open_context(unconfigured, clock=city.ctx.clock)
    try:
        with TestClient(create_app(ctx), base_url=SITE) as client:
            for path in (START_PATH, CALLBACK_PATH):
                answer = client.get(path, headers={"Accept-Language": "en"}, follow_redirects=False)
                assert answer.status_code == 404 and "not_found" in answer.text
    finally:
        ctx.engine.dispose()


def test_a_half_configured_client_is_refused(tmp_path, monkeypatch) -> None:
    settings = Settings(data_dir=tmp_path, database_url=str(tmp_path / "entraide.db"), keys_dir=tmp_path / "keys")
    provider = {"oidc_jwks_url": "https://idp.example/jwks", "oidc_issuer": "https://idp.example",
                "oidc_audience": "entraide"}  # fmt: skip
    for changes, variable in (({"oidc_client_secret": "s"}, "ENTRAIDE_OIDC_CLIENT_ID"),
                              ({"oidc_client_id": CLIENT_ID}, "ENTRAIDE_OIDC_ISSUER"),
                              (provider | {"oidc_issuer": "http://idp.example", "oidc_client_id": CLIENT_ID},
                               "ENTRAIDE_OIDC_ISSUER must be an https://")):  # fmt: skip
        with pytest.raises(ValueError, match=variable):
            replace(settings, **changes)
    assert replace(settings, **provider, oidc_client_id=CLIENT_ID).oidc_client_secret is None  # a public client
    variables = {"ENTRAIDE_OIDC_JWKS_URL": provider["oidc_jwks_url"], "ENTRAIDE_OIDC_ISSUER": provider["oidc_issuer"],
                 "ENTRAIDE_OIDC_AUDIENCE": "entraide", "ENTRAIDE_OIDC_CLIENT_ID": CLIENT_ID,
                 "ENTRAIDE_OIDC_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    loaded = Settings.load(data_dir=tmp_path)
    assert (loaded.oidc_client_id, loaded.oidc_client_secret) == (CLIENT_ID, CLIENT_SECRET)
    monkeypatch.delenv("ENTRAIDE_OIDC_CLIENT_ID")
    with pytest.raises(ValueError, match="ENTRAIDE_OIDC_CLIENT_SECRET needs ENTRAIDE_OIDC_CLIENT_ID"):
        Settings.load(data_dir=tmp_path)


def test_the_api_and_the_cli_link_accounts_which_open_only_their_principals_area(city, monkeypatch) -> None:
    ctx, provider = city.ctx, city.provider
    city.world.merchant("boulangerie", "brossard", terminals=0)
    fiona = ctx.activation.issue_principal(operator("test"), "brossard", "finance", "fiona", key="k1").principal_id
    marie = ctx.activation.issue_principal(operator("test"), "brossard", "merchant", "marie", key="k2",
                                           merchant_id="boulangerie").principal_id  # fmt: skip
    admin = ctx.access.grant(operator("test"), "brossard", "admin", "ada", key="t1").token
    staff = ctx.access.grant(operator("test"), "brossard", "staff", "sam", key="t2").token
    url = "/v1/admin/principals/brossard/oidc-links"
    fiona_link = {"role": "finance", "subject": "fiona", "provider_subject": "fiona@brossard"}

    def sign_in(client: TestClient, area, subject: str) -> str:
        """Where the area's callback sends the browser once the provider signed `subject` in."""
        answer = client.get(start_path(area), params={"next": area.base}, follow_redirects=False)
        back = client.get(_local(provider.authorize(answer.headers["location"], subject)), follow_redirects=False)
        assert back.status_code == 303, back.text
        return back.headers["location"]

    with TestClient(create_app(ctx), base_url=SITE) as client:
        bearer = {"Authorization": f"Bearer {admin}", "Accept-Language": "en"}
        refused = client.post(url, json=fiona_link, headers={"Authorization": f"Bearer {staff}"})
        assert refused.status_code == 403 and refused.json()["code"] == "grant_not_allowed"  # staff grant no finance
        for _ in range(2):  # linking again changes nothing
            linked = client.post(url, json=fiona_link, headers=bearer)
            assert linked.status_code == 201, linked.text
            body = linked.json()
            assert (body["issuer"], body["subject"], body["principal_id"], body["city"]) == (
                provider.issuer, "fiona@brossard", fiona, "brossard")  # fmt: skip
            assert body["linked_by"].startswith("admin:ada")
        taken = client.post(url, json=fiona_link | {"role": "merchant", "subject": "marie"}, headers=bearer)
        assert taken.status_code == 409 and taken.json()["reason"] == "linked_elsewhere"

        # The CLI links the owner's account (as the server's operator, with the deployment's provider).
        for name, value in (("ENTRAIDE_OIDC_ISSUER", provider.issuer), ("ENTRAIDE_OIDC_JWKS_URL", f"{provider.issuer}/jwks"),
                            ("ENTRAIDE_OIDC_AUDIENCE", "entraide")):  # fmt: skip
            monkeypatch.setenv(name, value)
        db = ["--db", ctx.settings.database_url, "--data-dir", str(ctx.settings.data_dir)]
        cli = ["admin", "principal-oidc-link", "--city", "brossard", "--role", "merchant", "--subject", "marie",
               "--account", "marie@brossard", *db]  # fmt: skip
        assert json.loads(run(*cli))["principal_id"] == marie

        # Each account opens its principal's area, and no other.
        assert sign_in(client, OFFICE, "fiona@brossard") == "/office"
        assert principal_from_token(ctx, client.cookies[SESSION_COOKIE]).identity == "finance:fiona"
        client.cookies.clear()
        assert sign_in(client, PORTAL, "marie@brossard") == "/portal"
        assert principal_from_token(ctx, client.cookies[SESSION_COOKIE]).merchant_id == "boulangerie"
        security = client.get("/portal/security", headers={"Accept-Language": "en"})  # her account, to unlink there
        assert security.status_code == 200 and "marie@brossard" in security.text and "Unlink" in security.text
        client.cookies.clear()
        not_linked = f"{start_path(OFFICE)}/refused?problem=provider_account_not_linked"
        assert sign_in(client, OFFICE, "marie@brossard") == not_linked  # an owner's account opens no office
        assert sign_in(client, OFFICE, "alice@brossard") == not_linked  # nor a resident's
        assert SESSION_COOKIE not in client.cookies
        shown = client.get(not_linked, headers={"Accept-Language": "fr"})
        assert shown.status_code == 403 and "administrateur de votre ville" in shown.text

        # Unlinked (the CLI, the API): the accounts sign nobody in from then on.
        assert json.loads(run(*cli, "--unlink")) == {"links": []}
        unlinked = client.post(f"{url}/unlink", json=fiona_link, headers=bearer)
        assert unlinked.status_code == 200 and unlinked.json() == {"links": []}
        assert client.post(f"{url}/unlink", json=fiona_link, headers=bearer).status_code == 404
        assert (
            sign_in(client, PORTAL, "marie@brossard")
            == f"{start_path(PORTAL)}/refused?problem=provider_account_not_linked"
        )
        assert sign_in(client, OFFICE, "fiona@brossard") == not_linked

    actions = [r.action for r in audit_page(ctx.engine, "brossard", 0, 1_000).entries if "oidc" in r.action]
    assert actions == ["principal.oidc_link"] * 2 + ["principal.oidc_unlink"] * 2

    # A linking flow links only the account of the session that started it, in its own area.
    sign_in_service = ctx.provider_sign_in
    assert sign_in_service is not None
    fiona_session = Grantor("finance", "fiona", "brossard", "finance:fiona")
    redirect = SITE + start_path(OFFICE) + "/callback"
    for session, area in (
        (Grantor("finance", "fanny", "brossard", "finance:fanny"), "office"),
        (fiona_session, "portal"),
    ):
        location, sealed = sign_in_service.start(redirect, "/office/security", "office", fiona_session)
        back = parse_qs(urlsplit(provider.authorize(location, "fiona@brossard")).query)
        with pytest.raises(SignInStateMismatch):
            sign_in_service.finish(sealed, redirect, back["state"][0], back["code"][0], None, area=area,
                                   roles=OFFICE.roles, session=session)  # fmt: skip
    assert _links(ctx) == 0


# --- the ID token's checks, one by one (real keys and signatures, no network) -----------------------


def test_an_id_token_is_accepted_only_from_the_issuer_for_us_with_our_nonce_in_date() -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    keys, now = KeySet([key]), int(time.time())
    issuer, nonce = "https://idp.example", "n-123"
    good = {"iss": issuer, "aud": [CLIENT_ID], "sub": ALICE, "nonce": nonce, "iat": now, "exp": now + 300}

    def token(claims: dict, signer=key, alg: str = "RS256") -> str:
        return jwt.encode({"alg": alg, "kid": "k1"}, {k: v for k, v in claims.items() if v is not None}, signer,
                          algorithms=[alg])  # fmt: skip

    assert id_token_claims(token(good), keys, issuer, CLIENT_ID, nonce, now)["sub"] == ALICE
    with_azp = good | {"aud": [CLIENT_ID, "another"], "azp": CLIENT_ID}
    assert id_token_claims(token(with_azp), keys, issuer, CLIENT_ID, nonce, now)["sub"] == ALICE
    refused = {
        "signed by another key": token(good, other),
        "another issuer": token(good | {"iss": "https://evil.example"}),
        "for another client": token(good | {"aud": "someone-else"}),
        "several audiences, we are not the authorized party": token(good | {"aud": [CLIENT_ID, "another"]}),
        "another nonce (a replayed token)": token(good | {"nonce": "n-999"}),
        "no nonce": token(good | {"nonce": None}),
        "expired": token(good | {"iat": now - 900, "exp": now - 300}),
        "issued in the future": token(good | {"iat": now + 600, "exp": now + 900}),
        "no expiry": token(good | {"exp": None}),
        "no subject": token(good | {"sub": None}),
        "a subject that is not a string": token(good | {"sub": 42}),
        "a city that is not a name": token(good | {"city": ["brossard"]}),
        "not signed at all": _unsigned({"alg": "none", "kid": "k1"}, good),
    }
    for why, candidate in refused.items():
        with pytest.raises(ProviderSignInRefused):
            id_token_claims(candidate, keys, issuer, CLIENT_ID, nonce, now)
            pytest.fail(why)
    with pytest.raises(ProviderSignInRefused):  # a key the provider does not publish
        id_token_claims(token(good), None, issuer, CLIENT_ID, nonce, now)
