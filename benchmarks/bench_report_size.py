"""Size of `snakemake --report` for a 1,000-slide cohort, simulated from a finished demo run by hard links.

Usage (in the working directory of a demo run that made results/nsclc/metrics.tsv and its slide QC, e.g. a copy
of the checkout under /tmp):

    python benchmarks/bench_report_size.py --snakefile PATH/Snakefile [--slides 1000] [--source nsclc]

Adds a cohort ``{source}_{slides}`` to config.yaml whose sample sheet repeats the source cohort's slides under new
ids; its slides, patch stores, feature and GMM stores and per-slide QC pictures are hard links of the source's, so
only the cohort-level rules run for real (slide_qc, slide_qc_pictures, report_slide_pictures). Then writes
``report_{slides}.html`` holding that cohort's slide QC and the source cohort's evaluation figures (what a 1,000-slide
cohort's report holds) and prints its size, per report category, with the number of items.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

from mosare.core.paths import ResultsLayout, encoder_dir_name

LAYOUT = ResultsLayout()


def link_tree(source: Path, target: Path) -> None:
    """A hard-linked copy of a file or directory (zarr stores are directories)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        os.link(source, target)


def simulate_cohort(source: str, n_slides: int, encoder: str) -> tuple[str, pd.DataFrame]:
    """The source cohort's slides and per-slide outputs repeated under ``n_slides`` new ids; returns its name."""
    cohort = f"{source}_{n_slides}"
    sheet = pd.read_csv(LAYOUT.demo_sample_sheet(source), sep="\t", dtype=str).fillna("")
    sheet = sheet[sheet["slide_id"] != ""].reset_index(drop=True)
    slides_dir = Path(LAYOUT.cohort_dir(cohort)) / "input_slides"
    rows = []
    for i in range(n_slides):
        original = sheet.iloc[i % len(sheet)]
        slide_id = f"{cohort}-{i + 1:04d}-A"
        slide = slides_dir / f"{slide_id}{Path(original['slide_path']).suffix}"
        link_tree(Path(LAYOUT.demo_dir(source)) / original["slide_path"], slide)
        pairs = (
            (LAYOUT.patch_store(source, original["slide_id"]), LAYOUT.patch_store(cohort, slide_id)),
            (LAYOUT.tissue_qc(source, original["slide_id"]), LAYOUT.tissue_qc(cohort, slide_id)),
            (
                LAYOUT.feature_store(source, encoder, original["slide_id"]),
                LAYOUT.feature_store(cohort, encoder, slide_id),
            ),
            (LAYOUT.gmm_store(source, encoder, original["slide_id"]), LAYOUT.gmm_store(cohort, encoder, slide_id)),
            (LAYOUT.gmm_qc(source, encoder, original["slide_id"]), LAYOUT.gmm_qc(cohort, encoder, slide_id)),
        )
        for original_path, path in pairs:
            link_tree(Path(original_path), Path(path))
        rows.append(
            {
                "patient_id": slide_id.removesuffix("-A"),
                "slide_id": slide_id,
                "slide_path": str(slide.resolve()),
                "label": original["label"],
            }
        )
    return cohort, pd.DataFrame(rows)


def report_size(html: Path) -> dict[str, tuple[int, int]]:
    """Bytes of embedded data per report category (and the items in it)."""
    text = html.read_text(encoding="utf-8")
    tables = {}
    for variable in ("results", "categories"):
        found = re.search(rf"^\s*var {variable} = \{{", text, re.M)
        tables[variable], _ = json.JSONDecoder().raw_decode(text, found.end() - 1)
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for category, subcategories in tables["categories"].items():
        for names in subcategories.values():
            for name in names:
                sizes[category][0] += len(tables["results"][name].get("data_uri") or "")
                sizes[category][1] += 1
    return {category: (size, items) for category, (size, items) in sizes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snakefile", required=True)
    parser.add_argument("--slides", type=int, default=1000)
    parser.add_argument("--source", default="nsclc")
    args = parser.parse_args()

    config = yaml.safe_load(Path("config.yaml").read_text())
    encoder = encoder_dir_name(config["encoder"]["name"])
    cohort, sheet = simulate_cohort(args.source, args.slides, encoder)
    sheet_path = Path(LAYOUT.cohort_dir(cohort)) / "samples.tsv"
    sheet.to_csv(sheet_path, sep="\t", index=False)
    config["cohorts"][cohort] = {"classes": config["cohorts"][args.source]["classes"], "samples": str(sheet_path)}
    Path("config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    qc_targets = [
        LAYOUT.slide_qc(cohort),
        LAYOUT.slide_qc_overview(cohort),
        LAYOUT.contact_sheets(cohort),
        LAYOUT.report_slide_pictures(cohort, "tissue"),
        LAYOUT.report_slide_pictures(cohort, "gmm"),
    ]
    # Run only the cohort-level QC rules: the hard links share their originals' mtimes, which can make a GMM chunk
    # of the new cohort look older than a feature store it reads. The report needs every rule (its DAG, its items).
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", args.snakefile, "--cores", "2"]
    allowed = ["--allowed-rules", "slide_qc", "slide_qc_pictures", "report_slide_pictures"]  # after the targets
    subprocess.run([*snakemake, *qc_targets, *allowed], check=True)
    report = Path(f"report_{args.slides}.html")
    evaluation = [LAYOUT.metrics(args.source)] if Path(LAYOUT.metrics(args.source)).exists() else []
    subprocess.run([*snakemake, "--report", str(report), *evaluation, *qc_targets], check=True)
    sizes = report_size(report)
    print(f"{report}: {report.stat().st_size / 1e6:.1f} MB, {args.slides} slides in cohort {cohort}")
    for category, (size, items) in sorted(sizes.items(), key=lambda item: -item[1][0]):
        print(f"  {category:<24} {size / 1e6:6.1f} MB in {items} item(s)")


if __name__ == "__main__":
    main()
