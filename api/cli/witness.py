"""`entraide witness`: run a witness of other cities' logs (c2sp.org/tlog-witness), make its key,
and build its LOGS file from a city's published keys. docs/ledger-format.md, "Witnesses"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from api.cli.i18n import _
from api.cli.support import check_port_free, errors, fail, out

witness_app = typer.Typer(help="A witness of other cities' logs: serve it, make its key, list a city's log keys.",
                          no_args_is_help=True)  # fmt: skip

KeyFile = Annotated[Path, typer.Option("--key", help="The witness's key file (entraide witness keygen)")]
StateDir = Annotated[Path, typer.Option("--state", help="Directory of the witness's state (created if missing)")]
LogsFile = Annotated[Path, typer.Option("--logs", help="The logs it witnesses: one log vkey per line")]


@witness_app.command()
def serve(key: KeyFile, state: StateDir, logs: LogsFile,
          host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8080) -> None:  # fmt: skip
    """Serve the witness: POST /add-checkpoint, GET /<origin hash>/checkpoint, GET /evidence."""
    import logging

    import uvicorn

    from api.http.witness_app import create_witness_app
    from ledger.adapters.witness_state import WitnessState
    from ledger.domain.witness import parse_logs, parse_private_key
    from ledger.service_layer.witness import Witness

    with errors():
        if key.stat().st_mode & 0o077:
            raise ValueError(_("{path} is readable by others; chmod 600 it").format(path=key))
        witness = Witness(parse_private_key(key.read_text()), parse_logs(logs.read_text()), WitnessState(state))
    check_port_free(host, port)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # fork evidence is told on stderr
    out.print(_("witness {name} serving on {root}, for {count} logs").format(
        name=witness.key.name, root=f"http://{host}:{port}", count=len(witness.logs)))  # fmt: skip
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_level="warning")


@witness_app.command()
def keygen(name: Annotated[str, typer.Option("--name", help="The witness's name, e.g. witness.delson.example/w1")],
           out_file: Annotated[Path, typer.Option("--out", help="Where to write the key (mode 0600; never overwritten)")]
           ) -> None:  # fmt: skip
    """Make a witness key; prints its verifier key (type 0x04) for the logs that will use it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from ledger.domain.witness import WitnessKey

    if not name or any(c.isspace() or c == "+" for c in name):
        raise fail(_("a witness name has no spaces and no '+'"))
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key = WitnessKey(name, seed)
    with errors():
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.private_text())
            handle.flush()
            os.fsync(handle.fileno())
    out.print(key.vkey(), highlight=False, soft_wrap=True)


@witness_app.command("logs")
def logs_(url: Annotated[str, typer.Option("--url", help="The city's API, e.g. https://brossard.example")],
          city: Annotated[str, typer.Option("--city", help="City (ledger) id, e.g. brossard")]) -> None:  # fmt: skip
    """Print a city's log keys as LOGS lines (from GET /v1/transparency/{city}/keys): append them to LOGS."""
    import httpx

    from ledger.domain.checkpoint import origin
    from ledger.domain.witness import logs_line, parse_logs

    with errors():
        try:
            response = httpx.get(f"{url.rstrip('/')}/v1/transparency/{city}/keys", timeout=30)
            response.raise_for_status()
            document = response.json()
            lines = [logs_line(k["vkey"], k["valid_from_us"], k["valid_until_us"]) for k in document["keys"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(_("{url}: not a city's keys: {reason}").format(url=url, reason=exc)) from None
        trusted = parse_logs("\n".join(lines))  # each vkey well formed, no key twice
        if set(trusted) != {origin(city)}:
            raise ValueError(
                _("{url}: keys of {found}, not of {city}").format(url=url, found=sorted(trusted), city=city)
            )
    for line in lines:
        print(line)
