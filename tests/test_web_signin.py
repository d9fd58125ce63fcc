"""Residents sign in on the web: an activation code (from their city: enrolment, the CLI, the API,
or e-mail through a real local SMTP server), then a passkey (Chromium's virtual authenticator),
sign out, sign in with the passkey; refused codes change nothing; sign out everywhere; the demo's
residents list and mailbox exist in the demo only."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from api.http.app import create_app
from community.adapters.tables import ActivationCodeRow
from community.service_layer.activation import VALID_SECONDS
from ledger.service_layer import audit_trail
from tests.browser import browser, needs_chromium, site, visitor
from tests.smtp_server import smtp_server
from tests.world import World
from web.mail import activation_message
from web.pages import SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for its module

HTTPS = "https://entraide.test"  # the session and CSRF cookies are Secure: the test client speaks https


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.resident("alice", "brossard", points=1_000)
    world.resident("bob", "brossard")
    return world


def new_code(ctx, world: World, name: str) -> str:
    return ctx.activation.issue(world.residents[name].id, "brossard", "staff:test", key=secrets.token_hex(8)).code


def _csrf(client: TestClient) -> str:
    client.get("/wallet/sign-in")
    return client.cookies["entraide_csrf"]


def sign_in_with(client: TestClient, code: str, language: str = "fr", next_: str = "/wallet/account/security"):
    return client.post("/wallet/sign-in", data={"code": code, "next": next_, "_csrf_token": _csrf(client)},
                       headers={"Accept-Language": language}, follow_redirects=False)  # fmt: skip


def live_sessions(ctx, world: World, name: str) -> int:
    resident = world.residents[name]
    with ctx.engine.connect() as conn:
        from community.adapters import access_store

        return len(access_store.credentials(conn, "brossard", "resident", resident.id, ctx.clock()))


# --- the whole walk, in a browser ---------------------------------------------------------------


def demo_mode(ctx, world: World) -> None:
    """As `entraide demo` serves: its credentials file, the demo flag, mail kept in the dev mailbox."""
    from api.demo.seed import credentials_path, write_credentials

    residents = [{"city": "brossard", "resident_id": world.residents[name].id} for name in ("alice", "bob")]
    write_credentials({"residents": residents}, credentials_path(ctx))
    ctx.settings = dataclasses.replace(ctx.settings, demo=True)
    vars(ctx).pop("mailer", None), vars(ctx).pop("activation", None)  # made again from the settings


def authenticator(page) -> object:
    """Chromium's virtual authenticator: a platform passkey that verifies its user at once."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})  # fmt: skip
    return cdp


@needs_chromium
def test_a_resident_activates_registers_a_passkey_signs_out_and_signs_in_with_it(browser, ctx, brossard) -> None:
    # The walk runs on both databases; axe and the screenshots once (the pages are the same HTML on
    # either), which keeps the module within its time budget.
    checked = ctx.engine.dialect.name == "sqlite"

    def check(seen, name: str) -> None:
        if checked:
            seen.check(name)
        else:
            seen.assert_clean()

    demo_mode(ctx, brossard)  # the sign-in page then also lists demo residents: checked with the rest
    ctx.activation.send(brossard.residents["bob"].id, "brossard", "staff:test", activation_message(ctx, "http://localhost"),
                        key="mail-bob")  # fmt: skip
    codes = {name: new_code(ctx, brossard, name) for name in ("alice", "bob")}  # Bob’s replaces the e-mailed one

    with site(ctx) as served:
        base = served.replace("127.0.0.1", "localhost")  # a passkey's relying party is a host name, never an IP address
        with visitor(browser, base, locale="fr-CA") as french:
            page, _keep = french.page, authenticator(french.page)
            french.open("/wallet/account/security")  # a signed-in page: first, sign in, then back here
            assert page.url == f"{base}/wallet/sign-in?next=/wallet/account/security"
            assert page.get_by_role("heading", level=1).inner_text() == "Me connecter à mon portefeuille"
            check(french, "signin-fr")
            page.get_by_role("textbox", name="Code d’activation").fill(
                codes["alice"].lower().replace("-", " ")
            )  # as typed from a letter
            page.get_by_role("button", name="Me connecter avec ce code").click()
            page.wait_for_url(f"{base}/wallet/sign-in/passkey?next=/wallet/account/security")
            assert page.get_by_role("heading", name="Qu’est-ce qu’une clé d’accès\u00a0?").is_visible()
            check(french, "signin-passkey-fr")
            page.get_by_role("button", name="Créer ma clé d’accès").click()
            page.wait_for_url(f"{base}/wallet/account/security")
            assert page.get_by_role("list", name="1 clé d’accès").get_by_role("listitem").count() == 1
            assert page.get_by_text("Intégrée à un appareil").is_visible()
            check(french, "security-fr")

            page.get_by_role("button", name="Me déconnecter", exact=True).click()
            page.wait_for_url(f"{base}/wallet/sign-in?signed_out=1")
            assert page.get_by_role("status").first.inner_text() == "Vous êtes déconnecté."
            french.open("/wallet/account/security")  # the session ended: its token was revoked
            page.wait_for_url(f"{base}/wallet/sign-in?next=/wallet/account/security")
            page.get_by_role("button", name="Me connecter avec ma clé d’accès").click()
            page.wait_for_url(f"{base}/wallet/account/security")
            assert page.get_by_text("Pas encore").count() == 0  # "last used" is now
            french.assert_clean()

        with visitor(browser, base, locale="en-CA") as english:
            page, _keep = english.page, authenticator(english.page)
            english.open("/dev/mailbox")
            assert (
                page.get_by_role("heading", level=2).first.inner_text() == "Votre code d’activation Entraide"
            )  # in Bob’s language
            check(english, "mailbox-en")
            english.open("/wallet/sign-in?next=/wallet/account/security")
            check(english, "signin-en")
            # The keyboard alone: the code field, Enter to send; Tab to the passkey button, Enter.
            page.get_by_role("textbox", name="Activation code").focus()
            page.keyboard.type(codes["bob"])
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/wallet/sign-in/passkey?next=/wallet/account/security")
            create = page.get_by_role("button", name="Create my passkey")
            create.focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/wallet/account/security")
            assert page.get_by_role("list", name="1 passkey").get_by_role("listitem").count() == 1
            check(english, "security-en")
            page.get_by_role("button", name="Español").click()  # the switch comes back to this page
            page.wait_for_url(f"{base}/wallet/account/security")
            assert page.get_by_role("heading", level=1).inner_text() == "Inicio de sesión y seguridad"
            check(english, "security-es")
            page.get_by_role("button", name="English").click()
            page.wait_for_url(f"{base}/wallet/account/security")
            page.get_by_role("button", name="Sign out", exact=True).click()
            page.wait_for_url(f"{base}/wallet/sign-in?signed_out=1")
            english.open("/wallet/sign-in?next=/wallet/account/security")
            page.get_by_role("button", name="Sign in with my passkey").click()
            page.wait_for_url(f"{base}/wallet/account/security")
            # Sign out everywhere: this browser's session and every other token of Bob's end.
            page.get_by_role("button", name="Sign out everywhere").click()
            page.wait_for_url(f"{base}/wallet/sign-in?signed_out=everywhere")
            assert page.get_by_text("You are signed out on every device and app.").is_visible()
            english.assert_clean()
    assert live_sessions(ctx, brossard, "bob") == 0
    assert len(ctx.passkeys.list(brossard.residents["alice"].id)) == 1


# --- refusals, without a browser ----------------------------------------------------------------


def test_a_wrong_a_used_a_replaced_and_an_expired_code_are_refused_clearly_and_change_nothing(
    ctx, clock, brossard
) -> None:
    alice = brossard.residents["alice"]
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        sessions = live_sessions(ctx, brossard, "alice")
        for typed, status, words in (("ABCD-EFGH-JKMN", 401, "Code d’activation inconnu"),
                                     ("not a code", 401, "douze lettres et chiffres")):  # fmt: skip
            refused = sign_in_with(client, typed)
            assert refused.status_code == status and words in refused.text
            assert 'aria-invalid="true"' in refused.text and 'aria-describedby="code-hint code-error"' in refused.text
            assert SESSION_COOKIE not in refused.cookies
        assert live_sessions(ctx, brossard, "alice") == sessions

        first = new_code(ctx, brossard, "alice")
        clock.advance(1)
        second = new_code(ctx, brossard, "alice")  # a new code replaces the old (a lost device)
        replaced = sign_in_with(client, first, "en")
        assert replaced.status_code == 401 and "Activation code already used" in replaced.text
        signed_in = sign_in_with(client, second)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/wallet/sign-in/passkey?next=/wallet/account/security"
        assert live_sessions(ctx, brossard, "alice") == sessions + 1
        client.cookies.delete(SESSION_COOKIE)
        again = sign_in_with(client, second, "es")
        assert again.status_code == 401 and "Código de activación ya utilizado" in again.text

        clock.advance(1)
        late = new_code(ctx, brossard, "alice")
        clock.advance(VALID_SECONDS + 1)
        expired = sign_in_with(client, late, "en")
        assert expired.status_code == 401 and "Activation code expired" in expired.text, re.findall(
            r"field-error.*", expired.text
        )
        assert live_sessions(ctx, brossard, "alice") == sessions + 1
    with ctx.engine.connect() as conn:  # only keyed hashes are kept, never a code
        stored = conn.execute(select(ActivationCodeRow.__table__)).all()
    assert {row.status for row in stored} == {"used", "replaced", "live"}
    assert not any(code.replace("-", "") in repr(row) for row in stored for code in (first, second, late))
    audited = [(e.action, e.target) for e in audit_trail.page(ctx.engine, "brossard", 0, 1_000).entries]
    assert audited.count(("activation.issue", alice.id)) == 3 and audited.count(("activation.use", alice.id)) == 1


def test_guessing_codes_is_slowed_by_the_failure_budget(ctx, brossard) -> None:
    with TestClient(create_app(ctx, address_failures_per_minute=3), base_url=HTTPS) as client:
        answers = [sign_in_with(client, f"ABCD-EFGH-JK{c}{c}").status_code for c in "MNPQ"]
        assert answers == [401, 401, 401, 429]
        good = sign_in_with(client, new_code(ctx, brossard, "alice"), "en")
        assert good.status_code == 429 and "Too many" in good.text  # even a good code waits its turn


def test_a_passkey_answer_without_this_browsers_challenge_is_refused(ctx, brossard) -> None:
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        token = _csrf(client)
        headers = {"X-CSRFToken": token, "Accept-Language": "en"}
        answer = {"credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {
            "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"}}}  # fmt: skip
        refused = client.post("/wallet/sign-in/passkey", json=answer, headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "passkey_refused"
        options = client.post("/wallet/sign-in/passkey/options", headers=headers)
        assert options.status_code == 200 and options.json()["rpId"] == "entraide.test"
        client.cookies.set("entraide_webauthn", client.cookies["entraide_webauthn"][:-1] + "0", domain="entraide.test")
        forged = client.post("/wallet/sign-in/passkey", json=answer, headers=headers)
        assert forged.status_code == 401 and SESSION_COOKIE not in forged.cookies
        # Registering needs a session; a form without the CSRF token is refused.
        assert client.post("/wallet/passkeys/options", headers=headers, follow_redirects=False).status_code == 303
        assert client.post("/wallet/sign-in/passkey/options", headers={"Accept-Language": "en"}).status_code == 403


def test_signing_out_everywhere_ends_every_session_and_token(ctx, brossard) -> None:
    alice = brossard.residents["alice"]
    with TestClient(create_app(ctx), base_url=HTTPS) as phone, TestClient(create_app(ctx), base_url=HTTPS) as laptop:
        for client in (phone, laptop):
            assert sign_in_with(client, new_code(ctx, brossard, "alice")).status_code == 303
            assert client.get("/wallet/account/security", follow_redirects=False).status_code == 200
        assert phone.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {alice.token}"}).status_code == 200
        ended = phone.post("/wallet/account/security/sign-out-everywhere", data={"_csrf_token": phone.cookies["entraide_csrf"]},
                           follow_redirects=False)  # fmt: skip
        assert ended.status_code == 303 and ended.headers["location"] == "/wallet/sign-in?signed_out=everywhere"
        assert laptop.get("/wallet/account/security", follow_redirects=False).status_code == 303
        assert phone.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {alice.token}"}).status_code == 401
        assert live_sessions(ctx, brossard, "alice") == 0
        # The same from a resident's app, through the API.
        assert sign_in_with(laptop, new_code(ctx, brossard, "alice")).status_code == 303
        assert live_sessions(ctx, brossard, "alice") == 1
        assert sign_in_with(laptop, new_code(ctx, brossard, "alice")).status_code == 303  # again, same browser
        assert live_sessions(ctx, brossard, "alice") == 1  # the session whose cookie it replaced has ended
        app_token = {"Authorization": f"Bearer {ctx.access.issue_resident(alice.id, 'brossard', 3_600, 'test:app')}"}
        assert phone.post("/v1/wallet/sign-out-everywhere", headers=app_token).json() == {"status": "revoked"}
        assert laptop.get("/wallet/account/security", follow_redirects=False).status_code == 303
        assert phone.get("/v1/wallet/balance", headers=app_token).status_code == 401
    assert live_sessions(ctx, brossard, "alice") == 0


# --- the city gives the code: enrolment, the API, e-mail ------------------------------------------


def test_staff_enrol_a_resident_with_a_code_and_send_a_new_one_by_email(ctx, brossard) -> None:
    staff = {"Authorization": f"Bearer {brossard.tokens['staff-brossard']}"}
    with smtp_server() as (url, received):
        ctx.settings = dataclasses.replace(ctx.settings, smtp_url=url)
        with TestClient(create_app(ctx), base_url=HTTPS) as client:
            body = {"personal": {"name": "Chloé", "email": "chloe@example.org", "language": "en"}}
            enrolled = client.post("/v1/admin/residents/brossard", json=body, headers=staff | {"Idempotency-Key": "e1"})
            assert enrolled.status_code == 201, enrolled.text
            first = enrolled.json()
            assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", first["activation_code"])
            retried = client.post("/v1/admin/residents/brossard", json=body, headers=staff | {"Idempotency-Key": "e1"})
            assert retried.json() == first  # the same resident, the same code: nobody new, no new code
            resident_id = first["id"]

            sent = client.post(
                f"/v1/admin/residents/brossard/{resident_id}/activation/email",
                headers=staff | {"Idempotency-Key": "m1"},
            )
            assert sent.status_code == 201 and sent.json()["status"] == "sent" and "code" not in sent.json()
            assert len(received) == 1
            mail = received[0]
            assert mail["To"] == "chloe@example.org" and mail["Subject"] == "Your Entraide activation code"
            text = mail.get_payload(decode=True).decode()
            emailed = re.search(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", text)
            assert emailed and f"{HTTPS}/wallet/sign-in" in text
            assert (
                sign_in_with(client, first["activation_code"], "en").status_code == 401
            )  # replaced by the e-mailed one
            assert sign_in_with(client, emailed.group()).status_code == 303

            # A new code on the desk, and refusals of strangers and of other cities.
            issued = client.post(
                f"/v1/admin/residents/brossard/{resident_id}/activation", headers=staff | {"Idempotency-Key": "i1"}
            )
            assert issued.status_code == 201 and issued.json()["code"] != emailed.group()
            stranger = client.post(
                f"/v1/admin/residents/brossard/{resident_id}/activation", headers={"Idempotency-Key": "i2"}
            )
            assert stranger.status_code == 401
    ctx.settings = dataclasses.replace(ctx.settings, smtp_url=None)
    vars(ctx).pop("mailer", None), vars(ctx).pop("activation", None)
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        off = client.post(
            f"/v1/admin/residents/brossard/{resident_id}/activation/email", headers=staff | {"Idempotency-Key": "m2"}
        )
        assert off.status_code == 503 and off.json()["code"] == "mail_unavailable"


def test_the_cli_enrols_a_resident_with_an_activation_code(ctx, brossard) -> None:
    from typer.testing import CliRunner

    from api.cli.main import app

    args = ["admin", "resident-enrol", "--city", "brossard", "--name", "Dora", "--db", ctx.settings.database_url,
            "--data-dir", str(ctx.settings.data_dir)]  # fmt: skip
    printed = CliRunner().invoke(app, args)
    assert printed.exit_code == 0, printed.output
    enrolled = json.loads(printed.output)
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        assert sign_in_with(client, enrolled["activation_code"]).status_code == 303


# --- the demo only ------------------------------------------------------------------------------


def test_the_demo_lists_residents_to_sign_in_as_and_shows_its_mailbox_serve_never(ctx, brossard) -> None:
    alice = brossard.residents["alice"]
    with TestClient(create_app(ctx), base_url=HTTPS) as client:  # as `entraide serve`: no demo
        page = client.get("/wallet/sign-in")
        assert page.status_code == 200 and "/wallet/sign-in/demo" not in page.text
        assert client.get("/dev/mailbox").status_code == 404
        token = client.cookies["entraide_csrf"]
        demo = client.post(
            "/wallet/sign-in/demo", data={"resident_id": alice.id, "_csrf_token": token}, follow_redirects=False
        )
        assert demo.status_code == 404 and SESSION_COOKIE not in demo.cookies

    demo_mode(ctx, brossard)
    ctx.activation.send(alice.id, "brossard", "staff:test", lambda lang, code, until, city: ("Code", code), key="d1")
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        page = client.get("/wallet/sign-in", headers={"Accept-Language": "en"})
        assert (
            "Sign in as a demo resident" in page.text
            and "Alice · Brossard" in page.text
            and "Bob · Brossard" not in page.text
        )
        mailbox = client.get("/dev/mailbox")
        assert mailbox.status_code == 200 and "alice@example.org" in mailbox.text
        token = client.cookies["entraide_csrf"]
        demo = client.post("/wallet/sign-in/demo", data={"resident_id": alice.id, "next": "/wallet/account/security",
                                                         "_csrf_token": token}, follow_redirects=False)  # fmt: skip
        assert demo.status_code == 303 and demo.headers["location"] == "/wallet/account/security"
        assert client.get("/wallet/account/security", follow_redirects=False).status_code == 200
        other = client.post("/wallet/sign-in/demo", data={"resident_id": brossard.residents["bob"].id, "_csrf_token": token},
                            follow_redirects=False)  # fmt: skip
        assert other.status_code == 404  # only the listed demo residents
