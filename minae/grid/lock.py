"""One grid per output folder: a lock file naming the process that holds it.

Two grids writing the same ``--out`` would both train every run and overwrite
each other's results.json. The first holds ``<out>/.minae-grid.lock`` (JSON:
pid, host, start time) for as long as it runs; a second refuses with that
information. A lock whose process is gone (a grid killed with ``kill -9``) is
stale, and the next grid takes it over with a note; so is one whose pid is no
process's (not a positive integer). A lock this user cannot read, or that is
not a file, is refused: nobody can tell whether its grid still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from minae._io import read_json, timestamp
from minae.errors import GridBusyError

LOCK_NAME = ".minae-grid.lock"
UNREADABLE_GRACE_S = 10.0   # a lock file just created may not hold its JSON yet


def _read(path):
    """The lock's holder, a dict, or None if the file holds none (gone, empty, damaged).
    A lock that cannot be read for another reason (permissions) raises OSError."""
    try:
        holder = read_json(path, max_bytes=1 << 16)
    except (FileNotFoundError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _alive(pid):
    """Whether process ``pid`` exists; a pid that is no process's (not an integer >= 1) is not."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        return False   # 0 and -1 would make os.kill signal a group or every process
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True    # it exists but is not ours
    return True


@contextlib.contextmanager
def grid_lock(out, log=print):
    """Hold the lock of folder ``out`` for the ``with`` block (run_grid takes it once)."""
    path = Path(out) / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": timestamp()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            fd = None
        if fd is not None:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            break
        if not os.path.lexists(path):   # its grid just let go of it: try again
            continue
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise GridBusyError(f"{path} is {kind}, not a lock file; delete it, or choose another --out")
        try:
            holder = _read(path)
        except OSError as exc:
            raise GridBusyError(f"{out} is locked by {path}, which cannot be read ({exc.strerror or exc}): "
                                "another user's grid may be running there. Wait for it or choose another "
                                f"--out; if no grid runs there any more, delete {path}") from None
        # Our own pid in a lock we do not hold: a dead grid's, whose pid we now have.
        gone = holder is not None and holder.get("host") == me["host"] and (
            not _alive(holder.get("pid")) or holder.get("pid") == me["pid"])
        if gone or (holder is None and time.time() - _mtime(path) > UNREADABLE_GRACE_S):
            who = "an unreadable lock" if holder is None else \
                f"the lock of grid process {holder.get('pid')}, which no longer runs"
            # Renamed away, not deleted: of two grids taking over at once, only one
            # rename succeeds, and the other finds the winner's fresh lock.
            try:
                os.rename(path, path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
            except FileNotFoundError:
                continue
            path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}").unlink(missing_ok=True)
            log(f"note: taking over {who} ({path})")
            continue
        who = "another grid" if holder is None else (
            f"grid process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}")
        raise GridBusyError(f"{out} is in use by {who} (lock file {path}). Wait for it to finish or "
                            f"choose another --out; if no grid runs there any more, delete {path}")
    try:
        yield path
    finally:
        try:
            holder = _read(path)
        except OSError:   # no longer ours to read: not ours to delete
            holder = None
        if holder is not None and (holder.get("pid"), holder.get("host")) == (me["pid"], me["host"]):
            path.unlink(missing_ok=True)


def _mtime(path):
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
