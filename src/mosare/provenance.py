"""Code fingerprints, so editing a stage's source reruns exactly the stages whose code changed.

Snakemake does not look inside imported packages; every rule passes ``stage_code_hash(stage)`` as a param,
and Snakemake's params-change trigger does the rest.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
WORKFLOW_SCRIPTS = PACKAGE_DIR.parents[1] / "workflow" / "scripts"

# Stage -> source files (relative to src/mosare/) whose edits change that stage's outputs.
# Shared helpers (stores, logs, config) are listed where they shape the output.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "demo": ("demo.py", "stores.py"),
    "tiling": ("slides.py", "tiling.py", "plots/tissue.py", "stores.py"),
    "embedding": ("slides.py", "encoders.py", "embedding.py", "stores.py"),
    "gmm": ("gmm.py", "plots/gmm.py", "stores.py"),
    "text": ("text.py", "gmm.py", "stores.py"),
    "rna": ("rna.py", "stores.py"),
    "cohort": ("cohort.py", "plots/cohort.py"),
    "training": ("training.py", "metrics.py", "plots/training.py", "model"),
}


def _files(relative: str) -> list[Path]:
    path = PACKAGE_DIR / relative
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    return [path] if path.exists() else []


@functools.cache
def stage_code_hash(stage: str) -> str:
    """A short sha256 over the stage's source files (contents and names)."""
    if stage not in STAGE_SOURCES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_SOURCES)}")
    digest = hashlib.sha256()
    for path in (p for rel in STAGE_SOURCES[stage] for p in _files(rel)):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
