"""What every `entraide` command shares: consoles, common options, progress bars, and one error policy.

Nothing heavy is imported here at module level (no database, web framework or crypto): `entraide
--help` must answer at once, so each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from api.cli.i18n import _, problem_text

if TYPE_CHECKING:
    from api.bootstrap import Context

out = Console()
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL or SQLite path [default: the data directory's]")
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env ENTRAIDE_DATA_DIR]")]
City = Annotated[str, typer.Option("--city", help="City (ledger) id, e.g. brossard")]


def actor() -> str:
    """Who the audit trail names for a command run here."""
    return f"cli:{getpass.getuser()}"


def plain(value: object) -> Any:
    """A service's result as plain JSON values, whether the service returns a dict or a typed struct."""
    import msgspec

    return msgspec.to_builtins(value)


def fail(message: str, code: int = 2) -> typer.Exit:
    label = _("error:")
    err.print(f"[bold red]{label}[/] {message}", highlight=False)
    return typer.Exit(code)


def _known_failure(exc: Exception) -> str | None:
    """The one line a known failure is told in, or None for a bug (which keeps its traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from api.problems import PROBLEMS
    from ledger.adapters.database import DatabaseMissing
    from ledger.adapters.keystore import KeyStoreError
    from ledger.domain.checkpoint import NoteError
    from ledger.domain.errors import LedgerError

    if isinstance(exc, LedgerError) and exc.code in PROBLEMS:
        return problem_text(exc.code, {**exc.context, "message": exc.detail})  # as the API words it
    if isinstance(exc, (LedgerError, KeyStoreError, NoteError, DatabaseMissing, ValueError, OSError)):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        return _("database: {kind}: {reason}").format(kind=exc.__class__.__name__, reason=str(exc).splitlines()[0])
    return None


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Known failures become one clear line and exit status 2."""
    try:
        yield
    except Exception as exc:
        message = _known_failure(exc)
        if message is None:
            raise
        raise fail(message) from None


def context(db: str | None, data_dir: Path | None, **kw) -> Context:
    """The services on the database `--db` names; it must exist unless the caller passes create=True
    (only `entraide init` and `entraide demo` do)."""
    from api.bootstrap import Settings, open_context

    return open_context(Settings.load(db, data_dir), **kw)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (give it a translated label); yields `advance(n)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def check_port_free(host: str, port: int) -> None:
    """Exit 2 with one line if nothing can listen on host:port, before anything says it is serving.

    SO_REUSEADDR as uvicorn sets it: a port whose old connections linger is free, one with a
    listener is not."""
    try:
        family, kind, proto, _canon, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                   flags=socket.AI_PASSIVE)[0]  # fmt: skip
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise fail(_("cannot listen on {host}:{port}: {reason} (another server? choose one with --port)")
                   .format(host=host, port=port, reason=reason)) from None  # fmt: skip
