"""Host CPU-seconds from /proc/stat: what a command cost the whole machine, not only its own process.

A stack's cost is mostly outside the process that asked for it (dockerd, containerd, runc, the
kernel's network setup, the services themselves), so the bench reads the host's busy time
before and after each command. Anything else running meanwhile counts too: read the figures
of a quiet host.
"""

from __future__ import annotations

import os
from pathlib import Path

STAT = Path("/proc/stat")


def busy_seconds(stat: str, ticks_per_second: int) -> float:
    """CPU-seconds the host has been busy since boot, from the text of /proc/stat.

    Busy is user + nice + system + irq + softirq of the first (all-CPU) line. Idle and iowait
    are waiting; steal is time the hypervisor gave to other machines, not work done here.
    """
    first = stat.split("\n", 1)[0].split()
    if not first or first[0] != "cpu" or len(first) < 8:
        raise ValueError(f"not the all-CPU line of /proc/stat: {first[:1]}")
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in first[1:8])
    return (user + nice + system + irq + softirq) / ticks_per_second


def host_busy() -> float:
    """The host's busy CPU-seconds since boot, now."""
    return busy_seconds(STAT.read_text(), os.sysconf("SC_CLK_TCK"))


def cores() -> int:
    """The host's CPUs: what /proc/stat's first line adds up (not this process's affinity)."""
    return os.cpu_count() or 1
