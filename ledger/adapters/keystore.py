"""Private signing keys on disk: one PEM (PKCS#8) file per key, mode 0600, in a 0700 directory.

The embedded default generates the first key into the data directory; production points
`ENTRAIDE_KEYS_DIR` at a secrets mount. Only public keys ever reach the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from ledger import core


class KeyStoreError(Exception):
    pass


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.pem"

    def generate(self) -> tuple[str, bytes]:
        """Create a new Ed25519 key; returns (key_id, 32-byte seed)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        kid = core.key_id(core.public_key(seed))
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(self._path(kid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        return kid, seed

    def load(self, key_id: str) -> bytes:
        path = self._path(key_id)
        try:
            private = load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyStoreError(f"signing key {key_id} is not in {self.directory}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyStoreError(f"{path} is not an Ed25519 key")
        if path.stat().st_mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others; chmod 600 it")
        seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        if core.key_id(core.public_key(seed)) != key_id:
            raise KeyStoreError(f"{path} does not hold key {key_id}")
        return seed

    def key_ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.pem"))
