"""Statistics for evaluation: confidence intervals, k-sample aggregates and the paired McNemar test.

Pure functions over counts and 0/1 arrays; no model, no files.

>>> lo, hi = wilson_interval(8, 10)
>>> round(lo, 4), round(hi, 4)
(0.4902, 0.9433)
>>> majority_vote(["B", None, "A", "B"]), majority_vote([None, None])
('B', None)
>>> round(pass_at_k(n=4, c=1, k=2), 4)
0.5
>>> round(mcnemar(6, 16), 4), round(mcnemar(6, 16, exact=False), 4)
(0.0525, 0.055)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import stats

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction); (nan, nan) for n = 0.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and does not collapse at 0% or 100%.
    """
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    scores: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``scores`` [I, K] (I items, K samples each).

    Items are resampled with replacement and each keeps its K samples, so the interval reflects
    item-to-item variation, not only sampling noise (samples of one item are correlated).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)  # [I, K]
    n = scores.shape[0]
    if n == 0:
        return math.nan, math.nan
    per_item = scores.mean(axis=1)  # [I]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))  # [n_boot, I]
    means = per_item[idx].mean(axis=1)  # [n_boot]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 < k <= n:
        raise ValueError(f"need 0 < k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """Most frequent parsed answer, unparseable (None) votes ignored; a tie goes to the answer seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def mcnemar(b: int, c: int, exact: bool = True) -> float:
    """Two-sided McNemar p-value from the discordant counts of a paired 2x2 table.

    ``b``: items A got right and B wrong; ``c``: A wrong and B right. Exact: binomial test of b out of
    b + c at 1/2 (use when b + c < 25). Otherwise chi-squared with Edwards' continuity correction,
    (|b - c| - 1)^2 / (b + c) on 1 degree of freedom. No discordant pairs gives p = 1.
    """
    if b + c == 0:
        return 1.0
    if exact:
        return float(stats.binomtest(b, b + c, 0.5).pvalue)
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return float(stats.chi2.sf(statistic, df=1))


def mean_and_interval(scores: np.ndarray, seed: int = 0) -> tuple[float, tuple[float, float], str]:
    """Accuracy, its 95% CI and the method: Wilson for one sample per item, item bootstrap for K > 1."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)  # [I, K]
    if scores.size == 0:
        return math.nan, (math.nan, math.nan), "none"
    mean = float(scores.mean())
    if scores.shape[1] == 1:
        return mean, wilson_interval(int(scores.sum()), scores.shape[0]), "wilson"
    return mean, bootstrap_interval(scores, seed=seed), "bootstrap"
