"""A slide left out of its cohort because it could not be used (``slides.on_error: exclude``).

With ``exclude``, a slide that cannot be tiled (an unreadable, truncated or non-slide file, no resolution, too much
undecodable area) or embedded (more undecodable patches than ``encoder.max_failed_fraction``) does not fail its job.
Its stage writes a :class:`SlideExclusion` where the slide's store would be - the patch store, then the feature and
GMM stores after it - so the jobs that wait for the store go on with the chunk's other slides. The slide QC table
gives every excluded slide a status and reason, the cohort table drops it from its patient (who becomes slide-less
when it was their only slide), and metrics.md and the end-of-run summary list it.

An exclusion is an empty zarr group whose one attr ``excluded`` holds the record. No torch, no OpenSlide.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mosare.core.stores import open_store, write_store

log = logging.getLogger(__name__)

EXCLUDED = "excluded"  # the attr that marks a store as an exclusion
STOP, EXCLUDE = "stop", "exclude"
SWITCH_HINT = (
    "To record such a slide and go on without it (its patient keeps their other slides, or becomes slide-less), set "
    "slides.on_error: exclude in the workflow configuration"
)


@dataclasses.dataclass(frozen=True)
class SlideExclusion:
    """Why a slide was left out: the ``stage`` that could not use it (``tiling`` or ``embedding``) and its error."""

    slide_id: str
    slide_path: str
    stage: str
    reason: str

    def write(self, path: str | Path) -> None:
        """Write the exclusion in place of the slide's store, atomically."""
        write_store(path, {}, {EXCLUDED: dataclasses.asdict(self)})

    @classmethod
    def read(cls, path: str | Path) -> SlideExclusion | None:
        """The exclusion a finished store holds, or None when it is a real store."""
        return cls.from_attrs(open_store(path).attrs)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> SlideExclusion | None:
        """The exclusion in an opened store's attrs, or None when it is a real store."""
        record = attrs.get(EXCLUDED)
        return None if record is None else cls(**record)

    def describe(self) -> str:
        return f"slide {self.slide_id!r} ({self.slide_path}) was excluded at {self.stage}: {self.reason}"


def check_on_error(on_error: str) -> str:
    if on_error not in (STOP, EXCLUDE):
        raise ValueError(f"slides.on_error must be {STOP!r} or {EXCLUDE!r}, not {on_error!r}")
    return on_error


def exclude_slide(
    path: str | Path, *, slide_id: str, slide_path: str | Path, stage: str, error: BaseException
) -> SlideExclusion:
    """Record ``error`` as the reason ``slide_id`` is left out, at ``path`` (the store it could not become), and log it."""
    exclusion = SlideExclusion(slide_id, str(slide_path), stage, str(error))
    exclusion.write(path)
    log.warning("%s; recorded in %s and left out (slides.on_error: exclude)", exclusion.describe(), path)
    return exclusion
