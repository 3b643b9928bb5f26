"""Diagonal-covariance Gaussian mixtures fitted by batched EM in PyTorch (CUDA when present).

The local tokens of a slide (its patch features) and of a report (its sentence embeddings) are the C
component means of such a mixture. ``DiagonalGMM`` feels like
``sklearn.mixture.GaussianMixture(covariance_type="diag")`` and its ``score`` is the same quantity, but
it is built for speed: samples live on the device once as ``[x, x²]`` so each E-step is one matrix
product, in float32 by default. On the CPU the M-step adds each row whose responsibilities are all
negligible but one (below ``eps / N``: less than a rounding unit of one sample) straight into its component
and uses a matrix product only for the soft rows, which is the same sum to float rounding.

Rules (the same for every caller):

- Initialisation: greedy k-means++ seeding (scikit-learn's variant, ``2 + log C`` candidates per step)
  drawn from a CPU generator seeded by ``seed``; every sample is then assigned to its nearest seed and the
  first M-step runs on those hard assignments. Nothing depends on folds or labels, and the same data with
  the same seed give a bitwise identical fit on the same device.
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

``fit_slide_gmm`` is the per-slide stage: feature store in, GMM store and QC picture out.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mosare.stores import open_store, write_store

logger = logging.getLogger(__name__)

LOG_2PI = math.log(2.0 * math.pi)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Components whose total responsibility ends below this many samples are treated as dead.
DEAD_COMPONENT_SAMPLES = 1e-3
# Above this fraction of soft rows the M-step's plain matrix product is cheaper than hard sums plus a correction.
SOFT_ROWS_FOR_DENSE_MOMENTS = 0.25
# "auto" warm start: EM first runs on max(this many rows per component, WARM_START_MIN_ROWS) rows, when the
# data have at least WARM_START_MIN_RATIO times as many.
WARM_START_ROWS_PER_COMPONENT = 50
WARM_START_MIN_ROWS = 2000
WARM_START_MIN_RATIO = 4
# Scoring and prediction work through the samples in chunks of this many rows.
SCORING_CHUNK_ROWS = 8192

ArrayLike = np.ndarray | torch.Tensor


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_samples(X: ArrayLike, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples as a (N, D) tensor on ``device``, and their column means (D,), checked to be finite.

    The column sums come from one matrix-vector product, in which any NaN or infinity propagates, so the
    elementwise check (about 25 times slower) only runs when a sum is not finite.
    """
    X = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X))
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (samples x features), got shape {tuple(X.shape)}")
    X = X.to(device=device, dtype=dtype)
    column_means = (torch.ones(1, X.shape[0], dtype=dtype, device=device) @ X).squeeze(0) / max(X.shape[0], 1)
    if not bool(torch.isfinite(column_means).all()):
        if not bool(torch.isfinite(X).all()):
            raise ValueError("samples contain NaN or infinite values; fix or drop those rows before fitting")
        column_means = X.mean(0, dtype=torch.float64).to(dtype)  # finite values whose sum overflowed
    return X, column_means


def _log_weighted_density(
    Z: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> torch.Tensor:
    """log(pi_c) + log N(x | mu_c, diag var_c) for every sample and component, shape (N, C).

    ``Z`` is ``[x, x²]`` (N, 2D): the quadratic form sum_d (x_d - mu_cd)² / var_cd expands into one
    matrix product with ``[-2 mu/var, 1/var]`` plus a per-component constant.
    """
    dim = means.shape[1]
    precisions = 1.0 / variances
    projection = torch.cat([-2.0 * means * precisions, precisions], dim=1)
    constant = log_weights - 0.5 * (dim * LOG_2PI + torch.log(variances).sum(1) + (means * means * precisions).sum(1))
    return torch.addmm(constant, Z, projection.T, alpha=-0.5)


def _normalise(weighted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp over components (N,) and the responsibilities (N, C), with one exp per entry.

    Written out because ``torch.logsumexp`` over a short last axis is several times slower on the CPU.
    """
    largest = weighted.max(dim=1, keepdim=True).values
    unnormalised = torch.exp(weighted - largest)
    totals = unnormalised.sum(1, keepdim=True)
    return (largest + torch.log(totals)).squeeze(1), unnormalised / totals


def _centred_and_squared(X: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``[x - shift, (x - shift)²]`` (N, 2D), written in place into one allocation."""
    dim = X.shape[1]
    Z = torch.empty((X.shape[0], 2 * dim), dtype=X.dtype, device=X.device)
    torch.sub(X, shift, out=Z[:, :dim])
    torch.mul(Z[:, :dim], Z[:, :dim], out=Z[:, dim:])
    return Z


def _weighted_moments(Z: torch.Tensor, responsibilities: torch.Tensor) -> torch.Tensor:
    """``responsibilities.T @ Z`` (C, 2D); on the CPU, rows with a single non-negligible responsibility are summed.

    A responsibility below ``eps / N`` adds less than one rounding unit of one sample to any component's
    sums, so it is skipped: such "hard" rows (their largest responsibility is then exactly 1) are added
    into their component by ``index_add_`` (N x 2D additions instead of N x 2D x C multiply-adds), and only
    the soft rows go through a matrix product, as the difference from their hard assignment. Mostly-soft
    data, and CUDA (whose ``index_add_`` is not deterministic), use the plain product.
    """
    n_samples, n_components = responsibilities.shape
    if Z.device.type != "cpu" or n_components == 1:
        return responsibilities.T @ Z
    negligible = torch.finfo(Z.dtype).eps / max(n_samples, 2 * n_components)
    soft = ((responsibilities > negligible).sum(1) > 1).nonzero().squeeze(1)
    if len(soft) > SOFT_ROWS_FOR_DENSE_MOMENTS * n_samples:
        return responsibilities.T @ Z
    labels = responsibilities.argmax(1)
    moments = torch.zeros((n_components, Z.shape[1]), dtype=Z.dtype, device=Z.device)
    moments.index_add_(0, labels, Z)
    if len(soft):
        excess = responsibilities[soft]
        excess[torch.arange(len(soft), device=Z.device), labels[soft]] -= 1.0
        moments.addmm_(excess.T, Z[soft])
    return moments


def _m_step(
    Z: torch.Tensor, responsibilities: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dim = Z.shape[1] // 2
    counts = responsibilities.sum(0) + 10 * torch.finfo(Z.dtype).eps
    moments = _weighted_moments(Z, responsibilities) / counts[:, None]
    means = moments[:, :dim]
    variances = (moments[:, dim:] - means * means).clamp_min(0.0) + reg_covar
    return counts / counts.sum(), means, variances


def _expectation_maximisation(
    Z: torch.Tensor,
    parameters: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    max_iter: int,
    tol: float,
    reg_covar: float,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], float, int, bool]:
    """EM from ``parameters`` until the mean log-likelihood changes by less than ``tol`` or ``max_iter`` steps.

    Returns the parameters after the last M-step, the mean log-likelihood at the last E-step, the number
    of iterations and whether it converged.
    """
    weights, means, variances = parameters
    lower_bound, converged, n_iter = -math.inf, False, 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        log_norm, responsibilities = _normalise(_log_weighted_density(Z, torch.log(weights), means, variances))
        lower_bound = float(log_norm.sum(dtype=torch.float64)) / len(log_norm)
        weights, means, variances = _m_step(Z, responsibilities, reg_covar)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return (weights, means, variances), lower_bound, n_iter, converged


def _initial_parameters(
    Z: torch.Tensor, n_components: int, reg_covar: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k-means++ seeds, every sample assigned to its nearest seed, and an M-step on those hard assignments."""
    dim = Z.shape[1] // 2
    seeds = _kmeans_plusplus(Z[:, :dim], n_components, generator).to(Z.device)
    seed_points = Z[seeds, :dim]
    nearest = ((seed_points * seed_points).sum(1)[None, :] - 2.0 * (Z[:, :dim] @ seed_points.T)).argmin(1)
    hard = torch.nn.functional.one_hot(nearest, len(seeds)).to(Z.dtype)
    return _m_step(Z, hard, reg_covar)


def _kmeans_plusplus(X: torch.Tensor, n_clusters: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of up to ``n_clusters`` distinct seeds (fewer when fewer distinct samples exist)."""
    n_samples, dim = X.shape
    squared_norms = (X * X).sum(1)
    # ||a||² + ||b||² - 2a·b of identical rows is rounding noise of this relative size, not a distance.
    rounding = 8.0 * math.sqrt(dim) * torch.finfo(X.dtype).eps

    def squared_distances(indices: torch.Tensor) -> torch.Tensor:
        scale = squared_norms[indices][:, None] + squared_norms[None, :]
        distances = scale - 2.0 * (X[indices] @ X.T)
        return torch.where(distances > rounding * scale, distances, torch.zeros_like(distances))

    first = torch.randint(n_samples, (1,), generator=generator)
    seeds = [int(first)]
    closest = squared_distances(first.to(X.device))[0]
    n_trials = 2 + int(math.log(n_clusters))
    for _ in range(1, n_clusters):
        cumulative = closest.cpu().double().cumsum(0)
        total = float(cumulative[-1])
        if total <= 0.0:
            break
        draws = torch.rand(n_trials, generator=generator, dtype=torch.float64) * total
        candidates = torch.searchsorted(cumulative, draws, right=True).clamp_max(n_samples - 1)
        candidate_closest = torch.minimum(closest[None, :], squared_distances(candidates.to(X.device)))
        best = int(candidate_closest.sum(1).argmin())
        seeds.append(int(candidates[best]))
        closest = candidate_closest[best]
    return torch.tensor(seeds, dtype=torch.long)


def pad_components(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad a mixture to ``n_components`` by repeatedly halving its heaviest component into two copies.

    The density is unchanged and weights still sum to 1; appended copies follow the fitted components.
    """
    weights, means, variances = list(weights), list(means), list(variances)
    while len(weights) < n_components:
        heaviest = int(np.argmax(weights))
        weights[heaviest] = weights[heaviest] / 2
        weights.append(weights[heaviest])
        means.append(means[heaviest])
        variances.append(variances[heaviest])
    return np.asarray(weights), np.stack(means), np.stack(variances)


def mixture_log_responsibilities(
    X: ArrayLike,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    dtype: str = "float32",
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample log-likelihood (N,) and log-responsibilities (N, C) of ``X`` under a diagonal mixture."""
    torch_dtype, torch_device = DTYPES[dtype], resolve_device(device)
    X, _ = _as_samples(X, torch_dtype, torch_device)
    weights_t, means_t, variances_t = (
        torch.as_tensor(np.asarray(a), dtype=torch_dtype, device=torch_device) for a in (weights, means, variances)
    )
    if means_t.shape[1] != X.shape[1]:
        raise ValueError(f"samples have {X.shape[1]} features but the mixture has {means_t.shape[1]}")
    # Log-densities are translation invariant; centring on the mixture mean keeps float32 products accurate.
    shift = weights_t @ means_t
    log_weights, centred_means = torch.log(weights_t), means_t - shift
    # Row chunks: scoring a large slide holds one chunk's [x, x²], not the whole slide's (2x its features).
    weighted = torch.cat([
        _log_weighted_density(_centred_and_squared(chunk, shift), log_weights, centred_means, variances_t)
        for chunk in X.split(SCORING_CHUNK_ROWS)
    ])
    log_likelihood = torch.logsumexp(weighted, dim=1)
    return log_likelihood, weighted - log_likelihood[:, None]


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
    X: ArrayLike,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    dtype: str = "float32",
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Most likely component of each sample; padding copies never win over the component they copy.

    Identical components are merged (weights summed) before the argmax, so rounding cannot split a
    component's samples between it and its copies; each sample gets the first of a set of copies.
    """
    weights = np.asarray(weights)
    first, group = _identical_components(means, variances)
    merged_weights = np.bincount(group, weights=weights, minlength=len(first))
    _, log_resp = mixture_log_responsibilities(
        X, merged_weights, np.asarray(means)[first], np.asarray(variances)[first], dtype=dtype, device=device
    )
    return first[log_resp.argmax(1).cpu().numpy()]


class DiagonalGMM:
    """Diagonal-covariance Gaussian mixture fitted by EM; see the module docstring for the rules.

    Fitted attributes (numpy, C = ``n_components`` rows even when fewer were fitted): ``weights_`` (C,),
    ``means_`` (C, D), ``variances_`` (C, D), ``converged_``, ``n_iter_``, ``lower_bound_`` (mean
    log-likelihood at the last E-step, as sklearn), ``n_components_used_`` (components fitted before padding),
    ``n_iter_subsample_`` (warm-start iterations on the subsample, 0 without one).
    ``dtype`` "float64" trades speed for exactness.
    """

    def __init__(
        self,
        n_components: int = 16,
        max_iter: int = 100,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: str = "float32",
        warm_start_subsample: int | Literal["auto"] | None = "auto",
    ) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if not (
            warm_start_subsample in (None, "auto")
            or (isinstance(warm_start_subsample, int) and warm_start_subsample >= n_components)
        ):
            raise ValueError(
                f"warm_start_subsample must be 'auto', None or a number of rows >= n_components, "
                f"got {warm_start_subsample!r}"
            )
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.warm_start_subsample = warm_start_subsample

    def warm_start_rows(self, n_samples: int) -> int | None:
        """Rows of the seeded subsample EM first runs on, or None when EM runs on all ``n_samples`` only."""
        if self.warm_start_subsample is None:
            return None
        if self.warm_start_subsample == "auto":
            rows = max(WARM_START_ROWS_PER_COMPONENT * self.n_components, WARM_START_MIN_ROWS)
            return rows if n_samples >= WARM_START_MIN_RATIO * rows else None
        return self.warm_start_subsample if self.warm_start_subsample < n_samples else None

    def fit(self, X: ArrayLike) -> DiagonalGMM:
        device = resolve_device(self.device)
        X, shift = _as_samples(X, DTYPES[self.dtype], device)
        if X.shape[0] == 0:
            raise ValueError("cannot fit a Gaussian mixture to 0 samples")
        # Centring on the column means (exact for Gaussians) keeps float32's expansion of the quadratic form accurate.
        Z = _centred_and_squared(X, shift)
        del X

        generator = torch.Generator().manual_seed(self.seed)
        subsample_rows = self.warm_start_rows(Z.shape[0])
        self.n_iter_subsample_ = 0
        if subsample_rows is None:
            parameters = _initial_parameters(Z, self.n_components, self.reg_covar, generator)
        else:
            rows = torch.randperm(Z.shape[0], generator=generator)[:subsample_rows].sort().values
            subsample = Z[rows.to(device)]
            parameters = _initial_parameters(subsample, self.n_components, self.reg_covar, generator)
            parameters, _, self.n_iter_subsample_, _ = _expectation_maximisation(
                subsample, parameters, self.max_iter, self.tol, self.reg_covar
            )
            del subsample
        (weights, means, variances), lower_bound, n_iter, converged = _expectation_maximisation(
            Z, parameters, self.max_iter, self.tol, self.reg_covar
        )

        alive = weights * Z.shape[0] >= DEAD_COMPONENT_SAMPLES
        weights = weights[alive] / weights[alive].sum()
        self.n_components_used_ = int(alive.sum())
        self.weights_, self.means_, self.variances_ = pad_components(
            weights.cpu().numpy(), (means[alive] + shift).cpu().numpy(), variances[alive].cpu().numpy(),
            self.n_components,
        )
        self.converged_, self.n_iter_, self.lower_bound_ = converged, n_iter, lower_bound
        if not converged:
            logger.warning("GMM did not converge in %d iterations (tol %g)", self.max_iter, self.tol)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise RuntimeError("this DiagonalGMM is not fitted yet; call fit(X) first")

    def _score_samples_and_log_resp(self, X: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_fitted()
        return mixture_log_responsibilities(
            X, self.weights_, self.means_, self.variances_, dtype=self.dtype, device=self.device
        )

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-likelihood of each sample, (N,)."""
        return self._score_samples_and_log_resp(X)[0].cpu().numpy()

    def score(self, X: ArrayLike) -> float:
        """Mean log-likelihood per sample (the quantity ``GaussianMixture.score`` returns)."""
        return float(self._score_samples_and_log_resp(X)[0].double().mean())

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        return torch.exp(self._score_samples_and_log_resp(X)[1]).cpu().numpy()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most likely component of each sample (padding copies never win over the fitted component)."""
        self._check_fitted()
        return predict_components(
            X, self.weights_, self.means_, self.variances_, dtype=self.dtype, device=self.device
        )

    def n_parameters(self) -> int:
        """Free parameters of the fitted (unpadded) mixture: means, variances and C-1 weights."""
        self._check_fitted()
        return self.n_components_used_ * 2 * self.means_.shape[1] + self.n_components_used_ - 1

    def bic(self, X: ArrayLike) -> float:
        """Bayesian information criterion on ``X`` (lower is better), as ``GaussianMixture.bic``."""
        n_samples = len(X)
        return -2.0 * self.score(X) * n_samples + self.n_parameters() * math.log(n_samples)


def _fit_by_bic(
    X: ArrayLike, max_components: int, **estimator_kwargs: Any
) -> tuple[DiagonalGMM, dict[int, float]]:
    n_samples = len(X)
    if n_samples == 0:
        raise ValueError("cannot select the number of components for 0 samples")
    best: DiagonalGMM | None = None
    bics: dict[int, float] = {}
    for n_components in range(1, min(max_components, n_samples) + 1):
        model = DiagonalGMM(n_components, **estimator_kwargs).fit(X)
        bics[n_components] = model.bic(X)
        # Strictly lower only: ties keep the smaller mixture.
        if best is None or bics[n_components] < bics[best.n_components]:
            best = model
    assert best is not None
    logger.info("BIC by number of components: %s -> %d", {c: round(b, 1) for c, b in bics.items()}, best.n_components)
    return best, bics


def select_components_by_bic(
    X: ArrayLike,
    max_components: int,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: str = "float32",
) -> int:
    """The C in 1..min(max_components, N) whose fitted mixture has the lowest BIC (ties: the smaller C)."""
    model, _ = _fit_by_bic(
        X, max_components, max_iter=max_iter, tol=tol, reg_covar=reg_covar, seed=seed, device=device, dtype=dtype
    )
    return model.n_components


@dataclasses.dataclass(frozen=True)
class GMMResult:
    """A fixed-size token set: always ``n_components`` rows, float32.

    ``present`` is False only for an empty input (all-zero arrays, ``log_likelihood`` None);
    ``n_components_used`` is how many components were fitted before padding; ``n_fit_samples`` how many of the
    ``n_samples`` rows EM ran on (fewer only with ``max_samples``); ``log_likelihood`` is over all ``n_samples``.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihood: float | None
    n_iter: int
    converged: bool
    n_components_used: int
    n_samples: int
    present: bool
    n_fit_samples: int

    def predict(self, X: ArrayLike, device: str | torch.device | None = None) -> np.ndarray:
        """Most likely component of each row of ``X``."""
        if not self.present:
            raise ValueError("an empty token set (present=False) has no components to assign samples to")
        return predict_components(X, self.weights, self.means, self.variances, device=device)


def fit_gmm_tokens(
    X: ArrayLike, config: Mapping[str, Any], *, device: str | torch.device | None = None
) -> GMMResult:
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
            weights=np.zeros(n_components, dtype=np.float32), means=zeros, variances=zeros.copy(),
            log_likelihood=None, n_iter=0, converged=False, n_components_used=0, n_samples=0, present=False,
            n_fit_samples=0,
        )
    estimator_kwargs = dict(
        max_iter=int(config["max_iter"]), tol=float(config["tol"]), reg_covar=float(config["reg_covar"]),
        seed=int(config["seed"]), device=device,
    )
    X_fit = _fit_rows(X, config["max_samples"], int(config["seed"]))
    if config["select_by_bic"]:
        model, _ = _fit_by_bic(X_fit, n_components, **estimator_kwargs)
    else:
        model = DiagonalGMM(n_components, **estimator_kwargs).fit(X_fit)
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


QC_THUMBNAIL_PX = 1600


def fit_slide_gmm(
    feature_store: str | Path,
    patch_store: str | Path,
    slide_path: str | Path,
    gmm_store: str | Path,
    qc_png: str | Path,
    gmm_config: Mapping[str, Any],
    *,
    slide_id: str,
    device: str | torch.device | None = None,
) -> GMMResult:
    """Fit one slide's mixture over its patch features; write the GMM store and the component-map QC PNG.

    A slide without patches gets a store with ``present=False`` and all-zero arrays (and a QC picture
    saying so) instead of an error, so one empty slide never stops its cohort.
    """
    # Imported here so text encoding, which only needs the estimator, does not load OpenSlide and matplotlib.
    from mosare.plots.gmm import plot_component_map
    from mosare.slides import open_slide

    features_group = open_store(feature_store)
    features = np.asarray(features_group["features"][...], dtype=np.float32)
    coords = np.asarray(features_group["coords"][...])
    if features.ndim != 2 or coords.shape != (len(features), 2):
        raise ValueError(
            f"{feature_store} (slide {slide_id}): features {features.shape} and coords {coords.shape} do not align "
            "as (N, D) and (N, 2); delete the store and rerun the embedding for this slide"
        )
    try:
        result = fit_gmm_tokens(features, gmm_config, device=device)
    except ValueError as error:
        raise ValueError(
            f"{feature_store} (slide {slide_id}): {error}; delete the store and rerun the embedding for this slide"
        ) from error
    write_store(
        gmm_store,
        {"weights": result.weights, "means": result.means, "variances": result.variances},
        {
            "slide_id": slide_id,
            "encoder": features_group.attrs.get("encoder"),
            "log_likelihood": result.log_likelihood,
            "n_iter": result.n_iter,
            "converged": result.converged,
            "n_components_used": result.n_components_used,
            "n_samples": result.n_samples,
            "n_fit_samples": result.n_fit_samples,
            "seed": int(gmm_config["seed"]),
            "present": result.present,
        },
    )
    if result.present:
        subsample = "" if result.n_fit_samples == result.n_samples else f" (fitted on {result.n_fit_samples})"
        logger.info(
            "slide %s: %d patches%s, %d of %d components fitted, mean log-likelihood %.2f, %d EM iterations%s",
            slide_id, result.n_samples, subsample, result.n_components_used, len(result.weights),
            result.log_likelihood, result.n_iter, "" if result.converged else " (not converged)",
        )
        labels = result.predict(features, device=device)
        title = (
            f"{slide_id}: {result.n_samples} patches{subsample}, {result.n_components_used} of "
            f"{len(result.weights)} components fitted{' (BIC)' if gmm_config['select_by_bic'] else ''}; "
            f"mean log-likelihood {result.log_likelihood:.1f} after {result.n_iter} EM iterations"
            f"{'' if result.converged else ' (not converged)'}"
        )
    else:
        logger.warning("slide %s has no patches: stored an all-zero token set with present=False", slide_id)
        labels = np.zeros(0, dtype=np.int64)
        title = f"{slide_id}: no patches, no mixture fitted (tokens stored as zeros, present=False)"

    patch_attrs = open_store(patch_store).attrs
    with open_slide(slide_path, slide_id=slide_id, mpp_override=patch_attrs["mpp_level0"]) as slide:
        thumbnail = slide.thumbnail(QC_THUMBNAIL_PX)
        dimensions = slide.dimensions
    plot_component_map(
        thumbnail, dimensions, coords, int(patch_attrs["footprint_px"]), labels, result.weights, qc_png,
        title=title, copy_of=padding_sources(result.means, result.variances) if result.present else None,
    )
    return result
