"""Expectation-maximisation kernels of the diagonal Gaussian mixture (``mosare.features.gmm``), in PyTorch.

Samples live on the device once as ``[x, x²]`` so each E-step is one matrix product, in float32 by default. On
the CPU the M-step adds each row whose responsibilities are all negligible but one (below ``eps / N``: less than
a rounding unit of one sample) straight into its component and uses a matrix product only for the soft rows,
which is the same sum to float rounding. The rules these kernels follow are in ``mosare.features.gmm``'s docstring.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mosare.core.devices import resolve_device

LOG_2PI = math.log(2.0 * math.pi)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Above this fraction of soft rows the M-step's plain matrix product is cheaper than hard sums plus a correction.
SOFT_ROWS_FOR_DENSE_MOMENTS = 0.25
# Scoring and prediction work through the samples in chunks of this many rows.
SCORING_CHUNK_ROWS = 8192

ArrayLike = np.ndarray | torch.Tensor


def as_samples(X: ArrayLike, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples as a (N, D) tensor on ``device``, and their column means (D,), checked to be finite.

    The column sums come from one matrix-vector product, in which any NaN or infinity propagates, so the
    elementwise check (about 25 times slower) only runs when a sum is not finite.
    """
    X = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X))
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (samples x features), got shape {tuple(X.shape)}")
    if X.is_complex():
        raise ValueError("Complex data not supported: a Gaussian mixture needs real-valued features")
    X = X.to(device=device, dtype=dtype)
    column_means = (torch.ones(1, X.shape[0], dtype=dtype, device=device) @ X).squeeze(0) / max(X.shape[0], 1)
    if not bool(torch.isfinite(column_means).all()):
        if not bool(torch.isfinite(X).all()):
            raise ValueError("samples contain NaN or infinite values; fix or drop those rows before fitting")
        column_means = X.mean(0, dtype=torch.float64).to(dtype)  # finite values whose sum overflowed
    return X, column_means


def log_weighted_density(
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


def normalise(weighted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp over components (N,) and the responsibilities (N, C), with one exp per entry.

    Written out because ``torch.logsumexp`` over a short last axis is several times slower on the CPU.
    """
    largest = weighted.max(dim=1, keepdim=True).values
    unnormalised = torch.exp(weighted - largest)
    totals = unnormalised.sum(1, keepdim=True)
    return (largest + torch.log(totals)).squeeze(1), unnormalised / totals


def centred_and_squared(X: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``[x - shift, (x - shift)²]`` (N, 2D), written in place into one allocation."""
    dim = X.shape[1]
    Z = torch.empty((X.shape[0], 2 * dim), dtype=X.dtype, device=X.device)
    torch.sub(X, shift, out=Z[:, :dim])
    torch.mul(Z[:, :dim], Z[:, :dim], out=Z[:, dim:])
    return Z


def weighted_moments(Z: torch.Tensor, responsibilities: torch.Tensor) -> torch.Tensor:
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


def m_step(
    Z: torch.Tensor, responsibilities: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dim = Z.shape[1] // 2
    counts = responsibilities.sum(0) + 10 * torch.finfo(Z.dtype).eps
    moments = weighted_moments(Z, responsibilities) / counts[:, None]
    means = moments[:, :dim]
    variances = (moments[:, dim:] - means * means).clamp_min(0.0) + reg_covar
    return counts / counts.sum(), means, variances


def expectation_maximisation(
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
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (the count of iterations run is returned)
        previous = lower_bound
        log_norm, responsibilities = normalise(log_weighted_density(Z, torch.log(weights), means, variances))
        lower_bound = float(log_norm.sum(dtype=torch.float64)) / len(log_norm)
        weights, means, variances = m_step(Z, responsibilities, reg_covar)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return (weights, means, variances), lower_bound, n_iter, converged


def initial_parameters(
    Z: torch.Tensor, n_components: int, reg_covar: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k-means++ seeds, every sample assigned to its nearest seed, and an M-step on those hard assignments."""
    dim = Z.shape[1] // 2
    seeds = kmeans_plusplus(Z[:, :dim], n_components, generator).to(Z.device)
    seed_points = Z[seeds, :dim]
    nearest = ((seed_points * seed_points).sum(1)[None, :] - 2.0 * (Z[:, :dim] @ seed_points.T)).argmin(1)
    hard = torch.nn.functional.one_hot(nearest, len(seeds)).to(Z.dtype)
    return m_step(Z, hard, reg_covar)


def kmeans_plusplus(X: torch.Tensor, n_clusters: int, generator: torch.Generator) -> torch.Tensor:
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
    X, _ = as_samples(X, torch_dtype, torch_device)
    weights_t, means_t, variances_t = (
        torch.as_tensor(np.asarray(a), dtype=torch_dtype, device=torch_device) for a in (weights, means, variances)
    )
    if means_t.shape[1] != X.shape[1]:
        raise ValueError(f"samples have {X.shape[1]} features but the mixture has {means_t.shape[1]}")
    # Log-densities are translation invariant; centring on the mixture mean keeps float32 products accurate.
    shift = weights_t @ means_t
    log_weights, centred_means = torch.log(weights_t), means_t - shift
    # Row chunks: scoring a large slide holds one chunk's [x, x²], not the whole slide's (2x its features).
    weighted = torch.cat(
        [
            log_weighted_density(centred_and_squared(chunk, shift), log_weights, centred_means, variances_t)
            for chunk in X.split(SCORING_CHUNK_ROWS)
        ]
    )
    log_likelihood = torch.logsumexp(weighted, dim=1)
    return log_likelihood, weighted - log_likelihood[:, None]
