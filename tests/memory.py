"""Resident memory of a real process and its children, as the hardening tests measure it."""

from __future__ import annotations

import threading
import time

import psutil

MIB = 1024 * 1024


def tree_rss(pid: int) -> int:
    """Bytes resident in the process `pid` and every process below it."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:  # a child that ended while we counted
            continue
    return total


def settled_rss(pid: int, *, seconds: float = 3.0, step: float = 0.1) -> int:
    """The tree's RSS once it stops falling (memory handed back after a session ends),
    or the lowest seen within `seconds`."""
    lowest = tree_rss(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(step)
        now = tree_rss(pid)
        if now >= lowest:
            return now if now - lowest < MIB else lowest
        lowest = now
    return lowest


class PeakRss:
    """The highest RSS of a process tree, sampled in the background until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = tree_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, tree_rss(self.pid))
            except psutil.NoSuchProcess:  # the process ended (a failed test stopped it)
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak
