"""The witness's own HTTP app (`entraide witness serve`), c2sp.org/tlog-witness; not part of the API.

Submission prefix and monitoring prefix are both the root:
- `POST /add-checkpoint` cosigns (200, signature lines) or refuses: 400, 403, 404, 422 as RFC 9457
  problems, 409 as `text/x.tlog.size` with the size the witness holds, as the spec requires;
- `GET /<origin hash>/checkpoint`: the latest cosigned checkpoint of that log;
- `GET /evidence`: the fork evidence kept (pairs of conflicting checkpoints a log signed).
"""

from __future__ import annotations

import anyio
from litestar import Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import HTTPException

from api.problems import error_params, negotiate_locale, problem_document
from ledger.domain.errors import LedgerError
from ledger.domain.witness import MAX_BODY_BYTES, SizeConflict
from ledger.service_layer.witness import EvidenceList, Witness

TEXT = "text/plain; charset=utf-8"
SIZE_MEDIA_TYPE = "text/x.tlog.size"


def _problem(request: Request, code: str, params: dict[str, object]) -> Response:
    locale = negotiate_locale(request.headers.get("accept-language"))
    document = problem_document(code, locale, params, instance=request.url.path)
    status = document["status"]
    assert isinstance(status, int)  # problem_document puts the code's status there
    return Response(document, status_code=status, media_type="application/problem+json",
                    headers={"Content-Language": locale})  # fmt: skip


def _refused(request: Request, exc: LedgerError) -> Response:
    if isinstance(exc, SizeConflict):  # tlog-witness: the body is the size and a newline, nothing else
        return Response(f"{exc.tree_size}\n", status_code=409, headers={"content-type": SIZE_MEDIA_TYPE})  # no charset
    return _problem(request, exc.code, error_params(exc))


def _http_error(request: Request, exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    return _problem(request, codes.get(exc.status_code, "invalid_request"), {})


@post("/add-checkpoint", status_code=200, media_type=TEXT, summary="Cosign a checkpoint",
      operation_id="witness_add_checkpoint")  # fmt: skip
async def add_checkpoint(request: Request, witness: Witness) -> str:
    """tlog-witness add-checkpoint: `old <size>`, consistency proof lines, an empty line, the log's
    signed checkpoint, whatever its Content-Type. Answers the witness's cosignature line(s) once the
    new state is on disk (the check and the write wait for the state's lock, in a thread)."""
    body = await request.body()
    return "".join(await anyio.to_thread.run_sync(witness.add_checkpoint, body))


@get("/{hashed_origin:str}/checkpoint", sync_to_thread=True, media_type=TEXT, summary="Get a log's latest cosigned "
     "checkpoint", operation_id="witness_get_checkpoint")  # fmt: skip
def latest_checkpoint(hashed_origin: str, witness: Witness) -> str:
    """The latest checkpoint cosigned for the log whose origin's SHA-256 is `hashed_origin` (lowercase
    hex), with the log's signature and this witness's cosignature. 404 if it never cosigned one."""
    note = witness.latest(hashed_origin)
    if note is None:
        raise HTTPException(status_code=404)
    return note


@get("/evidence", sync_to_thread=True, summary="Get the fork evidence", operation_id="witness_get_evidence")
def evidence(witness: Witness) -> EvidenceList:
    """Every pair of validly signed checkpoints of one log that contradict each other, as submitted
    to this witness (never cosigned). Empty while every log behaves."""
    return witness.evidence()


def create_witness_app(witness: Witness) -> Litestar:
    return Litestar(
        route_handlers=[add_checkpoint, latest_checkpoint, evidence],
        dependencies={"witness": Provide(lambda: witness, use_cache=True, sync_to_thread=False)},
        exception_handlers={LedgerError: _refused, HTTPException: _http_error},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
    )
