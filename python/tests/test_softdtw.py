"""Soft-DTW: against a plain numpy implementation, the command line (bit for bit), the Cython
`soft-dtw` package and tslearn when installed, and finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scorefollow as sf


def sqeuclid(X, Y):
    return ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)


def cosine(X, Y):
    nx = np.linalg.norm(X, axis=1)[:, None]
    ny = np.linalg.norm(Y, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = 1.0 - (X @ Y.T) / (nx * ny)
    c[(nx == 0).repeat(len(Y), 1) | (ny == 0).repeat(len(X), 0)] = 1.0
    return c


def softmin(a, b, c, gamma):
    z = -np.array([a, b, c]) / gamma
    m = z.max()
    if not np.isfinite(m):
        return np.inf
    return -gamma * (m + np.log(np.exp(z - m).sum()))


def reference_value_and_E(C, gamma):
    """The textbook recursions (Cuturi & Blondel 2017, Algorithms 1 and 2), cell by cell."""
    n, m = C.shape
    R = np.full((n + 2, m + 2), np.inf)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            R[i, j] = C[i - 1, j - 1] + softmin(R[i - 1, j - 1], R[i - 1, j], R[i, j - 1], gamma)
    D = np.zeros((n + 2, m + 2))
    D[1 : n + 1, 1 : m + 1] = C
    R[1 : n + 1, m + 1] = -np.inf
    R[n + 1, 1 : m + 1] = -np.inf
    R[n + 1, m + 1] = R[n, m]
    E = np.zeros((n + 2, m + 2))
    E[n + 1, m + 1] = 1.0
    for i in range(n, 0, -1):
        for j in range(m, 0, -1):
            a = np.exp((R[i + 1, j] - R[i, j] - D[i + 1, j]) / gamma)
            b = np.exp((R[i, j + 1] - R[i, j] - D[i, j + 1]) / gamma)
            c = np.exp((R[i + 1, j + 1] - R[i, j] - D[i + 1, j + 1]) / gamma)
            E[i, j] = E[i + 1, j] * a + E[i, j + 1] * b + E[i + 1, j + 1] * c
    return R[n, m], E[1 : n + 1, 1 : m + 1]


@pytest.mark.parametrize("n,m,d,gamma", [(1, 1, 3, 1.0), (7, 11, 12, 0.1), (23, 17, 2, 2.5), (40, 40, 12, 1.0)])
@pytest.mark.parametrize("cost", ["sqeuclidean", "cosine"])
def test_value_and_E_match_the_textbook_recursions(n, m, d, gamma, cost):
    rng = np.random.default_rng(n * 100 + m)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    C = sqeuclid(X, Y) if cost == "sqeuclidean" else cosine(X, Y)
    want_v, want_E = reference_value_and_E(C, gamma)
    v = sf.soft_dtw(X, Y, gamma, cost=cost)
    v2, E = sf.soft_dtw_grad(X, Y, gamma, cost=cost)
    assert v == pytest.approx(want_v, rel=1e-10, abs=1e-10)
    assert v2 == v
    assert E.shape == (n, m) and E.dtype == np.float64
    np.testing.assert_allclose(E, want_E, atol=1e-9)
    # The same from the cost matrix.
    vp, Ep = sf.soft_dtw_grad(C, None, gamma, cost="precomputed")
    assert vp == pytest.approx(want_v, rel=1e-10, abs=1e-10)
    assert sf.soft_dtw(C, gamma=gamma, cost="precomputed") == vp
    np.testing.assert_allclose(Ep, want_E, atol=1e-9)


def test_dtw_is_the_minimum_path_cost():
    rng = np.random.default_rng(3)
    X, Y = rng.random((9, 4)), rng.random((13, 4))
    C = sqeuclid(X, Y)
    R = np.full((10, 14), np.inf)
    R[0, 0] = 0
    for i in range(1, 10):
        for j in range(1, 14):
            R[i, j] = C[i - 1, j - 1] + min(R[i - 1, j - 1], R[i - 1, j], R[i, j - 1])
    assert sf.dtw(X, Y) == pytest.approx(R[9, 13], rel=1e-12)
    assert sf.dtw(C, cost="precomputed") == pytest.approx(R[9, 13], rel=1e-12)
    # gamma -> 0 tends to it
    assert sf.soft_dtw(X, Y, 1e-4) == pytest.approx(R[9, 13], abs=1e-2)


def fd_grad(f, X, h=1e-6):
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        G[idx] = (f(Xp) - f(Xm)) / (2 * h)
    return G


@pytest.mark.parametrize("cost", ["sqeuclidean", "cosine"])
def test_gradients_with_respect_to_X_match_finite_differences(cost):
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((8, 3))
    v, G = sf.soft_dtw_grad(X, Y, 0.7, cost=cost, wrt="X")
    assert G.shape == X.shape
    np.testing.assert_allclose(G, fd_grad(lambda Z: sf.soft_dtw(Z, Y, 0.7, cost=cost), X), atol=1e-5)
    dv, dG = sf.soft_dtw_divergence(X, Y, 0.7, cost=cost, grad=True)
    assert dv == sf.soft_dtw_divergence(X, Y, 0.7, cost=cost)
    np.testing.assert_allclose(
        dG, fd_grad(lambda Z: sf.soft_dtw_divergence(Z, Y, 0.7, cost=cost), X), atol=1e-5
    )


def test_divergence_is_zero_on_itself_and_symmetric():
    rng = np.random.default_rng(8)
    X, Y = rng.random((30, 12)), rng.random((25, 12))
    assert abs(sf.soft_dtw_divergence(X, X)) < 1e-9
    assert sf.soft_dtw_divergence(X, Y) == pytest.approx(sf.soft_dtw_divergence(Y, X), rel=1e-12)
    assert sf.soft_dtw_divergence(X, Y) > 0


def test_batch_equals_one_call_per_pair():
    rng = np.random.default_rng(11)
    Xs = [rng.random((int(rng.integers(1, 60)), 12)) for _ in range(9)]
    Ys = [rng.random((int(rng.integers(1, 60)), 12)) for _ in range(9)]
    vals = sf.soft_dtw_batch(Xs, Ys, 0.5)
    assert vals.dtype == np.float64 and vals.shape == (9,)
    assert list(vals) == [sf.soft_dtw(x, y, 0.5) for x, y in zip(Xs, Ys)]
    divs = sf.soft_dtw_batch(Xs, Ys, 0.5, divergence=True, band=None)
    assert list(divs) == [sf.soft_dtw_divergence(x, y, 0.5) for x, y in zip(Xs, Ys)]
    Cs = [sqeuclid(x, y) for x, y in zip(Xs, Ys)]
    assert list(sf.soft_dtw_batch(Cs, None, 0.5, cost="precomputed")) == [
        sf.soft_dtw(c, None, 0.5, cost="precomputed") for c in Cs
    ]


def test_threads_give_the_same_bits():
    # Long enough for several stripes of rows, so the pipeline really runs on threads.
    rng = np.random.default_rng(12)
    X, Y = rng.random((700, 12)), rng.random((500, 12))
    one = sf.soft_dtw(X, Y, 0.7, threads=1)
    for threads in (0, 2, 3):
        assert sf.soft_dtw(X, Y, 0.7, threads=threads) == one
    assert sf.soft_dtw(X, Y, 0.7, cost="cosine", band=50, threads=2) == sf.soft_dtw(
        X, Y, 0.7, cost="cosine", band=50, threads=1
    )
    with pytest.raises(sf.ScorefollowError, match="invalid threads"):
        sf.soft_dtw(X, Y, threads=-1)


def test_univariate_and_non_contiguous_inputs():
    x = np.arange(10.0)
    y = np.arange(0.0, 20.0, 2.0)
    assert sf.soft_dtw(x, y) == sf.soft_dtw(x[:, None], y[:, None])
    rng = np.random.default_rng(2)
    X = rng.random((12, 20))[:, ::2]  # a strided view
    Y = np.asfortranarray(rng.random((15, 10)))
    assert sf.soft_dtw(X, Y) == sf.soft_dtw(np.ascontiguousarray(X), np.ascontiguousarray(Y))


# ------------------------------------------------------------------ against the command line


def write_seq(path, a):
    np.savetxt(path, a, delimiter=",", fmt="%.17g")  # round-trips every float64


@pytest.mark.parametrize("cost,band", [("sqeuclidean", None), ("cosine", None), ("sqeuclidean", 6)])
def test_same_numbers_as_the_cli_on_feature_csvs(cli, tmp_path, cost, band):
    rng = np.random.default_rng(21)
    X, Y = rng.random((70, 12)), rng.random((55, 12))
    write_seq(tmp_path / "x.csv", X)
    write_seq(tmp_path / "y.csv", Y)
    extra = ["--band", band] if band is not None else []
    out = cli("softdtw", tmp_path / "x.csv", tmp_path / "y.csv", "--gamma", "0.3", "--cost", cost, "--json", *extra).stdout
    got = json.loads(out)
    assert sf.soft_dtw(X, Y, 0.3, cost=cost, band=band) == got["value"]
    assert sf.dtw(X, Y, cost=cost, band=band) == got["dtw"]
    assert sf.soft_dtw_divergence(X, Y, 0.3, cost=cost, band=band) == got["divergence"]
    cli("softdtw", tmp_path / "x.csv", tmp_path / "y.csv", "--gamma", "0.3", "--cost", cost,
        "--grad", tmp_path / "E.csv", *extra)
    E_cli = np.loadtxt(tmp_path / "E.csv", delimiter=",")
    _, E = sf.soft_dtw_grad(X, Y, 0.3, cost=cost, band=band)
    assert np.array_equal(E, E_cli)


def test_same_numbers_as_the_cli_on_recordings(cli):
    from conftest import piece

    a, b = piece("bach_bwv66_6")["performance"], piece("mozart_k331")["performance"]
    got = json.loads(cli("softdtw", a, b, "--json").stdout)
    X = sf.chroma(a).astype(np.float64)
    Y = sf.chroma(b).astype(np.float64)
    assert sf.soft_dtw(X, Y) == got["value"]
    assert sf.dtw(X, Y) == got["dtw"]
    assert sf.soft_dtw_divergence(X, Y) == got["divergence"]


# ------------------------------------------------------------------ peers, when installed


def test_agrees_with_the_cython_soft_dtw_package():
    sdtw = pytest.importorskip("sdtw")
    from sdtw.distance import SquaredEuclidean

    rng = np.random.default_rng(4)
    for n, m, gamma in [(1, 1, 1.0), (30, 45, 1.0), (200, 180, 0.1)]:
        X, Y = rng.standard_normal((n, 12)), rng.standard_normal((m, 12))
        D = SquaredEuclidean(X, Y)
        s = sdtw.SoftDTW(D, gamma=gamma)
        v = s.compute()
        E = s.grad()
        v2, E2 = sf.soft_dtw_grad(X, Y, gamma)
        assert v2 == pytest.approx(v, rel=1e-10)
        np.testing.assert_allclose(E2, E, atol=1e-9)
        G = D.jacobian_product(E)
        _, G2 = sf.soft_dtw_grad(X, Y, gamma, wrt="X")
        np.testing.assert_allclose(G2, G, rtol=1e-7, atol=1e-7)


def test_agrees_with_tslearn():
    metrics = pytest.importorskip("tslearn.metrics")
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((40, 12)), rng.standard_normal((50, 12))
    s = metrics.SoftDTW(metrics.SquaredEuclidean(X, Y), gamma=0.5)
    v = s.compute()
    v2, E2 = sf.soft_dtw_grad(X, Y, 0.5)
    assert v2 == pytest.approx(v, rel=1e-10)
    np.testing.assert_allclose(E2, np.asarray(s.grad()), atol=1e-9)
