"""genlab's metrics against reference implementations and closed forms (the scoreboard trusts these).

* precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020) against
  their published equations recomputed independently here in float64 numpy, and against the
  reference package ``prdc`` (``compute_prdc``, NAVER) when it is installed (test extra);
* the Frechet distance against ``scipy.linalg.sqrtm`` at the scale of FID-MNIST (128-d) and
  against the closed form for two diagonal Gaussians;
* the IWAE estimate (:func:`genlab.likelihood.importance_weighted_nll`) against the exact
  log-likelihood of a linear-Gaussian VAE (probabilistic PCA).

Conventions, stated once: both k-NN radii exclude the point itself (the k-th nearest *other*
point, as ``prdc`` does by taking the (k+1)-th smallest distance including the zero to itself);
genlab's balls are closed (``<=``) and ``prdc``'s open (``<``), which only differs when a
distance equals a radius exactly (pinned by a test with duplicated points below).
See: book/04_practice/evaluation.ipynb.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from genlab.likelihood import importance_weighted_nll
from genlab.metrics import MetricWarning, density_coverage, evaluate_images, frechet_distance, precision_recall

# --- the published equations, recomputed independently -------------------------------------------


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact pairwise Euclidean distances (len(a), len(b)) in float64, by broadcasting (no BLAS trick)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    rows = [np.sqrt(((part[:, None, :] - b[None, :, :]) ** 2).sum(-1)) for part in np.array_split(a, -(-len(a) // 64))]
    return np.concatenate(rows)  # (len(a), len(b)), 64 rows at a time


def _kth_other(points: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest *other* point (N,)."""
    d = _distances(points, points)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int, strict: bool = False) -> dict[str, float]:
    """Kynkaanniemi et al. (2019) precision/recall and Naeem et al. (2020) density/coverage.

    precision = 1/M sum_j 1[exists i: ||y_j - x_i|| <= r_i]     (r_i: real k-NN radius)
    recall    = 1/N sum_i 1[exists j: ||x_i - y_j|| <= s_j]     (s_j: fake k-NN radius)
    density   = 1/(k M) sum_j sum_i 1[||y_j - x_i|| <= r_i]
    coverage  = 1/N sum_i 1[min_j ||x_i - y_j|| <= r_i]
    ``strict=True`` uses ``<`` everywhere (the prdc package's choice).
    """
    inside = np.less if strict else np.less_equal
    r, s = _kth_other(real, k), _kth_other(fake, k)
    d = _distances(real, fake)  # (N, M)
    in_real_balls = inside(d, r[:, None])  # (N, M): fake j inside real ball i
    return {"precision": in_real_balls.any(axis=0).mean(),
            "recall": inside(d, s[None, :]).any(axis=1).mean(),
            "density": in_real_balls.sum() / (k * len(fake)),
            "coverage": inside(d.min(axis=1), r).mean()}


def _feature_pair(seed: int, n_real: int, n_fake: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Real: a correlated Gaussian; fake: shifted and with a few outliers (all four metrics in (0, 1))."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / math.sqrt(dim)
    real = rng.normal(size=(n_real, dim)) @ mixing
    fake = (rng.normal(size=(n_fake, dim)) + 0.3) @ mixing
    fake[: max(1, n_fake // 50)] *= 4.0  # outliers: inflate the fake manifold (recall) but not coverage
    return real.astype(np.float32), fake.astype(np.float32)


CASES = [  # seed, n_real, n_fake, dim, k
    (0, 200, 200, 2, 1),
    (1, 300, 250, 16, 3),
    (2, 400, 500, 64, 5),
    (3, 600, 600, 128, 5),
    (4, 350, 300, 8, 10),
]


def _genlab_prdc(real: np.ndarray, fake: np.ndarray, k: int, chunk_size: int = 97) -> dict[str, float]:
    # a chunk size that divides nothing exercises the chunked loops
    return {**precision_recall(real, fake, k=k, chunk_size=chunk_size),
            **density_coverage(real, fake, k=k, chunk_size=chunk_size)}


@pytest.mark.parametrize("seed, n_real, n_fake, dim, k", CASES)
def test_genlab_matches_the_published_equations(seed, n_real, n_fake, dim, k):
    real, fake = _feature_pair(seed, n_real, n_fake, dim)
    expected = reference_prdc(real, fake, k)
    got = _genlab_prdc(real, fake, k)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert all(0 < got[name] < 1 for name in ("precision", "recall", "coverage")) and got["density"] > 0, got
    # continuous features never sit exactly on a radius: open and closed balls agree
    assert reference_prdc(real, fake, k, strict=True) == expected


@pytest.mark.parametrize("seed, n_real, n_fake, dim, k", CASES)
def test_genlab_matches_the_prdc_package(seed, n_real, n_fake, dim, k):
    prdc = pytest.importorskip("prdc", reason="the reference package prdc is in the test extra "
                                              "(pip install prdc); the equations are checked without it")
    real, fake = _feature_pair(seed, n_real, n_fake, dim)
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        reference = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    got = _genlab_prdc(real, fake, k)
    for name in ("precision", "recall", "density", "coverage"):
        assert got[name] == pytest.approx(float(reference[name]), abs=1e-6), name


def test_density_is_about_one_and_coverage_high_for_the_same_distribution():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    got = density_coverage(real, fake, k=5)
    # Naeem et al. (2020): E[density] = 1 and coverage -> 1 - (1/2)^k = 0.97 for identical distributions
    assert got["density"] == pytest.approx(1.0, abs=0.1)
    assert got["coverage"] == pytest.approx(1 - 0.5 ** 5, abs=0.03)


def test_density_and_coverage_resist_outliers_where_precision_and_recall_do_not():
    """The paper's motivating example: one real outlier inflates precision, one fake outlier recall."""
    rng = np.random.default_rng(6)
    real = rng.normal(size=(1000, 16))
    fake_far = rng.normal(size=(1000, 16)) + 5.0  # entirely off the real distribution
    real_with_outlier = np.vstack([real, 40 * np.ones((1, 16))])
    fake_with_outlier = np.vstack([fake_far, -40 * np.ones((1, 16))])
    pr = precision_recall(real_with_outlier, fake_with_outlier, k=5)
    dc = density_coverage(real_with_outlier, fake_with_outlier, k=5)
    assert pr["precision"] > 0.9  # the real outlier's huge ball swallows the far-off fakes
    assert pr["recall"] > 0.9  # the fake outlier's huge ball swallows the real points
    assert dc["density"] == pytest.approx(1 / 5, abs=0.01)  # each fake lies in one ball only: 1/k
    assert dc["coverage"] < 0.01  # only the outlier's ball holds fakes


def test_closed_balls_differ_from_prdc_only_on_exact_ties():
    """Integer features put distances exactly on the radii: closed balls count them, open ones do not."""
    real = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)  # k=1 radii: all 1
    fake = np.array([[4.0], [5.0], [6.0], [7.0]], dtype=np.float32)  # 4 sits at distance 1 from 3
    closed, open_ = reference_prdc(real, fake, k=1), reference_prdc(real, fake, k=1, strict=True)
    got = _genlab_prdc(real, fake, k=1)
    assert got == pytest.approx(closed)
    assert (closed["precision"], open_["precision"]) == (0.25, 0.0)
    assert (closed["recall"], open_["recall"]) == (0.25, 0.0)
    assert (closed["density"], open_["density"]) == (0.25, 0.0)
    assert (closed["coverage"], open_["coverage"]) == (0.25, 0.0)


def test_density_coverage_rejects_bad_input_and_warns_on_collapse():
    real = np.random.default_rng(7).normal(size=(50, 4))
    with pytest.raises(ValueError, match="k must be a positive int"):
        density_coverage(real, real, k=0)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        density_coverage(real, real[:, :3])
    with pytest.raises(ValueError, match="at least 6 rows"):
        density_coverage(real[:5], real, k=5)
    with pytest.raises(ValueError, match="NaN"):
        density_coverage(real, np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match="chunk_size"):
        density_coverage(real, real, chunk_size=0)
    with pytest.warns(MetricWarning, match="density_coverage: the 20 fake samples have almost no spread"):
        density_coverage(real, np.zeros((20, 4)))


def test_evaluate_images_adds_density_coverage_only_when_asked():
    class Features(nn.Module):  # a parameter-free stand-in classifier: features = mean-pooled pixels
        def features(self, x):
            return nn.functional.avg_pool2d(x, 7).flatten(1)  # (B, 16)

        def head(self, f):
            return f[:, :10]

    images = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    fake = images[:150].clamp(0.2, 0.9)
    real = images[150:]
    classifier = Features().eval()
    base = evaluate_images(fake, real, classifier)
    assert set(base) == {"fid", "inception_score", "precision", "recall"}
    both = evaluate_images(fake, real, classifier, density_coverage_k=5)
    assert set(both) == set(base) | {"density", "coverage"}
    assert {key: both[key] for key in base} == base  # the default keys and values never change
    feats_fake, feats_real = classifier.features(fake), classifier.features(real)
    assert both["density"] == pytest.approx(density_coverage(feats_real, feats_fake, k=5)["density"])
    with pytest.raises(ValueError, match="density_coverage_k"):
        evaluate_images(fake, real, classifier, density_coverage_k=0)


# --- Frechet distance ----------------------------------------------------------------------------


def _with_exact_moments(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n points whose sample mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = np.linalg.solve(np.linalg.cholesky(np.cov(z.T)), z.T).T  # sample covariance = I
    return z @ np.linalg.cholesky(cov).T + mean


def _scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The pytorch-fid / TTUR recipe: scipy sqrtm of S_a S_b, real part."""
    linalg = pytest.importorskip("scipy.linalg")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = linalg.sqrtm(cov_a @ cov_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(cross)))


@pytest.mark.parametrize("seed, n, dim, condition", [(0, 1000, 128, 1e2), (1, 600, 32, 1e4), (2, 3000, 128, 1e3)])
def test_frechet_distance_agrees_with_scipy_at_fid_mnist_scale(seed, n, dim, condition):
    """Random features with a known, badly conditioned covariance, at the size of FID-MNIST's features."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    cov_a = rotation @ np.diag(np.geomspace(1.0, 1.0 / condition, dim)) @ rotation.T
    cov_b = 0.5 * cov_a + 0.5 * np.diag(rng.uniform(0.01, 1.0, dim))  # does not commute with cov_a
    a = rng.multivariate_normal(np.zeros(dim), cov_a, size=n)
    b = rng.multivariate_normal(np.full(dim, 0.05), cov_b, size=n)
    expected = _scipy_frechet(a, b)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert frechet_distance(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(expected, rel=1e-4)


def test_frechet_distance_closed_form_for_diagonal_gaussians_at_128_dims():
    """d^2 = sum_i (m_a,i - m_b,i)^2 + (sqrt(v_a,i) - sqrt(v_b,i))^2 for diagonal covariances."""
    rng = np.random.default_rng(3)
    dim = 128
    mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
    var_a, var_b = rng.uniform(0.1, 4.0, dim), rng.uniform(0.1, 4.0, dim)
    a = _with_exact_moments(mean_a, np.diag(var_a), 400, seed=4)
    b = _with_exact_moments(mean_b, np.diag(var_b), 500, seed=5)
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert _scipy_frechet(a, b) == pytest.approx(expected, rel=1e-6)  # the two references agree too


# --- the IWAE estimate against an exact likelihood -----------------------------------------------


class ProbabilisticPCA(nn.Module):
    """A linear-Gaussian VAE: p(z) = N(0, I_d), p(x|z) = N(W z + b, s^2 I_n), so p(x) = N(b, W W^T + s^2 I).

    W has *non*-orthogonal columns: the exact posterior N(M^{-1} W^T (x - b), s^2 M^{-1}) with
    M = W^T W + s^2 I has a full covariance, which a diagonal q(z|x) cannot represent. The encoder
    here uses the exact posterior mean and the exact marginal variances (the diagonal of the exact
    covariance), times ``var_scale``: a good but imperfect q, as in a trained VAE.
    """

    likelihood = "gaussian"
    num_classes = None

    def __init__(self, n: int = 10, d: int = 3, var_scale: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        weight = torch.randn(n, d, generator=g, dtype=torch.float64)
        weight[:, 1] += 0.8 * weight[:, 0]  # correlated columns: a non-diagonal posterior
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.randn(n, generator=g, dtype=torch.float64))
        self.decoder_logvar = nn.Parameter(torch.tensor(math.log(0.5), dtype=torch.float64))
        self.var_scale = var_scale

    def _posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        s2 = self.decoder_logvar.exp()
        m = self.weight.T @ self.weight + s2 * torch.eye(self.weight.shape[1], dtype=torch.float64)
        m_inv = torch.linalg.inv(m)
        return m_inv @ self.weight.T, s2 * m_inv  # (d, n) mean map, (d, d) covariance

    def encode(self, x, labels=None):
        mean_map, cov = self._posterior()
        mean = (x - self.bias) @ mean_map.T  # (B, d)
        logvar = (self.var_scale * torch.diagonal(cov)).log().expand_as(mean)
        return mean, logvar

    def decode(self, z, labels=None):
        return z @ self.weight.T + self.bias  # (B, n)

    def exact_nll(self, x: torch.Tensor) -> np.ndarray:
        """-log N(x; b, W W^T + s^2 I) per row, in numpy (independent of torch.distributions)."""
        w, b = self.weight.numpy(), self.bias.numpy()
        cov = w @ w.T + math.exp(self.decoder_logvar.item()) * np.eye(len(b))
        centred = x.numpy() - b
        _, logdet = np.linalg.slogdet(cov)
        mahalanobis = np.einsum("bi,ij,bj->b", centred, np.linalg.inv(cov), centred)
        return 0.5 * (len(b) * math.log(2 * math.pi) + logdet + mahalanobis)

    def sample_x(self, num: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(num, self.weight.shape[1], generator=g, dtype=torch.float64)
        noise = torch.randn(num, len(self.bias), generator=g, dtype=torch.float64)
        return self.decode(z) + self.decoder_logvar.exp().sqrt().detach() * noise


def test_iwae_nll_is_an_upper_bound_that_converges_to_the_exact_nll():
    model = ProbabilisticPCA(var_scale=1.0)
    x = model.sample_x(200, seed=1)
    exact = float(model.exact_nll(x).mean())
    ks = (1, 10, 100, 1000)
    estimates = {k: importance_weighted_nll(model, x, num_samples=k, batch_size=100,
                                            generator=torch.Generator().manual_seed(k))["nats"] for k in ks}
    gaps = [estimates[k] - exact for k in ks]  # measured: 1.43, 0.053, 0.012, -0.0007 nats
    # -L_k >= -log p(x) in expectation and E[-L_k] decreases in k (Burda et al. 2016, Theorem 1)
    assert gaps[0] > 0.1, estimates  # the diagonal q misses the posterior correlation: a real gap
    assert all(g1 > g2 for g1, g2 in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] == pytest.approx(0.0, abs=0.01), gaps  # converged to the exact NLL
    assert gaps[-1] > -0.005  # never meaningfully below the exact value


def test_iwae_small_k_bound_holds_on_average_for_a_poor_encoder():
    """With a too-wide q, each draw of -L_k scatters, but its average stays above the exact NLL."""
    model = ProbabilisticPCA(var_scale=4.0, seed=2)
    x = model.sample_x(500, seed=3)
    exact = float(model.exact_nll(x).mean())
    for k in (1, 5):
        draws = [importance_weighted_nll(model, x, num_samples=k, batch_size=500,
                                         generator=torch.Generator().manual_seed(100 * k + r))["nats"]
                 for r in range(5)]
        assert min(draws) > exact, (k, draws, exact)
    result = importance_weighted_nll(model, x, num_samples=1, generator=torch.Generator().manual_seed(9))
    assert result["elbo_nats"] > exact  # the one-sample negative ELBO is a bound too
