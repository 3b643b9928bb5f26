"""Survival cohorts' data layer (issue 22): the survival sample sheet and its checks, time and event in cohort.tsv,
and folds stratified by event and time, with the planning check of their events. Classification stays unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_cohort import small_train_config

from mosare.cohort.table import (
    CohortError,
    CohortTable,
    assemble_cohort,
    sheet_patient_labels,
    sheet_patient_survival,
)
from mosare.core.samples import SampleSheetError, load_sample_sheet
from mosare.core.stores import write_store
from mosare.evaluation import splits as splits_module
from mosare.evaluation.splits import (
    check_survival_splits,
    make_folds,
    make_survival_folds,
    survival_fold_validation_split,
    survival_strata,
    survival_validation_split,
)

CLASSES = ["LUAD", "LUSC"]


def write_sheet(folder: Path, rows: list[dict]) -> Path:
    """A TSV sample sheet written as given (every value a string), with the slide files its rows name."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row.get("slide_path"):
            (folder / row["slide_path"]).write_text("x")
    path = folder / "samples.tsv"
    pd.DataFrame(rows).astype(str).to_csv(path, sep="\t", index=False)
    return path


def srow(patient: str, slide: str, time: object = "100", event: object = "1", **extra: object) -> dict:
    slide_path = f"{slide}.svs" if slide else ""
    return {"patient_id": patient, "slide_id": slide, "slide_path": slide_path, "time": time, "event": event} | extra


def load_survival(path: Path, cohort: str | None = "luad_os") -> pd.DataFrame:
    return load_sample_sheet(path, (), cohort=cohort, task="survival")


# ---------------------------------------------------------------- the sample sheet


def test_a_valid_survival_sheet_gives_typed_times_and_events_and_no_label(tmp_path):
    rows = [
        srow("P1", "S1", "365", "1"),
        srow("P1", "S2", "365.0", "1.0"),  # another spelling of the same time and event
        srow("P2", "S3", "0", "0"),  # a time of 0 is allowed
        srow("P3", "", "12.5", "0", site=""),  # a patient without a slide
    ]
    sheet = load_survival(write_sheet(tmp_path, rows))
    assert "label" not in sheet.columns
    assert sheet["time"].dtype == np.float64 and sheet["event"].dtype == bool
    assert sheet["time"].tolist() == [365.0, 365.0, 0.0, 12.5]
    assert sheet["event"].tolist() == [True, True, False, False]
    assert sheet["slide_id"].tolist() == ["S1", "S2", "S3", ""]
    assert sheet["slide_path"].iloc[0] == str((tmp_path / "S1.svs").resolve())
    ids, times, events = sheet_patient_survival(sheet)
    assert ids.tolist() == ["P1", "P2", "P3"]
    assert times.tolist() == [365.0, 0.0, 12.5] and times.dtype == np.float64
    assert events.tolist() == [True, False, False] and events.dtype == bool


def test_every_bad_time_and_event_is_listed_at_once_with_the_file_the_line_the_patient_and_the_fix(tmp_path):
    rows = [
        srow("P1", "S1", "", "1"),  # line 2: missing time
        srow("P2", "S2", "ten", "0"),  # line 3: not a number
        srow("P3", "S3", "-4", "1"),  # line 4: negative
        srow("P4", "S4", "inf", "0"),  # line 5: not finite
        srow("P5", "S5", "30", "2"),  # line 6: event not 0/1
        srow("P6", "S6", "30", "yes"),  # line 7
        srow("P7", "S7", "30", ""),  # line 8: missing event
        srow("P8", "S8", "0", "0"),  # line 9: fine
    ]
    path = write_sheet(tmp_path, rows)
    with pytest.raises(SampleSheetError) as raised:
        load_survival(path)
    message = str(raised.value)
    assert message.startswith(f"{path.resolve()} has 2 problem(s):")
    assert (
        "'time' must be a number >= 0 on every row: line 2 (patient 'P1'): empty; line 3 (patient 'P2'): 'ten' is "
        "not a number; line 4 (patient 'P3'): '-4' is negative; line 5 (patient 'P4'): 'inf' is not finite; give "
        "each row its patient's follow-up time"
    ) in message
    assert "(0 is allowed)" in message
    assert (
        "'event' must be 1 or 0 on every row: line 6 (patient 'P5'): '2'; line 7 (patient 'P6'): 'yes'; line 8 "
        "(patient 'P7'): empty; write 1 when the event"
    ) in message
    assert "P8" not in message


def test_a_patient_whose_rows_disagree_on_time_or_event_is_listed_with_every_row(tmp_path):
    rows = [
        srow("P1", "S1", "365", "1"),
        srow("P1", "S2", "400", "1"),
        srow("P1", "S3", "365", "1"),
        srow("P2", "S4", "90", "1"),
        srow("P2", "S5", "90", "0"),
        srow("P3", "S6", "90", "0"),
        srow("P3", "S7", "90.0", "0"),  # the same time, spelled differently: fine
    ]
    with pytest.raises(SampleSheetError) as raised:
        load_survival(write_sheet(tmp_path, rows))
    message = str(raised.value)
    assert "has 2 problem(s)" in message
    assert "each patient needs one time: 'P1' has time 365 on line(s) 2, 4, 400 on line(s) 3" in message
    assert "each patient needs one event: 'P2' has event 1 on line(s) 5, 0 on line(s) 6" in message
    assert "put the same time on all of their rows" in message and "P3" not in message


def test_a_label_column_on_a_survival_sheet_is_an_error_naming_the_task_setting(tmp_path):
    rows = [srow("P1", "S1", label="LUAD"), srow("P2", "S2", label="")]
    with pytest.raises(SampleSheetError) as raised:
        load_survival(write_sheet(tmp_path, rows))
    message = str(raised.value)
    assert "has 1 problem(s)" in message
    assert "a survival sheet has no 'label' column (cohorts.luad_os.task is survival" in message
    assert "remove the column, or set cohorts.luad_os.task: classification" in message
    # A classification sheet loaded as a survival one: the missing columns, and why.
    plain = [{"patient_id": "P1", "slide_id": "S1", "slide_path": "S1.svs", "label": "LUAD"}]
    with pytest.raises(SampleSheetError) as raised:
        load_survival(write_sheet(tmp_path / "plain", plain))
    message = str(raised.value)
    assert (
        "missing required column(s) time, event; a survival sample sheet is a TSV with columns patient_id, " in message
    )
    assert "set cohorts.luad_os.task: classification" in message


def test_time_and_event_columns_on_a_classification_sheet_are_an_error_naming_the_task_setting(tmp_path):
    rows = [{"patient_id": "P1", "slide_id": "S1", "slide_path": "S1.svs", "label": "LUAD", "time": "3", "event": "1"}]
    with pytest.raises(SampleSheetError) as raised:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES, cohort="nsclc")
    message = str(raised.value)
    assert "has 1 problem(s)" in message and "unknown column" not in message
    assert "column(s) time, event hold a survival outcome, but cohorts.nsclc.task is classification" in message
    assert "set cohorts.nsclc.task: survival" in message
    survival_only = [{k: v for k, v in rows[0].items() if k != "label"}]
    with pytest.raises(SampleSheetError) as raised:
        load_sample_sheet(write_sheet(tmp_path / "s", survival_only), CLASSES)
    message = str(raised.value)
    assert "missing required column(s) label; a sample sheet is a TSV with columns" in message
    assert "set cohorts.<name>.task: survival" in message


def test_the_sheet_checks_shared_with_classification_apply_to_survival_sheets_too(tmp_path):
    rows = [srow("P 1", "S1", "-1"), srow("P2", "S1", "5"), srow("P3", "S3", site="Oslo")]
    rows[1]["slide_path"] = "S1b.svs"
    with pytest.raises(SampleSheetError) as raised:
        load_survival(write_sheet(tmp_path, rows))
    message = str(raised.value)
    assert "'patient_id' values must match" in message and "slide_id must be unique" in message
    assert "line 2 (patient 'P 1'): '-1' is negative" in message
    assert "'site' is filled in for some patients but not for" in message


def test_the_task_argument_is_checked():
    with pytest.raises(ValueError, match="task must be one of classification, survival; got 'regression'"):
        load_sample_sheet("unused.tsv", CLASSES, task="regression")
    with pytest.raises(ValueError, match="a survival cohort has no classes"):
        load_sample_sheet("unused.tsv", CLASSES, task="survival")


# ---------------------------------------------------------------- cohort.tsv

# What CohortTable.write wrote for these tables before survival existed (commit ca8a0be).
CLASSIFICATION_TSV = (
    "patient_id\tlabel\tslide_ids\thas_wsi\thas_rna\thas_text\n"
    "p1\tLUAD\ts1a,s1b\tTrue\tTrue\tFalse\n"
    "p2\tLUSC\t\tFalse\tTrue\tTrue\n"
    "p3\tLUAD\ts3\tTrue\tFalse\tFalse\n"
)
CLASSIFICATION_SITES_TSV = (
    "patient_id\tlabel\tslide_ids\thas_wsi\thas_rna\thas_text\tsite\n"
    "p1\tLUAD\ts1a,s1b\tTrue\tTrue\tFalse\tOslo\n"
    "p2\tLUSC\t\tFalse\tTrue\tTrue\tBergen\n"
    "p3\tLUAD\ts3\tTrue\tFalse\tFalse\tOslo\n"
)
PRESENT = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], bool)
SLIDES = (("s1a", "s1b"), (), ("s3",))


def test_a_classification_cohort_tsv_is_byte_for_byte_what_it_was(tmp_path):
    CohortTable(("p1", "p2", "p3"), ("LUAD", "LUSC", "LUAD"), SLIDES, PRESENT).write(tmp_path / "plain.tsv")
    assert (tmp_path / "plain.tsv").read_text() == CLASSIFICATION_TSV
    sites = ("Oslo", "Bergen", "Oslo")
    CohortTable(("p1", "p2", "p3"), ("LUAD", "LUSC", "LUAD"), SLIDES, PRESENT, sites).write(tmp_path / "sites.tsv")
    assert (tmp_path / "sites.tsv").read_text() == CLASSIFICATION_SITES_TSV
    read = CohortTable.read(tmp_path / "sites.tsv", CLASSES)
    assert read.times is None and read.events is None and not read.is_survival


def test_a_survival_cohort_tsv_round_trips_times_and_events_typed_and_exact(tmp_path):
    times = np.array([0.1 + 0.2, 0.0, 1e6 / 3])
    table = CohortTable(("p1", "p2", "p3"), ("",) * 3, SLIDES, PRESENT, ("Oslo", "Bergen", "Oslo"), times, [1, 0, 1])
    assert table.is_survival and table.events is not None and table.events.dtype == bool
    table.write(tmp_path / "cohort.tsv")
    written = pd.read_csv(tmp_path / "cohort.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert written.columns.tolist()[-3:] == ["site", "time", "event"]
    assert written["event"].tolist() == ["1", "0", "1"] and written["label"].tolist() == ["", "", ""]
    read = CohortTable.read(tmp_path / "cohort.tsv")
    assert read.times is not None and read.events is not None
    assert read.times.dtype == np.float64 and read.times.tolist() == times.tolist()
    assert read.events.dtype == bool and read.events.tolist() == [True, False, True]
    assert read.labels == ("", "", "") and read.sites == ("Oslo", "Bergen", "Oslo") and read.slide_ids == SLIDES
    np.testing.assert_array_equal(read.present, PRESENT)
    without_sites = CohortTable(("p1",), ("",), ((),), np.ones((1, 3), bool), times=[5.0], events=[False])
    without_sites.write(tmp_path / "no_sites.tsv")
    assert (tmp_path / "no_sites.tsv").read_text().splitlines()[0].endswith("has_text\ttime\tevent")


def feature_store(path: Path, n_patches: int) -> Path:
    write_store(
        path,
        {"features": np.zeros((n_patches, 8), np.float16), "coords": np.zeros((n_patches, 2), np.int64)},
        {"encoder": "test"},
    )
    return path


def presence_store(path: Path, patient_ids: list[str], present: list[bool]) -> Path:
    write_store(path, {"patient_ids": np.array(patient_ids, dtype=str), "present": np.array(present, bool)})
    return path


def test_assemble_cohort_takes_each_patients_time_and_event_from_a_survival_sheet(tmp_path):
    rows = [srow("p1", "s1a", "365", "1"), srow("p1", "s1b", "365", "1"), srow("p2", "", "20.5", "0")]
    sheet = load_survival(write_sheet(tmp_path / "sheet", rows))
    slides = {"s1a": feature_store(tmp_path / "s1a.zarr", 0), "s1b": feature_store(tmp_path / "s1b.zarr", 4)}
    text = presence_store(tmp_path / "text.zarr", ["p2", "p1"], [True, False])
    rna = presence_store(tmp_path / "rna.zarr", ["p1", "p2"], [True, True])
    table = assemble_cohort(sheet, slides, text, rna)
    assert table.labels == ("", "") and table.slide_ids == (("s1a", "s1b"), ())
    assert table.times is not None and table.times.tolist() == [365.0, 20.5]
    assert table.events is not None and table.events.tolist() == [True, False]
    assert table.present.tolist() == [[True, True, False], [False, True, True]]
    table.write(tmp_path / "cohort.tsv")
    assert CohortTable.read(tmp_path / "cohort.tsv").times.tolist() == [365.0, 20.5]


SURVIVAL_TSV = (
    "patient_id\tlabel\tslide_ids\thas_wsi\thas_rna\thas_text\ttime\tevent\n"
    "p1\t\t\tTrue\tTrue\tTrue\t365.0\t1\n"
    "p2\t\t\tTrue\tTrue\tTrue\t7.0\t0\n"
)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("\t365.0\t", "\tsoon\t", r"'time' must be a number >= 0 \(line 2: 'soon'\)"),
        ("\t7.0\t", "\t-7\t", r"'time' must be a number >= 0 \(line 3: '-7'\)"),
        ("\t7.0\t0", "\t7.0\t2", r"'event' must be 1 or 0 \(line 3: '2'\)"),
        ("p1\t\t", "p1\tLUAD\t", r"'label' must be empty beside time and event \(line 2: 'LUAD'\)"),
        ("\tevent\n", "\tevent_\n", r"has 'time' but lacks 'event'"),
    ],
)
def test_a_bad_survival_cohort_tsv_names_the_file_the_line_and_the_fix(tmp_path, old, new, error):
    table = CohortTable(("p1", "p2"), ("", ""), ((), ()), np.ones((2, 3), bool), times=[365, 7], events=[1, 0])
    table.write(tmp_path / "cohort.tsv")
    assert (tmp_path / "cohort.tsv").read_text() == SURVIVAL_TSV
    (tmp_path / "bad.tsv").write_text(SURVIVAL_TSV.replace(old, new))
    with pytest.raises(CohortError, match=rf"bad\.tsv.*{error}.*rerun rule assemble_cohort"):
        CohortTable.read(tmp_path / "bad.tsv")


def test_a_survival_cohort_tsv_read_with_classes_says_the_task_changed(tmp_path):
    CohortTable(("p1",), ("",), ((),), np.ones((1, 3), bool), times=[1.0], events=[1]).write(tmp_path / "cohort.tsv")
    with pytest.raises(CohortError, match=r"is a survival cohort's table .* the cohort's task changed"):
        CohortTable.read(tmp_path / "cohort.tsv", CLASSES)


def test_a_cohort_table_refuses_half_or_bad_survival_outcomes():
    present = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match="needs both times and events"):
        CohortTable(("p1", "p2"), ("", ""), ((), ()), present, times=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="one time and one event per patient: 2 patients"):
        CohortTable(("p1", "p2"), ("", ""), ((), ()), present, times=[1.0], events=[1])
    with pytest.raises(ValueError, match="finite and >= 0"):
        CohortTable(("p1", "p2"), ("", ""), ((), ()), present, times=[1.0, -2.0], events=[1, 0])
    with pytest.raises(ValueError, match="labels are empty"):
        CohortTable(("p1", "p2"), ("A", ""), ((), ()), present, times=[1.0, 2.0], events=[1, 0])


def test_sheet_patient_survival_refuses_a_classification_sheet():
    sheet = pd.DataFrame({"patient_id": ["p1"], "slide_id": ["s1"], "label": ["LUAD"]})
    assert sheet_patient_labels(sheet, CLASSES)[1].tolist() == [0]
    with pytest.raises(ValueError, match=r"not a survival sample sheet: it lacks time, event"):
        sheet_patient_survival(sheet)


# ---------------------------------------------------------------- folds


def survival_cohort(n: int = 120, event_rate: float = 0.4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(patient ids, times, events): exponential times, events earlier than censoring on average."""
    rng = np.random.default_rng(seed)
    events = (rng.random(n) < event_rate).astype(np.int64)
    times = np.round(rng.exponential(np.where(events == 1, 300.0, 700.0)), 1)
    return np.array([f"P{i:03d}" for i in range(n)]), times, events


def test_survival_folds_spread_events_and_times_evenly_and_are_seeded():
    ids, times, events = survival_cohort()
    overall = events.mean()
    for seed in range(3):
        folds = make_survival_folds(ids, times, events, 5, seed)
        assert sorted(np.unique(folds)) == list(range(5)) and np.bincount(folds).tolist() == [24] * 5
        rates = np.array([events[folds == fold].mean() for fold in range(5)])
        assert np.abs(rates - overall).max() <= 1.5 / 24, (rates, overall)  # within 1.5 events of the share
        event_times = [np.median(times[(folds == fold) & (events == 1)]) for fold in range(5)]
        assert max(event_times) < 2 * min(event_times), "every fold holds early and late events"
        assert np.array_equal(folds, make_survival_folds(ids, times, events, 5, seed)), "deterministic by seed"
    assert not np.array_equal(
        make_survival_folds(ids, times, events, 5, 0), make_survival_folds(ids, times, events, 5, 1)
    )
    # Bool events are the same events.
    assert np.array_equal(
        make_survival_folds(ids, times, events == 1, 5, 0), make_survival_folds(ids, times, events, 5, 0)
    )


def test_survival_strata_are_event_status_by_time_bin_within_that_status():
    times = np.array([1, 2, 3, 4, 5, 6, 100, 200, 300, 400, 500, 600], dtype=float)
    events = np.array([1] * 6 + [0] * 6)
    assert survival_strata(times, events, n_folds=2).tolist() == [3, 3, 4, 4, 5, 5, 0, 0, 1, 1, 2, 2]
    # Too few patients of a status for a bin per fold each: fewer bins (here one: stratified by event alone).
    assert survival_strata(times, events, n_folds=4).tolist() == [3] * 6 + [0] * 6
    assert survival_strata([5.0, 5.0, 5.0, 1.0], [1, 1, 1, 1], n_folds=1).tolist() == [5, 5, 5, 3], "ties share a bin"


def test_survival_folds_group_by_site_and_every_fold_tests_and_trains_on_events():
    ids, times, events = survival_cohort(n=96)
    sites = np.array([f"H{i % 8}" for i in range(len(ids))])
    config = small_train_config(folds=4, val_fraction=0.25, split="site")
    folds = check_survival_splits("c", ids, times, events, config, sites=sites, time_bins=2)
    assert np.array_equal(folds, make_survival_folds(ids, times, events, 4, 0, sites=sites))
    for site in np.unique(sites):
        assert len(np.unique(folds[sites == site])) == 1, f"site {site} straddles test folds"
    for fold in range(4):
        assert events[folds == fold].any()
    patient_level = check_survival_splits("c", ids, times, events, {**config, "split": "patient"}, sites=sites)
    assert np.array_equal(patient_level, make_survival_folds(ids, times, events, 4, 0)), "sites ignored by patient"


def test_the_survival_validation_split_is_stratified_by_event_and_never_touches_the_test_fold():
    ids, times, events = survival_cohort(n=100, event_rate=0.3)
    config = small_train_config(folds=5, val_fraction=0.25, seed=4)
    folds = check_survival_splits("c", ids, times, events, config)
    for fold in range(5):
        fit, val = survival_fold_validation_split(folds, fold, events, config)
        train = np.flatnonzero(folds != fold)
        assert np.array_equal(np.sort(np.concatenate([fit, val])), train) and not set(val) & set(fit)
        assert len(val) == int(np.ceil(0.25 * len(train)))
        assert abs(events[val].mean() - events[train].mean()) <= 1 / len(val), "stratified by event"
        assert np.array_equal(val, survival_fold_validation_split(folds, fold, events, config)[1]), "seeded"
    # One censored patient cannot be stratified: the split is drawn without, and still holds events on both sides.
    lone = np.array([0] + [1] * 19)
    fit, val = survival_validation_split(np.arange(20), lone, 0.25, seed=0)
    assert lone[fit].any() and lone[val].any()
    with pytest.raises(ValueError, match=r"25% of 20 training patients \(1 events\) cannot leave an event on both"):
        survival_validation_split(np.arange(20), np.eye(20, dtype=np.int64)[0], 0.25, seed=0)


def test_classification_folds_are_unchanged_by_the_shared_splitter():
    # What make_folds gave before survival folds shared its StratifiedGroupKFold (see also test_site_splits).
    ids = np.array([f"P{i:02d}" for i in range(24)])
    labels = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0])
    assert make_folds(ids, labels, 4, seed=7).tolist() == [
        3,
        0,
        2,
        1,
        2,
        1,
        2,
        2,
        3,
        3,
        3,
        3,
        0,
        2,
        1,
        3,
        1,
        0,
        0,
        0,
        2,
        0,
        1,
        1,
    ]


# ---------------------------------------------------------------- planning errors


def test_too_few_events_for_the_folds_fail_naming_the_counts_and_the_fix():
    ids, times, _ = survival_cohort(n=40)
    events = np.zeros(40, dtype=np.int64)
    events[:3] = 1
    with pytest.raises(ValueError) as raised:
        check_survival_splits("luad_os", ids, times, events, small_train_config(folds=5))
    message = str(raised.value)
    assert message.startswith(
        "cohort 'luad_os' (train.folds 5, train.val_fraction 0.25, 40 patients, 3 events, 37 censored)"
    )
    assert "needs at least 5 events, one per test fold; it has 3 among 40 patients" in message
    assert "lower train.folds or add patients with events" in message


def test_a_fit_part_with_too_few_events_for_the_time_bins_fails_naming_every_fold_and_its_events():
    ids, times, _ = survival_cohort(n=40)
    events = np.zeros(40, dtype=np.int64)
    events[:9] = 1
    config = small_train_config(folds=5, val_fraction=0.25)
    check_survival_splits("luad_os", ids, times, events, config, time_bins=2)  # 4 events per fit part: enough
    with pytest.raises(ValueError) as raised:
        check_survival_splits("luad_os", ids, times, events, config, time_bins=4)
    message = str(raised.value)
    assert "(train.folds 5, train.val_fraction 0.25, 40 patients, 9 events, 31 censored)" in message
    assert "holds fewer than the 8 events training needs (2 per time bin, 4 time bin(s)" in message
    folds = make_survival_folds(ids, times, events, 5, 0)
    for fold in range(5):
        fit, val = survival_fold_validation_split(folds, fold, events, config)
        assert (
            f"fold {fold}: fit {events[fit].sum()}, validation {events[val].sum()}, test {events[folds == fold].sum()} "
            f"of {(folds == fold).sum()} patients"
        ) in message
    assert "lower train.folds (or train.val_fraction), use fewer time bins, or add patients with events" in message


def test_a_test_fold_without_an_event_fails_naming_the_fold_and_its_sites(monkeypatch):
    ids, times, events = survival_cohort(n=60)
    sites = np.array([f"H{i % 6}" for i in range(60)])
    events = np.where(np.isin(sites, ["H0", "H1"]), 0, events)
    # Both event-free sites drawn into one test fold (the splitter avoids it where the counts let it).
    monkeypatch.setattr(splits_module, "make_survival_folds", lambda *a, **k: np.array([int(s[1]) // 2 for s in sites]))
    with pytest.raises(ValueError) as raised:
        check_survival_splits("c", ids, times, events, small_train_config(folds=3, split="site"), sites=sites)
    message = str(raised.value)
    assert "test fold(s) 0 hold no event, so their C-index is undefined" in message
    assert "fold 0 (site(s) H0, H1): fit" in message and message.endswith("or set train.split: patient")


def test_site_level_survival_folds_fail_naming_the_patients_per_site_and_event_status():
    ids, times, events = survival_cohort(n=40)
    with pytest.raises(ValueError, match=r"train.split is site, but its patients have no site"):
        check_survival_splits("c", ids, times, events, small_train_config(folds=3, split="site"))
    sites = np.array([f"H{i % 2}" for i in range(40)])
    with pytest.raises(ValueError) as raised:
        check_survival_splits("c", ids, times, events, small_train_config(folds=3, split="site"), sites=sites)
    message = str(raised.value)
    counts = pd.crosstab(sites, events)
    assert "train.split site with train.folds 3 needs at least 3 sites" in message
    assert f"H0: censored {counts.loc['H0', 0]}, event {counts.loc['H0', 1]}" in message
    assert "lower train.folds to 2" in message
    sites = np.array([f"H{i % 4}" for i in range(40)])
    with pytest.raises(
        ValueError, match=r"events in at least two sites.*events are in 1 site\(s\).*H1: censored 10, event 0"
    ):
        check_survival_splits(
            "c", ids, times, np.where(sites == "H0", 1, 0), small_train_config(folds=3, split="site"), sites=sites
        )
