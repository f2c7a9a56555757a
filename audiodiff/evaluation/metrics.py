"""Generation metrics computed from a judge classifier, following DiffWave's SC09 protocol (Kong et al. 2021).

A *judge* is a classifier trained on real recordings (:mod:`audiodiff.evaluation.judge`). From its
class probabilities and its penultimate-layer features we compute:

- accuracy of class-conditional samples (does the judge hear the class that was asked for);
- Inception Score, IS = exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016);
- modified Inception Score, mIS = exp(E_{x, x'} KL(p(y|x) || p(y|x'))) (Gurumurthy et al. 2017,
  DeLiGAN), which also rewards diversity *within* a class;
- Frechet distance between Gaussians fitted to judge features (Heusel et al. 2017, "FID"),
  d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).

Everything runs in float64 NumPy; the matrix square root is our own eigendecomposition of a
symmetric positive semi-definite product, so no SciPy is needed.

Two helpers need no judge: :func:`clip_statistics` (durations, RMS level in dBFS, near-silent and clipping shares
of a set of clips) and :func:`binomial_tail` (the one-sided test of a judge's held-out accuracy against chance).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "PROB_FLOOR",
    "sqrtm_psd",
    "trace_sqrt_product",
    "gaussian_stats",
    "frechet_distance",
    "frechet_distance_features",
    "inception_score",
    "modified_inception_score",
    "class_accuracy",
    "score_predictions",
    "binomial_tail",
    "clip_statistics",
    "SILENCE_DBFS",
    "CLIP_LEVEL",
    "CLIP_RUN",
    "DBFS_FLOOR",
]

# Probabilities are floored at this value before taking logs, so that a softmax that underflowed to 0
# gives a large finite KL instead of inf/nan. It only changes results for probabilities below 1e-12.
PROB_FLOOR = 1e-12

# Clip statistics (:func:`clip_statistics`): a clip is near-silent when its RMS level is below SILENCE_DBFS, and
# clipping when it holds a flat top: CLIP_RUN or more consecutive equal samples at |x| >= CLIP_LEVEL (generated
# audio is clamped to [-1, 1], so clipped stretches sit exactly there, while a sine peak-normalised to full scale
# has distinct samples at its peaks). Levels are floored at DBFS_FLOOR (digital silence).
SILENCE_DBFS = -60.0
CLIP_LEVEL = 0.999
CLIP_RUN = 3
DBFS_FLOOR = -120.0


def _as_2d(x, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Principal square root of a symmetric positive semi-definite matrix by eigendecomposition.

    `a = V diag(w) V^T` -> `V diag(sqrt(w)) V^T`. Eigenvalues below zero that come from round-off
    (|w| <= 1e-10 * max|w|) are set to 0; a clearly negative eigenvalue raises, since the input is then
    not a covariance matrix.

    Args:
        a: `(D, D)` symmetric PSD matrix.
    Returns:
        `(D, D)` symmetric PSD `s` with `s @ s == a` (to round-off).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"sqrtm_psd needs a square matrix; got shape {a.shape}")
    a = (a + a.T) / 2
    w, v = np.linalg.eigh(a)
    scale = max(float(np.abs(w).max()), 1e-300) if w.size else 1.0
    if w.size and w.min() < -1e-8 * scale:
        raise ValueError(f"sqrtm_psd: matrix is not positive semi-definite (smallest eigenvalue {w.min():.3g})")
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^1/2) for PSD S1, S2, computed stably as tr((S1^1/2 S2 S1^1/2)^1/2).

    S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix S1^1/2 S2 S1^1/2, so both
    have the same (non-negative) eigenvalues; the trace of the square root is the sum of their roots.
    """
    s1 = sqrtm_psd(sigma1)
    m = s1 @ np.asarray(sigma2, dtype=np.float64) @ s1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean `(D,)` and unbiased covariance `(D, D)` of `features (N, D)` (N >= 2)."""
    f = _as_2d(features, "features")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors to estimate a covariance; got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982).

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the quantity FID reports (Heusel et al. 2017).

    Args:
        mu1, mu2: `(D,)` means. sigma1, sigma2: `(D, D)` covariances.
    Returns:
        non-negative float (tiny negative round-off is clamped to 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64).reshape(-1), np.asarray(mu2, np.float64).reshape(-1)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {s1.shape}, sigma2 {s2.shape}; "
            f"need (D,), (D,), (D, D), (D, D)"
        )
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)


def frechet_distance_features(features1, features2) -> float:
    """Frechet distance between Gaussians fitted to two feature sets `(N1, D)` and `(N2, D)`."""
    f1, f2 = _as_2d(features1, "features1"), _as_2d(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sets differ in dimension: {f1.shape[1]} vs {f2.shape[1]}")
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def _check_probs(probs, name="probs") -> np.ndarray:
    p = _as_2d(probs, name)
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{name} rows must be probability vectors (non-negative, summing to 1)")
    return p


def _splits(n: int, splits: int) -> list[slice]:
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in 1..N ({n}); got {splits}")
    edges = np.linspace(0, n, splits + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def inception_score(probs, splits: int = 1) -> tuple[float, float]:
    """Inception Score exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), mean and std over splits.

    Uniform predictions give 1; confident predictions spread evenly over K classes give K.

    Args:
        probs: `(N, K)` class probabilities of N generated samples.
        splits: compute the score on this many consecutive chunks and report mean and std (1: whole set).
    Returns:
        `(mean, std)`.
    """
    p = _check_probs(probs)
    scores = []
    for s in _splits(len(p), splits):
        ps = p[s]
        logp = np.log(np.clip(ps, PROB_FLOOR, None))
        marginal = ps.mean(axis=0)
        kl = (ps * (logp - np.log(np.clip(marginal, PROB_FLOOR, None)))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def modified_inception_score(probs, splits: int = 1, chunk: int = 1024) -> tuple[float, float]:
    """Modified Inception Score exp(E_{x,x'} KL(p(y|x) || p(y|x'))) (Gurumurthy et al. 2017), mean and std.

    The expectation runs over all ordered pairs of samples (including x = x', whose KL is 0), as
    E_x[sum_y p log p] - E_{x,x'}[sum_y p(y|x) log p(y|x')]. Identical predictions give 1.

    Args:
        probs: `(N, K)` class probabilities. splits: as in :func:`inception_score`.
        chunk: rows per block of the N x N cross-entropy matrix (memory bound).
    """
    p = _check_probs(probs)
    scores = []
    for s in _splits(len(p), splits):
        ps = p[s]
        logp = np.log(np.clip(ps, PROB_FLOOR, None))
        neg_entropy = (ps * logp).sum(axis=1).mean()
        cross = 0.0
        for i in range(0, len(ps), chunk):
            cross += (ps[i:i + chunk] @ logp.T).sum()
        cross /= len(ps) ** 2
        scores.append(math.exp(neg_entropy - cross))
    return float(np.mean(scores)), float(np.std(scores))


def class_accuracy(probs, targets: Sequence[int]) -> float:
    """Share of samples whose arg-max class equals the asked class index.

    Args:
        probs: `(N, K)` probabilities. targets: N class indices in [0, K).
    """
    p = _check_probs(probs)
    t = np.asarray(targets)
    if t.shape != (p.shape[0],):
        raise ValueError(f"targets must have shape ({p.shape[0]},); got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= p.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {p.shape[1]}); got range [{t.min()}, {t.max()}]")
    return float((p.argmax(axis=1) == t).mean())


def score_predictions(probs, targets: Sequence[int] | None = None, splits: int = 1) -> dict:
    """Accuracy (when targets are given), IS and mIS of one set of judge predictions, as a dict."""
    out: dict = {"n": int(_check_probs(probs).shape[0])}
    if targets is not None:
        out["accuracy"] = class_accuracy(probs, targets)
    out["inception_score"], out["inception_score_std"] = inception_score(probs, splits)
    out["modified_inception_score"], out["modified_inception_score_std"] = modified_inception_score(probs, splits)
    return out


def binomial_tail(k: int, n: int, p: float) -> float:
    """One-sided binomial p-value P(X >= k) for X ~ Binomial(n, p): how likely k or more hits are by chance.

    Summed exactly in log space (`math.lgamma`), so large n neither overflows nor underflows.

    Args:
        k: observed successes (e.g. correct held-out predictions). n: trials (>= 0). p: chance of one success,
            in (0, 1) (e.g. 1 / number of classes).
    """
    if not (isinstance(n, int) and n >= 0 and isinstance(k, int)):
        raise ValueError(f"binomial_tail needs integers k and n >= 0; got k={k!r}, n={n!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"binomial_tail needs 0 < p < 1; got p={p!r}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def clip_statistics(clips: Sequence, sample_rate: int) -> tuple[dict, list[dict]]:
    """Reference-free statistics of a set of mono clips: durations, RMS level, near-silent and clipping shares.

    Per clip: duration `len / sample_rate` (s), RMS level `20 log10(RMS)` in dBFS (a full-scale sine is -3.0 dBFS;
    floored at :data:`DBFS_FLOOR`), peak `max |x|`, `silent` (level < :data:`SILENCE_DBFS`) and `clipping`
    (a run of :data:`CLIP_RUN` or more equal samples at `|x| >=` :data:`CLIP_LEVEL`: a flat top).

    Args:
        clips: `(T,)` tensors or arrays (mono), all at `sample_rate`.
    Returns:
        `(summary, items)`: summary has `n`, `duration_s` (mean), `duration_min_s`, `duration_max_s`, `rms_dbfs`
        (median over clips), `silent_share`, `clipping_share`; items one dict per clip with the per-clip values.
    """
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer; got {sample_rate!r}")
    items = []
    for c in clips:
        x = np.asarray(c.detach().cpu().numpy() if hasattr(c, "detach") else c, dtype=np.float64).reshape(-1)
        if x.size == 0:
            raise ValueError("clip_statistics: a clip is empty")
        rms = float(np.sqrt(np.mean(x * x)))
        level = max(20 * math.log10(rms), DBFS_FLOOR) if rms > 0 else DBFS_FLOOR
        flat = ((np.abs(x[1:]) >= CLIP_LEVEL) & (x[1:] == x[:-1])).astype(np.int64)  # sample equal to the one before
        run = np.convolve(flat, np.ones(CLIP_RUN - 1, dtype=np.int64), "valid") if flat.size >= CLIP_RUN - 1 else [0]
        items.append({"duration_s": x.size / sample_rate, "rms_dbfs": level, "peak": float(np.abs(x).max()),
                      "silent": level < SILENCE_DBFS, "clipping": bool(np.max(run) >= CLIP_RUN - 1)})
    if not items:
        raise ValueError("clip_statistics needs at least one clip")
    dur = np.array([i["duration_s"] for i in items])
    summary = {"n": len(items), "duration_s": float(dur.mean()), "duration_min_s": float(dur.min()),
               "duration_max_s": float(dur.max()), "rms_dbfs": float(np.median([i["rms_dbfs"] for i in items])),
               "silent_share": float(np.mean([i["silent"] for i in items])),
               "clipping_share": float(np.mean([i["clipping"] for i in items]))}
    return summary, items
