"""Where every output lives under the results folder: one layout for the rules (``common.smk``), the scripts and the
end-of-run summary.

Pass concrete names to get a path, or Snakemake wildcards to get a rule's pattern:
``RESULTS_LAYOUT.patch_store("nsclc", "S1")`` is ``results/nsclc/patches/S1.zarr``,
``RESULTS_LAYOUT.patch_store("{cohort}", "{slide_id}")`` the pattern rule ``tile_slide`` writes.
"""

from __future__ import annotations

import dataclasses


def encoder_dir_name(encoder: str) -> str:
    """An encoder name as a path component (``timm:resnet50`` -> ``timm-resnet50``)."""
    return encoder.replace(":", "-")


@dataclasses.dataclass(frozen=True)
class ResultsLayout:
    """The results tree below ``root`` (relative to the directory Snakemake runs in, or absolute)."""

    root: str = "results"

    def cohort_dir(self, cohort: str) -> str:
        return f"{self.root}/{cohort}"

    # ---- generated demo cohorts
    @property
    def demo_root(self) -> str:
        return f"{self.root}/demo"

    def demo_dir(self, cohort: str) -> str:
        return f"{self.demo_root}/{cohort}"

    def demo_sample_sheet(self, cohort: str) -> str:
        return f"{self.demo_dir(cohort)}/samples.tsv"

    def demo_rna_matrix(self, cohort: str) -> str:
        return f"{self.demo_dir(cohort)}/rna.tsv"

    def demo_reports(self, cohort: str) -> str:
        return f"{self.demo_dir(cohort)}/reports"

    def demo_overview(self, cohort: str) -> str:
        return f"{self.demo_dir(cohort)}/overview.png"

    # ---- per slide
    def patch_store(self, cohort: str, slide_id: str) -> str:
        return f"{self.root}/{cohort}/patches/{slide_id}.zarr"

    def tissue_qc(self, cohort: str, slide_id: str) -> str:
        return f"{self.root}/{cohort}/qc/tissue/{slide_id}.png"

    def encoder_fingerprint(self, encoder: str) -> str:
        return f"{self.root}/encoders/{encoder}.json"

    def feature_dir(self, cohort: str, encoder: str) -> str:
        return f"{self.root}/{cohort}/features/{encoder}"

    def feature_store(self, cohort: str, encoder: str, slide_id: str) -> str:
        return f"{self.feature_dir(cohort, encoder)}/{slide_id}.zarr"

    def gmm_dir(self, cohort: str, encoder: str) -> str:
        return f"{self.root}/{cohort}/gmm/{encoder}"

    def gmm_store(self, cohort: str, encoder: str, slide_id: str) -> str:
        return f"{self.gmm_dir(cohort, encoder)}/{slide_id}.zarr"

    def gmm_qc(self, cohort: str, encoder: str, slide_id: str) -> str:
        return f"{self.root}/{cohort}/qc/gmm/{encoder}/{slide_id}.png"

    # ---- per cohort
    def text_store(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/text.zarr"

    def rna_store(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/rna.zarr"

    def cohort_table(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/cohort.tsv"

    def modality_qc(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/qc/modalities.png"

    def metrics(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/metrics.tsv"

    def train_dir(self, cohort: str) -> str:
        return f"{self.root}/{cohort}/train"

    def cohort_figure(self, cohort: str, figure: str) -> str:
        return f"{self.root}/{cohort}/figures/{figure}.png"


RESULTS_LAYOUT = ResultsLayout()
