"""Outputs appear whole or not at all: an error while writing leaves the previous file and no temporary file; a
writer killed mid-write leaves a temporary that the next write of its target removes, and only then."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from mosare.core.atomic_files import atomic_file, process_start, writer_may_be_alive, writer_tag
from mosare.core.stores import atomic_store, open_store, write_store


def test_a_written_file_replaces_the_old_one_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out" / "table.tsv"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".table.tsv.tmp-")
        tmp.write_text("first\n")
    with atomic_file(target) as tmp:
        tmp.write_text("second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.tsv"]


def test_an_error_while_writing_keeps_the_previous_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "table.tsv"
    target.write_text("complete\n")
    with pytest.raises(RuntimeError, match="killed"), atomic_file(target) as tmp:
        tmp.write_text("half a ta")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


# ---- Temporaries left by killed writers -----------------------------------------------------------------------


def _killed_mid_write(write) -> int:
    """Run ``write(kill)`` in a forked child that SIGKILLs itself where ``write`` calls ``kill()``; returns its pid,
    reaped (so that pid is free again on this host)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            write(lambda: os.kill(os.getpid(), signal.SIGKILL))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return pid


def _half_written_file(target: Path) -> Path:
    def write(kill) -> None:
        with atomic_file(target) as tmp:
            tmp.write_text("half a ta")
            kill()

    pid = _killed_mid_write(write)
    [left] = target.parent.glob(f".{target.name}.tmp-*-{pid}-*")
    return left


def _half_written_store(target: Path) -> Path:
    def write(kill) -> None:
        with atomic_store(target) as group:
            group.create_array("features", data=np.arange(1000.0).reshape(100, 10), chunks=(10, 10))
            kill()

    pid = _killed_mid_write(write)
    [left] = target.parent.glob(f".{target.name}.tmp-*-{pid}-*")
    assert left.is_dir() and any(left.rglob("*"))
    return left


def _renamed(temporary: Path, old: str, new: str) -> Path:
    """``temporary`` under a name with ``old`` (a part of its writer's name) replaced by ``new``."""
    assert old in temporary.name
    return temporary.rename(temporary.with_name(temporary.name.replace(old, new)))


def test_a_file_temporary_left_by_a_killed_writer_is_removed_by_the_next_write_of_its_target(tmp_path):
    target = tmp_path / "table.tsv"
    target.write_text("complete\n")
    left = _half_written_file(target)
    assert target.read_text() == "complete\n" and left.read_text() == "half a ta"

    with atomic_file(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]


def test_a_store_temporary_and_a_moved_aside_old_store_left_by_killed_writers_are_removed(tmp_path):
    target = tmp_path / "slide.zarr"
    write_store(target, {"coords": np.arange(6).reshape(3, 2)}, {"slide_id": "s"})
    left = _half_written_store(target)
    # A writer killed while deleting the complete store it replaced leaves it moved aside as <temporary>-old.
    old = _half_written_store(target)
    old = old.rename(old.with_name(f"{old.name}-old"))

    write_store(target, {"coords": np.arange(8).reshape(4, 2)}, {"slide_id": "s"})
    assert not left.exists() and not old.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slide.zarr"]
    np.testing.assert_array_equal(open_store(target)["coords"][...], np.arange(8).reshape(4, 2))


def test_the_temporary_of_a_writer_still_running_is_kept_until_it_dies(tmp_path):
    target = tmp_path / "slide.zarr"
    ready, hold = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer that is slow, not dead: it holds its temporary open until the test lets it die
        try:
            with atomic_store(target) as group:
                group.create_array("features", data=np.zeros((10, 4)))
                os.write(ready[1], b"x")
                os.read(hold[0], 1)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    try:
        assert os.read(ready[0], 1) == b"x"
        [live] = tmp_path.glob(f".slide.zarr.tmp-*-{pid}-*")
        write_store(target, {"coords": np.zeros((2, 2), np.int64)})
        assert live.is_dir() and (live / "features").is_dir(), "a live writer's temporary was removed"
    finally:
        os.write(hold[1], b"x")
        os.waitpid(pid, 0)
    write_store(target, {"coords": np.zeros((2, 2), np.int64)})
    assert not live.exists()


def test_temporaries_of_other_hosts_containers_targets_and_the_old_naming_are_kept(tmp_path):
    target = tmp_path / "table.tsv"
    tag, namespace = writer_tag(), str(os.stat("/proc/self/ns/pid").st_ino)
    assert tag.endswith(f"-{namespace}")
    # The same dead writer's temporary, as written on another host of a shared filesystem, or in a container of this
    # host with its own pids: their pid says nothing about this host's processes.
    other_host = _renamed(_half_written_file(target), f"tmp-{tag}-", f"tmp-othernode-{namespace}-")
    other_pids = _renamed(_half_written_file(target), f"tmp-{tag}-", f"tmp-{tag.removesuffix(namespace)}4026500000-")
    # Another target's temporary (only a write of that target may decide about it), and one named before the writer
    # was part of the name (its host is unknown).
    other_target = _renamed(_half_written_file(target), ".table.tsv.", ".table.tsv.gz.")
    dead = _killed_mid_write(lambda kill: kill())
    unnamed_host = tmp_path / f".table.tsv.tmp-{dead}"
    unnamed_host.write_text("half")

    with atomic_file(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    for kept in (other_host, other_pids, other_target, unnamed_host):
        assert kept.exists(), kept.name


def test_a_temporary_whose_pid_now_belongs_to_a_newer_process_is_removed(tmp_path):
    """pid reuse: a live process has the dead writer's pid but started at another time."""
    target = tmp_path / "table.tsv"
    left = _half_written_file(target)
    pid, start = re.fullmatch(r".*-(\d+)-(\d+)", left.name).groups()
    reused = _renamed(left, f"-{pid}-{start}", f"-{os.getppid()}-{int(start) + 1}")
    assert writer_may_be_alive(os.getppid(), process_start(os.getppid()))

    with atomic_file(target) as tmp:
        tmp.write_text("new\n")
    assert not reused.exists()
