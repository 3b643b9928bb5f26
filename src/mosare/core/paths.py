"""Where every output lives under the results folder: one layout for the rules (``common.smk``), the scripts and the
end-of-run summary.

Pass concrete names to get a path, or Snakemake wildcards to get a rule's pattern:
``RESULTS_LAYOUT.patch_store("nsclc", "S1")`` is ``results/nsclc/patches/S1.zarr``,
``RESULTS_LAYOUT.patch_store("{cohort}", "{slide_id}")`` the pattern rule ``tile_slide`` writes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any


def encoder_dir_name(encoder: str) -> str:
    """An encoder name as a path component (``timm:resnet50`` -> ``timm-resnet50``)."""
    return encoder.replace(":", "-")


class _Location:
    """One artefact's place below the results root: ``template``'s fields are the method's arguments, in order."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.fields = tuple(re.findall(r"{(\w+)}", template))

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, layout: Any, owner: type | None = None) -> Any:
        if layout is None:
            return self

        def path(*names: str) -> str:
            if len(names) != len(self.fields):
                raise TypeError(f"{self.name}() takes {', '.join(self.fields)}; got {len(names)} value(s)")
            return f"{layout.root}/" + self.template.format(**dict(zip(self.fields, names)))

        path.__name__ = path.__qualname__ = self.name
        path.__doc__ = f"``{{root}}/{self.template}``"
        return path


@dataclasses.dataclass(frozen=True)
class ResultsLayout:
    """The results tree below ``root`` (relative to the directory Snakemake runs in, or absolute)."""

    root: str = "results"

    # Generated demo cohorts.
    demo_dir = _Location("demo/{cohort}")
    demo_sample_sheet = _Location("demo/{cohort}/samples.tsv")
    demo_rna_matrix = _Location("demo/{cohort}/rna.tsv")
    demo_reports = _Location("demo/{cohort}/reports")
    demo_overview = _Location("demo/{cohort}/overview.png")
    # Per slide, and the encoder's weights fingerprint.
    patch_dir = _Location("{cohort}/patches")
    patch_store = _Location("{cohort}/patches/{slide_id}.zarr")
    tissue_qc = _Location("{cohort}/qc/tissue/{slide_id}.png")
    encoder_fingerprint = _Location("encoders/{encoder}.json")
    feature_dir = _Location("{cohort}/features/{encoder}")
    feature_store = _Location("{cohort}/features/{encoder}/{slide_id}.zarr")
    gmm_dir = _Location("{cohort}/gmm/{encoder}")
    gmm_store = _Location("{cohort}/gmm/{encoder}/{slide_id}.zarr")
    gmm_qc = _Location("{cohort}/qc/gmm/{encoder}/{slide_id}.png")
    # Per cohort.
    cohort_dir = _Location("{cohort}")
    text_store = _Location("{cohort}/text.zarr")
    rna_store = _Location("{cohort}/rna.zarr")
    cohort_table = _Location("{cohort}/cohort.tsv")
    modality_qc = _Location("{cohort}/qc/modalities.png")
    slide_qc = _Location("{cohort}/slide_qc.tsv")  # per-slide quality metrics and flags (mosare.cohort.slide_qc_table)
    slide_qc_overview = _Location("{cohort}/qc/slide_qc_overview.png")
    contact_sheets = _Location("{cohort}/qc/contact_sheets")  # page_001.png, ... (mosare.reporting.plots.slide_qc)
    # tissue/ and gmm/: {flagged,unflagged}/{slide_id}.jpg, the per-slide pictures the report embeds
    report_slide_pictures = _Location("{cohort}/qc/report_slides/{kind}")
    metrics = _Location("{cohort}/metrics.tsv")
    metrics_summary = _Location("{cohort}/metrics.md")
    comparisons = _Location("{cohort}/comparisons.tsv")
    splits = _Location("{cohort}/splits.tsv")
    train_dir = _Location("{cohort}/train")
    # One training job's results per fold of a repeat, and the final models' weights, for the evaluation job.
    fold_results = _Location("{cohort}/train/folds/repeat{repeat}-fold{fold}.pkl")
    final_model_results = _Location("{cohort}/train/final_models.pt")
    models_dir = _Location("{cohort}/models")
    predictions = _Location("{cohort}/predictions.tsv")  # every out-of-fold prediction, keyed, for the figures
    cohort_figure = _Location("{cohort}/figures/{figure}.png")
    # Encoder comparison: each of compare_encoders trained beside `encoder`, then all compared on the same patients.
    encoder_run_dir = _Location("{cohort}/encoders/{encoder}")
    encoder_train_dir = _Location("{cohort}/encoders/{encoder}/train")
    encoder_fold_results = _Location("{cohort}/encoders/{encoder}/train/folds/repeat{repeat}-fold{fold}.pkl")
    encoder_metrics = _Location("{cohort}/encoders/{encoder}/metrics.tsv")
    encoder_metrics_summary = _Location("{cohort}/encoders/{encoder}/metrics.md")
    encoder_comparisons = _Location("{cohort}/encoders/{encoder}/comparisons.tsv")
    encoder_splits = _Location("{cohort}/encoders/{encoder}/splits.tsv")
    encoder_predictions = _Location("{cohort}/encoders/{encoder}/predictions.tsv")
    encoder_comparison = _Location("{cohort}/encoder_comparison.tsv")
    encoder_comparison_summary = _Location("{cohort}/encoder_comparison.md")
    encoder_comparison_figure = _Location("{cohort}/encoder_comparison.png")
    # Deploy: one cohort's final models applied to another.
    deploy_dir = _Location("{source}/deploy/{target}")
    deploy_predictions = _Location("{source}/deploy/{target}/predictions.tsv")
    deploy_metrics = _Location("{source}/deploy/{target}/metrics.tsv")
    deploy_roc = _Location("{source}/deploy/{target}/roc.png")
    deploy_kaplan_meier = _Location("{source}/deploy/{target}/kaplan_meier.png")  # a survival source's
    deploy_attention = _Location("{source}/deploy/{target}/attention")  # {slide}.zarr, {slide}.geojson
    deploy_attention_heatmaps = _Location("{source}/deploy/{target}/attention_heatmaps")  # {slide}.png
    deploy_attention_montages = _Location("{source}/deploy/{target}/attention_montages")  # {slide}.png
    # heatmaps/ and montages/: {misclassified,other}/{slide}.jpg, the attention pictures the report embeds
    deploy_report_pictures = _Location("{source}/deploy/{target}/report_slides/{kind}")

    @property
    def demo_root(self) -> str:
        return f"{self.root}/demo"


RESULTS_LAYOUT = ResultsLayout()
