"""POS request signatures (RFC 9421): what passes, why each tampered request fails, and a signature
base built by hand to pin interoperability with clients that do not use our library."""

from __future__ import annotations

import base64
import hashlib
import re
import string
import time
from collections.abc import Callable, Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from litestar.datastructures import Headers

from api.http.signatures import SignatureRejected, VerifiedSignature, sign_request, verify_request

NOW = 1_767_225_600
KEY_ID = "pos-1"
PATH = "/v1/pos/charges"
BODY = b'{"amount_cents":1250,"merchant":"boulangerie-42"}'
NONCE = "n0nce-0f-the-day_1234"
QUERY = "?since_us=1767225600000000&limit=3"


def _key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())


KEY = _key(b"pos terminal 1")
PEM = KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
KEYS = {KEY_ID: PUBLIC}


def signed(
    method: str = "POST", path: str = PATH, body: bytes = BODY, created: int = NOW, nonce: str = NONCE
) -> dict[str, str]:
    return sign_request(method, path, body, KEY_ID, PEM, created=created, nonce=nonce)


def verify(headers: Mapping[str, str], method: str = "POST", path: str = PATH, body: bytes = BODY) -> VerifiedSignature:
    return verify_request(method, path, headers, body, KEYS.get, NOW)


def rejection(
    headers: Mapping[str, str], method: str = "POST", path: str = PATH, body: bytes = BODY
) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        verify(headers, method, path, body)
    return caught.value


def digest(body: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def hand_base(components: list[tuple[str, str]], sig_params: str) -> bytes:
    """RFC 9421 section 2.5 without any library: one `identifier: value` line per covered component,
    in order, then the `"@signature-params"` line, joined by LF with no trailing newline."""
    lines = [f"{ident}: {value}" for ident, value in components] + [f'"@signature-params": {sig_params}']
    return "\n".join(lines).encode()


FULL = [('"@method"', "POST"), ('"@path"', PATH), ('"content-digest"', digest(BODY))]
PARAMS = f';created={NOW};keyid="{KEY_ID}";alg="ed25519";nonce="{NONCE}"'


def hand_request(
    components: list[tuple[str, str]] = FULL, params: str = PARAMS, key: Ed25519PrivateKey = KEY, label: str = "pos"
) -> dict[str, str]:
    sig_params = "(" + " ".join(ident for ident, _ in components) + ")" + params
    signature = base64.b64encode(key.sign(hand_base(components, sig_params))).decode()
    return {
        "Content-Digest": digest(BODY),
        "Signature-Input": f"{label}={sig_params}",
        "Signature": f"{label}=:{signature}:",
    }


# --- accepted ---------------------------------------------------------------------------------------


def test_round_trip() -> None:
    headers = signed()
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    assert verify(headers) == VerifiedSignature(KEY_ID, NOW, NONCE)


@pytest.mark.parametrize(
    "wrap",
    [lambda h: {k.lower(): v for k, v in h.items()}, lambda h: {k.upper(): v for k, v in h.items()}, Headers],
    ids=["lowercase", "uppercase", "litestar"],
)
def test_header_names_are_case_insensitive(wrap: Callable[[dict[str, str]], Mapping[str, str]]) -> None:
    assert verify(wrap(signed())).key_id == KEY_ID


def test_bodiless_request_signs_the_digest_of_the_empty_body() -> None:
    headers = signed("GET", "/v1/pos/balance", b"")
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert '"content-digest"' in headers["Signature-Input"]
    assert verify(headers, method="GET", path="/v1/pos/balance", body=b"").created == NOW
    assert rejection(headers, method="GET", path="/v1/pos/balance", body=b"x").reason == "digest_mismatch"


def test_a_query_string_is_covered() -> None:
    headers = signed(path=PATH + QUERY)
    assert headers["Signature-Input"].startswith('pos=("@method" "@path" "content-digest" "@query");')
    assert verify(headers, path=PATH + QUERY).nonce == NONCE


def test_without_a_query_string_query_is_not_required() -> None:
    assert '"@query"' not in signed()["Signature-Input"]
    # A signer may still cover it: with no query its value is "?" (RFC 9421 section 2.2.7).
    assert verify(signed(path=PATH + "?")).nonce == NONCE


def test_defaults_are_the_current_time_and_a_fresh_random_nonce() -> None:
    before = int(time.time())
    first, second = (sign_request("POST", PATH, BODY, KEY_ID, PEM.decode()) for _ in range(2))
    after = int(time.time())
    results = [verify_request("POST", PATH, h, BODY, KEYS.get, after) for h in (first, second)]
    assert all(before <= r.created <= after for r in results)
    assert results[0].nonce != results[1].nonce
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", r.nonce) for r in results)


@pytest.mark.parametrize("created", [NOW - 300, NOW + 30], ids=["max-age", "max-skew"])
def test_freshness_limits_are_inclusive(created: int) -> None:
    assert verify(signed(created=created)).created == created


@pytest.mark.parametrize("nonce", ["a" * 8, "Z" * 128, "-_09azAZ"])
def test_nonce_limits(nonce: str) -> None:
    assert verify(signed(nonce=nonce)).nonce == nonce


# --- interoperability -------------------------------------------------------------------------------


def test_hand_built_signature_base_matches_ours_both_ways() -> None:
    by_hand = hand_request()
    ours = signed()
    # A client that builds the base itself is accepted ...
    assert verify(by_hand) == VerifiedSignature(KEY_ID, NOW, NONCE)
    # ... and ours signs exactly that base: same fields, and (Ed25519 being deterministic) same bytes.
    assert ours["Content-Digest"] == by_hand["Content-Digest"]
    assert ours["Signature-Input"] == by_hand["Signature-Input"]
    signature = base64.b64decode(ours["Signature"].removeprefix("pos=:").removesuffix(":"))
    KEY.public_key().verify(signature, hand_base(FULL, f'("@method" "@path" "content-digest"){PARAMS}'))
    assert ours["Signature"] == by_hand["Signature"]


def test_hand_built_signature_base_with_a_query_matches_ours() -> None:
    components = [*FULL, ('"@query"', QUERY)]
    by_hand = hand_request(components)
    assert verify(by_hand, path=PATH + QUERY) == VerifiedSignature(KEY_ID, NOW, NONCE)
    assert signed(path=PATH + QUERY) == by_hand


def test_any_single_label_is_accepted() -> None:
    assert verify(hand_request(label="terminal7")).key_id == KEY_ID


def test_a_not_yet_expired_expires_parameter_is_accepted() -> None:
    assert verify(hand_request(params=PARAMS + f";expires={NOW + 1}")).created == NOW


# --- rejected ---------------------------------------------------------------------------------------


def test_altered_body_is_a_digest_mismatch() -> None:
    tampered = rejection(signed(), body=BODY.replace(b"1250", b"9250"))
    assert (tampered.reason, tampered.key_id) == ("digest_mismatch", KEY_ID)


def test_altered_body_with_a_recomputed_digest_is_a_bad_signature() -> None:
    body = BODY.replace(b"1250", b"9250")
    headers = {**signed(), "Content-Digest": digest(body)}
    assert rejection(headers, body=body).reason == "bad_signature"


@pytest.mark.parametrize(
    "request_kw",
    [{"path": "/v1/pos/refunds"}, {"path": PATH + "/"}, {"method": "PUT"}],
    ids=["path", "trailing-slash", "method"],
)
def test_altered_path_or_method_is_a_bad_signature(request_kw: dict[str, str]) -> None:
    assert rejection(signed(), **request_kw).reason == "bad_signature"


@pytest.mark.parametrize(
    "received",
    [PATH + QUERY.replace("limit=3", "limit=200"), PATH + "?limit=3&since_us=1767225600000000", PATH + QUERY + "&x=1",
     PATH + "?since_us=1767225600000000&limit=3&limit=200", PATH + "?", PATH],
    ids=["value-changed", "reordered", "parameter-added", "parameter-repeated", "emptied", "removed"],
)  # fmt: skip
def test_a_query_changed_after_signing_is_a_bad_signature(received: str) -> None:
    assert rejection(signed(path=PATH + QUERY), path=received).reason == "bad_signature"


@pytest.mark.parametrize("query", ["?since_us=0", "?limit=200", "?a"])
def test_a_query_added_after_signing_is_missing_component(query: str) -> None:
    rejected = rejection(signed(), path=PATH + query)
    assert (rejected.reason, rejected.key_id) == ("missing_component", KEY_ID)


QUERY_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?"


@given(st.text(QUERY_CHARS, max_size=40), st.text(QUERY_CHARS, max_size=40))
def test_a_signature_holds_for_its_own_query_only(signed_query: str, received_query: str) -> None:
    headers = signed(path=f"{PATH}?{signed_query}")
    assert verify(headers, path=f"{PATH}?{signed_query}").nonce == NONCE
    if received_query != signed_query:
        assert rejection(headers, path=f"{PATH}?{received_query}").reason == "bad_signature"
    # Signed without a query, any query sent along is uncovered, whatever it is.
    assert rejection(signed(), path=f"{PATH}?{received_query}").reason == "missing_component"


def test_signature_by_another_key_with_the_same_keyid_is_a_bad_signature() -> None:
    rejected = rejection(hand_request(key=_key(b"someone else")))
    assert (rejected.reason, rejected.key_id) == ("bad_signature", KEY_ID)


@pytest.mark.parametrize(
    "components",
    [FULL[:2], FULL[1:], [FULL[0], FULL[2]], [*FULL[:2], ('"content-digest";sf', digest(BODY))]],
    ids=["no-content-digest", "no-method", "no-path", "digest-with-sf"],
)
def test_a_required_component_not_covered_is_missing_component(components: list[tuple[str, str]]) -> None:
    # Validly signed, by the right key: only the coverage is wrong.
    assert rejection(hand_request(components)).reason == "missing_component"


def test_absent_content_digest_field_is_missing_component() -> None:
    headers = signed()
    del headers["Content-Digest"]
    assert rejection(headers).reason == "missing_component"


@pytest.mark.parametrize("resolve", [{}.get, lambda key_id: None], ids=["unknown", "revoked"])
def test_unresolved_key_is_unknown_key(resolve: Callable[[str], bytes | None]) -> None:
    with pytest.raises(SignatureRejected) as caught:
        verify_request("POST", PATH, signed(), BODY, resolve, NOW)
    assert (caught.value.reason, caught.value.key_id) == ("unknown_key", KEY_ID)


@pytest.mark.parametrize("created", [NOW - 301, NOW - 86_400, NOW + 31], ids=["just-old", "old", "future"])
def test_stale_or_future_created_is_expired(created: int) -> None:
    assert rejection(signed(created=created)).reason == "expired"


def test_custom_limits_apply() -> None:
    headers = signed(created=NOW - 10)
    with pytest.raises(SignatureRejected, match="expired"):
        verify_request("POST", PATH, headers, BODY, KEYS.get, NOW, max_age_seconds=9)
    headers = signed(created=NOW + 10)
    with pytest.raises(SignatureRejected, match="expired"):
        verify_request("POST", PATH, headers, BODY, KEYS.get, NOW, max_skew_seconds=9)


def test_past_expires_parameter_is_expired() -> None:
    assert rejection(hand_request(params=PARAMS + f";expires={NOW - 1}")).reason == "expired"


@pytest.mark.parametrize("drop", [["Signature"], ["Signature-Input"], ["Signature", "Signature-Input"]])
def test_missing_headers_are_missing_signature(drop: list[str]) -> None:
    headers = {k: v for k, v in signed().items() if k not in drop}
    assert rejection(headers).reason == "missing_signature"


def test_empty_signature_is_missing_signature() -> None:
    assert rejection({**signed(), "Signature": ""}).reason == "missing_signature"


MALFORMED = {
    "garbage-signature": {"Signature": "garbage!!"},
    "garbage-input": {"Signature-Input": 'pos=("@method" "@path"'},
    "not-a-byte-sequence": {"Signature": 'pos="c2ln"'},
    "not-an-inner-list": {"Signature-Input": "pos=1"},
    "labels-differ": {"Signature": signed()["Signature"].replace("pos=", "pas=")},
    "non-ascii": {"Signature-Input": signed()["Signature-Input"].replace("pos-1", "pös-1")},
    "garbage-digest": {"Content-Digest": "sha-256=:not base64"},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_garbage_is_malformed_signature(change: dict[str, str]) -> None:
    assert rejection({**signed(), **change}).reason == "malformed_signature"


@pytest.mark.parametrize(
    "params",
    [
        f';created={NOW};alg="ed25519";nonce="{NONCE}"',
        f';created={NOW};keyid="{KEY_ID}";alg="rsa-pss-sha512";nonce="{NONCE}"',
        f';created="{NOW}";keyid="{KEY_ID}";nonce="{NONCE}"',
        f';created=?1;keyid="{KEY_ID}";nonce="{NONCE}"',
        f';keyid="{KEY_ID}";nonce="{NONCE}"',
        f';created={NOW};keyid="{KEY_ID}";nonce="{NONCE}";foo="bar"',
    ],
    ids=["no-keyid", "other-alg", "created-string", "created-boolean", "no-created", "unknown-param"],
)
def test_bad_signature_parameters_are_malformed_signature(params: str) -> None:
    assert rejection(hand_request(params=params)).reason == "malformed_signature"


def test_more_than_one_signature_is_malformed_signature() -> None:
    ours, other = signed(), hand_request(label="other")
    both = {k: f"{v}, {other[k]}" if k.startswith("Signature") else v for k, v in ours.items()}
    assert rejection(both).reason == "malformed_signature"


def test_a_second_signature_field_line_is_malformed_signature() -> None:
    ours, other = signed(), hand_request(label="other")
    lines = [(k.lower().encode(), v.encode()) for k, v in ours.items()]
    lines += [(k.lower().encode(), other[k].encode()) for k in ("Signature-Input", "Signature")]
    assert rejection(Headers(lines)).reason == "malformed_signature"


def test_duplicate_label_is_malformed_signature() -> None:
    ours = signed()
    doubled = {k: f"{v}, {v}" if k.startswith("Signature") else v for k, v in ours.items()}
    assert rejection(doubled).reason == "malformed_signature"


@pytest.mark.parametrize("field", ["Signature-Input", "Content-Digest"])
def test_field_values_over_4096_bytes_are_malformed_signature(field: str) -> None:
    headers = signed()
    # Padding with optional whitespace after a member keeps the field valid: only its size is wrong.
    padded = {**headers, field: headers[field] + " " * (4096 - len(headers[field]))}
    assert verify(padded).key_id == KEY_ID
    assert rejection({**padded, field: padded[field] + " "}).reason == "malformed_signature"


@pytest.mark.parametrize(
    "params",
    [PARAMS.replace(f';nonce="{NONCE}"', ""), PARAMS.replace(NONCE, "a" * 7), PARAMS.replace(NONCE, "a" * 129)]
    + [PARAMS.replace(NONCE, "abc/defgh"), PARAMS.replace(f'"{NONCE}"', "12345678")],
    ids=["absent", "too-short", "too-long", "not-url-safe", "not-a-string"],
)
def test_absent_or_unusable_nonce_is_missing_nonce(params: str) -> None:
    assert rejection(hand_request(params=params)).reason == "missing_nonce"


def test_rejection_carries_reason_and_claimed_key_id() -> None:
    rejected = SignatureRejected("expired", KEY_ID)
    assert isinstance(rejected, Exception)
    assert (rejected.reason, rejected.key_id, str(rejected)) == ("expired", KEY_ID, "expired (keyid 'pos-1')")


def test_a_covered_header_field_beyond_ours_is_signed_with_its_trimmed_value() -> None:
    components = [*FULL, ('"content-type"', "application/json")]
    request = {**hand_request(components), "Content-Type": "  application/json "}
    assert verify(request).key_id == KEY_ID
    assert rejection({**request, "Content-Type": "text/plain"}).reason == "bad_signature"
    assert rejection({k: v for k, v in request.items() if k != "Content-Type"}).reason == "missing_component"


@pytest.mark.parametrize(
    "extra",
    [
        ('"content-digest";sf', digest(BODY)),
        ('"@authority"', "pos.invalid"),
        ('"@method"', "POST"),
        ('"Content-Type"', "application/json"),
    ],
    ids=["component-parameters", "unresolved-derived", "repeated", "uppercase"],
)
def test_components_we_do_not_resolve_are_malformed_signature(extra: tuple[str, str]) -> None:
    request = {**hand_request([*FULL, extra]), "Content-Type": "application/json"}
    assert rejection(request).reason == "malformed_signature"


def test_a_control_character_in_a_covered_field_is_malformed_signature() -> None:
    components = [*FULL, ('"x-till"', "a\x01b")]
    assert rejection({**hand_request(components), "X-Till": "a\x01b"}).reason == "malformed_signature"
