"""Passkeys (WebAuthn, with the `webauthn` library): after activation a resident registers one on
their device and signs in with it from then on; several per resident (a phone, a computer), each
removable; a lost device is handled by a new activation code and a new passkey.

Only public keys are stored, with their sign counts (a cloned authenticator whose counter goes
back is refused). The challenge of each ceremony is made here and checked against the one the
caller kept for the browser (web/routes/signin.py binds it to the browser in a signed cookie);
the origin and relying-party id are the caller's (the site's own address, or ENTRAIDE_WEB_ORIGIN).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from community.adapters import access_store
from community.adapters import sign_in_store as store
from community.adapters import store as community_store
from community.adapters.sign_in_store import PRINCIPAL, RESIDENT, holder_values
from community.domain.errors import Conflict, PasskeyRefused, ResidentErased, UnknownPasskey
from community.schemas import Passkey
from community.service_layer.residents import Residents
from ledger.domain.errors import InvalidRequest
from ledger.service_layer.audit_trail import AuditTrail

MAX_PASSKEYS = 20
TIMEOUT_MS = 120_000
RP_NAME = "Entraide"


def _passkey(row: dict[str, Any]) -> Passkey:
    return Passkey(credential_id=row["credential_id"], transports=json.loads(row["transports"]),
                   created_at_us=row["created_at_us"], last_used_at_us=row["last_used_at_us"])  # fmt: skip


def _live_holder(conn: Connection, kind: str, holder_id: str) -> dict[str, Any] | None:
    """The resident (not erased) or the principal (its grant active) a passkey belongs to, or None."""
    if kind == PRINCIPAL:
        principal = access_store.principal_by_id(conn, holder_id)
        return principal if principal is not None and principal["status"] == "active" else None
    resident = community_store.resident(conn, holder_id)
    return resident if resident is not None and resident["status"] != "erased" else None


class Passkeys:
    def __init__(self, engine: Engine, residents: Residents, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine, self.residents, self.audit, self.clock = engine, residents, audit, clock

    def list(self, resident_id: str, kind: str = RESIDENT) -> list[Passkey]:
        """The passkeys of a resident (or, with `kind` "principal", of a principal)."""
        with self.engine.connect() as conn:
            return [_passkey(row) for row in store.passkeys_of(conn, kind, resident_id)]

    # --- registering ----------------------------------------------------------------------------

    def registration_options(self, resident_id: str, city: str, rp_id: str, kind: str = RESIDENT) -> tuple[str, bytes]:
        """The options for `navigator.credentials.create` (JSON) and their challenge, to keep."""
        if kind == RESIDENT:
            self.residents.get(resident_id, city)
        existing = self.list(resident_id, kind)
        if len(existing) >= MAX_PASSKEYS:
            raise InvalidRequest(
                f"at most {MAX_PASSKEYS} passkeys", field="passkeys", reason="too_many", max_items=MAX_PASSKEYS
            )
        options = generate_registration_options(
            rp_id=rp_id, rp_name=RP_NAME, user_id=resident_id.encode(), user_name=f"{city} · {resident_id[:8]}",
            user_display_name=f"Entraide · {city}", timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED,
                                                                   user_verification=UserVerificationRequirement.PREFERRED),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in existing],
        )  # fmt: skip
        return options_to_json(options), options.challenge

    def register(self, resident_id: str, city: str, actor: str, credential: str, challenge: bytes, origin: str,
                 rp_id: str, kind: str = RESIDENT) -> Passkey:  # fmt: skip
        """Verify the browser's answer to the registration options and keep the new passkey, audited."""
        try:
            parsed = parse_registration_credential_json(credential)
            verified = verify_registration_response(credential=parsed, expected_challenge=challenge, expected_origin=origin,
                                                    expected_rp_id=rp_id)  # fmt: skip
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyRefused("the passkey's registration could not be verified") from None
        credential_id = bytes_to_base64url(verified.credential_id)
        transports = [t.value for t in (parsed.response.transports or [])]
        now = self.clock()
        with self.engine.begin() as conn:
            if kind == RESIDENT:
                community_store.resident(conn, resident_id, for_update=True)
            if _live_holder(conn, kind, resident_id) is None:
                raise (
                    ResidentErased("the resident's data was erased")
                    if kind == RESIDENT
                    else PasskeyRefused("no such principal")
                )
            if store.passkey(conn, credential_id) is not None:
                raise Conflict("this passkey is already registered", field="credential", reason="already_exists")
            store.add_passkey(conn, credential_id=credential_id, **holder_values(kind, resident_id), city=city,
                              public_key=verified.credential_public_key, sign_count=verified.sign_count,
                              transports=json.dumps(transports), created_at_us=now, last_used_at_us=None)  # fmt: skip
            self.audit.record(conn, actor=actor, action="passkey.add", city=city, target=resident_id, before=None,
                              after={"credential_id": credential_id, "transports": transports}, now_us=now)  # fmt: skip
            return _passkey(store.passkey(conn, credential_id))  # type: ignore[arg-type]

    def remove(self, resident_id: str, city: str, actor: str, credential_id: str, kind: str = RESIDENT) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            if not store.remove_passkey(conn, kind, resident_id, credential_id):
                raise UnknownPasskey("no such passkey")
            self.audit.record(conn, actor=actor, action="passkey.remove", city=city, target=resident_id,
                              before={"credential_id": credential_id}, after=None, now_us=now)  # fmt: skip

    # --- signing in -----------------------------------------------------------------------------

    def authentication_options(self, rp_id: str) -> tuple[str, bytes]:
        """Options for `navigator.credentials.get` with no account named: the device offers the
        passkeys it holds for this site (discoverable credentials)."""
        options = generate_authentication_options(rp_id=rp_id, timeout=TIMEOUT_MS,
                                                  user_verification=UserVerificationRequirement.PREFERRED)  # fmt: skip
        return options_to_json(options), options.challenge

    def authenticate(
        self, credential: str, challenge: bytes, origin: str, rp_id: str, kind: str = RESIDENT
    ) -> tuple[str, str]:
        """The (resident id, home city) whose passkey signed the challenge; 401 otherwise. With `kind`
        "principal", only a principal's passkey: (principal id, its city), its grant still active."""
        try:
            parsed = parse_authentication_credential_json(credential)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyRefused("not a passkey's answer") from None
        credential_id = bytes_to_base64url(parsed.raw_id)
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.passkey(conn, credential_id, for_update=True)
            holder_id = None if row is None else row["resident_id" if kind == RESIDENT else "principal_id"]
            if row is None or holder_id is None:
                raise PasskeyRefused("no such passkey")
            try:
                verified = verify_authentication_response(credential=parsed, expected_challenge=challenge, expected_origin=origin,
                                                          expected_rp_id=rp_id, credential_public_key=row["public_key"],
                                                          credential_current_sign_count=row["sign_count"])  # fmt: skip
            except (WebAuthnException, ValueError, TypeError, KeyError):
                raise PasskeyRefused("the passkey's signature could not be verified") from None
            holder = _live_holder(conn, kind, holder_id)
            if holder is None:
                raise PasskeyRefused("the passkey's holder was erased or withdrawn")
            store.used_passkey(conn, credential_id, verified.new_sign_count, now)
        return holder_id, holder["city"]
