"""Route a rule's stdout, stderr and ``logging`` into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
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


@contextlib.contextmanager
def slide_log(path: str | Path | None) -> Iterator[None]:
    """Copy what is logged while one slide of a multi-slide job is processed into that slide's own log file.

    A job that handles a chunk of slides logs to its chunk log (``log_to_file``); this adds the slide's own file for
    the duration, so ``results/logs/{rule}/{cohort}/{slide_id}.log`` stays the place to look for one slide.
    """
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    except BaseException:
        logging.getLogger("mosare").exception("failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
