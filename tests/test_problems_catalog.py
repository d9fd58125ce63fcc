"""The problem catalog against the code that raises: every error class has a code, every raise site
names its field with `field=` and its why with `reason=` (never `message=`), every reason and every
detail parameter is worded and supplied, and docs/error-codes.md is what the generator prints.

Raise sites are found by reading the source (ast), so a branch no test reaches is checked too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.pofile import read_po

from api.problems import (
    LOCALES,
    PROBLEMS,
    REFERENCE_COMMAND,
    error_params,
    problem_document,
    reason_codes,
    reference_markdown,
    validation_params,
)
from ledger.domain.errors import InvalidRequest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "community", "finance", "ledger", "marketplace", "merchants", "operations", "web")
# Parameters every code may get whatever the raise site: the localized sentence of the reason, and
# what `error_params` derives (a transfer named as `ref` is also `transfer_id`).
DERIVED = {"reason", "field", "transfer_id"}


def _catalog(locale: str) -> dict[str, str]:
    with (ROOT / "api" / "locales" / locale / "LC_MESSAGES" / "problems.po").open("rb") as file:
        return {m.id: m.string for m in read_po(file, locale=locale) if m.id and m.string and not m.fuzzy}


def _names(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def _modules() -> list[tuple[Path, ast.Module]]:
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return [(path, ast.parse(path.read_text(), str(path))) for path in paths]


MODULES = _modules()


def _error_classes() -> dict[str, str]:
    """Class name → code, for LedgerError and every subclass defined in the code base."""
    codes: dict[str, str] = {"LedgerError": "ledger_error"}
    classes = [node for _, tree in MODULES for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    changed = True
    while changed:  # subclasses of subclasses, in any order of definition
        changed = False
        for node in classes:
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
            parent = next((b for b in bases if b in codes), None)
            if parent is None or node.name in codes:
                continue
            own = [s.value.value for s in node.body if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
                   and any(isinstance(t, ast.Name) and t.id == "code" for t in s.targets)]  # fmt: skip
            codes[node.name] = own[0] if own else codes[parent]
            changed = True
    return codes


ERRORS = _error_classes()


def _raise_sites() -> list[tuple[str, str, ast.Call]]:
    """(where, code, call) for every construction of an error class."""
    sites = []
    for path, tree in MODULES:
        # `error = BudgetExceeded if ... else InsufficientFunds; raise error(...)` raises either class.
        chosen = {target.id: [ERRORS[n.id] for n in (node.value.body, node.value.orelse) if getattr(n, "id", None) in ERRORS]
                  for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.IfExp)
                  for target in node.targets if isinstance(target, ast.Name)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                codes = [ERRORS[name]] if name in ERRORS else chosen.get(name, [])
                sites += [(f"{path.relative_to(ROOT)}:{node.lineno}", code, node) for code in codes]
    return sites


SITES = _raise_sites()


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg is not None}


def test_the_scan_finds_the_error_classes_and_their_raise_sites():
    assert {"InvalidRequest", "InvalidItem", "Conflict", "InsufficientFunds", "InvalidSignature"} <= ERRORS.keys()
    assert len(SITES) > 150


def test_every_error_class_has_a_code_of_the_catalog():
    assert {name: code for name, code in ERRORS.items() if code not in PROBLEMS} == {"LedgerError": "ledger_error"}


def test_no_raise_site_passes_message():
    assert [where for where, _, call in SITES if "message" in _keywords(call)] == []
    with pytest.raises(TypeError, match="field="):
        InvalidRequest("limit is 1 to 500", message="limit")


def test_field_and_reason_are_where_the_catalog_reads_them():
    error = InvalidRequest("limit is 1 to 500", field="limit", reason="out_of_range", min_value=1, max_value=500)
    assert error.detail == "limit is 1 to 500"  # the English, for logs and the CLI
    assert error.context == {"field": "limit", "reason": "out_of_range", "min_value": 1, "max_value": 500}
    document = problem_document(error.code, "fr", error_params(error))
    assert document["detail"] == "La requête n’est pas valide. limit doit être compris entre 1 et 500."
    assert problem_document(error.code, "en", error_params(error))["detail"] == (
        "The request is not valid. limit must be between 1 and 500."
    )
    assert document["field"] == "limit" and document["reason"] == "out_of_range" and "message" not in document


def test_every_field_comes_with_a_literal_reason_the_catalogs_word():
    worded = set(reason_codes())
    missing = [where for where, _, call in SITES if "field" in _keywords(call) and "reason" not in _keywords(call)]
    assert missing == []
    reasons = {where: kw["reason"] for where, _, call in SITES if "reason" in (kw := _keywords(call))}
    assert {w: ast.unparse(r) for w, r in reasons.items() if not isinstance(r, ast.Constant)} == {
        # the signature checker's own reason codes, listed below
        w: "exc.reason"
        for w, r in reasons.items()
        if ast.unparse(r) == "exc.reason"
    }
    assert {r.value for r in reasons.values() if isinstance(r, ast.Constant)} - worded == set()


def test_every_signature_reason_is_worded():
    rejected = {node.args[0].value for _, tree in MODULES for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SignatureRejected"
                and node.args and isinstance(node.args[0], ast.Constant)}  # fmt: skip
    assert len(rejected) >= 5
    # `expired` and `unknown_key` become codes of their own (signature_expired, unknown_key).
    assert rejected - {"expired", "unknown_key"} - set(reason_codes()) == set()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_reason_is_worded_in_every_language_with_the_english_placeholders(locale):
    english, catalog = _catalog("en"), _catalog(locale)
    for reason in reason_codes():
        assert catalog.get(f"reason.{reason}"), (locale, reason)
        assert _names(catalog[f"reason.{reason}"]) == _names(english[f"reason.{reason}"]), (locale, reason)


def _supplied() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Parameter names raise sites pass, per code and per literal reason."""
    by_code: dict[str, set[str]] = defaultdict(set)
    by_reason: dict[str, set[str]] = defaultdict(set)
    for _, code, call in SITES:
        keywords = _keywords(call)
        by_code[code] |= keywords.keys()
        if isinstance(reason := keywords.get("reason"), ast.Constant):
            by_reason[reason.value] |= keywords.keys()
    # The app's own problems: `_problem(request, "<code>", {...})` and the framework's statuses.
    app = ast.parse((ROOT / "api" / "http" / "app.py").read_text())
    for node in ast.walk(app):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_problem" and len(node.args) == 3:
            code, params = node.args[1], node.args[2]
            keys = (
                {k.value for k in params.keys if isinstance(k, ast.Constant)} if isinstance(params, ast.Dict) else set()
            )
            codes = [code.value] if isinstance(code, ast.Constant) else list(PROBLEMS)
            for name in codes:
                by_code[name] |= keys
    return by_code, by_reason


def test_every_placeholder_is_supplied_by_some_raise_site():
    """Best effort: a template naming a parameter nobody passes shows a sentence no one ever reads."""
    by_code, by_reason = _supplied()
    english = _catalog("en")
    unsupplied = {code: missing for code in PROBLEMS
                  if (missing := _names(english[f"{code}.detail"]) - by_code[code] - DERIVED)}  # fmt: skip
    assert unsupplied == {}
    validator = {"wrong_type": {"expected"}, "too_short": {"min_chars"}, "too_long": {"max_chars"},
                 "too_many": {"max_items"}, "below_minimum": {"min_value"}, "above_maximum": {"max_value"}}  # fmt: skip
    for reason, names in validator.items():
        by_reason[reason] |= names
    unsupplied = {reason: missing for reason in reason_codes()
                  if (missing := _names(english[f"reason.{reason}"]) - by_reason[reason] - {"field"})}  # fmt: skip
    assert unsupplied == {}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "Expected `int`, got `str`", "key": "points", "source": "body"},
         {"field": "points", "pointer": "/points", "reason": "wrong_type", "expected": "int"}),
        ({"message": "Object missing required field `card`", "key": "data", "source": "body"},
         {"field": "card", "pointer": "/card", "reason": "required"}),
        ({"message": "Object contains unknown field `zz`", "key": "items[2]", "source": "body"},
         {"field": "items[2].zz", "pointer": "/items/2/zz", "reason": "unknown_field"}),
        ({"message": "Expected `str` of length <= 200", "key": "name", "source": "body"},
         {"field": "name", "pointer": "/name", "reason": "too_long", "max_chars": 200}),
        ({"message": "Expected `int` >= 1", "key": "limit", "source": "query"},
         {"field": "limit", "reason": "below_minimum", "min_value": 1}),
        ({"message": "Invalid enum value 'x'", "key": "kind", "source": "body"},
         {"field": "kind", "pointer": "/kind", "reason": "invalid_value"}),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field_and_say_why_in_every_language(error, expected):
    params = validation_params(error)
    assert params == {**expected, "validator_message_en": error["message"]}
    for locale in LOCALES:
        detail = problem_document("validation_error", locale, params)["detail"]
        assert expected["field"] in detail and "Expected" not in detail, (locale, detail)
    assert "{" not in problem_document("validation_error", "es", params)["detail"]


def test_the_reference_is_current():
    reference = (ROOT / "docs" / "error-codes.md").read_text()
    assert REFERENCE_COMMAND in reference.splitlines()[2]
    assert reference == reference_markdown(), f"stale: run `{REFERENCE_COMMAND}`"
    for code in PROBLEMS:
        assert f'<a id="{code}"></a>' in reference and f'<a id="fr-{code}"></a>' in reference, code
