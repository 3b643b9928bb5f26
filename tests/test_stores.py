"""The typed stores: every artefact's zarr keys live in its store class's module, each store round-trips, an
incomplete store is an error naming the file and the fix, and the store modules import no torch."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mosare.core.stores import StoreError, write_store
from mosare.deploy.attention_store import AttentionStore
from mosare.deploy.slide_attention import SlideAttention
from mosare.features.feature_store import EmbeddingRecord, FeatureStore, FeatureStoreError
from mosare.features.rna_store import RNAFeatures, RNAStore, RNAStoreError
from mosare.features.text_store import TextEncoding, TextFeatures, TextStore, TextStoreError
from mosare.slides.patch_store import PatchStore, PatchStoreError

SRC = Path(__file__).resolve().parents[1] / "src" / "mosare"

PATCH, FEATURE, GMM = "slides/patch_store.py", "features/feature_store.py", "features/gmm_store.py"
TEXT, RNA, ATTENTION = "features/text_store.py", "features/rna_store.py", "deploy/attention_store.py"
PATIENTS = "features/patient_stores.py"  # the keys the text and RNA stores share
EXCLUSION = "slides/exclusion.py"  # what stands in a store's place when its slide was left out
STORE_MODULES = {PATCH, FEATURE, GMM, TEXT, RNA, PATIENTS, ATTENTION, EXCLUSION, "core/stores.py"}

# Each store key (array name or attr) and the store modules allowed to spell it.
STORE_KEYS = {
    "coords": {PATCH, FEATURE, ATTENTION},
    "n_patches": {PATCH, FEATURE, ATTENTION},
    "footprint_px": {PATCH, ATTENTION},
    # (slide_path, target_mpp and patch_px are also sample-sheet columns and config keys)
    **dict.fromkeys(("mpp_level0", "read_level", "read_px"), {PATCH}),
    "features": {FEATURE},
    "weights_sha256": {FEATURE},
    **dict.fromkeys(("weights", "means", "variances"), {GMM}),
    **dict.fromkeys(("global", "local", "n_sentences"), {TEXT}),
    "patient_ids": {PATIENTS},
    "present": {PATIENTS},
    **dict.fromkeys(("gene_ids", "values", "log_transformed", "n_genes"), {RNA}),
    "scores": {ATTENTION},
    "excluded": {EXCLUSION},
}
# The same words used for something other than a store, each with where and why ("*": the whole module).
NOT_STORE_KEYS = {
    ("model/mosare.py", "*", "present"): "the model batch's (B, 3) presence mask",
    ("model/baselines.py", "*", "present"): "the model batch's (B, 3) presence mask",
    ("model/baselines.py", "*", "features"): "a model's output dict",
    ("training/fold_inputs.py", "make_batch", "present"): "the model batch's (B, 3) presence mask",
    ("deploy/attention.py", "top_patch_geojson", "features"): "a GeoJSON FeatureCollection",
    ("slides/qc_fields.py", "*", "n_patches"): "the QC metric (slide_qc.tsv column) of that name",
    ("slides/qc_metrics.py", "slide_qc_metrics", "n_patches"): "the QC metric of that name",
    ("cohort/slide_qc_table.py", "*", "n_patches"): "the QC metric (slide_qc.tsv column) of that name",
}
STORE_ACCESS = ("open_store", "write_store", "atomic_store", "zarr")


def store_key_uses(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, enclosing function or class, key) of each string used as a key: a subscript (``x["coords"]``), an
    ``in`` test, a dict literal's key or the first argument of a call (``attrs.get("coords")``, ``create_array``)."""
    uses: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, scope: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = node.name if scope == "*" else scope
        keys: list[ast.expr | None] = []
        if isinstance(node, ast.Subscript):
            keys = [node.slice]
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            keys = [node.left]
        elif isinstance(node, ast.Dict):
            keys = list(node.keys)
        elif isinstance(node, ast.Call) and node.args:
            keys = [node.args[0]]
        for key in keys:
            if isinstance(key, ast.Constant) and key.value in STORE_KEYS:
                uses.append((key.lineno, scope, key.value))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, "*")
    return uses


def test_no_store_key_is_spelled_outside_its_store_module():
    misplaced = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        for line, scope, key in store_key_uses(ast.parse(path.read_text(encoding="utf-8"))):
            allowed = module in STORE_KEYS[key] or {(module, "*", key), (module, scope, key)} & NOT_STORE_KEYS.keys()
            if not allowed:
                misplaced.append(f"src/mosare/{module}:{line} ({scope}): {key!r}")
    assert not misplaced, "store keys outside their store class (use its API):\n" + "\n".join(misplaced)


def test_the_grep_sees_each_kind_of_key_use():
    source = 'x["coords"]; "features" in g; {"present": 1}; a.get("gene_ids"); f("n_patches"); "scores"'
    assert [key for _, _, key in store_key_uses(ast.parse(source))] == [
        "coords",
        "features",
        "present",
        "gene_ids",
        "n_patches",
    ]  # a bare string (a docstring, a message) is no key use


def test_only_store_modules_open_zarr_stores():
    outside = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if module in STORE_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(alias.name for alias in node.names)]
            if any(name.split(".")[0] in STORE_ACCESS for name in names):
                outside.append(f"src/mosare/{module}:{node.lineno}")
    assert not outside, "zarr opened outside the store modules:\n" + "\n".join(outside)


def test_store_modules_import_no_torch():
    modules = (
        "mosare.slides.patch_store, mosare.features.feature_store, mosare.features.text_store, "
        "mosare.features.rna_store, mosare.deploy.attention_store"
    )
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def same_store(a, b) -> None:
    """Dataclass stores equal field by field (arrays by value and dtype)."""
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and np.array_equal(value, other), name
        elif hasattr(value, "__dataclass_fields__"):
            same_store(value, other)
        else:
            assert value == other, name


def tree_bytes(path: Path) -> dict[str, bytes]:
    return {file.relative_to(path).as_posix(): file.read_bytes() for file in sorted(path.rglob("*")) if file.is_file()}


def patch_store() -> PatchStore:
    return PatchStore(
        coords=np.array([[0, 0], [512, 256]], np.int64),
        slide_id="S1",
        slide_path="/slides/S1.svs",
        mpp_level0=0.25,
        mpp_source="file",
        target_mpp=0.5,
        patch_px=256,
        footprint_px=512,
        read_level=1,
        read_px=256,
        upsample_factor=1.0,
        tissue={"method": "saturation", "min_tissue_fraction": 0.5},
        tissue_area_um2=1.5e5,
        level_dimensions=[[2048, 1024], [1024, 512]],
        unreadable_tiles=[],
        qc={"n_patches": 2, "sharpness": 3.5},
    )


def test_patch_store_round_trips_byte_identical_to_the_tiling_layout(tmp_path):
    store = patch_store()
    store.write(tmp_path / "new.zarr")
    same_store(PatchStore.read(tmp_path / "new.zarr"), store)
    assert PatchStore.count(tmp_path / "new.zarr") == 2
    legacy = {  # the tiling stage's attrs, in the order it has always written them
        "slide_id": "S1",
        "slide_path": "/slides/S1.svs",
        "mpp_level0": 0.25,
        "mpp_source": "file",
        "target_mpp": 0.5,
        "patch_px": 256,
        "footprint_px": 512,
        "read_level": 1,
        "read_px": 256,
        "upsample_factor": 1.0,
        "tissue": store.tissue,
        "n_patches": 2,
        "tissue_area_um2": 1.5e5,
        "level_dimensions": store.level_dimensions,
        "unreadable_tiles": [],
        "qc": store.qc,
    }
    write_store(tmp_path / "legacy.zarr", {"coords": store.coords}, legacy)
    assert tree_bytes(tmp_path / "new.zarr") == tree_bytes(tmp_path / "legacy.zarr")


def test_an_incomplete_patch_store_names_the_file_and_the_fix(tmp_path):
    write_store(tmp_path / "old.zarr", {"coords": np.zeros((3, 2), np.int64)}, {"slide_id": "S1", "n_patches": 3})
    with pytest.raises(PatchStoreError, match=r"patch store .*old\.zarr lacks slide_path, .*read_px.*rerun its tiling"):
        PatchStore.read(tmp_path / "old.zarr")
    assert PatchStore.count(tmp_path / "old.zarr") == 3  # counting needs only the count
    patch_store().write(tmp_path / "cut.zarr")
    shutil.rmtree(tmp_path / "cut.zarr" / "coords")
    with pytest.raises(PatchStoreError, match=r"cut\.zarr lacks coords"):
        PatchStore.read(tmp_path / "cut.zarr")


def test_feature_store_round_trips_and_refuses_a_truncated_store(tmp_path):
    rng = np.random.default_rng(0)
    record = EmbeddingRecord(slide_id="S1", encoder="enc", weights_sha256="ab" * 32, dim=4, failed_patches=[])
    store = FeatureStore(rng.normal(size=(5, 4)).astype(np.float16), rng.integers(0, 99, (5, 2)), record)
    attrs = store.write(tmp_path / "f.zarr", chunk_rows=2)
    assert attrs["n_patches"] == 5 and list(attrs).index("n_patches") == list(attrs).index("failed_patches") - 1
    read = FeatureStore.read(tmp_path / "f.zarr")
    same_store(read, FeatureStore(store.features, store.coords.astype(np.int64), record))
    assert (read.n_patches, read.dim) == (5, 4) and FeatureStore.count(tmp_path / "f.zarr") == 5
    assert FeatureStore.read_record(tmp_path / "f.zarr") == record

    FeatureStore(np.zeros((0, 4), np.float16), np.zeros((0, 2), np.int64)).write(tmp_path / "empty.zarr")
    assert FeatureStore.read(tmp_path / "empty.zarr").features.shape == (0, 4)

    shutil.rmtree(tmp_path / "f.zarr" / "features")
    with pytest.raises(FeatureStoreError, match=r"feature store .*f\.zarr lacks features.*rerun the embedding"):
        FeatureStore.read(tmp_path / "f.zarr")
    write_store(tmp_path / "bad.zarr", {"features": np.zeros((4, 8), np.float16), "coords": np.zeros((3, 2), np.int64)})
    with pytest.raises(FeatureStoreError, match=r"bad\.zarr: features \(4, 8\) and coords \(3, 2\) do not align"):
        FeatureStore.read(tmp_path / "bad.zarr")


def test_an_appender_left_unfinished_keeps_no_store(tmp_path):
    with pytest.raises(RuntimeError, match="finish was not called"):
        with FeatureStore.appending(tmp_path / "f.zarr", 3, 2) as appender:
            appender.append(np.zeros((3, 2)), np.ones((3, 2)))
    assert not (tmp_path / "f.zarr").exists() and not list(tmp_path.iterdir())


def test_text_store_round_trips_and_refuses_a_truncated_store(tmp_path):
    rng = np.random.default_rng(1)
    features = TextFeatures(
        ["P1", "P2"],
        rng.normal(size=(2, 3)).astype(np.float32),
        rng.normal(size=(2, 4, 3)).astype(np.float32),
        np.array([True, False]),
        np.array([7, 0], np.int32),
    )
    store = TextStore(features, TextEncoding(model="m", dim=3, components=4, leak_patterns=["adeno"], drop_sections=[]))
    store.write(tmp_path / "text.zarr")
    same_store(TextStore.read(tmp_path / "text.zarr"), store)
    ids, present = TextStore.read_presence(tmp_path / "text.zarr")
    assert ids == ["P1", "P2"] and present.tolist() == [True, False]
    assert TextStore.read_encoding(tmp_path / "text.zarr") == store.encoding

    shutil.rmtree(tmp_path / "text.zarr" / "local")
    with pytest.raises(TextStoreError, match=r"text store .*text\.zarr lacks local.*encode_reports"):
        TextStore.read(tmp_path / "text.zarr")


def test_rna_store_round_trips_and_refuses_a_truncated_store(tmp_path):
    features = RNAFeatures(["P1", "P2"], ["TP53", "EGFR", "ALK"], np.arange(6, dtype=np.float32).reshape(2, 3),
                           np.array([True, True]), True)  # fmt: skip
    store = RNAStore(features, source="/data/rna.tsv")
    store.write(tmp_path / "rna.zarr")
    same_store(RNAStore.read(tmp_path / "rna.zarr"), store)
    assert RNAStore.read_gene_ids(tmp_path / "rna.zarr") == ["TP53", "EGFR", "ALK"]
    assert RNAStore.read_presence(tmp_path / "rna.zarr")[0] == ["P1", "P2"]
    assert RNAStore.read_log_transformed(tmp_path / "rna.zarr") is True

    shutil.rmtree(tmp_path / "rna.zarr" / "values")
    with pytest.raises(RNAStoreError, match=r"RNA store .*rna\.zarr lacks values.*select_rna_genes"):
        RNAStore.read(tmp_path / "rna.zarr")
    assert issubclass(RNAStoreError, StoreError) and issubclass(StoreError, ValueError)


def test_attention_store_round_trips(tmp_path):
    slide = SlideAttention("S1", "P1", np.array([[0, 0], [256, 0], [0, 256]], np.int64), np.array([0.5, 0.2, 0.3]), 256)
    AttentionStore(slide, "abmil", "/models/abmil", "train").write(tmp_path / "a.zarr")
    read = AttentionStore.read(tmp_path / "a.zarr")
    same_store(read, AttentionStore(slide, "abmil", "/models/abmil", "train"))
    assert read.attention.rank.tolist() == [1.0, 0.0, 0.5]
