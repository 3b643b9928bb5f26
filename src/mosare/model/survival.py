"""Survival (time-to-event) heads and losses: discrete-time hazards and Cox partial likelihood.

Discrete-time hazard head, the standard of MCAT, SurvPath and PORPOISE (Zadeh & Schmid 2020, "Bias in
cross-entropy-based training of deep survival networks"):

- Time is cut into K bins ``[e_0 = 0, e_1), [e_1, e_2), ..., [e_{K-1}, +inf)`` at quantiles of the event times of
  the training part only (`time_bin_edges`); a patient's bin is the one its time falls in (`discretise`).
- The head gives K logits, the hazards ``h_k = sigmoid(logit_k) = P(Y = k | Y >= k)``, and the survival
  ``S(k) = P(Y > k) = prod_{j <= k} (1 - h_j)`` (`survival_curve`).
- Loss (`nll_survival_loss`): an event in bin y gives ``-log S(y-1) - log h_y`` (``S(-1) = 1``); a patient censored
  in bin y is known to be alive through bin y and gives ``-log S(y)``. MCAT's ``alpha`` weights the two:
  ``(1 - alpha) * (censored + uncensored) + alpha * uncensored``, averaged over the batch.
- Risk (`risk_score`): ``-sum_k S(k)``, MCAT's; higher is worse.

Cox head (`cox_partial_likelihood_loss`): the negative log partial likelihood with Breslow's handling of ties,
averaged over the events.

MoSARe's class-bound losses, for a survival cohort: the per-modality heads become hazard heads
(`present_nll_survival_loss`, same weighting as the per-modality cross-entropy) and multi-prototype contrast uses
`mcl_pseudo_classes`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

SurvivalKind = Literal["hazard", "cox"]

# MCAT's and PORPOISE's command-line default (`--alpha_surv 0.0`): the plain likelihood, which Zadeh & Schmid show
# is the consistent one. SurvPath's published commands use 0.5.
DEFAULT_ALPHA = 0.0


def _times_events(times: npt.ArrayLike, events: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Checked float times (finite, >= 0) and boolean events (0 or 1), as 1-d arrays of one length."""
    times_array = np.asarray(times, dtype=np.float64).reshape(-1)
    events_array = np.asarray(events).reshape(-1)
    if len(times_array) != len(events_array):
        raise ValueError(f"{len(times_array)} times but {len(events_array)} events")
    if not np.all(np.isfinite(times_array)) or np.any(times_array < 0):
        raise ValueError("times must be finite and >= 0")
    if not np.all(np.isin(events_array, (0, 1))):
        raise ValueError("events must be 0 (censored) or 1 (event observed)")
    return times_array, events_array.astype(bool)


def time_bin_edges(train_times: npt.ArrayLike, train_events: npt.ArrayLike, n_bins: int) -> np.ndarray:
    """Edges ``[0, e_1, ..., e_{K-1}, inf]`` of K <= n_bins time bins, cut at quantiles of the training event times.

    Pass the training part of a fold only: censored times never move the edges, and the test patients must not.
    The interior cuts are the 1/n, ..., (n-1)/n quantiles of the event times with linear interpolation (what MCAT's
    ``pd.qcut`` computes); the first edge is 0 and the last +inf, so every time >= 0 has a bin. Bins are left-closed,
    ``[e_k, e_{k+1})``, as MCAT's ``pd.cut(..., right=False)``.

    With ties or few events the quantiles can repeat, or a bin can hold no training event: duplicate cuts are
    dropped, and so is each cut whose bin would hold no training event (it merges into the bin before it). Every
    bin then holds at least one training event, so with fewer distinct event times than `n_bins` there are fewer
    bins (at most one per distinct event time; one event time gives the single bin ``[0, inf)``). With distinct
    event times and at least `n_bins` events the cuts are exactly MCAT's. Size the head from the result
    (``len(edges) - 1``), never from `n_bins`. A training part without any event has no survival to learn: an error.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    times, events = _times_events(train_times, train_events)
    event_times = times[events]
    if len(event_times) == 0:
        raise ValueError("the training part has no event: time bins are cut at event times")
    cuts = np.unique(np.quantile(event_times, np.arange(1, n_bins) / n_bins))
    cuts = cuts[cuts > event_times.min()]  # bin 0 = [0, first cut) must hold an event
    upper = np.append(cuts[1:], np.inf)
    holds_event = ((event_times[None, :] >= cuts[:, None]) & (event_times[None, :] < upper[:, None])).any(axis=1)
    return np.concatenate([[0.0], cuts[holds_event], [np.inf]])


def _check_edges(edges: np.ndarray) -> None:
    if edges.ndim != 1 or len(edges) < 2 or edges[0] != 0 or edges[-1] != np.inf or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must increase from 0 to inf (from time_bin_edges), got {edges}")


def discretise(times: npt.ArrayLike, edges: npt.ArrayLike) -> np.ndarray:
    """Bin index (int64) of each time: ``k`` with ``edges[k] <= t < edges[k + 1]``."""
    edges_array = np.asarray(edges, dtype=np.float64)
    _check_edges(edges_array)
    times_array = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times_array)) or np.any(times_array < 0):
        raise ValueError("times must be finite and >= 0")
    return np.searchsorted(edges_array, times_array, side="right").astype(np.int64) - 1


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """float64 stays float64; anything else (half, bfloat16 under autocast) becomes float32."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def log_survival(hazard_logits: torch.Tensor) -> torch.Tensor:
    """(..., K) hazard logits -> log S(k) = sum_{j <= k} log(1 - h_j), computed stably as cumulative log-sigmoids."""
    return torch.cumsum(F.logsigmoid(-_full(hazard_logits)), dim=-1)


def survival_curve(hazard_logits: torch.Tensor) -> torch.Tensor:
    """(B, K) hazard logits -> S(k) = prod_{j <= k} (1 - h_j), the probability of surviving bin k: non-increasing
    in k, in [0, 1]."""
    return torch.exp(log_survival(hazard_logits))


def risk_score(hazard_logits: torch.Tensor) -> torch.Tensor:
    """(B, K) -> (B,) MCAT's risk, -sum_k S(k): higher means earlier events expected."""
    return -survival_curve(hazard_logits).sum(dim=-1)


def survival_at(hazard_logits: torch.Tensor, edges: npt.ArrayLike, horizons: npt.ArrayLike) -> torch.Tensor:
    """(B, K) hazard logits -> (B, H) survival probabilities at the horizons (in the times' unit).

    A right-continuous step function over the bin edges: S(t) is the product of (1 - h_j) over the bins that end at
    or before t, so it is 1 before e_1, S(k - 1) on ``[e_k, e_{k+1})``, exact at every edge and constant inside a bin
    (no interpolation within a bin).
    """
    edges_array = np.asarray(edges, dtype=np.float64)
    if hazard_logits.shape[-1] != len(edges_array) - 1:
        raise ValueError(f"{hazard_logits.shape[-1]} hazard logits for {len(edges_array) - 1} bins")
    columns = torch.as_tensor(discretise(horizons, edges_array), device=hazard_logits.device)
    log_s = log_survival(hazard_logits)
    padded = torch.cat([log_s.new_zeros(*log_s.shape[:-1], 1), log_s], dim=-1)  # padded[k] = log S(k - 1)
    return torch.exp(padded[..., columns])


def nll_survival_loss(
    hazard_logits: torch.Tensor, bins: torch.Tensor, events: torch.Tensor, alpha: float = DEFAULT_ALPHA
) -> torch.Tensor:
    """Negative log-likelihood of the discrete-time hazard model, averaged over the batch (MCAT's ``NLLSurvLoss``).

    hazard_logits (B, K); bins (B,) the bin of each time (`discretise`); events (B,) 1 = event, 0 = censored.
    Per patient: an event in bin y gives ``-log S(y-1) - log h_y``; a censored patient, alive through its bin,
    gives ``-log S(y)``. The loss is ``(1 - alpha) * (censored + uncensored) + alpha * uncensored``, i.e. the
    censored term weighted by ``1 - alpha``. Logs are taken as log-sigmoids of the logits, so no clamp is needed
    (MCAT clamps probabilities at 1e-7). An empty batch gives 0.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if hazard_logits.shape[0] == 0:
        return hazard_logits.sum() * 0.0
    logits = _full(hazard_logits)
    bins = bins.long().reshape(-1, 1)
    if bins.min() < 0 or bins.max() >= logits.shape[1]:
        raise ValueError(f"bins must lie in [0, {logits.shape[1]})")
    observed = events.reshape(-1).to(logits.dtype)
    log_s = log_survival(logits)
    log_s_before = torch.cat([log_s.new_zeros(len(log_s), 1), log_s], dim=1).gather(1, bins).squeeze(1)
    log_hazard = F.logsigmoid(logits).gather(1, bins).squeeze(1)
    log_s_through = log_s.gather(1, bins).squeeze(1)
    uncensored = -observed * (log_s_before + log_hazard)
    censored = -(1.0 - observed) * log_s_through
    return (uncensored + (1.0 - alpha) * censored).mean()


def present_nll_survival_loss(
    hazard_logits: torch.Tensor,
    bins: torch.Tensor,
    events: torch.Tensor,
    present: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
) -> torch.Tensor:
    """`nll_survival_loss` of per-modality hazard logits (B, M, K) over the present (patient, modality) pairs only:
    the survival counterpart of `mosare.model.losses.present_cross_entropy`."""
    present = present.bool()
    if not present.any():
        return hazard_logits.sum() * 0.0
    return nll_survival_loss(
        hazard_logits[present],
        bins.reshape(-1, 1).expand(present.shape)[present],
        events.reshape(-1, 1).expand(present.shape)[present],
        alpha,
    )


def cox_partial_likelihood_loss(risk: torch.Tensor, times: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
    """Negative Cox log partial likelihood with Breslow's ties, averaged over the events of the batch.

    ``-(1 / D) * sum_{i: event} [r_i - log sum_{j: t_j >= t_i} exp(r_j)]``: every event's risk set holds everyone
    whose time is at least its own, tied events and tied censored patients included (Breslow; scikit-survival's
    ``CoxPHSurvivalAnalysis(ties="breslow")`` computes the same sum, divided by all patients instead of the D
    events). A batch without an event has no comparison: its loss is 0, with zero (not NaN) gradients.
    O(B log B): one sort and a cumulative log-sum-exp.
    """
    risk = _full(risk).reshape(-1)
    times = times.reshape(-1)  # compared as given: a cast to float32 could merge close times into false ties
    if not times.is_floating_point():
        times = times.to(risk.dtype)
    observed = events.reshape(-1).bool()
    if len(risk) != len(times) or len(risk) != len(observed):
        raise ValueError(f"{len(risk)} risks, {len(times)} times and {len(observed)} events")
    n_events = int(observed.sum())
    if n_events == 0:
        return risk.sum() * 0.0
    order = torch.argsort(times, descending=True, stable=True)
    sorted_risk, sorted_times = risk[order], times[order]
    cumulative = torch.logcumsumexp(sorted_risk, dim=0)  # over the patients with times >= this one, ties partly
    # the risk set of time t is everyone with time >= t: the cumulative sum up to the last patient tied with t
    at_risk = len(times) - torch.searchsorted(sorted_times.flip(0).contiguous(), sorted_times, side="left")
    log_denominator = cumulative[at_risk - 1]
    terms = (sorted_risk - log_denominator)[observed[order]]
    return -terms.sum() / n_events


def present_cox_loss(
    risk: torch.Tensor, times: torch.Tensor, events: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """Per-modality Cox risks (B, M): each modality's `cox_partial_likelihood_loss` over the patients that have it
    (risk sets never mix modalities), averaged over the modalities whose patients hold an event; 0 if none does."""
    present = present.bool()
    terms = [
        cox_partial_likelihood_loss(risk[present[:, m], m], times[present[:, m]], events[present[:, m]])
        for m in range(risk.shape[1])
        if bool(events[present[:, m]].bool().any())
    ]
    if not terms:
        return risk.sum() * 0.0
    return torch.stack(terms).mean()


def mcl_pseudo_classes(bins: torch.Tensor, events: torch.Tensor, n_bins: int) -> torch.Tensor:
    """What stands in for classes in multi-prototype contrast (MCL) on a survival cohort: a patient's class is the
    time bin its event falls in, where that is known, and -1 (left out of MCL's loss and queues) where it is not.

    - An event in bin k: class k.
    - Censored in the last bin ``[e_{K-1}, inf)``: class K - 1. The event, if it ever comes, is after the censoring
      time, so in that same bin: the class is known exactly.
    - Censored in an earlier bin k: -1. The patient is alive through bin k, so the event bin is one of k, ..., K-1:
      unknown. Putting the patient in bin k (or in any single bin) would put a long survivor among the short ones.

    So the classes are exact, never guessed. The retained patients lean toward early events (a long survivor is
    kept only when followed past e_{K-1}); MCL shapes the fused features and is not read as a prediction, so this
    only reweights its classes. With one bin (K = 1) every retained patient is in class 0 and MCL has nothing to
    contrast.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    bins = bins.long().reshape(-1)
    observed = events.reshape(-1).bool()
    if len(bins) != len(observed):
        raise ValueError(f"{len(bins)} bins but {len(observed)} events")
    if len(bins) and (bins.min() < 0 or bins.max() >= n_bins):
        raise ValueError(f"bins must lie in [0, {n_bins})")
    known = observed | (bins == n_bins - 1)
    return torch.where(known, bins, torch.full_like(bins, -1))


class SurvivalHead(nn.Linear):
    """A survival head in place of a classifier's ``nn.Linear``: hazard logits (B, K) for a discrete-time hazard
    head (`edges` given, K = len(edges) - 1), or one Cox risk (B, 1) (`edges` None).

    It is an ``nn.Linear``, so code reading a classifier's ``weight`` (MoSARe's per-modality share of the logits)
    works unchanged. The Cox head has no bias: the partial likelihood does not depend on it. The hazard head keeps
    its bin edges as a buffer, so a checkpoint carries them: `loss` bins the times itself and `survival_at` needs
    nothing else.
    """

    edges: torch.Tensor  # (K + 1,) float64 buffer for the hazard head; empty for the Cox head

    def __init__(self, in_features: int, edges: npt.ArrayLike | None, alpha: float = DEFAULT_ALPHA) -> None:
        edges_array = np.zeros(0) if edges is None else np.asarray(edges, dtype=np.float64)
        if edges is not None:
            _check_edges(edges_array)
        super().__init__(in_features, 1 if edges is None else len(edges_array) - 1, bias=edges is not None)
        self.kind: SurvivalKind = "cox" if edges is None else "hazard"
        self.alpha = alpha
        self.register_buffer("edges", torch.as_tensor(edges_array, dtype=torch.float64))

    @property
    def n_bins(self) -> int:
        """K hazard bins (0 for the Cox head)."""
        return self.out_features if self.kind == "hazard" else 0

    def bins_of(self, times: torch.Tensor) -> torch.Tensor:
        """(B,) times -> (B,) bin indices, as `discretise` on the stored edges."""
        if self.kind != "hazard":
            raise ValueError("a Cox head has no time bins")
        return torch.bucketize(times.to(self.edges.dtype), self.edges, right=True) - 1

    def risk(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, out) head outputs -> (B,) risk, higher = worse: MCAT's -sum S(k), or the Cox log-risk."""
        return risk_score(outputs) if self.kind == "hazard" else outputs[..., 0]

    def loss(self, outputs: torch.Tensor, times: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        """The head's loss over a batch: `nll_survival_loss` or `cox_partial_likelihood_loss`."""
        if self.kind == "hazard":
            return nll_survival_loss(outputs, self.bins_of(times), events, self.alpha)
        return cox_partial_likelihood_loss(outputs[:, 0], times, events)

    def present_loss(
        self, outputs: torch.Tensor, times: torch.Tensor, events: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        """The loss of per-modality outputs (B, M, out) over the present (patient, modality) pairs."""
        if self.kind == "hazard":
            return present_nll_survival_loss(outputs, self.bins_of(times), events, present, self.alpha)
        return present_cox_loss(outputs[..., 0], times, events, present)

    def survival_at(self, outputs: torch.Tensor, horizons: npt.ArrayLike) -> torch.Tensor:
        """(B, K) hazard logits -> (B, H) survival at the horizons (`survival_at`). A Cox head would need a baseline
        hazard estimated on the training patients (Breslow's estimator), which it does not hold: an error."""
        if self.kind != "hazard":
            raise ValueError("a Cox head gives survival probabilities only with a baseline hazard, which it lacks")
        return survival_at(outputs, self.edges.cpu().numpy(), horizons)


class SurvivalSetup:
    """How one fold's models predict survival: the head kind, the time-bin edges cut at that fold's fit-part event
    times (`time_bin_edges`; the hazard head's bins, and MoSARe's MCL pseudo-classes under either head) and alpha."""

    def __init__(self, head: SurvivalKind, edges: npt.ArrayLike, alpha: float = DEFAULT_ALPHA) -> None:
        if head not in ("hazard", "cox"):
            raise ValueError(f"survival head must be 'hazard' or 'cox', got {head!r}")
        self.head: SurvivalKind = head
        self.edges = np.asarray(edges, dtype=np.float64)
        _check_edges(self.edges)
        self.alpha = float(alpha)

    @classmethod
    def from_config(cls, survival_config: dict, fit_times: npt.ArrayLike, fit_events: npt.ArrayLike) -> SurvivalSetup:
        """From ``train.survival`` and the fit part's outcomes (bins cut there only)."""
        edges = time_bin_edges(fit_times, fit_events, int(survival_config.get("bins", 4)))
        return cls(survival_config.get("head", "hazard"), edges, float(survival_config.get("alpha", DEFAULT_ALPHA)))

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def make_head(self, in_features: int) -> SurvivalHead:
        """A fresh head: hazard logits over the bins, or one Cox risk."""
        return SurvivalHead(in_features, self.edges if self.head == "hazard" else None, self.alpha)

    def pseudo_classes(self, times: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        """MCL's classes (`mcl_pseudo_classes`) of a batch: the bin of an event known to fall in it, else -1."""
        edges = torch.as_tensor(self.edges, dtype=torch.float64, device=times.device)
        bins = torch.bucketize(times.to(torch.float64), edges, right=True) - 1
        return mcl_pseudo_classes(bins, events, self.n_bins)
