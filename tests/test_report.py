"""`snakemake --report` gathers every cohort-level picture of a run and a capped choice of per-slide ones (flagged
slides first), and the HTML renders in a real headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from report.render_report import CHROMIUM, embedded_categories, embedded_results, render_report
from workflow_runs import (
    COHORT,
    finished_tiny_run,  # noqa: F401 (session fixture: a finished tiny demo run)
    snakemake,
)

from mosare.core.paths import ResultsLayout

pytestmark = pytest.mark.slow  # the shared tiny run takes minutes on 2 cores

LAYOUT = ResultsLayout()
REPORT_CAP = 3  # report.max_slide_pictures, below the tiny cohort's 8 slides
# The tiny slides have 7-11 patches, all under the default qc.min_patches: with 4, only outliers are flagged.
QC_OVERRIDES = {"report": {"max_slide_pictures": REPORT_CAP}, "qc": {"min_patches": 4}}
QC_TARGETS = (
    LAYOUT.slide_qc(COHORT),
    LAYOUT.slide_qc_overview(COHORT),
    LAYOUT.contact_sheets(COHORT),
    LAYOUT.report_slide_pictures(COHORT, "tissue"),
    LAYOUT.report_slide_pictures(COHORT, "gmm"),
)


@pytest.fixture(scope="module")
def report_html(finished_tiny_run) -> Path:
    run = finished_tiny_run
    report = run.workdir / "report.html"
    # Extends config.yaml (--config would pass the numbers as strings); targets first, as --configfile takes a list.
    overrides = run.workdir / "report_overrides.yaml"
    overrides.write_text(yaml.safe_dump(QC_OVERRIDES))
    snakemake(run.workdir, *QC_TARGETS, "--configfile", overrides.name, repo=run.repo)
    snakemake(
        run.workdir, *run.targets, *QC_TARGETS, "--report", str(report), "--configfile", overrides.name, repo=run.repo
    )
    return report


def per_slide(path: Path) -> bool:
    """A full-size per-slide picture (browsable under qc/, not embedded) or a per-model, per-fold training detail."""
    return "train" in path.parent.parts or path.parent.name == "tissue" or "gmm" in path.parent.parts


def test_report_holds_every_cohort_level_picture_of_the_run_with_a_caption(report_html):
    html = report_html.read_text(encoding="utf-8")
    results, categories = embedded_results(html), embedded_categories(html)
    workdir = report_html.parent
    pictures = {
        str(path)
        for path in (p.relative_to(workdir) for p in (workdir / "results").rglob("*.png"))
        if not per_slide(path)
    }

    in_report = {name for name, r in results.items() if r["mime_type"].startswith("image/")}
    assert pictures and pictures <= in_report
    assert any("contact_sheets" in name for name in pictures)
    assert all(results[name]["caption"].strip() for name in in_report)
    assert {"Slide QC", "Tissue QC", "GMM QC", "Evaluation"} <= set(categories)


def test_report_embeds_flagged_slides_pictures_first_and_caps_the_others(report_html):
    results = embedded_results(report_html.read_text(encoding="utf-8"))
    workdir = report_html.parent
    table = pd.read_csv(workdir / LAYOUT.slide_qc(COHORT), sep="\t", dtype=str).fillna("")
    flagged = set(table.loc[table["flags"] != "", "slide_id"])
    assert 0 < len(flagged) < REPORT_CAP < len(table), f"the test needs flagged and unflagged slides: {flagged}"

    embedded = {}
    for kind in ("tissue", "gmm"):
        folder = LAYOUT.report_slide_pictures(COHORT, kind) + "/"
        embedded[kind] = {Path(name).stem: name for name in results if name.startswith(folder)}
        assert len(embedded[kind]) == REPORT_CAP and flagged <= set(embedded[kind])
        for slide, name in embedded[kind].items():
            assert results[name]["mime_type"] == "image/jpeg"
            status = "flagged" if slide in flagged else "unflagged"
            assert f"/{status}/{slide}.jpg" in name and status in results[name]["caption"]
            assert slide in results[name]["caption"]
    assert set(embedded["tissue"]) == set(embedded["gmm"])
    # The full-size per-slide pictures stay under qc/tissue/, outside the report.
    assert not [name for name in results if name.startswith(f"results/{COHORT}/qc/tissue/")]


@pytest.mark.skipif(
    shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
def test_report_renders_in_headless_chromium_with_every_image_loaded(report_html, tmp_path):
    rendered = render_report(report_html, tmp_path / "render")

    assert rendered.app_rendered
    assert rendered.images and rendered.failed_images == []
    assert rendered.shown is not None and rendered.shown["width"] > 100
    screenshot = np.asarray(Image.open(rendered.screenshot).convert("L"), dtype=float)
    assert screenshot.shape == (1000, 1600)
    assert screenshot.std() > 10, "the screenshot is blank"
