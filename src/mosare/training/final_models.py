"""Final models: after cross-validation, each model trained on the whole cohort, saved with everything inference
needs, and loaded back only for data made the same way.

A final model is trained like a cross-validation fold whose training part is the whole cohort: a stratified
validation split (``train.val_fraction``, seeded) picks the epoch, and every statistic (z-scores, the RNA genes) is
fitted on the rest. Nothing is masked beyond what patients really lack. Saved under
``results/{cohort}/models/{model}/``:

- ``state_dict.pt``: the selected epoch's ``state_dict`` (loads with ``torch.load(..., weights_only=True)``);
- ``preprocessing.npz``: the z-score means and standard deviations of every input, and the RNA gene ids kept;
- ``model.json``: the facts the inputs must match (:class:`FinalModelFacts`): classes, model name and sizes,
  hyper-parameters, encoder name and weights sha256, GMM components, text model, report-cleaning patterns and dropped
  sections, RNA log transform, package version; for a survival cohort's model also how it predicts survival
  (:class:`SurvivalFacts`: the head, its time bins, the horizons, the Cox baseline, the risk-group cut-off);
- ``model_card.md``: cohort, patients per class (or events) and modality, cross-validation metrics with CIs,
  intended use and known limits.

A survival model is trained the same way, its validation split stratified by event and its epoch chosen on the
validation patients' Harrell's C (``mosare.training.survival``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

import mosare
from mosare.cohort.data import CohortData
from mosare.core.atomic_files import atomic_file
from mosare.evaluation.metrics import interval_cell, scenario_label
from mosare.evaluation.splits import derived_seed, validation_split
from mosare.features.feature_store import FeatureStore
from mosare.features.rna_store import RNAStore
from mosare.features.text_store import TextStore
from mosare.model.specs import single_modality_models
from mosare.slides.exclusion import SlideExclusion
from mosare.training.fold_inputs import Normalisation, eval_patch_rows, fit_normalisation, fold_tensors
from mosare.training.loop import train_model

NORMALISED_INPUTS: tuple[str, ...] = ("patches", "wsi_local", "rna", "text_global", "text_local")


class ModelMismatchError(ValueError):
    """Saved model facts differ from the data it is given; the message names each difference and the fix."""


@dataclasses.dataclass(frozen=True)
class InputFacts:
    """How a cohort's model inputs were made: what a saved model must agree with to be applied to them."""

    encoder: str | None  # None: the cohort has no slide features
    encoder_weights_sha256: str | None
    wsi_dim: int
    gmm_components: int
    text_model: str | None
    text_dim: int
    leak_patterns: tuple[str, ...]
    drop_sections: tuple[str, ...]
    rna_log_transformed: bool | None

    @classmethod
    def read(
        cls, data: CohortData, features_dir: str | Path, text_store: str | Path, rna_store: str | Path
    ) -> InputFacts:
        """The facts of ``data``'s inputs, from the attributes of its stores."""
        encoder = sha256 = None
        feature_stores = sorted(Path(features_dir).glob("*.zarr")) if Path(features_dir).is_dir() else []
        embedded = next((store for store in feature_stores if SlideExclusion.read(store) is None), None)
        if embedded is not None and data.available[:, 0].any():
            record = FeatureStore.read_record(embedded)
            encoder, sha256 = record.encoder, record.weights_sha256
        text = TextStore.read_encoding(text_store)
        has_text, has_rna = data.available[:, 2].any(), data.available[:, 1].any()
        return cls(
            encoder=encoder,
            encoder_weights_sha256=sha256,
            wsi_dim=int(data.patches.shape[1]),
            gmm_components=int(data.text_local.shape[1]),
            text_model=text.model if has_text else None,
            text_dim=int(data.text_global.shape[1]) if has_text else 0,
            leak_patterns=tuple(text.leak_patterns or ()) if has_text else (),
            drop_sections=tuple(text.drop_sections or ()) if has_text else (),
            rna_log_transformed=bool(RNAStore.read_log_transformed(rna_store)) if has_rna else None,
        )


@dataclasses.dataclass(frozen=True)
class SurvivalFacts:
    """How a survival cohort's final model turns its head outputs into predictions (``model.json``'s ``survival``)."""

    head: str  # "hazard" or "cox"
    edges: tuple[float, ...]  # the time bins, cut at the fit patients' event times (MoSARe's MCL uses them for Cox too)
    alpha: float
    horizons: tuple[float, ...]  # the cohort's evaluation horizons: predictions.tsv's survival@{h} columns
    time_unit: str
    blind_outputs: tuple[float, ...]  # the head outputs of a patient without the model's modality (fit-part mean)
    baseline_times: tuple[float, ...]  # Cox only: Breslow's baseline survival S0(t), fitted on the fit patients
    baseline_survival: tuple[float, ...]
    risk_cutoff: float  # the median risk of the training patients: deployed patients' low / high risk groups

    @property
    def baseline(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.baseline_times:
            return None
        return np.asarray(self.baseline_times), np.asarray(self.baseline_survival)

    def setup(self) -> Any:
        from mosare.model.survival import SurvivalSetup

        return SurvivalSetup(self.head, self.edges, self.alpha)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class FinalModelFacts:
    """Everything a saved model was made with (``model.json``)."""

    cohort: str
    model: str
    classes: tuple[str, ...]
    inputs: InputFacts
    dims: Mapping[str, int]
    hparams: Mapping[str, Any]
    selected_epoch: int
    rna_genes: tuple[str, ...]
    class_prior: tuple[float, ...]  # what a single-modality model predicts for a patient without its modality
    package_version: str
    survival: SurvivalFacts | None = None  # a survival cohort's model

    def to_json(self) -> str:
        facts = dataclasses.asdict(self)
        if facts["survival"] is None:  # a classification model's model.json is what it was before survival existed
            del facts["survival"]
        return json.dumps(facts, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> FinalModelFacts:
        raw = json.loads(text)
        inputs = raw.pop("inputs")
        for key in ("leak_patterns", "drop_sections"):
            inputs[key] = tuple(inputs[key])
        tuples = {key: tuple(raw[key]) for key in ("classes", "rna_genes", "class_prior")}
        survival = raw.pop("survival", None)
        if survival is not None:
            fields: dict[str, Any] = {
                key: tuple(value) if isinstance(value, list) else value for key, value in survival.items()
            }
            survival = SurvivalFacts(**fields)
        return cls(**{**raw, **tuples}, inputs=InputFacts(**inputs), survival=survival)


def mismatches(saved: FinalModelFacts, given: InputFacts, given_rna_genes: Sequence[str] | None = None) -> list[str]:
    """What differs between a saved model's facts and the inputs it is given, each with its fix."""
    problems = []
    fields = {
        "encoder": "embed the slides with the encoder the model was trained on (encoder.name)",
        "encoder_weights_sha256": "use the same encoder checkpoint file (encoder.checkpoint)",
        "wsi_dim": "use the same encoder",
        "gmm_components": "set gmm.components to the model's value and refit the slide mixtures and report tokens",
        "text_model": "encode the reports with the model's text.model",
        "text_dim": "encode the reports with the model's text.model",
        "leak_patterns": "clean the reports with the model's report_leak_patterns",
        "drop_sections": "set text.drop_sections to the model's value",
        "rna_log_transformed": "set rna.log_transform so the matrix is transformed as in training",
    }
    for name, fix in fields.items():
        ours, theirs = getattr(saved.inputs, name), getattr(given, name)
        if theirs is None or (name in ("text_dim", "wsi_dim") and theirs == 0) or ours is None:
            continue  # the data lacks that modality: the model treats it as missing
        if ours != theirs:
            problems.append(f"{name}: model {ours!r}, data {theirs!r} ({fix})")
    if given_rna_genes is not None and saved.rna_genes:
        absent = [gene for gene in saved.rna_genes if gene not in set(given_rna_genes)]
        if absent:
            problems.append(
                f"rna genes: {len(absent)} of the model's {len(saved.rna_genes)} genes are not in the data "
                f"(e.g. {absent[:5]}); supply a matrix with them"
            )
    return problems


def _normalisation_arrays(stats: Normalisation) -> dict[str, np.ndarray]:
    arrays = {}
    for name in NORMALISED_INPUTS:
        mean, std = getattr(stats, name)
        arrays[f"{name}_mean"], arrays[f"{name}_std"] = mean, std
    arrays["rna_genes"] = stats.rna_genes
    return arrays


class TrainedFinalModel(NamedTuple):
    state_dict: dict[str, torch.Tensor]
    normalisation: Normalisation
    selected_epoch: int
    survival: SurvivalFacts | None = None


def train_final_model(
    data: CohortData,
    model_name: str,
    train_config: Mapping[str, Any],
    build: Any,
    dims: Any,
    device: torch.device,
) -> TrainedFinalModel:
    """Train ``model_name`` on the whole cohort (epoch chosen on a seeded validation split, statistics fitted on the
    rest). Seeded by ``train.seed`` alone, so it gives the same model in any process (a training worker or this one)."""
    if data.is_survival:
        return train_final_survival_model(data, model_name, train_config, build, dims, device)
    seed = derived_seed(train_config["seed"], 424242)
    fit_index, val_index = validation_split(np.arange(data.n_patients), data.labels, train_config["val_fraction"], seed)
    stats = fit_normalisation(data, fit_index, train_config.get("rna_top_genes"))
    tensors = fold_tensors(data, stats, eval_patch_rows(data, train_config["patches_per_step"], seed))
    prior = np.bincount(data.labels, minlength=len(data.classes)) / data.n_patients
    shown = torch.from_numpy(data.available)
    torch.manual_seed(derived_seed(seed, 2))
    model = build(model_name, dims, len(data.classes), dict(train_config))
    required = single_modality_models().get(model_name)
    result = train_model(
        model, tensors, fit_index, val_index, shown, dict(train_config), device, derived_seed(seed, 3), prior, required
    )
    return TrainedFinalModel(result.state_dict, stats, result.best_epoch)


def train_final_survival_model(
    data: CohortData,
    model_name: str,
    train_config: Mapping[str, Any],
    build: Any,
    dims: Any,
    device: torch.device,
) -> TrainedFinalModel:
    """:func:`train_final_model` of a survival cohort: a validation split stratified by event, time bins cut at the
    fit patients' event times, the epoch chosen on the validation patients' Harrell's C; then what prediction needs
    beyond the weights (:class:`SurvivalFacts`), from the fit patients (stand-in, Cox baseline) and from all the
    training patients (the risk-group cut-off)."""
    from mosare.evaluation.splits import survival_validation_split
    from mosare.evaluation.survival_metrics import training_cutoffs
    from mosare.model.survival import SurvivalSetup
    from mosare.training.survival import SurvivalPredictor, survival_horizons, survival_validation

    assert data.times is not None and data.events is not None
    config = dict(train_config)
    seed = derived_seed(config["seed"], 424242)
    fit_index, val_index = survival_validation_split(
        np.arange(data.n_patients), data.events, config["val_fraction"], seed
    )
    stats = fit_normalisation(data, fit_index, config.get("rna_top_genes"))
    tensors = fold_tensors(data, stats, eval_patch_rows(data, config["patches_per_step"], seed))
    setup = SurvivalSetup.from_config(config["survival"], data.times[fit_index], data.events[fit_index])
    shown = torch.from_numpy(data.available)
    torch.manual_seed(derived_seed(seed, 2))
    model = build(model_name, dims, 0, config, survival=setup)
    required = single_modality_models().get(model_name)
    validate = survival_validation(tensors, val_index, shown, required, config["batch_size"], device)
    result = train_model(
        model, tensors, fit_index, val_index, shown, config, device, derived_seed(seed, 3), np.zeros(1), required,
        validation=validate,
    )  # fmt: skip
    predictor = SurvivalPredictor.fitted(model, tensors, fit_index, shown, config["batch_size"], device, required)
    training_risk = predictor.risk(predictor.outputs(np.arange(data.n_patients), shown))
    baseline_times, baseline_survival = predictor.baseline or ((), ())
    facts = SurvivalFacts(
        head=setup.head,
        edges=tuple(float(edge) for edge in setup.edges),
        alpha=setup.alpha,
        horizons=tuple(float(h) for h in survival_horizons(data, config)),
        time_unit=str(config.get("time_unit", "months")),
        blind_outputs=tuple(float(v) for v in predictor.stand_in),
        baseline_times=tuple(float(t) for t in baseline_times),
        baseline_survival=tuple(float(v) for v in baseline_survival),
        risk_cutoff=float(training_cutoffs(training_risk)[0]),
    )
    return TrainedFinalModel(result.state_dict, stats, result.best_epoch, facts)


def save_final_model(
    directory: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    stats: Normalisation,
    facts: FinalModelFacts,
    card: str,
) -> None:
    """Write the four files of a final model atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_file(directory / "state_dict.pt") as tmp:
        torch.save(dict(state_dict), tmp)
    with atomic_file(directory / "preprocessing.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, allow_pickle=False, **_normalisation_arrays(stats))  # numbers only, read without pickle
    with atomic_file(directory / "model.json") as tmp:
        tmp.write_text(facts.to_json(), encoding="utf-8")
    with atomic_file(directory / "model_card.md") as tmp:
        tmp.write_text(card, encoding="utf-8")


@dataclasses.dataclass
class LoadedModel:
    model: torch.nn.Module
    normalisation: Normalisation
    facts: FinalModelFacts


def load_final_model(
    directory: str | Path,
    given: InputFacts | None = None,
    given_rna_genes: Sequence[str] | None = None,
    train_config: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Rebuild a saved model in evaluation mode. With ``given`` (and the data's RNA gene ids), refuse inputs made
    differently; with ``train_config``, refuse a configured hidden size other than the model's. The error lists every
    mismatch and its fix."""
    from mosare.model.factory import ModelDims, build_model

    directory = Path(directory)
    facts = FinalModelFacts.from_json((directory / "model.json").read_text(encoding="utf-8"))
    problems = mismatches(facts, given, given_rna_genes) if given is not None else []
    if train_config is not None and "hidden" in train_config and train_config["hidden"] != facts.dims["hidden"]:
        problems.append(
            f"hidden: model {facts.dims['hidden']}, config train.hidden {train_config['hidden']} (set train.hidden to "
            "the model's value, or retrain)"
        )
    if problems:
        raise ModelMismatchError(
            f"model {directory} ({facts.model}, trained on {facts.cohort}) does not fit these inputs:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    survival = None if facts.survival is None else facts.survival.setup()
    model = build_model(
        facts.model, ModelDims(**facts.dims), len(facts.classes), dict(facts.hparams), survival=survival
    )
    model.load_state_dict(torch.load(directory / "state_dict.pt", weights_only=True))
    model.eval()
    with np.load(directory / "preprocessing.npz") as arrays:
        stats = Normalisation(
            **{name: (arrays[f"{name}_mean"], arrays[f"{name}_std"]) for name in NORMALISED_INPUTS},
            rna_genes=arrays["rna_genes"],
        )
    return LoadedModel(model, stats, facts)


def model_card(
    facts: FinalModelFacts, data: CohortData, metrics: pd.DataFrame, comparisons: pd.DataFrame | None = None
) -> str:
    """``model_card.md``: what the model is, what it was trained on, how well it did in cross-validation, and what
    it must not be used for (a survival model's: :func:`_survival_card_parts`)."""
    if facts.survival is not None:
        title, intro, training, performance, uses = _survival_card_parts(facts, facts.survival, data, metrics)
    else:
        title, intro, training, performance, uses = _classification_card_parts(facts, data, metrics)
    lines = [
        f"# Model card: {facts.model} for {facts.cohort} ({title})",
        "",
        f"mosare-pipeline {facts.package_version}. {intro}",
        "",
        "## Training data",
        "",
        *training,
        "",
        "## Inputs",
        "",
        *_inputs_lines(facts),
        "",
        *performance,
    ]
    if comparisons is not None and len(comparisons) and facts.model in set(comparisons["model"]):
        significant = comparisons[(comparisons["p_holm"] < 0.05)]
        lines += ["", f"Paired comparisons significant after Holm: {len(significant)} of {len(comparisons)} "
                      "(see comparisons.tsv)."]  # fmt: skip
    lines += [
        "",
        "## Intended use and limits",
        "",
        *uses,
        "- Inputs must be made exactly as in training (same encoder and checkpoint, GMM components, text model, report "
        "cleaning, RNA genes and transform); loading refuses a model whose facts differ from its inputs.",
        "- The cross-validated numbers come from this cohort alone; site, scanner, stain and population shifts can lower "
        "them. Check them on an external cohort before relying on them.",
        f"- Small cohorts give wide intervals ({data.n_patients} patients here).",
        "",
    ]
    return "\n".join(lines)


def _inputs_lines(facts: FinalModelFacts) -> list[str]:
    inputs = facts.inputs
    return [
        f"- Slides: {inputs.encoder or 'none'} features (weights sha256 {inputs.encoder_weights_sha256 or 'n/a'}), "
        f"{inputs.gmm_components} GMM components per slide.",
        f"- RNA: {len(facts.rna_genes)} genes (chosen by variance on the training patients), "
        f"log2(x+1) {'applied' if inputs.rna_log_transformed else 'not applied'}."
        if facts.rna_genes
        else "- RNA: none.",
        f"- Reports: {inputs.text_model}; subtype phrases replaced ({len(inputs.leak_patterns)} patterns); "
        f"sections dropped: {', '.join(inputs.drop_sections) or 'none'}."
        if inputs.text_model
        else "- Reports: none.",
    ]


def _scenario_rows(metrics: pd.DataFrame, model: str, cells: Any) -> list[str]:
    """One table row per scenario of ``model``: its label, then ``cells(metric-indexed rows)``."""
    rows = []
    ours = metrics[metrics["model"] == model]
    for key, scenario in ours.groupby(["scenario", "train_missing_rate", "test_missing_rate"], sort=False):
        rows.append(f"| {scenario_label(*key)} | {' | '.join(cells(scenario.set_index('metric')))} |")
    return rows


def _interval_of(by_metric: pd.DataFrame, metric: str) -> str:
    row = by_metric.loc[metric]
    return interval_cell(row["pooled"], row["ci_low"], row["ci_high"])


def _classification_card_parts(
    facts: FinalModelFacts, data: CohortData, metrics: pd.DataFrame
) -> tuple[str, str, list[str], list[str], list[str]]:
    label_names = np.array(data.classes)[data.labels]
    training = ["| class | patients | with WSI | with RNA | with report |", "|---|---|---|---|---|"]
    for name in data.classes:
        rows = label_names == name
        counts = data.available[rows].sum(axis=0)
        training.append(f"| {name} | {int(rows.sum())} | {int(counts[0])} | {int(counts[1])} | {int(counts[2])} |")
    performance = [
        "## Cross-validated performance (pooled out-of-fold, 95% bootstrap CI)",
        "",
        "| scenario | AUC | Brier | ECE |",
        "|---|---|---|---|",
        *_scenario_rows(
            metrics, facts.model,
            lambda by: [_interval_of(by, "auc"), f"{by.loc['brier', 'pooled']:.3f}", f"{by.loc['ece', 'pooled']:.3f}"],
        ),
    ]  # fmt: skip
    intro = (
        f"Trained on all {data.n_patients} patients of cohort `{facts.cohort}`; epoch {facts.selected_epoch} chosen on "
        f"a stratified validation split ({facts.hparams.get('val_fraction')} of the patients), every statistic fitted "
        "on the rest."
    )
    uses = [
        f"- Research use: classifying {' vs '.join(facts.classes)} in patients like those above, from whichever of "
        "slides, RNA and report they have. Not a diagnostic device; not validated prospectively.",
    ]
    return " vs ".join(facts.classes), intro, training, performance, uses


def _survival_card_parts(
    facts: FinalModelFacts, survival: SurvivalFacts, data: CohortData, metrics: pd.DataFrame
) -> tuple[str, str, list[str], list[str], list[str]]:
    assert data.times is not None and data.events is not None
    unit = survival.time_unit
    head = (
        f"a discrete-time hazard head over {len(survival.edges) - 1} time bins (edges "
        f"{', '.join(f'{edge:g}' for edge in survival.edges)} {unit})"
        if survival.head == "hazard"
        else "a Cox head (partial likelihood) with Breslow's baseline survival"
    )
    intro = (
        f"Predicts each patient's risk (higher = earlier event) and survival at "
        f"{', '.join(f'{h:g}' for h in survival.horizons)} {unit} with {head}. Trained on all {data.n_patients} "
        f"patients of cohort `{facts.cohort}`; epoch {facts.selected_epoch} chosen on the Harrell's C of a validation "
        f"split stratified by event ({facts.hparams.get('val_fraction')} of the patients), every statistic fitted on "
        "the rest."
    )
    counts = data.available.sum(axis=0)
    n_events = int(data.events.sum())
    training = [
        f"| patients | events | censored | median time ({unit}) | with WSI | with RNA | with report |",
        "|---|---|---|---|---|---|---|",
        f"| {data.n_patients} | {n_events} | {data.n_patients - n_events} | {float(np.median(data.times)):.3g} | "
        f"{int(counts[0])} | {int(counts[1])} | {int(counts[2])} |",
        "",
        f"Deployed patients are called high risk above {survival.risk_cutoff:.4g}, the median risk of the training "
        "patients.",
    ]
    performance = [
        "## Cross-validated performance (within-fold pooled C-index, 95% bootstrap CI; integrated Brier: mean of the "
        "folds)",
        "",
        "| scenario | Harrell's C | Uno's C | integrated Brier |",
        "|---|---|---|---|",
        *_scenario_rows(
            metrics, facts.model,
            lambda by: [_interval_of(by, "harrell_c"), _interval_of(by, "uno_c"), f"{by.loc['ibs', 'mean']:.3f}"],
        ),
    ]  # fmt: skip
    uses = [
        "- Research use: ranking patients like those above by risk, from whichever of slides, RNA and report they "
        "have. Not a prognostic device; not validated prospectively.",
        "- Risks rank patients on this model's own scale. Survival probabilities are calibrated on this cohort only: "
        "check them (the survival calibration figure) on an external cohort before reading them as absolute.",
        f"- {n_events} events: the C-index intervals are as wide as the events are few.",
    ]
    return "survival", intro, training, performance, uses


def write_final_models(
    data: CohortData,
    train_config: Mapping[str, Any],
    cohort: str,
    models_dir: str | Path,
    input_facts: InputFacts,
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    rna_gene_ids: Sequence[str],
    dims: Any,
    trained: Mapping[str, TrainedFinalModel],
) -> list[Path]:
    """Describe and save every model of ``trained`` (:func:`train_final_model` of each of ``train_config["models"]``
    the cohort can run), with its card; returns their folders."""
    written = []
    for model_name, (state, stats, epoch, survival) in trained.items():
        facts = FinalModelFacts(
            cohort=cohort,
            model=model_name,
            classes=tuple(data.classes),
            inputs=input_facts,
            dims=dataclasses.asdict(dims),
            hparams={k: v for k, v in train_config.items() if k != "models"},
            selected_epoch=epoch,
            rna_genes=tuple(np.asarray(rna_gene_ids)[stats.rna_genes].tolist()) if data.available[:, 1].any() else (),
            class_prior=()
            if data.is_survival
            else tuple(float(p) for p in np.bincount(data.labels, minlength=len(data.classes)) / data.n_patients),
            package_version=mosare.__version__,
            survival=survival,
        )
        directory = Path(models_dir) / model_name
        save_final_model(directory, state, stats, facts, model_card(facts, data, metrics, comparisons))
        written.append(directory)
    return written
