"""A stored bounce, shown where a lesson talks about it: the part a person reads first."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from tutor.smtp.dsnread import BounceSummary
from tutor.ui.common.safe import join, untrusted


def bounce_view(summary: BounceSummary, where: str) -> RenderableType:
    rows: list[RenderableType] = [
        join(Text("The bounce, as stored in ", style="bold"), untrusted(where, "bold"), ":"),
        join(Text("  From:    "), untrusted(summary.sender)),
        join(Text("  To:      "), untrusted(summary.to)),
        join(Text("  Subject: "), untrusted(summary.subject)),
    ]
    for failed in summary.recipients:
        rows.append(
            join(
                Text("  failed:  ", style="yellow"),
                untrusted(f"{failed.recipient}  Status: {failed.status}", "yellow"),
            )
        )
        rows.append(join(Text("           "), untrusted(f"Diagnostic-Code: {failed.diagnostic}")))
    return Padding(Group(*rows), (0, 0, 0, 2))
