"""Per-slide Gaussian mixtures: the estimator against scikit-learn, edge cases, and the slide stage's outputs."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import check_estimator
from synthetic_slides import tissue_image, write_slide

from mosare.core.config_schema import schema_defaults
from mosare.core.logs import log_to_file
from mosare.core.stores import open_store, write_store
from mosare.features import gmm_em
from mosare.features.gmm import (
    DiagonalGMM,
    GMMResult,
    fit_gmm_tokens,
    mixture_log_responsibilities,
    select_components_by_bic,
)
from mosare.features.gmm_store import GMMStoreError, SlideGMMStore
from mosare.features.slide_gmm import SlideGMMJob, SlideGMMJobError, SlideMixture, fit_slide_gmm, fit_slide_gmms
from mosare.reporting.plots.gmm import plot_slide_mixture
from mosare.slides.patch_store import PatchStore

GMM_CONFIG = {
    "components": 16,
    "max_iter": 100,
    "tol": 1e-3,
    "reg_covar": 1e-6,
    "select_by_bic": False,
    "seed": 0,
    "max_samples": None,
}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Small tensors: one thread avoids thread-pool stalls on shared CI cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(centres: np.ndarray, per_cluster: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + spread * rng.normal(size=(per_cluster, centres.shape[1])) for c in centres])


def well_separated(n_clusters: int = 3, dim: int = 6, per_cluster: int = 150, seed: int = 0) -> tuple:
    centres = np.random.default_rng(seed).normal(scale=10.0, size=(n_clusters, dim))
    return blobs(centres, per_cluster, spread=1.0, seed=seed), centres


def matched_distance(found: np.ndarray, expected: np.ndarray) -> float:
    """Largest distance from each expected centre to its nearest found mean."""
    return float(np.linalg.norm(expected[:, None] - found[None], axis=2).min(1).max())


def assert_second_em_step_equals_sklearns(X: np.ndarray) -> tuple[DiagonalGMM, GaussianMixture]:
    """Assert our GMM after two EM steps equals sklearn's single step from our first step's parameters; return both."""
    after_one = DiagonalGMM(3, max_iter=1, tol=1e-12, dtype="float64").fit(X)
    after_two = DiagonalGMM(3, max_iter=2, tol=1e-12, dtype="float64").fit(X)
    reference = GaussianMixture(
        3,
        covariance_type="diag",
        max_iter=1,
        tol=1e-12,
        reg_covar=1e-6,
        weights_init=after_one.weights_,
        means_init=after_one.means_,
        precisions_init=1 / after_one.variances_,
    ).fit(X)
    np.testing.assert_allclose(after_two.weights_, reference.weights_, rtol=1e-9)
    np.testing.assert_allclose(after_two.means_, reference.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(after_two.variances_, reference.covariances_, rtol=1e-9)
    return after_two, reference


@pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")
def test_one_em_step_equals_sklearns_from_the_same_parameters():
    X, _ = well_separated(n_clusters=3, dim=5, per_cluster=60)
    X += np.random.default_rng(1).normal(scale=3.0, size=X.shape)  # overlap, so responsibilities are soft
    ours, reference = assert_second_em_step_equals_sklearns(X)
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-10)


@pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")
def test_one_em_step_with_hard_responsibilities_equals_sklearns():
    # Separated clusters: every responsibility is 0 or 1 to float64 precision, so the M-step sums rows per component.
    X, _ = well_separated(n_clusters=3, dim=5, per_cluster=60)
    assert_second_em_step_equals_sklearns(X)


def test_warm_start_on_a_subsample_reaches_the_full_data_fit_deterministically():
    X, centres = well_separated(n_clusters=4, dim=8, per_cluster=500)
    warm = DiagonalGMM(4, warm_start_subsample=200, random_state=1).fit(X)
    again = DiagonalGMM(4, warm_start_subsample=200, random_state=1).fit(X)
    cold = DiagonalGMM(4, warm_start_subsample=None, random_state=1).fit(X)
    assert warm.n_iter_subsample_ > 0 and warm.converged_ and cold.n_iter_subsample_ == 0
    assert warm.score(X) == pytest.approx(cold.score(X), rel=1e-4)
    assert matched_distance(warm.means_, X.reshape(4, 500, 8).mean(1)) < 1e-3
    np.testing.assert_array_equal(warm.means_, again.means_)
    # "auto" only warm-starts data much larger than its subsample.
    assert DiagonalGMM(4).fit(X).n_iter_subsample_ == 0
    assert DiagonalGMM(4).warm_start_rows(20_000) == 2000


def test_score_is_sklearns_mean_log_likelihood_in_float32_too():
    X, _ = well_separated(n_clusters=4, dim=8)
    ours = DiagonalGMM(4).fit(X.astype(np.float32))
    reference = GaussianMixture(4, covariance_type="diag").fit(X)
    reference.weights_, reference.means_ = ours.weights_.astype(float), ours.means_.astype(float)
    reference.covariances_ = ours.variances_.astype(float)
    reference.precisions_cholesky_ = 1 / np.sqrt(reference.covariances_)
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-5)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_fit_reaches_sklearns_likelihood_and_recovers_separated_cluster_means():
    X, centres = well_separated(n_clusters=4, dim=8, per_cluster=200)
    ours = DiagonalGMM(4, random_state=0).fit(X)
    reference = GaussianMixture(4, covariance_type="diag", init_params="k-means++", random_state=0).fit(X)
    assert ours.converged_
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-3)
    # Separated clusters get hard responsibilities: each mean is its cluster's sample mean.
    assert matched_distance(ours.means_, X.reshape(4, 200, 8).mean(1)) < 1e-3
    assert matched_distance(ours.means_, centres) < 0.4
    np.testing.assert_allclose(np.sort(ours.weights_), 0.25, atol=1e-3)
    np.testing.assert_allclose(ours.variances_, 1.0, atol=0.3)


def test_fewer_samples_than_components_gives_all_components_with_unit_weight():
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    model = DiagonalGMM(16).fit(X)
    assert model.n_components_used_ == 5
    assert model.means_.shape == model.variances_.shape == (16, 12) and model.weights_.shape == (16,)
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(model.means_).all() and np.isfinite(model.variances_).all() and (model.weights_ > 0).all()
    # Each sample owns one fitted component centred on it; padding only copies fitted components.
    np.testing.assert_allclose(model.means_[model.predict(X)], X, atol=1e-5)
    assert {tuple(row) for row in model.means_} == {tuple(row) for row in model.means_[:5]}


def test_padding_keeps_the_density_of_the_fitted_mixture():
    X, _ = well_separated(n_clusters=3, dim=4, per_cluster=40)
    padded = fit_gmm_tokens(X, {**GMM_CONFIG, "components": 8, "select_by_bic": True})
    assert padded.n_components_used == 3 and padded.weights.shape == (8,)
    assert padded.weights.sum() == pytest.approx(1.0, abs=1e-6)
    unpadded = DiagonalGMM(3, random_state=0).fit(X)
    assert padded.log_likelihood == pytest.approx(unpadded.score(X), rel=1e-6)


def test_duplicate_points_and_a_constant_feature_give_floor_variances_not_nan():
    points = np.array([[0.0, 1.0, 5.0], [3.0, 1.0, 5.0], [0.0, 1.0, 9.0]])
    X = np.repeat(points, 40, axis=0)
    model = DiagonalGMM(16, reg_covar=1e-6).fit(X)
    assert model.n_components_used_ == 3
    assert matched_distance(model.means_, points) < 1e-4
    # float32 rounds E[x²] - mean² by about eps * E[x²] on top of the floor; float64 gives the floor itself.
    assert (model.variances_ >= 1e-6).all() and (model.variances_ < 1e-5).all()
    assert np.isfinite(model.score(X))
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(DiagonalGMM(16, reg_covar=1e-6, dtype="float64").fit(X).variances_, 1e-6, rtol=1e-6)


def test_a_single_sample_fits_one_component_padded_to_all():
    result = fit_gmm_tokens(np.ones((1, 7), dtype=np.float16), GMM_CONFIG)
    assert result.n_components_used == 1 and result.present
    np.testing.assert_allclose(result.means, 1.0)
    np.testing.assert_allclose(result.weights, 1 / 16)


def test_zero_samples_raise_in_the_estimator_and_give_an_absent_token_set():
    with pytest.raises(ValueError, match="0 samples"):
        DiagonalGMM(4).fit(np.zeros((0, 3)))
    empty = fit_gmm_tokens(np.zeros((0, 3), dtype=np.float32), GMM_CONFIG)
    assert not empty.present and empty.n_samples == 0 and empty.log_likelihood is None
    assert empty.means.shape == (16, 3) and not empty.means.any() and not empty.weights.any()


def test_max_samples_fits_on_a_seeded_subsample_and_scores_every_row():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-4, 1, (600, 3)), rng.normal(4, 1, (400, 3))]).astype(np.float32)
    config = {**GMM_CONFIG, "components": 2, "max_samples": 200}

    subsampled, again = fit_gmm_tokens(X, config), fit_gmm_tokens(X, config)
    full = fit_gmm_tokens(X, {**config, "max_samples": None})

    assert subsampled.n_fit_samples == 200 and subsampled.n_samples == full.n_fit_samples == 1000
    np.testing.assert_array_equal(subsampled.means, again.means)  # the rows are drawn by the seed
    assert not np.array_equal(subsampled.means, full.means)
    # Same two clusters found, and the log-likelihood is the mean over all 1000 rows, not the 200.
    np.testing.assert_allclose(np.sort(subsampled.means[:, 0]), np.sort(full.means[:, 0]), atol=0.3)
    per_row, _ = mixture_log_responsibilities(X, subsampled.weights, subsampled.means, subsampled.variances)
    assert subsampled.log_likelihood == pytest.approx(float(per_row.double().mean()), rel=1e-6)
    assert subsampled.log_likelihood <= full.log_likelihood + 1e-6
    # Fewer rows than max_samples: all of them, exactly as without the option.
    few, all_rows = X[:150], {**config, "max_samples": None}
    assert fit_gmm_tokens(few, config).n_fit_samples == 150
    np.testing.assert_array_equal(fit_gmm_tokens(few, config).means, fit_gmm_tokens(few, all_rows).means)


def test_scoring_in_row_chunks_gives_the_same_log_likelihoods_and_components(monkeypatch):
    X = np.random.default_rng(2).normal(size=(500, 6)).astype(np.float32)
    model = DiagonalGMM(3, random_state=0).fit(X)
    whole_ll, whole_resp = mixture_log_responsibilities(X, model.weights_, model.means_, model.variances_)
    monkeypatch.setattr(gmm_em, "SCORING_CHUNK_ROWS", 64)  # 8 chunks, the last one partial
    chunked_ll, chunked_resp = mixture_log_responsibilities(X, model.weights_, model.means_, model.variances_)
    torch.testing.assert_close(chunked_ll, whole_ll)
    torch.testing.assert_close(chunked_resp, whole_resp)
    np.testing.assert_array_equal(model.predict(X), whole_resp.argmax(1).numpy())


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_rejected_with_the_fix(bad_value):
    X = np.ones((10, 3))
    X[4, 1] = bad_value
    with pytest.raises(ValueError, match="NaN or infinite"):
        DiagonalGMM(2).fit(X)
    with pytest.raises(ValueError, match="NaN or infinite"):
        mixture_log_responsibilities(X, np.ones(1), np.ones((1, 3)), np.ones((1, 3)))


def test_finite_features_whose_column_sum_overflows_are_accepted():
    # The cheap check (column sums) overflows to infinity here; the elementwise check must clear the data.
    X = np.full((4, 2), 3e38, dtype=np.float32)
    samples, column_means = gmm_em.as_samples(X, torch.float32, torch.device("cpu"))
    assert samples.shape == (4, 2) and torch.equal(column_means, torch.full((2,), 3e38))


def test_same_seed_gives_bitwise_identical_fits_and_other_seeds_differ():
    X = np.random.default_rng(0).normal(size=(400, 10)).astype(np.float32)  # no structure: many optima
    first, second = DiagonalGMM(6, random_state=3).fit(X), DiagonalGMM(6, random_state=3).fit(X)
    for name in ("weights_", "means_", "variances_"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.n_iter_ == second.n_iter_ and first.lower_bound_ == second.lower_bound_
    other = DiagonalGMM(6, random_state=4).fit(X)
    assert not np.array_equal(first.means_, other.means_)


def test_clone_gives_an_unfitted_estimator_with_the_same_parameters_and_the_same_fit():
    X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    fitted = DiagonalGMM(
        3, max_iter=50, tol=1e-4, reg_covar=1e-5, random_state=7, dtype="float64", warm_start_subsample=None
    ).fit(X)
    copy = clone(fitted)
    assert copy is not fitted and copy.get_params() == fitted.get_params()
    assert not [name for name in vars(copy) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        copy.predict(X)
    # The same random_state: the clone's fit is the original's, bit for bit.
    assert copy.fit(X) is copy
    for name in ("weights_", "means_", "variances_"):
        np.testing.assert_array_equal(getattr(copy, name), getattr(fitted, name))
    assert (copy.n_iter_, copy.lower_bound_, copy.n_features_in_) == (fitted.n_iter_, fitted.lower_bound_, 5)


def test_get_params_set_params_round_trip_and_defaults_come_from_the_schema():
    defaults = schema_defaults("gmm")
    assert DiagonalGMM().get_params() == {
        "n_components": defaults["components"],
        "max_iter": defaults["max_iter"],
        "tol": defaults["tol"],
        "reg_covar": defaults["reg_covar"],
        "random_state": defaults["seed"],
        "device": None,
        "dtype": "float32",
        "warm_start_subsample": "auto",
    }
    params = {
        "n_components": 5,
        "max_iter": 7,
        "tol": 1e-5,
        "reg_covar": 1e-3,
        "random_state": 11,
        "device": "cpu",
        "dtype": "float64",
        "warm_start_subsample": None,
    }
    model = DiagonalGMM()
    assert model.set_params(**params) is model
    assert model.get_params() == params == DiagonalGMM(**params).get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'seed'"):
        model.set_params(seed=1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_components": 0}, "n_components must be an int >= 1, got 0"),
        ({"n_components": 2.0}, "n_components must be an int >= 1, got 2.0"),
        ({"max_iter": 0}, "max_iter must be an int >= 1"),
        ({"tol": 0.0}, "tol must be a number > 0"),
        ({"reg_covar": -1e-6}, "reg_covar must be a number > 0"),
        ({"random_state": "seven"}, "random_state must be an int, None or a numpy.random.RandomState"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"n_components": 4, "warm_start_subsample": 3}, "warm_start_subsample must be 'auto', None or a number"),
    ],
)
def test_invalid_parameters_are_stored_by_init_and_rejected_by_fit(params, message):
    model = DiagonalGMM(**params)  # scikit-learn's rule: __init__ only stores its arguments
    assert {name: model.get_params()[name] for name in params} == params
    with pytest.raises(ValueError, match=re.escape(message)):
        model.fit(np.ones((10, 2)))
    assert not hasattr(model, "weights_")


def test_random_state_may_be_a_numpy_random_state_or_none():
    X = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    first = DiagonalGMM(3, random_state=np.random.RandomState(5)).fit(X)
    second = DiagonalGMM(3, random_state=np.random.RandomState(5)).fit(X)
    np.testing.assert_array_equal(first.means_, second.means_)
    assert DiagonalGMM(3, random_state=None).fit(X).means_.shape == (3, 4)


def test_scikit_learn_estimator_checks():
    """scikit-learn's own estimator checks (clone, get/set_params, fit returns self, unfitted errors, feature-count
    checks, pickling, idempotent fits...), except input conversions this estimator does not offer."""
    not_offered = "numpy or torch arrays of numbers only"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch on the checks' read-only memmaps
        check_estimator(
            DiagonalGMM(2, max_iter=20),
            expected_failed_checks={
                "check_dtype_object": not_offered,
                "check_estimator_sparse_tag": not_offered,
                "check_estimator_sparse_array": not_offered,
                "check_estimator_sparse_matrix": not_offered,
                "check_fit2d_predict1d": "a 1-D array is refused with our own message",
            },
        )


def test_bic_picks_the_true_number_of_clusters():
    X, _ = well_separated(n_clusters=3, dim=6, per_cluster=100)
    assert select_components_by_bic(X, max_components=6) == 3


def test_predict_proba_rows_are_distributions():
    X, _ = well_separated(n_clusters=2, dim=3, per_cluster=30)
    probabilities = DiagonalGMM(4).fit(X).predict_proba(X)
    assert probabilities.shape == (60, 4)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)


def patch_store(slide, coords: np.ndarray) -> PatchStore:
    """A patch store of 64 px patches read at level 0 of a 0.5 µm/px slide."""
    return PatchStore(
        coords=coords,
        slide_id="slide-1",
        slide_path=str(slide),
        mpp_level0=0.5,
        target_mpp=0.5,
        patch_px=64,
        footprint_px=64,
        read_level=0,
        read_px=64,
    )


def write_slide_inputs(tmp_path: Path, n_patches_per_region: int) -> tuple[Path, Path, Path]:
    """A 1024x768 slide, its patch store (64 px footprints) and a feature store whose three tissue regions
    (left, middle, right thirds) have three distinct feature clusters."""
    slide = write_slide(
        tmp_path / "slide-1.svs",
        tissue_image(1024, 768, blobs=[(0.5, 0.5, 0.45, 0.4)]),
        mpp=0.5,
    )
    rng = np.random.default_rng(0)
    coords, features = [], []
    for region in range(3):
        xs = rng.integers(region * 320 + 64, region * 320 + 256, n_patches_per_region) // 64 * 64
        ys = rng.integers(128, 576, n_patches_per_region) // 64 * 64
        coords.append(np.stack([xs, ys], 1))
        features.append(6.0 * region + rng.normal(size=(n_patches_per_region, 16)))
    coords_array = np.concatenate(coords).astype(np.int64)
    patch_store(slide, coords_array).write(tmp_path / "patches.zarr")
    write_store(
        tmp_path / "features.zarr",
        {"features": np.concatenate(features).astype(np.float16), "coords": coords_array},
        {"encoder": "efficientnet-lite0"},
    )
    return slide, tmp_path / "patches.zarr", tmp_path / "features.zarr"


def fit_and_plot(features, patches, slide, gmm_store, qc_png, config, *, slide_id) -> SlideMixture:
    """What the rule's script does: the compute stage, then its QC picture."""
    mixture = fit_slide_gmm(features, gmm_store, config, slide_id=slide_id)
    plot_slide_mixture(mixture, patches, slide, qc_png)
    return mixture


def test_slide_stage_writes_the_gmm_store_and_a_component_map(tmp_path):
    slide, patches, features = write_slide_inputs(tmp_path, n_patches_per_region=40)
    config = {**GMM_CONFIG, "components": 5, "select_by_bic": True}
    mixture = fit_and_plot(
        features, patches, slide, tmp_path / "gmm.zarr", tmp_path / "qc.png", config, slide_id="slide-1"
    )
    assert mixture.labels.shape == (120,) and set(mixture.labels) <= set(range(5))
    stored = SlideGMMStore.read(tmp_path / "gmm.zarr")
    np.testing.assert_array_equal(stored.tokens.means, mixture.store.tokens.means)
    assert (stored.slide_id, stored.encoder) == ("slide-1", "efficientnet-lite0")
    assert (stored.n_components, stored.dim) == (5, 16)

    store = open_store(tmp_path / "gmm.zarr")
    assert store["weights"].shape == (5,) and store["means"].shape == store["variances"].shape == (5, 16)
    assert {store[name].dtype for name in ("weights", "means", "variances")} == {np.dtype("float32")}
    assert np.asarray(store["weights"][...]).sum() == pytest.approx(1.0, abs=1e-5)
    attrs = dict(store.attrs)
    assert attrs["n_components_used"] == 3 and attrs["n_samples"] == 120 and attrs["present"] is True
    assert attrs["converged"] is True and attrs["seed"] == 0 and np.isfinite(attrs["log_likelihood"])
    assert attrs["n_fit_samples"] == 120
    picture = np.asarray(Image.open(tmp_path / "qc.png"))
    assert picture.shape[0] > 300 and picture.shape[1] > 600


def test_slide_without_patches_gets_an_absent_store_and_a_picture(tmp_path):
    slide, _, _ = write_slide_inputs(tmp_path, n_patches_per_region=1)
    patch_store(slide, np.zeros((0, 2), np.int64)).write(tmp_path / "empty-patches.zarr")
    write_store(
        tmp_path / "empty-features.zarr",
        {"features": np.zeros((0, 16), np.float16), "coords": np.zeros((0, 2), np.int64)},
        {},
    )
    fit_and_plot(
        tmp_path / "empty-features.zarr",
        tmp_path / "empty-patches.zarr",
        slide,
        tmp_path / "gmm.zarr",
        tmp_path / "qc.png",
        GMM_CONFIG,
        slide_id="slide-1",
    )
    store = open_store(tmp_path / "gmm.zarr")
    assert store.attrs["present"] is False and store.attrs["n_samples"] == 0
    assert store["means"].shape == (16, 16) and not np.asarray(store["means"][...]).any()
    assert (tmp_path / "qc.png").stat().st_size > 0


def test_misaligned_feature_store_names_the_file_and_the_fix(tmp_path):
    slide, patches, _ = write_slide_inputs(tmp_path, n_patches_per_region=2)
    write_store(tmp_path / "bad.zarr", {"features": np.zeros((4, 8), np.float16), "coords": np.zeros((3, 2), np.int64)})
    with pytest.raises(ValueError, match=r"bad\.zarr.*rerun the embedding"):
        fit_slide_gmm(tmp_path / "bad.zarr", tmp_path / "gmm.zarr", GMM_CONFIG, slide_id="slide-1")
    assert not (tmp_path / "gmm.zarr").exists()


def test_a_chunk_job_fits_every_slide_it_can_and_names_the_one_it_cannot(tmp_path):
    """One GMM job fits a chunk of slides: a broken store in the middle stops neither the slides before nor after it;
    each slide logs to its own file; a slide fitted in a chunk equals the same slide fitted alone."""
    slide, patches, features = write_slide_inputs(tmp_path, n_patches_per_region=20)
    write_store(tmp_path / "bad.zarr", {"features": np.zeros((4, 8), np.float16), "coords": np.zeros((3, 2), np.int64)})
    write_store(
        tmp_path / "empty.zarr", {"features": np.zeros((0, 16), np.float16), "coords": np.zeros((0, 2), np.int64)}
    )
    inputs = {"first": features, "broken": tmp_path / "bad.zarr", "empty": tmp_path / "empty.zarr"}
    jobs = [
        SlideGMMJob(
            slide_id,
            store,
            tmp_path / f"{slide_id}.gmm.zarr",
            patches,
            slide,
            tmp_path / f"{slide_id}.png",
            tmp_path / "logs" / f"{slide_id}.log",
        )
        for slide_id, store in inputs.items()
    ]
    drawn = []
    with pytest.raises(
        SlideGMMJobError, match=r"1 of 3 slides.*\nslide broken: .*bad\.zarr.*rerun the embedding"
    ) as error:
        with log_to_file(tmp_path / "logs" / "chunk.log"):  # as the rule's script does
            fit_slide_gmms(jobs, GMM_CONFIG, draw=lambda mixture, job: drawn.append(job.slide_id))
    assert "first" not in str(error.value) and "empty" not in str(error.value)
    assert drawn == ["first", "empty"]
    assert SlideGMMStore.read(tmp_path / "empty.gmm.zarr").tokens.present is False
    assert not (tmp_path / "broken.gmm.zarr").exists()
    logs = {job.slide_id: Path(job.log).read_text() for job in jobs}
    assert "slide first: 60 patches" in logs["first"] and "broken" not in logs["first"]
    assert "bad.zarr" in logs["broken"] and "no patches" in logs["empty"]
    assert all(
        line in (tmp_path / "logs" / "chunk.log").read_text() for log in logs.values() for line in log.splitlines()
    )

    alone = fit_slide_gmm(features, tmp_path / "alone.zarr", GMM_CONFIG, slide_id="first").store.tokens
    in_chunk = SlideGMMStore.read(tmp_path / "first.gmm.zarr").tokens
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(in_chunk, name), getattr(alone, name))


def stored_mixture(encoder: str | None = "uni", **token_changes) -> SlideGMMStore:
    rng = np.random.default_rng(0)
    tokens = GMMResult(
        weights=np.full(3, 1 / 3, np.float32),
        means=rng.normal(size=(3, 4)),
        variances=rng.uniform(0.5, 1, (3, 4)),
        log_likelihood=-3.5,
        n_iter=7,
        converged=True,
        n_components_used=2,
        n_samples=50,
        present=True,
        n_fit_samples=40,
    )
    return SlideGMMStore("s1", encoder, 3, dataclasses.replace(tokens, **token_changes))


@pytest.mark.parametrize(
    "changes", [{}, {"log_likelihood": None, "present": False, "converged": False, "encoder": None}]
)
def test_gmm_store_reads_back_every_field_it_wrote(tmp_path, changes):
    written = stored_mixture(**changes)
    written.write(tmp_path / "gmm.zarr")
    read = SlideGMMStore.read(tmp_path / "gmm.zarr")
    assert (read.slide_id, read.encoder, read.seed) == (written.slide_id, written.encoder, written.seed)
    for field in dataclasses.fields(GMMResult):
        expected, actual = getattr(written.tokens, field.name), getattr(read.tokens, field.name)
        if isinstance(expected, np.ndarray):
            assert actual.dtype == np.float32, field.name
            np.testing.assert_array_equal(actual, expected.astype(np.float32), err_msg=field.name)
        else:
            assert actual == expected and type(actual) is type(expected), field.name


@pytest.mark.parametrize("dropped", ["means", "present", "n_fit_samples"])
def test_an_incomplete_gmm_store_is_an_error_naming_the_store_the_part_and_the_fix(tmp_path, dropped):
    stored_mixture().write(tmp_path / "full.zarr")
    group = open_store(tmp_path / "full.zarr")
    arrays = {name: group[name][...] for name in ("weights", "means", "variances") if name != dropped}
    write_store(tmp_path / "old.zarr", arrays, {k: v for k, v in group.attrs.items() if k != dropped})
    with pytest.raises(GMMStoreError, match=rf"old\.zarr lacks {dropped}.*rerun its GMM job"):
        SlideGMMStore.read(tmp_path / "old.zarr")


def test_samples_are_assigned_to_fitted_components_never_to_their_padding_copies():
    X, _ = well_separated(n_clusters=3, dim=16, per_cluster=50)
    tokens = fit_gmm_tokens(X.astype(np.float32), {**GMM_CONFIG, "components": 12, "select_by_bic": True})
    assert tokens.n_components_used == 3
    assert set(np.unique(tokens.predict(X))) == {0, 1, 2}
