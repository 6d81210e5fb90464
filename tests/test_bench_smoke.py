"""The benchmark command works: `python bench/run.py --quick` runs every part (the
dashboard on a pseudo-terminal included) and prints its tables and every target's verdict.
The figures themselves are not checked: benchmarks are not timed tests
(docs/performance.md has the numbers and how they were taken)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"

pytestmark = [pytest.mark.posix, pytest.mark.slow]  # the startup part drives `learn` in a pty


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def test_the_quick_benchmark_prints_every_table(tmp_path: Path) -> None:
    result = bench("--json", str(tmp_path / "results.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    for heading in (
        "== throughput, Maildir on disk:",
        "== latency (ms), Maildir on disk:",
        "idle connections: a new client's banner",
        "== startup (ms)",
        "== typer's cost in `smtp-tutor learn 1`",
        "== targets: the server off the UI, the first prompt",
        "== earlier targets, still watched",
    ):
        assert heading in out, heading
    for column in ("msgs/s", "serve ÷ this", "catch-up s", "cmd p99", "end-of-DATA p99"):
        assert column in out, column
    for row in (
        "serve ",
        "serve-dashboard ",
        "aiosmtpd-mailbox",
        "aiosmtpd-noop",
        "smtp-tutor learn 1 → smtp>",
        "python -c 'import typer'",
        "typer in all",
        "serve dashboard msgs/s ÷ serve --log (disk)",
        "dashboard catch-up s after a flood, worst (disk)",
        "serve dashboard p99 ms, 40 paced sessions (disk)",
        "smtp-tutor learn 1 → smtp> ÷ import floor",
    ):
        assert row in out, row
    # A quick run uses MailDev only when a full run has installed it; else it says why not.
    assert "serve --log msgs/s ÷ maildev (disk)" in out
    assert "\nmaildev " in out or "maildev: " in out

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert {"machine", "plan", "throughput", "latency", "idle", "startup"} <= set(results)
    throughput = results["throughput"]["disk"]["median"]
    assert throughput["serve"]["rate"] > 0
    assert throughput["serve-dashboard"]["worst_lag"] >= 0  # the screen showed the flood's end
    assert results["startup"]["typer phases"]["parse"] > 0


def test_the_python_load_generator_works_where_smtp_source_is_installed() -> None:
    result = bench("--python-load", "--only", "throughput", "--servers", "serve,aiosmtpd-noop")
    assert result.returncode == 0, result.stderr
    assert "load from bench/loadgen.py" in result.stdout
    assert "serve msgs/s ÷ aiosmtpd-noop (disk)" in result.stdout
