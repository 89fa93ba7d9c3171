"""Checks of single values (counts, seeds, numbers) shared by every module that takes them,
and the machine's memory that sizes read from arguments or files are checked against.

Each check returns the value as a plain Python number or raises ValueError
naming the argument, so an error says which argument was wrong and why.
NumPy scalars are accepted wherever Python numbers are.
"""

from __future__ import annotations

import math
import numbers
import os


def physical_memory():
    """Bytes of memory this machine has, or None where the system does not say (not Linux):
    what a size read from a flag or a file is compared with before it is allocated."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def positive_int(value, what):
    """An integer >= 1 (a count, a width, a batch size)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def seed(value, what="seed"):
    """A non-negative integer seed (NumPy's generators take no negative seeds, and a
    float such as 1.5 would silently become 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def finite_real(value, what):
    """A finite real number (int, float or NumPy scalar) as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)
