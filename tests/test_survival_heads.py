"""Survival heads and losses (mosare.model.survival): discrete-time hazards, Cox partial likelihood, MCL classes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import CoxPHOptimizer
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from mosare.model.survival import (
    SurvivalHead,
    cox_partial_likelihood_loss,
    discretise,
    mcl_pseudo_classes,
    nll_survival_loss,
    present_nll_survival_loss,
    risk_score,
    survival_at,
    survival_curve,
    time_bin_edges,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# Three patients, three bins: censored in bin 1, an event in bin 0, an event in the last bin.
LOGITS = [[-1.0, 0.5, 2.0], [0.3, -0.7, 1.1], [-2.0, -1.5, 0.4]]
BINS = [1, 0, 2]
EVENTS = [0, 1, 1]


def hand_nll(alpha: float) -> float:
    """The discrete-time likelihood written out patient by patient."""
    h = [[sigmoid(v) for v in row] for row in LOGITS]
    censored = -math.log((1 - h[0][0]) * (1 - h[0][1]))  # alive through its bin 1: S(1)
    event_first = -math.log(h[1][0])  # S(-1) = 1, then the event in bin 0
    event_last = -math.log((1 - h[2][0]) * (1 - h[2][1]) * h[2][2])  # S(1) * h_2
    return ((1 - alpha) * censored + event_first + event_last) / 3


@pytest.mark.parametrize("alpha", [0.0, 0.15, 0.5])
def test_nll_loss_matches_the_hand_computed_likelihood(alpha):
    loss = nll_survival_loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(BINS), torch.tensor(EVENTS), alpha)
    assert loss.item() == pytest.approx(hand_nll(alpha), rel=1e-12)


def test_nll_loss_is_mcat_formula_on_hazards():
    """MCAT's form: (1 - alpha) * (censored + uncensored) + alpha * uncensored, with S padded by S(-1) = 1."""
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    hazards = torch.sigmoid(logits)
    survival = torch.cumprod(1 - hazards, dim=1)
    padded = torch.cat([torch.ones(3, 1, dtype=torch.float64), survival], dim=1)
    y = torch.tensor(BINS).unsqueeze(1)
    c = 1 - torch.tensor(EVENTS, dtype=torch.float64).unsqueeze(1)  # MCAT's c is the censorship
    uncensored = -(1 - c) * (padded.gather(1, y).log() + hazards.gather(1, y).log())
    censored = -c * padded.gather(1, y + 1).log()
    alpha = 0.4
    reference = ((1 - alpha) * (censored + uncensored) + alpha * uncensored).mean()
    loss = nll_survival_loss(logits, torch.tensor(BINS), torch.tensor(EVENTS), alpha)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)


def test_a_censored_patient_contributes_survival_through_its_bin_and_nothing_after():
    logits = torch.tensor([[0.2, -0.4, 0.9, 1.3]], requires_grad=True)
    loss = nll_survival_loss(logits, torch.tensor([1]), torch.tensor([0]))
    loss.backward()
    assert loss.item() == pytest.approx(-math.log((1 - sigmoid(0.2)) * (1 - sigmoid(-0.4))), rel=1e-6)
    assert torch.all(logits.grad[0, :2] > 0)  # a higher hazard in bins 0 and 1 makes its survival less likely
    assert torch.all(logits.grad[0, 2:] == 0)  # bins after its censoring say nothing


def test_nll_loss_is_finite_at_extreme_logits_and_zero_on_an_empty_batch():
    logits = torch.tensor([[60.0, -60.0], [-60.0, 60.0]], requires_grad=True)
    loss = nll_survival_loss(logits, torch.tensor([1, 1]), torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(logits.grad))
    empty = torch.zeros(0, 3, requires_grad=True)
    zero = nll_survival_loss(empty, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    zero.backward()
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match="alpha"):
        nll_survival_loss(logits, torch.tensor([1, 1]), torch.tensor([1, 0]), alpha=1.5)


def test_present_nll_loss_reads_only_present_pairs():
    torch.manual_seed(0)
    logits = torch.randn(3, 3, 4)
    present = torch.tensor([[True, False, True], [True, True, False], [False, False, True]])
    bins, events = torch.tensor([0, 3, 2]), torch.tensor([1, 0, 1])
    changed = logits.clone()
    changed[~present] = 100.0
    loss = present_nll_survival_loss(logits, bins, events, present)
    assert loss.item() == present_nll_survival_loss(changed, bins, events, present).item()
    pairs = present.nonzero().tolist()
    expected = nll_survival_loss(
        torch.stack([logits[b, m] for b, m in pairs]), bins[[b for b, _ in pairs]], events[[b for b, _ in pairs]]
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert present_nll_survival_loss(logits, bins, events, torch.zeros(3, 3, dtype=torch.bool)).item() == 0.0


def test_survival_curve_is_monotone_in_zero_one_and_risk_orders_patients():
    torch.manual_seed(0)
    logits = torch.cat([torch.randn(50, 6) * 5, torch.full((1, 6), 80.0), torch.full((1, 6), -80.0)])
    curve = survival_curve(logits)
    assert torch.all((curve >= 0) & (curve <= 1))
    assert torch.all(curve[:, 1:] <= curve[:, :-1])
    # higher hazards in every bin: lower survival everywhere and a higher risk
    base = torch.randn(5, 4)
    riskier = base + torch.rand(5, 4) + 0.1
    assert torch.all(survival_curve(riskier) < survival_curve(base))
    assert torch.all(risk_score(riskier) > risk_score(base))
    assert torch.equal(risk_score(base), -survival_curve(base).sum(dim=1))


def test_survival_at_is_a_step_function_over_the_edges():
    edges = np.array([0.0, 1.0, 2.5, np.inf])
    logits = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64)
    s = survival_curve(logits)[0]
    at = survival_at(logits, edges, [0.0, 0.99, 1.0, 2.0, 2.5, 1e6])[0]
    expected = torch.stack([torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)])
    assert torch.allclose(at[:2], expected)
    assert torch.allclose(at[2:4], s[0].expand(2))  # [e_1, e_2): survived bin 0
    assert torch.allclose(at[4:], s[1].expand(2))  # [e_2, inf): survived bins 0 and 1
    with pytest.raises(ValueError, match="bins"):
        survival_at(logits[:, :2], edges, [1.0])


def test_time_bin_edges_are_mcat_quantiles_of_training_event_times_only():
    rng = np.random.default_rng(0)
    times = rng.exponential(10.0, 200)
    events = rng.random(200) < 0.6
    edges = time_bin_edges(times, events, 4)
    _, q_bins = pd.qcut(times[events], q=4, retbins=True)  # MCAT: quantiles of the uncensored times
    assert edges[0] == 0 and edges[-1] == np.inf
    np.testing.assert_allclose(edges[1:-1], q_bins[1:-1])
    # censored patients, whatever their times, do not move the edges
    more_times = np.concatenate([times, rng.exponential(50.0, 100)])
    more_events = np.concatenate([events, np.zeros(100, dtype=bool)])
    np.testing.assert_array_equal(time_bin_edges(more_times, more_events, 4), edges)
    # the edges come from the training part: changing every test patient's time and event moves nothing
    train = np.arange(200) < 150
    train_edges = time_bin_edges(times[train], events[train], 4)
    altered = times.copy()
    altered[~train] = rng.exponential(1.0, 50)
    assert not np.array_equal(train_edges, edges)
    np.testing.assert_array_equal(time_bin_edges(altered[train], events[train], 4), train_edges)


def test_time_bin_edges_with_ties_and_few_event_times_give_fewer_bins_each_holding_an_event():
    # event times 5, 5, 5, 10: quantiles 5, 5, 6.25; the duplicate and the cut at the first event time go
    edges = time_bin_edges([5, 5, 5, 10, 1, 30], [1, 1, 1, 1, 0, 0], 4)
    np.testing.assert_array_equal(edges, [0.0, 6.25, np.inf])
    # two event times, eight bins: linear quantiles would leave empty bins between them
    edges = time_bin_edges([1.0, 2.0, 3.0], [1, 1, 0], 8)
    assert len(edges) - 1 == 2
    np.testing.assert_array_equal(np.bincount(discretise([1.0, 2.0], edges), minlength=2), [1, 1])
    assert time_bin_edges([4.0, 4.0, 9.0], [1, 1, 0], 4).tolist() == [0.0, np.inf]
    rng = np.random.default_rng(1)
    for _ in range(50):
        times = rng.integers(0, 6, 20).astype(float)
        events = rng.random(20) < 0.5
        if not events.any():
            continue
        edges = time_bin_edges(times, events, int(rng.integers(1, 9)))
        counts = np.bincount(discretise(times[events], edges), minlength=len(edges) - 1)
        assert np.all(counts > 0) and len(edges) - 1 <= len(np.unique(times[events]))
    with pytest.raises(ValueError, match="no event"):
        time_bin_edges([1.0, 2.0], [0, 0], 4)
    with pytest.raises(ValueError, match=">= 0"):
        time_bin_edges([-1.0, 2.0], [1, 1], 4)
    with pytest.raises(ValueError, match="0 \\(censored\\) or 1"):
        time_bin_edges([1.0, 2.0], [1, 2], 4)


def test_discretise_puts_each_time_in_its_left_closed_bin():
    edges = np.array([0.0, 2.0, 5.0, np.inf])
    times = [0.0, 1.9, 2.0, 4.99, 5.0, 1e9]
    assert discretise(times, edges).tolist() == [0, 0, 1, 1, 2, 2]
    # MCAT's pd.cut(right=False) agrees
    assert pd.cut(times, bins=edges, right=False, labels=False).tolist() == [0, 0, 1, 1, 2, 2]
    head = SurvivalHead(3, edges)
    assert head.bins_of(torch.tensor(times)).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match=">= 0"):
        discretise([-0.1], edges)
    with pytest.raises(ValueError, match="edges"):
        discretise([1.0], [0.0, 2.0, 1.0, np.inf])


def tied_cohort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 patients, two features, times rounded to few values: tied events, and events tied with censorings."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    event_time = rng.exponential(1.0 / np.exp(0.8 * x[:, 0] - 0.5 * x[:, 1]))
    censor_time = rng.exponential(1.5, 40)
    time = np.ceil(np.minimum(event_time, censor_time) * 4) / 4
    event = event_time <= censor_time
    return x, time, event


def breslow_by_hand(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    terms = [risk[i] - math.log(np.exp(risk[time >= time[i]]).sum()) for i in np.flatnonzero(event)]
    return -sum(terms) / event.sum()


def test_cox_loss_matches_scikit_survival_breslow_and_is_minimal_at_its_fit():
    x, time, event = tied_cohort()
    _, counts = np.unique(time[event], return_counts=True)
    assert counts.max() > 1 and len(np.intersect1d(time[event], time[~event])) > 0  # the ties this test is for
    model = CoxPHSurvivalAnalysis(alpha=0, ties="breslow").fit(x, Surv.from_arrays(event, time))
    coef = model.coef_
    risk = torch.tensor(x @ coef, requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, torch.tensor(time), torch.tensor(event))
    # scikit-survival's loss is the same sum divided by all patients rather than the events
    sksurv_loss = CoxPHOptimizer(x, event, time, np.zeros(2), "breslow").nlog_likelihood(coef)
    assert loss.item() == pytest.approx(sksurv_loss * len(time) / event.sum(), rel=1e-10)
    assert loss.item() == pytest.approx(breslow_by_hand(x @ coef, time, event), rel=1e-10)
    # at scikit-survival's optimum our gradient with respect to the coefficients vanishes
    loss.backward()
    assert np.abs(x.T @ risk.grad.numpy()).max() < 1e-6

    # and fitting a linear risk with our loss finds scikit-survival's coefficients
    weights = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    features, times, events = torch.tensor(x), torch.tensor(time), torch.tensor(event)
    optimiser = torch.optim.LBFGS(
        [weights], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = cox_partial_likelihood_loss(features @ weights, times, events)
        value.backward()
        return value

    optimiser.step(closure)
    np.testing.assert_allclose(weights.detach().numpy(), coef, atol=1e-5)


def test_cox_loss_ignores_order_and_shift_and_is_zero_without_events():
    x, time, event = tied_cohort()
    risk = torch.tensor(x[:, 0])
    loss = cox_partial_likelihood_loss(risk, torch.tensor(time), torch.tensor(event))
    permutation = torch.randperm(len(time), generator=torch.Generator().manual_seed(0))
    shuffled = cox_partial_likelihood_loss(
        risk[permutation], torch.tensor(time)[permutation], torch.tensor(event)[permutation]
    )
    assert shuffled.item() == pytest.approx(loss.item(), rel=1e-12)
    shifted = cox_partial_likelihood_loss(risk + 7.0, torch.tensor(time), torch.tensor(event))
    assert shifted.item() == pytest.approx(loss.item(), rel=1e-10)

    censored_only = torch.randn(5, requires_grad=True)
    zero = cox_partial_likelihood_loss(censored_only, torch.arange(5.0), torch.zeros(5))
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(censored_only.grad, torch.zeros(5))
    empty = torch.zeros(0, requires_grad=True)
    cox_partial_likelihood_loss(empty, torch.zeros(0), torch.zeros(0)).backward()
    assert torch.all(torch.isfinite(empty.grad))


def test_mcl_classes_are_event_bins_and_censored_ones_only_where_the_bin_is_known():
    bins = torch.tensor([0, 2, 3, 1, 3, 0])
    events = torch.tensor([1, 1, 1, 0, 0, 0])
    # events: their bin; censored in the last bin: the last bin; censored earlier: left out
    assert mcl_pseudo_classes(bins, events, n_bins=4).tolist() == [0, 2, 3, -1, 3, -1]
    assert mcl_pseudo_classes(torch.tensor([0, 0]), torch.tensor([0, 1]), n_bins=1).tolist() == [0, 0]
    assert mcl_pseudo_classes(torch.zeros(0), torch.zeros(0), n_bins=4).tolist() == []
    with pytest.raises(ValueError, match="bins must lie"):
        mcl_pseudo_classes(torch.tensor([4]), torch.tensor([1]), n_bins=4)


def test_survival_head_is_a_linear_layer_with_its_edges_in_the_checkpoint():
    edges = np.array([0.0, 1.0, 3.0, np.inf])
    head = SurvivalHead(8, edges)
    assert isinstance(head, torch.nn.Linear) and head.kind == "hazard" and head.n_bins == 3
    torch.manual_seed(0)
    features, times, events = (
        torch.randn(6, 8),
        torch.tensor([0.5, 1.0, 2.0, 3.5, 0.1, 9.0]),
        torch.tensor([1, 0, 1, 1, 0, 0]),
    )
    outputs = head(features)
    assert outputs.shape == (6, 3)
    expected = nll_survival_loss(outputs, torch.from_numpy(discretise(times.numpy(), edges)), events)
    assert head.loss(outputs, times, events).item() == expected.item()
    assert torch.equal(head.risk(outputs), risk_score(outputs))
    assert torch.allclose(head.survival_at(outputs, [2.0]), survival_curve(outputs)[:, :1])
    restored = SurvivalHead(8, [0.0, 0.5, 0.7, np.inf])
    restored.load_state_dict(head.state_dict())
    assert torch.equal(restored.edges, torch.tensor(edges, dtype=torch.float64))

    cox = SurvivalHead(8, None)
    assert cox.kind == "cox" and cox.bias is None and cox(features).shape == (6, 1)
    assert torch.equal(cox.risk(cox(features)), cox(features)[:, 0])
    assert (
        cox.loss(cox(features), times, events).item()
        == cox_partial_likelihood_loss(cox(features)[:, 0], times, events).item()
    )
    with pytest.raises(ValueError, match="baseline hazard"):
        cox.survival_at(cox(features), [1.0])
    # per-modality heads: a missing pair's outputs change nothing
    present = torch.tensor([[True, False], [True, True], [False, True], [True, True], [True, False], [True, True]])
    per_modality = torch.randn(6, 2, 8)
    changed = per_modality.clone()
    changed[~present] = 50.0
    for survival_head in (head, cox):
        assert survival_head.present_loss(survival_head(per_modality), times, events, present).item() == pytest.approx(
            survival_head.present_loss(survival_head(changed), times, events, present).item()
        )


def synthetic_cohort(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Exponential event times whose log-hazard is 1.5 x the first of five features; about a third censored."""
    x = rng.normal(size=(n, 5))
    event_time = rng.exponential(1.0 / np.exp(1.5 * x[:, 0]))
    censor_time = rng.exponential(2.0, n)
    return torch.tensor(x, dtype=torch.float32), np.minimum(event_time, censor_time), event_time <= censor_time


@pytest.mark.parametrize("kind", ["hazard", "cox"])
def test_a_linear_survival_head_learns_a_planted_risk(kind):
    rng = np.random.default_rng(0)
    x_train, t_train, e_train = synthetic_cohort(rng, 400)
    x_test, t_test, e_test = synthetic_cohort(rng, 400)
    torch.manual_seed(0)
    head = SurvivalHead(5, time_bin_edges(t_train, e_train, 4) if kind == "hazard" else None)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    times, events = torch.tensor(t_train), torch.tensor(e_train)
    for _ in range(200):
        optimiser.zero_grad()
        head.loss(head(x_train), times, events).backward()
        optimiser.step()
    with torch.no_grad():
        risk = head.risk(head(x_test)).numpy()
    c_index = concordance_index_censored(e_test, t_test, risk)[0]
    assert c_index > 0.7
