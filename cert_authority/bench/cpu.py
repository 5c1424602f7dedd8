"""CPU time a benchmark's requests cost, by who spent it, read from /proc (Linux only).

Requests a second move with whatever else the shared machine runs (the same code gave a third of
its figures on another day); the CPU a request costs moves far less, and it says what a machine
needs: at `c` ms a request, `n` cores serve at most `n * 1000 / c` requests a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
DATABASE_PROCESS = "postgres"  # every backend of the local server, whoever it serves


@dataclass(frozen=True)
class CpuSample:
    """CPU ticks so far of each live process: the service's (its process group), the database's."""

    service: dict[int, int]
    database: dict[int, int]


def cpu_sample(service_group: int) -> CpuSample | None:
    """None where there is no /proc to read."""
    if not (PROC / "self" / "stat").exists():
        return None
    service: dict[int, int] = {}
    database: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = (PROC / entry.name / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (name) state ppid pgrp ... utime stime ...": the name may hold spaces and parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)
        if int(fields[2]) == service_group:
            service[int(entry.name)] = ticks
        elif name == DATABASE_PROCESS:
            database[int(entry.name)] = ticks
    return CpuSample(service, database)


def cpu_seconds_between(before: CpuSample, after: CpuSample) -> tuple[float, float]:
    """CPU seconds the service and the database spent between the samples: processes started
    meanwhile count whole; those that ended meanwhile are lost (neither keeps a pool's processes)."""

    def spent(start: dict[int, int], end: dict[int, int]) -> float:
        return sum(max(0, ticks - start.get(pid, 0)) for pid, ticks in end.items()) / TICKS_PER_SECOND

    return spent(before.service, after.service), spent(before.database, after.database)
