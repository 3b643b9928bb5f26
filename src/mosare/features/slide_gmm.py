"""The per-slide GMM stage: a slide's feature store in, its GMM store out, and the data its QC picture shows.

``fit_slide_gmm`` fits one slide and draws nothing; ``fit_slide_gmms`` runs a job's chunk of slides (the same chunks
as the embedding jobs, ``mosare.features.embedding_chunks``) in one process, so the imports (torch alone takes 3-4 s) are
paid once per chunk instead of once per slide. The rule's script passes the drawing
(``mosare.reporting.plots.gmm.plot_slide_mixture``) as a callback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosare.core.logs import slide_log
from mosare.features.feature_store import FeatureStore
from mosare.features.gmm import fit_gmm_tokens, padding_sources
from mosare.features.gmm_store import SlideGMMStore
from mosare.slides.exclusion import SlideExclusion

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SlideMixture:
    """A fitted slide mixture and what its component map needs: each patch's corner and most likely component.

    ``copy_of``: for each component the one it duplicates by padding (its own index when fitted); None when the
    slide had no patches (``labels`` and ``coords`` are then empty).
    """

    store: SlideGMMStore
    coords: np.ndarray
    labels: np.ndarray
    copy_of: np.ndarray | None
    title: str


def fit_slide_gmm(
    feature_store: str | Path,
    gmm_store: str | Path,
    gmm_config: Mapping[str, Any],
    *,
    slide_id: str,
    device: str | torch.device | None = None,
) -> SlideMixture:
    """Fit one slide's mixture over its patch features, write its GMM store and return what the QC picture shows.

    A slide without patches gets a store with ``present=False`` and all-zero arrays instead of an error, so one
    empty slide never stops its cohort.
    """
    stored = FeatureStore.read(feature_store)
    features, coords = stored.features.astype(np.float32), stored.coords
    try:
        result = fit_gmm_tokens(features, gmm_config, device=device)
    except ValueError as error:
        raise ValueError(
            f"{feature_store} (slide {slide_id}): {error}; delete the store and rerun the embedding for this slide"
        ) from error
    store = SlideGMMStore(slide_id, stored.record.encoder, int(gmm_config["seed"]), result)
    store.write(gmm_store)
    if not result.present:
        logger.warning("slide %s has no patches: stored an all-zero token set with present=False", slide_id)
        title = f"{slide_id}: no patches, no mixture fitted (tokens stored as zeros, present=False)"
        return SlideMixture(store, coords, np.zeros(0, dtype=np.int64), None, title)

    subsample = "" if result.n_fit_samples == result.n_samples else f" (fitted on {result.n_fit_samples})"
    logger.info(
        "slide %s: %d patches%s, %d of %d components fitted, mean log-likelihood %.2f, %d EM iterations%s",
        slide_id,
        result.n_samples,
        subsample,
        result.n_components_used,
        len(result.weights),
        result.log_likelihood,
        result.n_iter,
        "" if result.converged else " (not converged)",
    )
    title = (
        f"{slide_id}: {result.n_samples} patches{subsample}, {result.n_components_used} of "
        f"{len(result.weights)} components fitted{' (BIC)' if gmm_config['select_by_bic'] else ''}; "
        f"mean log-likelihood {result.log_likelihood:.1f} after {result.n_iter} EM iterations"
        f"{'' if result.converged else ' (not converged)'}"
    )
    labels = result.predict(features, device=device)
    return SlideMixture(store, coords, labels, padding_sources(result.means, result.variances), title)


@dataclasses.dataclass(frozen=True)
class SlideGMMJob:
    """One slide of a GMM job: the stores it reads and writes, its QC picture and its own log file."""

    slide_id: str
    feature_store: str | Path
    gmm_store: str | Path
    patch_store: str | Path
    slide_path: str | Path
    qc_picture: str | Path
    log: str | Path | None = None


class SlideGMMJobError(RuntimeError):
    """Some slides of a GMM job failed; the message names each with its error."""


def fit_slide_gmms(
    jobs: Sequence[SlideGMMJob],
    gmm_config: Mapping[str, Any],
    *,
    draw: Callable[[SlideMixture | SlideExclusion, SlideGMMJob], None],
    device: str | torch.device | None = None,
) -> None:
    """Fit, store and draw every slide of a job, each logged to its own file as well as the job's. A slide excluded
    before (``mosare.slides.exclusion``) gets its exclusion passed on as its GMM store, and drawn.

    A failing slide does not stop the others: every slide is tried, then one error names all that failed (Snakemake
    removes a failed job's outputs, so they all rerun once the cause is fixed; the message says what to fix).
    """
    failures: list[str] = []
    for job in jobs:
        try:
            with slide_log(job.log):
                exclusion = SlideExclusion.read(job.feature_store)
                if exclusion is not None:
                    exclusion.write(job.gmm_store)
                    logger.warning("%s; passed on to %s", exclusion.describe(), job.gmm_store)
                    draw(exclusion, job)
                    continue
                mixture = fit_slide_gmm(
                    job.feature_store, job.gmm_store, gmm_config, slide_id=job.slide_id, device=device
                )
                draw(mixture, job)
        except Exception as error:
            failures.append(f"slide {job.slide_id}: {error}")
    if failures:
        raise SlideGMMJobError(f"{len(failures)} of {len(jobs)} slides of this GMM job failed:\n" + "\n".join(failures))
