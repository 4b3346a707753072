"""Confidence intervals, pass@k, majority vote and McNemar against known values and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from echoink.eval.stats import (
    bootstrap_interval,
    majority_vote,
    mcnemar,
    mean_and_interval,
    pass_at_k,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (8, 10, (0.4902, 0.9433)),  # textbook value
        (0, 10, (0.0, 0.2775)),  # does not collapse at 0%
        (10, 10, (0.7225, 1.0)),
        (81, 100, (0.7222, 0.8749)),
    ],
)
def test_wilson_known_values(k, n, expected):
    assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-4)
    ci = sps.binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_empty_is_nan():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_bootstrap_single_sample_matches_the_normal_interval():
    scores = np.array([1.0] * 200 + [0.0] * 200)[:, None]  # [400, 1], p = 0.5
    lo, hi = bootstrap_interval(scores, n_boot=4000)
    half = 1.96 * math.sqrt(0.25 / 400)  # 0.049
    assert lo == pytest.approx(0.5 - half, abs=0.006) and hi == pytest.approx(0.5 + half, abs=0.006)


def test_bootstrap_resamples_items_not_samples():
    rng = np.random.default_rng(1)
    per_item = rng.uniform(size=300)
    scores = (rng.uniform(size=(300, 8)) < per_item[:, None]).astype(float)  # [I=300, K=8]
    ref = sps.bootstrap((scores.mean(1),), np.mean, method="percentile", n_resamples=4000, random_state=0)
    lo, hi = bootstrap_interval(scores, n_boot=4000)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.006)
    # Treating the 2400 samples as independent would give a narrower (wrong) interval.
    flat = wilson_interval(int(scores.sum()), scores.size)
    assert hi - lo > 1.5 * (flat[1] - flat[0])
    assert bootstrap_interval(np.ones((5, 3))) == (1.0, 1.0)


def test_mean_and_interval_picks_the_method():
    assert mean_and_interval(np.array([[1.0], [0.0]]))[2] == "wilson"
    assert mean_and_interval(np.array([[1.0, 0.0], [0.0, 0.0]]))[2] == "bootstrap"


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 2), (5, 2, 3), (8, 0, 4), (8, 8, 1), (6, 3, 6), (3, 1, 1)])
def test_pass_at_k_equals_brute_force(n, c, k):
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_majority_vote_ignores_unparseable_and_breaks_ties_by_first_seen():
    assert majority_vote(["A", "B", "B", None]) == "B"
    assert majority_vote([None, "C", "A", "A", "C"]) == "C"
    assert majority_vote([None, None]) is None


def test_mcnemar_known_table():
    # Agresti (2002), Table 10.1: approval of the Prime Minister, 1600 people asked twice.
    # [[794, 150], [86, 570]]: discordant b = 150, c = 86.
    assert mcnemar(150, 86, exact=False) == pytest.approx(sps.chi2.sf(63**2 / 236, 1))
    assert mcnemar(150, 86, exact=False) == pytest.approx(4.115e-5, rel=1e-3)
    exact = 2 * sum(math.comb(236, i) for i in range(87)) / 2**236
    assert mcnemar(150, 86) == pytest.approx(exact, rel=1e-9)
    assert mcnemar(6, 16) == pytest.approx(0.052479, abs=1e-6)
    assert mcnemar(0, 0) == 1.0 and mcnemar(3, 3) == 1.0
