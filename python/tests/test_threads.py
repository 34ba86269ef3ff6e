"""The GIL is released during compute: other Python threads run meanwhile, and concurrent fits give
the results of sequential ones."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import flashkmeans as fk
from conftest import gauss


def test_other_threads_run_during_a_fit():
    x = gauss((1, 60000, 32))
    c0 = x[:, :200].copy()
    ticks = []
    done = threading.Event()

    def fit():
        fk.batch_kmeans_Euclid(x, 200, max_iters=8, init_centroids=c0, algorithm="lloyd", n_threads=1)
        done.set()

    worker = threading.Thread(target=fit)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():  # this loop needs the GIL: it only ticks while the fit does not hold it
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.05, "the fit was too quick to tell"
    assert len(ticks) >= 0.25 * elapsed / 0.0012, (len(ticks), elapsed)
    gaps = np.diff(ticks)
    assert gaps.max() < max(0.1, elapsed / 3), gaps.max()  # never blocked for the whole fit


def test_concurrent_fits_equal_sequential_ones():
    data = [gauss((2, 3000, 8), seed=s) for s in range(6)]

    def run(x):
        return fk.batch_kmeans_Euclid(x, 16, max_iters=5, seed=1)

    sequential = [run(x) for x in data]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, data))
    for (a, b, n), (c, d, m) in zip(sequential, concurrent):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert n == m


def test_verbose_from_threads(capsys):
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda s: fk.FlashKMeans(4, 3, niter=3, verbose=True).fit(gauss((300, 4), seed=s)), range(3)))
    assert len(capsys.readouterr().out.strip().splitlines()) == 9


def test_concurrent_predicts_and_fits_of_every_metric_equal_sequential_ones():
    jobs = [(metric, gauss((1, 2000, 12), seed=s)) for s, metric in enumerate(["euclidean", "cosine", "dot"] * 3)]

    def run(job):
        metric, x = job
        model = fk.FlashKMeans(12, 10, niter=4, metric=metric, seed=3).fit(x[0])
        return model.centroids, model.cluster_ids_b, model.predict(x[0])

    sequential = [run(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(run, jobs))
    for want, got in zip(sequential, concurrent):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
