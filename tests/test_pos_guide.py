"""docs/pos-integration.md is followable literally: its examples are what our signer produces, what
an RFC 9421 implementation built from the guide's rules produces, and what a real app accepts.

The guide's fenced blocks carry a marker after the language (```text example:hold:base); each
worked example has a `:base` (the signature base) and a `:request` (the request as sent).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from litestar.testing import TestClient

from api.http.app import create_app
from api.http.signatures import sign_request, verify_request
from merchants.schemas import Statement
from merchants.service_layer.pos import terminal_key_id
from tests.world import World, standard_world

GUIDE = Path(__file__).parents[1] / "docs" / "pos-integration.md"
BLOCK = re.compile(r"^```\S* example:(?P<name>\S+)\n(?P<text>.*?)^```$", re.MULTILINE | re.DOTALL)
EXAMPLES = ("hold", "hold-retry", "statement")


def blocks() -> dict[str, str]:
    return {m["name"]: m["text"] for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}


def private_pem() -> bytes:
    return blocks()["key"].encode()


def public_key_raw() -> bytes:
    return load_pem_private_key(private_pem(), None).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class Request(msgspec.Struct):
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return "?" + self.target.partition("?")[2] if "?" in self.target else ""

    def signature_params(self) -> str:
        return self.headers["Signature-Input"].removeprefix("pos=")

    def param(self, name: str) -> str:
        match = re.search(rf';{name}=("?)([^;"]+)\1', self.signature_params())
        assert match is not None, name
        return match[2]


def request(name: str) -> Request:
    head, _, body = blocks()[f"{name}:request"].partition("\n\n")
    request_line, *lines = head.split("\n")
    method, target, _version = request_line.split(" ")
    headers = dict(line.split(": ", 1) for line in lines)
    return Request(method, target, headers, body.removesuffix("\n").encode())


def base(name: str) -> bytes:
    return blocks()[f"{name}:base"].removesuffix("\n").encode()


def base_by_the_rules(r: Request) -> bytes:
    """The signature base as the guide's rules build it, without any RFC 9421 library."""
    components = re.fullmatch(r"\(([^)]*)\).*", r.signature_params())[1].split(" ")  # type: ignore[index]
    values = {
        '"@method"': r.method,
        '"@path"': r.path,
        '"content-digest"': r.headers["Content-Digest"],
        '"@query"': r.query,
    }
    lines = [f"{component}: {values[component]}" for component in components]
    return "\n".join([*lines, f'"@signature-params": {r.signature_params()}']).encode()


def test_the_examples_are_all_there() -> None:
    found = blocks()
    assert {"key", "sign.sh"} <= found.keys()
    assert all(f"{name}:{part}" in found for name in EXAMPLES for part in ("base", "request"))
    assert terminal_key_id(public_key_raw()) == request("hold").param("keyid") == "t-b16c2d1bead126263976"


@pytest.mark.parametrize("name", EXAMPLES)
def test_our_signer_produces_the_guides_headers(name: str) -> None:
    r = request(name)
    signed = sign_request(r.method, r.target, r.body, r.param("keyid"), private_pem(), created=int(r.param("created")),
                          nonce=r.param("nonce"))  # fmt: skip
    assert signed == {k: r.headers[k] for k in ("Content-Digest", "Signature-Input", "Signature")}


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_guides_rules_give_its_signature_base_and_signature(name: str) -> None:
    r = request(name)
    assert base_by_the_rules(r) == base(name)
    digest = base64.b64encode(hashlib.sha256(r.body).digest()).decode()
    assert r.headers["Content-Digest"] == f"sha-256=:{digest}:"
    signature = load_pem_private_key(private_pem(), None).sign(base(name))  # Ed25519 is deterministic
    assert r.headers["Signature"] == f"pos=:{base64.b64encode(signature).decode()}:"
    checked = verify_request(
        r.method, r.target, r.headers, r.body, lambda key_id: public_key_raw(), int(r.param("created"))
    )
    assert checked.nonce == r.param("nonce")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_shell_recipe_prints_the_first_examples_headers(tmp_path: Path) -> None:
    (tmp_path / "terminal.pem").write_bytes(private_pem())
    run = subprocess.run(
        ["sh", "-c", blocks()["sign.sh"]], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True
    )
    r = request("hold")
    assert run.stdout.splitlines() == [
        f"{k}: {r.headers[k]}" for k in ("Content-Digest", "Signature-Input", "Signature")
    ]
    assert (tmp_path / "signature-base.txt").read_bytes() == base("hold")


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def send(world: World, r: Request):
    return world.client.request(r.method, r.target, content=r.body, headers=r.headers)


def test_a_real_app_accepts_the_guides_requests(world: World, clock) -> None:
    public_pem = (
        load_pem_private_key(private_pem(), None)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    registered = world.ctx.terminals.register("boulangerie", public_pem.decode(), "staff:test", "brossard", key="guide")
    assert registered.terminal_key_id == request("hold").param("keyid")
    assert clock() == int(request("hold").param("created")) * 1_000_000  # the guide's time is the tests' start

    statement = send(world, request("statement"))
    assert statement.status_code == 200, statement.text
    assert msgspec.json.decode(statement.content, type=Statement).merchant_id == "boulangerie"
    hold = send(world, request("hold"))  # signature accepted: the placeholder card is what is refused
    assert (hold.status_code, hold.json()["code"]) == (404, "unknown_card")
    assert send(world, request("hold")).json()["code"] == "replayed_request"
    clock.advance(5)
    retry = send(world, request("hold-retry"))  # signed again, same Idempotency-Key: admitted
    assert retry.json()["code"] == "unknown_card"
