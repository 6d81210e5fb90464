"""A message's text while DATA is read: in memory while small, past a threshold in a file.

Holding every message whole in RAM let sixty clients that each send 10 MB and never end
their DATA add 590 MB to `serve`, not given back (docs/server.md, "Memory: the capture,
the session store and message data"). Past SPOOL_THRESHOLD, or sooner once the messages
being received hold SPOOL_MEMORY between them, the text goes to a temporary file under
the Maildir root (`ROOT/.smtp-tutor/spool/`): on the disk that will hold the message
anyway, where /tmp may be a tmpfs that is RAM by another name, and where a full disk is
the same full disk delivery would meet.

The file is unnamed (tempfile.TemporaryFile: O_TMPFILE on Linux, unlinked at once
elsewhere), so closing it is deleting it and nothing is left behind even by kill -9.
The session closes its spool on every way out of DATA (`with`): the lone dot, a 552 or
500 refusal, a storage error, the client going away mid-message, the server stopping.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

SPOOL_THRESHOLD = 1024 * 1024  # bytes of message text held in memory before the file
# Every message held in memory at once, beyond the first STEP of each: a thousand clients
# half-way through a big message would otherwise hold a thousand times the threshold.
SPOOL_MEMORY = 8 * 1024 * 1024
STEP = 64 * 1024


class MemoryPool:
    """Bytes that spools may hold in memory together, taken and given back in STEPs."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._lock = threading.Lock()  # two servers in one process run in two threads

    def take(self, size: int) -> bool:
        with self._lock:
            if self.free < size:
                return False
            self.free -= size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.free += size


POOL = MemoryPool(SPOOL_MEMORY)


def spool_directory(maildir_root: Path) -> Path:
    return maildir_root / ".smtp-tutor" / "spool"


class MessageSpool:
    """Message text, appended line by line, read back in pieces or handed to delivery."""

    def __init__(
        self, directory: Path, threshold: int = SPOOL_THRESHOLD, pool: MemoryPool = POOL
    ) -> None:
        self.directory = directory
        self.threshold = threshold
        self.pool = pool
        self._taken = 0  # from the pool: what memory holds beyond the first STEP
        self.size = 0  # bytes kept so far
        self.failed: OSError | None = None  # the spool file could not be made or written
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self._discarded = False

    def __enter__(self) -> MessageSpool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def in_file(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        """Keep more text; ignored once discarded or failed (the message is refused then)."""
        if self._discarded or self.failed is not None:
            return
        self.size += len(data)
        try:
            if self._file is not None:
                self._file.write(data)
                return
            self._memory += data
            if len(self._memory) > self.threshold or not self._room(len(self._memory)):
                self._file = self._new_file()
                self._file.write(self._memory)
                self._release_memory()
        except OSError as error:  # no room, no permission: refuse the message, keep going
            self.failed = error
            self.discard()

    def discard(self) -> None:
        """Drop what was kept (the message will be refused) and keep nothing more."""
        self._discarded = True
        self._release_memory()
        self._close_file()

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset`."""
        if self._file is None:
            return bytes(self._memory[offset : offset + size])
        self._file.flush()
        self._file.seek(offset)
        return self._file.read(size)

    def content(self) -> bytes | IO[bytes]:
        """What delivery reads: the bytes, or the file (delivery reads it from its start)."""
        if self._file is None:
            return bytes(self._memory)
        self._file.flush()
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        """Free the memory and delete the file (closing an unnamed file deletes it)."""
        self._release_memory()
        self._close_file()

    def _room(self, held: int) -> bool:
        """Whether memory may hold `held` bytes: past the first STEP, the pool must agree."""
        while held > STEP + self._taken:
            if not self.pool.take(STEP):
                return False
            self._taken += STEP
        return True

    def _release_memory(self) -> None:
        self._memory = bytearray()
        self.pool.give(self._taken)
        self._taken = 0

    def _new_file(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return tempfile.TemporaryFile(dir=self.directory)

    def _close_file(self) -> None:
        spool, self._file = self._file, None
        if spool is not None:
            with contextlib.suppress(OSError):  # a failed flush on a full disk
                spool.close()
