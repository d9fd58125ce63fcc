"""The language the `entraide` command speaks: French unless `--lang` or the environment says otherwise.

Text a person reads goes through `_()`. msgids are the English text itself, so English needs no
catalog and a missing translation reads in English rather than as a key; the French (and any other)
wording lives in `api/locales/<lang>/LC_MESSAGES/cli.po`, read with babel at first use, as
`api.problems` reads its own domain. Help texts are written in English in the code (typer options,
docstrings) and translated when the command tree is built (`localize`), because typer evaluates
them at import, before the language is known.

The language comes from, in order: `--lang` anywhere on the command line, then the environment as
gettext reads it (LANGUAGE, LC_ALL, LC_MESSAGES, LANG; `en_CA.UTF-8` is English; `C` and `POSIX`
say nothing), then French. Machine-readable output (JSON, CSV, exit codes) never changes with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

DEFAULT_LANGUAGE = "fr"
LANGUAGES = ("fr", "en")  # English is the msgids; other languages have a cli.po
LANGUAGE_ENV = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
DOMAIN = "cli"
LOCALES_DIR = Path(__file__).parents[1] / "locales"
_TAG = re.compile(r"[A-Za-z]{2,3}")

_current = DEFAULT_LANGUAGE


def _language_of(tag: str) -> str | None:
    """`en_CA.UTF-8` → en, `fr-CA` → fr; None for C, POSIX, an empty or unsupported tag."""
    primary = re.split(r"[-_.@]", tag.strip(), maxsplit=1)[0].lower()
    return primary if _TAG.fullmatch(primary) and primary in LANGUAGES else None


def split_lang(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """The `--lang X` / `--lang=X` of a command line, and the arguments without it: it may come after a
    subcommand (`entraide admin --help --lang en`), where the subcommand itself would refuse it."""
    found, rest, args = None, [], list(args)
    while args:
        arg = args.pop(0)
        if arg == "--":
            rest += [arg, *args]
            break
        if arg == "--lang" and args:
            found = args.pop(0)
        elif arg.startswith("--lang="):
            found = arg.partition("=")[2]
        else:
            rest.append(arg)
    return found, rest


def resolve(flag: str | None, environ: Mapping[str, str]) -> str:
    """The language to speak, from `--lang` first, then the environment, then French."""
    if flag is not None:
        return _language_of(flag) or DEFAULT_LANGUAGE
    for name in LANGUAGE_ENV:
        for tag in environ.get(name, "").split(":"):  # LANGUAGE is a list, "fr_CA:en"
            if language := _language_of(tag):
                return language
    return DEFAULT_LANGUAGE


def use(language: str) -> None:
    global _current
    _current = language if language in LANGUAGES else DEFAULT_LANGUAGE


def current() -> str:
    return _current


@cache
def _messages(language: str) -> Mapping[str, str]:
    path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    from babel.messages.pofile import read_po

    with path.open("rb") as file:
        catalog = read_po(file, locale=language, domain=DOMAIN)
    return {
        m.id: m.string
        for m in catalog
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string and not m.fuzzy
    }


def _(msgid: str) -> str:
    """`msgid` (English) in the current language; English when it has no translation."""
    return _messages(_current).get(msgid, msgid)


def problem_text(code: str, params: Mapping[str, object]) -> str:
    """A domain error as the API words it (`api.problems`), in the CLI's language: "title: detail"."""
    from api.problems import problem_document

    document = problem_document(code, _current, params)
    title, detail = str(document["title"]), str(document["detail"])
    return detail if detail == title else f"{title} : {detail}" if _current == "fr" else f"{title}: {detail}"


# typer's own words in its rich help screens (module constants it reads when rendering)
_TYPER_TEXTS = ("ARGUMENTS_PANEL_TITLE", "OPTIONS_PANEL_TITLE", "COMMANDS_PANEL_TITLE", "ERRORS_PANEL_TITLE",
                "ABORTED_TEXT", "RICH_HELP", "DEFAULT_STRING", "ENVVAR_STRING", "REQUIRED_LONG_STRING",
                "DEPRECATED_STRING")  # fmt: skip
_typer_english: dict[str, str] = {}


def localize(command, context_class) -> None:
    """Translate the help of a built command tree in place (commands, options, the --help option)."""
    from typer import rich_utils

    for name in _TYPER_TEXTS:
        if hasattr(rich_utils, name):
            english = _typer_english.setdefault(name, getattr(rich_utils, name))
            setattr(rich_utils, name, _(english))
    _localize(command, context_class(command))


def _localize(command, ctx) -> None:
    for attr in ("help", "short_help"):
        if text := getattr(command, attr, None):
            setattr(command, attr, _(text))
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if text := getattr(param, "help", None):
            param.help = _(text)
    for sub in getattr(command, "commands", {}).values():
        _localize(sub, ctx)
