"""The report's per-slide pictures are capped: no rule hands the HTML report a folder with one picture per slide of a
cohort, only the capped copies (``report.max_slide_pictures``) of rules report_slide_pictures and
report_attention_pictures (and the contact sheets, pages of many slides each). Read from the rule files, so it costs
no workflow run."""

from __future__ import annotations

import re

from workflow_runs import REPO

CAPPED_FOLDERS = {
    "report_slide_pictures": "LAYOUT.report_slide_pictures(",
    "report_attention_pictures": "LAYOUT.deploy_report_pictures(",
}


def report_folders() -> dict[str, list[str]]:
    """{rule: the first argument of each report(directory(...)) among its outputs}."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        starts = list(re.finditer(r"^rule (\w+):", text, re.M))
        for start, end in zip(starts, [*starts[1:], None]):
            block = text[start.start() : end.start() if end else len(text)]
            for item in re.finditer(r"report\(\s*directory\(\s*([^\n]*)", block):
                found.setdefault(start.group(1), []).append(item.group(1))
    return found


CONTACT_SHEETS = "LAYOUT.contact_sheets("  # 48 slides a page: they grow with the cohort, by design (README: Report)


def test_only_the_capped_copy_rules_put_folders_of_per_slide_pictures_into_the_report():
    folders = report_folders()
    assert folders.pop("slide_qc_pictures") == [f'{CONTACT_SHEETS}"{{cohort}}")),']
    assert set(folders) == set(CAPPED_FOLDERS), "a rule puts a folder of pictures into the report uncapped"
    for rule, location in CAPPED_FOLDERS.items():
        assert len(folders[rule]) == 2 and all(folder.startswith(location) for folder in folders[rule])


def test_both_capped_copy_rules_read_the_one_cap_from_the_configuration():
    text = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    for rule in CAPPED_FOLDERS:
        block = re.search(rf"^rule {rule}:\n(.*?)(?=^rule |\Z)", text, re.M | re.S).group(1)
        assert 'max_pictures=config["report"]["max_slide_pictures"]' in block
        assert re.search(r'patterns=\["\{status\}/\{slide_id\}\.jpg"\]', block)
