"""Files written atomically: built at a temporary sibling and renamed into place only once complete.

A job that dies mid-write never leaves an output that looks finished (a rename within one directory is atomic on
POSIX). Zarr stores use the same temporary naming (``mosare.stores.atomic_store``). No third-party imports, so
every stage's environment can use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """``.<name>.tmp-<pid>`` beside ``path``: hidden, and unique per writing process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; rename it to ``path`` on success, delete it on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
