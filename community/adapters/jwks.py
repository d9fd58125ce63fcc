"""A city identity provider's published keys (JWKS), kept fresh by one background thread.

No request ever fetches the key set: requests read the cached set, and only the refresher thread
talks to the provider, one fetch at a time. It refetches every `refresh_seconds`; after a failure it
keeps the set it has and retries after 1, 2, 4 … seconds, at most `backoff_max_seconds` apart. A
token naming a key id the set lacks is refused at once; it only nudges the refresher, which then
fetches early (the provider may have rotated its keys) but at most once per `nudge_seconds`, so a
flood of garbage tokens costs the provider nothing. Until a first set loads, requests answer 503;
only a request that itself starts the refresher (a context used without the app, which starts it
at startup) waits for that first fetch, at most `first_load_wait_seconds`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ledger.domain.errors import LedgerError

REFRESH_SECONDS = 300
FETCH_TIMEOUT_SECONDS = 3  # the whole fetch, not each read: a provider that drips bytes is cut off too
FIRST_LOAD_WAIT_SECONDS = 2
NUDGE_SECONDS = 30
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
MAX_JWKS_BYTES = 1_000_000
MAX_JWKS_KEYS = 64
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
log = logging.getLogger("entraide.identity")


class IdentityProviderUnavailable(LedgerError):
    """No key set of the city's identity provider was ever loaded, so its tokens cannot be checked."""

    code = "identity_provider_unavailable"


def secure_url(url: str) -> bool:
    """HTTPS, or plain HTTP to this machine: what we fetch keys, metadata or tokens from."""
    parts = urlsplit(url)
    return bool(parts.hostname) and (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    )


def check_jwks_url(url: str, variable: str = "ENTRAIDE_OIDC_JWKS_URL") -> None:
    """HTTPS only (a key set fetched in clear could be swapped in transit), plain HTTP to this machine."""
    if not secure_url(url):
        raise ValueError(f"{variable} must be an https:// URL (plain http only to this machine), not {url!r}")


def fetch_key_set(url: str, timeout_seconds: float) -> KeySet:
    """The provider's signing keys; keys of types we cannot use are skipped, an empty set is an error."""
    deadline = time.monotonic() + timeout_seconds
    body = bytearray()
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
        while chunk := response.read(65_536):
            body += chunk
            if len(body) > MAX_JWKS_BYTES or time.monotonic() > deadline:
                raise ValueError("the key set is too large or too slow to arrive")
    document = json.loads(body)
    found = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(found, list):
        raise ValueError("not a JWKS document")  # noqa: TRY004  (callers handle every unusable key set as ValueError)
    keys = []
    for entry in found[:MAX_JWKS_KEYS]:
        try:
            keys.append(KeySet.import_key_set({"keys": [entry]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    if not keys:
        raise ValueError("the key set holds no usable key")
    return KeySet(keys)


class RemoteJwks:
    def __init__(self, url: str, refresh_seconds: float = REFRESH_SECONDS, *, timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
                 first_load_wait_seconds: float = FIRST_LOAD_WAIT_SECONDS, nudge_seconds: float = NUDGE_SECONDS,
                 backoff_first_seconds: float = BACKOFF_FIRST_SECONDS, backoff_max_seconds: float = BACKOFF_MAX_SECONDS) -> None:  # fmt: skip
        assert refresh_seconds > 0 and timeout_seconds > 0 and 0 < backoff_first_seconds <= backoff_max_seconds
        self.url = url
        self.refresh_seconds, self.timeout_seconds = refresh_seconds, timeout_seconds
        self.first_load_wait_seconds = first_load_wait_seconds
        self.nudge_seconds = min(nudge_seconds, refresh_seconds)
        self.backoff_first_seconds, self.backoff_max_seconds = backoff_first_seconds, backoff_max_seconds
        self.failures = 0  # consecutive failed fetches
        self._loaded: tuple[KeySet, frozenset[str]] | None = None  # the set and its key ids, swapped as one
        self._last_attempt_s = 0.0
        self._first_attempt = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- what requests call (never blocks on the network, except while waiting for the first load)

    def key_set(self, kid: str) -> KeySet | None:
        """The cached set if it holds `kid`; None if it does not (and the refresher is nudged)."""
        keys, kids = self._loaded or self._first_load()
        if kid in kids:
            return keys
        self._wake.set()
        return None

    def _first_load(self) -> tuple[KeySet, frozenset[str]]:
        if self.start():
            self._first_attempt.wait(self.first_load_wait_seconds)
        if self._loaded is None:
            raise IdentityProviderUnavailable("the identity provider's keys were never loaded",
                                              retry_after_seconds=self.retry_after_seconds())  # fmt: skip
        return self._loaded

    def current(self) -> KeySet:
        """The whole cached set (for a token whose header names no key: joserfc then takes the set's
        only key, and refuses when there are several); IdentityProviderUnavailable before a first load."""
        return (self._loaded or self._first_load())[0]

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self._last_attempt_s + self._delay_seconds() - time.monotonic()))

    # --- the refresher ------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the refresher unless it runs; whether this call started it."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="entraide-jwks", daemon=True)
            self._thread.start()
            return True

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is not None:
            thread.join(self.timeout_seconds + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._attempt()
            self._wake.clear()  # nudges until now are answered; a kid still unknown nudges again
            self._sleep_until_due()

    def _attempt(self) -> None:
        self._last_attempt_s = time.monotonic()
        try:
            keys = fetch_key_set(self.url, self.timeout_seconds)
        except (OSError, ValueError, JoseError) as exc:  # OSError covers refused, reset, timeouts, HTTP errors
            self.failures += 1
            if self.failures == 1:  # once per outage; the recovery is logged too
                log.warning("identity provider key set %s unavailable: %s; retrying with backoff", self.url, exc)
        else:
            self._loaded = (keys, frozenset(key.kid for key in keys.keys if isinstance(key.kid, str)))
            if self.failures:
                log.warning("identity provider key set %s loaded again after %d failures", self.url, self.failures)
            self.failures = 0
        finally:
            self._first_attempt.set()

    def _delay_seconds(self) -> float:
        """From the last attempt to the next: the refresh interval while all is well, else the backoff."""
        if self.failures:
            return min(self.backoff_max_seconds, self.backoff_first_seconds * 2 ** min(self.failures - 1, 32))
        return self.refresh_seconds if self._loaded else self.backoff_first_seconds

    def _sleep_until_due(self) -> None:
        due = self._last_attempt_s + self._delay_seconds()
        while not self._stop.is_set():
            remaining = due - time.monotonic()
            if remaining <= 0:
                return
            if self._wake.wait(remaining):
                self._wake.clear()
                if not self.failures:  # an unknown key id: perhaps a rotation; backoff still rules an outage
                    due = min(due, self._last_attempt_s + self.nudge_seconds)
