"""MoSARe's training (or the first model's): loss per fold, loss terms and validation AUC, on complete data and
with training and test masked at the highest missing rate."""

from __future__ import annotations

from pathlib import Path

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    from mosare.evaluation.results import REFERENCE_MODEL
    from mosare.evaluation.scenarios import Scenario
    from mosare.reporting.plots.training import plot_history_grid, read_histories

    models = list(dict.fromkeys(results.metrics["model"]))
    model = REFERENCE_MODEL if REFERENCE_MODEL in models else models[0]
    slugs = ["complete"]
    masked = results.metrics.loc[results.metrics["scenario"] == "masked_train_test", "train_missing_rate"]
    if len(masked):
        slugs.append(Scenario("masked_train_test", float(masked.max()), float(masked.max())).slug)
    panels = {f"{model}, {slug}": read_histories(results.train_dir / model / slug) for slug in slugs}
    plot_history_grid({title: histories for title, histories in panels.items() if histories}, path)


register_cohort_figure(
    CohortFigure(
        "training_curves",
        "Training of MoSARe, one row per scenario (complete data, and masked training and test at the highest missing "
        "rate). Left: training loss per fold. Middle: each loss term (cross-entropy, reconstruction, contrastive "
        "alignment, multi-prototype contrast), averaged over folds; the contrastive terms switch on after the "
        "warm-up epochs. Right: validation AUC per fold, on a stratified split of the training folds; the dot marks "
        "the epoch whose checkpoint was kept and tested. Validation AUC that peaks early and falls while the training "
        "loss keeps dropping is overfitting. Every model's curves (all scenarios, mean over folds) are in "
        "train/{model}/curves.png and the numbers per epoch in train/{model}/{scenario}/fold{k}/history.tsv.",
        draw,
    )
)
