"""The composition root: settings from the environment, and the objects every entry point uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from ledger.adapters.database import make_engine, upgrade
from ledger.adapters.keystore import KeyStore
from ledger.service_layer.keys import Signer, ensure_key, now_us
from ledger.service_layer.transfers import LedgerService


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    keys_dir: Path

    @classmethod
    def load(cls, database_url: str | None = None, data_dir: Path | None = None) -> Settings:
        """Explicit arguments first, then ENTRAIDE_* variables, then the embedded default."""
        data = Path(data_dir or os.environ.get("ENTRAIDE_DATA_DIR") or Path.home() / ".local/share/entraide")
        url = database_url or os.environ.get("ENTRAIDE_DATABASE_URL") or str(data / "entraide.db")
        keys = Path(os.environ.get("ENTRAIDE_KEYS_DIR") or data / "keys")
        return cls(data, url, keys)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    keystore: KeyStore
    signer: Signer
    ledger: LedgerService


def open_context(settings: Settings, clock: Callable[[], int] = now_us, key_from_us: int | None = None) -> Context:
    """Migrate the database, make sure a signing key exists, and wire the services."""
    if "://" not in settings.database_url:
        Path(settings.database_url).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    keystore = KeyStore(settings.keys_dir)
    ensure_key(engine, keystore, key_from_us)
    signer = Signer(keystore)
    return Context(settings, engine, keystore, signer, LedgerService(engine, signer, clock))
