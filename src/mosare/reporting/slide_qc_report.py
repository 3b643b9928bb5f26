"""Which slides' own QC pictures the HTML report embeds, and the reduced copies it embeds.

Every slide's tissue and GMM QC pictures stay full size under ``results/{cohort}/qc/``, and every slide is on the
contact sheets. The report, one HTML file holding each picture as base64, embeds the pictures of at most
``report.max_slide_pictures`` slides: flagged slides first, then unflagged ones spread evenly over the sample sheet,
each picture as a JPEG of at most ``REPORT_PICTURE_MAX_SIDE`` px (under a third of the full PNG's bytes on the demo).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mosare.core.atomic_files import atomic_file

log = logging.getLogger(__name__)

# px: titles, legends and patch squares stay legible; at 1000 px a 1,000-slide report passed 50 MB
REPORT_PICTURE_MAX_SIDE = 800
REPORT_PICTURE_QUALITY = 85  # JPEG quality: outlines and patch squares stay crisp enough to judge
FLAGGED, UNFLAGGED = "flagged", "unflagged"  # the report copies' folders, shown as the report's "QC" column


@dataclass(frozen=True)
class ReportSlides:
    """The slides whose pictures the report embeds, each list in sample-sheet order."""

    flagged: list[str]
    unflagged: list[str]
    flagged_left_out: list[str]  # flagged slides beyond the cap (still on the contact sheets and under qc/)

    def by_status(self) -> dict[str, list[str]]:
        return {FLAGGED: self.flagged, UNFLAGGED: self.unflagged}


def select_report_slides(slide_ids: Sequence[str], flagged: Collection[str], max_pictures: int) -> ReportSlides:
    """At most ``max_pictures`` slides: the flagged ones first (in sheet order), then unflagged ones taken from the
    middle of equal stretches of the sheet, so a sheet sorted by site or class is sampled across, not at its head.

    Deterministic: the same sheet and flags give the same selection, so an unchanged run's report is unchanged.
    """
    if max_pictures < 0:
        raise ValueError(f"report.max_slide_pictures must be 0 or more, got {max_pictures}")
    flagged_set = set(flagged)
    in_sheet_flagged = [slide for slide in slide_ids if slide in flagged_set]
    unflagged = [slide for slide in slide_ids if slide not in flagged_set]
    shown_flagged = in_sheet_flagged[:max_pictures]
    n_unflagged = min(max_pictures - len(shown_flagged), len(unflagged))
    # Stretch i of n_unflagged equal stretches contributes its middle slide; stretches are >= 1 slide long, so no
    # slide is taken twice.
    picks = [int((i + 0.5) * len(unflagged) / n_unflagged) for i in range(n_unflagged)]
    return ReportSlides(shown_flagged, [unflagged[i] for i in picks], in_sheet_flagged[max_pictures:])


def write_report_copy(picture: str | Path, target: str | Path, max_side: int = REPORT_PICTURE_MAX_SIDE) -> None:
    """``picture`` as a JPEG no larger than ``max_side`` px on its longer side (never enlarged), for the report."""
    with Image.open(picture) as image:
        copy = image.convert("RGB")
    scale = max_side / max(copy.size)
    if scale < 1:
        size = (max(1, round(copy.width * scale)), max(1, round(copy.height * scale)))
        copy = copy.resize(size, Image.Resampling.LANCZOS)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp:
        copy.save(tmp, format="JPEG", quality=REPORT_PICTURE_QUALITY, optimize=True)


def write_report_copies(selection: ReportSlides, pictures: dict[str, str | Path], folder: str | Path) -> list[Path]:
    """The selected slides' ``pictures`` (slide id -> picture) as report copies ``folder/{status}/{slide}.jpg``."""
    written = []
    for status, slides in selection.by_status().items():
        for slide in slides:
            target = Path(folder) / status / f"{slide}.jpg"
            write_report_copy(pictures[slide], target)
            written.append(target)
    Path(folder).mkdir(parents=True, exist_ok=True)  # a report with no slide picture still has the folder
    return written
