"""The per-slide patch store ``results/{cohort}/patches/{slide_id}.zarr``: one typed contract, written by the tiling
stage (``mosare.slides.tiling``) and read only through :class:`PatchStore` (embedding, slide attention, the GMM and
slide QC pictures, the slide QC table, the cohort table and the run summary).

Array ``coords`` (N, 2) int64: level-0 x, y of each patch's top-left. Attrs, in the order written: ``slide_id,
slide_path, mpp_level0, mpp_source, target_mpp, patch_px, footprint_px, read_level, read_px, upsample_factor, tissue,
n_patches, tissue_area_um2, level_dimensions, unreadable_tiles, qc`` (meanings in docs/architecture.md). The patch
grid (``GRID_ATTRS``: where and how to read the patches) is required; the tiling record after it (tissue parameters,
QC metrics, ...) reads as None where a store lacks it.

No torch, no OpenSlide: planning and light scripts import this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mosare.core.stores import StoreError, check_store, open_store, write_store
from mosare.slides.exclusion import EXCLUDED, SlideExclusion

COORDS = "coords"
N_PATCHES = "n_patches"
# Attrs that say where and how to read the patches: every reader needs them.
GRID_ATTRS = ("slide_id", "slide_path", "mpp_level0", "target_mpp", "patch_px", "footprint_px", "read_level", "read_px")
# What the tiling stage recorded besides: absent in stores written otherwise (read as None).
RECORD_ATTRS = (
    "mpp_source",
    "upsample_factor",
    "tissue",
    "tissue_area_um2",
    "level_dimensions",
    "unreadable_tiles",
    "qc",
)
# Every attr in the order the tiling stage writes them (kept so that stores stay byte-identical).
ATTR_ORDER = (
    "slide_id",
    "slide_path",
    "mpp_level0",
    "mpp_source",
    "target_mpp",
    "patch_px",
    "footprint_px",
    "read_level",
    "read_px",
    "upsample_factor",
    "tissue",
    N_PATCHES,
    "tissue_area_um2",
    "level_dimensions",
    "unreadable_tiles",
    "qc",
)
FIX = "delete it and rerun its tiling job (snakemake --forcerun tile_slide with this store as the target)"


class PatchStoreError(StoreError):
    """A patch store lacks part of its contract; the message names the store and the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class PatchStore:
    """One slide's patches as stored: where they are (``coords``), how to read them and what tiling found.

    ``read_level``/``read_px``: the pyramid level read and the px size read there before resizing to ``patch_px``;
    ``footprint_px``: level-0 px covered by one patch.
    """

    coords: np.ndarray  # (N, 2) int64 level-0 x, y
    slide_id: str
    slide_path: str
    mpp_level0: float
    target_mpp: float
    patch_px: int
    footprint_px: int
    read_level: int
    read_px: int
    mpp_source: str | None = None
    upsample_factor: float | None = None
    tissue: dict[str, Any] | None = None
    tissue_area_um2: float | None = None
    level_dimensions: list[list[int]] | None = None
    unreadable_tiles: list[dict[str, Any]] | None = None
    qc: dict[str, Any] | None = None

    @property
    def n_patches(self) -> int:
        return int(len(self.coords))

    def attrs(self) -> dict[str, Any]:
        """The store's attrs as written, in ``ATTR_ORDER``."""
        return {name: self.n_patches if name == N_PATCHES else getattr(self, name) for name in ATTR_ORDER}

    def write(self, path: str | Path) -> None:
        """Write the store atomically (``mosare.core.stores.write_store``)."""
        write_store(path, {COORDS: np.asarray(self.coords, dtype=np.int64)}, self.attrs())

    @classmethod
    def read(cls, path: str | Path) -> PatchStore:
        """Read a finished store; an incomplete one is a ``PatchStoreError`` naming the store and the fix."""
        group = open_store(path)
        exclusion = SlideExclusion.from_attrs(group.attrs)
        if exclusion is not None:
            raise PatchStoreError(f"{exclusion.describe()}; {path} holds no patches")
        check_store(
            group,
            path,
            kind="patch store",
            arrays=(COORDS,),
            attrs=(*GRID_ATTRS, N_PATCHES),
            fix=FIX,
            error=PatchStoreError,
        )
        attrs = dict(group.attrs)
        coords = np.asarray(group[COORDS][...], dtype=np.int64).reshape(-1, 2)
        if int(attrs[N_PATCHES]) != len(coords):
            raise PatchStoreError(
                f"patch store {path} says {attrs[N_PATCHES]} patches but holds {len(coords)} coordinates; it is "
                f"damaged: {FIX}"
            )
        return cls(
            coords=coords,
            slide_id=str(attrs["slide_id"]),
            slide_path=str(attrs["slide_path"]),
            mpp_level0=float(attrs["mpp_level0"]),
            target_mpp=float(attrs["target_mpp"]),
            patch_px=int(attrs["patch_px"]),
            footprint_px=int(attrs["footprint_px"]),
            read_level=int(attrs["read_level"]),
            read_px=int(attrs["read_px"]),
            **{name: attrs.get(name) for name in RECORD_ATTRS},
        )

    @staticmethod
    def count(path: str | Path) -> int:
        """Patches in a finished store without reading or checking the rest: its ``n_patches`` attr, else the
        length of ``coords`` (stores written before the attr existed); 0 for an excluded slide."""
        group = open_store(path)
        if N_PATCHES in group.attrs:
            return int(group.attrs[N_PATCHES])
        if EXCLUDED in group.attrs:
            return 0
        check_store(group, path, kind="patch store", arrays=(COORDS,), fix=FIX, error=PatchStoreError)
        return int(group[COORDS].shape[0])
