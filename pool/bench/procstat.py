"""CPU time and peak memory of a process and its children, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        return []
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the pool's supervisor and its workers)."""
    tree = [pid]
    for child in children(pid):
        tree.extend(process_tree(child))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: field 3 is the state, so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had, in MB (2^20 bytes)."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """VmRSS: resident memory now, in MB."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status (in kB there), in MB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class TreeCpu:
    """Cumulative CPU of a process tree; processes seen once keep counting with their last reading after they exit."""

    root: int
    _last: dict[int, float]

    @classmethod
    def of(cls, root: int) -> TreeCpu:
        tracker = cls(root, {})
        tracker.seconds()
        return tracker

    def seconds(self) -> float:
        for pid in process_tree(self.root):
            reading = cpu_seconds(pid)
            if reading > 0:
                self._last[pid] = reading
        return sum(self._last.values())

    def peak_rss_mb(self) -> dict[int, float]:
        return {pid: peak_rss_mb(pid) for pid in process_tree(self.root)}
