"""The `entraide` command a newcomer meets: French by default, English from `--lang` or the environment,
help without loading the heavy half of the program, and one clear line when the port is taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from babel.messages.extract import extract_from_file
from typer.testing import CliRunner

from api.cli import app, i18n

runner = CliRunner()
NO_LANGUAGE = dict.fromkeys(i18n.LANGUAGE_ENV, "")
HEAVY = ("sqlalchemy", "litestar", "uvicorn", "cryptography", "alembic", "psycopg", "stripe", "meilisearch", "tantivy",
         "xmlschema", "rich.progress")  # fmt: skip
# Runs `python -m api.cli --help` as the installed command would, then says which modules it loaded.
HELP_AND_MODULES = """
import json, runpy, sys
sys.argv = ["entraide", *sys.argv[1:]]
try:
    runpy.run_module("api.cli", run_name="__main__")
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(sys.modules)))
"""


def help_in(environ: dict[str, str], *args: str) -> tuple[str, list[str]]:
    env = {**os.environ, **NO_LANGUAGE, "COLUMNS": "200", **environ}
    result = subprocess.run([sys.executable, "-c", HELP_AND_MODULES, *args, "--help"], capture_output=True, text=True, check=False,
                            env=env, timeout=60, cwd=Path(__file__).parents[1])  # fmt: skip
    assert result.returncode == 0, result.stderr
    text, _, modules = result.stdout.strip().rpartition("\n")
    return text, json.loads(modules)


def invoke(language_env: dict[str, str], *args: str) -> typer.testing.Result:
    return runner.invoke(app, list(args), env={**NO_LANGUAGE, **language_env})


def test_help_is_french_by_default_and_loads_nothing_heavy():
    text, modules = help_in({"LANG": "C.UTF-8"})
    assert "Commandes" in text and "le registre des points" in text and "Afficher cette aide" in text
    loaded = [m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY]
    assert loaded == [], f"`entraide --help` imports {loaded}: import them in the command that needs them"


@pytest.mark.parametrize("environ, args", [({"LANG": "en_CA.UTF-8"}, ()), ({"LANG": "fr_CA.UTF-8"}, ("--lang", "en")),
                                           ({"LANGUAGE": "en_CA:fr"}, ()), ({}, ("admin", "--lang=en"))])  # fmt: skip
def test_help_is_english_from_the_environment_or_lang(environ, args):
    text, _ = help_in(environ, *args)
    assert "Commands" in text and "Show this message and exit." in text and "Commandes" not in text


def test_language_resolution():
    assert i18n.resolve(None, {}) == "fr"
    assert i18n.resolve(None, {"LANG": "C"}) == "fr" and i18n.resolve(None, {"LANG": "POSIX"}) == "fr"
    assert i18n.resolve(None, {"LANG": "en_CA.UTF-8"}) == "en"
    assert i18n.resolve(None, {"LC_ALL": "fr_CA.UTF-8", "LANG": "en_US.UTF-8"}) == "fr"  # LC_ALL overrides LANG
    assert i18n.resolve(None, {"LANGUAGE": "de:en", "LANG": "fr_CA"}) == "en"  # first supported of the list
    assert i18n.resolve("EN", {"LANG": "fr_CA"}) == "en" and i18n.resolve("de", {"LANG": "en"}) == "fr"
    assert i18n.split_lang(["admin", "--lang", "en", "enrol", "--", "--lang"]) == (
        "en",
        ["admin", "enrol", "--", "--lang"],
    )


def test_output_and_errors_in_both_languages(tmp_path):
    common = ["--db", str(tmp_path / "x.db"), "--data-dir", str(tmp_path)]
    created = invoke({"LANG": "fr_CA.UTF-8"}, "init", *common)
    assert created.exit_code == 0 and "créée : schéma en révision" in " ".join(created.output.split())
    again = invoke({}, "--lang", "en", "init", *common)
    assert again.exit_code == 0 and "is already initialised" in " ".join(again.output.split())

    # A domain error is worded as the API words it (api.problems), in the same language.
    refused = invoke({}, "admin", "enrol", "--city", "atlantis", "--name", "X", *common)
    assert refused.exit_code == 2 and refused.output.startswith("erreur : Programme inconnu")
    assert "Aucun programme de récompenses n’est configuré pour atlantis." in refused.output
    refused = invoke({"LANG": "en_CA.UTF-8"}, "admin", "enrol", "--city", "atlantis", "--name", "X", *common)
    assert refused.exit_code == 2 and refused.output.startswith("error: Unknown program: No rewards program is set up")
    assert refused.output.count("\n") == 1

    # Machine-readable output does not change with the language.
    shown = [invoke({"LANG": lang}, "admin", "tokens", "--city", "brossard", *common) for lang in ("fr_CA", "en_CA")]
    assert shown[0].exit_code == 0 and shown[0].output == shown[1].output and json.loads(shown[0].output) == []


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_in_use_is_one_line_and_exit_2(busy_port, command, tmp_path):
    data = ["--data-dir", str(tmp_path)]
    if command == "serve":
        assert invoke({}, "init", *data).exit_code == 0
    result = invoke({"LANG": "en_CA"}, command, "--port", str(busy_port), *data)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{busy_port}") and result.output.count("\n") == 1
    assert "serving" not in result.output
    if command == "demo":
        assert not any(tmp_path.glob("*.db"))  # refused before minutes of seeding, not after


def _cli_msgids() -> Iterator[str]:
    """Every text of the CLI a person reads: the help of the whole command tree, typer's own words, and
    each `_()` of api/cli."""
    root = typer.main.get_command(app)
    context = typer.Context(root)

    def walk(command) -> Iterator[str]:
        yield from (text for text in (command.help, command.short_help) if text)
        help_option = command.get_help_option(context)
        yield from (param.help for param in [*command.params, help_option] if param is not None and param.help)
        for sub in getattr(command, "commands", {}).values():
            yield from walk(sub)

    yield from walk(root)
    from typer import rich_utils

    yield from (i18n._typer_english.get(name, getattr(rich_utils, name)) for name in i18n._TYPER_TEXTS
                if hasattr(rich_utils, name))  # fmt: skip
    for path in sorted(Path(i18n.__file__).parent.glob("*.py")):
        yield from (message for _, message, _, _ in extract_from_file("python", str(path), keywords={"_": None}))


def test_every_text_has_a_french_translation_with_the_same_placeholders():
    import string

    french = i18n._messages("fr")
    missing = sorted({msgid for msgid in _cli_msgids() if msgid not in french})
    assert missing == [], "add these to api/locales/fr/LC_MESSAGES/cli.po"

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}

    assert [msgid for msgid, text in french.items() if fields(msgid) != fields(text)] == []
