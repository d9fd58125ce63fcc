"""The composition root: settings from the environment, and the objects every entry point uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine

from community.adapters.jwks import REFRESH_SECONDS as JWKS_REFRESH_SECONDS
from community.adapters.jwks import check_jwks_url
from community.adapters.mail import DevMailbox, Mailer, SmtpMailer, check_smtp_url
from community.adapters.oidc_client import ProviderClient
from community.adapters.secrets import BUILTIN_ISSUER, CommunityKeys, RemoteJwks, TokenService
from community.service_layer.access import Access
from community.service_layer.activation import Activation
from community.service_layer.awards import Awards
from community.service_layer.corrections import CorrectionsService
from community.service_layer.organizations import Attestations, Members, organizations
from community.service_layer.passkeys import Passkeys
from community.service_layer.programs import Programs
from community.service_layer.provider_sign_in import ProviderSignIn
from community.service_layer.residents import Residents
from community.service_layer.wallet import Wallet
from finance.adapters.stripe_connect import StripeConnect
from finance.service_layer.collections import Collections
from finance.service_layer.connect import Onboarding
from finance.service_layer.expiry import Expiry
from finance.service_layer.exports import Exports
from finance.service_layer.merchant_statements import MerchantStatements
from finance.service_layer.payouts import Payouts
from finance.service_layer.reconciliation import BankReconciliation
from finance.service_layer.reporting import Reports
from finance.service_layer.settlement import Settlement
from ledger.adapters.database import open_database, private_directory
from ledger.adapters.keystore import KeyStore
from ledger.domain import witnesses
from ledger.domain.witnesses import WitnessConfig
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.committer import GroupCommitter
from ledger.service_layer.keys import Signer, ensure_key, now_us
from ledger.service_layer.receipts import Receipts
from ledger.service_layer.transfers import LedgerService
from ledger.service_layer.witnessing import Witnessing
from marketplace.adapters.payments_stripe import StripeCardPayments
from marketplace.adapters.search_embedded import EmbeddedSearch
from marketplace.adapters.search_meilisearch import MeilisearchBackend
from marketplace.domain.search import SearchBackend
from marketplace.service_layer.catalog import Catalog
from marketplace.service_layer.indexing import SearchIndexer
from marketplace.service_layer.payments import PaymentEvents
from marketplace.service_layer.redemptions import Redemptions
from marketplace.service_layer.search import CatalogSearch
from merchants.service_layer.pairing import Pairing
from merchants.service_layer.pos import PointOfSale, Terminals, merchants


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    keys_dir: Path
    # A city identity provider whose resident tokens are accepted beside the built-in issuer's:
    # with a key set URL, its issuer and our audience are required (checked in __post_init__).
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_refresh_seconds: int = JWKS_REFRESH_SECONDS
    # Stripe: card payments and payouts are off in the embedded default (no key).
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # a local emulator in tests
    stripe_webhook_secret: str | None = None  # the payments endpoint's signing secret
    stripe_connect_webhook_secret: str | None = None  # the Connect (payouts) endpoint's signing secret
    # Catalog search: a Meilisearch server when a URL is set, else the embedded index in <data_dir>/search.
    meili_url: str | None = None
    meili_key: str | None = None
    # Witnesses each new checkpoint is submitted to, and how many must cosign it (docs/operations.md):
    # ENTRAIDE_WITNESSES names a witnesses file, ENTRAIDE_WITNESS_QUORUM the quorum; none listed: witnessing off.
    witnesses: WitnessConfig = field(default_factory=WitnessConfig)
    # The wallet's map: a tile server's URL template (`https://tiles.example/{z}/{x}/{y}.png`); None:
    # no tiles, the markers on a blank map (and no other origin in the pages' CSP). Tile providers
    # require their credit beside the map: `map_tiles_attribution`, plain text, is required with it.
    map_tiles_url: str | None = None
    map_tiles_attribution: str | None = None
    # Residents sign in on the pages through the city's identity provider (OpenID Connect, authorization
    # code with PKCE) when a client id is set: it needs the provider above (its metadata is discovered
    # at <oidc_issuer>/.well-known/openid-configuration); no secret means a public client.
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Outgoing e-mail (activation codes): an SMTP server, `smtp://host:port` or `smtps://user:password@host`;
    # none: no e-mail is sent (the demo keeps it in its /dev/mailbox page instead).
    smtp_url: str | None = None
    mail_from: str = "Entraide <no-reply@entraide.invalid>"
    # The pages' public address, e.g. https://entraide.brossard.ca: passkeys are bound to its host
    # (the WebAuthn relying party); none: the address each request came to.
    web_origin: str | None = None
    # `entraide demo` only: the sign-in page's list of demo residents and the dev mailbox page.
    demo: bool = False

    @classmethod
    def load(cls, database_url: str | None = None, data_dir: Path | None = None) -> Settings:
        """Explicit arguments first, then ENTRAIDE_* variables, then the embedded default."""
        data = Path(data_dir or os.environ.get("ENTRAIDE_DATA_DIR") or Path.home() / ".local/share/entraide")
        url = database_url or os.environ.get("ENTRAIDE_DATABASE_URL") or str(data / "entraide.db")
        keys = Path(os.environ.get("ENTRAIDE_KEYS_DIR") or data / "keys")
        env = os.environ.get
        refresh = _seconds(
            "ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS", env("ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS"), JWKS_REFRESH_SECONDS
        )
        return cls(data, url, keys, env("ENTRAIDE_OIDC_JWKS_URL"), env("ENTRAIDE_OIDC_ISSUER"), env("ENTRAIDE_OIDC_AUDIENCE"),
                   refresh, env("ENTRAIDE_STRIPE_API_KEY"), env("ENTRAIDE_STRIPE_API_BASE"),
                   env("ENTRAIDE_STRIPE_WEBHOOK_SECRET"), env("ENTRAIDE_STRIPE_CONNECT_WEBHOOK_SECRET"),
                   env("ENTRAIDE_MEILI_URL"), env("ENTRAIDE_MEILI_KEY"),
                   _witnesses(env("ENTRAIDE_WITNESSES"), env("ENTRAIDE_WITNESS_QUORUM")),
                   map_tiles_url=env("ENTRAIDE_MAP_TILES_URL") or None,
                   map_tiles_attribution=env("ENTRAIDE_MAP_TILES_ATTRIBUTION") or None, oidc_client_id=env("ENTRAIDE_OIDC_CLIENT_ID"),
                   oidc_client_secret=env("ENTRAIDE_OIDC_CLIENT_SECRET"), smtp_url=env("ENTRAIDE_SMTP_URL"),
                   mail_from=env("ENTRAIDE_MAIL_FROM") or cls.mail_from, web_origin=env("ENTRAIDE_WEB_ORIGIN"))  # fmt: skip

    def __post_init__(self) -> None:
        """Refuse a half-configured identity provider: without an issuer and an audience to check,
        any token its keys sign (for any service, from any tenant of a shared provider) would pass.
        Signing in on the pages through it needs the whole provider, and a secret needs its client id."""
        if self.map_tiles_url is not None:
            check_tiles_url(self.map_tiles_url)
            if not (self.map_tiles_attribution or "").strip() or len(self.map_tiles_attribution or "") > 300:
                raise ValueError(
                    "ENTRAIDE_MAP_TILES_URL needs ENTRAIDE_MAP_TILES_ATTRIBUTION: the tile provider's "
                    "credit shown beside the map (plain text, up to 300 characters)"
                )
        if self.oidc_client_secret and not self.oidc_client_id:
            raise ValueError("ENTRAIDE_OIDC_CLIENT_SECRET needs ENTRAIDE_OIDC_CLIENT_ID (the client it authenticates)")
        if self.oidc_client_id and not self.oidc_issuer:
            raise ValueError("ENTRAIDE_OIDC_CLIENT_ID needs the city identity provider: ENTRAIDE_OIDC_ISSUER, "
                             "ENTRAIDE_OIDC_JWKS_URL and ENTRAIDE_OIDC_AUDIENCE")  # fmt: skip
        if self.smtp_url:
            check_smtp_url(self.smtp_url)
        if self.web_origin:
            check_web_origin(self.web_origin)
        if not (self.oidc_jwks_url or self.oidc_issuer or self.oidc_audience):
            return
        for variable, value in (("ENTRAIDE_OIDC_JWKS_URL", self.oidc_jwks_url), ("ENTRAIDE_OIDC_ISSUER", self.oidc_issuer),
                                ("ENTRAIDE_OIDC_AUDIENCE", self.oidc_audience)):  # fmt: skip
            if not value:
                raise ValueError(f"{variable} is required with a city identity provider "
                                 "(ENTRAIDE_OIDC_JWKS_URL, ENTRAIDE_OIDC_ISSUER and ENTRAIDE_OIDC_AUDIENCE go together)")  # fmt: skip
        assert self.oidc_jwks_url is not None  # refused above when empty
        check_jwks_url(self.oidc_jwks_url)
        if self.oidc_issuer == BUILTIN_ISSUER:
            raise ValueError(f"ENTRAIDE_OIDC_ISSUER cannot be {BUILTIN_ISSUER!r}, the built-in issuer's name")
        _seconds("ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS", str(self.oidc_jwks_refresh_seconds), JWKS_REFRESH_SECONDS)
        if self.oidc_client_id:  # its metadata is fetched from the issuer's URL
            check_jwks_url(self.oidc_issuer or "", "ENTRAIDE_OIDC_ISSUER")


def check_tiles_url(url: str) -> None:
    """ENTRAIDE_MAP_TILES_URL: an https URL template with {z}, {x} and {y} on one host (no `{s}`
    subdomains: the pages' CSP allows that one origin's images)."""
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or "{" in parts.netloc
        or any(f"{{{v}}}" not in url for v in "zxy")
    ):
        raise ValueError(f"ENTRAIDE_MAP_TILES_URL must be an https URL with {{z}}, {{x}} and {{y}}, not {url!r}")


def check_web_origin(origin: str) -> None:
    """`https://host[:port]` (or `http://localhost…` for a developer): no path, no query."""
    parts = urlsplit(origin)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"ENTRAIDE_WEB_ORIGIN must be an origin such as https://entraide.example.ca, not {origin!r}")


def _witnesses(path: str | None, quorum: str | None) -> WitnessConfig:
    """The witnesses file's witnesses and the quorum (a majority of them by default); ValueError if
    either is wrong, so that `entraide serve` does not start with witnessing half configured."""
    if quorum is not None and not quorum.isdigit():
        raise ValueError(f"ENTRAIDE_WITNESS_QUORUM must be a whole number, not {quorum!r}")
    listed: tuple[witnesses.Witness, ...] = ()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"ENTRAIDE_WITNESSES: cannot read {path}: {exc.strerror}") from None
        listed = witnesses.parse_witnesses(text, path)
        if not listed:
            raise ValueError(f"ENTRAIDE_WITNESSES: {path} lists no witness")
    return witnesses.config(listed, None if quorum is None else int(quorum))


def _seconds(variable: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ValueError(f"{variable} must be a positive whole number of seconds, not {value!r}")
    return int(value)


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
        external = RemoteJwks(s.oidc_jwks_url, s.oidc_jwks_refresh_seconds) if s.oidc_jwks_url else None
        return TokenService(self.keys, external, s.oidc_issuer, s.oidc_audience)

    @cached_property
    def provider_sign_in(self) -> ProviderSignIn | None:
        """Signing in on the pages through the city's identity provider; None unless a client id is set."""
        s = self.settings
        if not s.oidc_client_id:
            return None
        assert s.oidc_issuer is not None and self.tokens.external is not None  # Settings require the provider
        client = ProviderClient(s.oidc_issuer, s.oidc_client_id, s.oidc_client_secret, self.tokens.external)
        return ProviderSignIn(client, self.residents, AESGCM(self.keys.secret("oidc-flow")), self.clock)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.signer)

    @cached_property
    def access(self) -> Access:
        return Access(self.engine, self.tokens, self.audit, self.clock)

    @cached_property
    def mailer(self) -> Mailer | None:
        """SMTP when configured; else the demo's in-memory mailbox; else none (no e-mail is sent)."""
        if self.settings.smtp_url:
            return SmtpMailer(self.settings.smtp_url)
        return DevMailbox() if self.settings.demo else None

    @cached_property
    def activation(self) -> Activation:
        return Activation(self.engine, self.keys, self.residents, self.audit, self.clock, self.mailer,
                          self.settings.mail_from, self.access)  # fmt: skip

    @cached_property
    def passkeys(self) -> Passkeys:
        return Passkeys(self.engine, self.residents, self.audit, self.clock)

    @cached_property
    def witnessing(self) -> Witnessing:
        return Witnessing(self.engine, self.settings.witnesses, self.clock)

    @cached_property
    def committer(self) -> GroupCommitter:
        return GroupCommitter(self.ledger)

    @cached_property
    def programs(self) -> Programs:
        return Programs(self.engine, self.ledger, self.audit, self.clock)

    @cached_property
    def residents(self) -> Residents:
        return Residents(self.engine, self.keys, self.audit, self.clock, self.ledger, self.programs)

    @cached_property
    def wallet(self) -> Wallet:
        return Wallet(self.engine, self.ledger)

    @cached_property
    def receipts(self) -> Receipts:
        return Receipts(self.engine)

    @cached_property
    def awards(self) -> Awards:
        return Awards(self.engine, self.ledger, self.programs, self.clock)

    @cached_property
    def organizations(self) -> Members:
        return organizations(self.engine, self.audit, self.clock)

    @cached_property
    def corrections(self) -> CorrectionsService:
        return CorrectionsService(self.engine, self.ledger, self.programs, self.audit, self.clock)

    @cached_property
    def attestations(self) -> Attestations:
        return Attestations(self.organizations, self.residents, self.awards)

    @cached_property
    def merchants(self) -> Members:
        return merchants(self.engine, self.audit, self.clock)

    @cached_property
    def terminals(self) -> Terminals:
        return Terminals(self.engine, self.merchants, self.audit, self.clock)

    @cached_property
    def pairing(self) -> Pairing:
        return Pairing(self.engine, self.keys, self.merchants, self.terminals, self.audit, self.clock)

    @cached_property
    def pos(self) -> PointOfSale:
        return PointOfSale(self.engine, self.ledger, self.committer, self.programs, self.residents, self.merchants,
                           self.awards, self.clock)  # fmt: skip

    @cached_property
    def settlement(self) -> Settlement:
        return Settlement(self.engine, self.ledger, self.programs, self.audit, self.clock)

    @property
    def stripe_connect(self) -> StripeConnect | None:  # not cached: each service that holds one is
        s = self.settings
        return StripeConnect(s.stripe_api_key, s.stripe_api_base) if s.stripe_api_key else None

    @cached_property
    def payouts(self) -> Payouts:
        s = self.settings
        return Payouts(self.engine, self.settlement, self.stripe_connect, s.stripe_connect_webhook_secret, self.audit,
                       self.clock)  # fmt: skip

    @cached_property
    def merchant_statements(self) -> MerchantStatements:
        return MerchantStatements(self.engine, self.settlement, self.pos, self.programs, self.clock)

    @cached_property
    def onboarding(self) -> Onboarding:
        return Onboarding(self.engine, self.stripe_connect, self.settings.web_origin, self.audit, self.clock)

    @cached_property
    def bank_reconciliation(self) -> BankReconciliation:
        return BankReconciliation(self.engine, self.programs, self.audit, self.clock)

    @cached_property
    def collections(self) -> Collections:
        return Collections(self.engine, self.settlement, self.programs, self.audit, self.clock)

    @cached_property
    def exports(self) -> Exports:
        return Exports(self.engine, self.settlement, self.programs, self.clock)

    @cached_property
    def expiry(self) -> Expiry:
        return Expiry(self.engine, self.ledger, self.programs, self.audit, self.clock)

    @cached_property
    def reports(self) -> Reports:
        return Reports(self.engine, self.programs, self.clock)

    @cached_property
    def search_backend(self) -> SearchBackend:
        s = self.settings
        return MeilisearchBackend(s.meili_url, s.meili_key) if s.meili_url else EmbeddedSearch(s.data_dir / "search")

    @cached_property
    def search_indexer(self) -> SearchIndexer:
        return SearchIndexer(self.engine, self.search_backend, self.clock)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine, self.search_indexer, self.audit, self.clock)

    @cached_property
    def catalog_search(self) -> CatalogSearch:
        return CatalogSearch(self.engine, self.search_backend, self.residents, self.clock)

    @property
    def payouts_enabled(self) -> bool:
        return self.settings.stripe_api_key is not None

    @cached_property
    def card_payments(self) -> StripeCardPayments | None:
        s = self.settings  # card payments are off without a Stripe key (the embedded default)
        return (
            StripeCardPayments(s.stripe_api_key, s.stripe_webhook_secret, s.stripe_api_base)
            if s.stripe_api_key
            else None
        )

    @cached_property
    def redemptions(self) -> Redemptions:
        return Redemptions(self.engine, self.committer, self.programs, self.residents, self.search_indexer, self.card_payments,
                           self.clock)  # fmt: skip

    @cached_property
    def payment_events(self) -> PaymentEvents:
        return PaymentEvents(self.engine, self.card_payments, self.redemptions, self.clock)


def open_context(settings: Settings, clock: Callable[[], int] = now_us, key_from_us: int | None = None,
                 create: bool = False) -> Context:  # fmt: skip
    """Wire the services on an existing database, its schema upgraded in place; a database that does
    not exist or has no schema is refused (DatabaseMissing). With `create` (`entraide init`, the demo,
    tests), the schema and the first signing key (valid from `key_from_us`) are made where missing."""
    if create:
        private_directory(settings.data_dir)
    engine = open_database(settings.database_url, create)
    keystore = KeyStore(settings.keys_dir)
    if create:
        ensure_key(engine, keystore, key_from_us)
    signer = Signer(keystore)
    return Context(settings, engine, keystore, signer, LedgerService(engine, signer, clock), clock)
