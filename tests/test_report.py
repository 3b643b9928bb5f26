"""`snakemake --report` gathers every picture of a run, and the HTML renders in a real headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from report.render_report import CHROMIUM, embedded_categories, embedded_results, render_report
from workflow_runs import snakemake
from workflow_runs import finished_tiny_run  # noqa: F401 (session fixture: a finished tiny demo run)

pytestmark = pytest.mark.slow  # the shared tiny run takes minutes on 2 cores


@pytest.fixture(scope="module")
def report_html(finished_tiny_run) -> Path:
    run = finished_tiny_run
    report = run.workdir / "report.html"
    snakemake(run.workdir, *run.targets, "--report", str(report), repo=run.repo)
    return report


def test_report_holds_every_cohort_level_picture_of_the_run_with_a_caption(report_html):
    html = report_html.read_text(encoding="utf-8")
    results, categories = embedded_results(html), embedded_categories(html)
    workdir = report_html.parent
    # Per-model, per-fold details stay in the training directory; the report carries the cohort-level grids.
    pictures = {
        str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.png") if "train" not in p.parent.parts
    }

    in_report = {name for name, r in results.items() if r["mime_type"] == "image/png"}
    assert pictures and pictures <= in_report
    assert all(results[name]["caption"].strip() for name in in_report)
    assert {"Tissue QC", "Evaluation"} <= set(categories)


@pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(report_html, tmp_path):
    rendered = render_report(report_html, tmp_path / "render")

    assert rendered.app_rendered
    assert rendered.images and rendered.failed_images == []
    assert rendered.shown is not None and rendered.shown["width"] > 100
    screenshot = np.asarray(Image.open(rendered.screenshot).convert("L"), dtype=float)
    assert screenshot.shape == (1000, 1600)
    assert screenshot.std() > 10, "the screenshot is blank"
