"""The client side of c2sp.org/tlog-witness: `POST <submission prefix>/add-checkpoint`.

One request, one answer, no retry here (the caller decides): the witness's cosignature lines (200),
the size it has cosigned (409, `text/x.tlog.size`), or a refusal with its status (400, 403, 404,
422). A witness that cannot be reached, times out or answers anything else raises
WitnessUnavailable.
"""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

MAX_PROOF_LINES = 63  # tlog-witness: a client must not send more
MAX_ANSWER_BYTES = 64 * 1024  # a few signature lines; a larger answer is not a witness's
SIZE_MEDIA_TYPE = "text/x.tlog.size"
_SIZE = re.compile(rb"(0|[1-9][0-9]{0,19})\n")


class WitnessUnavailable(Exception):
    """No usable answer: the witness is down, slow, or answered outside the protocol."""


@dataclass(frozen=True)
class Answer:
    status: int  # 200, 409, or the refusal's 400/403/404/422
    lines: tuple[str, ...] = ()  # 200: the signature lines, each with its final newline
    size: int | None = None  # 409: the size of the latest checkpoint the witness cosigned
    detail: str = ""  # a refusal's body, shortened


def request_body(note: str, old_size: int, proof: list[bytes]) -> bytes:
    """`old <size>`, one base64 line per proof hash, an empty line, then the checkpoint note."""
    assert old_size >= 0 and len(proof) <= MAX_PROOF_LINES, "tlog-witness: old size >= 0, at most 63 proof lines"
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


def submit(prefix: str, note: str, old_size: int, proof: list[bytes], timeout_seconds: float) -> Answer:
    """Submit a checkpoint note with a consistency proof from `old_size` to the witness whose
    submission prefix is `prefix` (the request goes to `<prefix>/add-checkpoint`). The lines of a
    200 are not verified here: check them with `cosignature.verify` and the witness's key."""
    url = prefix.rstrip("/") + "/add-checkpoint"
    request = urllib.request.Request(url, data=request_body(note, old_size, proof), method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            return _cosigned(response.status, response.read(MAX_ANSWER_BYTES + 1))
    except urllib.error.HTTPError as error:
        with error:
            return _refused(error.code, error.headers.get("Content-Type", ""), error.read(MAX_ANSWER_BYTES + 1))
    except (OSError, ValueError) as exc:  # refused, reset, timed out, unresolvable; malformed HTTP
        raise WitnessUnavailable(f"{type(exc).__name__}: {exc}") from None


def _cosigned(status: int, body: bytes) -> Answer:
    if status != 200 or len(body) > MAX_ANSWER_BYTES:
        raise WitnessUnavailable(f"the witness answered {status} with {len(body)} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise WitnessUnavailable("the witness's cosignatures are not UTF-8") from None
    lines = tuple(line + "\n" for line in text.split("\n")[:-1])
    if not text.endswith("\n") or not lines or not all(line.startswith("\u2014 ") for line in lines):
        raise WitnessUnavailable("the witness's answer is not a sequence of signature lines")
    return Answer(200, lines)


def _refused(status: int, content_type: str, body: bytes) -> Answer:
    if status == 409:
        match = _SIZE.fullmatch(body)
        if content_type.split(";")[0].strip() != SIZE_MEDIA_TYPE or match is None:
            raise WitnessUnavailable(f"the witness's 409 is not a {SIZE_MEDIA_TYPE} size")
        return Answer(409, size=int(match.group(1)))
    if status in (400, 403, 404, 422):
        return Answer(status, detail=body[:200].decode(errors="replace").strip())
    raise WitnessUnavailable(f"the witness answered {status}")
