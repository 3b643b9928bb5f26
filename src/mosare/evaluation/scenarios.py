"""Missing-modality scenarios and the masks that hide modalities from the models.

Scenarios: complete; masked train / complete test and masked train / masked test for each missing rate; and, when
``train.mnar`` is set, a missing-not-at-random scenario whose missingness depends on the label. Masks are drawn
once per (repeat, fold, side, mask draw) from a fixed seed, so every model sees the same masks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mosare.core.modalities import MODALITIES
from mosare.evaluation.splits import derived_seed
from mosare.model.specs import single_modality_models

MODALITY_TITLES: tuple[str, ...] = ("WSI", "RNA", "reports")


@dataclasses.dataclass(frozen=True)
class MNARSetting:
    """Missingness that depends on the label: ``modality`` is missing at ``rate - delta`` in the first class and
    ``rate + delta`` in the last (linear in between), in training and test; the other modalities are all shown."""

    modality: int
    rate: float
    delta: float

    @classmethod
    def from_config(cls, setting: Mapping[str, Any] | None) -> MNARSetting | None:
        if not setting:
            return None
        return cls(MODALITIES.index(setting["modality"]), float(setting["rate"]), float(setting["delta"]))

    def class_rates(self, n_classes: int) -> np.ndarray:
        """The missing rate of each class, ``rate - delta`` for class 0 up to ``rate + delta`` for the last."""
        return np.clip(self.rate + self.delta * np.linspace(-1.0, 1.0, n_classes), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One missing-modality scenario: ``complete``; ``masked_train`` or ``masked_train_test`` at a missing rate (at
    random, every modality); or ``mnar_<modality>`` (that modality, missing more often in one class, training and test)."""

    name: str
    train_rate: float
    test_rate: float
    mnar: MNARSetting | None = None

    @property
    def slug(self) -> str:
        """Directory name: ``complete``, ``masked_train-0.3``, ``masked_train_test-0.3``, ``mnar_text-0.3-0.2``."""
        if self.name == "complete":
            return self.name
        if self.mnar is not None:
            return f"{self.name}-{self.mnar.rate:g}-{self.mnar.delta:g}"
        return f"{self.name}-{self.train_rate:g}"

    @property
    def masked(self) -> bool:
        """Whether masks are drawn (so ``train.mask_repeats`` draws apply)."""
        return self.name != "complete"


def scenarios(missing_rates: Sequence[float], mnar: MNARSetting | None = None) -> list[Scenario]:
    """Complete, then masked train / complete test and masked train / masked test for each rate, then MNAR."""
    out = [Scenario("complete", 0.0, 0.0)]
    for rate in missing_rates:
        out += [Scenario("masked_train", rate, 0.0), Scenario("masked_train_test", rate, rate)]
    if mnar is not None:
        out.append(Scenario(f"mnar_{MODALITIES[mnar.modality]}", mnar.rate, mnar.rate, mnar))
    return out


def training_groups(scenario_list: Sequence[Scenario]) -> list[tuple[Scenario, ...]]:
    """The scenarios grouped by what their training side sees, in first-appearance order.

    ``masked_train`` and ``masked_train_test`` at one rate hide the same modalities from the same training patients
    (the training side's uniforms depend on (seed, fold, side, draw) only, see :func:`scenario_presence`), so one model
    trained per group and draw serves every scenario of the group: their test sides differ, their models do not.
    """
    groups: dict[tuple[bool, float, MNARSetting | None], list[Scenario]] = {}
    for scenario in scenario_list:
        groups.setdefault((scenario.masked, scenario.train_rate, scenario.mnar), []).append(scenario)
    return [tuple(group) for group in groups.values()]


def masks_from_draws(available: np.ndarray, rate: float, uniforms: np.ndarray) -> np.ndarray:
    """Which modalities each patient shows (N, 3): modality m is dropped where ``uniforms[:, m] < rate``.

    The same ``uniforms`` at a higher rate drop a superset, so masks are nested across rates: a (patient, modality)
    dropped at 0.3 is dropped at 0.5 too. As in the paper, at least one modality is kept and WSI and RNA are never
    both dropped: when the draw drops both, the one whose uniform is larger (the one dropped "last") comes back,
    which keeps the nesting. Modalities the patient really lacks stay absent. The repair makes the realised rate
    fall below ``rate``; :func:`realised_missing_rates` measures it.
    """
    available = np.asarray(available, dtype=bool)
    shown = available & (uniforms >= rate)
    has_wsi_or_rna = available[:, 0] | available[:, 1]
    lost_both = has_wsi_or_rna & ~(shown[:, 0] | shown[:, 1])
    keep_rna = available[:, 1] & (~available[:, 0] | (uniforms[:, 1] > uniforms[:, 0]))
    shown[lost_both, 1] = keep_rna[lost_both]
    shown[lost_both, 0] = ~keep_rna[lost_both]
    nothing = ~shown.any(axis=1)  # only patients with reports alone: the report stays
    shown[nothing] = available[nothing]
    return shown


def draw_missing_masks(available: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`masks_from_draws` with fresh uniforms from ``rng``."""
    return masks_from_draws(available, rate, rng.random(np.shape(available)))


def mnar_masks(
    available: np.ndarray, labels: np.ndarray, setting: MNARSetting, n_classes: int, uniforms: np.ndarray
) -> np.ndarray:
    """Shown modalities (N, 3) under ``setting``: its modality dropped where ``uniforms`` fall below the patient's
    class rate, unless that would leave the patient with nothing, or without both WSI and RNA."""
    available = np.asarray(available, dtype=bool)
    shown = available.copy()
    m = setting.modality
    shown[:, m] &= ~(uniforms < setting.class_rates(n_classes)[labels])
    invalid = ~shown.any(axis=1) | ((available[:, 0] | available[:, 1]) & ~(shown[:, 0] | shown[:, 1]))
    shown[invalid, m] = available[invalid, m]
    return shown


def realised_missing_rates(available: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Per modality, the fraction of the patients who have it that it is hidden from (NaN where nobody has it)."""
    has = np.asarray(available, dtype=bool).sum(axis=0)
    hidden = (np.asarray(available, dtype=bool) & ~np.asarray(shown, dtype=bool)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(has > 0, hidden / np.maximum(has, 1), np.nan)


@dataclasses.dataclass(frozen=True)
class EvaluationPlan:
    """The models and scenarios a cohort can be evaluated with, and why the others are not run."""

    models: list[str]
    scenarios: list[Scenario]
    skipped: dict[str, str]  # model name or scenario slug -> reason, for the log and metrics.md


def plan_evaluation(
    available: np.ndarray, models: Sequence[str], missing_rates: Sequence[float], mnar: MNARSetting | None = None
) -> EvaluationPlan:
    """Drop the models whose only input no patient has, and the masked scenarios when masking can drop nothing
    (no patient has two modalities, and at least one is always kept)."""
    available = np.asarray(available, dtype=bool)
    in_cohort: np.ndarray = np.any(available, axis=0)  # (3,): ndarray.any's stub also allows a scalar
    skipped: dict[str, str] = {}
    run_models = []
    for name in models:
        required = single_modality_models().get(name)
        if required is not None and not in_cohort[required]:
            skipped[name] = f"reads only {MODALITY_TITLES[required]}, which no patient of the cohort has"
        else:
            run_models.append(name)
    run_scenarios = scenarios(missing_rates, mnar)
    two_or_more = available.sum(axis=1) >= 2
    for scenario in list(run_scenarios[1:]):
        if scenario.mnar is not None:
            droppable = two_or_more & available[:, scenario.mnar.modality]
            reason = (
                f"no patient has {MODALITY_TITLES[scenario.mnar.modality]} and another modality, so it drops nothing"
            )
        else:
            droppable, reason = (
                two_or_more,
                "no patient has two modalities, so masking drops nothing: it equals complete",
            )
        if not droppable.any():
            skipped[scenario.slug] = reason
            run_scenarios.remove(scenario)
    return EvaluationPlan(run_models, run_scenarios, skipped)


def scenario_presence(
    available: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    fold: int,
    scenario_list: Sequence[Scenario],
    seed: int,
    mask_draws: int = 1,
) -> dict[Scenario, list[np.ndarray]]:
    """Modalities shown (N, 3) to every patient in each scenario of one fold, one array per mask draw (one for
    ``complete``). Each draw's uniforms are shared by every rate (nested masks) and come from (seed, fold, side,
    draw), so every model sees the same masks. MNAR draws use their own stream and the patients' labels."""
    available = np.asarray(available, dtype=bool)
    test = folds == fold
    n_classes = int(labels.max()) + 1 if len(labels) else 2
    presence: dict[Scenario, list[np.ndarray]] = {}
    for scenario in scenario_list:
        if not scenario.masked:
            presence[scenario] = [available.copy()]
            continue
        draws = []
        for draw in range(mask_draws):
            shown = available.copy()
            for side, rows, rate in ((0, ~test, scenario.train_rate), (1, test, scenario.test_rate)):
                uniforms = np.random.default_rng(derived_seed(seed, fold, side, draw, 11)).random((int(rows.sum()), 3))
                if scenario.mnar is not None:
                    mnar_uniforms = np.random.default_rng(derived_seed(seed, fold, side, draw, 13)).random(
                        int(rows.sum())
                    )
                    shown[rows] = mnar_masks(available[rows], labels[rows], scenario.mnar, n_classes, mnar_uniforms)
                elif rate > 0:
                    shown[rows] = masks_from_draws(available[rows], rate, uniforms)
            draws.append(shown)
        presence[scenario] = draws
    return presence
