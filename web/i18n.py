"""The pages' words: English msgids in the `web` domain, translated in `web/locales/<lang>/LC_MESSAGES/web.po`.

`python -m web.catalogs` extracts the msgids from the templates and `web/**.py` into `web/locales/web.pot`
and merges them into each language's catalog. A page's language is the visitor's choice (the `lang`
cookie the language switch sets), else their browser's (`Accept-Language`), else French. Numbers,
money and dates follow Canadian conventions, in the city's time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, get_decimal_symbol, get_group_symbol
from babel.support import NullTranslations, Translations

from api.problems import DEFAULT_LOCALE, LOCALES, negotiate_locale

LOCALES_DIR = Path(__file__).with_name("locales")
DOMAIN = "web"
LANGUAGE_COOKIE = "lang"
LANGUAGE_NAMES = {"fr": "Français", "en": "English", "es": "Español"}  # each in its own language
# Our cities are in Québec: fr_CA groups digits with a no-break space, en_CA writes "March 15, 2026".
_FORMAT_LOCALES = {"fr": "fr_CA", "en": "en_CA", "es": "es"}
DEFAULT_TIME_ZONE = "America/Toronto"


def page_locale(cookie: str | None, accept_language: str | None) -> str:
    """The visitor's chosen language if it is one of ours, else the browser's best, else French."""
    return cookie if cookie in LOCALES else negotiate_locale(accept_language)


@cache
def translations(locale: str) -> NullTranslations:
    """A language's catalog as gettext translations (fuzzy entries left out, as gettext does);
    the English msgids themselves where a language has no catalog or a msgid no translation."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as file:
        catalog = read_po(file, locale=locale, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(locale: str, message: str) -> str:
    return translations(locale).gettext(message)


def _format_locale(locale: str) -> str:
    return _FORMAT_LOCALES.get(locale, locale)


def points(locale: str, amount_points: int) -> str:
    """A whole number of points, grouped as the language writes numbers ("12 345")."""
    assert isinstance(amount_points, int)
    return format_decimal(amount_points, locale=_format_locale(locale))


def signed_points(locale: str, amount_points: int) -> str:
    """A movement of points with its sign: "+12", "−300" (a true minus sign, as typography wants)."""
    text = points(locale, abs(amount_points))
    return f"+{text}" if amount_points > 0 else f"−{text}" if amount_points < 0 else text


def dollars(locale: str, amount_cents: int) -> str:
    """Cents as dollars, exactly ("12,34 $" in French, "$12.34" in English): no float on the way."""
    assert isinstance(amount_cents, int)
    return format_currency(Decimal(amount_cents).scaleb(-2), "CAD", locale=_format_locale(locale))


def moment(locale: str, time_us: int, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """A point in time (microseconds since the epoch) in the city's zone, short: "1 déc. 2025 09 h 40"."""
    when = dt.datetime.fromtimestamp(time_us / 1_000_000, ZoneInfo(time_zone))
    form = _format_locale(locale)
    return f"{format_skeleton('yMMMd', when.date(), locale=form)} {format_time(when, 'short', locale=form)}"


def day(locale: str, date: dt.date, form: str = "long") -> str:
    return format_date(date, format=form, locale=_format_locale(locale))


# --- what a visitor types, read back in their language ------------------------------------------

_SPACES = (" ", "\u00a0", "\u202f")  # what people type between thousands, and what fr_CA writes


def _separators(locale: str) -> tuple[str, str]:
    """The grouping and decimal marks of the language: ("\u00a0", ",") in French, (",", ".") in English."""
    form = _format_locale(locale)
    return get_group_symbol(form), get_decimal_symbol(form)


def _whole(text: str, group: str) -> str | None:
    """Digits, grouped by threes with `group` (any space when the language groups with spaces) or not at all."""
    marks = "".join(map(re.escape, _SPACES)) if group in _SPACES else re.escape(group)
    if re.fullmatch(r"[0-9]+", text):
        return text
    if re.fullmatch(rf"[0-9]{{1,3}}(?:[{marks}][0-9]{{3}})+", text):
        return re.sub(rf"[{marks}]", "", text)
    return None


def parse_points(locale: str, text: str) -> int | None:
    """A whole number as typed in the language ("1 200" in French, "1,200" in English); None if it is not one."""
    digits = _whole(text.strip(), _separators(locale)[0])
    return None if digits is None else int(digits)


def parse_cents(locale: str, text: str) -> int | None:
    """An amount of dollars as typed in the language ("2,50" or "2,50 $" in French, "$2.50" in English)
    as integer cents, exactly (no float); at most two decimals; None if it is not one. Where the
    language groups thousands with spaces, a point is also read as the decimal mark ("2.50")."""
    group, decimal = _separators(locale)
    amount = text.strip().removeprefix("$").removesuffix("$").strip()
    marks = {decimal, "."} if group in _SPACES else {decimal}
    whole, fraction = amount, ""
    for mark in marks:
        if mark in amount:
            whole, _, fraction = amount.rpartition(mark)
            break
    digits = _whole(whole, group)
    if digits is None or not re.fullmatch(r"[0-9]{0,2}", fraction):
        return None
    return int(digits) * 100 + int(fraction.ljust(2, "0"))


def cents_input(locale: str, amount_cents: int) -> str:
    """Cents as the language writes an amount to type back into a field ("2,50" in French, "2.50" in English)."""
    assert isinstance(amount_cents, int) and amount_cents >= 0
    return format_decimal(Decimal(amount_cents).scaleb(-2), format="#,##0.00", locale=_format_locale(locale))


def N_(message: str) -> str:
    """A msgid for `python -m web.catalogs` to extract, translated where it is shown (`gettext`)."""
    return message


__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_COOKIE",
    "LANGUAGE_NAMES",
    "LOCALES",
    "N_",
    "cents_input",
    "dollars",
    "gettext",
    "moment",
    "page_locale",
    "parse_cents",
    "parse_points",
    "points",
    "signed_points",
    "translations",
]  # fmt: skip
