"""Cohort-level figures drawn from a cohort's finished results: a registry, so a new figure is one file.

Each figure is a plugin (``mosare.core.plugins``): a module in ``mosare/reporting/figure_plugins/`` that registers
one :class:`CohortFigure` at import (``register_cohort_figure``). Rule
``draw_cohort_figure`` (``workflow/rules/figures.smk``) draws every registered figure of every cohort to
``results/{cohort}/figures/{name}.png`` after training, from the files training wrote (read into
:class:`CohortResults`), so a figure needs no edit to training, to the rules or to the report. Planning imports this
package to learn the names: keep matplotlib inside ``draw``. docs/extending.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mosare.cohort.table import CohortTable
from mosare.core.plugins import Registry

FIGURE_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class CohortResults:
    """What a finished cohort offers a figure: its classes, cohort table, ``metrics.tsv``, ``comparisons.tsv``, every
    out-of-fold prediction (``predictions.tsv``: model, scenario keys, repeat, fold, patient, label, probabilities)
    and the ``train/`` folder (per-fold training histories)."""

    cohort: str
    classes: tuple[str, ...]
    table: CohortTable
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    predictions: pd.DataFrame
    train_dir: Path

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
    ) -> CohortResults:
        """The results a training job left: ``cohort.tsv``, the three tables and its ``train/`` folder."""
        return cls(
            cohort=cohort,
            classes=tuple(classes),
            table=CohortTable.read(cohort_table, classes),
            metrics=pd.read_csv(metrics, sep="\t"),
            comparisons=_read_optional_table(comparisons),
            predictions=pd.read_csv(predictions, sep="\t", dtype={"patient_id": str, "label": str}),
            train_dir=Path(train_dir),
        )

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
    """One cohort-level figure: ``name`` (its file stem, ``[a-z0-9_]+``), ``description`` (the report caption) and
    ``draw(results, path)``, which writes the PNG (``mosare.reporting.plots.save_png``)."""

    name: str
    description: str
    draw: Callable[[CohortResults, Path], None]


def _check_name(figure: CohortFigure) -> None:
    if not FIGURE_NAME.match(figure.name):
        raise ValueError(
            f"cohort figure name {figure.name!r} must match {FIGURE_NAME.pattern} (it becomes a file name)"
        )


FIGURES: Registry[CohortFigure] = Registry(
    "cohort figure", "mosare.reporting.figure_plugins", lambda figure: figure.name, check=_check_name
)
register_cohort_figure = FIGURES.register


def registered_figures() -> dict[str, CohortFigure]:
    """Every cohort figure, by name (sorted)."""
    return dict(sorted(FIGURES.entries().items()))


def draw_cohort_figure(name: str, results: CohortResults, path: str | Path) -> None:
    """Draw the registered figure ``name`` of ``results`` to ``path``."""
    figures = registered_figures()
    if name not in figures:
        raise KeyError(f"no cohort figure {name!r}; registered: {', '.join(figures) or 'none'}")
    figures[name].draw(results, Path(path))
