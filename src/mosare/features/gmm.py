"""Diagonal-covariance Gaussian mixtures fitted by batched EM in PyTorch (CUDA when present): the estimator.

The local tokens of a slide (its patch features) and of a report (its sentence embeddings) are the C
component means of such a mixture. ``DiagonalGMM`` is a scikit-learn estimator (``get_params``, ``set_params``,
``clone``; parameters checked in ``fit``; fitted attributes end in ``_``) that feels like
``sklearn.mixture.GaussianMixture(covariance_type="diag")`` and its ``score`` is the same quantity, but
it is built for speed (the EM kernels are in ``mosare.features.gmm_em``). This module reads no slide and draws
nothing, so report encoding imports it as it is; the per-slide stage is ``mosare.features.slide_gmm``.

Rules (the same for every caller):

- Initialisation: greedy k-means++ seeding (scikit-learn's variant, ``2 + log C`` candidates per step)
  drawn from a CPU generator seeded by ``random_state``; every sample is then assigned to its nearest seed and the
  first M-step runs on those hard assignments. Nothing depends on folds or labels, and the same data with
  the same integer ``random_state`` give a bitwise identical fit on the same device.
- Convergence: EM stops when the mean log-likelihood lower bound changes by less than ``tol`` (as sklearn)
  or after ``max_iter`` iterations.
- Warm start (coarse to fine, ``warm_start_subsample``): EM is first initialised and run to convergence
  (same ``tol`` and ``max_iter``) on a seeded random subsample of rows, then continues from those
  parameters on all the data under the same stopping rule; ``n_iter_`` counts the full-data iterations,
  ``n_iter_subsample_`` the others. "auto" uses max(50 C, 2000) rows when the data have at least 4 times
  as many, else no warm start; an integer sets the rows; None fits on all the data from the start.
- Variances are ``E[x²] - mean²`` (clamped at zero against rounding) plus ``reg_covar``, so duplicate
  points or constant features give components with variance ``reg_covar``, never zero.
- Fewer distinct samples than components: seeding stops once every sample coincides with a seed, so
  ``n_components_used_ = min(C, distinct samples)`` components are fitted (components that end EM with
  less than a thousandth of a sample of responsibility are dropped too). The result is padded back to C by
  splitting the heaviest component into two identical halves, each with half its weight, until there are
  C. The padded mixture is the same density, so weights sum to 1, and score, predict and the stored
  log-likelihood are unchanged.
- No samples: ``DiagonalGMM.fit`` raises ``ValueError``; ``fit_gmm_tokens`` returns an all-zero token set
  flagged ``present=False`` (weights all zero) so that an empty slide or report never stops a cohort.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, clone
from sklearn.utils.validation import check_is_fitted, check_random_state

from mosare.core.config_schema import schema_defaults
from mosare.core.devices import resolve_device
from mosare.features.gmm_em import (
    DTYPES,
    ArrayLike,
    as_samples,
    centred_and_squared,
    expectation_maximisation,
    initial_parameters,
    mixture_log_responsibilities,
)
from mosare.features.gmm_store import GMMResult

logger = logging.getLogger(__name__)

# The schema is where every default lives; these are its gmm defaults (the estimator's defaults too).
SCHEMA_DEFAULTS = schema_defaults("gmm")
# Components whose total responsibility ends below this many samples are treated as dead.
DEAD_COMPONENT_SAMPLES = 1e-3
# "auto" warm start: EM first runs on max(this many rows per component, WARM_START_MIN_ROWS) rows, when the
# data have at least WARM_START_MIN_RATIO times as many.
WARM_START_ROWS_PER_COMPONENT = 50
WARM_START_MIN_ROWS = 2000
WARM_START_MIN_RATIO = 4


def pad_components(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad a mixture to ``n_components`` by repeatedly halving its heaviest component into two copies.

    The density is unchanged and weights still sum to 1; appended copies follow the fitted components.
    """
    weight_list, mean_list, variance_list = list(weights), list(means), list(variances)
    while len(weight_list) < n_components:
        heaviest = int(np.argmax(weight_list))
        weight_list[heaviest] = weight_list[heaviest] / 2
        weight_list.append(weight_list[heaviest])
        mean_list.append(mean_list[heaviest])
        variance_list.append(variance_list[heaviest])
    return np.asarray(weight_list), np.stack(mean_list), np.stack(variance_list)


def _identical_components(means: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sets of identical components: the first index of each set, and each component's set number."""
    _, first, group = np.unique(
        np.concatenate([means, variances], axis=1), axis=0, return_index=True, return_inverse=True
    )
    return first, group.ravel()


def padding_sources(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """For each component, the index of the first component it is identical to (itself when unique)."""
    first, group = _identical_components(means, variances)
    return first[group]


def predict_components(
    X: ArrayLike, weights: np.ndarray, means: np.ndarray, variances: np.ndarray, **scoring: Any
) -> np.ndarray:
    """Most likely component of each sample; padding copies never win over the component they copy.

    Identical components are merged (weights summed) before the argmax, so rounding cannot split a
    component's samples between it and its copies; each sample gets the first of a set of copies.
    ``scoring``: ``dtype`` and ``device``, as for :func:`mixture_log_responsibilities`.
    """
    weights = np.asarray(weights)
    first, group = _identical_components(means, variances)
    merged_weights = np.bincount(group, weights=weights, minlength=len(first))
    _, log_resp = mixture_log_responsibilities(
        X, merged_weights, np.asarray(means)[first], np.asarray(variances)[first], **scoring
    )
    return first[log_resp.argmax(1).cpu().numpy()]


class DiagonalGMM(DensityMixin, BaseEstimator):
    """Diagonal-covariance Gaussian mixture fitted by EM; see the module docstring for the rules.

    A scikit-learn estimator: every parameter is stored unchanged under its own name (``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work) and checked in ``fit``, which returns the estimator.
    ``n_components``, ``max_iter``, ``tol``, ``reg_covar`` and ``random_state`` default to the config schema's
    ``gmm`` section (components, max_iter, tol, reg_covar, seed). ``random_state``: an int seeds the k-means++
    draws and the warm-start subsample (bitwise reproducible); None or a ``numpy.random.RandomState`` draws
    that seed from numpy, as scikit-learn does. ``dtype`` "float64" trades speed for exactness.

    Fitted attributes (numpy, C = ``n_components`` rows even when fewer were fitted): ``weights_`` (C,),
    ``means_`` (C, D), ``variances_`` (C, D), ``converged_``, ``n_iter_``, ``lower_bound_`` (mean
    log-likelihood at the last E-step, as sklearn), ``n_components_used_`` (components fitted before padding),
    ``n_iter_subsample_`` (warm-start iterations on the subsample, 0 without one), ``n_features_in_`` (D).
    """

    def __init__(
        self,
        n_components: int = SCHEMA_DEFAULTS["components"],
        *,
        max_iter: int = SCHEMA_DEFAULTS["max_iter"],
        tol: float = SCHEMA_DEFAULTS["tol"],
        reg_covar: float = SCHEMA_DEFAULTS["reg_covar"],
        random_state: int | np.random.RandomState | None = SCHEMA_DEFAULTS["seed"],
        device: str | torch.device | None = None,
        dtype: str = "float32",
        warm_start_subsample: int | Literal["auto"] | None = "auto",
    ) -> None:
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.warm_start_subsample = warm_start_subsample

    def _check_params(self) -> None:
        """ValueError naming the first parameter out of its range (called by ``fit``, as scikit-learn does)."""

        def is_int(value: object) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        def is_real(value: object) -> bool:
            return isinstance(value, numbers.Real) and not isinstance(value, bool)

        name = type(self).__name__
        if not (is_int(self.n_components) and self.n_components >= 1):
            raise ValueError(f"{name}: n_components must be an int >= 1, got {self.n_components!r}")
        if not (is_int(self.max_iter) and self.max_iter >= 1):
            raise ValueError(f"{name}: max_iter must be an int >= 1, got {self.max_iter!r}")
        if not (is_real(self.tol) and self.tol > 0):
            raise ValueError(f"{name}: tol must be a number > 0, got {self.tol!r}")
        if not (is_real(self.reg_covar) and self.reg_covar > 0):
            raise ValueError(f"{name}: reg_covar must be a number > 0 (the variance floor), got {self.reg_covar!r}")
        if not (
            self.random_state is None
            or is_int(self.random_state)
            or isinstance(self.random_state, np.random.RandomState)
        ):
            raise ValueError(
                f"{name}: random_state must be an int, None or a numpy.random.RandomState, got {self.random_state!r}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not (
            self.warm_start_subsample is None
            or self.warm_start_subsample == "auto"
            or (is_int(self.warm_start_subsample) and self.warm_start_subsample >= self.n_components)
        ):
            raise ValueError(
                f"{name}: warm_start_subsample must be 'auto', None or a number of rows >= n_components, "
                f"got {self.warm_start_subsample!r}"
            )

    def _torch_seed(self) -> int:
        """The seed of the CPU generator behind every random draw of a fit: ``random_state`` itself when an int."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def warm_start_rows(self, n_samples: int) -> int | None:
        """Rows of the seeded subsample EM first runs on, or None when EM runs on all ``n_samples`` only."""
        if self.warm_start_subsample is None:
            return None
        if self.warm_start_subsample == "auto":
            rows = max(WARM_START_ROWS_PER_COMPONENT * self.n_components, WARM_START_MIN_ROWS)
            return rows if n_samples >= WARM_START_MIN_RATIO * rows else None
        return self.warm_start_subsample if self.warm_start_subsample < n_samples else None

    def fit(self, X: ArrayLike, y: object = None) -> DiagonalGMM:
        """Fit the mixture to ``X`` (N, D), numpy or torch; ``y`` is ignored (scikit-learn's signature)."""
        self._check_params()
        device = resolve_device(self.device)
        samples, shift = as_samples(X, DTYPES[self.dtype], device)
        if samples.shape[0] == 0:
            raise ValueError("cannot fit a Gaussian mixture to 0 samples")
        n_features = int(samples.shape[1])
        if n_features == 0:
            raise ValueError(f"0 feature(s) (shape={tuple(samples.shape)}) while a minimum of 1 is required.")
        # Centring on the column means (exact for Gaussians) keeps float32's expansion of the quadratic form accurate.
        Z = centred_and_squared(samples, shift)
        del samples

        generator = torch.Generator().manual_seed(self._torch_seed())
        subsample_rows = self.warm_start_rows(Z.shape[0])
        n_iter_subsample = 0
        if subsample_rows is None:
            parameters = initial_parameters(Z, self.n_components, self.reg_covar, generator)
        else:
            rows = torch.randperm(Z.shape[0], generator=generator)[:subsample_rows].sort().values
            subsample = Z[rows.to(device)]
            parameters = initial_parameters(subsample, self.n_components, self.reg_covar, generator)
            parameters, _, n_iter_subsample, _ = expectation_maximisation(
                subsample, parameters, self.max_iter, self.tol, self.reg_covar
            )
            del subsample
        (weights, means, variances), lower_bound, n_iter, converged = expectation_maximisation(
            Z, parameters, self.max_iter, self.tol, self.reg_covar
        )

        alive = weights * Z.shape[0] >= DEAD_COMPONENT_SAMPLES
        weights = weights[alive] / weights[alive].sum()
        self.n_components_used_ = int(alive.sum())
        self.weights_, self.means_, self.variances_ = pad_components(
            weights.cpu().numpy(),
            (means[alive] + shift).cpu().numpy(),
            variances[alive].cpu().numpy(),
            self.n_components,
        )
        self.converged_, self.n_iter_, self.lower_bound_ = converged, n_iter, lower_bound
        self.n_iter_subsample_ = n_iter_subsample
        self.n_features_in_ = n_features
        if not converged:
            logger.warning("GMM did not converge in %d iterations (tol %g)", self.max_iter, self.tol)
        return self

    def _check_fitted(self, X: ArrayLike) -> None:
        """NotFittedError before ``fit``; ValueError when ``X`` has another number of features than the fit's."""
        check_is_fitted(self, "weights_")
        if X.ndim == 2 and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input"
            )

    def _score_samples_and_log_resp(self, X: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_fitted(X)
        return mixture_log_responsibilities(
            X, self.weights_, self.means_, self.variances_, dtype=self.dtype, device=self.device
        )

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-likelihood of each sample, (N,)."""
        return self._score_samples_and_log_resp(X)[0].cpu().numpy()

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log-likelihood per sample (the quantity ``GaussianMixture.score`` returns); ``y`` is ignored."""
        return float(self._score_samples_and_log_resp(X)[0].double().mean())

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        return torch.exp(self._score_samples_and_log_resp(X)[1]).cpu().numpy()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most likely component of each sample (padding copies never win over the fitted component)."""
        self._check_fitted(X)
        return predict_components(X, self.weights_, self.means_, self.variances_, dtype=self.dtype, device=self.device)

    def n_parameters(self) -> int:
        """Free parameters of the fitted (unpadded) mixture: means, variances and C-1 weights."""
        check_is_fitted(self, "weights_")
        return self.n_components_used_ * 2 * self.means_.shape[1] + self.n_components_used_ - 1

    def bic(self, X: ArrayLike) -> float:
        """Bayesian information criterion on ``X`` (lower is better), as ``GaussianMixture.bic``."""
        n_samples = len(X)
        return -2.0 * self.score(X) * n_samples + self.n_parameters() * math.log(n_samples)


def _fit_by_bic(X: ArrayLike, estimator: DiagonalGMM) -> tuple[DiagonalGMM, dict[int, float]]:
    """Clones of ``estimator`` with 1..min(its n_components, N) components fitted to ``X``: the lowest BIC's, and
    every BIC."""
    n_samples = len(X)
    if n_samples == 0:
        raise ValueError("cannot select the number of components for 0 samples")
    best: DiagonalGMM | None = None
    bics: dict[int, float] = {}
    for n_components in range(1, min(estimator.n_components, n_samples) + 1):
        model: DiagonalGMM = clone(estimator).set_params(n_components=n_components).fit(X)
        bics[n_components] = model.bic(X)
        # Strictly lower only: ties keep the smaller mixture.
        if best is None or bics[n_components] < bics[best.n_components]:
            best = model
    assert best is not None
    logger.info("BIC by number of components: %s -> %d", {c: round(b, 1) for c, b in bics.items()}, best.n_components)
    return best, bics


def select_components_by_bic(X: ArrayLike, max_components: int, **estimator_kwargs: Any) -> int:
    """The C in 1..min(max_components, N) whose fitted mixture has the lowest BIC (ties: the smaller C).

    ``estimator_kwargs``: the :class:`DiagonalGMM` parameters other than ``n_components``.
    """
    model, _ = _fit_by_bic(X, DiagonalGMM(max_components, **estimator_kwargs))
    return model.n_components


def fit_gmm_tokens(X: ArrayLike, config: Mapping[str, Any], *, device: str | torch.device | None = None) -> GMMResult:
    """Fit the configured mixture to ``X`` (N, D) and return ``config["components"]`` tokens.

    ``config`` is the validated ``gmm`` config section (components, max_iter, tol, reg_covar,
    select_by_bic, seed, max_samples). With ``select_by_bic`` the number of fitted components is chosen by BIC up
    to ``components`` and the tokens are padded back to ``components``. With ``max_samples`` (None: all rows)
    EM runs on at most that many rows drawn without replacement by ``seed``; the log-likelihood is still the mean
    over all rows. N = 0 gives ``present=False``.
    """
    n_components = int(config["components"])
    n_samples, dim = int(X.shape[0]), int(X.shape[1])
    if n_samples == 0:
        zeros = np.zeros((n_components, dim), dtype=np.float32)
        return GMMResult(
            weights=np.zeros(n_components, dtype=np.float32),
            means=zeros,
            variances=zeros.copy(),
            log_likelihood=None,
            n_iter=0,
            converged=False,
            n_components_used=0,
            n_samples=0,
            present=False,
            n_fit_samples=0,
        )
    estimator = DiagonalGMM(
        n_components,
        max_iter=int(config["max_iter"]),
        tol=float(config["tol"]),
        reg_covar=float(config["reg_covar"]),
        random_state=int(config["seed"]),
        device=device,
    )
    X_fit = _fit_rows(X, config["max_samples"], int(config["seed"]))
    if config["select_by_bic"]:
        model, _ = _fit_by_bic(X_fit, estimator)
    else:
        model = estimator.fit(X_fit)
    weights, means, variances = pad_components(model.weights_, model.means_, model.variances_, n_components)
    return GMMResult(
        weights=weights.astype(np.float32),
        means=means.astype(np.float32),
        variances=variances.astype(np.float32),
        log_likelihood=model.score(X),
        n_iter=model.n_iter_,
        converged=model.converged_,
        n_components_used=model.n_components_used_,
        n_samples=n_samples,
        present=True,
        n_fit_samples=len(X_fit),
    )


def _fit_rows(X: ArrayLike, max_samples: int | None, seed: int) -> ArrayLike:
    """``X``, or at most ``max_samples`` of its rows drawn without replacement by ``seed`` (kept in their order)."""
    if max_samples is None or len(X) <= max_samples:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_samples, replace=False))
    return X[torch.from_numpy(rows)] if isinstance(X, torch.Tensor) else X[rows]
