"""Encoder weights fingerprints: hashed once into a JSON file, checked by size and mtime, damaged files explained."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from workflow_runs import (
    COHORT,
    finished_tiny_run,  # noqa: F401 (session fixture shared with test_orchestration)
    make_workdir,
    planned_jobs,
    snakemake,
    snapshot_workflow,
    tiny_demo_config,
)

from mosare.core.stores import open_store
from mosare.features.encoders import EncoderWeightsError, create_encoder
from mosare.features.weights_fingerprint import (
    WeightsChangedError,
    check_weights_unchanged,
    fingerprint_encoder_weights,
    read_fingerprint,
)


def weights_file(path: Path, content: bytes = b"\x01\x02weights" * 1000) -> Path:
    path.write_bytes(content)
    return path


def test_fingerprint_file_records_the_checkpoints_absolute_path_size_mtime_and_sha256(tmp_path, monkeypatch):
    checkpoint = weights_file(tmp_path / "uni.bin")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results" / "encoders" / "uni.json"

    fingerprint = fingerprint_encoder_weights({"name": "uni", "checkpoint": "uni.bin"}, output)

    recorded = json.loads(output.read_text())
    stat = checkpoint.stat()
    assert recorded == {
        "encoder": "uni",
        "path": str(checkpoint.resolve()),
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    }
    assert read_fingerprint(output) == fingerprint
    assert [p.name for p in output.parent.iterdir()] == ["uni.json"]  # no temporary file left behind


def test_efficientnet_lite0_fingerprints_the_weights_file_its_package_ships(tmp_path):
    fingerprint = fingerprint_encoder_weights({"name": "efficientnet-lite0", "checkpoint": None}, tmp_path / "e.json")

    loaded = Path(create_encoder("efficientnet-lite0", device="cpu").weights_path)
    assert fingerprint.path == str(loaded.resolve())
    assert fingerprint.sha256 == hashlib.sha256(loaded.read_bytes()).hexdigest()


def test_a_missing_checkpoint_is_reported_as_create_encoder_would_before_anything_is_hashed(tmp_path):
    with pytest.raises(EncoderWeightsError, match=r"does not exist.*access-gated.*encoder\.checkpoint"):
        fingerprint_encoder_weights({"name": "uni", "checkpoint": str(tmp_path / "absent.bin")}, tmp_path / "u.json")

    assert not (tmp_path / "u.json").exists()


def test_the_unchanged_weights_file_passes_the_check(tmp_path):
    checkpoint = weights_file(tmp_path / "uni.bin")
    fingerprint = fingerprint_encoder_weights({"name": "uni", "checkpoint": str(checkpoint)}, tmp_path / "uni.json")

    check_weights_unchanged(fingerprint, checkpoint, tmp_path / "uni.json")


def test_weights_of_another_size_fail_the_check_naming_the_file_both_sizes_and_the_fix(tmp_path):
    checkpoint = weights_file(tmp_path / "uni.bin")
    fingerprint = fingerprint_encoder_weights({"name": "uni", "checkpoint": str(checkpoint)}, tmp_path / "uni.json")
    with checkpoint.open("ab") as stream:
        stream.write(b"more")

    with pytest.raises(WeightsChangedError) as raised:
        check_weights_unchanged(fingerprint, checkpoint, tmp_path / "uni.json")

    message = str(raised.value)
    assert str(checkpoint) in message and str(tmp_path / "uni.json") in message
    assert f"then: {fingerprint.size_bytes} bytes" in message and f"now: {fingerprint.size_bytes + 4} bytes" in message
    assert "snakemake --forcerun fingerprint_encoder" in message


def test_weights_rewritten_with_the_same_size_fail_the_check_by_their_mtime(tmp_path):
    checkpoint = weights_file(tmp_path / "uni.bin")
    fingerprint = fingerprint_encoder_weights({"name": "uni", "checkpoint": str(checkpoint)}, tmp_path / "uni.json")
    weights_file(checkpoint, b"\x09" * fingerprint.size_bytes)
    os.utime(checkpoint, ns=(fingerprint.mtime_ns - 10**9, fingerprint.mtime_ns - 10**9))  # an older copy, `cp -p`

    with pytest.raises(WeightsChangedError, match="changed after it was fingerprinted"):
        check_weights_unchanged(fingerprint, checkpoint, tmp_path / "uni.json")


def test_loading_another_file_than_the_fingerprinted_one_fails_the_check_naming_both(tmp_path):
    checkpoint = weights_file(tmp_path / "uni.bin")
    fingerprint = fingerprint_encoder_weights({"name": "uni", "checkpoint": str(checkpoint)}, tmp_path / "uni.json")
    other = weights_file(tmp_path / "other.bin")

    with pytest.raises(WeightsChangedError, match=f"loaded weights file {other}.*fingerprints {checkpoint}"):
        check_weights_unchanged(fingerprint, other, tmp_path / "uni.json")


def test_a_damaged_fingerprint_file_names_itself_and_how_to_recreate_it(tmp_path):
    damaged = tmp_path / "uni.json"
    damaged.write_text('{"encoder": "uni", "path": "/w.bin"}')

    with pytest.raises(ValueError, match=f"{damaged} is not a weights fingerprint.*delete it"):
        read_fingerprint(damaged)


# ---------------------------------------------------------------- in the workflow


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_a_workflow_run_hashes_the_weights_once_and_every_feature_store_records_that_sha256(finished_tiny_run):
    run = finished_tiny_run
    results = run.workdir / "results"
    fingerprint = read_fingerprint(results / "encoders" / "efficientnet-lite0.json")
    stores = sorted((results / COHORT / "features" / "efficientnet-lite0").glob("*.zarr"))

    assert fingerprint.sha256 == hashlib.sha256(Path(fingerprint.path).read_bytes()).hexdigest()
    assert stores and {open_store(store).attrs["weights_sha256"] for store in stores} == {fingerprint.sha256}
    forced = planned_jobs(run.workdir, "--forceall", *run.targets, repo=run.repo)
    # One fingerprint for the workflow; one embedding job per chunk of slides (the tiny cohort fits in one).
    embedding_jobs = {rule: jobs for rule, jobs in forced.items() if rule.startswith("embed_slides_")}
    assert forced["fingerprint_encoder"] == 1 and embedding_jobs == {f"embed_slides_{COHORT}_0": 1}


@pytest.mark.slow  # starts Snakemake four times and runs one job
def test_replacing_the_checkpoint_even_with_an_older_copy_reruns_the_fingerprint_and_moving_it_away_does_not(tmp_path):
    repo = snapshot_workflow(tmp_path / "workflow")
    config = tiny_demo_config()
    config["encoder"] = {"name": "timm:resnet18", "checkpoint": "weights/resnet18.pth"}
    workdir = make_workdir(tmp_path / "work", config)
    (workdir / "weights").mkdir()
    checkpoint = weights_file(workdir / "weights" / "resnet18.pth")
    target = "results/encoders/timm-resnet18.json"
    snakemake(workdir, target, repo=repo)
    assert planned_jobs(workdir, target, repo=repo) == {}
    # Results planned on a machine without the weights (e.g. training elsewhere): the recorded fingerprint stands.
    moved = checkpoint.rename(workdir / "weights" / "elsewhere.pth")
    assert planned_jobs(workdir, target, repo=repo) == {}
    moved.rename(checkpoint)

    before = checkpoint.stat()
    weights_file(checkpoint, b"\x07" * before.st_size)  # same size, other weights...
    os.utime(checkpoint, ns=(before.st_mtime_ns - 10**9, before.st_mtime_ns - 10**9))  # ...older than the fingerprint

    assert planned_jobs(workdir, target, repo=repo) == {"fingerprint_encoder": 1}
