"""Cohort-level figures drawn from a cohort's finished results: a registry, so a new figure is one file.

Each figure is a plugin (``mosare.core.plugins``): a module in ``mosare/reporting/figure_plugins/`` that registers
one :class:`CohortFigure` at import (``register_cohort_figure``). Each figure is of one task (``classification``,
the default, or ``survival``): rule ``draw_cohort_figure`` (``workflow/rules/figures.smk``) draws every registered
figure of a cohort's task (``registered_figures(task)``) to ``results/{cohort}/figures/{name}.png`` after training,
from the files training wrote (read into :class:`CohortResults`), so a figure needs no edit to training, to the rules
or to the report. Planning imports this package to learn the names: keep matplotlib inside ``draw``.
docs/extending.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mosare.cohort.table import CohortTable
from mosare.core.plugins import Registry
from mosare.core.samples import TASKS, Task

FIGURE_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class CohortResults:
    """What a finished cohort offers a figure: its classes, cohort table, ``metrics.tsv``, ``comparisons.tsv``, every
    out-of-fold prediction (``predictions.tsv``: model, scenario keys, repeat, fold, patient, then label and
    probabilities, or for a survival cohort time, event, risk, risk_cutoff and survival@{h}) and the ``train/``
    folder (per-fold training histories).

    A survival cohort has no classes and its table holds times and events; ``time_unit`` is then the unit of its
    times (``cohorts.<name>.time_unit``, given by the rule), None for a classification cohort."""

    cohort: str
    classes: tuple[str, ...]
    table: CohortTable
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    predictions: pd.DataFrame
    train_dir: Path
    time_unit: str | None = None

    @property
    def task(self) -> Task:
        """``survival`` when the cohort table holds times and events, else ``classification``."""
        return "survival" if self.table.is_survival else "classification"

    @classmethod
    def read(
        cls,
        cohort: str,
        classes: Sequence[str],
        *,
        cohort_table: str | Path,
        metrics: str | Path,
        comparisons: str | Path,
        predictions: str | Path,
        train_dir: str | Path,
        time_unit: str | None = None,
    ) -> CohortResults:
        """The results a training job left: ``cohort.tsv``, the three tables and its ``train/`` folder. No
        ``classes`` (empty) means a survival cohort, whose ``time_unit`` must be given."""
        table = CohortTable.read(cohort_table, tuple(classes) or None)
        if table.is_survival and not time_unit:
            raise ValueError(f"{cohort} is a survival cohort: its results need the time_unit of its times")
        return cls(
            cohort=cohort,
            classes=tuple(classes),
            table=table,
            metrics=pd.read_csv(metrics, sep="\t"),
            comparisons=_read_optional_table(comparisons),
            predictions=pd.read_csv(predictions, sep="\t", dtype={"patient_id": str, "label": str}),
            train_dir=Path(train_dir),
            time_unit=time_unit if table.is_survival else None,
        )

    def shown_model(self) -> tuple[str, str]:
        """(model, title) of a figure that shows one model: MoSARe when it was trained, else the first model of
        ``metrics.tsv`` (the title then says so)."""
        from mosare.evaluation.results import REFERENCE_MODEL

        models = list(dict.fromkeys(self.metrics["model"]))
        if not models:
            raise ValueError(f"{self.cohort}: metrics.tsv lists no model")
        if REFERENCE_MODEL in models:
            return REFERENCE_MODEL, f"{self.cohort}, {REFERENCE_MODEL}"
        return models[0], f"{self.cohort}, {models[0]} ({REFERENCE_MODEL} not trained)"

    def shown_model_predictions(self) -> tuple[str, str, pd.DataFrame]:
        """(model, title, its out-of-fold predictions on complete data, first repeat) of :meth:`shown_model`."""
        model, title = self.shown_model()
        complete = self.scenario_predictions("complete", repeat=0)
        rows = complete[complete["model"] == model]
        if rows.empty:
            raise ValueError(f"{self.cohort}: no predictions of {model} in the complete scenario, repeat 0")
        return model, title, rows

    def scenario_predictions(self, scenario: str = "complete", repeat: int = 0) -> pd.DataFrame:
        """Every model's out-of-fold predictions in one scenario (and repeat), folds stacked."""
        rows = self.predictions[(self.predictions["scenario"] == scenario) & (self.predictions["repeat"] == repeat)]
        if rows.empty:
            raise ValueError(f"{self.cohort}: no predictions in scenario {scenario!r}, repeat {repeat}")
        return rows


def _read_optional_table(path: str | Path) -> pd.DataFrame:
    """A TSV that training leaves empty when there is nothing to list (comparisons without the reference model)."""
    try:
        return pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


@dataclasses.dataclass(frozen=True)
class CohortFigure:
    """One cohort-level figure: ``name`` (its file stem, ``[a-z0-9_]+``), ``description`` (the report caption),
    ``draw(results, path)``, which writes the PNG (``mosare.reporting.plots.save_png``), and ``task``: the cohorts it
    is drawn for (``classification``, the default, or ``survival``)."""

    name: str
    description: str
    draw: Callable[[CohortResults, Path], None]
    task: Task = "classification"


def _check_name(figure: CohortFigure) -> None:
    if not FIGURE_NAME.match(figure.name):
        raise ValueError(
            f"cohort figure name {figure.name!r} must match {FIGURE_NAME.pattern} (it becomes a file name)"
        )
    if figure.task not in TASKS:
        raise ValueError(f"cohort figure {figure.name!r}: task must be one of {', '.join(TASKS)}; got {figure.task!r}")


FIGURES: Registry[CohortFigure] = Registry(
    "cohort figure", "mosare.reporting.figure_plugins", lambda figure: figure.name, check=_check_name
)
register_cohort_figure = FIGURES.register


def registered_figures(task: str | None = None) -> dict[str, CohortFigure]:
    """Every cohort figure of ``task`` (None: of every task), by name (sorted)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    return {name: figure for name, figure in sorted(FIGURES.entries().items()) if task in (None, figure.task)}


def draw_cohort_figure(name: str, results: CohortResults, path: str | Path) -> None:
    """Draw the registered figure ``name`` of ``results`` to ``path``; a figure of another task than the cohort's is
    an error."""
    figures = registered_figures()
    if name not in figures:
        raise KeyError(f"no cohort figure {name!r}; registered: {', '.join(figures) or 'none'}")
    figure = figures[name]
    if figure.task != results.task:
        raise ValueError(
            f"cohort figure {name!r} is drawn for {figure.task} cohorts, and {results.cohort} is a {results.task} "
            f"cohort; its figures: {', '.join(registered_figures(results.task)) or 'none'}"
        )
    figure.draw(results, Path(path))
