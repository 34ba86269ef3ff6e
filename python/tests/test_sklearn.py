"""flashkmeans.KMeans against scikit-learn: its estimator checks, agreement from identical initial
centroids, sample weights, init / n_init / tol, errors."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans as SKKMeans  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import flashkmeans  # noqa: E402
from flashkmeans import KMeans  # noqa: E402
from conftest import blobs, gauss  # noqa: E402

# scikit-learn's own KMeans is declared to fail this check, for the same reason: an integer weight
# and repeated samples (in another order) draw different initial centroids.
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "an integer weight and repeated samples draw different initial centroids (as sklearn.cluster.KMeans)",
}


def test_check_estimator():
    results = check_estimator(KMeans(), expected_failed_checks=EXPECTED_FAILURES, on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:300]) for r in failed]
    assert sum(r["status"] == "passed" for r in results) >= 50


def _inertia64(x, labels, c):
    d = x.astype(np.float64) - np.asarray(c, np.float64)[labels]
    return float(np.einsum("ij,ij->", d, d))


@pytest.mark.parametrize("n, d, k, iters", [(5000, 16, 20, 10), (20000, 32, 100, 20), (3000, 64, 8, 30)])
def test_agreement_with_sklearn_from_identical_centroids(n, d, k, iters):
    x = gauss((n, d), seed=n)
    c0 = x[np.random.default_rng(1).choice(n, k, replace=False)]
    ours = KMeans(k, init=c0, n_init=1, max_iter=iters, tol=0.0).fit(x)
    # float64 run: the exact Lloyd trajectory (a float32 near-tie would make the float32 run drift)
    ref = SKKMeans(k, init=c0.astype(np.float64), n_init=1, max_iter=iters, tol=0.0,
                   algorithm="lloyd").fit(x.astype(np.float64))
    assert np.mean(ours.labels_ == ref.labels_) >= 0.999
    assert abs(ours.inertia_ - ref.inertia_) <= 1e-5 * ref.inertia_
    assert abs(_inertia64(x, ours.labels_, ours.cluster_centers_) - ref.inertia_) <= 1e-5 * ref.inertia_
    ref32 = SKKMeans(k, init=c0, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(x)
    assert np.mean(ours.labels_ == ref32.labels_) >= 0.99


def test_agreement_on_clustered_data_with_kmeanspp():
    x, y = blobs(4000, 10, 6, seed=3)
    ours = KMeans(6, random_state=0).fit(x)
    ref = SKKMeans(6, random_state=0, n_init=1).fit(x)
    ours64, ref64 = _inertia64(x, ours.labels_, ours.cluster_centers_), _inertia64(x, ref.labels_, ref.cluster_centers_)
    assert abs(ours64 - ref64) <= 1e-5 * ref64
    assert abs(ours.inertia_ - ours64) <= 1e-5 * ours64
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(ours.labels_, ref.labels_) == 1.0


def test_attributes_and_methods():
    x, _ = blobs(500, 4, 3)
    km = KMeans(3, random_state=1, max_iter=50)
    labels = km.fit_predict(x)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(km.predict(x), km.labels_)
    assert km.labels_.dtype == np.int32 and km.cluster_centers_.dtype == np.float32
    assert km.cluster_centers_.shape == (3, 4) and 1 <= km.n_iter_ <= 50
    t = km.transform(x)
    assert t.shape == (500, 3)
    np.testing.assert_allclose(t, np.linalg.norm(x[:, None].astype(np.float64) - km.cluster_centers_[None], axis=2),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(km.score(x), -km.inertia_, rtol=1e-5)
    x64 = x.astype(np.float64)
    km64 = KMeans(3, random_state=1).fit(x64)
    assert km64.cluster_centers_.dtype == np.float64 and km64.transform(x64).dtype == np.float64
    assert list(km.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]


def test_random_state_and_n_init():
    x = gauss((800, 5))
    a = KMeans(6, random_state=3).fit(x)
    b = KMeans(6, random_state=3).fit(x)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    single = [KMeans(6, n_init=1, random_state=s).fit(x).inertia_ for s in range(3)]
    best = KMeans(6, n_init=5, random_state=0).fit(x).inertia_
    assert best <= max(single)
    r = KMeans(6, init="random", random_state=0).fit(x)  # n_init 'auto' = 10 for random
    assert r.inertia_ > 0
    cb = KMeans(4, init=lambda X, k, random_state: X[:k], n_init=1).fit(x)
    same = KMeans(4, init=x[:4], n_init=1).fit(x)
    np.testing.assert_array_equal(cb.cluster_centers_, same.cluster_centers_)
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        KMeans(4, init=x[:4], n_init=3).fit(x)


def test_tol_is_relative_to_the_variance():
    x, _ = blobs(3000, 4, 5, seed=1)
    c0 = x[:5]
    a = KMeans(5, init=c0, tol=1e-4, max_iter=300).fit(x)
    b = KMeans(5, init=c0 * 1000, tol=1e-4, max_iter=300).fit(x * 1000)  # same data, scaled
    assert a.n_iter_ == b.n_iter_ < 300
    z = KMeans(5, init=c0, tol=0.0, max_iter=300).fit(x)  # stops when no centroid moves at all
    assert z.n_iter_ < 300
    ref = SKKMeans(5, init=c0.astype(np.float64), n_init=1, tol=0.0, algorithm="lloyd").fit(x.astype(np.float64))
    np.testing.assert_array_equal(z.labels_, ref.labels_)


@pytest.mark.parametrize("algorithm", ["auto", "lloyd", "elkan"])
def test_algorithms(algorithm):
    x = gauss((3000, 8), seed=2)
    c0 = x[:70]
    a = KMeans(70, init=c0, max_iter=5, algorithm=algorithm).fit(x)
    b = KMeans(70, init=c0, max_iter=5, algorithm="lloyd").fit(x)
    assert np.mean(a.labels_ == b.labels_) >= 0.999


def test_integer_weights_equal_repeated_samples_from_given_centroids():
    x = gauss((300, 5), seed=4)
    w = np.random.default_rng(0).integers(0, 4, 300)
    c0 = x[w > 0][:6]
    weighted = KMeans(6, init=c0, n_init=1, max_iter=20).fit(x, sample_weight=w)
    repeated = KMeans(6, init=c0, n_init=1, max_iter=20).fit(np.repeat(x, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weighted.inertia_, repeated.inertia_, rtol=1e-5)
    np.testing.assert_array_equal(weighted.predict(x), repeated.predict(x))


def test_weights_agree_with_sklearn():
    x = gauss((2000, 6), seed=5)
    w = np.random.default_rng(2).uniform(0.1, 3.0, 2000)
    c0 = x[:12]
    ours = KMeans(12, init=c0, n_init=1, max_iter=15, tol=0.0).fit(x, sample_weight=w)
    ref = SKKMeans(12, init=c0.astype(np.float64), n_init=1, max_iter=15, tol=0.0,
                   algorithm="lloyd").fit(x.astype(np.float64), sample_weight=w)
    assert np.mean(ours.labels_ == ref.labels_) >= 0.999
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-5)
    np.testing.assert_allclose(ours.score(x, sample_weight=w), ref.score(x.astype(np.float64), sample_weight=w),
                               rtol=1e-5)
    # weighted k-means++ and random inits run too
    assert KMeans(5, random_state=0).fit(x, sample_weight=w).inertia_ > 0
    assert KMeans(5, init="random", random_state=0).fit(x, sample_weight=w).inertia_ > 0


def test_equal_weights_scale_the_inertia_only():
    x = gauss((500, 3))
    a = KMeans(4, random_state=0).fit(x)
    b = KMeans(4, random_state=0).fit(x, sample_weight=np.full(500, 2.5))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.inertia_, 2.5 * a.inertia_, rtol=1e-12)


@pytest.mark.parametrize("params, X, message", [
    (dict(n_clusters=0), None, "n_clusters must be an integer >= 1"),
    (dict(n_clusters=200), None, "n_samples=100 should be >= n_clusters=200"),
    (dict(max_iter=0), None, "max_iter must be an integer >= 1"),
    (dict(tol=-1.0), None, "tol must be a number >= 0"),
    (dict(algorithm="full"), None, "algorithm must be 'auto', 'lloyd' or 'elkan'"),
    (dict(init="kmeans"), None, "init must be 'k-means\\+\\+', 'random'"),
    (dict(n_init=0), None, "n_init must be 'auto' or an integer >= 1"),
    (dict(n_init="many"), None, "n_init must be 'auto'"),
    (dict(n_clusters=3, init=np.zeros((2, 4))), None, r"shape of the initial centers \(2, 4\) does not match"),
    (dict(n_clusters=3, init=np.zeros((3, 5))), None, "does not match the number of features"),
    (dict(n_threads=-2), None, "n_threads must be an integer >= 0"),
])
def test_bad_parameters(params, X, message):
    x = gauss((100, 4)) if X is None else X
    with pytest.raises(ValueError, match=message):
        KMeans(**params).fit(x)


def test_bad_weights_and_data():
    x = gauss((50, 3))
    with pytest.raises(ValueError, match="at least one non-zero"):
        KMeans(2).fit(x, sample_weight=np.zeros(50))
    with pytest.raises(ValueError, match="Negative values"):
        KMeans(2).fit(x, sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(49,\), expected \(50,\)"):
        KMeans(2).fit(x, sample_weight=np.ones(49))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(bad)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        KMeans(2).predict(x)
    km = KMeans(2).fit(x)
    with pytest.raises(ValueError, match="X has 4 features, but KMeans is expecting 3 features"):
        km.predict(gauss((5, 4)))


def test_duplicate_points_warn():
    x = np.repeat(gauss((2, 3)), 10, axis=0)
    with pytest.warns(sklearn.exceptions.ConvergenceWarning, match="Number of distinct clusters"):
        KMeans(4, random_state=0).fit(x)


def test_flashkmeans_exports_the_estimator():
    assert flashkmeans.KMeans is KMeans
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(2, random_state=0).fit(gauss((20, 2)))
