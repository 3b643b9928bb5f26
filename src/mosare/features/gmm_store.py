"""The per-slide GMM store ``results/{cohort}/gmm/{encoder}/{slide_id}.zarr``: one typed contract, read and written
only through :class:`SlideGMMStore`.

Arrays ``weights`` (C,), ``means`` (C, D), ``variances`` (C, D) float32; attrs ``slide_id, encoder, seed`` and the
scalar fields of :class:`mosare.features.gmm.GMMResult` (``log_likelihood, n_iter, converged, n_components_used, n_samples,
present, n_fit_samples``). Always C = ``gmm.components`` rows (padding rule in ``mosare.features.gmm``); a slide with 0
patches has ``present`` False, all-zero arrays and ``log_likelihood`` None.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mosare.core.stores import open_store, write_store
from mosare.slides.exclusion import SlideExclusion

if TYPE_CHECKING:
    import torch

ARRAYS = ("weights", "means", "variances")


@dataclasses.dataclass(frozen=True)
class GMMResult:
    """A fixed-size token set: always ``n_components`` rows, float32.

    ``present`` is False only for an empty input (all-zero arrays, ``log_likelihood`` None);
    ``n_components_used`` is how many components were fitted before padding; ``n_fit_samples`` how many of the
    ``n_samples`` rows EM ran on (fewer only with ``max_samples``); ``log_likelihood`` is over all ``n_samples``.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihood: float | None
    n_iter: int
    converged: bool
    n_components_used: int
    n_samples: int
    present: bool
    n_fit_samples: int

    def predict(self, X: np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
        """Most likely component of each row of ``X``."""
        if not self.present:
            raise ValueError("an empty token set (present=False) has no components to assign samples to")
        from mosare.features.gmm import predict_components  # torch, only when a picture needs it

        return predict_components(X, self.weights, self.means, self.variances, device=device)


TOKEN_ATTRS = tuple(field.name for field in dataclasses.fields(GMMResult) if field.name not in ARRAYS)
ATTRS = ("slide_id", "encoder", "seed", *TOKEN_ATTRS)


class GMMStoreError(ValueError):
    """A GMM store lacks part of its contract; the message names the store and the fix."""


@dataclasses.dataclass(frozen=True)
class SlideGMMStore:
    """One slide's mixture as stored: its token set (``tokens``) and where it came from."""

    slide_id: str
    encoder: str | None
    seed: int
    tokens: GMMResult

    @property
    def n_components(self) -> int:
        return len(self.tokens.weights)

    @property
    def dim(self) -> int:
        return int(self.tokens.means.shape[1])

    def write(self, path: str | Path) -> None:
        """Write the store atomically (``mosare.core.stores.write_store``)."""
        arrays = {name: np.asarray(getattr(self.tokens, name), dtype=np.float32) for name in ARRAYS}
        attrs = {"slide_id": self.slide_id, "encoder": self.encoder, "seed": self.seed}
        attrs.update({name: _json_value(getattr(self.tokens, name)) for name in TOKEN_ATTRS})
        write_store(path, arrays, attrs)

    @classmethod
    def read(cls, path: str | Path) -> SlideGMMStore:
        """Read a finished store; an incomplete one is an error naming the store and the fix."""
        group = open_store(path)
        exclusion = SlideExclusion.from_attrs(group.attrs)
        if exclusion is not None:
            raise GMMStoreError(f"{exclusion.describe()}; {path} holds no mixture")
        missing = [name for name in ARRAYS if name not in group] + [name for name in ATTRS if name not in group.attrs]
        if missing:
            raise GMMStoreError(
                f"GMM store {path} lacks {', '.join(missing)}; it was written by another version of the workflow: "
                "delete it and rerun its GMM job (snakemake --forcerun with this store as the target)"
            )
        fields: dict[str, Any] = {name: np.asarray(group[name][...], dtype=np.float32) for name in ARRAYS}
        fields.update({name: group.attrs[name] for name in TOKEN_ATTRS})
        tokens = GMMResult(**fields)
        return cls(group.attrs["slide_id"], group.attrs["encoder"], group.attrs["seed"], tokens)


def _json_value(value: Any) -> Any:
    """Plain Python scalars for the zarr attrs (numpy scalars are not JSON)."""
    return value.item() if isinstance(value, np.generic) else value
