"""The benchmark command works: `python bench/run.py --quick` runs every part and prints
its tables. The figures themselves are not checked: benchmarks are not timed tests
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
        "== targets",
    ):
        assert heading in out, heading
    for column in ("msgs/s", "× mailbox", "× no-op", "cmd p99", "end-of-DATA p99", "RSS MiB"):
        assert column in out, column
    for row in ("serve ", "aiosmtpd-mailbox", "aiosmtpd-noop", "smtp-tutor learn 1 → smtp>"):
        assert row in out, row

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert {"machine", "plan", "throughput", "latency", "idle", "startup"} <= set(results)
    assert results["throughput"]["disk"]["median"]["serve"]["rate"] > 0


def test_the_python_load_generator_works_where_smtp_source_is_installed() -> None:
    result = bench("--python-load", "--only", "throughput", "--servers", "serve,aiosmtpd-noop")
    assert result.returncode == 0, result.stderr
    assert "load from bench/loadgen.py" in result.stdout
    assert "serve msgs/s ÷ aiosmtpd-noop (disk)" in result.stdout
