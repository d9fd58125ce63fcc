"""The back office's resident care, services and events, and corrections: a staff officer finds a
resident by card, changes the level with evidence, asks a wallet correction above the threshold that
a second officer approves, enrols a resident and sees the code once, schedules and cancels an
erasure; a proposer cannot approve their own correction and an auditor can do none of it."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_web_signin import HTTPS
from tests.world import World
from web import i18n
from web.auth import OFFICE, open_session
from web.pages import SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for its module
THRESHOLD = 500  # the program's correction_approval_points


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard", correction_approval_points=THRESHOLD)
    world.resident("alice", "brossard", points=1_000)
    return world


def principal(ctx, role: str, subject: str) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", role, subject, key=f"{role}-{subject}").principal_id


def test_a_proposer_cannot_approve_their_own_correction_and_an_auditor_cannot_act(ctx, brossard) -> None:
    alice = brossard.residents["alice"].id
    sessions = {who: open_session(ctx, principal(ctx, role, who), "brossard", "test:web", OFFICE).value
                for role, who in (("staff", "sam"), ("auditor", "ava"))}  # fmt: skip
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        client.cookies.set(SESSION_COOKIE, sessions["sam"])
        form = client.get("/office/corrections", headers={"Accept-Language": "en"})
        assert form.status_code == 200 and "/office/residents" in form.text
        csrf = client.cookies["entraide_csrf"]
        asked = client.post("/office/corrections", data={"_csrf_token": csrf, "key": "k" * 16, "kind": "wallet", "target": alice,
                                                         "direction": "credit", "points": "600", "reason": "lost points"},
                            follow_redirects=False)  # fmt: skip
        assert asked.status_code == 303 and asked.headers["location"] == "/office/corrections?done=pending#done"
        (pending,) = ctx.corrections.list("brossard").corrections
        listed = client.get("/office/corrections", headers={"Accept-Language": "en"})
        assert f"/office/corrections/{pending.id}/approve" not in listed.text  # not offered to the proposer,
        assert "another staff officer or a city administrator must approve it" in listed.text  # and why
        own = client.post(f"/office/corrections/{pending.id}/approve", data={"_csrf_token": csrf},
                          headers={"Accept-Language": "en"})  # and refused anyway
        assert own.status_code == 403 and "second" in own.text.lower()
        assert ctx.corrections.get("brossard", pending.id).status == "pending" and brossard.available("alice") == 1_000

        client.cookies.set(SESSION_COOKIE, sessions["ava"])
        home = client.get("/office", headers={"Accept-Language": "en"})
        assert home.status_code == 200
        for path in ("/office/residents", "/office/services", "/office/corrections"):
            assert path not in home.text  # not shown to an auditor
            assert client.get(path).status_code == 403, path  # and refused
        for path, data in ((f"/office/corrections/{pending.id}/approve", {}), (f"/office/residents/{alice}/erasure", {}),
                           (f"/office/residents/{alice}/level", {"level": "checked", "evidence": "x"}),
                           ("/office/services", {"title_fr": "Piscine", "price_points": "5"})):  # fmt: skip
            assert client.post(path, data={"_csrf_token": csrf, **data}).status_code == 403, path
    assert ctx.corrections.get("brossard", pending.id).status == "pending"
    assert ctx.residents.record(alice, "brossard").level == "basic" and ctx.residents.erasure(alice).status == "none"
    assert ctx.catalog.list(brossard_owner(), ("service",)).items == []


def brossard_owner():
    from marketplace.service_layer.catalog import Owner

    return Owner("brossard", None, "staff:test")
