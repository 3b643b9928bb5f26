# Configuration, sample sheets and input functions shared by every rule file. No rules here.
import functools
import re
import sys
from pathlib import Path

import pandas as pd

# Snakemake's own process imports mosare too (config checks, code fingerprints): from this checkout, like the rule
# scripts (workflow/scripts/checkout_src.py), never from another checkout installed in the same environment.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from mosare.reporting.cohort_figures import registered_figures
from mosare.config import (
    check_encoder_weights_configured,
    encoder_comparison_train_config,
    run_encoders,
    cohort_task,
    cohort_time_unit,
    cohort_train_config,
    deploy_missing_genes,
    deploy_pairs,
    slide_qc_min_patches,
    validate_config,
)
from mosare.features.embedding_chunks import embedding_chunks
from mosare.features.encoder_specs import checkpoint_hint, encoder_source, encoder_spec
from mosare.core.paths import ResultsLayout, encoder_dir_name
from mosare.core.samples import ID_PATTERN, SlideEntry, SlideIndex, load_sample_sheet
from mosare.features.weights_fingerprint import read_fingerprint
from mosare.training.plan import fold_keys, without_evaluation_settings

validate_config(config)

COHORTS = list(config["cohorts"])
LAYOUT = ResultsLayout()  # every output path (mosare.core.paths), shared with the scripts and the run summary
RESULTS = LAYOUT.root


wildcard_constraints:
    cohort="|".join(COHORTS),
    slide_id=ID_PATTERN.pattern.removeprefix("^").removesuffix("$"),
    encoder=r"[A-Za-z0-9._:-]+",


def is_demo(cohort: str) -> bool:
    return "demo" in config["cohorts"][cohort]


@functools.cache
def cohort_sheet(cohort: str) -> pd.DataFrame:
    """The cohort's validated sample sheet (planned in memory for a demo cohort, before it exists)."""
    cohort_config = config["cohorts"][cohort]
    task = cohort_task(config, cohort)
    if is_demo(cohort):
        if task == "survival":
            from mosare.demo.survival import plan_survival_demo_cohort

            return plan_survival_demo_cohort(cohort, cohort_config["demo"], Path(LAYOUT.demo_dir(cohort)))
        from mosare.demo.plan import plan_demo_cohort

        return plan_demo_cohort(
            cohort, cohort_config["demo"], cohort_config["classes"], Path(LAYOUT.demo_dir(cohort))
        )
    return load_sample_sheet(
        cohort_config["samples"], cohort_config.get("classes") or [], cohort=cohort, task=task
    )


def cohort_classes(wildcards) -> list[str]:
    """A classification cohort's classes; none for a survival cohort (its outcome is time and event)."""
    return list(config["cohorts"][wildcards.cohort].get("classes") or [])


def cohort_pattern(task: str) -> str:
    """Wildcard pattern matching only the cohorts of ``task`` (matching nothing when there are none)."""
    names = [re.escape(cohort) for cohort in COHORTS if cohort_task(config, cohort) == task]
    return "|".join(names) if names else "(?!x)x"


def cohort_task_of(wildcards) -> str:
    """``classification`` or ``survival`` (cohorts.<name>.task): how a rule reads the cohort's sample sheet."""
    return cohort_task(config, wildcards.cohort)


@functools.cache
def cohort_slides(cohort: str) -> SlideIndex:
    """The cohort's slides indexed once (every per-slide input function below is a dictionary lookup)."""
    return SlideIndex(cohort_sheet(cohort))


def slide_ids(cohort: str) -> tuple[str, ...]:
    """The cohort's slides, in sheet order (patients without a slide have none)."""
    return cohort_slides(cohort).ids


def sample_sheet_path(cohort: str) -> str:
    if is_demo(cohort):
        return LAYOUT.demo_sample_sheet(cohort)
    return config["cohorts"][cohort]["samples"]


def rna_matrix_path(cohort: str) -> str | None:
    if is_demo(cohort):
        return LAYOUT.demo_rna_matrix(cohort)
    return config["cohorts"][cohort].get("rna")


def encoder_slug() -> str:
    """The configured encoder's name as a path component (``timm:resnet50`` -> ``timm-resnet50``)."""
    return encoder_dir_name(config["encoder"]["name"])


def get_final_output() -> list[str]:
    """Every cohort's metrics, its cohort-level figures and, when it has slides, its slide QC table and pictures."""
    figures = [
        LAYOUT.cohort_figure(cohort, name)
        for cohort in COHORTS
        for name in registered_figures(cohort_task(config, cohort))  # a cohort's figures are those of its task
    ]
    deployed = [LAYOUT.deploy_predictions(source, target) for source, target in deploy_pairs(config)]
    slide_qc = [
        path
        for cohort in COHORTS if slide_ids(cohort)
        for path in (LAYOUT.slide_qc(cohort), LAYOUT.slide_qc_overview(cohort), LAYOUT.contact_sheets(cohort),
                     *report_slide_pictures(cohort))
    ]
    return ([LAYOUT.metrics(cohort) for cohort in COHORTS] + figures + deployed + deployed_attention() + slide_qc
            + encoder_comparisons())


def code_hash(stage: str, *extra_sources: str) -> str:
    """Fingerprint of a stage's source (and of ``extra_sources``, relative to the package); passed as a param so code
    edits rerun that stage."""
    from mosare.core.provenance import stage_code_hash

    return stage_code_hash(stage, extra_sources)


# ---- Demo cohorts (demo.smk) ---------------------------------------------------------------------

DEMO_COHORTS = [cohort for cohort in COHORTS if is_demo(cohort)]
DEMO_ROOT = str(Path(LAYOUT.demo_root).resolve())


def demo_cohort_pattern() -> str:
    """Wildcard pattern matching only demo cohorts (matching nothing when there are none)."""
    return "|".join(DEMO_COHORTS) if DEMO_COHORTS else "(?!x)x"


def demo_config(wildcards) -> dict:
    return config["cohorts"][wildcards.cohort]["demo"]


def demo_slide_paths(wildcards) -> list[str]:
    """Every planned slide of a demo cohort (absolute paths, as in its planned sample sheet)."""
    return list(cohort_slides(wildcards.cohort).slide_paths().values())


# ---- Tiling (tiling.smk) -------------------------------------------------------------------------

def tiling_row(wildcards) -> SlideEntry:
    """The sample-sheet row of the slide being tiled."""
    slides = cohort_slides(wildcards.cohort)
    if wildcards.slide_id not in slides:
        raise ValueError(
            f"slide {wildcards.slide_id!r} is not in cohort {wildcards.cohort!r}'s sample sheet "
            f"({sample_sheet_path(wildcards.cohort)}); request one of its slide_id values"
        )
    return slides.entry(wildcards.slide_id)


def tiling_slide_input(wildcards) -> str:
    """The slide file of this row of the cohort's sample sheet (for demo cohorts, demo_slide's output)."""
    return str(tiling_row(wildcards).slide_path)


def tiling_mpp_override(wildcards) -> float | None:
    """The sample sheet's level-0 µm/px for this slide, used only when the file lacks it (None when blank)."""
    return tiling_row(wildcards).mpp


def tiled_slides(cohort: str) -> list[str]:
    """Every patch store of a cohort (one per slide in its sample sheet)."""
    return [LAYOUT.patch_store(cohort, slide_id) for slide_id in slide_ids(cohort)]


def tissue_qc_pictures(cohort: str) -> list[str]:
    """Every tissue QC picture of a cohort."""
    return [LAYOUT.tissue_qc(cohort, slide_id) for slide_id in slide_ids(cohort)]


def report_slide_pictures(cohort: str) -> list[str]:
    """The folders of the per-slide QC pictures the report embeds (rule report_slide_pictures, qc.smk)."""
    return [LAYOUT.report_slide_pictures(cohort, kind) for kind in ("tissue", "gmm")]


# ---- Embedding (embedding.smk) ---------------------------------------------------------------------

# Every encoder the run embeds with, by directory name: `encoder` first (behind metrics.tsv), then compare_encoders,
# each with `encoder`'s other settings (mosare.config.run_encoders). Each one's registry entry gives its feature width,
# weights and what one embedding job needs (mem_mb, GPUs, threads), so adding an encoder needs no edit here.
ENCODER_SETTINGS = run_encoders(config)
PRIMARY_ENCODER = encoder_slug()
COMPARED_ENCODERS = [slug for slug in ENCODER_SETTINGS if slug != PRIMARY_ENCODER]
# Settings that decide which slides share a job, how it reads or where it runs, not what it computes (features are
# bit-identical whatever the workers or the chunk, tests/test_embedding.py): changing them reruns nothing.
EMBEDDING_PLACEMENT_KEYS = ("slides_per_job", "job_resources", "num_workers")


def embedding_spec(encoder: str):
    """An encoder's registry entry (mosare.features.encoder_specs), by directory name."""
    return encoder_spec(ENCODER_SETTINGS[encoder]["name"])


def embedding_log(encoder: str = PRIMARY_ENCODER) -> str:
    return f"{RESULTS}/logs/embed_slide/{{cohort}}/{encoder}/{{slide_id}}.log"


EMBEDDING_LOG = embedding_log()


def embedding_chunk_log(cohort: str, encoder: str, chunk) -> str:
    return f"{RESULTS}/logs/embed_slides/{cohort}/{encoder}/chunk{chunk.index}.log"


def embedding_benchmark(cohort: str, encoder: str, chunk) -> str:
    """An embedding job's benchmark file, which the encoder comparison reads the embedding cost from."""
    return f"{RESULTS}/benchmarks/embed_slides/{cohort}/{encoder}/chunk{chunk.index}.tsv"


def cohort_embedding_chunks(cohort: str) -> list:
    """The cohort's slides in embedding jobs (mosare.features.embedding_chunks: stable hash chunks of encoder.slides_per_job)."""
    return embedding_chunks(slide_ids(cohort), config["encoder"]["slides_per_job"])


# Which ready job a scheduler with few cores starts first (Snakemake's ``priority``, highest first): a rendered slide
# is tiled before the next is rendered, and a chunk whose tiles are done is embedded at once, so the long embedding
# jobs start early and overlap the rest instead of queueing at the end. It orders jobs only; outputs do not change.
SCHEDULING_PRIORITY = {
    "demo_slide": 0,
    "tile_slide": 1,
    "fit_slide_gmms": 2,
    "embed_slides": 3,
    "encode_reports": 3,
    "train_fold": 4,
    "train_final_models": 5,
}


def chunk_rule_name(stage: str, cohort: str, chunk, encoder: str = PRIMARY_ENCODER) -> str:
    """``<stage>_<cohort>_<chunk>`` (``_<encoder>`` after it for a compared encoder): one generated rule per chunk
    (``--forcerun`` takes it, or one of its outputs)."""
    suffix = "" if encoder == PRIMARY_ENCODER else f"_{encoder}"
    return re.sub(r"\W", "_", f"{stage}_{cohort}_{chunk.index}{suffix}")


def cohort_slide_paths(cohort: str) -> dict[str, str]:
    """{slide_id: slide file} of the cohort's slides, in sample-sheet order."""
    return cohort_slides(cohort).slide_paths()


def encoder_plugin(encoder: str) -> str:
    """An encoder's plugin module, which its embedding's code fingerprint takes beside the stage's modules
    (mosare.features.encoder_specs.encoder_source): one encoder's plugin never reruns another's embedding."""
    return encoder_source(ENCODER_SETTINGS[encoder]["name"])


def embedding_settings(encoder: str = PRIMARY_ENCODER) -> dict:
    """An encoder's settings as its embedding jobs' params: everything that can change a feature."""
    return {key: value for key, value in ENCODER_SETTINGS[encoder].items() if key not in EMBEDDING_PLACEMENT_KEYS}


def embedding_resources(n_slides: int, encoder: str = PRIMARY_ENCODER) -> dict:
    """An embedding job's resources: its encoder's mem_mb and GPUs, a runtime growing with its slides, and
    encoder.job_resources on top (e.g. slurm_partition: gpu), since generated rules cannot be named in a profile.

    SLURM profiles turn `gpu` into `--gpus`; locally it only limits how many GPU jobs run at once when
    `--resources gpu=N` is given. Jobs use CUDA whenever it is visible, whatever this says.
    """
    spec = embedding_spec(encoder)
    resources = {"mem_mb": spec.mem_mb, "gpu": spec.gpus, "runtime": 15 + 5 * n_slides}
    return resources | config["encoder"]["job_resources"]


def encoder_weights_config(wildcards) -> dict:
    """The encoder settings that pick its weights file (name, checkpoint); batch sizes do not call for a new hash."""
    return {key: ENCODER_SETTINGS[wildcards.encoder].get(key) for key in ("name", "checkpoint")}


def configured_checkpoint(encoder: str) -> Path | None:
    """An encoder's configured checkpoint (``~`` expanded), or None for weights shipped in a package."""
    configured = ENCODER_SETTINGS[encoder].get("checkpoint")
    return Path(configured).expanduser() if configured else None


def encoder_weights_stat(wildcards) -> str | None:
    """The checkpoint's size and mtime, as a param of fingerprint_encoder: any replacement, even by an older copy
    (`cp -p`, `rsync -a`, which an input's mtime check misses), reruns the fingerprint and so every embedding.

    Not an input file, so a finished run can be planned after the weights are moved away (training on another
    machine): then the size and mtime recorded in the existing fingerprint stand in, and nothing reruns.
    """
    weights = configured_checkpoint(wildcards.encoder)
    if weights is None:
        return None
    recorded = Path(LAYOUT.encoder_fingerprint(wildcards.encoder))
    if weights.is_file():
        stat = weights.stat()
        size, mtime_ns = stat.st_size, stat.st_mtime_ns
    elif recorded.is_file():
        fingerprint = read_fingerprint(recorded)
        size, mtime_ns = fingerprint.size_bytes, fingerprint.mtime_ns
    else:
        name = ENCODER_SETTINGS[wildcards.encoder]["name"]
        raise ValueError(f"encoder {name!r}: weights file {weights} does not exist. {checkpoint_hint(name)}")
    return f"{size} bytes, mtime_ns {mtime_ns}"


def feature_dir(cohort: str, encoder: str = PRIMARY_ENCODER) -> str:
    """Where a cohort's feature stores for an encoder (default: the configured one) live."""
    return LAYOUT.feature_dir(cohort, encoder)


def slide_feature_stores(cohort: str, encoder: str = PRIMARY_ENCODER) -> list[str]:
    """Every slide's feature store of a cohort, for an encoder (default: the configured one)."""
    return [f"{feature_dir(cohort, encoder)}/{slide_id}.zarr" for slide_id in slide_ids(cohort)]


# ---- Per-slide GMMs (local_features.smk) ---------------------------------------------------------

def gmm_log(encoder: str = PRIMARY_ENCODER) -> str:
    return f"{RESULTS}/logs/fit_slide_gmm/{{cohort}}/{encoder}/{{slide_id}}.log"


def gmm_dir(cohort: str, encoder: str = PRIMARY_ENCODER) -> str:
    """Where a cohort's per-slide GMM stores for an encoder (default: the configured one) live."""
    return LAYOUT.gmm_dir(cohort, encoder)


def slide_gmm_stores(cohort: str, encoder: str = PRIMARY_ENCODER) -> list[str]:
    """Every slide's GMM store of a cohort, for an encoder (default: the configured one)."""
    return [f"{gmm_dir(cohort, encoder)}/{slide_id}.zarr" for slide_id in slide_ids(cohort)]


def gmm_qc_pictures(cohort: str) -> list[str]:
    """Every slide's component-map QC picture of a cohort, for the configured encoder."""
    return [LAYOUT.gmm_qc(cohort, PRIMARY_ENCODER, slide_id) for slide_id in slide_ids(cohort)]


# ---- Reports, RNA, cohort table (modalities.smk) -------------------------------------------------

def modality_sample_sheet(wildcards) -> str:
    """The cohort's sample sheet file (written by rule demo_cohort for a demo cohort)."""
    return sample_sheet_path(wildcards.cohort)


def configured_leak_patterns(wildcards) -> list[str] | None:
    """The cohort's report_leak_patterns, or None for the built-in NSCLC/RCC/BRCA lists (class names always added)."""
    return config["cohorts"][wildcards.cohort].get("report_leak_patterns")


def excluded_slides_table(wildcards) -> list[str]:
    """The slide QC table of a cohort with slides: it names the slides training leaves out (excluded ones, and flagged
    ones when qc.exclude_flagged is on); none for a slide-less cohort."""
    return [LAYOUT.slide_qc(wildcards.cohort)] if slide_ids(wildcards.cohort) else []


def report_files(wildcards) -> list[str]:
    """The cohort's report files (a demo cohort's reports directory), so editing one reruns the encoding."""
    if is_demo(wildcards.cohort):
        return [LAYOUT.demo_reports(wildcards.cohort)]
    return sorted(cohort_sheet(wildcards.cohort)["report_path"].dropna().unique().tolist())


def rna_matrix_input(wildcards) -> dict[str, str]:
    """{'rna': matrix path}, or nothing for a cohort without an RNA matrix (every patient then lacks RNA)."""
    path = rna_matrix_path(wildcards.cohort)
    return {"rna": path} if path else {}


def cohort_feature_stores(wildcards) -> list[str]:
    """Every slide's feature store; a patient has WSI when one of its slides has at least one patch."""
    return slide_feature_stores(wildcards.cohort)


# ---- Training and evaluation (training.smk) ------------------------------------------------------

def cohort_gmm_stores(wildcards) -> list[str]:
    return slide_gmm_stores(wildcards.cohort)


def training_features_dir(wildcards) -> str:
    return feature_dir(wildcards.cohort)


def training_gmm_dir(wildcards) -> str:
    return gmm_dir(wildcards.cohort)


@functools.cache
def check_training_splits(cohort: str) -> None:
    """Fail while the workflow is planned, not hours later in the training job, when the sample sheet's patients
    cannot fill every fold and validation split (mosare.evaluation.splits.check_cohort_splits, the check training runs)."""
    from mosare.cohort.table import sheet_patient_labels, sheet_patient_sites, sheet_patient_survival
    from mosare.evaluation.splits import check_cohort_splits, check_survival_splits

    sheet = cohort_sheet(cohort)
    try:
        if cohort_task(config, cohort) == "survival":
            patient_ids, times, events = sheet_patient_survival(sheet)
            train = cohort_train_config(config, cohort)
            check_survival_splits(
                cohort, patient_ids, times, events, train, sites=sheet_patient_sites(sheet),
                time_bins=train["survival"]["bins"] if train["survival"]["head"] == "hazard" else 1,
            )
            return
        classes = config["cohorts"][cohort]["classes"]
        patient_ids, labels = sheet_patient_labels(sheet, classes)
        check_cohort_splits(
            cohort, patient_ids, labels, cohort_train_config(config, cohort),
            sites=sheet_patient_sites(sheet), classes=classes,
        )
    except ValueError as error:
        raise ValueError(f"{error} (sample sheet: {sample_sheet_path(cohort)})") from error


def training_config(wildcards) -> dict:
    """The global train section with the cohort's overrides, once its folds are known to be feasible."""
    check_training_splits(wildcards.cohort)
    return cohort_train_config(config, wildcards.cohort)


def training_run_config(wildcards) -> dict:
    """What the fold and final-model jobs train by: the train section less the evaluation's own settings, so changing
    those reruns the evaluation job only."""
    return without_evaluation_settings(training_config(wildcards))


def cohort_fold_keys(wildcards) -> list[list[int]]:
    """[repeat, fold] of every fold job of the cohort, in run order."""
    return [list(key) for key in fold_keys(cohort_train_config(config, wildcards.cohort))]


def cohort_fold_results(wildcards) -> list[str]:
    """Every fold job's results file, in the order of cohort_fold_keys."""
    return [LAYOUT.fold_results(wildcards.cohort, repeat, fold) for repeat, fold in cohort_fold_keys(wildcards)]


# ---- Encoder comparison (training.smk) -----------------------------------------------------------

def compared_encoder_pattern() -> str:
    """Wildcard pattern matching only the compared encoders (matching nothing when there are none)."""
    return "|".join(map(re.escape, COMPARED_ENCODERS)) if COMPARED_ENCODERS else "(?!x)x"


def compared_encoder_training_config(wildcards) -> dict:
    """A compared encoder's training: the cohort's, with its models that read slides only."""
    check_training_splits(wildcards.cohort)
    return encoder_comparison_train_config(config, wildcards.cohort)


def compared_encoder_training_run_config(wildcards) -> dict:
    return without_evaluation_settings(compared_encoder_training_config(wildcards))


def compared_encoder_fold_results(wildcards) -> list[str]:
    return [
        LAYOUT.encoder_fold_results(wildcards.cohort, wildcards.encoder, repeat, fold)
        for repeat, fold in cohort_fold_keys(wildcards)
    ]


def encoder_comparisons() -> list[str]:
    """Every cohort's encoder comparison (by AUC, or a survival cohort's by Harrell's C), when compare_encoders names
    any encoder."""
    if not COMPARED_ENCODERS:
        return []
    return [LAYOUT.encoder_comparison(cohort) for cohort in COHORTS if slide_ids(cohort)]


# ---- Cohort-level figures (figures.smk) -----------------------------------------------------------

# {name: CohortFigure} of every module in src/mosare/reporting/figure_plugins/, of every task; get_final_output asks each
# cohort for the figures of its own task (registered_figures(task)), and rule draw_cohort_figure draws one.
COHORT_FIGURES = registered_figures()


def cohort_figure_pattern() -> str:
    """Wildcard pattern matching only registered figure names (matching nothing when there are none)."""
    return "|".join(COHORT_FIGURES) if COHORT_FIGURES else "(?!x)x"


def cohort_figure_description(wildcards) -> str:
    """The figure's one-paragraph description, for its report caption."""
    return COHORT_FIGURES[wildcards.figure].description


def cohort_figure_time_unit(wildcards) -> str | None:
    """A survival cohort's time unit (cohorts.<name>.time_unit), which its figures' time axes are labelled in; None
    for a classification cohort, so its figures do not rerun when the setting changes."""
    return cohort_time_unit(config, wildcards.cohort) if cohort_task(config, wildcards.cohort) == "survival" else None


# ---- End-of-run summary (Snakefile onsuccess) ----------------------------------------------------

def run_summary_paths() -> dict[str, str]:
    """Where the end-of-run summary points: the pictures and logs of the rules that warn about missing data."""
    return {
        "tissue_qc": rules.tile_slide.output.qc,
        "tiling_log": rules.tile_slide.log[0],
        "embedding_log": EMBEDDING_LOG,
        "rna_log": rules.select_rna_genes.log[0],
        "report_log": rules.encode_reports.log[0],
        "cohort_log": rules.assemble_cohort.log[0],
    }


def end_of_run_summary() -> str:
    """What the outputs show went missing, per cohort (mosare.reporting.run_summary); a failure of its own is one line."""
    from mosare.reporting.run_summary import run_summary

    try:
        paths = run_summary_paths()
    except Exception as error:  # a renamed rule must not fail a finished run
        return f"Run summary unavailable ({type(error).__name__}: {error})"
    return run_summary(LAYOUT.root, COHORTS, paths)


# ---- Deploy and external validation (deploy.smk) -------------------------------------------------
# The target cohort's stores, by the same input functions as its own training uses.


def deploy_feature_stores(wildcards) -> list[str]:
    return slide_feature_stores(wildcards.target)


def deploy_gmm_stores(wildcards) -> list[str]:
    return slide_gmm_stores(wildcards.target)


def deploy_features_dir(wildcards) -> str:
    return feature_dir(wildcards.target)


def deploy_gmm_dir(wildcards) -> str:
    return gmm_dir(wildcards.target)


def deploy_classes(wildcards) -> list[str]:
    return list(config["cohorts"][wildcards.target].get("classes") or [])


def deploy_patch_stores(wildcards) -> list[str]:
    return [LAYOUT.patch_store(wildcards.target, slide_id) for slide_id in slide_ids(wildcards.target)]


def deploy_patches_dir(wildcards) -> str:
    return LAYOUT.patch_dir(wildcards.target)


ATTENTION_MODEL = "mosare"  # the final model whose patch attention rule deploy_attention maps


def deployed_attention() -> list[str]:
    """Attention folders, and the report's capped copies of their pictures, of every deploy pair whose source trains
    the mapped model on slides and whose target has slides (about 1-2 s of drawing per slide, on rule deploy_attention's
    threads)."""
    return [
        path
        for source, target in deploy_pairs(config)
        if ATTENTION_MODEL in cohort_train_config(config, source)["models"] and slide_ids(source) and slide_ids(target)
        for path in (LAYOUT.deploy_attention(source, target),
                     *(LAYOUT.deploy_report_pictures(source, target, kind) for kind in ("heatmaps", "montages")))
    ]


# Checked once the cohorts' slides are known: only a run that embeds slides needs encoder weights, so a slide-less
# cohort (RNA and reports alone) plans with the default encoder and no checkpoint.
if any(slide_ids(cohort) for cohort in COHORTS):
    check_encoder_weights_configured(config)
