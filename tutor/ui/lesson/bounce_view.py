"""A stored bounce, shown where a lesson talks about it: the part a person reads first."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from tutor.smtp.dsnread import BounceSummary
from tutor.ui.common.safe import join, untrusted


def bounce_view(summary: BounceSummary, where: str) -> RenderableType:
    """A DSN's first lines, and each recipient's Action, Status and Diagnostic-Code: a
    bounce (Action: failed) or a warning (Action: delayed)."""
    delayed = bool(summary.recipients) and all(r.action == "delayed" for r in summary.recipients)
    what = "The delay warning" if delayed else "The bounce"
    rows: list[RenderableType] = [
        join(Text(f"{what}, as stored in ", style="bold"), untrusted(where, "bold"), ":"),
        join(Text("  From:    "), untrusted(summary.sender)),
        join(Text("  To:      "), untrusted(summary.to)),
        join(Text("  Subject: "), untrusted(summary.subject)),
    ]
    for failed in summary.recipients:
        rows.append(
            join(
                untrusted(f"  {(failed.action or 'failed') + ':':<9}", "yellow"),
                untrusted(f"{failed.recipient}  Status: {failed.status}", "yellow"),
            )
        )
        rows.append(join(Text("           "), untrusted(f"Diagnostic-Code: {failed.diagnostic}")))
    return Padding(Group(*rows), (0, 0, 0, 2))
