"""The composition root: settings from the environment, and the objects every entry point uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from community.adapters.secrets import CommunityKeys, RemoteJwks, TokenService
from community.service_layer.awards import Awards
from community.service_layer.organizations import Attestations, Members, organizations
from community.service_layer.programs import Programs
from community.service_layer.residents import Residents
from ledger.adapters.database import make_engine, upgrade
from ledger.adapters.keystore import KeyStore
from ledger.service_layer.committer import GroupCommitter
from ledger.service_layer.keys import Signer, ensure_key, now_us
from ledger.service_layer.transfers import LedgerService
from merchants.service_layer.pos import PointOfSale, Terminals, merchants


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    keys_dir: Path
    # A city identity provider whose resident tokens are accepted beside the built-in issuer's.
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None

    @classmethod
    def load(cls, database_url: str | None = None, data_dir: Path | None = None) -> Settings:
        """Explicit arguments first, then ENTRAIDE_* variables, then the embedded default."""
        data = Path(data_dir or os.environ.get("ENTRAIDE_DATA_DIR") or Path.home() / ".local/share/entraide")
        url = database_url or os.environ.get("ENTRAIDE_DATABASE_URL") or str(data / "entraide.db")
        keys = Path(os.environ.get("ENTRAIDE_KEYS_DIR") or data / "keys")
        env = os.environ.get
        return cls(data, url, keys, env("ENTRAIDE_OIDC_JWKS_URL"), env("ENTRAIDE_OIDC_ISSUER"), env("ENTRAIDE_OIDC_AUDIENCE"))


@dataclass
class Context:
    settings: Settings
    engine: Engine
    keystore: KeyStore
    signer: Signer
    ledger: LedgerService
    clock: Callable[[], int] = now_us

    @cached_property
    def keys(self) -> CommunityKeys:
        return CommunityKeys(self.settings.keys_dir)

    @cached_property
    def tokens(self) -> TokenService:
        s = self.settings
        external = RemoteJwks(s.oidc_jwks_url) if s.oidc_jwks_url else None
        return TokenService(self.keys, external, s.oidc_issuer, s.oidc_audience)

    @cached_property
    def committer(self) -> GroupCommitter:
        return GroupCommitter(self.ledger)

    @cached_property
    def programs(self) -> Programs:
        return Programs(self.engine, self.ledger, self.clock)

    @cached_property
    def residents(self) -> Residents:
        return Residents(self.engine, self.keys, self.clock)

    @cached_property
    def awards(self) -> Awards:
        return Awards(self.engine, self.ledger, self.programs, self.clock)

    @cached_property
    def organizations(self) -> Members:
        return organizations(self.engine, self.clock)

    @cached_property
    def attestations(self) -> Attestations:
        return Attestations(self.organizations, self.residents, self.awards)

    @cached_property
    def merchants(self) -> Members:
        return merchants(self.engine, self.clock)

    @cached_property
    def terminals(self) -> Terminals:
        return Terminals(self.engine, self.merchants, self.clock)

    @cached_property
    def pos(self) -> PointOfSale:
        return PointOfSale(self.engine, self.ledger, self.committer, self.programs, self.residents, self.merchants,
                           self.awards, self.clock)  # fmt: skip


def open_context(settings: Settings, clock: Callable[[], int] = now_us, key_from_us: int | None = None) -> Context:
    """Migrate the database, make sure a signing key exists, and wire the services."""
    if "://" not in settings.database_url:
        Path(settings.database_url).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    keystore = KeyStore(settings.keys_dir)
    ensure_key(engine, keystore, key_from_us)
    signer = Signer(keystore)
    return Context(settings, engine, keystore, signer, LedgerService(engine, signer, clock), clock)
