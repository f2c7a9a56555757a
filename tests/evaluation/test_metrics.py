"""Generation metrics against closed forms and SciPy references."""
import math

import numpy as np
import pytest

from audiodiff.evaluation import metrics as M


def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_sqrtm_psd_squares_back_and_matches_scipy():
    rng = np.random.default_rng(0)
    a = _random_spd(rng, 12)
    s = M.sqrtm_psd(a)
    np.testing.assert_allclose(s @ s, a, atol=1e-10)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    np.testing.assert_allclose(s, scipy_linalg.sqrtm(a).real, atol=1e-8)


def test_sqrtm_psd_rejects_indefinite_matrix():
    with pytest.raises(ValueError, match="not positive semi-definite"):
        M.sqrtm_psd(np.diag([1.0, -1.0]))


def test_frechet_distance_of_1d_gaussians_is_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    d = M.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
    assert d == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    v1, v2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_full_covariances_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(rng, 10), _random_spd(rng, 10)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    # symmetric in its arguments
    assert M.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ref, rel=1e-8)


def test_frechet_distance_features_self_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 16))
    noise = rng.standard_normal(x.shape)
    assert M.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)
    values = [M.frechet_distance_features(x, x + s * noise) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-8)
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_frechet_distance_sample_estimate_converges_to_closed_form():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((20000, 3)) * [1.0, 2.0, 0.5]
    b = rng.standard_normal((20000, 3)) * [2.0, 2.0, 0.5] + [1.0, 0.0, 0.0]
    # closed form: |dmu|^2 = 1, sum (sqrt(v1) - sqrt(v2))^2 = (1 - 2)^2 = 1
    assert M.frechet_distance_features(a, b) == pytest.approx(2.0, abs=0.1)


def test_frechet_rejects_bad_shapes():
    with pytest.raises(ValueError, match="dimension"):
        M.frechet_distance_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        M.gaussian_stats(np.zeros((1, 3)))


def _smoothed_one_hot(k, per_class, eps):
    rows = []
    for i in range(k):
        p = np.full(k, eps / (k - 1))
        p[i] = 1 - eps
        rows += [p] * per_class
    return np.array(rows)


@pytest.mark.parametrize("k", [2, 10])
def test_inception_score_uniform_is_one_and_confident_balanced_is_k(k):
    uniform = np.full((50, k), 1.0 / k)
    assert M.inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-12)
    one_hot = np.eye(k)[np.arange(5 * k) % k]
    assert M.inception_score(one_hot)[0] == pytest.approx(k, rel=1e-9)
    # confident but collapsed onto one class: no diversity -> 1
    assert M.inception_score(np.eye(k)[np.zeros(20, int)])[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_matches_scipy_entropy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(7, 0.3), size=200)
    marginal = p.mean(axis=0)
    ref = math.exp(np.mean([stats.entropy(row, marginal) for row in p]))
    assert M.inception_score(p)[0] == pytest.approx(ref, rel=1e-9)
    mean, std = M.inception_score(p, splits=4)
    manual = [M.inception_score(p[i * 50:(i + 1) * 50])[0] for i in range(4)]
    assert mean == pytest.approx(np.mean(manual)) and std == pytest.approx(np.std(manual))


@pytest.mark.parametrize("k", [2, 10])
def test_modified_inception_score_closed_forms(k):
    assert M.modified_inception_score(np.full((30, k), 1.0 / k))[0] == pytest.approx(1.0, abs=1e-12)
    # identical (even confident) predictions: every pairwise KL is 0
    same = np.tile(np.random.default_rng(6).dirichlet(np.ones(k)), (25, 1))
    assert M.modified_inception_score(same)[0] == pytest.approx(1.0, abs=1e-12)
    # eps-smoothed one-hot rows, balanced: KL between two classes is
    # (1 - eps - eps/(k-1)) * log((1 - eps)(k-1)/eps), and (k-1)/k of the pairs differ in class
    eps = 0.05
    p = _smoothed_one_hot(k, 4, eps)
    kl = (1 - eps - eps / (k - 1)) * math.log((1 - eps) * (k - 1) / eps)
    assert M.modified_inception_score(p)[0] == pytest.approx(math.exp((k - 1) / k * kl), rel=1e-9)
    # and IS for the same set: exp(log k - H(row))
    h = -(1 - eps) * math.log(1 - eps) - eps * math.log(eps / (k - 1))
    assert M.inception_score(p)[0] == pytest.approx(k * math.exp(-h), rel=1e-9)


def test_modified_inception_score_matches_pairwise_scipy_kl():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(5), size=30)
    ref = math.exp(np.mean([[stats.entropy(a, b) for b in p] for a in p]))
    assert M.modified_inception_score(p, chunk=7)[0] == pytest.approx(ref, rel=1e-9)


def test_class_accuracy_and_validation():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert M.class_accuracy(p, [0, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="class indices"):
        M.class_accuracy(p, [0, 1, 2])
    with pytest.raises(ValueError, match="probability vectors"):
        M.inception_score(np.array([[0.5, 0.6]]))
    out = M.score_predictions(p, [0, 1, 1])
    assert set(out) >= {"accuracy", "inception_score", "modified_inception_score", "n"}
