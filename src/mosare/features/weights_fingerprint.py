"""Encoder weights fingerprints: the weights file hashed once per workflow, checked with one stat by every job.

Feature stores record the sha256 of the encoder's weights for provenance. Hashing UNI's 1.2 GB (UNI2-h: 2.7 GB)
takes seconds, and with one embedding job per slide that was ~40 CPU minutes per 1,000 slides. Rule
``fingerprint_encoder`` hashes the configured weights once into ``results/encoders/{encoder}.json`` (path, size,
mtime, sha256); every embedding job checks that the file it loaded still has that size and mtime, and copies the
sha256 into its store.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mosare.core.atomic_files import atomic_file
from mosare.features.encoder_specs import encoder_weights_file

log = logging.getLogger(__name__)

FINGERPRINT_RULE = "fingerprint_encoder"


class WeightsChangedError(RuntimeError):
    """The weights file differs from its fingerprint; the message names both files and how to refresh it."""


@dataclass(frozen=True)
class WeightsFingerprint:
    """What identifies one encoder weights file: the sha256 for provenance, size and mtime for a cheap check."""

    encoder: str
    path: str  # absolute, symlinks resolved
    size_bytes: int
    mtime_ns: int
    sha256: str


def sha256_file(path: str | Path, chunk_bytes: int = 16 * 1024**2) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_weights(encoder: str, path: str | Path) -> WeightsFingerprint:
    """Hash ``path``; raises WeightsChangedError when the file changes while it is read."""
    path = Path(path).resolve()
    before = path.stat()
    sha256 = sha256_file(path)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise WeightsChangedError(
            f"encoder {encoder!r}: weights file {path} changed while it was being hashed; "
            "wait until it is completely copied, then run the workflow again"
        )
    return WeightsFingerprint(encoder, str(path), before.st_size, before.st_mtime_ns, sha256)


def write_fingerprint(fingerprint: WeightsFingerprint, output: str | Path) -> None:
    """Write the fingerprint as JSON, atomically (a temporary file renamed into place)."""
    with atomic_file(output) as tmp:
        tmp.write_text(json.dumps(asdict(fingerprint), indent=2) + "\n", encoding="utf-8")


def read_fingerprint(path: str | Path) -> WeightsFingerprint:
    """The fingerprint written by ``write_fingerprint``; a damaged file raises ValueError naming it and the fix."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return WeightsFingerprint(**{field.name: data[field.name] for field in fields(WeightsFingerprint)})
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is not a weights fingerprint ({type(error).__name__}: {error}); delete it and run the workflow "
            f"again (or `snakemake --forcerun {FINGERPRINT_RULE}`) to fingerprint the weights anew"
        ) from error


def fingerprint_encoder_weights(encoder_config: Mapping[str, Any], output: str | Path) -> WeightsFingerprint:
    """Fingerprint the weights file the config's encoder loads (its checkpoint, or its package's file) to ``output``."""
    name = encoder_config["name"]
    path = encoder_weights_file(name, encoder_config.get("checkpoint"))
    log.info("encoder %s: hashing weights file %s (%.1f MB)", name, path, path.stat().st_size / 1e6)
    fingerprint = fingerprint_weights(name, path)
    write_fingerprint(fingerprint, output)
    log.info("encoder %s: sha256 %s -> %s", name, fingerprint.sha256, output)
    return fingerprint


def _describe(size_bytes: int, mtime_ns: int) -> str:
    modified = datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC).isoformat(timespec="seconds")
    return f"{size_bytes} bytes, modified {modified}"


def check_weights_unchanged(
    fingerprint: WeightsFingerprint, weights_path: str | Path, fingerprint_file: str | Path
) -> None:
    """Raise WeightsChangedError unless ``weights_path`` is the fingerprinted file with its size and mtime.

    One stat instead of a hash: a file replaced or rewritten since it was fingerprinted gets a new mtime.
    """
    path = Path(weights_path).resolve()
    refresh = (
        f"If the new weights are intended, run `snakemake --forcerun {FINGERPRINT_RULE}` (or delete "
        f"{fingerprint_file}) so they are fingerprinted and every slide is embedded anew; otherwise restore the "
        "original file"
    )
    if str(path) != fingerprint.path:
        raise WeightsChangedError(
            f"encoder {fingerprint.encoder!r} loaded weights file {path}, but {fingerprint_file} fingerprints "
            f"{fingerprint.path}. {refresh}"
        )
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) != (fingerprint.size_bytes, fingerprint.mtime_ns):
        raise WeightsChangedError(
            f"encoder {fingerprint.encoder!r}: weights file {path} changed after it was fingerprinted in "
            f"{fingerprint_file} (then: {_describe(fingerprint.size_bytes, fingerprint.mtime_ns)}; now: "
            f"{_describe(stat.st_size, stat.st_mtime_ns)}), so its recorded sha256 would be wrong. {refresh}"
        )
