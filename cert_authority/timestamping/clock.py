"""The TSA's clock: the system clock (CLOCK_REALTIME), kept to UTC by the host's NTP daemon
(chrony or ntpd), and the kernel's own word on whether that daemon has it synchronised.

Linux keeps the NTP discipline's state in the kernel: adjtimex(2) (read-only, modes = 0, no
privilege needed, and inside a container it reads the host's kernel) returns TIME_ERROR, or sets
STA_UNSYNC in `status`, when no daemon has synchronised the clock, and `maxerror` is the kernel's
bound on the clock's error in microseconds. With ECAS_TSA_CLOCK=kernel (the default) a request is
refused (timeNotAvailable) while the kernel says unsynchronised, or when its error bound is beyond
ECAS_TSA_MAX_CLOCK_ERROR_MS; the tokens' accuracy is that bound, rounded up to whole milliseconds
(at least one second is declared below it never). ECAS_TSA_CLOCK=unchecked trusts the system clock
without asking: only for development machines without NTP (the accuracy is then 1 s, stated, not
measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import functools
from dataclasses import dataclass
from typing import Protocol

TIME_ERROR = 5  # adjtimex(2) return value: clock not synchronised
STA_UNSYNC = 0x0040
UNCHECKED_ACCURACY = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class ClockStatus:
    synchronised: bool
    max_error: dt.timedelta  # the bound on the clock's error
    source: str  # what said so, for the refusal message and the docs


class ClockCheck(Protocol):
    def __call__(self) -> ClockStatus: ...


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h): the fields we read come first; the rest is padding room.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_long * 32),
    ]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)  # find_library runs ldconfig: once


def kernel_clock() -> ClockStatus:
    """The kernel's NTP state (adjtimex with modes 0); unsynchronised if it cannot be read."""
    try:
        libc = _libc()
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return ClockStatus(False, dt.timedelta(0), "adjtimex unavailable")
    synchronised = state not in (-1, TIME_ERROR) and not timex.status & STA_UNSYNC
    return ClockStatus(synchronised, dt.timedelta(microseconds=max(timex.maxerror, 0)), "kernel (adjtimex)")


def unchecked_clock() -> ClockStatus:
    return ClockStatus(True, UNCHECKED_ACCURACY, "system clock, unchecked")


CLOCK_CHECKS: dict[str, ClockCheck] = {"kernel": kernel_clock, "unchecked": unchecked_clock}
