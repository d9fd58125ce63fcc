"""Stable error codes and the localized RFC 9457 problem documents the API answers with.

Every refusal in the API is one of the codes in `PROBLEMS`. Clients branch on `code` (or on the
equivalent `type` URI), never on the wording, so the wording can be translated and improved freely.
This module is the only place where a code becomes text: handlers raise a code and its parameters,
and `problem_document` turns them into the body, in the language negotiated from Accept-Language.

Wording lives in gettext catalogs, `api/locales/<locale>/LC_MESSAGES/problems.po`, read with babel
at first use; nothing is compiled at build time. msgids are keys (`"<code>.title"`,
`"<code>.detail"`), not English, so the English text sits in its own catalog like any other
language. Adding a language means adding one .po file (start from `api/locales/problems.pot`):
`LOCALES` is discovered from the directory, French first because it is the product's default.

A detail is a template with `{name}` placeholders. Detail templates are split into sentences, and a
sentence whose placeholder has no value is left out, so a handler that lacks a number still gets a
readable detail instead of an exception or a sentence with a hole in it.

Two parameters mean the same thing for every code: `field` names the member of the request at
fault, as the client wrote it, and `reason` says why, as a stable code whose sentence is the
catalog's `reason.<reason>` (filled with the same parameters, e.g. "{field} must be between
{min_value} and {max_value}."). Both travel as extension members; in a detail, `{reason}` stands for
that localized sentence, never for the code. A `field` without a reason reads as `invalid_value`.
Free English text (an exception's message, a library's) never reaches a client: a `message`
parameter is ignored. Each code also has a `<code>.action`, what the caller should do, used by the
reference in docs/error-codes.md (`python -m api.problems > docs/error-codes.md` regenerates it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from string import Formatter

from babel.core import negotiate_locale as _babel_negotiate_locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from ledger.domain.errors import LedgerError

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "PROBLEMS",
    "error_params",
    "negotiate_locale",
    "problem_document",
    "problem_type",
    "reference_markdown",
]

PROBLEMS: dict[str, int] = {
    "invalid_request": 400,
    "invalid_account": 400,
    "validation_error": 400,
    "malformed_json": 400,
    "idempotency_key_required": 400,
    "unknown_ledger": 404,
    "insufficient_funds": 422,
    "budget_exceeded": 422,
    "idempotency_conflict": 409,
    "unknown_transfer": 404,
    "hold_not_open": 409,
    "hold_expired": 409,
    "exceeds_original": 422,
    "unauthorized": 401,
    "token_expired": 401,
    "invalid_signature": 401,
    "signature_expired": 401,
    "replayed_request": 401,
    "unknown_key": 401,
    "forbidden": 403,
    "wrong_tenant": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "unknown_card": 404,
    "card_revoked": 403,
    "card_expired": 403,
    "card_key_retired": 403,
    "unknown_resident": 404,
    "resident_expired": 403,
    "resident_erased": 410,
    "home_city": 409,
    "opt_out_blocked": 409,
    "erasure_blocked": 409,
    "level_required": 403,
    "not_opted_in": 403,
    "unknown_merchant": 404,
    "merchant_not_approved": 403,
    "unknown_organization": 404,
    "organization_not_approved": 403,
    "floor_limit_exceeded": 422,
    "conflict": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "overloaded": 503,
    "internal_error": 500,
    "unknown_program": 404,
    "invalid_program": 422,
    "invalid_period": 400,
    "period_open": 409,
    "payments_disabled": 503,
    "invalid_webhook": 400,
    "export_unavailable": 422,
    "unknown_item": 404,
    "item_unavailable": 409,
    "sold_out": 409,
    "resident_limit_reached": 409,
    "invalid_item": 422,
    "unknown_redemption": 404,
    "redemption_not_pending": 409,
    "not_refundable": 422,
    "period_not_published": 404,
    "identity_provider_unavailable": 503,
    "database_unavailable": 503,
    "token_revoked": 401,
    "grant_not_allowed": 403,
    "subject_taken": 409,
    "unknown_credential": 404,
    "second_principal_required": 403,
    "unknown_change": 404,
    "change_not_pending": 409,
    "invalid_bank_file": 422,
    "invalid_bank_statement": 422,
    "unknown_correction_target": 404,
    "unknown_correction": 404,
    "correction_not_pending": 409,
    # the witness (`entraide witness serve`, c2sp.org/tlog-witness)
    "witness_malformed_submission": 400,
    "witness_untrusted_checkpoint": 403,
    "witness_unknown_log": 404,
    "witness_size_conflict": 409,
    "witness_inconsistent_checkpoint": 422,
    "not_in_log": 404,
    "unknown_receipt": 404,
    "receipt_not_checkpointed": 409,
    # the pages (web/)
    "csrf_failed": 403,
    "confirmation_required": 422,
    "provider_sign_in_refused": 403,
    "sign_in_state_mismatch": 400,
    "subject_not_enrolled": 403,
    "provider_account_not_linked": 403,
    # signing in on the web (community/service_layer/activation.py, passkeys.py)
    "activation_code_invalid": 401,
    "activation_code_used": 401,
    "activation_code_expired": 401,
    # pairing a web terminal (merchants/service_layer/pairing.py)
    "pairing_code_invalid": 401,
    "pairing_code_used": 401,
    "pairing_code_expired": 401,
    "passkey_refused": 401,
    "unknown_passkey": 404,
    "mail_unavailable": 503,
}

FALLBACK_CODE = "internal_error"
DEFAULT_LOCALE = "fr"
LOCALES_DIR = Path(__file__).with_name("locales")
DOMAIN = "problems"

# Our cities are in Québec: numbers and dates follow Canadian conventions (fr_CA groups digits
# with a no-break space, en_CA writes "March 15, 2026").
_FORMAT_LOCALES: Mapping[str, str] = {"fr": "fr_CA", "en": "en_CA"}

# Identifiers (accounts, transfers, keys) must be shown as sent, never with grouping separators,
# so only placeholders named as quantities are formatted as numbers.
_QUANTITY_SUFFIXES = ("points", "_bytes", "_seconds", "_value", "_chars", "_items", "_attempts")

_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "code"})
# Free English text (an exception's or a library's message): for logs, never for a client.
_NOT_FOR_CLIENTS = frozenset({"message"})
DEFAULT_REASON = "invalid_value"  # what a `field` without a `reason` says
# RFC 9457 §3.2: extension names should start with a letter, use ALPHA / DIGIT / "_", be 3+ long.
_EXTENSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")

_LANGUAGE_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
# Browsers send a handful of ranges; the cap bounds the work a hostile header can cause.
_MAX_LANGUAGE_RANGES = 32
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


def _discover_locales() -> tuple[str, ...]:
    found = sorted(path.parents[1].name for path in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (DEFAULT_LOCALE, *(locale for locale in found if locale != DEFAULT_LOCALE))


LOCALES: tuple[str, ...] = _discover_locales()


def problem_type(code: str) -> str:
    """The stable `type` URI of a code; a tag URI because it names, it is not meant to be fetched."""
    return f"tag:entraide.ca,2026:problem:{code}"


# --- language negotiation -------------------------------------------------------------------


def _quality(params: Iterable[str]) -> float | None:
    """The q-value of one Accept-Language range, or None when it is malformed (range ignored)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else None
    return 1.0


def _language_ranges(accept_language: str) -> list[tuple[str, float]]:
    """(range, q) pairs in header order, lower-cased with "_" separators as babel compares them."""
    ranges: list[tuple[str, float]] = []
    for item in accept_language.split(",", _MAX_LANGUAGE_RANGES)[:_MAX_LANGUAGE_RANGES]:
        tag, *params = (part.strip() for part in item.split(";"))
        quality = _quality(params)
        if quality is not None and _LANGUAGE_RANGE.fullmatch(tag):
            ranges.append((tag.lower().replace("-", "_"), quality))
    return ranges


def negotiate_locale(accept_language: str | None) -> str:
    """The best of `LOCALES` for an Accept-Language header; French when nothing usable matches.

    `en-CA` matches `en`; `*` stands for the first locale the header does not refuse with `q=0`;
    ranges with a malformed tag or q-value are ignored, and a header of garbage yields French.
    """
    if not accept_language:
        return DEFAULT_LOCALE
    ranges = _language_ranges(accept_language)
    refused = {tag for tag, quality in ranges if quality == 0}
    acceptable = [locale for locale in LOCALES if locale.lower() not in refused]
    wildcard = acceptable[0] if acceptable else DEFAULT_LOCALE
    # sorted() is stable: equal q-values keep the client's order, as RFC 9110 intends.
    preferred = [
        wildcard if tag == "*" else tag for tag, quality in sorted(ranges, key=lambda pair: -pair[1]) if quality > 0
    ]
    by_lower = {locale.lower(): locale for locale in LOCALES}
    match = _babel_negotiate_locale(preferred, list(by_lower), sep="_", aliases={})  # no alias table
    if match is not None:
        return by_lower[match.lower()]
    return wildcard


def _known_locale(locale: str) -> str:
    """Accept a locale from `LOCALES` as is, and anything else ("fr-CA", "EN") by negotiation."""
    return locale if locale in LOCALES else negotiate_locale(locale)


# --- catalogs -------------------------------------------------------------------------------


@cache
def _messages(locale: str) -> Mapping[str, str]:
    """A locale's translated messages; fuzzy and empty entries count as missing, as in gettext."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as file:
        catalog = read_po(file, locale=locale, domain=DOMAIN)
    return {
        message.id: message.string
        for message in catalog
        if isinstance(message.id, str)
        and message.id
        and isinstance(message.string, str)
        and message.string
        and not message.fuzzy
    }


def _text(msgid: str, locale: str) -> str | None:
    # A translation missing from one catalog must not break a response: French always exists.
    for candidate in (locale, DEFAULT_LOCALE):
        text = _messages(candidate).get(msgid)
        if text:
            return text
    return None


# --- rendering ------------------------------------------------------------------------------


def _is_quantity(name: str) -> bool:
    return name.endswith(_QUANTITY_SUFFIXES)


def _localized(name: str, value: object, locale: str) -> str | None:
    """A parameter as text for the detail; None when it has no value fit to show.

    Only strings, numbers and dates are shown: the repr of a container or object is not text for
    a person, and may carry more than the handler meant to disclose.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (int, float, Decimal, date)):
        return None
    if (isinstance(value, float) and not math.isfinite(value)) or (
        isinstance(value, Decimal) and not value.is_finite()
    ):
        return None  # "nan" or "Infinity" points would only confuse
    format_locale = _FORMAT_LOCALES.get(locale, locale)
    try:
        if isinstance(value, datetime):
            return format_datetime(value, format="long", locale=format_locale)
        if isinstance(value, date):
            return format_date(value, format="long", locale=format_locale)
        if _is_quantity(name):
            return format_decimal(value, locale=format_locale)
    except (ValueError, TypeError, LookupError, ArithmeticError):
        pass  # an odd number or locale is still shown, just unformatted
    return str(value)


def _filled(sentence: str, values: Mapping[str, str]) -> str | None:
    """The sentence with its placeholders filled, or None if one has no value or it is malformed."""
    parts: list[str] = []
    try:
        fields = list(Formatter().parse(sentence))
    except ValueError:
        return None  # a broken translation loses a sentence rather than the whole response
    for literal, field, _spec, _conversion in fields:
        parts.append(literal)
        if field is None:
            continue
        # A plain dict lookup: "{x.__class__}" in a translation can never reach an attribute.
        if field not in values:
            return None
        parts.append(values[field])
    return "".join(parts)


def _rendered(template: str, values: Mapping[str, str]) -> str:
    sentences = (_filled(sentence, values) for sentence in _SENTENCE_BREAK.split(template))
    return " ".join(sentence for sentence in sentences if sentence)


def _reason_text(params: Mapping[str, object], locale: str, values: Mapping[str, str]) -> str | None:
    """The localized sentence of `reason` (or of `invalid_value` for a bare `field`); None if unknown."""
    reason = params.get("reason")
    if not isinstance(reason, str) or not reason:
        reason = DEFAULT_REASON if isinstance(params.get("field"), str) else None
    template = _text(f"reason.{reason}", locale) if reason and _EXTENSION_NAME.fullmatch(reason) else None
    return (_rendered(template, values) or None) if template else None


def _detail(code: str, locale: str, params: Mapping[str, object], title: str) -> str:
    template = _text(f"{code}.detail", locale) or title
    values = {
        name: text
        for name, value in params.items()
        if isinstance(name, str)
        and name not in _NOT_FOR_CLIENTS
        and (text := _localized(name, value, locale)) is not None
    }
    values.pop("reason", None)  # a code is not a sentence: `{reason}` is its localized text or nothing
    if (reason := _reason_text(params, locale, values)) is not None:
        values["reason"] = reason
    return _rendered(template, values) or title


def _is_json_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def _extensions(params: Mapping[str, object]) -> dict[str, object]:
    """Parameters clients can read without parsing the detail, e.g. `available_points`."""
    members: dict[str, object] = {}
    for name, value in params.items():
        if (
            not isinstance(name, str)
            or name in _STANDARD_MEMBERS
            or name in _NOT_FOR_CLIENTS
            or not _EXTENSION_NAME.fullmatch(name)
        ):
            continue
        if isinstance(value, date):
            members[name] = value.isoformat()  # dates travel as ISO 8601, whatever the language
        elif _is_json_scalar(value):
            members[name] = value
    return members


def problem_document(
    code: str,
    locale: str,
    params: Mapping[str, object],
    instance: str | None = None,
) -> dict[str, object]:
    """The RFC 9457 body for `code`, worded in `locale`, with `params` filled into the detail.

    JSON-scalar params (and dates, as ISO 8601 strings) are also added as extension members, except
    those named like a standard member. An unknown code becomes `internal_error`, and its params are
    dropped: details of an error we cannot describe are not for clients. Never raises on params.
    """
    if code not in PROBLEMS:
        code, params = FALLBACK_CODE, {}
    locale = _known_locale(locale)
    title = _text(f"{code}.title", locale) or code
    document: dict[str, object] = {
        "type": problem_type(code),
        "title": title,
        "status": PROBLEMS[code],
        "detail": _detail(code, locale, params, title),
        "code": code,
    }
    if instance is not None:
        document["instance"] = instance
    document.update(_extensions(params))
    return document


def error_params(error: LedgerError) -> dict[str, object]:
    """A domain error's parameters for `problem_document(error.code, locale, error_params(error))`.

    Its English text stays out (it is for logs); a transfer named as `ref` is also `transfer_id`,
    the name the catalogs use for it.
    """
    params = dict(error.context)
    if "ref" in params:
        params.setdefault("transfer_id", params["ref"])
    return params


# msgspec's (English) messages, as litestar passes them on, and the reason each one means.
_VALIDATOR_MESSAGES: tuple[tuple[re.Pattern[str], str, str | None], ...] = (
    (re.compile(r"Object missing required field `([^`]{1,100})`"), "required", None),
    (re.compile(r"Object contains unknown field `([^`]{1,100})`"), "unknown_field", None),
    (re.compile(r"Expected `([^`]{1,100})`, got `[^`]{1,100}`"), "wrong_type", "expected"),
    (re.compile(r"Expected `(?:str|bytes)` of length >= (\d{1,19})"), "too_short", "min_chars"),
    (re.compile(r"Expected `(?:str|bytes)` of length <= (\d{1,19})"), "too_long", "max_chars"),
    (re.compile(r"Expected `(?:array|object)` of length <= (\d{1,19})"), "too_many", "max_items"),
    (re.compile(r"Expected `(?:int|float)` >= (-?\d{1,19})"), "below_minimum", "min_value"),
    (re.compile(r"Expected `(?:int|float)` <= (-?\d{1,19})"), "above_maximum", "max_value"),
)
_MAX_FIELD_CHARS = 200


def _pointer(path: str) -> str:
    """`items[2].points` (litestar's key) as the JSON pointer `/items/2/points` (RFC 6901)."""
    steps = re.findall(r"[^.\[\]]+", path)
    return "".join("/" + step.replace("~", "~0").replace("/", "~1") for step in steps)


def validation_params(error: Mapping[str, object]) -> dict[str, object]:
    """The parameters of a `validation_error` from one of litestar's error entries
    (`{"message": ..., "key": ..., "source": ...}`): `field`, `reason` and what the reason names,
    a JSON `pointer` for a body member, and msgspec's own sentence as `validator_message_en`."""
    message = str(error.get("message", ""))[:500]
    key = str(error.get("key") or "")[:_MAX_FIELD_CHARS]
    in_body = str(getattr(error.get("source"), "value", error.get("source"))) == "body"
    params: dict[str, object] = {"reason": DEFAULT_REASON}
    for pattern, reason, name in _VALIDATOR_MESSAGES:
        if (match := pattern.search(message)) is None:
            continue
        params["reason"] = reason
        if name is None:  # the member is named in the message; litestar's key is its parent
            key = match[1] if key in ("", "data") else f"{key}.{match[1]}"
        else:
            params[name] = int(match[1]) if match[1].lstrip("-").isdigit() else match[1]
        break
    if key == "data" and in_body:
        key = ""  # the whole body, as litestar names the handler's argument
    if key:
        params["field"] = key
        if in_body:
            params["pointer"] = _pointer(key)
    if message:
        params["validator_message_en"] = message
    return params


# --- the reference of codes (docs/error-codes.md) -----------------------------------------------

REFERENCE_COMMAND = "python -m api.problems > docs/error-codes.md"
_REFERENCE_LOCALES = (("en", "English"), ("fr", "Français"))
_REFERENCE_INTRO = {
    "en": (
        "Columns: the code (also the `code` member), its HTTP status, its `type` URI, what it means "
        "(the detail template; `{name}` is a parameter, also sent as a member of that name) and what the "
        "caller should do. `{reason}` stands for the sentence of the `reason` member below; `field` names "
        "the request member at fault, `pointer` (validation errors) locates it in the body."
    ),
    "fr": (
        "Colonnes\u00a0: le code (aussi le membre `code`), son statut HTTP, son URI `type`, ce qu’il veut "
        "dire (le modèle du détail; `{nom}` est un paramètre, aussi envoyé comme membre de ce nom) et ce que "
        "l’appelant doit faire. `{reason}` tient lieu de la phrase du membre `reason` ci-dessous; `field` "
        "nomme le membre fautif de la requête, `pointer` (erreurs de validation) le situe dans le corps."
    ),
}
_REASONS_HEADING = {"en": "Reasons", "fr": "Motifs (reason)"}
_COLUMNS = {
    "en": ("Code", "HTTP", "Type", "Title", "What it means", "What to do"),
    "fr": ("Code", "HTTP", "Type", "Titre", "Ce que cela veut dire", "Quoi faire"),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def reason_codes() -> list[str]:
    """Every `reason` the catalogs word, in the French catalog's order."""
    return [key.removeprefix("reason.") for key in _messages(DEFAULT_LOCALE) if key.startswith("reason.")]


def reference_markdown() -> str:
    """docs/error-codes.md: every code and reason, in English and in French, from the catalogs."""
    lines = [
        "# Error codes / Codes d’erreur",
        "",
        f"<!-- Generated from api/locales by `{REFERENCE_COMMAND}`: edit the catalogs, not this file. -->",
        "",
        "Every refusal of the API is an RFC 9457 problem document (`application/problem+json`) whose `code`",
        "is one of these. Clients branch on `code` or `type`, never on the wording, which follows",
        "Accept-Language (fr, the default, en, es). A `type` is a tag URI: it names the code and is not",
        "fetched; this page is its documentation (anchor `#<code>`).",
        "",
    ]
    for locale, language in _REFERENCE_LOCALES:
        prefix = "" if locale == "en" else f"{locale}-"
        lines += [f"## {language}", "", _REFERENCE_INTRO[locale], "", _row(_COLUMNS[locale]),
                  _row("---" for _ in _COLUMNS[locale])]  # fmt: skip
        for code, status in PROBLEMS.items():
            lines.append(_row((
                f'<a id="{prefix}{code}"></a>`{code}`', str(status), f"`{problem_type(code)}`",
                _cell(_text(f"{code}.title", locale) or code), _cell(_text(f"{code}.detail", locale) or ""),
                _cell(_text(f"{code}.action", locale) or ""),
            )))  # fmt: skip
        lines += [
            "",
            f"### {_REASONS_HEADING[locale]}",
            "",
            _row(("reason", _COLUMNS[locale][4])),
            _row(("---", "---")),
        ]
        lines += [_row((f"`{reason}`", _cell(_text(f"reason.{reason}", locale) or ""))) for reason in reason_codes()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
