"""Route a rule's stdout, stderr and ``logging`` into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to_file(path: str | Path) -> Iterator[logging.Logger]:
    """Send everything the job prints (tqdm bars included) and logs to ``path``; yield the 'mosare' logger."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield logging.getLogger("mosare")
        except BaseException:
            logging.getLogger("mosare").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
