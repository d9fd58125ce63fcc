"""`entraide monitor`: follow a deployment's public logs and check every step (ledger/service_layer/monitor.py).

Exit 0 when everything served is consistent, 1 on an inconsistency (named with its ledger, size or
sequence), 2 when the log cannot be read or the options are wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.i18n import _
from api.cli.support import errors, fail, out

if TYPE_CHECKING:
    from ledger.service_layer.monitor import LedgerSummary, MonitorError


def _message(error: MonitorError) -> str:
    """The inconsistency in the reader's language (the service names it by code and facts only)."""
    templates = {
        "rollback": _("{ledger}: rollback: the log's checkpoint has size {size}, smaller than the verified size "
                      "{verified_size}"),
        "fork": _("{ledger}: fork: the checkpoint of size {size} has root {root}, but the verified log of size {size} "
                  "has root {verified_root}"),
        "fork_extension": _("{ledger}: fork: the checkpoint of size {size} does not extend the verified log of size "
                            "{verified_size}: its first {verified_size} leaves have root {root}, the verified ones "
                            "{verified_root}"),
        "fork_entry": _("{ledger}: fork: entry {sequence} is served differently from the one verified"),
        "rewritten_tile": _("{ledger}: rewritten tile {tile}: hash {index} is {served}, but the entries give "
                            "{expected}"),
        "bad_root": _("{ledger}: the checkpoint of size {size} signs root {root}, but its entries have root {computed}"),
        "bad_checkpoint": _("{ledger}: checkpoint rejected: {reason}"),
        "wrong_origin": _("{ledger}: the checkpoint served for {ledger} is one of {origin}"),
        "not_witnessed": _("{ledger}: the checkpoint of size {size} is cosigned by {cosigned} witnesses, the quorum is "
                           "{quorum}"),
        "time_backwards": _("{ledger}: the checkpoint of size {size} has time_us {time_us}, before the verified "
                            "checkpoint of size {verified_size} ({verified_time_us})"),
        "entry_before_checkpoint": _("{ledger}: entry {sequence} has time_us {time_us}, before the verified checkpoint "
                                     "of size {verified_size} ({checkpoint_time_us})"),
        "entry_after_checkpoint": _("{ledger}: entry {sequence} has time_us {time_us}, after the checkpoint of size "
                                    "{size} ({checkpoint_time_us})"),
        "bad_entry": _("{ledger}: entry {sequence}: {check}: {detail}"),
        "malformed_entry": _("{ledger}: an entry after sequence {after} is malformed: {reason}"),
        "foreign_entry": _("{ledger}: the log serves, after sequence {after}, entries of another ledger"),
        "ledger_gone": _("{ledger}: the log no longer lists this ledger (verified size {verified_size})"),
        "key_removed": _("keys: key {key_id} was removed from the keys file"),
        "key_changed": _("keys: key {key_id} changed ({field})"),
        "key_retired_early": _("keys: key {key_id} is now retired at {valid_until_us}, before what was verified "
                               "({verified_us})"),
        "key_added_early": _("keys: new key {key_id} is valid from {valid_from_us}, before what was verified "
                             "({verified_us})"),
    }  # fmt: skip
    return templates[error.code].format(**error.params)


def _summary(s: LedgerSummary) -> None:
    if s.cosigned is None:
        witnessed = _("no witnesses configured")
    elif s.quorum is not None and s.cosigned >= s.quorum:
        witnessed = _("witnessed ({cosigned} of {quorum} required)").format(cosigned=s.cosigned, quorum=s.quorum)
    else:
        witnessed = _("not witnessed")
    out.print(_("{ledger}: size {size:,}, {new:,} new entries verified; {witnessed}")
              .format(ledger=s.ledger, size=s.size, new=s.new_entries, witnessed=witnessed), highlight=False)  # fmt: skip


def monitor(
    url: Annotated[str, typer.Option("--url", help="Base URL of the deployment, e.g. https://entraide.example")],
    state: Annotated[Path, typer.Option("--state", help="State directory, kept between runs")],
    witnesses_file: Annotated[Path | None, typer.Option("--witnesses", help="Witnesses file: one verifier key (type 0x04) and an optional URL per line")] = None,
    quorum: Annotated[int | None, typer.Option("--quorum", min=1, help="Cosignatures a checkpoint needs [default: every witness]")] = None,
) -> None:  # fmt: skip
    """Follow the public logs through their tiles and verify every new entry, checkpoint and cosignature; exit 1 on an inconsistency."""
    from ledger.service_layer import monitor as service

    with errors():
        if quorum is not None and witnesses_file is None:
            raise ValueError(_("--quorum needs --witnesses"))
        witnesses = None if witnesses_file is None else service.load_witnesses(witnesses_file, quorum)
        try:
            checked, summaries = service.monitor(url, state, witnesses, on_ledger=_summary)
        except service.MonitorError as exc:
            raise fail(_message(exc), code=1) from None
    if not summaries:
        out.print(_("the log lists no ledger yet"))
    out.print(
        _(
            "consistent: {ledgers} ledgers, {checked:,} entries verified (chain, hashes, signatures, replay), "
            "every tile and root recomputed"
        ).format(ledgers=len(summaries), checked=checked)
    )
