"""flashkmeans.KMeans: a scikit-learn estimator on the compiled core."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _arrays as A
from ._kmeans import fit_core, predict_core, progress_printer

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)


_SMALLEST_TOL = float(np.nextafter(0.0, 1.0))  # stops only when no centroid moved at all


class KMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering (Lloyd's algorithm, exact), a drop-in for sklearn.cluster.KMeans.

    The assignment and update run in flashkmeans' compiled core, in float32 (float64 input is
    computed in float32 and results are returned in float64). Started from the same centroids and
    run for the same iterations, the labels are scikit-learn's.

    Parameters
    ----------
    n_clusters : int, default 8
    init : {'k-means++', 'random'}, callable or array (n_clusters, n_features), default 'k-means++'
        'k-means++': greedy k-means++ (2 + ln K candidates per step), as scikit-learn;
        'random': n_clusters distinct rows, chosen at random (by weight, when weighted);
        a callable is called as init(X, n_clusters, random_state) and returns the centroids.
    n_init : 'auto' or int, default 'auto'
        Runs with different seeds, the one of lowest inertia kept. 'auto': 1 for 'k-means++' or
        given centroids, 10 for 'random'.
    max_iter : int, default 300
    tol : float, default 1e-4
        Relative to the data: a run stops once every centroid moved less than
        sqrt(tol * mean per-feature variance) in an iteration (squared: the same scale as
        scikit-learn's test on the sum of squared moves). tol = 0 stops only when no centroid moved.
    verbose : int, default 0
        > 0 prints one line per iteration.
    random_state : None, int or numpy.random.RandomState
        Seeds the initialisation.
    copy_x : bool, default True
        Accepted for compatibility: the data is never modified.
    algorithm : {'auto', 'lloyd', 'elkan'}, default 'auto'
        How the assignment is computed; every choice gives Lloyd's labels. 'auto' uses Elkan's
        bounds for K >= 64.
    n_threads : int, default 0
        CPU threads, 0 = all cores.

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features), in the dtype of X
    labels_ : int32 ndarray (n_samples,)
        Labels against cluster_centers_.
    inertia_ : float
        Sum of the (weighted) squared distances of the samples to their centroid (computed from the
        differences, in float64).
    n_iter_ : int
        Iterations of the kept run.
    n_features_in_, feature_names_in_ : as scikit-learn.

    Notes
    -----
    sample_weight: with no weights or equal weights the whole fit runs in the compiled core. With
    unequal weights the initialisation (weighted k-means++ or random) and the weighted update of the
    centroids run in NumPy, the assignment of every iteration in the compiled core; the result is
    weighted k-means as scikit-learn defines it. As in scikit-learn, an integer weight is not the
    same as repeating the sample: the two initialisations draw differently (so scikit-learn's
    check_sample_weight_equivalence_on_dense_data fails for this estimator as it does for
    sklearn.cluster.KMeans; from the same given centroids, integer weights and repeated samples
    give the same clustering).

    Sparse input is not supported (dense arrays only).
    """

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", n_init: Any = "auto", max_iter: int = 300,
                 tol: float = 1e-4, verbose: int = 0, random_state: Any = None, copy_x: bool = True,
                 algorithm: str = "auto", n_threads: int = 0):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.n_threads = n_threads

    # -- scikit-learn plumbing --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"preserves_dtype": [np.float64, np.float32]}

    @property
    def _n_features_out(self):
        return self.cluster_centers_.shape[0]

    # -- validation ---------------------------------------------------------------------------------
    def _check_params(self, X):
        n = X.shape[0]
        if not isinstance(self.n_clusters, numbers.Integral) or isinstance(self.n_clusters, bool) \
                or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be an integer >= 1, got {self.n_clusters!r}")
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}.")
        if not isinstance(self.max_iter, numbers.Integral) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if not isinstance(self.tol, numbers.Real) or isinstance(self.tol, bool) or not self.tol >= 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        if self.algorithm not in ("auto", "lloyd", "elkan"):
            raise ValueError(f"algorithm must be 'auto', 'lloyd' or 'elkan', got {self.algorithm!r}")
        if not isinstance(self.n_threads, numbers.Integral) or self.n_threads < 0:
            raise ValueError(f"n_threads must be an integer >= 0 (0 = all cores), got {self.n_threads!r}")
        init = self.init
        is_array = hasattr(init, "__array__") or isinstance(init, (list, tuple))
        if not (is_array or callable(init) or (isinstance(init, str) and init in ("k-means++", "random"))):
            raise ValueError(f"init must be 'k-means++', 'random', a callable or an array of shape "
                             f"(n_clusters, n_features), got {init!r}")
        n_init = self.n_init
        if isinstance(n_init, str):
            if n_init != "auto":
                raise ValueError(f"n_init must be 'auto' or an integer >= 1, got {n_init!r}")
            n_init = 10 if isinstance(init, str) and init == "random" else 1
        elif not isinstance(n_init, numbers.Integral) or isinstance(n_init, bool) or n_init < 1:
            raise ValueError(f"n_init must be 'auto' or an integer >= 1, got {n_init!r}")
        if is_array and n_init != 1:
            warnings.warn(f"Explicit initial center position passed: performing only one init in {type(self).__name__}"
                          f" instead of n_init={n_init}.", RuntimeWarning, stacklevel=3)
            n_init = 1
        return int(n_init)

    def _check_centers(self, centers, X):
        centers = np.asarray(centers, dtype=X.dtype)
        if centers.ndim != 2 or centers.shape[0] != self.n_clusters:
            raise ValueError(f"The shape of the initial centers {centers.shape} does not match the number of "
                             f"clusters {self.n_clusters}.")
        if centers.shape[1] != X.shape[1]:
            raise ValueError(f"The shape of the initial centers {centers.shape} does not match the number of "
                             f"features of the data {X.shape[1]}.")
        if not np.all(np.isfinite(centers)):
            raise ValueError("The initial centers contain NaN or infinity: expected finite values.")
        return np.ascontiguousarray(centers, dtype=np.float32)

    @staticmethod
    def _check_weight(sample_weight, n):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
        if not np.all(np.isfinite(w)):
            raise ValueError("sample_weight contains NaN or infinity: expected finite values.")
        if np.any(w < 0):
            raise ValueError("Negative values in data passed to sample_weight: expected weights >= 0.")
        if not np.any(w > 0):
            raise ValueError("Sample weights must contain at least one non-zero number: all weights are zero.")
        return w

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Computes k-means clustering of X (n_samples, n_features); returns self."""
        X = _validate_data(self, X, accept_sparse=False, dtype=[np.float64, np.float32],
                           copy=False, accept_large_sparse=False)
        n_init = self._check_params(X)
        w = self._check_weight(sample_weight, X.shape[0])
        uniform = w is None or np.all(w == w[0])
        x32 = X if X.dtype == np.float32 else X.astype(np.float32)
        xp = A.prepare(x32)
        rs = check_random_state(self.random_state)
        tol = float(np.mean(np.var(X, axis=0))) * float(self.tol)
        tol = float(np.sqrt(tol)) if tol > 0 else _SMALLEST_TOL

        best = None
        for _ in range(n_init):
            seed = int(rs.randint(np.iinfo(np.int32).max))
            init, centers = self._initial(X, x32, w if not uniform else None, rs, seed)
            labels, c, n_iter = self._lloyd(xp, x32, w, init, centers, seed, tol) if not uniform else \
                self._lloyd_core(xp, init, centers, seed, tol)
            run = (labels, c, _sq_distances(X, c, labels, None if uniform else w), n_iter)
            if uniform and w is not None:  # equal weights: same clustering, inertia scaled
                run = (run[0], run[1], run[2] * float(w[0]), run[3])
            if best is None or run[2] < best[2]:
                best = run
        labels, centers, inertia, n_iter = best
        if len(np.unique(labels)) < self.n_clusters:
            warnings.warn(f"Number of distinct clusters ({len(np.unique(labels))}) found smaller than n_clusters "
                          f"({self.n_clusters}). Possibly due to duplicate points in X.", ConvergenceWarning,
                          stacklevel=2)
        self.cluster_centers_ = centers.astype(X.dtype, copy=False)
        self.labels_ = labels
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        return self

    def _initial(self, X, x32, w, rs, seed):
        """('k-means++' | 'given', centroids or None) for one run."""
        init = self.init
        if isinstance(init, str) and init == "k-means++":
            if w is None:
                return "k-means++", None  # in the compiled core
            return "given", _weighted_kmeans_plus_plus(x32, w, self.n_clusters, np.random.RandomState(seed))
        if isinstance(init, str) and init == "random":
            p = None if w is None else w / w.sum()
            if p is not None and np.count_nonzero(p) < self.n_clusters:
                raise ValueError(f"init='random' needs at least n_clusters={self.n_clusters} samples of non-zero "
                                 "weight")
            idx = rs.choice(X.shape[0], size=self.n_clusters, replace=False, p=p)
            return "given", np.ascontiguousarray(x32[np.sort(idx)])
        if callable(init):
            return "given", self._check_centers(init(X, self.n_clusters, random_state=rs), X)
        return "given", self._check_centers(init, X)

    def _progress(self):
        return progress_printer("euclidean", 1) if self.verbose else None

    def _lloyd_core(self, xp, init, centers, seed, tol):
        out = fit_core(xp, self.n_clusters, max_iter=self.max_iter, tol=tol, metric="euclidean", init=init,
                       init_centroids=centers, seed=seed, empty_clusters="relocate", algorithm=self.algorithm,
                       n_threads=self.n_threads, final_assignment=True, on_iteration=self._progress())
        return out.labels, out.centroids, out.n_iter[0]

    def _lloyd(self, xp, x32, w, init, centers, seed, tol):
        """Weighted Lloyd: the assignment in the compiled core, the weighted means in NumPy."""
        k, d = self.n_clusters, x32.shape[1]
        c = np.array(centers, dtype=np.float32)
        report = self._progress()
        labels = None
        n_iter = 0
        for it in range(1, self.max_iter + 1):
            previous = labels
            labels, dist = predict_core(xp, c, metric="euclidean", n_threads=self.n_threads, distances=True)
            mass = np.bincount(labels, weights=w, minlength=k)
            sums = np.empty((k, d))
            for j in range(d):
                sums[:, j] = np.bincount(labels, weights=w * x32[:, j], minlength=k)
            empty = np.flatnonzero(mass == 0)
            if empty.size:  # scikit-learn's rule: the points farthest from their centroids move there
                far = np.argsort(-dist.astype(np.float64) * (w > 0), kind="stable")[:empty.size]
                for e, i in zip(empty, far):
                    src = labels[i]
                    sums[src] -= w[i] * x32[i]
                    mass[src] -= w[i]
                    sums[e], mass[e] = w[i] * x32[i], w[i]
            moved = np.nonzero(mass > 0)[0]
            new = c.copy()
            new[moved] = (sums[moved] / mass[moved, None]).astype(np.float32)
            shift = float(np.sqrt(np.max(np.sum((new.astype(np.float64) - c) ** 2, axis=1))))
            n_iter = it
            if report:
                changed = labels.size if previous is None else int(np.count_nonzero(labels != previous))
                report(0, it, shift, float(np.dot(w, dist)), changed)
            c = new
            if shift < tol:
                break
        labels, _ = predict_core(xp, c, metric="euclidean", n_threads=self.n_threads)
        return labels, c, n_iter

    # -- predict / transform / score ------------------------------------------------------------------
    def _check_test_data(self, X):
        check_is_fitted(self)
        return _validate_data(self, X, accept_sparse=False, dtype=[np.float64, np.float32],
                              reset=False)

    def predict(self, X):
        """Index (int32) of the closest cluster center for each sample of X."""
        X = self._check_test_data(X)
        labels, _ = predict_core(A.prepare(X), self.cluster_centers_.astype(np.float32, copy=False),
                                 metric="euclidean", n_threads=self.n_threads)
        return labels

    def fit_predict(self, X, y=None, sample_weight=None):
        """fit(X), then labels_."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distances (n_samples, n_clusters) of X to every cluster center, in X's dtype."""
        X = self._check_test_data(X)
        c = self.cluster_centers_.astype(np.float64)
        out = np.empty((X.shape[0], c.shape[0]), dtype=X.dtype)
        cc = np.einsum("ij,ij->i", c, c)
        step = max(1, (1 << 22) // max(1, c.shape[0]))
        for s in range(0, X.shape[0], step):
            xs = X[s:s + step].astype(np.float64)
            sq = np.einsum("ij,ij->i", xs, xs)[:, None] - 2.0 * xs @ c.T + cc[None, :]
            out[s:s + step] = np.sqrt(np.maximum(sq, 0.0))
        return out

    def fit_transform(self, X, y=None, sample_weight=None):
        """fit(X), then transform(X)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the (weighted) sum of squared distances of X to its closest centers."""
        X = self._check_test_data(X)
        w = self._check_weight(sample_weight, X.shape[0])
        labels, _ = predict_core(A.prepare(X if X.dtype == np.float32 else X.astype(np.float32)),
                                 self.cluster_centers_.astype(np.float32, copy=False), metric="euclidean",
                                 n_threads=self.n_threads)
        return -_sq_distances(X, self.cluster_centers_, labels, w)


def _sq_distances(x: np.ndarray, c: np.ndarray, labels: np.ndarray, w: Optional[np.ndarray]) -> float:
    """(Weighted) sum of ||x_i - c[label_i]||^2, from the differences, in float64: exact where the
    expanded ||x||^2 - 2 x.c + ||c||^2 loses digits (points far from the origin, tight clusters)."""
    c = np.asarray(c, dtype=np.float64)
    total = 0.0
    for s in range(0, x.shape[0], 16384):
        diff = x[s:s + 16384].astype(np.float64) - c[labels[s:s + 16384]]
        per = np.einsum("ij,ij->i", diff, diff)
        total += float(per.sum() if w is None else np.dot(w[s:s + 16384], per))
    return total


def _weighted_kmeans_plus_plus(x: np.ndarray, w: np.ndarray, k: int, rs: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ with sample weights: each new centroid is the best (lowest weighted
    potential) of 2 + ln K candidates drawn with probability proportional to weight x squared
    distance to the nearest chosen centroid."""
    n, d = x.shape
    trials = 2 + int(np.log(k))
    xd = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", xd, xd)

    def sqdist(rows):
        c = xd[rows]
        return np.maximum(sq[:, None] - 2.0 * xd @ c.T + np.einsum("ij,ij->i", c, c)[None, :], 0.0)

    centers = np.empty((k, d), dtype=np.float32)
    first = rs.choice(n, p=w / w.sum())
    centers[0] = x[first]
    closest = sqdist([first])[:, 0]
    for c in range(1, k):
        cum = np.cumsum(w * closest)
        if cum[-1] <= 0:  # every weighted point already sits on a centroid
            cand = rs.choice(n, size=trials, p=w / w.sum())
        else:
            cand = np.minimum(np.searchsorted(cum, rs.uniform(size=trials) * cum[-1], side="right"), n - 1)
        dist = np.minimum(closest[:, None], sqdist(cand))
        best = int(np.argmin(w @ dist))
        closest = dist[:, best]
        centers[c] = x[cand[best]]
    return centers
