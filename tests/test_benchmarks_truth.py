"""The ground-truth benchmark's scoring: ranks, simulated random search and Kendall tau on a synthetic table."""

from __future__ import annotations

import itertools
import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
import _truth as t  # noqa: E402

LABELS = {'a': range(5), 'b': range(4), 'c': range(6)}  # 120 architectures


def _table(noise: float = 0.0, seed: int = 0) -> t.Truth:
    """True accuracy a random permutation of distinct values; search-val = truth plus Gaussian noise per seed."""
    rng = random.Random(seed)
    archs = [dict(zip(LABELS, values)) for values in itertools.product(*LABELS.values())]
    accuracies = rng.sample(range(len(archs)), len(archs))
    rows = []
    for arch, accuracy in zip(archs, accuracies):
        true = accuracy / 1000
        rows.append({'arch': arch, 'true_accuracy': true, 'test': [true] * 3,
                     'val': [true + rng.gauss(0, noise) for _ in range(3)],
                     'short_val': [true + rng.gauss(0, noise) for _ in range(3)]})
    return t.Truth(rows, seeds=3, epochs=30, short_epochs=5)


def test_rank_counts_strictly_better_architectures():
    """Rank and top-10 membership agree with sorting the table by hand."""
    truth = _table()
    ordered = sorted(truth.rows, key=lambda row: -row['true_accuracy'])
    for position in (0, 9, 10, 119):
        score = truth.score(ordered[position]['arch'])
        assert score['rank'] == position + 1
        assert score['in_top'] == (position < 10)
        assert score['regret'] == pytest.approx(ordered[0]['true_accuracy'] - ordered[position]['true_accuracy'])


def test_random_search_top10_chance_matches_the_hypergeometric_formula():
    """Noise-free validation: best of n uniform draws lands in the top 10 with chance 1 - C(110, n) / C(120, n)."""
    truth, repeats = _table(), 4000
    for n in (1, 4, 12):
        summary = t.random_search_summary(truth, budget=5 * n + 4, protocol_epochs=5, repeats=repeats, seed=n)
        exact = 1 - math.comb(110, n) / math.comb(120, n)
        assert summary['architectures'] == n
        assert abs(summary['in_top_fraction'] - exact) < 4 * math.sqrt(exact * (1 - exact) / repeats)


def test_random_search_over_the_whole_space_finds_the_best_and_a_tiny_budget_still_trains_one():
    """A budget for every architecture picks rank 1 (noise-free); a budget under one training trains one."""
    truth = _table()
    rng = random.Random(0)
    assert t.random_search(truth, budget=30 * 200, protocol_epochs=30, rng=rng)['rank'] == 1
    assert t.random_search(truth, budget=2, protocol_epochs=30, rng=rng)['architectures'] == 1
    with pytest.raises(ValueError, match='protocol_epochs'):
        t.random_search(truth, budget=10, protocol_epochs=7, rng=rng)


def test_kendall_tau_of_a_distribution_ordered_like_the_truth():
    """Product probabilities increasing in a score have tau 1 with accuracies increasing in it, -1 reversed."""
    truth = _table()
    weights = {'a': 1, 'b': 5, 'c': 20}  # a + 5b + 20c: a distinct score for each of the 120 architectures
    for row in truth.rows:
        row['true_accuracy'] = sum(weights[label] * value for label, value in row['arch'].items()) / 1000
    probabilities = {}
    for label, values in LABELS.items():
        total = sum(math.exp(weights[label] * u / 10) for u in values)
        probabilities[label] = {v: math.exp(weights[label] * v / 10) / total for v in values}
    assert t.kendall_tau(truth, probabilities) == pytest.approx(1.0)
    for row in truth.rows:
        row['true_accuracy'] = -row['true_accuracy']
    assert t.kendall_tau(truth, probabilities) == pytest.approx(-1.0)
