"""The results layout: one place for every output path, usable as a concrete path or as a rule's pattern."""

from __future__ import annotations

import pytest

from mosare.core.paths import RESULTS_LAYOUT, ResultsLayout, _Location, encoder_dir_name


def layout_locations() -> dict[str, tuple[str, ...]]:
    """{method: its argument names} for every path the layout knows."""
    return {name: value.fields for name, value in vars(ResultsLayout).items() if isinstance(value, _Location)}


def test_concrete_paths_and_rule_patterns_come_from_the_same_method():
    assert RESULTS_LAYOUT.patch_store("nsclc", "S1") == "results/nsclc/patches/S1.zarr"
    assert RESULTS_LAYOUT.patch_store("{cohort}", "{slide_id}") == "results/{cohort}/patches/{slide_id}.zarr"
    assert ResultsLayout("/data/out").gmm_store("rcc", "uni", "S2") == "/data/out/rcc/gmm/uni/S2.zarr"
    assert RESULTS_LAYOUT.demo_sample_sheet("brca") == "results/demo/brca/samples.tsv"
    assert RESULTS_LAYOUT.demo_dir("brca").startswith(RESULTS_LAYOUT.demo_root + "/")
    with pytest.raises(TypeError, match=r"gmm_store\(\) takes cohort, encoder, slide_id; got 2"):
        RESULTS_LAYOUT.gmm_store("rcc", "S2")


@pytest.mark.parametrize("root", ["results", "/scratch/run 1/results"])
def test_no_two_artefacts_share_a_path_and_every_path_lies_under_the_root(root):
    layout = ResultsLayout(root)
    paths = {
        name: getattr(layout, name)(*(f"{{{field}}}" for field in fields))
        for name, fields in layout_locations().items()
    }
    assert all(path.startswith(f"{root}/") for path in paths.values()), paths
    by_path = {}
    for name, path in paths.items():
        by_path.setdefault(path, []).append(name)
    assert [names for names in by_path.values() if len(names) > 1] == []


@pytest.mark.parametrize("name, expected", [("uni", "uni"), ("timm:resnet50", "timm-resnet50"), ("uni2-h", "uni2-h")])
def test_encoder_names_become_one_path_component(name, expected):
    assert encoder_dir_name(name) == expected
