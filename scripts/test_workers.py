"""How many pytest-xdist workers `make test` starts: one per core this process may use, no more
than the memory allows (3 GiB each: an end-to-end test trains through a fairchem process), at
least one.

The cores are those of the CPU affinity, limited by a cgroup CPU quota (a container started
with ``--cpus``), which pytest-xdist's ``-n auto`` does not read: it counts the host's cores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

GIB_PER_WORKER = 3.0


def _quota_cores() -> float | None:
    """Cores allowed by a cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota, or None."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    if v2.is_file():
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    if v1.is_file():
        quota = int(v1.read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    return None


def _available_gib() -> float | None:
    """MemAvailable of /proc/meminfo in GiB, or None where there is no such file."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return None


def test_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limits = [cores or 1]
    quota = _quota_cores()
    if quota is not None:
        limits.append(math.ceil(quota))
    memory = _available_gib()
    if memory is not None:
        limits.append(int(memory // GIB_PER_WORKER))
    return max(1, min(limits))


if __name__ == "__main__":
    print(test_workers())
