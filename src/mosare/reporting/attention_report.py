"""Which slides' attention pictures (heatmap and montage) the HTML report embeds for a deploy pair, and the reduced
copies it embeds.

Every slide of the target keeps its full-size pictures under ``results/{source}/deploy/{target}/attention_heatmaps/``
and ``attention_montages/``. The report embeds those of at most ``report.max_slide_pictures`` slides, chosen as the
slide QC pictures are (:func:`mosare.reporting.slide_qc_report.select_report_slides`), as JPEG copies of the same size:

- first the slides of patients the mapped model got wrong (labelled, and predicted as another class), in cohort
  order. They are what an external validation's reader looks at first (did the model weigh tumour, or pen, glass,
  blur?); finding them costs one read of the pair's ``predictions.tsv``, and their number is the model's own error
  count, not a threshold of ours. Unlabelled patients are never flagged: nothing says their prediction is wrong.
- then other slides (right, or unlabelled) from the middle of equal stretches of the cohort, up to the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mosare.cohort.table import CohortTable
from mosare.evaluation.survival_columns import RISK_GROUP, RISK_GROUPS
from mosare.reporting.slide_qc_report import ReportSlides, select_report_slides, write_report_copy

MISCLASSIFIED, OTHER = "misclassified", "other"  # the report copies' folders, shown as the report's "prediction" column


def misclassified_patients(predictions_path: str | Path, model: str) -> set[str]:
    """Patients whose label ``model`` predicted wrong in a deploy pair's ``predictions.tsv`` (unlabelled: never); for
    a survival model, patients with an event whom it called low risk."""
    predictions = pd.read_csv(predictions_path, sep="\t", dtype=str, keep_default_na=False)
    rows = predictions[predictions["model"] == model]
    if rows.empty:
        found = sorted(predictions["model"].unique())
        raise ValueError(
            f"{predictions_path} holds no predictions of model {model!r} (found: {found}); the attention pictures "
            f"are of {model}: rerun rule deploy_models with {model} among the source cohort's train.models"
        )
    if "predicted" not in rows.columns:  # a survival model's: an event in a patient it called low risk
        wrong = (rows[RISK_GROUP] == RISK_GROUPS[0]) & (rows["event"] == "1")
    else:
        wrong = (rows["label"] != "") & (rows["predicted"] != rows["label"])
    return set(rows.loc[wrong, "patient_id"])


def select_attention_slides(
    cohort_table: str | Path, predictions_path: str | Path, model: str, max_pictures: int
) -> ReportSlides:
    """The slides whose attention pictures the report embeds, misclassified patients' slides as the flagged ones."""
    table = CohortTable.read(cohort_table)
    wrong = misclassified_patients(predictions_path, model)
    slides = [slide for slides in table.slide_ids for slide in slides]
    flagged = [slide for patient, own in zip(table.patient_ids, table.slide_ids) if patient in wrong for slide in own]
    return select_report_slides(slides, flagged, max_pictures)


def pictures_by_slide(folder: str | Path, slides: Sequence[str]) -> dict[str, Path]:
    """``{slide: folder/{slide}.png}`` for the given slides; an error naming the folder when one is missing."""
    pictures = {slide: Path(folder) / f"{slide}.png" for slide in slides}
    missing = [slide for slide, picture in pictures.items() if not picture.exists()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks the attention pictures of slide(s) {', '.join(missing)}; rerun rule deploy_attention"
        )
    return pictures


def write_attention_report_pictures(selection: ReportSlides, pictures: str | Path, folder: str | Path) -> list[Path]:
    """The selected slides' ``pictures/{slide}.png`` as report copies ``folder/{misclassified,other}/{slide}.jpg``."""
    written = []
    for status, slides in ((MISCLASSIFIED, selection.flagged), (OTHER, selection.unflagged)):
        for slide, picture in pictures_by_slide(pictures, slides).items():
            target = Path(folder) / status / f"{slide}.jpg"
            write_report_copy(picture, target)
            written.append(target)
    Path(folder).mkdir(parents=True, exist_ok=True)  # a report with no slide picture still has the folder
    return written
