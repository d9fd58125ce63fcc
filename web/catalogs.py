"""`python -m web.catalogs`: extract the pages' msgids (templates and `web/**.py`) into
`web/locales/web.pot` and merge them into every translated language's `web.po`; `--check` only says
whether a catalog is stale or a translation missing (a test runs it). English is the msgids."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from web.i18n import DOMAIN, LOCALES_DIR

WEB_DIR = Path(__file__).parent
TRANSLATED = ("fr", "es")
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true", "newstyle_gettext": "true"}}


def extracted() -> Catalog:
    template = Catalog(domain=DOMAIN, project="Entraide", version="0.1.0", copyright_holder="Entraide",
                       msgid_bugs_address="Entraide maintainers", fuzzy=False)  # fmt: skip
    for filename, lineno, message, comments, context in extract_from_dir(
        WEB_DIR, METHODS, OPTIONS, strip_comment_tags=True
    ):
        template.add(message, None, [(f"web/{filename}", lineno)], auto_comments=comments, context=context)
    return template


def _po_path(locale: str) -> Path:
    return LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


def _write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=120, omit_header=False, sort_output=True, include_previous=False)


def problems() -> list[str]:
    """What is stale or missing: msgids not in the template, languages with untranslated or fuzzy ones."""
    ids = {m.id for m in extracted() if m.id}
    found: list[str] = []
    pot = LOCALES_DIR / f"{DOMAIN}.pot"
    if not pot.exists() or {m.id for m in _read(pot) if m.id} != ids:
        found.append(f"{pot} is stale: run python -m web.catalogs")
    for locale in TRANSLATED:
        catalog = _read(_po_path(locale), locale) if _po_path(locale).exists() else Catalog(locale=locale)
        translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
        found += [f"{locale}: no translation for {msgid!r}" for msgid in sorted(ids - translated, key=str)]
    return found


def update() -> None:
    template = extracted()
    _write(LOCALES_DIR / f"{DOMAIN}.pot", template)
    for locale in TRANSLATED:
        path = _po_path(locale)
        catalog = _read(path, locale) if path.exists() else Catalog(locale=locale, domain=DOMAIN)
        catalog.update(template, update_header_comment=False, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        _write(path, catalog)


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        missing = problems()
        print("\n".join(missing) or "the pages' catalogs are complete")
        sys.exit(1 if missing else 0)
    update()
    print("\n".join(problems()) or "the pages' catalogs are complete")
