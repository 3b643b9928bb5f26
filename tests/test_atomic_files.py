"""Outputs appear whole or not at all: an error while writing leaves the previous file and no temporary file."""

from __future__ import annotations

import pytest

from mosare.atomic_files import atomic_file


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
