"""The client side of c2sp.org/tlog-witness: submit a checkpoint to one witness's `add-checkpoint`.

`submit` returns the witness's cosignature lines (not yet verified: check them with
`cosignature.verify` and the witness's key), or `Conflict(size)` when the witness holds another
size than `old_size` (resubmit from that size with a proof). Any other answer is a `WitnessRefused`
with the status; a network failure is httpx's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx

from ledger.domain.checkpoint import SIGNATURE_PREFIX

SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Conflict:
    """409: the witness's latest cosigned size for this log is `size`."""

    size: int


class WitnessRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the witness answered {status}: {body[:200]}")
        self.status = status
        self.body = body


def request_body(note: str, old_size: int, proof: list[bytes]) -> bytes:
    """`old <size>`, one base64 line per proof hash, an empty line, then the checkpoint note."""
    lines = [f"old {old_size}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def submit(url: str, note: str, old_size: int, proof: list[bytes], timeout: float,
           client: httpx.Client | None = None) -> list[str] | Conflict:  # fmt: skip
    """POST to `<url>/add-checkpoint` (`url` is the witness's submission prefix). Pass a `client`
    to reuse its keep-alive connections across submissions."""
    body = request_body(note, old_size, proof)
    target = url.rstrip("/") + "/add-checkpoint"
    if client is None:
        with httpx.Client() as own:
            response = own.post(target, content=body, timeout=timeout)
    else:
        response = client.post(target, content=body, timeout=timeout)
    text = response.content[:MAX_RESPONSE_BYTES].decode(errors="replace")
    if response.status_code == 409 and response.headers.get("content-type", "").startswith(SIZE_MEDIA_TYPE):
        size = text.removesuffix("\n")
        if size.isdigit():
            return Conflict(int(size))
    if response.status_code != 200:
        raise WitnessRefused(response.status_code, text)
    lines = [line + "\n" for line in text.split("\n")[:-1]]
    if not lines or not text.endswith("\n") or not all(line.startswith(SIGNATURE_PREFIX) for line in lines):
        raise WitnessRefused(response.status_code, "not a sequence of note signature lines: " + text)
    return lines
