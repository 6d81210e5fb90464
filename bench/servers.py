"""The servers under test, each started as its own process on 127.0.0.1.

- `serve`: `smtp-tutor serve --log`, stdout (the line log) redirected to a file, as a
  teacher would run it with the log kept for later.
- `serve-dashboard`: `smtp-tutor serve` on a pseudo-terminal (120 × 40), its live dashboard
  drawing every frame; the pty's output is read all the time (bench/pty_screen.py).
- `aiosmtpd-mailbox`: aiosmtpd with its stock `aiosmtpd.handlers.Mailbox` (a Maildir).
- `aiosmtpd-noop`: aiosmtpd with a handler that keeps nothing.
- `maildev`: the npm package `maildev` (a development mail catcher in Node.js), persisting
  each message to a directory, its own log to a file; installed with npm into a cache
  folder by `install_maildev` (run.py does it when npm is present).
- `smtp-sink`: Postfix's test server, when installed (C; the ceiling of the machine).

Every one is run as its users run it: `serve` with its default persona and checks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAILDEV_VERSION = "3.0.0"  # pinned, so runs on different days compare the same peer
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
STARTUP_TIMEOUT = 30.0


def tutor_command() -> list[str]:
    """The installed `smtp-tutor` script beside this Python, else `python -m tutor`."""
    script = Path(sys.executable).parent / "smtp-tutor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tutor"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll (this is a benchmark, not a test): servers started elsewhere, files written."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc): a server that starts helper
    processes is charged for them too."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # it ended meanwhile
                todo.extend(int(child) for child in children.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants; 0 where unknown."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_kib(pid: int) -> int:
    """Resident set size of a process and its descendants, from /proc; 0 where unknown."""
    total = 0
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total


def wait_for_port(target: Target, what: str) -> None:
    """Until the target accepts a connection (for servers that print no port)."""

    def ready() -> bool:
        if target.proc is not None and target.proc.poll() is not None:
            stderr = target.proc.stderr.read() if target.proc.stderr else b""
            raise RuntimeError(f"{what} exited: {stderr!r}")
        try:
            with socket.create_connection((target.host, target.port), timeout=1):
                return True
        except OSError:
            return False

    wait_until(ready, STARTUP_TIMEOUT, what)


class Target:
    """One server process: start(), then host/port/pid, then stop()."""

    name = ""
    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def available(cls) -> bool:
        return True

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc = None

    def stored(self) -> int:
        """Messages on disk, where the server stores any."""
        return 0

    stores = False  # stored() counts what it keeps: a run checks every message is there

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _count_maildir(root: Path) -> int:
    return sum(1 for path in root.rglob("new/*") if path.is_file())


class Serve(Target):
    name = "serve"
    stores = True

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, SMTP_TUTOR_HOME=str(self.workdir / "home"))
        for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES"):
            env.pop(name, None)  # as a teacher's terminal has it, not as the caller's
        return env

    def arguments(self) -> list[str]:
        maildir = str(self.workdir / "Maildir")
        return [*tutor_command(), "serve", "--host", self.host, "--port", "0", "--maildir", maildir]

    def start(self) -> Target:
        self.log = self.workdir / "serve.log"
        self.maildir = self.workdir / "Maildir"
        env = dict(self.environment(), COLUMNS="200")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.arguments(), "--log"],
                stdout=log,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        pattern = re.compile(rb"listening on [0-9.]+:(\d+)")
        found: list[int] = []

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else b""
                raise RuntimeError(f"serve exited: {stderr!r}")
            match = pattern.search(self.log.read_bytes())
            if match:
                found.append(int(match.group(1)))
            return bool(found)

        wait_until(ready, STARTUP_TIMEOUT, "serve's banner")
        self.port = found[0]
        return self

    def logged_messages(self) -> int:
        return self.log.read_bytes().count(b" stored id=")

    def stored(self) -> int:
        return _count_maildir(self.maildir)


class ServeDashboard(Serve):
    """`smtp-tutor serve` on a terminal: the live dashboard, as a teacher sees it."""

    name = "serve-dashboard"
    columns, lines = 120, 40  # the size the dashboard is designed for (docs/dashboard.md)

    @classmethod
    def available(cls) -> bool:
        return hasattr(os, "openpty") and importlib.util.find_spec("pyte") is not None

    def start(self) -> Target:
        import pty_screen

        self.maildir = self.workdir / "Maildir"
        env = dict(self.environment(), TERM="xterm-256color")
        # Nothing answers a cursor-position request on this terminal; a person's would.
        env["PROMPT_TOOLKIT_NO_CPR"] = "1"
        self.screen = pty_screen.PtyProgram(
            self.arguments(), env, str(self.workdir), self.columns, self.lines
        )
        self.proc = self.screen.proc
        match, _ = self.screen.wait_for(r"on 127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT)
        self.port = int(match.group(1))
        return self

    def shows_closed(self, helo: str, timeout: float) -> float:
        """perf_counter() when the dashboard first shows the session that said
        `EHLO helo` as closed (its row in the connections table)."""
        _, seen_at = self.screen.wait_for(rf"EHLO {re.escape(helo)}\s+closed", timeout)
        return seen_at

    def stop(self) -> None:
        super().stop()
        screen = getattr(self, "screen", None)  # None when the pty could not be made
        if screen is not None:
            screen.close()


class AiosmtpdServer(Target):
    handler = ""

    def start(self) -> Target:
        self.maildir = self.workdir / "Maildir"
        args = [self.handler, str(self.maildir)] if self.handler == "mailbox" else [self.handler]
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "aiosmtpd_server.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(rb"port (\d+)", line)
        if not match:
            raise RuntimeError(f"{self.name} did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def stored(self) -> int:
        return _count_maildir(self.maildir) if self.handler == "mailbox" else 0


class AiosmtpdMailbox(AiosmtpdServer):
    name = "aiosmtpd-mailbox"
    handler = "mailbox"
    stores = True


class AiosmtpdNoop(AiosmtpdServer):
    name = "aiosmtpd-noop"
    handler = "noop"


def maildev_folder() -> Path:
    """Where npm installs MailDev: a cache folder outside the repository."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "smtp-tutor-bench" / "maildev"


def maildev_script() -> Path:
    return maildev_folder() / "node_modules" / "maildev" / "dist" / "bin" / "maildev.js"


def maildev_installed_version() -> str | None:
    package = maildev_folder() / "node_modules" / "maildev" / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def install_maildev(timeout: float = 600.0) -> str | None:
    """Install the pinned MailDev with npm into its cache folder; None when done, else
    why not (no npm, no node, npm failed)."""
    if maildev_installed_version() == MAILDEV_VERSION and shutil.which("node"):
        return None
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        return "npm or node is not installed"
    folder = maildev_folder()
    folder.mkdir(parents=True, exist_ok=True)
    package = f"maildev@{MAILDEV_VERSION}"
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), package],
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=folder,
        )
    except (OSError, subprocess.SubprocessError) as error:
        stderr = getattr(error, "stderr", b"") or b""
        return f"npm install failed: {error} {stderr.decode(errors='replace')[-300:]}"
    return None if maildev_script().is_file() else "npm install left no maildev script"


class MailDev(Target):
    """MailDev persisting to a directory (one .eml file per message, written before the
    250, not fsync'd), its web interface on loopback too, its log to a file."""

    name = "maildev"
    stores = True

    @classmethod
    def available(cls) -> bool:
        return shutil.which("node") is not None and maildev_script().is_file()

    def start(self) -> Target:
        self.port, web_port = free_port(), free_port()
        self.mail = self.workdir / "mail"
        # Its settings come from MAILDEV_* variables and config files found from the
        # working directory up: neither may change what is measured.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILDEV_")}
        with (self.workdir / "maildev.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(str(shutil.which("node")), str(maildev_script())),
                    *("--smtp", str(self.port), "--ip", self.host),
                    *("--web", str(web_port), "--web-ip", self.host),
                    *("--mail-directory", str(self.mail)),
                ],
                stdout=log,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
            )
        wait_for_port(self, "maildev")
        return self

    def stored(self) -> int:
        return sum(1 for _ in self.mail.glob("*.eml"))


class SmtpSink(Target):
    name = "smtp-sink"

    @classmethod
    def available(cls) -> bool:
        return os.access(SMTP_SINK, os.X_OK)

    def start(self) -> Target:
        self.port = free_port()
        # -u: it refuses to run as root without a user to switch to; -m: more than the
        # default 256 simultaneous connections, for the idle-connections test.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [SMTP_SINK, *user, "-m", "2000", f"{self.host}:{self.port}", "1024"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        wait_for_port(self, "smtp-sink")
        return self


TARGETS: list[type[Target]] = [
    Serve,
    ServeDashboard,
    AiosmtpdMailbox,
    AiosmtpdNoop,
    MailDev,
    SmtpSink,
]


def smtp_source_available() -> bool:
    return os.access(SMTP_SOURCE, os.X_OK) and shutil.which(SMTP_SOURCE) is not None
