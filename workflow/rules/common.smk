# Configuration, sample sheets and input functions shared by every rule file. No rules here.
import functools
from pathlib import Path

import pandas as pd

from mosare.config import cohort_train_config, validate_config
from mosare.samples import load_sample_sheet

validate_config(config)

COHORTS = list(config["cohorts"])
RESULTS = "results"


wildcard_constraints:
    cohort="|".join(COHORTS),
    slide_id=r"[A-Za-z0-9._-]+",
    encoder=r"[A-Za-z0-9._:-]+",


def is_demo(cohort: str) -> bool:
    return "demo" in config["cohorts"][cohort]


@functools.cache
def cohort_sheet(cohort: str) -> pd.DataFrame:
    """The cohort's validated sample sheet (planned in memory for a demo cohort, before it exists)."""
    cohort_config = config["cohorts"][cohort]
    if is_demo(cohort):
        from mosare.demo import plan_demo_cohort

        return plan_demo_cohort(
            cohort, cohort_config["demo"], cohort_config["classes"], Path(RESULTS) / "demo" / cohort
        )
    return load_sample_sheet(cohort_config["samples"], cohort_config["classes"])


def slide_ids(cohort: str) -> list[str]:
    return cohort_sheet(cohort)["slide_id"].tolist()


def slide_row(cohort: str, slide_id: str) -> pd.Series:
    sheet = cohort_sheet(cohort)
    return sheet.loc[sheet["slide_id"] == slide_id].iloc[0]


def sample_sheet_path(cohort: str) -> str:
    if is_demo(cohort):
        return f"{RESULTS}/demo/{cohort}/samples.tsv"
    return config["cohorts"][cohort]["samples"]


def rna_matrix_path(cohort: str) -> str | None:
    if is_demo(cohort):
        return f"{RESULTS}/demo/{cohort}/rna.tsv"
    return config["cohorts"][cohort].get("rna")


def encoder_slug() -> str:
    """Encoder name as a path component (``timm:resnet50`` -> ``timm-resnet50``)."""
    return config["encoder"]["name"].replace(":", "-")


def get_final_output() -> list[str]:
    return [f"{RESULTS}/{cohort}/metrics.tsv" for cohort in COHORTS]


def code_hash(stage: str) -> str:
    """Fingerprint of a stage's source; passed as a param so code edits rerun that stage."""
    from mosare.provenance import stage_code_hash

    return stage_code_hash(stage)
