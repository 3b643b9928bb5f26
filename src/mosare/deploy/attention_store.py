"""The per-slide attention store ``attention/{slide_id}.zarr`` of rule deploy_attention: one typed contract, written
by :mod:`mosare.deploy.attention` and read only through :class:`AttentionStore`.

Arrays ``coords`` (N, 2) int64 (level-0 top-left x, y, rows as in the slide's feature store) and ``scores`` (N, 2)
float64 (columns ``SCORE_COLUMNS``: the attention weight, its rank within the slide scaled to 0..1). Attrs, in the
order written: ``model, model_dir, source_cohort, slide_id, patient_id, score_columns, footprint_px, n_patches,
patient_share``.

No torch: the drawing processes import this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mosare.core.stores import StoreError, check_store, open_store, write_store
from mosare.deploy.slide_attention import SlideAttention

COORDS = "coords"
SCORES = "scores"
SCORE_COLUMNS = ("attention", "attention_rank")
ATTRS = (
    "model",
    "model_dir",
    "source_cohort",
    "slide_id",
    "patient_id",
    "score_columns",
    "footprint_px",
    "n_patches",
    "patient_share",
)
FIX = "delete it and rerun rule deploy_attention"


class AttentionStoreError(StoreError):
    """An attention store lacks part of its contract; the message names it and the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class AttentionStore:
    """One slide's patch attention (``attention``) and the model it came from."""

    attention: SlideAttention
    model: str
    model_dir: str
    source_cohort: str

    def write(self, path: str | Path) -> None:
        """Write the store atomically (``mosare.core.stores.write_store``)."""
        slide = self.attention
        scores = np.stack([slide.attention, slide.rank], axis=1) if slide.n_patches else np.zeros((0, 2))
        values = (
            self.model,
            self.model_dir,
            self.source_cohort,
            slide.slide_id,
            slide.patient_id,
            list(SCORE_COLUMNS),
            slide.footprint_px,
            slide.n_patches,
            slide.patient_share,
        )
        write_store(
            path,
            {COORDS: slide.coords.astype(np.int64), SCORES: scores.astype(np.float64)},
            dict(zip(ATTRS, values, strict=True)),
        )

    @classmethod
    def read(cls, path: str | Path) -> AttentionStore:
        """Read a finished store; an incomplete one is an ``AttentionStoreError`` naming the store and the fix."""
        group = open_store(path)
        check_store(
            group,
            path,
            kind="attention store",
            arrays=(COORDS, SCORES),
            attrs=ATTRS,
            fix=FIX,
            error=AttentionStoreError,
        )
        attrs = dict(group.attrs)
        coords = np.asarray(group[COORDS][...], dtype=np.int64).reshape(-1, 2)
        scores = np.asarray(group[SCORES][...], dtype=np.float64).reshape(-1, len(SCORE_COLUMNS))
        slide = SlideAttention(
            str(attrs["slide_id"]), str(attrs["patient_id"]), coords, scores[:, 0], int(attrs["footprint_px"])
        )
        return cls(slide, attrs["model"], attrs["model_dir"], attrs["source_cohort"])
