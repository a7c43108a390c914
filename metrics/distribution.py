"""Distribution-level fidelity and diversity in an encoder's feature space.

- FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to real and synthetic
  features. ↓, 0 for identical distributions. Biased upwards for small sets.
- KID (Bińkowski et al. 2018): unbiased squared MMD with a cubic polynomial kernel, averaged
  over random subsets. ↓, about 0 for identical distributions; usable for small sets because
  the subset size shrinks to the smaller set.
- Precision / recall (Kynkäänniemi et al. 2019): the share of synthetic samples inside the real
  manifold (fidelity), and of real samples inside the synthetic manifold (diversity), manifolds
  being unions of k-NN balls. ↑, in [0, 1].
- Density / coverage (Naeem et al. 2020): density counts how many real k-NN balls hold each
  synthetic sample (≈1 for matching distributions, robust to outliers); coverage is the share
  of real samples whose ball holds at least one synthetic sample. ↑.

Every function takes float feature matrices (N×D). Which encoder produced them is the
caller's to record.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DistributionMetric:
    key: str
    name: str
    higher_is_better: bool
    ideal: float
    meaning: str

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


DISTRIBUTION_METRICS: dict[str, DistributionMetric] = {m.key: m for m in [
    DistributionMetric("fid", "FID", False, 0.0, "Fréchet distance between feature Gaussians; LOWER is better."),
    DistributionMetric("kid", "KID", False, 0.0, "Kernel MMD² between feature sets (unbiased); LOWER is better."),
    DistributionMetric("precision", "Precision", True, 1.0, "Share of synthetic images that look real (fidelity)."),
    DistributionMetric("recall", "Recall", True, 1.0, "Share of real images the generator can produce (diversity)."),
    DistributionMetric("density", "Density", True, 1.0, "How densely synthetic images sit among real ones (≈1 matches)."),
    DistributionMetric("coverage", "Coverage", True, 1.0, "Share of real images with a synthetic image nearby (diversity)."),
]}


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D) and covariance (D×D) of N×D features, in float64: the Gaussian FID fits."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ‖mu1 − mu2‖² + tr(sigma1) + tr(sigma2) − 2 tr √(sigma1·sigma2). With A = √sigma1 (symmetric, from
    one eigendecomposition), sigma1·sigma2 = A⁻¹ (A·sigma2·A) A has the eigenvalues of the symmetric
    positive semi-definite A·sigma2·A, so tr √(sigma1·sigma2) is the sum of the square roots of those
    eigenvalues. Two symmetric eigendecompositions (a few seconds for 2048×2048 with torch's LAPACK,
    where a general eigensolver or a matrix square root takes tens) and no inverse, so a singular
    covariance (fewer samples than dimensions) is no special case; rounding's tiny negative
    eigenvalues are clipped to zero.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = torch.from_numpy(np.asarray(sigma1, dtype=np.float64)), \
        torch.from_numpy(np.asarray(sigma2, dtype=np.float64))
    root = _symmetric_sqrt(sigma1)
    trace_sqrt = torch.linalg.eigvalsh(root @ sigma2 @ root).clamp(min=0).sqrt().sum().item()
    return float(((mu1 - mu2) ** 2).sum() + sigma1.trace().item() + sigma2.trace().item() - 2 * trace_sqrt)


def _symmetric_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    """The positive semi-definite square root of a symmetric matrix (negative eigenvalues clipped to zero)."""
    eigenvalues, vectors = torch.linalg.eigh(sigma)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def fid(real: np.ndarray, fake: np.ndarray, real_statistics: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """FID between two N×D feature sets, in float64; NaN when either has fewer than 2 rows.

    When either set has fewer rows than dimensions (Inception's 2048-d features of a few thousand
    images), tr √(Σ1·Σ2) comes from the features: with the centred, scaled rows
    A = (X − μ) / √(n − 1), so that Σ = AᵀA, the non-zero eigenvalues of Σ1·Σ2 are the squared
    singular values of A1·A2ᵀ (n1×n2), and the trace is that matrix's nuclear norm. Exact, and one
    small SVD instead of two D×D eigendecompositions (2 s instead of 20 for 2000 and 1000 images
    here). Otherwise `frechet_distance` of the statistics (`real_statistics`, when the caller has them).
    """
    if min(len(real), len(fake)) < 2:
        return float("nan")
    if min(len(real), len(fake)) < real.shape[1]:
        return _fid_from_features(real, fake)
    return frechet_distance(*(real_statistics or feature_statistics(real)), *feature_statistics(fake))


def _fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    x, y = torch.from_numpy(np.asarray(real, dtype=np.float64)), torch.from_numpy(np.asarray(fake, dtype=np.float64))
    a, b = (x - x.mean(0)) / (len(x) - 1) ** 0.5, (y - y.mean(0)) / (len(y) - 1) ** 0.5
    trace_sqrt = torch.linalg.svdvals(a @ b.T).sum().item()
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2 * trace_sqrt)


def kid(real: np.ndarray, fake: np.ndarray, subset_size: int = 1000, n_subsets: int = 50,
        seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased MMD² over random subsets."""
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    dim = real.shape[1]
    values = []
    for _ in range(n_subsets):
        x = real[rng.choice(len(real), m, replace=False)].astype(np.float64)
        y = fake[rng.choice(len(fake), m, replace=False)].astype(np.float64)
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def _distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    return torch.cat([torch.cdist(a[i:i + chunk], b) for i in range(0, len(a), chunk)])


def _kth_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of `x` to its k-th nearest other row."""
    k = min(k, len(x) - 1)
    radii = [torch.cdist(x[i:i + chunk], x).topk(k + 1, largest=False).values[:, -1]
             for i in range(0, len(x), chunk)]
    return torch.cat(radii)


@torch.no_grad()
def manifold_scores(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """Precision, recall (k=3) and density, coverage (k=5)."""
    if len(real) < 2 or len(fake) < 2:
        return {k: float("nan") for k in ("precision", "recall", "density", "coverage")}
    r, f = torch.from_numpy(real).float(), torch.from_numpy(fake).float()
    d_fr = _distances(f, r)  # fake × real
    real_radius_pr, fake_radius_pr = _kth_radius(r, k_pr), _kth_radius(f, k_pr)
    real_radius_dc = _kth_radius(r, k_dc)
    precision = (d_fr <= real_radius_pr[None, :]).any(1).float().mean()
    recall = (d_fr <= fake_radius_pr[:, None]).any(0).float().mean()
    density = (d_fr <= real_radius_dc[None, :]).sum(1).float().mean() / k_dc
    coverage = (d_fr.min(0).values <= real_radius_dc).float().mean()
    return {"precision": float(precision), "recall": float(recall),
            "density": float(density), "coverage": float(coverage)}


def distribution_scores(real: np.ndarray, fake: np.ndarray, seed: int = 0,
                        real_statistics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """All six distribution metrics, plus the KID spread over subsets and the set sizes.

    `real_statistics` is `feature_statistics(real)` when the caller already has it (a job scoring
    several sets against one real set computes it once).
    """
    kid_mean, kid_std = kid(real, fake, seed=seed)
    return {"fid": fid(real, fake, real_statistics), "kid": kid_mean, "kid_std": kid_std,
            **manifold_scores(real, fake), "n_real": len(real), "n_synthetic": len(fake)}
