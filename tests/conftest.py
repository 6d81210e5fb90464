from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tutor.server.persona import Persona
from tutor.server.runner import TeachingServer


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: three workers for two cores (at most 8). The tests often wait (on
    sockets, a pseudo-terminal, a server's reply), so more workers than cores finish
    sooner: on 2 cores the fast tier took 60 s with 2 workers against 45 s with 4. But
    every worker first collects the whole suite (some 4 CPU-seconds, mostly pytest
    rewriting asserts), and 3 workers did as well as 4 on 2 cores in interleaved runs
    (median 55 s against 57 s) with 10 CPU-seconds less."""
    import os

    return max(1, min(8, 3 * (os.cpu_count() or 1) // 2))


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files in memory: on Linux with TMPDIR unset, TMPDIR is /dev/shm (tmpfs)
    for this run, its xdist workers and every process the tests start.

    Every server start and every stored message syncs the Maildir to disk: a fast-tier run
    makes some 13,000 fsync calls, which waited 36 s in all on this project's 2-core
    machine's disk (a shared one), against 3 s on tmpfs. The tests assert what was written
    and in which order, never how long a disk takes; TMPDIR=/tmp keeps them on disk.
    """
    import os
    import sys
    import tempfile

    shm = "/dev/shm"
    if os.environ.get("TMPDIR") or not sys.platform.startswith("linux"):
        return
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)):
        return
    os.environ["TMPDIR"] = shm  # before xdist starts its workers: they inherit it
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again, pytest's basetemp included


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pseudo-terminal tests (marked posix) are the one allowed skip: on Windows."""
    import sys

    if sys.platform == "win32":
        skip = pytest.mark.skip(reason="needs a pseudo-terminal (POSIX only)")
        for item in items:
            if "posix" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def tutor_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory (progress, Maildir, TLS material)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SMTP_TUTOR_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture
def start_server(tmp_path: Path, tls_dir: Path) -> Iterator[object]:
    """Factory: start a TeachingServer with a given persona; stopped after the test."""
    from tutor.server.tlsmaterial import server_context

    started: list[TeachingServer] = []

    def start(persona: Persona | None = None, **kwargs: object) -> TeachingServer:
        persona = persona or Persona()
        server = TeachingServer(
            tmp_path / f"Maildir{len(started)}",
            persona,
            tls_context=server_context(persona.hostname, tls_dir),
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: object) -> TeachingServer:
    return start_server()  # type: ignore[operator, no-any-return]
