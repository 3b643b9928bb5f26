"""Files written atomically: built at a temporary sibling and renamed into place only once complete.

A job that dies mid-write never leaves an output that looks finished (a rename within one directory is atomic on
POSIX). Zarr stores use the same temporary naming (``mosare.core.stores.atomic_store``). No third-party imports, so
every stage's environment can use it.

A job killed mid-write (kill -9, out of memory, a cluster's time limit) leaves its temporary behind; a feature store
can be hundreds of MB. The next write of the same target removes the temporaries that a dead process of this same
host left, and keeps any whose writer may still be alive. A temporary's name says who wrote it:
``.<name>.tmp-<host>-<pid namespace>-<pid>-<start>``, where ``start`` is when that process started (``/proc``), so
a pid reused by a newer process does not keep a dead writer's temporary forever, and a process of another host or
container on a shared filesystem (its own pids) is never judged by this one's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the annotation: this module imports no third-party package
    import pandas as pd

STALE_SUFFIX = re.compile(r"(?P<pid>\d+)(?:-(?P<start>\d+))?(?:-old)?")  # after ``.<name>.tmp-<writer tag>-``


@functools.cache
def writer_tag() -> str:
    """``<host>-<pid namespace>``: whose pids a temporary's pid is (the namespace tells containers of one host
    apart; it is omitted where /proc is absent)."""
    host = re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"
    try:
        return f"{host}-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return host


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, /proc/<pid>/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # the command name in parentheses may hold spaces


def temporary_sibling(path: Path) -> Path:
    """``.<name>.tmp-<host>-<pid namespace>-<pid>-<start>`` beside ``path``: hidden, unique per writing process,
    and naming that process."""
    pid = os.getpid()
    start = process_start(pid)
    return path.with_name(f"{temporary_prefix(path)}{pid}" + ("" if start is None else f"-{start}"))


def temporary_prefix(path: Path) -> str:
    """What every temporary of ``path`` written on this host starts with (its pid and start follow)."""
    return f".{path.name}.tmp-{writer_tag()}-"


def writer_may_be_alive(pid: int, start: int | None) -> bool:
    """False only when process ``pid`` (of this host and pid namespace) is gone, or has been reused by a process
    that started at another time than ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process: /proc may hide its start (hidepid), so it is taken as the writer
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries of ``path`` (files, or store folders and their moved-aside ``-old`` copies) left by
    dead processes of this host; returns them. Others' temporaries, and those of live writers, stay."""
    path = Path(path)
    prefix = temporary_prefix(path)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        writer = STALE_SUFFIX.fullmatch(entry.name[len(prefix) :])
        start = None if writer is None or writer["start"] is None else int(writer["start"])
        if writer is None or writer_may_be_alive(int(writer["pid"]), start):
            continue
        stale = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(stale, ignore_errors=True)  # another writer of the same target may be removing it too
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; rename it to ``path`` on success, delete it on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_tsv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as a tab-separated table without its index to ``path``, atomically (``atomic_file``)."""
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
