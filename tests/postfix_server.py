"""A private Postfix on a loopback port: the real MTA the teaching server is held against.

It runs from its own temporary directory (config, queue, data, Maildirs), started with
`postfix -c DIR start-fg` and stopped at teardown; the system's /etc/postfix is only read
(`meta_directory`), never written. The exact configuration is tests/data/postfix/main.cf
and master.cf, with the paths and the port filled in. Postfix needs root to start its
master; `postfix start` fails silently on machines without syslog, start-fg does not.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import require_tool

TEMPLATES = Path(__file__).resolve().parent / "data" / "postfix"
POSTFIX = "/usr/sbin/postfix"
START_TIMEOUT = 60.0  # seconds; the machine is shared, a cold start can take a while


@dataclass
class PostfixServer:
    address: tuple[str, int]
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def config_directory(self) -> Path:
        return self.root / "etc"

    def log(self) -> str:
        """What the instance logged (maillog_file is its standard output)."""
        return (self.root / "postfix.log").read_text("utf-8", "replace")

    def delivered(self, mailbox: str) -> list[Path]:
        return sorted((self.root / "mail" / mailbox / "new").glob("*"))


def postfix_version() -> str:
    """`postconf -d mail_version`: the version the differential test ran against."""
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    out = subprocess.run(
        [postconf, "-d", "mail_version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return out.split("=", 1)[1].strip()


def _require_root_postfix() -> str:
    path = require_tool("postfix", POSTFIX)
    if os.geteuid() != 0:
        message = "Postfix's master needs root to start (run the slow tier as root, as CI does)"
        if os.environ.get("CI") and not os.environ.get("SMTP_TUTOR_OPTIONAL_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as probe:  # Postfix's master binds with SO_REUSEADDR
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _write_config(root: Path, port: int) -> None:
    owner = pwd.getpwnam("postfix")
    values = {
        "@QUEUE_DIRECTORY@": str(root / "queue"),
        "@DATA_DIRECTORY@": str(root / "data"),
        "@MAIL_DIRECTORY@": str(root / "mail"),
        "@MAIL_UID@": str(owner.pw_uid),
        "@MAIL_GID@": str(owner.pw_gid),
        "@PORT@": str(port),
    }
    for name in ("main.cf", "master.cf"):
        text = (TEMPLATES / name).read_text("utf-8")
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        assert not re.search(r"@[A-Z_]+@", text), f"unfilled placeholder in {name}"
        (root / "etc" / name).write_text(text, "utf-8")


def _make_root() -> Path:
    """A short path (Postfix's UNIX sockets live under it) that the postfix user can reach."""
    root = Path(tempfile.mkdtemp(prefix="tutor-postfix-"))
    root.chmod(0o755)  # the virtual delivery agent runs as postfix and walks into mail/
    owner = pwd.getpwnam("postfix")
    for name in ("etc", "queue", "data", "mail"):
        (root / name).mkdir()
    for name in ("data", "mail"):  # written by Postfix's own processes
        os.chown(root / name, owner.pw_uid, owner.pw_gid)
    return root


def _answers(address: tuple[str, int]) -> bool:
    """True once the port gives a 220 banner."""
    try:
        with socket.create_connection(address, timeout=5) as sock:
            return sock.makefile("rb").readline().startswith(b"220 ")
    except OSError:
        return False


def _start(postfix: str, root: Path) -> PostfixServer:
    port = _free_port()
    _write_config(root, port)
    log = (root / "postfix.log").open("wb")
    process = subprocess.Popen(
        [postfix, "-c", str(root / "etc"), "start-fg"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        start_new_session=True,  # its own process group, so teardown can end all of it
    )
    log.close()
    server = PostfixServer(("127.0.0.1", port), root, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(server.address):
            return server
        time.sleep(0.1)  # polling for readiness, not waiting out a race
    _stop(server)
    raise RuntimeError(f"Postfix did not answer on port {port}:\n{server.log()}")


def _stop(server: PostfixServer) -> None:
    if server.process.poll() is None:
        subprocess.run(
            [POSTFIX, "-c", str(server.config_directory), "stop"],
            capture_output=True,
            timeout=60,
        )
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)


@pytest.fixture(scope="module")
def postfix_server() -> Iterator[PostfixServer]:
    """A private Postfix configured like the persona, for one test module."""
    postfix = _require_root_postfix()
    root = _make_root()
    try:
        for attempt in range(3):  # the free port may be taken before Postfix binds it
            try:
                server = _start(postfix, root)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        yield server
        _stop(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)
