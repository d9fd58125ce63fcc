"""Make tests/vectors/receipt-v1.json and the worked example of docs/ledger-format.md "Receipts" again,
from a real run: the tests' world (SQLite, in a temporary directory), a purchase award, a checkpoint,
then GET /v1/wallet/receipts/{sequence}. Run it when the entry, checkpoint or receipt format changes:
`/work/main/.venv/bin/python scripts/receipt_vector.py` from the repository's root."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402

from api.bootstrap import Settings, open_context  # noqa: E402
from api.http.app import create_app  # noqa: E402
from ledger.service_layer import audit, receipts  # noqa: E402
from tests.conftest import Clock  # noqa: E402
from tests.world import standard_world  # noqa: E402

VECTOR = ROOT / "tests" / "vectors" / "receipt-v1.json"
DOC = ROOT / "docs" / "ledger-format.md"
BLOCKS = re.compile(r"(### Worked example\n.*?```json\n).*?(\n```\n\nKeys file:\n\n```json\n).*?(\n```\n)", re.S)


def main() -> None:
    data, clock = Path(tempfile.mkdtemp()), Clock()
    settings = Settings(data_dir=data, database_url=str(data / "entraide.db"), keys_dir=data / "keys")
    ctx = open_context(settings, clock=clock, key_from_us=clock(), create=True)
    with TestClient(create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)) as client:
        world = standard_world(ctx, client)
        clock.advance(60)
        body = {"card": world.residents["alice"].card, "purchase_cents": 4_000}
        sale = world.pos("boulangerie", "POST", "/v1/pos/awards", body, key="s1").json()
        clock.advance(60)
        audit.make_checkpoints(ctx.engine, ctx.signer, ctx.clock)
        sequence = sale["receipt"]["entries"][0]["sequence"]
        receipt = world.bearer("alice", "GET", f"/v1/wallet/receipts/{sequence}").json()
    keys = audit.keys_document(ctx.engine)
    check = receipts.verify(receipt, keys)
    vector = {"description": "A purchase award at a Brossard merchant, proved against the checkpoint signed after "
                             "it (scripts/receipt_vector.py); docs/ledger-format.md \"Receipts\" shows it.",
              "receipt": receipt, "keys": keys,
              "expected": {"entries": check.entries, "checkpoints": [list(c) for c in check.checkpoints or []]}}  # fmt: skip
    VECTOR.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    example, keys_line = json.dumps(receipt, indent=1, ensure_ascii=False), json.dumps(keys, ensure_ascii=False)
    doc, found = BLOCKS.subn(lambda m: m[1] + example + m[2] + keys_line + m[3], DOC.read_text(encoding="utf-8"))
    assert found == 1, "the worked example's two blocks were not found"
    DOC.write_text(doc, encoding="utf-8")
    print(f"wrote {VECTOR.relative_to(ROOT)} and the worked example of {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
