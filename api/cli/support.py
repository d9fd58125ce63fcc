"""What every `entraide` command shares: consoles, common options, and one error policy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from api.bootstrap import Context, Settings, open_context
from ledger.adapters.database import DatabaseMissing
from ledger.adapters.keystore import KeyStoreError
from ledger.domain.checkpoint import NoteError
from ledger.domain.errors import LedgerError

out = Console()
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL or SQLite path [default: the data directory's]")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env ENTRAIDE_DATA_DIR]")]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Known failures become one clear line and exit status 2."""
    try:
        yield
    except (LedgerError, KeyStoreError, NoteError, DatabaseMissing, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise fail(f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None


def context(db: str | None, data_dir: Path | None, **kw) -> Context:
    """The services on the database `--db` names; it must exist unless the caller passes create=True
    (only `entraide init` and `entraide demo` do)."""
    return open_context(Settings.load(db, data_dir), **kw)
