"""Error codes, their catalogs in every language, Accept-Language negotiation and problem documents.

The catalogs are checked by reading the .po files with babel directly, not through `api.problems`,
so a catalog entry the module would silently skip (fuzzy, empty, misspelled key) fails here.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from api.problems import LOCALES, PROBLEMS, negotiate_locale, problem_document, problem_type

LOCALES_DIR = Path(__file__).resolve().parents[1] / "api" / "locales"

# The contract with handlers and clients: code -> (status, placeholders of its detail).
SPEC: dict[str, tuple[int, frozenset[str]]] = {
    code: (status, frozenset(names.split()))
    for code, status, names in [
        ("invalid_request", 400, "reason"),
        ("invalid_account", 400, "account"),
        ("validation_error", 400, "reason"),
        ("malformed_json", 400, ""),
        ("idempotency_key_required", 400, ""),
        ("unknown_ledger", 404, "ledger"),
        ("insufficient_funds", 422, "account available_points requested_points"),
        ("budget_exceeded", 422, "available_points requested_points"),
        ("idempotency_conflict", 409, "key"),
        ("unknown_transfer", 404, "transfer_id"),
        ("hold_not_open", 409, "transfer_id"),
        ("hold_expired", 409, "transfer_id"),
        ("exceeds_original", 422, "transfer_id remaining_points requested_points"),
        ("unauthorized", 401, ""),
        ("token_expired", 401, ""),
        ("invalid_signature", 401, "reason"),
        ("signature_expired", 401, ""),
        ("replayed_request", 401, ""),
        ("unknown_key", 401, "key_id"),
        ("forbidden", 403, ""),
        ("wrong_tenant", 403, ""),
        ("not_found", 404, ""),
        ("method_not_allowed", 405, ""),
        ("unknown_card", 404, ""),
        ("card_revoked", 403, ""),
        ("card_expired", 403, ""),
        ("card_key_retired", 403, ""),
        ("unknown_resident", 404, ""),
        ("resident_expired", 403, "valid_until"),
        ("resident_erased", 410, ""),
        ("home_city", 409, "city"),
        ("opt_out_blocked", 409, "city held_points"),
        ("erasure_blocked", 409, "held_points"),
        ("level_required", 403, "required_level level"),
        ("not_opted_in", 403, "city"),
        ("unknown_merchant", 404, ""),
        ("merchant_not_approved", 403, ""),
        ("unknown_organization", 404, ""),
        ("organization_not_approved", 403, ""),
        ("floor_limit_exceeded", 422, "points floor_limit_points"),
        ("conflict", 409, "reason"),
        ("body_too_large", 413, "max_bytes"),
        ("unsupported_media_type", 415, ""),
        ("rate_limited", 429, "retry_after_seconds"),
        ("overloaded", 503, ""),
        ("internal_error", 500, ""),
        ("unknown_program", 404, "city"),
        ("invalid_program", 422, "reason"),
        ("invalid_period", 400, "period"),
        ("period_open", 409, "period"),
        ("payments_disabled", 503, ""),
        ("invalid_webhook", 400, "reason"),
        ("export_unavailable", 422, "reason"),
        ("unknown_item", 404, "item_id"),
        ("item_unavailable", 409, "item_id"),
        ("sold_out", 409, "item_id"),
        ("resident_limit_reached", 409, "limit"),
        ("invalid_item", 422, "reason"),
        ("unknown_redemption", 404, ""),
        ("redemption_not_pending", 409, "status"),
        ("not_refundable", 422, "transfer_id kind"),
        ("period_not_published", 404, "period"),
        ("identity_provider_unavailable", 503, "retry_after_seconds"),
        ("database_unavailable", 503, "retry_after_seconds"),
        ("token_revoked", 401, ""),
        ("grant_not_allowed", 403, "role"),
        ("subject_taken", 409, "subject role"),
        ("unknown_credential", 404, ""),
        ("second_principal_required", 403, ""),
        ("unknown_change", 404, ""),
        ("change_not_pending", 409, "status"),
        ("invalid_bank_file", 422, "reason"),
        ("invalid_bank_statement", 422, "reason"),
        ("unknown_correction_target", 404, "kind"),
        ("unknown_correction", 404, ""),
        ("correction_not_pending", 409, "status"),
        ("witness_malformed_submission", 400, "reason"),
        ("witness_untrusted_checkpoint", 403, "origin"),
        ("witness_unknown_log", 404, "origin"),
        ("witness_size_conflict", 409, "tree_size"),
        ("witness_inconsistent_checkpoint", 422, "reason"),
        ("not_in_log", 404, "ledger path"),
        ("unknown_receipt", 404, "sequence"),
        ("receipt_not_checkpointed", 409, "sequence ledger"),
        ("csrf_failed", 403, ""),
        ("confirmation_required", 422, ""),
        ("provider_sign_in_refused", 403, ""),
        ("sign_in_state_mismatch", 400, ""),
        ("subject_not_enrolled", 403, ""),
        ("provider_account_not_linked", 403, ""),
        ("activation_code_invalid", 401, ""),
        ("activation_code_used", 401, ""),
        ("activation_code_expired", 401, ""),
        ("pairing_code_invalid", 401, ""),
        ("pairing_code_used", 401, ""),
        ("pairing_code_expired", 401, ""),
        ("passkey_refused", 401, ""),
        ("unknown_passkey", 404, ""),
        ("mail_unavailable", 503, ""),
    ]
}

NBSP = "\u00a0"


def load(locale: str) -> Catalog:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "problems.po").open("rb") as file:
        return read_po(file, locale=locale, domain="problems")


def translations(locale: str) -> dict[str, str]:
    """Entries gettext would actually use: not fuzzy, not empty."""
    return {m.id: m.string for m in load(locale) if m.id and m.string and not m.fuzzy}


def placeholders(template: str) -> set[str]:
    fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(template) if name is not None]
    # Only bare names: a spec or conversion would make translators part of the formatting logic.
    assert all(spec == "" and conversion is None for _, spec, conversion in fields), template
    return {name for name, _, _ in fields}


def test_codes_and_statuses_match_the_contract():
    assert {code: status for code, (status, _) in SPEC.items()} == PROBLEMS


def test_statuses_are_client_errors_except_internal_error_and_overloaded():
    for code, status in PROBLEMS.items():
        if code in {
            "internal_error",
            "overloaded",
            "payments_disabled",
            "database_unavailable",
            "identity_provider_unavailable",
            "mail_unavailable",
        }:
            assert 500 <= status <= 599, code
        else:
            assert 400 <= status <= 499, code


def test_problem_type_is_a_stable_tag_uri():
    assert problem_type("insufficient_funds") == "tag:entraide.ca,2026:problem:insufficient_funds"


def test_locales_are_discovered_with_french_first():
    assert LOCALES[0] == "fr"
    assert {"fr", "en", "es"} <= set(LOCALES)
    assert len(set(LOCALES)) == len(LOCALES)


@pytest.mark.parametrize("locale", LOCALES)
def test_po_header(locale):
    catalog = load(locale)
    assert str(catalog.locale) == locale
    assert catalog.charset.lower() == "utf-8"
    assert catalog.mime_headers  # parsed from a real header entry
    headers = dict(catalog.mime_headers)
    assert headers["Language"] == locale
    assert "charset=utf-8" in headers["Content-Type"].lower()
    assert headers["Plural-Forms"].startswith("nplurals=")
    assert not catalog.fuzzy


@pytest.mark.parametrize("locale", LOCALES)
def test_every_code_has_title_detail_and_action(locale):
    messages = translations(locale)
    expected = {f"{code}.{part}" for code in PROBLEMS for part in ("title", "detail", "action")}
    expected |= {key for key in translations("fr") if key.startswith("reason.")}
    assert expected - messages.keys() == set(), "missing or fuzzy"
    assert messages.keys() - expected == set(), "stale keys"
    for key in expected:
        assert messages[key].strip() == messages[key], key


def test_english_placeholders_match_the_contract():
    english = translations("en")
    for code, (_, names) in SPEC.items():
        assert placeholders(english[f"{code}.detail"]) == names, code
        assert placeholders(english[f"{code}.title"]) == set(), code
        assert placeholders(english[f"{code}.action"]) == set(), code  # shown as is, in the reference


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != "en"])
def test_translations_have_exactly_the_english_placeholders(locale):
    english, translated = translations("en"), translations(locale)
    for key, template in english.items():
        assert placeholders(translated[key]) == placeholders(template), (locale, key)


def test_template_lists_every_key_untranslated():
    with (LOCALES_DIR / "problems.pot").open("rb") as file:
        template = read_po(file, domain="problems")
    entries = [m for m in template if m.id]
    assert {m.id for m in entries} == set(translations("en"))
    assert all(m.string == "" for m in entries)


def test_french_typography():
    # Québec French: typographic apostrophe, and a no-break space before a colon so it never wraps.
    for key, text in translations("fr").items():
        assert "'" not in text, key
        assert " :" not in text, key
        assert ":" not in text or f"{NBSP}:" in text, key


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "fr"),
        ("", "fr"),
        ("en-CA", "en"),
        ("en-CA,en;q=0.9", "en"),
        ("EN-us", "en"),
        ("en_US", "en"),
        ("es-419", "es"),
        ("fr-CA;q=0.8, en;q=0.9", "en"),
        ("fr-CA;q=0.8, es;q=0.7, en;q=0.2", "fr"),
        ("de-DE, es;q=0.5", "es"),
        ("de-DE, en;q=0.5, *;q=0.1", "en"),
        ("de-DE, *;q=0.1", "fr"),
        ("*", "fr"),
        ("fr;q=0, *", "en"),
        ("fr;q=0, en;q=0, *", "es"),
        ("es;q=0.5, en;q=0.5", "es"),  # ties keep the client's order
        ("en;q=0, fr;q=0, es;q=0", "fr"),  # nothing acceptable: French anyway, no 406
        ("en;q=banana, es", "es"),  # malformed q-value: that range is ignored
        ("en;q=1.5, es", "es"),
        ("zh-Hant-TW, ja", "fr"),
        ("garbage", "fr"),
        ("!!!, ;;;, =q, en-", "fr"),
        ("\x00\xff", "fr"),
        (",".join(["de"] * 10_000) + ",en", "fr"),  # ranges past the cap are not looked at
    ],
)
def test_negotiate_locale(header, expected):
    assert negotiate_locale(header) == expected


FUNDS = {"account": "res:4242", "available_points": 12500, "requested_points": 1250000}


@pytest.mark.parametrize(
    ("locale", "title", "available", "requested"),
    [
        ("fr", "Solde de points insuffisant", f"12{NBSP}500", f"1{NBSP}250{NBSP}000"),
        ("en", "Insufficient points", "12,500", "1,250,000"),
        ("es", "Puntos insuficientes", "12.500", "1.250.000"),
    ],
)
def test_insufficient_funds_document(locale, title, available, requested):
    document = problem_document("insufficient_funds", locale, FUNDS, instance="/v1/transfers/t-1")
    assert document == {
        "type": "tag:entraide.ca,2026:problem:insufficient_funds",
        "title": title,
        "status": 422,
        "detail": document["detail"],
        "code": "insufficient_funds",
        "instance": "/v1/transfers/t-1",
        "account": "res:4242",
        "available_points": 12500,
        "requested_points": 1250000,
    }
    detail = document["detail"]
    assert "res:4242" in detail and available in detail and requested in detail
    assert "12500" not in detail and "{" not in detail
    assert detail == detail.strip() and "  " not in detail


def test_insufficient_funds_detail_wording():
    assert problem_document("insufficient_funds", "en", FUNDS)["detail"] == (
        "The account does not have enough points for this transaction. "
        "Account res:4242 has 12,500 points available, but 1,250,000 were requested."
    )
    assert problem_document("insufficient_funds", "fr", FUNDS)["detail"] == (
        "Le compte n’a pas assez de points pour cette transaction. "
        f"Le compte res:4242 dispose de 12{NBSP}500 points, mais 1{NBSP}250{NBSP}000 points ont été demandés."
    )


def test_instance_is_omitted_when_not_given():
    assert "instance" not in problem_document("not_found", "en", {})


def test_sentence_with_a_missing_parameter_is_left_out():
    detail = problem_document("insufficient_funds", "en", {"account": "res:1", "available_points": 3})["detail"]
    assert detail == "The account does not have enough points for this transaction."
    rate = problem_document("rate_limited", "fr", {})["detail"]
    assert rate == "Trop de requêtes ont été envoyées en peu de temps."


def test_detail_falls_back_to_title_when_every_sentence_needs_a_missing_value():
    document = problem_document("unknown_transfer", "es", {})
    assert document["detail"] == document["title"] == "Transacción desconocida"


WEIRD_PARAMS: list[dict[str, object]] = [
    {},
    {name: None for _, names in SPEC.values() for name in names},
    {name: "" for _, names in SPEC.values() for name in names},
    {name: {"nested": [1, 2]} for _, names in SPEC.values() for name in names},
    {name: math.nan for _, names in SPEC.values() for name in names},
    {name: "{account.__class__} {0} {" for _, names in SPEC.values() for name in names},
    {1: "not a str key", "available_points": object()},  # type: ignore[dict-item]
]


@pytest.mark.parametrize("locale", [*LOCALES, "fr-CA", "EN", "xx", ""])
@pytest.mark.parametrize("params", WEIRD_PARAMS)
def test_missing_or_odd_params_never_raise(locale, params):
    for code in PROBLEMS:
        document = problem_document(code, locale, params)
        assert document["code"] == code and document["status"] == PROBLEMS[code]
        assert isinstance(document["title"], str) and document["title"]
        detail = document["detail"]
        assert isinstance(detail, str) and detail and detail == detail.strip() and "  " not in detail
        if not any(isinstance(value, str) and "{" in value for value in params.values()):
            assert "{" not in detail and "}" not in detail, (code, detail)


def test_identifiers_are_not_formatted_as_numbers():
    document = problem_document("unknown_transfer", "en", {"transfer_id": 1234567})
    assert document["detail"] == "No transaction has the identifier 1234567."
    assert document["transfer_id"] == 1234567


def test_dates_are_localized_in_detail_and_iso_in_members():
    document = problem_document("resident_expired", "fr", {"valid_until": date(2026, 3, 15)})
    assert document["detail"].endswith("Elle était valide jusqu’au 15 mars 2026.")
    assert document["valid_until"] == "2026-03-15"


def test_extension_members_are_json_scalars_and_never_override_standard_members():
    params = {
        "status": 200,
        "title": "hijack",
        "type": "x",
        "detail": "x",
        "instance": "x",
        "code": "x",
        "message": "Expected `int`, got `str`",
        "field": "points",
        "reason": "wrong_type",
        "expected": "int",
        "flag": True,
        "ratio": 0.5,
        "nothing": None,
        "nan": math.nan,
        "nested": {"a": 1},
        "items": [1],
        "ab": "too short",
        "bad-name": 1,
        "_hidden": 1,
    }
    document = problem_document("validation_error", "en", params)
    assert document["status"] == 400 and document["code"] == "validation_error"
    assert document["title"] == "Invalid data"
    assert document["type"] == problem_type("validation_error")
    assert "instance" not in document
    assert (
        document["detail"] == "The request does not contain the expected fields or types. points must be of type int."
    )
    extensions = {k: v for k, v in document.items() if k not in {"type", "title", "status", "detail", "code"}}
    # `message` is free English text: never sent, whatever the caller passes.
    assert extensions == {"field": "points", "reason": "wrong_type", "expected": "int", "flag": True, "ratio": 0.5,
                          "nothing": None}  # fmt: skip


def test_unknown_code_is_an_internal_error_without_its_params():
    document = problem_document("no_such_code", "en", {"secret": "db password"}, instance="/v1/x")
    assert document == {
        "type": "tag:entraide.ca,2026:problem:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "An unexpected error occurred on the server. Try again later.",
        "code": "internal_error",
        "instance": "/v1/x",
    }


@pytest.mark.parametrize(
    ("locale", "expected"), [("fr-CA", "fr"), ("EN", "en"), ("es_MX", "es"), ("de", "fr"), ("", "fr")]
)
def test_locale_argument_is_negotiated_when_not_exact(locale, expected):
    assert problem_document("not_found", locale, {})["title"] == translations(expected)["not_found.title"]


def test_every_locale_has_its_own_wording():
    # Guards against a catalog copied from another language and never translated.
    for other in LOCALES[1:]:
        same = {k for k, v in translations(other).items() if translations("fr")[k] == v}
        assert len(same) <= 2, (other, sorted(same))
